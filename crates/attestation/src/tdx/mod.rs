//! Intel TDX: quote evidence, the typed quote, policy, and (feature `tdx`) verification.
//!
//! References: Intel "TDX DCAP Quoting Library API" (quote v4/v5 layout), Intel "TDX Module ABI
//! Specification" (TDREPORT, TD_ATTRIBUTES), Intel "SGX/TDX PCK Certificate and CRL
//! Specification" and "PCS API" (collateral). Verification: the quote's own signatures and PCK
//! chain are checked here with OpenSSL, then dcap-qvl (pure Rust, MIT) verifies the whole DCAP
//! chain with Intel's collateral against the pinned Intel SGX Root CA. The collateral comes from
//! a pinned file or from Intel PCS / a PCCS with an on-disk cache ([`pccs`]).

use serde::{Deserialize, Serialize};

pub mod ccel;
mod error;
mod pccs_error;
mod policy;
mod quote;
pub mod roots;

#[cfg(feature = "tdx")]
mod chain;
#[cfg(feature = "tdx")]
mod collateral;
#[cfg(feature = "tdx")]
mod dcap;
#[cfg(feature = "tdx")]
pub mod pccs;
#[cfg(feature = "tdx")]
mod signature;
#[cfg(feature = "tdx")]
mod verify;

pub use error::TdxError;
pub use pccs_error::PccsError;
pub(crate) use policy::validate_policy;
pub use policy::{PccsConfig, TdxCollateralSource, TdxPolicy, KNOWN_TCB_STATUSES};
pub use quote::{
    QuoteHeader, QuoteSignature, TdAttributes, TdReport, TdReportKind, TdxQuote, HEADER_LEN,
    INTEL_QE_VENDOR_ID, QE_REPORT_LEN, TD10_BODY_LEN, TD15_BODY_LEN, TEE_TYPE_TDX,
};
pub use roots::{INTEL_SGX_ROOT_NAME, INTEL_SGX_ROOT_SHA256, SIMULATED_SGX_ROOT_CN};

#[cfg(feature = "tdx")]
pub use collateral::TdxCollateral;
#[cfg(all(feature = "tdx", feature = "azure"))]
pub(crate) use verify::checks_without_collateral;
#[cfg(feature = "tdx")]
pub use verify::TdxVerifier;

/// A TDX quote (DCAP v4 or v5) as produced by the guest's quote generation service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxEvidence {
    /// The raw quote, base64 on the wire.
    #[serde(with = "crate::evidence::b64")]
    pub quote: Vec<u8>,
    /// The guest's CC event log, when its firmware published one (cloud TDX guests booted
    /// through TDVF; `docs/attestation.md`, "TDX: the CCEL event log").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_log: Option<CcelEvidence>,
    /// Evidence of the guest's confidential GPUs, each bound to the same report data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<crate::nvidia::GpuEvidence>,
}

/// A CC event log as the guest's kernel exposes it: the ACPI CCEL table
/// (`/sys/firmware/acpi/tables/CCEL`) and the log area it points to
/// (`/sys/firmware/acpi/tables/data/CCEL`), cut after the last event. Unsigned: it is trusted
/// only because its replay must equal the RTMRs of the signed quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CcelEvidence {
    /// The ACPI table, base64 on the wire.
    #[serde(with = "crate::evidence::b64")]
    pub table: Vec<u8>,
    /// The log, base64 on the wire.
    #[serde(with = "crate::evidence::b64")]
    pub log: Vec<u8>,
}

/// The MRTD a quote claims (unverified), if the quote parses.
pub fn claimed_mrtd(quote: &[u8]) -> Option<crate::Measurement> {
    TdxQuote::parse(quote).ok().map(|q| q.report.mrtd)
}
