//! Intel TDX: quote evidence, policy, and (feature `tdx`) verification.

use serde::{Deserialize, Serialize};

/// A TDX quote (DCAP v4 or v5) as produced by the guest's quote generation service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxEvidence {
    /// The raw quote, base64 on the wire.
    #[serde(with = "crate::evidence::b64")]
    pub quote: Vec<u8>,
    /// Evidence of the guest's confidential GPUs, each bound to the same report data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<crate::nvidia::GpuEvidence>,
}

/// TDX requirements of a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxPolicy {}

/// Why a TDX quote was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TdxError {
    /// The quote could not be parsed.
    #[error("malformed quote: {0}")]
    Malformed(String),
}

/// The MRTD a quote claims (unverified), if the quote parses.
pub fn claimed_mrtd(_quote: &[u8]) -> Option<crate::Measurement> {
    None
}
