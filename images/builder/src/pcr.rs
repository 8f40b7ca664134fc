//! The TPM PCR values (SHA-256 bank) a UEFI boot of our UKI produces, computed at build time so a
//! policy can pin them (the Azure vTPM, docs/image.md "Expected values per platform").
//!
//! - PCR 4: what edk2-derived firmware (OVMF, Hyper-V's UEFI) extends before and when it starts
//!   the UKI from the ESP: the `EV_EFI_ACTION` "Calling EFI Application from Boot Option", the
//!   `EV_SEPARATOR` of ReadyToBoot, then one `EV_EFI_BOOT_SERVICES_APPLICATION` per image it
//!   loads: the UKI's Authenticode digest, then the kernel's, because systemd-stub 252 starts the
//!   kernel in `.linux` through the firmware's `LoadImage` (found booting OVMF with swtpm:
//!   `tests/uefi_boot.rs`).
//! - PCR 11: what systemd-stub 252 extends for the UKI's sections, in its fixed order, each as
//!   its name with a NUL and then its contents (`systemd-measure calculate --phase=:`: our PID 1
//!   is not systemd, so systemd-pcrphase never extends the phase words after it).
//! - PCR 12: never extended: systemd-stub measures a command line there only when one is passed
//!   from outside the UKI, and credentials only when the ESP holds some. Zero proves neither.

use sha2::{Digest, Sha256};

/// A PCR value or a digest in the SHA-256 bank.
pub type Pcr = [u8; 32];

/// The UKI sections systemd-stub 252 measures into PCR 11, in the order it measures them
/// (`unified_sections[]` in src/fundamental/tpm-pcr.c; `.pcrsig` is never measured).
pub const MEASURED_SECTIONS: [&str; 7] = [
    ".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey",
];

/// The `EV_EFI_ACTION` string edk2 measures into PCR 4 at the first ReadyToBoot.
pub const BOOT_ATTEMPT_ACTION: &str = "Calling EFI Application from Boot Option";

/// `PCR := SHA-256(PCR || digest)`.
pub fn extend(pcr: &mut Pcr, digest: &Pcr) {
    let mut h = Sha256::new();
    h.update(*pcr);
    h.update(digest);
    *pcr = h.finalize().into();
}

fn sha256(data: &[u8]) -> Pcr {
    Sha256::digest(data).into()
}

/// PCR 11 after systemd-stub has measured these `(section name, contents)` pairs. Sections not
/// in [`MEASURED_SECTIONS`] are ignored, and the stub's order is used whatever the input order.
pub fn pcr11(sections: &[(&str, &[u8])]) -> Pcr {
    let mut pcr = [0u8; 32];
    for name in MEASURED_SECTIONS {
        if let Some((_, data)) = sections.iter().find(|(n, _)| *n == name) {
            let mut tagged = name.as_bytes().to_vec();
            tagged.push(0);
            extend(&mut pcr, &sha256(&tagged));
            extend(&mut pcr, &sha256(data));
        }
    }
    pcr
}

/// PCR 4 after edk2-derived firmware has started the EFI images whose Authenticode digests are
/// `images`, in that order (the UKI, then the kernel the stub loads).
pub fn pcr4(images: &[Pcr]) -> Pcr {
    let mut pcr = [0u8; 32];
    extend(&mut pcr, &sha256(BOOT_ATTEMPT_ACTION.as_bytes()));
    extend(&mut pcr, &sha256(&[0u8; 4]));
    for image in images {
        extend(&mut pcr, image);
    }
    pcr
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn extend_is_sha256_of_the_concatenation() {
        let mut pcr = [0u8; 32];
        let d = sha256(b"x");
        extend(&mut pcr, &d);
        let mut both = vec![0u8; 32];
        both.extend_from_slice(&d);
        assert_eq!(pcr, sha256(&both));
    }

    #[test]
    fn pcr11_follows_the_stubs_order_not_the_callers() {
        let a = pcr11(&[(".linux", b"k"), (".osrel", b"o")]);
        let b = pcr11(&[(".osrel", b"o"), (".linux", b"k")]);
        assert_eq!(a, b);
        assert_ne!(a, pcr11(&[(".linux", b"k"), (".osrel", b"p")]));
        // Unmeasured sections do not count.
        assert_eq!(
            a,
            pcr11(&[(".linux", b"k"), (".osrel", b"o"), (".sbat", b"s")])
        );
    }
}
