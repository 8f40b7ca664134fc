//! Why a TDX quote was refused: one variant per failed step (docs/attestation.md, "TDX").

/// Why a TDX quote was refused. Checks that every TEE shares (TEE family, trusted root,
/// REPORT_DATA, launch measurement, debug) use the common [`crate::VerifyError`] variants, so a
/// client reports e.g. a replayed attestation the same way for SEV-SNP and TDX.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TdxError {
    /// The quote's bytes do not have the DCAP quote structure (lengths, offsets, sizes).
    #[error("malformed quote: {0}")]
    Malformed(String),
    /// A well-formed quote of a kind this verifier does not accept (SGX, other quote version,
    /// attestation key type, body type).
    #[error("unsupported quote: {0}")]
    Unsupported(String),
    /// The PCK certificate chain in the quote cannot be decoded into X.509 certificates.
    #[error("PCK certificate chain unreadable: {0}")]
    PckChainMalformed(String),
    /// A certificate of the PCK chain is not signed by the next one (or names another issuer).
    #[error("PCK certificate chain broken: {cert} is not signed by {issuer}")]
    PckChainInvalid {
        /// The certificate that failed (subject CN).
        cert: String,
        /// Its expected issuer (subject CN of the next certificate).
        issuer: String,
    },
    /// A certificate of the PCK chain is outside its validity period at the verification time.
    #[error("PCK chain certificate {cert} is not valid at the verification time")]
    PckCertificateExpired {
        /// The certificate (subject CN).
        cert: String,
    },
    /// The QE report is not signed by the PCK leaf key.
    #[error("QE report signature invalid: the quoting enclave's report is not signed by the PCK")]
    QeReportSignatureInvalid,
    /// The QE report does not bind the attestation key: its REPORT_DATA[0..32] is not
    /// SHA-256(attestation key ‖ QE authentication data).
    #[error("QE report does not bind the quote's attestation key")]
    AttestationKeyNotBound,
    /// The quote signature (header ‖ TD report) does not verify with the attestation key.
    #[error("quote signature invalid: the quote was altered or not signed by its attestation key")]
    QuoteSignatureInvalid,
    /// The policy names no collateral and the verifier was given none.
    #[error(
        "policy `{policy}` names no TDX collateral (tdx.collateral or tdx.pccs): cannot evaluate \
         the TCB"
    )]
    NoCollateral {
        /// Policy name.
        policy: String,
    },
    /// The collateral file cannot be read or is not dcap-qvl `QuoteCollateralV3` JSON.
    #[error("cannot load TDX collateral {path}: {reason}")]
    CollateralUnreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The policy's PCCS (`tdx.pccs`) or its collateral cache gave no usable collateral: which
    /// request failed and why (HTTP status, rate limiting, a bad body, offline with no fresh
    /// cache entry, the `pccs` feature off).
    #[error("TDX collateral from the PCCS: {0}")]
    CollateralFetch(#[from] crate::tdx::PccsError),
    /// A policy built in code names both a collateral file and a PCCS (a loaded policy cannot).
    #[error("the policy names both tdx.collateral and tdx.pccs: name one source of collateral")]
    CollateralAmbiguous,
    /// The collateral (TCB info, QE identity, CRLs, their signer chains) does not verify against
    /// the pinned Intel root, or is of the wrong kind for this quote.
    #[error("TDX collateral invalid: {0}")]
    CollateralInvalid(String),
    /// Some collateral item (TCB info, QE identity, a CRL, a signer certificate) is not valid
    /// at the verification time: fetch fresh collateral.
    #[error("TDX collateral not valid at the verification time: {0}")]
    CollateralExpired(String),
    /// A certificate on a DCAP chain is revoked by Intel's CRLs.
    #[error("certificate revoked by Intel's CRL: {0}")]
    CertificateRevoked(String),
    /// The quoting enclave does not match Intel's QE identity (MRSIGNER, ISVPRODID, attributes,
    /// or an ISVSVN below every listed level).
    #[error("quoting enclave does not match Intel's QE identity: {0}")]
    QeIdentityMismatch(String),
    /// The collateral's TCB info is for another platform model (FMSPC) than the PCK certificate.
    #[error("collateral TCB info is for FMSPC {collateral}, the PCK certificate for {quote}")]
    FmspcMismatch {
        /// FMSPC of the TCB info (hex).
        collateral: String,
        /// FMSPC of the PCK certificate (hex).
        quote: String,
    },
    /// The platform's TCB (CPU SVN, PCE SVN, TDX module SVN) is below every level of the TCB
    /// info: too old to be appraised at all.
    #[error("no TCB level of the collateral matches the platform: {0}")]
    TcbLevelNotFound(String),
    /// The TDX module (MRSIGNER_SEAM / SEAM attributes) is not the one Intel's TCB info names.
    #[error("TDX module identity mismatch: {0}")]
    TdxModuleMismatch(String),
    /// The platform TCB is revoked: always refused.
    #[error("platform TCB status is Revoked")]
    TcbRevoked,
    /// The platform TCB status is not one the policy accepts.
    #[error(
        "TCB status {status} (advisories: {advisories}) is not allowed by policy `{policy}` \
         (allowed: {allowed})"
    )]
    TcbStatusNotAllowed {
        /// The TCB status Intel's collateral gives this platform.
        status: String,
        /// Intel security advisories that apply (comma separated, or `none`).
        advisories: String,
        /// The statuses the policy accepts.
        allowed: String,
        /// Policy name.
        policy: String,
    },
    /// A runtime measurement register is not one of the values the policy allows.
    #[error("RTMR{index} {value} is not allowed by policy `{policy}`")]
    RtmrNotAllowed {
        /// 0..=3.
        index: usize,
        /// Hex of the register.
        value: String,
        /// Policy name.
        policy: String,
    },
    /// XFAM (the TD's enabled CPU extended features) is not one the policy allows.
    #[error("XFAM {value} is not allowed by policy `{policy}`")]
    XfamNotAllowed {
        /// Hex of XFAM (8 bytes, as in the report).
        value: String,
        /// Policy name.
        policy: String,
    },
    /// The policy expects boot events (`tdx.event_log`) and the evidence carries no CC event log.
    #[error(
        "policy `{policy}` expects boot events in the CC event log (tdx.event_log), and the \
         evidence carries none: the guest found no ACPI CCEL table"
    )]
    EventLogMissing {
        /// Policy name.
        policy: String,
    },
    /// The CC event log is malformed, does not replay to the quote's RTMRs, or lacks an event
    /// the policy expects.
    #[error("CC event log: {0}")]
    EventLog(#[from] crate::tdx::ccel::CcelError),
    /// TD attributes that make the TD untrustworthy (migratable, SEPT #VE not disabled,
    /// reserved bits, service TDs), as refused by the DCAP verifier.
    #[error("TD attributes refused: {0}")]
    TdAttributes(String),
    /// Any other DCAP verification failure (fails closed).
    #[error("DCAP verification failed: {0}")]
    Dcap(String),
}
