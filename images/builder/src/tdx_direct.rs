//! The values a bare-metal QEMU TDX guest booting our image directly (`-bios` TDVF, `-shim`,
//! `-kernel`, `-initrd`, `-append`; QEMU ≥ 10.1) leaves in its quote and CC event log, computed
//! from the pinned firmware, Debian's shim and the built kernel, initrd and command line
//! (docs/image.md, "QEMU TDX"). Like dstack-mr/tdx-measure for MRTD; for the RTMRs, the
//! events a verifier must find in a log that replays to the quote (containment, as for GCP):
//!
//! - MRTD: the TDVF image ([`crate::tdvf::Tdvf::mrtd`]).
//! - RTMR0: `EV_EFI_PLATFORM_FIRMWARE_BLOB2`, SHA-384 of the configuration volume, i.e. the
//!   variable store with the Secure Boot keys Debian enrolled (`OVMF.inteltdx.ms.fd`).
//! - RTMR1: `EV_EFI_BOOT_SERVICES_APPLICATION` for shim (the firmware loads it: Debian's TDVF
//!   has Secure Boot on with Microsoft's keys, and in a confidential VM it refuses the legacy
//!   loader, so an unsigned or Debian-signed kernel boots only through Microsoft-signed shim)
//!   and for the kernel (shim checks it against Debian's key and measures it).
//! - RTMR2: two `EV_EVENT_TAG` events of the kernel's EFI stub: the initrd it loads through
//!   the firmware's `LINUX_EFI_INITRD_MEDIA` LoadFile2, and its LoadOptions, which edk2's
//!   `X86QemuLoadImageLib` builds as UTF-16 `initrd=initrd <cmdline>` with a NUL (shim strips
//!   its own `kernel ` prefix and passes the rest).
//!
//! RTMR0's other events (the TD HOB, QEMU's ACPI tables, boot variables) depend on the host's
//! QEMU version, memory size and devices, so the image cannot pin them; `tdx.rtmr0` pins the
//! whole register per host (docs/image.md).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

use crate::authenticode::{self, AuthenticodeError};
use crate::deb::{self, DebError};
use crate::inputs::{self, Places};
use crate::lock::{InputId, Lock, LockError};
use crate::recipe;
use crate::tdvf::{Tdvf, TdvfError};

/// The firmware inside `ovmf-inteltdx`.
pub const TDVF_IN_DEB: &str = "usr/share/ovmf/OVMF.inteltdx.ms.fd";
/// shim inside `shim-signed`.
pub const SHIM_IN_DEB: &str = "usr/lib/shim/shimx64.efi.signed";
/// The firmware's name in the image folder (what the QEMU provider passes as `-bios` for TDX).
pub const TDVF_FILE: &str = "OVMF.inteltdx.fd";
/// shim's name in the image folder (`-shim`).
pub const SHIM_FILE: &str = "shimx64.efi";

/// What edk2's QEMU loader puts in front of the command line when there is an initrd.
pub const INITRD_PREFIX: &str = "initrd=initrd ";

/// Expected values of one QEMU TDX direct boot, lowercase hex (SHA-384).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxDirectExpected {
    /// MRTD of the TDVF.
    pub mrtd: String,
    /// RTMR0: SHA-384 of TDVF's configuration volume.
    pub cfv: String,
    /// RTMR1: shim's Authenticode digest.
    pub shim: String,
    /// RTMR1: the kernel's Authenticode digest.
    pub kernel: String,
    /// RTMR2: SHA-384 of the initrd.
    pub initrd: String,
    /// RTMR2: SHA-384 of the kernel's LoadOptions ([`load_options`]).
    pub load_options: String,
}

