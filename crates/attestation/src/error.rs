//! Errors of attesters and verifiers. Each verification failure is its own variant so that a
//! client can say exactly why it refused a guest.

use thiserror::Error;

/// A failure to produce evidence.
#[derive(Debug, Error)]
pub enum AttestError {
    /// The secure processor (device or simulator) could not be reached.
    #[error("secure processor unavailable at {path}")]
    Unavailable {
        /// Where it was looked for.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The secure processor answered with something that is not evidence.
    #[error("secure processor gave an invalid answer: {0}")]
    BadResponse(String),
    /// The configfs-tsm report interface failed (the message names the step).
    #[cfg(feature = "tsm")]
    #[error(transparent)]
    Tsm(#[from] crate::tsm::TsmError),
    /// The Azure vTPM attester failed (vTPM, paravisor's HCL report, or IMDS).
    #[cfg(feature = "azure-attester")]
    #[error("azure vTPM attester")]
    AzureVtpm(#[source] Box<crate::azure::VtpmAttestError>),
    /// The GCE vTPM part could not be collected (vTPM, AK template or certificate, quote).
    #[cfg(feature = "azure-attester")]
    #[error("GCE vTPM attester")]
    GceVtpm(#[source] Box<crate::cloud_vtpm::GceVtpmAttestError>),
}

/// A reason to refuse evidence. Verification fails closed: any variant means "do not send input".
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The evidence could not be parsed.
    #[error("malformed evidence: {0}")]
    Malformed(String),
    /// SEV-SNP evidence without a certificate chain (the host supplied none) reached the
    /// verifier: the VCEK must be resolved from the report first.
    #[error("the SEV-SNP evidence carries no certificate chain (the host supplied none): resolve the VCEK from the report's chip id and TCB (cache, or AMD KDS with --fetch) before verifying")]
    MissingChain,
    /// The policy is for another TEE than the evidence.
    #[error("evidence is {evidence}, but policy `{policy}` is for {expected}")]
    TeeMismatch {
        /// TEE of the evidence.
        evidence: String,
        /// TEE the policy covers.
        expected: String,
        /// Policy name.
        policy: String,
    },
    /// The chain ends in a root the policy does not trust.
    #[error(
        "untrusted root certificate (sha256 {fingerprint}); policy `{policy}` trusts: {trusted}"
    )]
    UntrustedRoot {
        /// SHA-256 of the root's DER.
        fingerprint: String,
        /// Policy name.
        policy: String,
        /// The roots the policy trusts.
        trusted: String,
    },
    /// The root is the simulated secure processor and the policy does not allow it.
    #[error("evidence comes from a SIMULATED secure processor; policy `{policy}` refuses it")]
    SimulatedNotAllowed {
        /// Policy name.
        policy: String,
    },
    /// A certificate's signature does not verify with its issuer's key.
    #[error("certificate chain broken: {cert} is not signed by {issuer}")]
    ChainInvalid {
        /// The certificate that failed.
        cert: String,
        /// Its expected issuer.
        issuer: String,
    },
    /// A certificate is outside its validity period at the verification time.
    #[error("certificate {cert} is not valid at the verification time")]
    CertificateExpired {
        /// The certificate that failed.
        cert: String,
    },
    /// A certificate is unreadable or of an unexpected type.
    #[error("bad certificate {cert}: {reason}")]
    BadCertificate {
        /// Which certificate.
        cert: String,
        /// Why.
        reason: String,
    },
    /// The SEV-SNP report's VERSION is not one whose layout this verifier knows, so its reserved
    /// fields cannot be told from fields it does not understand.
    #[error("SNP report version {version} is not supported (known layouts: versions 2 to 5)")]
    ReportVersionUnsupported {
        /// The report's VERSION.
        version: u32,
    },
    /// A byte the SEV-SNP ABI reserves (must be zero) is not zero: outside the signed part the
    /// report was altered; inside it, the layout is not one this verifier knows.
    #[error("SNP report: {field} must be zero, but byte {offset:#05x} is {value:#04x}")]
    ReservedNonZero {
        /// The reserved area, with its offsets (e.g. `reserved 0x330..0x4A0 (…)`).
        field: &'static str,
        /// Offset of the first non-zero byte in the report.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// Reserved bits of a typed SEV-SNP report field (GUEST_POLICY, SIGNER_INFO) are not as the
    /// ABI requires.
    #[error(
        "SNP report: {field} (field at {offset:#04x}) must be {expected:#x} under mask {mask:#x}, found {found:#x}"
    )]
    ReservedBits {
        /// Which bits (e.g. `GUEST_POLICY bits 63:26`).
        field: &'static str,
        /// Offset of the field in the report.
        offset: usize,
        /// The reserved bits.
        mask: u64,
        /// What they must be.
        expected: u64,
        /// What they are.
        found: u64,
    },
    /// The report signature does not verify with the VCEK.
    #[error("report signature invalid: the report was altered or not signed by this VCEK")]
    SignatureInvalid,
    /// REPORT_DATA differs from what this job and guest key require: another job's or a replayed
    /// attestation, or a key not born in this guest.
    #[error("report data mismatch: expected {expected}, report carries {found}")]
    ReportDataMismatch {
        /// Hex of the expected report data.
        expected: String,
        /// Hex of the report's report data.
        found: String,
    },
    /// The measurement is not one the policy allows.
    #[error("measurement {measurement} is not allowed by policy `{policy}`")]
    MeasurementNotAllowed {
        /// Hex of the measurement.
        measurement: String,
        /// Policy name.
        policy: String,
    },
    /// The policy requires a model file the guest's attestation does not name.
    #[error("policy `{policy}` requires model {model}; the guest carries {carried}")]
    ModelNotCarried {
        /// SHA-256 of the required model file.
        model: String,
        /// What the attestation names (`name sha256, …` or `no models`).
        carried: String,
        /// Policy name.
        policy: String,
    },
    /// The guest policy allows debugging (the host can read guest memory).
    #[error(
        "guest policy allows debugging (host can read guest memory); policy `{policy}` forbids it"
    )]
    DebugAllowed {
        /// Policy name.
        policy: String,
    },
    /// The guest policy allows a migration agent.
    #[error("guest policy allows a migration agent; policy `{policy}` forbids it")]
    MigrationAgentAllowed {
        /// Policy name.
        policy: String,
    },
    /// The report came from a VMPL above the policy's maximum.
    #[error("report is from VMPL {vmpl}; policy `{policy}` requires at most {max}")]
    VmplTooHigh {
        /// Reported VMPL.
        vmpl: u32,
        /// Maximum allowed.
        max: u32,
        /// Policy name.
        policy: String,
    },
    /// A TCB component is below the policy's minimum.
    #[error("TCB too low: {component} is {found}, policy `{policy}` requires at least {minimum}")]
    TcbTooLow {
        /// Which component (bootloader, tee, snp, microcode).
        component: String,
        /// Reported value.
        found: u8,
        /// Policy minimum.
        minimum: u8,
        /// Policy name.
        policy: String,
    },
    /// The VCEK does not belong to the reporting chip or TCB.
    #[error("VCEK does not match the report: {0}")]
    VcekMismatch(String),
    /// This build cannot verify this kind of evidence (its cargo feature is off).
    #[error("this build cannot verify {what}: enable the `{feature}` feature")]
    Unsupported {
        /// The evidence family.
        what: &'static str,
        /// The cargo feature that adds it.
        feature: &'static str,
    },
    /// A TDX quote failed verification.
    #[error("TDX: {0}")]
    Tdx(#[from] crate::tdx::TdxError),
    /// Azure vTPM evidence (HCL report, TPM quote) failed verification.
    #[error("Azure vTPM: {0}")]
    Azure(#[from] crate::azure::AzureError),
    /// The cloud vTPM part of SNP evidence failed verification (or is missing or unwanted).
    #[error("cloud vTPM: {0}")]
    CloudVtpm(#[from] crate::cloud_vtpm::CloudVtpmError),
    /// GPU evidence failed verification.
    #[error("GPU: {0}")]
    Gpu(#[from] crate::nvidia::GpuError),
}

impl VerifyError {
    /// The name of the check that failed, matching the `Check::name`s of a successful run
    /// (`root`, `chain`, `signature`, `report-data`, …), so a refusal can be shown in place.
    pub fn check(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_)
            | VerifyError::ReportVersionUnsupported { .. }
            | VerifyError::ReservedNonZero { .. }
            | VerifyError::ReservedBits { .. } => "report",
            VerifyError::TeeMismatch { .. } => "tee",
            VerifyError::UntrustedRoot { .. } | VerifyError::SimulatedNotAllowed { .. } => "root",
            VerifyError::ChainInvalid { .. }
            | VerifyError::BadCertificate { .. }
            | VerifyError::MissingChain => "chain",
            VerifyError::CertificateExpired { .. } => "validity",
            VerifyError::SignatureInvalid => "signature",
            VerifyError::VcekMismatch(_) => "vcek-binding",
            VerifyError::ReportDataMismatch { .. } => "report-data",
            VerifyError::MeasurementNotAllowed { .. } => "measurement",
            VerifyError::ModelNotCarried { .. } => "model",
            VerifyError::DebugAllowed { .. } => "debug",
            VerifyError::MigrationAgentAllowed { .. } => "migration-agent",
            VerifyError::VmplTooHigh { .. } => "vmpl",
            VerifyError::TcbTooLow { .. } => "tcb",
            VerifyError::Unsupported { .. } => "support",
            VerifyError::Tdx(_) => "tdx",
            VerifyError::Gpu(_) => "gpu",
            VerifyError::Azure(e) => e.check(),
            VerifyError::CloudVtpm(e) => e.check(),
        }
    }
}
