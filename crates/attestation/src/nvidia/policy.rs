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

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::GpuError;
use crate::policy::PolicyError;

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
    /// Development only: simulated GPU roots, each the hex SHA-256 of the root certificate's DER
    /// (the test chain the NVML stub signs with). A GPU chain may end in one of these instead of
    /// NVIDIA's pinned Device Identity CA; the claims are then `simulated`. No shipped policy
    /// contains one ([`GpuPolicy::trusts_simulated`], `Policy::trusts_simulated`). Empty (the
    /// default): only NVIDIA's root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub simulated_roots: Vec<String>,
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

/// The rules for verifying GPU evidence on its own (`cdvm verify --gpu`): a name for verdicts and
/// a `gpu` section. Written as its own file (`name:` and `gpu:` only), or taken from a full
/// SEV-SNP/TDX policy's `gpu` section ([`load_gpu_policy`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuOnlyPolicy {
    /// Policy name, shown in every verdict.
    pub name: String,
    /// The GPU rules.
    pub gpu: GpuPolicy,
}

impl GpuOnlyPolicy {
    /// Parses a GPU-only policy (`name` and `gpu`, nothing else).
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        Self::parse_named(text, "<string>")
    }

    fn parse_named(text: &str, path: &str) -> Result<Self, PolicyError> {
        let policy: Self = serde_yaml_ng::from_str(text).map_err(|source| PolicyError::Parse {
            path: path.to_string(),
            source,
        })?;
        policy
            .gpu
            .validate()
            .map_err(|reason| PolicyError::Invalid {
                path: path.to_string(),
                reason,
            })?;
        Ok(policy)
    }
}

/// Reads the rules for standalone GPU verification from a policy file: a GPU-only policy
/// (`name` + `gpu`), or a full SEV-SNP/TDX policy (it has `tee`), loaded and validated as such,
/// whose `name` and `gpu` section are used. A full policy without a `gpu` section is an error:
/// it speaks about no GPU, so there is nothing to verify GPU evidence against.
pub fn load_gpu_policy(path: &Path) -> Result<GpuOnlyPolicy, PolicyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: shown.clone(),
        source,
    })?;
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|source| PolicyError::Parse {
            path: shown.clone(),
            source,
        })?;
    if value.get("tee").is_none() {
        return GpuOnlyPolicy::parse_named(&text, &shown);
    }
    let full = crate::Policy::load(path)?;
    let gpu = full.gpu.ok_or_else(|| PolicyError::Invalid {
        path: shown,
        reason: "no `gpu` section: GPU evidence verified on its own needs GPU rules".into(),
    })?;
    Ok(GpuOnlyPolicy {
        name: full.name,
        gpu,
    })
}

impl GpuPolicy {
    /// True if this section trusts a simulated GPU root (a development policy).
    pub fn trusts_simulated(&self) -> bool {
        !self.simulated_roots.is_empty()
    }

    /// Checks the values serde cannot: each simulated root is 64 hex characters.
    pub fn validate(&self) -> Result<(), String> {
        for root in &self.simulated_roots {
            if root.len() != 64 || hex::decode(root).is_err() {
                return Err(format!(
                    "gpu simulated_roots entry {root:?} is not 64 hex characters (SHA-256 of the \
                     root's DER)"
                ));
            }
        }
        Ok(())
    }

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
    fn gpu_only_and_full_policies_give_gpu_rules() {
        let only = GpuOnlyPolicy::from_yaml("name: h100\ngpu:\n  count: 1\n").unwrap();
        assert_eq!((only.name.as_str(), only.gpu.count), ("h100", Some(1)));
        // A GPU-only policy has nothing else: CPU rules there are a mistake, not ignored.
        assert!(GpuOnlyPolicy::from_yaml("name: x\ngpu: {}\nallow_debug: true\n").is_err());
        assert!(GpuOnlyPolicy::from_yaml("name: x\n").is_err());

        let dir = tempfile::tempdir().unwrap();
        let write = |file: &str, text: &str| {
            let path = dir.path().join(file);
            std::fs::write(&path, text).unwrap();
            path
        };
        let full = "name: snp-gpu\ntee: sev-snp\nroots: [amd-milan]\n";
        let with_gpu = write("with.yaml", &format!("{full}gpu:\n  required: true\n"));
        let loaded = load_gpu_policy(&with_gpu).unwrap();
        assert_eq!(loaded.name, "snp-gpu");
        assert!(loaded.gpu.required);
        let without = write("without.yaml", full);
        assert!(matches!(
            load_gpu_policy(&without),
            Err(PolicyError::Invalid { reason, .. }) if reason.contains("no `gpu` section")
        ));
        // A full policy is validated as one (here: no roots).
        let invalid = write(
            "invalid.yaml",
            "name: x\ntee: sev-snp\nroots: []\ngpu: {}\n",
        );
        assert!(load_gpu_policy(&invalid).is_err());
        let only = write("only.yaml", "name: h100\ngpu: {}\n");
        assert_eq!(load_gpu_policy(&only).unwrap().gpu, GpuPolicy::default());
        assert!(matches!(
            load_gpu_policy(&dir.path().join("absent.yaml")),
            Err(PolicyError::Io { .. })
        ));
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
