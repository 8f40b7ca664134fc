//! NVIDIA confidential-computing GPUs (H100): SPDM measurement evidence, policy, and (feature
//! `nvidia`) verification bound to the CPU evidence's report data.

use serde::{Deserialize, Serialize};

/// One GPU's evidence: the SPDM GET_MEASUREMENTS request+response and its certificate chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuEvidence {
    /// The SPDM request followed by the signed MEASUREMENTS response, base64 on the wire.
    #[serde(with = "crate::evidence::b64")]
    pub report: Vec<u8>,
    /// The device certificate chain, DER, leaf first, base64 on the wire.
    pub certs: Vec<GpuCert>,
}

/// One DER certificate of a GPU chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GpuCert(#[serde(with = "crate::evidence::b64")] pub Vec<u8>);

/// Confidential-GPU requirements of a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuPolicy {}

/// Why GPU evidence was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GpuError {
    /// The evidence could not be parsed.
    #[error("malformed GPU evidence: {0}")]
    Malformed(String),
}

/// Verifies every GPU's evidence against the policy and the CPU evidence's report data.
/// Returns the checks performed (empty when there is no GPU and the policy requires none).
pub fn verify_gpus(
    gpus: &[GpuEvidence],
    _expected: &crate::ReportData,
    policy: Option<&GpuPolicy>,
    _now: std::time::SystemTime,
) -> Result<Vec<crate::Check>, GpuError> {
    match (gpus.is_empty(), policy) {
        (true, _) => Ok(Vec::new()),
        (false, None) => Err(GpuError::Malformed(
            "the guest presents GPU evidence but the policy has no `gpu` section".into(),
        )),
        (false, Some(_)) => Err(GpuError::Malformed(
            "GPU evidence verification is not built yet".into(),
        )),
    }
}
