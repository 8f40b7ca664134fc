//! The UEFI disk boot ([`crate::Boot::Disk`]) and what the simulated secure processor reports
//! for it.
//!
//! There is no SEV-SNP launch digest of a disk boot to compute: an SNP launch measures the
//! firmware (and, with kernel hashes, what QEMU loads directly), while a disk is read by the
//! guest after launch (a cloud measures it into the vTPM: PCR 4 and 11, docs/image.md). So the
//! simulator does not pretend to report one. It reports a measurement of exactly what the host
//! hands the VM: SHA-384 over a domain tag, the SHA-256 of the firmware code, the SHA-256 of the
//! whole disk, the vCPU count and model, hashed right before QEMU starts. Another firmware, one
//! changed byte of the disk, or another VM size gives another value, which the development
//! policy (pinning the value for the shipped files) refuses. The tag keeps it from ever equalling
//! a direct-boot digest.

use std::path::{Path, PathBuf};

use cdvm_attestation::Measurement;
use sha2::{Digest, Sha384};

use crate::config::{CpuModel, UefiFirmware};

/// The disk file of the image folder (`cdvm_image::recipe::DISK_FILE`).
pub const DISK_FILE: &str = cdvm_image::recipe::DISK_FILE;

/// Domain separation for [`sim_measurement`] (versioned: a new recipe gets a new tag).
const TAG: &[u8] = b"cdvm simulated uefi-disk launch v1\0";

/// The per-VM copy of the variable store, in the VM's folder (removed with it).
pub(crate) const VARS_FILE: &str = "OVMF_VARS_4M.fd";

/// What the simulated secure processor reports for a UEFI boot of `disk` under `firmware` with
/// `vcpus` vCPUs of model `cpu`: the files as they are on disk now (see the module docs). The
/// variable store is not covered: each VM starts from a fresh copy of the template, and a real
/// launch does not measure it either.
pub fn sim_measurement(
    firmware: &UefiFirmware,
    disk: &Path,
    vcpus: u32,
    cpu: CpuModel,
) -> Result<Measurement, cdvm_image::deb::DebError> {
    let code = cdvm_image::deb::sha256_file(&firmware.code)?;
    let disk = cdvm_image::deb::sha256_file(disk)?;
    let mut h = Sha384::new();
    h.update(TAG);
    for part in [code.as_bytes(), b"\0", disk.as_bytes(), b"\0"] {
        h.update(part);
    }
    h.update(vcpus.to_le_bytes());
    h.update(cpu.qemu_name().as_bytes());
    let mut out = [0u8; 48];
    out.copy_from_slice(&h.finalize());
    Ok(Measurement(out))
}

/// Gives the VM its own writable copy of the variable store template (the firmware writes boot
/// entries into it; the template stays as shipped).
pub(crate) fn vars_copy(firmware: &UefiFirmware, vm_dir: &Path) -> std::io::Result<PathBuf> {
    let vars = vm_dir.join(VARS_FILE);
    std::fs::copy(&firmware.vars_template, &vars)?;
    Ok(vars)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_measurement_covers_the_firmware_the_disk_and_the_vm_size() {
        let dir = tempfile::tempdir().unwrap();
        let fw = UefiFirmware::in_dir(dir.path());
        let disk = dir.path().join(DISK_FILE);
        std::fs::write(&fw.code, b"firmware").unwrap();
        std::fs::write(&fw.vars_template, b"vars").unwrap();
        std::fs::write(&disk, b"disk").unwrap();
        let m = || sim_measurement(&fw, &disk, 1, CpuModel::Milan).unwrap();
        let base = m();
        assert_eq!(base, m(), "deterministic");
        assert_ne!(
            base,
            sim_measurement(&fw, &disk, 2, CpuModel::Milan).unwrap()
        );
        assert_ne!(
            base,
            sim_measurement(&fw, &disk, 1, CpuModel::Genoa).unwrap()
        );
        // The variable store is per VM and not measured.
        std::fs::write(&fw.vars_template, b"other vars").unwrap();
        assert_eq!(base, m());
        std::fs::write(&disk, b"disK").unwrap();
        assert_ne!(base, m(), "one changed disk byte");
        std::fs::write(&disk, b"disk").unwrap();
        std::fs::write(&fw.code, b"firmwarE").unwrap();
        assert_ne!(base, m(), "one changed firmware byte");
        std::fs::remove_file(&disk).unwrap();
        assert!(sim_measurement(&fw, &disk, 1, CpuModel::Milan).is_err());
    }
}
