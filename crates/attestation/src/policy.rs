//! Attestation policies: what a client accepts. Read from YAML a user can review.
//!
//! Shipped policies (the `policies/` folder) trust only vendor roots. A development policy may trust
//! a simulated root, named by its fingerprint; verification then marks the claims `simulated`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::TeeKind;

/// A complete attestation policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Policy name, shown in every verdict.
    pub name: String,
    /// The TEE family this policy covers.
    pub tee: TeeKind,
    /// The roots the chain may end in. Written `- amd-milan` or `- simulated: { ark_sha256: … }`.
    #[serde(with = "serde_yaml_ng::with::singleton_map_recursive")]
    pub roots: Vec<TrustedRoot>,
    /// Launch measurements allowed. Empty means nothing is allowed (fail closed).
    #[serde(default)]
    pub measurements: Vec<AllowedMeasurement>,
    /// Minimum reported TCB, for every product line without its own floor below.
    #[serde(default)]
    pub min_tcb: MinTcb,
    /// Per-product floors: SPL numbering differs between Milan, Genoa and Turin, so one set of
    /// numbers cannot fit all. A product listed here uses its own floor instead of `min_tcb`.
    #[serde(default)]
    pub min_tcb_by_product: ProductTcb,
    /// Accept a guest whose policy permits debugging. Default: false.
    #[serde(default)]
    pub allow_debug: bool,
    /// Accept a guest whose policy permits a migration agent. Default: false.
    #[serde(default)]
    pub allow_migration_agent: bool,
    /// Highest VMPL the report may come from. Default: 0.
    #[serde(default)]
    pub max_vmpl: u32,
    /// TDX-specific requirements; required when `tee: tdx`.
    #[serde(default)]
    pub tdx: Option<crate::tdx::TdxPolicy>,
    /// Confidential-GPU requirements. Absent: GPU evidence is refused (a guest may not present
    /// devices the policy does not speak about).
    #[serde(default)]
    pub gpu: Option<crate::nvidia::GpuPolicy>,
    /// Azure vTPM requirements. Absent: Azure vTPM evidence is refused (accepting it means
    /// trusting Microsoft's paravisor, which the policy must say).
    #[serde(default)]
    pub azure_vtpm: Option<crate::azure::AzureVtpmPolicy>,
    /// How the image is bound: `hardware` (default: the TEE's measurement, or a vTPM the
    /// hardware report attests) or `cloud-vtpm` (the SNP report pins the cloud's firmware only;
    /// the cloud's vTPM, outside the TEE, pins the image: the cloud is trusted for it).
    #[serde(default)]
    pub image_binding: crate::cloud_vtpm::ImageBinding,
    /// The cloud vTPM rules; required with `image_binding: cloud-vtpm`, refused otherwise.
    #[serde(default)]
    pub cloud_vtpm: Option<crate::cloud_vtpm::CloudVtpmPolicy>,
    /// Model files (SHA-256, lowercase hex) the guest must name in its attestation event's
    /// `model` tags (the RAG job, docs/protocol.md §5.9). Empty: no requirement beyond the
    /// measurement, which already covers the image's models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

/// A root the policy trusts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum TrustedRoot {
    /// AMD's ARK for Milan, pinned in this crate.
    AmdMilan,
    /// AMD's ARK for Genoa, pinned in this crate.
    AmdGenoa,
    /// AMD's ARK for Turin, pinned in this crate.
    AmdTurin,
    /// Intel's SGX Root CA (signs the PCK chain of TDX quotes), pinned in this crate.
    IntelSgxRoot,
    /// A simulated secure processor's root, by SHA-256 of its DER. Development only: evidence
    /// ending here is flagged `simulated`, and no shipped policy may contain this.
    Simulated {
        /// Hex SHA-256 of the simulated ARK's DER.
        ark_sha256: String,
    },
}

/// One allowed launch measurement, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedMeasurement {
    /// 96 hex characters.
    pub measurement: String,
    /// Provenance: which image build produced it.
    pub source: String,
}

impl AllowedMeasurement {
    /// The entry of `list` that allows `value`, if any (entries that are not valid hex match
    /// nothing; policy loading rejects them anyway).
    pub fn find<'a>(
        list: &'a [AllowedMeasurement],
        value: &crate::Measurement,
    ) -> Option<&'a AllowedMeasurement> {
        list.iter()
            .find(|m| crate::Measurement::from_hex(&m.measurement).ok().as_ref() == Some(value))
    }
}

/// Minimum SNP TCB components (reported TCB must be at least these).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinTcb {
    /// Boot loader SPL.
    #[serde(default)]
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    #[serde(default)]
    pub tee: u8,
    /// SNP firmware SPL.
    #[serde(default)]
    pub snp: u8,
    /// Microcode SPL.
    #[serde(default)]
    pub microcode: u8,
}

