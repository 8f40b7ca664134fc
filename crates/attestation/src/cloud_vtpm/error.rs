//! Why the cloud vTPM part of SNP evidence was refused: one variant per step, so a client can say
//! exactly which link of the cloud's vouching failed (docs/attestation.md, "Cloud vTPM").

use crate::azure::AzureError;

/// A failed cloud vTPM check.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CloudVtpmError {
    /// The evidence carries a cloud vTPM part, but the policy binds the image by hardware: it
    /// does not say it trusts a cloud's vTPM, so the part is refused rather than ignored.
    #[error(
        "policy `{policy}` binds the image by hardware; it does not accept a cloud vTPM quote"
    )]
    NotAccepted {
        /// Policy name.
        policy: String,
    },
    /// The policy binds the image through the cloud's vTPM, and the evidence has no vTPM part:
    /// nothing would pin the image.
    #[error("policy `{policy}` requires the cloud's vTPM quote (image_binding: cloud-vtpm); the evidence has none")]
    Missing {
        /// Policy name.
        policy: String,
    },
    /// The vTPM part comes from another cloud than the policy trusts.
    #[error("the vTPM quote is from {found}, policy `{policy}` trusts {expected}")]
    WrongCloud {
        /// The evidence's cloud.
        found: crate::cloud_vtpm::Cloud,
        /// The policy's cloud.
        expected: crate::cloud_vtpm::Cloud,
        /// Policy name.
        policy: String,
    },
    /// A certificate of the attestation key's chain is missing or not DER X.509.
    #[error("attestation key certificate {index}: {reason}")]
    AkCertificate {
        /// 0-based position (0 = the AK's own certificate).
        index: usize,
        /// Why.
        reason: String,
    },
    /// The policy pins no vTPM root, so no attestation key can be trusted (fail closed).
    #[error("policy `{policy}` pins no cloud_vtpm.vtpm_roots: no vTPM attestation key is trusted")]
    NoRoots {
        /// Policy name.
        policy: String,
    },
    /// The attestation key's chain does not end in a pinned root (or is outside its validity).
    #[error("attestation key certificate does not chain to a root pinned by policy `{policy}`: {reason}")]
    AkNotTrusted {
        /// OpenSSL's reason.
        reason: String,
        /// Policy name.
        policy: String,
    },
    /// The attestation key is not an RSA key (the quote signature is RSASSA/SHA-256).
    #[error("attestation key unusable: {0}")]
    AkKeyUnusable(String),
    /// The quote signature does not verify with the attestation key.
    #[error(
        "vTPM quote signature invalid: not signed by the certified attestation key, or altered"
    )]
    QuoteSignatureInvalid,
    /// The signed quote is not a `TPMS_ATTEST` quote.
    #[error("vTPM quote unusable: {source}")]
    Quote {
        /// The parse failure.
        #[source]
        source: AzureError,
    },
    /// The quote's extraData is not SHA-256 of the expected report data: a replayed quote, or
    /// one made for another job or guest key than the SNP report.
    #[error("vTPM quote nonce mismatch: expected {expected}, quote carries {found}")]
    NonceMismatch {
        /// Hex of the expected nonce.
        expected: String,
        /// Hex of extraData.
        found: String,
    },
    /// The PCR values in the evidence are not what the quote signed (selection or digest).
    #[error("vTPM PCR values: {source}")]
    PcrDigest {
        /// The selection or digest failure.
        #[source]
        source: AzureError,
    },
    /// A PCR the policy pins is not quoted or holds another value: another image booted.
    #[error("PCR {index} is {value}, not allowed by policy `{policy}`")]
    PcrNotAllowed {
        /// PCR index.
        index: u32,
        /// Hex of its value, or `not quoted`.
        value: String,
        /// Policy name.
        policy: String,
    },
}

impl CloudVtpmError {
    /// The check name of this failure (matches the `Check::name`s of a successful run).
    pub fn check(&self) -> &'static str {
        match self {
            CloudVtpmError::NotAccepted { .. }
            | CloudVtpmError::Missing { .. }
            | CloudVtpmError::WrongCloud { .. } => "cloud-vtpm",
            CloudVtpmError::AkCertificate { .. }
            | CloudVtpmError::NoRoots { .. }
            | CloudVtpmError::AkNotTrusted { .. } => "ak-chain",
            CloudVtpmError::AkKeyUnusable(_)
            | CloudVtpmError::QuoteSignatureInvalid
            | CloudVtpmError::Quote { .. } => "tpm-quote",
            CloudVtpmError::NonceMismatch { .. } => "tpm-nonce",
            CloudVtpmError::PcrDigest { .. } => "pcr-digest",
            CloudVtpmError::PcrNotAllowed { .. } => "pcr-policy",
        }
    }
}
