//! The `gpu` section of a policy: which confidential GPUs a client accepts next to the CPU
//! evidence. Absent section: any GPU evidence is refused.
//!
//! ```yaml
//! gpu:
//!   required: true          # the guest must present at least one GPU
//!   count: 1                # exactly this many (optional)
//!   measurements:           # optional; empty = measurements are NOT judged
//!     - index: 2
//!       values: ["8048dfd18fe229bf16eb9d30cca0f11a24dafe6eb731de1462984645a0b189b77c4e4e17de727a5e19e3d07de51da338"]
//!       source: "nvtrust sample, VBIOS 96.00.9f.00.01"
//!   driver_versions: ["550.90.07"]       # optional allowlist
//!   vbios_versions: ["96.00.9f.00.01"]   # optional allowlist
//! ```
//!
//! Without measurement entries (or NVIDIA's signed reference manifests, RIMs, which this crate
//! does not yet compare) a GPU's firmware is authenticated — it is a genuine NVIDIA GPU in
//! confidential-computing mode, answering this job's nonce — but its measurements are not
//! judged: the claims say so.

use serde::{Deserialize, Serialize};

use super::GpuError;

/// Confidential-GPU requirements of a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuPolicy {
    /// The guest must present at least one GPU. Default: false (GPUs are allowed, not required).
    #[serde(default)]
    pub required: bool,
    /// The guest must present exactly this many GPUs. Default: any number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Allowed values per measurement index. Each listed index must be present in every GPU's
    /// report with one of its values. Empty: measurements are not judged (say so in claims).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<AllowedGpuMeasurement>,
    /// Allowed driver versions as the GPU reports them (e.g. `550.90.07`). Empty: not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub driver_versions: Vec<String>,
    /// Allowed VBIOS versions as the GPU reports them (e.g. `96.00.9f.00.01`). Empty: not
    /// checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vbios_versions: Vec<String>,
}

/// The values one measurement index may take, with where they came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedGpuMeasurement {
    /// The SPDM measurement index (Hopper: 1..=64).
    pub index: u8,
    /// Allowed values, hex (Hopper: 96 hex characters, SHA-384). An empty list allows nothing.
    pub values: Vec<String>,
    /// Provenance: e.g. the RIM and driver/VBIOS release these values come from.
    pub source: String,
}

impl GpuPolicy {
    /// Checks how many GPUs the guest presents against `required` and `count`. Needs no
    /// cryptography, so it runs even in builds without the `nvidia` feature.
    pub fn check_count(&self, presented: usize) -> Result<String, GpuError> {
        if let Some(expected) = self.count {
            if presented != expected {
                return Err(GpuError::WrongCount {
                    expected,
                    found: presented,
                });
            }
        }
        if self.required && presented == 0 {
            return Err(GpuError::Missing);
        }
        let rule = match (self.count, self.required) {
            (Some(n), _) => format!("policy requires exactly {n}"),
            (None, true) => "policy requires at least one".to_string(),
            (None, false) => "policy allows any number".to_string(),
        };
        Ok(format!("{presented} GPU(s) presented; {rule}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn yaml_round_trip_and_unknown_fields() {
        let p: GpuPolicy = serde_yaml_ng::from_str(
            "required: true\ncount: 2\nmeasurements:\n  - index: 2\n    values: [\"aa\"]\n    source: s\n",
        )
        .unwrap();
        assert!(p.required);
        assert_eq!(p.count, Some(2));
        assert_eq!(p.measurements[0].index, 2);
        let back: GpuPolicy =
            serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert!(serde_yaml_ng::from_str::<GpuPolicy>("allow_debug: true\n").is_err());
        assert_eq!(
            serde_yaml_ng::from_str::<GpuPolicy>("{}").unwrap(),
            GpuPolicy::default()
        );
    }

    #[test]
    fn counts() {
        let any = GpuPolicy::default();
        any.check_count(0).unwrap();
        any.check_count(3).unwrap();
        let required = GpuPolicy {
            required: true,
            ..GpuPolicy::default()
        };
        assert_eq!(required.check_count(0), Err(GpuError::Missing));
        required.check_count(1).unwrap();
        let two = GpuPolicy {
            count: Some(2),
            ..GpuPolicy::default()
        };
        assert_eq!(
            two.check_count(1),
            Err(GpuError::WrongCount {
                expected: 2,
                found: 1
            })
        );
        two.check_count(2).unwrap();
    }
}
