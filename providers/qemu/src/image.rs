//! The guest image the provider boots: the files `scripts/build-image` writes into one folder.

use std::path::{Path, PathBuf};

use crate::QemuError;

/// Kernel, initramfs, command line and the firmware the launch digest is computed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestImage {
    /// The kernel (bzImage).
    pub kernel: PathBuf,
    /// The initramfs (the agent as /init, the modules it loads).
    pub initrd: PathBuf,
    /// The kernel command line (measured on SEV-SNP through the kernel-hashes table).
    pub cmdline: String,
    /// AMD's SEV OVMF build (`OVMF.amdsev.fd`): boots SEV-SNP guests, and the simulated secure
    /// processor computes the launch digest with it.
    pub ovmf: PathBuf,
    /// Intel's TDX firmware (`OVMF.inteltdx.fd`, TDVF) and Debian's Microsoft-signed shim
    /// (`shimx64.efi`), which a TD boots with (`-bios`, `-shim`): the TDVF has Secure Boot on and
    /// refuses any kernel not verified through shim. `None` in an image built before them.
    pub tdx: Option<TdxBoot>,
}

/// What a TDX guest boots besides the kernel, initrd and command line (policies/image-tdx.yaml
/// pins their measurements).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxBoot {
    /// `OVMF.inteltdx.fd`.
    pub tdvf: PathBuf,
    /// `shimx64.efi`.
    pub shim: PathBuf,
}

/// Memory a guest of the built image needs to boot and run a RAG job: the initramfs carries the
/// models uncompressed (about 140 MiB, kept once as the initrd and once unpacked in the root
/// filesystem), and the job loads them (docs/image.md). Below this the kernel fails to unpack.
pub const IMAGE_GUEST_MEMORY_MIB: u32 = 1536;

/// Where `scripts/build-image` puts the image of this checkout: `$CDVM_IMAGE_DIR` if set, else
/// `<workspace>/target/image`. For tests and benches, which must fail (not skip) without it:
/// a missing image is an error saying how to build it.
pub fn built_image_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os("CDVM_IMAGE_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/image")),
        PathBuf::from,
    );
    if dir.join("manifest.json").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "no guest image in {}: run scripts/build-image first",
            dir.display()
        ))
    }
}

impl GuestImage {
    /// The SEV-SNP launch digest of these files as they are on disk now, for a VM of `vcpus`
    /// vCPUs of model `cpu` (what a real SNP launch of them measures, and what the simulated
    /// secure processor reports).
    pub fn launch_digest(
        &self,
        vcpus: u32,
        cpu: crate::CpuModel,
    ) -> Result<cdvm_attestation::Measurement, cdvm_image::MeasureError> {
        cdvm_image::snp_launch_digest(
            &self.ovmf,
            &self.kernel,
            &self.initrd,
            &self.cmdline,
            vcpus,
            cpu.measured(),
        )
        .map(cdvm_attestation::Measurement)
    }

    /// Reads the image folder; every file must exist.
    pub fn load(dir: &Path) -> Result<Self, QemuError> {
        let file = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(QemuError::Image {
                    dir: dir.to_path_buf(),
                    reason: format!("{name} is missing (run scripts/build-image)"),
                })
            }
        };
        let cmdline_path = file("cmdline")?;
        let cmdline = std::fs::read_to_string(&cmdline_path)
            .map_err(|e| QemuError::Image {
                dir: dir.to_path_buf(),
                reason: format!("reading cmdline: {e}"),
            })?
            .trim()
            .to_string();
        let (tdvf, shim) = (dir.join("OVMF.inteltdx.fd"), dir.join("shimx64.efi"));
        let tdx = (tdvf.is_file() && shim.is_file()).then_some(TdxBoot { tdvf, shim });
        Ok(Self {
            kernel: file("vmlinuz")?,
            initrd: file("initrd.img")?,
            cmdline,
            ovmf: file("OVMF.amdsev.fd")?,
            tdx,
        })
    }
}
