//! Why Azure vTPM evidence was refused. The hardware report's own checks (chain, signature,
//! measurement, TCB, …) and the user-data binding use the common [`crate::VerifyError`]
//! variants; these are the steps only Azure evidence has.

/// A failed Azure vTPM check, one variant per step (docs/attestation.md, "Azure").
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AzureError {
    /// The policy has no `azure_vtpm` section: it does not accept Microsoft's paravisor.
    #[error("policy `{policy}` has no azure_vtpm section: it does not trust Azure's paravisor")]
    NotAccepted {
        /// Policy name.
        policy: String,
    },
    /// The HCL report's structure is wrong (signature, version, sizes, types).
    #[error("malformed HCL report: {0}")]
    MalformedHcl(String),
    /// The HCL report carries another hardware report than this evidence variant expects.
    #[error("HCL report carries a {found} report, expected {expected}")]
    WrongReportType {
        /// The type found.
        found: &'static str,
        /// The type expected.
        expected: &'static str,
    },
    /// The runtime-claims JSON is not what the paravisor writes.
    #[error("malformed HCL runtime data: {0}")]
    MalformedRuntimeData(String),
    /// REPORT_DATA of the hardware report is not SHA-256(runtime data) ‖ 32 zero bytes: the
    /// runtime data (attestation key, user-data) is not the one the hardware signed.
    #[error(
        "runtime data not bound: REPORT_DATA is {found}, SHA-256(runtime data) ‖ 0³² is {expected}"
    )]
    RuntimeDataNotBound {
        /// Hex of the expected REPORT_DATA.
        expected: String,
        /// Hex of the report's REPORT_DATA.
        found: String,
    },
    /// The TPM quote's bytes are not a `TPMS_ATTEST` quote.
    #[error("malformed TPM quote: {0}")]
    MalformedQuote(String),
    /// The attestation key from the runtime data is not a usable RSA key.
    #[error("attestation key HCLAkPub unusable: {0}")]
    BadAttestationKey(String),
    /// The quote signature does not verify with the attestation key.
    #[error("TPM quote signature invalid: not signed by the attested vTPM key, or altered")]
    QuoteSignatureInvalid,
    /// The quote's extraData is not the nonce: a replayed or another job's quote.
    #[error("TPM quote nonce mismatch: expected {expected}, quote carries {found}")]
    NonceMismatch {
        /// Hex of the expected nonce.
        expected: String,
        /// Hex of extraData.
        found: String,
    },
    /// The quote does not select exactly one SHA-256 bank whose PCRs the evidence carries.
    #[error("TPM quote PCR selection unusable: {0}")]
    PcrSelection(String),
    /// The PCR values in the evidence do not hash to the quote's signed pcrDigest.
    #[error("PCR values do not match the quote's pcrDigest: computed {computed}, quoted {quoted}")]
    PcrDigestMismatch {
        /// Hex of SHA-256 over the evidence's selected PCR values.
        computed: String,
        /// Hex of the quote's pcrDigest.
        quoted: String,
    },
    /// The TD report in the HCL report is not the one the TD quote was made from.
    #[error("HCL TD report's {field} differs from the TD quote's")]
    TdReportMismatch {
        /// REPORTDATA or MRTD.
        field: &'static str,
    },
    /// A PCR value is not one the policy allows.
    #[error("PCR {index} is {value}, not allowed by policy `{policy}`")]
    PcrNotAllowed {
        /// PCR index.
        index: u32,
        /// Hex of its value.
        value: String,
        /// Policy name.
        policy: String,
    },
}

impl AzureError {
    /// The check name of this failure (matches the `Check::name`s of a successful run).
    pub fn check(&self) -> &'static str {
        match self {
            AzureError::NotAccepted { .. } => "azure-policy",
            AzureError::MalformedHcl(_) | AzureError::WrongReportType { .. } => "hcl-report",
            AzureError::MalformedRuntimeData(_) => "runtime-data",
            AzureError::RuntimeDataNotBound { .. } => "runtime-data",
            AzureError::MalformedQuote(_) | AzureError::BadAttestationKey(_) => "tpm-quote",
            AzureError::QuoteSignatureInvalid => "tpm-quote",
            AzureError::NonceMismatch { .. } => "tpm-nonce",
            AzureError::PcrSelection(_) | AzureError::PcrDigestMismatch { .. } => "pcr-digest",
            AzureError::PcrNotAllowed { .. } => "pcr-policy",
            AzureError::TdReportMismatch { .. } => "td-report",
        }
    }
}
