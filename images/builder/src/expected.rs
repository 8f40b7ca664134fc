//! The values a UEFI boot of our UKI leaves in the registers each platform's evidence carries,
//! computed from the built `uki.efi` (docs/image.md, "Expected values per platform"):
//! the Authenticode digests a firmware logs for it (SHA-256 for a TPM bank, SHA-384 for a TDX
//! RTMR event) and the vTPM PCRs 4, 11 and 12 ([`crate::pcr`]). Checked against OVMF with swtpm
//! booting the disk (`tests/uefi_boot.rs`).

use serde::{Deserialize, Serialize};

use crate::authenticode::{self, AuthenticodeError};
use crate::pcr;

/// Expected values of one UKI, lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UefiExpected {
    /// SHA-256 Authenticode digest of `uki.efi` (what the firmware extends into PCR 4).
    pub authenticode_sha256: String,
    /// SHA-384 Authenticode digest of `uki.efi` (the `EV_EFI_BOOT_SERVICES_APPLICATION` event a
    /// TDX firmware logs and extends into RTMR1).
    pub authenticode_sha384: String,
    /// SHA-256 Authenticode digest of the kernel in `.linux` (systemd-stub loads it through the
    /// firmware, which measures it into PCR 4 after the UKI).
    pub kernel_authenticode_sha256: String,
    /// PCR 4, SHA-256 bank, after an edk2-derived firmware started the UKI from the ESP and the
    /// stub the kernel.
    pub pcr4: String,
    /// PCR 11, SHA-256 bank, after systemd-stub measured the UKI's sections.
    pub pcr11: String,
    /// PCR 12, SHA-256 bank: never extended (nothing passed to the UKI from outside).
    pub pcr12: String,
}

/// Why the expected values could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ExpectedError {
    /// The UKI or its kernel is not a PE image the digest can be taken of.
    #[error("uki.efi: {0}")]
    Authenticode(#[from] AuthenticodeError),
    /// A section record points outside the UKI.
    #[error("uki.efi: section {0} lies outside the file")]
    Section(String),
}

/// Computes the values from the UKI's bytes and its appended sections `(name, file offset,
/// exact size)`: PCR 11 covers what systemd-stub measures, the section contents in the image.
pub fn compute(uki: &[u8], sections: &[(&str, u32, u32)]) -> Result<UefiExpected, ExpectedError> {
    let mut parts = Vec::with_capacity(sections.len());
    for (name, offset, size) in sections {
        let start = *offset as usize;
        let data = start
            .checked_add(*size as usize)
            .and_then(|end| uki.get(start..end))
            .ok_or_else(|| ExpectedError::Section((*name).to_string()))?;
        parts.push((*name, data));
    }
    let a256 = authenticode::sha256(uki)?;
    let linux = parts
        .iter()
        .find(|(name, _)| *name == ".linux")
        .ok_or_else(|| ExpectedError::Section(".linux".into()))?;
    let kernel = authenticode::sha256(linux.1)?;
    Ok(UefiExpected {
        authenticode_sha256: hex::encode(a256),
        authenticode_sha384: hex::encode(authenticode::sha384(uki)?),
        kernel_authenticode_sha256: hex::encode(kernel),
        pcr4: hex::encode(pcr::pcr4(&[a256, kernel])),
        pcr11: hex::encode(pcr::pcr11(&parts)),
        pcr12: hex::encode([0u8; 32]),
    })
}
