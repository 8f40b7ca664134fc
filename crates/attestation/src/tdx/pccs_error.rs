//! Why Intel TDX collateral could not be had from a PCS/PCCS or the collateral cache
//! (`tdx::pccs`). Every value is plain data, so [`crate::tdx::TdxError`] and
//! [`crate::VerifyError`] stay comparable.

use std::fmt;

/// Which request to Intel PCS or a PCCS (API v4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PccsCall {
    /// `GET /sgx/certification/v4/pckcrl?ca=…&encoding=der`: the PCK CRL of the PCK's CA.
    PckCrl,
    /// `GET /tdx/certification/v4/tcb?fmspc=…`: the TDX TCB info of the platform model.
    TcbInfo,
    /// `GET /tdx/certification/v4/qe/identity`: the TD quoting enclave's identity.
    QeIdentity,
    /// The Intel SGX Root CA's CRL (a PCCS's `/sgx/certification/v4/rootcacrl`, or the root
    /// certificate's CRL distribution point for Intel PCS).
    RootCaCrl,
}

impl fmt::Display for PccsCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PccsCall::PckCrl => "PCK CRL",
            PccsCall::TcbInfo => "TCB info",
            PccsCall::QeIdentity => "QE identity",
            PccsCall::RootCaCrl => "root CA CRL",
        })
    }
}

/// Why a cache entry was not used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CacheMiss {
    /// There is no entry for this FMSPC and CA.
    #[error("no entry")]
    Missing,
    /// The entry's earliest `nextUpdate` (TCB info, QE identity, PCK CRL, root CA CRL) is not
    /// after the verification time.
    #[error("the entry expired at {next_update} (unix seconds, its earliest nextUpdate)")]
    Stale {
        /// The earliest `nextUpdate`, unix seconds.
        next_update: u64,
    },
    /// The entry is not collateral for this FMSPC (unparsable, truncated, another FMSPC, no
    /// readable `nextUpdate`).
    #[error("the entry is unusable: {0}")]
    Corrupt(String),
}

/// Why a 200 response from the PCS/PCCS was not accepted. Nothing from such a response is
/// cached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadResponse {
    /// The issuer-chain header is absent.
    #[error("response header {header} is missing")]
    MissingHeader {
        /// The header looked for (first of the accepted names).
        header: &'static str,
    },
    /// The issuer-chain header is not URL-encoded PEM certificates.
    #[error("response header {header} is not URL-encoded PEM certificates: {reason}")]
    BadIssuerChain {
        /// The header.
        header: &'static str,
        /// Why.
        reason: String,
    },
    /// The issuer chain does not end in the pinned Intel SGX Root CA, or a link does not verify.
    #[error("issuer chain does not lead to the pinned Intel SGX Root CA: {0}")]
    UntrustedIssuer(String),
    /// The body is not the expected JSON (`{"tcbInfo": …, "signature": "<hex>"}` or
    /// `{"enclaveIdentity": …, "signature": "<hex>"}`).
    #[error("body is not the expected JSON: {0}")]
    NotJson(String),
    /// The signature field is not 64 bytes (raw ECDSA P-256 r ‖ s) of hex.
    #[error("signature is not 64 bytes of hex")]
    BadSignatureEncoding,
    /// The signature (or the CRL's) does not verify with the issuer chain's leaf: the item was
    /// altered on the way, or not signed by Intel.
    #[error("signature does not verify with the issuer's key: the response was altered")]
    SignatureInvalid,
    /// The body is not a CRL (DER, hex of DER, or PEM).
    #[error("body is not a CRL (DER, hex or PEM)")]
    NotACrl,
    /// The TCB info is for another platform model than the one requested.
    #[error("TCB info is for FMSPC {found}, {requested} was requested")]
    WrongFmspc {
        /// FMSPC requested (lowercase hex).
        requested: String,
        /// FMSPC of the TCB info (lowercase hex).
        found: String,
    },
    /// No readable `nextUpdate` (JSON items: RFC 3339; CRLs: nextUpdate field).
    #[error("no readable nextUpdate: {0}")]
    NoNextUpdate(String),
}

/// An I/O failure, kept as its kind and message so that errors stay comparable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IoFailure {
    /// The I/O error kind.
    pub kind: std::io::ErrorKind,
    /// The I/O error's message.
    pub message: String,
}

impl From<std::io::Error> for IoFailure {
    fn from(e: std::io::Error) -> Self {
        Self {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Why no TDX collateral could be had from the PCS/PCCS or the cache. A failed fetch never
/// writes the cache.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PccsError {
    /// The FMSPC is not 12 hex characters.
    #[error("FMSPC {fmspc:?} is not 12 hex characters")]
    InvalidFmspc {
        /// What was given.
        fmspc: String,
    },
    /// Offline (no PCCS URL) and the cache has no fresh entry.
    #[error("no fresh TDX collateral cached at {path} ({reason}) and no PCCS URL is configured")]
    NotCached {
        /// The cache file looked for.
        path: String,
        /// Why the entry was not used.
        #[source]
        reason: CacheMiss,
    },
    /// The PCS/PCCS answered 429: retry later, or pre-fill the cache.
    #[error(
        "the PCCS rate-limited the {call} request ({url}, HTTP 429{})",
        retry_note(retry_after.as_deref())
    )]
    RateLimited {
        /// Which request.
        call: PccsCall,
        /// The URL.
        url: String,
        /// The `Retry-After` header (seconds or an HTTP date), if sent.
        retry_after: Option<String>,
    },
    /// The PCS/PCCS answered another non-200 status.
    #[error("the PCCS answered HTTP {status} to the {call} request ({url})")]
    Http {
        /// Which request.
        call: PccsCall,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The PCS/PCCS could not be reached, or the body could not be read.
    #[error("cannot reach the PCCS for the {call} request ({url}): {reason}")]
    Network {
        /// Which request.
        call: PccsCall,
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A 200 response that is not acceptable collateral.
    #[error("the PCCS {call} response ({url}) is unusable: {reason}")]
    BadResponse {
        /// Which request.
        call: PccsCall,
        /// The URL.
        url: String,
        /// What is wrong with it.
        #[source]
        reason: BadResponse,
    },
    /// The cache folder or file could not be read or written.
    #[error("TDX collateral cache {path}: {source}")]
    Cache {
        /// The path.
        path: String,
        /// The I/O failure.
        #[source]
        source: IoFailure,
    },
    /// The policy names a PCCS URL, but this build has no HTTP client (feature `pccs` off).
    /// Never falls back to anything else.
    #[error("this build cannot fetch TDX collateral from {url}: enable the `pccs` feature")]
    FeatureOff {
        /// The URL the policy names.
        url: String,
    },
}

fn retry_note(retry_after: Option<&str>) -> String {
    retry_after
        .map(|r| format!(", Retry-After: {r}"))
        .unwrap_or_default()
}