/// Per-product TCB floors (each optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductTcb {
    /// EPYC 7003 (Milan).
    #[serde(default)]
    pub milan: Option<MinTcb>,
    /// EPYC 9004/8004 (Genoa, Bergamo, Siena).
    #[serde(default)]
    pub genoa: Option<MinTcb>,
    /// EPYC 9005 (Turin).
    #[serde(default)]
    pub turin: Option<MinTcb>,
}

/// Errors while loading a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy {path}")]
    Io {
        /// The path.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is not a valid policy.
    #[error("invalid policy {path}: {source}")]
    Parse {
        /// The path (or `<string>`).
        path: String,
        /// The parse failure.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A field has a bad value (e.g. a measurement that is not 96 hex characters).
    #[error("invalid policy {path}: {reason}")]
    Invalid {
        /// The path (or `<string>`).
        path: String,
        /// Why.
        reason: String,
    },
}

impl Policy {
    /// Parses and validates a policy from YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, PolicyError> {
        Self::parse_named(text, "<string>")
    }

    /// Reads, parses and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: shown.clone(),
            source,
        })?;
        let mut policy = Self::parse_named(&text, &shown)?;
        if let (Some(tdx), Some(dir)) = (policy.tdx.as_mut(), path.parent()) {
            tdx.resolve_relative(dir);
        }
        Ok(policy)
    }

    /// True if any root of this policy is a simulated one: a CPU root, or a GPU root of its
    /// `gpu` section (`simulated_roots`).
    pub fn trusts_simulated(&self) -> bool {
        self.roots
            .iter()
            .any(|r| matches!(r, TrustedRoot::Simulated { .. }))
            || self
                .gpu
                .as_ref()
                .is_some_and(crate::nvidia::GpuPolicy::trusts_simulated)
    }

    fn parse_named(text: &str, path: &str) -> Result<Self, PolicyError> {
        let policy: Policy =
            serde_yaml_ng::from_str(text).map_err(|source| PolicyError::Parse {
                path: path.to_string(),
                source,
            })?;
        let invalid = |reason: String| PolicyError::Invalid {
            path: path.to_string(),
            reason,
        };
        if policy.roots.is_empty() {
            return Err(invalid("no trusted roots".into()));
        }
        for m in &policy.models {
            if m.len() != 64
                || !m
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(invalid(format!(
                    "models: {m:?} is not a SHA-256 (64 lowercase hex characters)"
                )));
            }
        }
        for m in &policy.measurements {
            crate::Measurement::from_hex(&m.measurement)
                .map_err(|e| invalid(format!("measurement {:?}: {e}", m.measurement)))?;
        }
        for r in &policy.roots {
            if let TrustedRoot::Simulated { ark_sha256 } = r {
                let ok = ark_sha256.len() == 64 && hex::decode(ark_sha256).is_ok();
                if !ok {
                    return Err(invalid(format!(
                        "simulated ark_sha256 {ark_sha256:?} is not 64 hex characters"
                    )));
                }
            }
        }
        crate::tdx::validate_policy(&policy).map_err(invalid)?;
        if let Some(gpu) = &policy.gpu {
            gpu.validate().map_err(invalid)?;
        }
        if let Some(a) = &policy.azure_vtpm {
            a.validate().map_err(invalid)?;
        }
        validate_binding(&policy).map_err(invalid)?;
        Ok(policy)
    }
}

/// `image_binding: cloud-vtpm` needs an SNP policy and its `cloud_vtpm:` section, and the section
/// makes sense only with that binding; `trust_cloud_firmware` only with no measurement pinned.
fn validate_binding(policy: &Policy) -> Result<(), String> {
    use crate::cloud_vtpm::ImageBinding;
    match (policy.image_binding, &policy.cloud_vtpm) {
        (ImageBinding::Hardware, None) => Ok(()),
        (ImageBinding::Hardware, Some(_)) => {
            Err("a cloud_vtpm section requires image_binding: cloud-vtpm".into())
        }
        (ImageBinding::CloudVtpm, None) => {
            Err("image_binding: cloud-vtpm requires a cloud_vtpm section".into())
        }
        (ImageBinding::CloudVtpm, Some(c)) => {
            if policy.tee != TeeKind::SevSnp {
                return Err("image_binding: cloud-vtpm is for tee: sev-snp".into());
            }
            if policy.azure_vtpm.is_some() {
                return Err("image_binding: cloud-vtpm and azure_vtpm exclude each other".into());
            }
            if c.trust_cloud_firmware && !policy.measurements.is_empty() {
                return Err(
                    "cloud_vtpm.trust_cloud_firmware with pinned measurements: remove one".into(),
                );
            }
            c.validate()
        }
    }
}