/// Why the values could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum TdxDirectError {
    /// The firmware is not a TDVF.
    #[error("TDX firmware: {0}")]
    Firmware(#[from] TdvfError),
    /// The TDVF has no configuration volume.
    #[error("TDX firmware: no configuration volume (CFV) section")]
    NoCfv,
    /// shim is not a PE image.
    #[error("shim: {0}")]
    Shim(#[source] AuthenticodeError),
    /// The kernel is not a PE image (an EFI-stub bzImage).
    #[error("vmlinuz: {0}")]
    Kernel(#[source] AuthenticodeError),
    /// A package is not the one images/inputs.lock pins.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A package could not be unpacked.
    #[error(transparent)]
    Deb(#[from] DebError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TdxDirectError> {
    std::fs::read(path).map_err(|source| TdxDirectError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Checks the pinned TDX firmware and shim packages against `lock`, copies the firmware and shim
/// into `image` (a folder `build` wrote: its `vmlinuz`, `initrd.img` and `cmdline` are read) as
/// [`TDVF_FILE`] and [`SHIM_FILE`], and computes the expected values of booting them.
pub fn prepare(
    image: &Path,
    lock: &Lock,
    places: &Places,
) -> Result<TdxDirectExpected, TdxDirectError> {
    let work = tempfile::Builder::new()
        .prefix("cdvm-image-tdx-")
        .tempdir()
        .map_err(|source| TdxDirectError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let unpack = |id: InputId, inner: &str, out: &str| -> Result<Vec<u8>, TdxDirectError> {
        let pkg = places.path(lock, id);
        inputs::verify_deb(lock, id, &pkg)?;
        let dest = work.path().join(id.as_str());
        deb::extract(&pkg, &dest)?;
        let bytes = read(&dest.join(inner))?;
        let target = image.join(out);
        if std::fs::read(&target).ok().as_deref() != Some(bytes.as_slice()) {
            std::fs::write(&target, &bytes).map_err(|source| TdxDirectError::Io {
                path: target.clone(),
                source,
            })?;
        }
        Ok(bytes)
    };
    let firmware = unpack(InputId::OvmfInteltdx, TDVF_IN_DEB, TDVF_FILE)?;
    let shim = unpack(InputId::Shim, SHIM_IN_DEB, SHIM_FILE)?;
    let kernel = read(&image.join(recipe::VMLINUZ))?;
    let initrd = read(&image.join(recipe::INITRD))?;
    let cmdline = String::from_utf8_lossy(&read(&image.join(recipe::CMDLINE_FILE))?).into_owned();
    compute(&firmware, &shim, &kernel, &initrd, cmdline.trim())
}

/// The kernel's LoadOptions as edk2's QEMU loader builds them: UTF-16LE of
/// [`INITRD_PREFIX`] + `cmdline`, NUL-terminated.
pub fn load_options(cmdline: &str) -> Vec<u8> {
    let mut out: Vec<u8> = format!("{INITRD_PREFIX}{cmdline}")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    out.extend([0, 0]);
    out
}

/// Computes the expected values.
pub fn compute(
    firmware: &[u8],
    shim: &[u8],
    kernel: &[u8],
    initrd: &[u8],
    cmdline: &str,
) -> Result<TdxDirectExpected, TdxDirectError> {
    let tdvf = Tdvf::parse(firmware)?;
    let cfv = tdvf.cfv_digest().ok_or(TdxDirectError::NoCfv)?;
    Ok(TdxDirectExpected {
        mrtd: hex::encode(tdvf.mrtd()),
        cfv: hex::encode(cfv),
        shim: hex::encode(authenticode::sha384(shim).map_err(TdxDirectError::Shim)?),
        kernel: hex::encode(authenticode::sha384(kernel).map_err(TdxDirectError::Kernel)?),
        initrd: hex::encode(Sha384::digest(initrd)),
        load_options: hex::encode(Sha384::digest(load_options(cmdline))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_options_are_utf16_with_the_initrd_prefix_and_a_nul() {
        let lo = load_options("quiet");
        assert_eq!(lo.len(), ("initrd=initrd quiet".len() + 1) * 2);
        assert_eq!(&lo[..4], b"i\0n\0");
        assert_eq!(&lo[lo.len() - 4..], b"t\0\0\0");
    }
}
