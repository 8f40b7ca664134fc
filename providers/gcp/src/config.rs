//! The orchestrator's `provider: { gcp: … }` section: the keys of terraform/config-keys.yaml
//! (filled 1:1 from `terraform output -json`), plus two optional test-only keys.

pub use cdvm_provider_api::retry::RetrySettings;

use cdvm_provider_api::retry::RetryPolicy;
use serde::Deserialize;

use crate::catalog::{self, MachineType};
use crate::names;

/// Settings of the Compute Engine backend.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpProviderConfig {
    /// Project of the job network and the job VMs.
    pub project: String,
    /// Zone job VMs are created in (`europe-west4-a`).
    pub zone: String,
    /// The job VPC network (self link or `projects/P/global/networks/N`).
    pub network: String,
    /// The job subnetwork (self link); job VMs get no external IP, egress is through Cloud NAT.
    pub subnetwork: String,
    /// The orchestrator's own service account: the identity the standard credential chain
    /// (Application Default Credentials) should resolve to, by attaching it to the orchestrator's
    /// host or by `gcloud auth application-default login --impersonate-service-account`. Job VMs
    /// get no service account at all, so no Google credential ever reaches a guest.
    pub service_account_email: String,
    /// The one guest image job VMs boot (`projects/P/global/images/NAME`).
    pub image: String,
    /// Every job VM's name starts with it (the IAM condition tests names): lowercase letter first,
    /// then lowercase letters, digits and `-`, at most 32 characters.
    pub instance_name_prefix: String,
    /// Label key carrying the owner on every job VM.
    pub owner_label_key: String,
    /// The owner label value the deployment was made for; the orchestrator's top-level
    /// `owner_tag` must equal it. VMs are labelled with the spec's owner.
    pub owner_label: String,
    /// Machine types the orchestrator may ask for; each must be in the catalog
    /// ([`catalog::lookup`]): `n2d-*` (SEV-SNP), `c3-*` (TDX), `a3-highgpu-1g` (TDX + H100).
    pub allowed_machine_types: Vec<String>,
    /// Test only: the Compute Engine base URL (default `https://compute.googleapis.com`); point it
    /// at the mock cloud. Plain `http` is accepted for loopback addresses only, and then no
    /// credential is sent (anonymous), so no token ever travels unencrypted.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Test only: retry and polling pace (default: [`RetryPolicy::default`]).
    #[serde(default)]
    pub retry: Option<RetrySettings>,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required key is empty.
    #[error("gcp: {key} must not be empty")]
    Empty {
        /// The key.
        key: &'static str,
    },
    /// A key's value does not have the form GCE (or the IAM condition) needs.
    #[error("gcp: {key} {value:?}: {reason}")]
    Malformed {
        /// The key.
        key: &'static str,
        /// The value as configured.
        value: String,
        /// What form it must have.
        reason: &'static str,
    },
    /// An allowed machine type is not a confidential type of the catalog.
    #[error(
        "gcp: allowed_machine_types: {name:?} is not a known confidential machine type \
         (n2d-standard/highmem/highcpu-N for SEV-SNP, c3-standard/highmem/highcpu-N for TDX, \
         a3-highgpu-1g for TDX with an H100)"
    )]
    UnknownMachineType {
        /// The type as configured.
        name: String,
    },
    /// The endpoint is not an https URL, nor an http URL on a loopback address.
    #[error("gcp: endpoint {endpoint:?} must be https://…, or http:// on a loopback address")]
    BadEndpoint {
        /// The endpoint as configured.
        endpoint: String,
    },
}

impl GcpProviderConfig {
    /// Checks every key and resolves the allowed machine types in the catalog.
    pub fn allowed_types(&self) -> Result<Vec<MachineType>, ConfigError> {
        let required = [
            ("project", &self.project),
            ("zone", &self.zone),
            ("network", &self.network),
            ("subnetwork", &self.subnetwork),
            ("service_account_email", &self.service_account_email),
            ("image", &self.image),
            ("instance_name_prefix", &self.instance_name_prefix),
            ("owner_label_key", &self.owner_label_key),
            ("owner_label", &self.owner_label),
        ];
        if let Some((key, _)) = required.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(ConfigError::Empty { key });
        }
        let malformed = |key, value: &str, reason| ConfigError::Malformed {
            key,
            value: value.into(),
            reason,
        };
        if !names::is_prefix(&self.instance_name_prefix) {
            return Err(malformed(
                "instance_name_prefix",
                &self.instance_name_prefix,
                "a lowercase letter, then lowercase letters, digits or -, at most 32 characters",
            ));
        }
        if !names::is_label(&self.owner_label_key, true) {
            return Err(malformed(
                "owner_label_key",
                &self.owner_label_key,
                "a lowercase letter, then lowercase letters, digits, _ or -, at most 63 characters",
            ));
        }
        if !names::is_label(&self.owner_label, false) {
            return Err(malformed(
                "owner_label",
                &self.owner_label,
                "lowercase letters, digits, _ or -, at most 63 characters",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            if !endpoint.starts_with("https://") && !self.plain_http() {
                return Err(ConfigError::BadEndpoint {
                    endpoint: endpoint.clone(),
                });
            }
        }
        if self.allowed_machine_types.is_empty() {
            return Err(ConfigError::Empty {
                key: "allowed_machine_types",
            });
        }
        self.allowed_machine_types
            .iter()
            .map(|t| {
                catalog::lookup(t)
                    .ok_or_else(|| ConfigError::UnknownMachineType { name: t.clone() })
            })
            .collect()
    }

    /// Whether the endpoint is plain http on a loopback address (the emulator): then calls are
    /// made without credentials.
    pub fn plain_http(&self) -> bool {
        let Some(rest) = self
            .endpoint
            .as_deref()
            .and_then(|e| e.strip_prefix("http://"))
        else {
            return false;
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.map(Into::into).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const YAML: &str = "
project: cdvm-jobs-prod
zone: europe-west4-a
network: https://www.googleapis.com/compute/v1/projects/cdvm-jobs-prod/global/networks/cdvm-jobs
subnetwork: https://www.googleapis.com/compute/v1/projects/cdvm-jobs-prod/regions/europe-west4/subnetworks/cdvm-jobs
service_account_email: cdvm-orchestrator@cdvm-jobs-prod.iam.gserviceaccount.com
image: projects/cdvm-images/global/images/cdvm-guest-1
instance_name_prefix: cdvm-orch-1-
owner_label_key: cdvm-owner
owner_label: orch-1
allowed_machine_types: [n2d-standard-2, c3-standard-4, a3-highgpu-1g]
";

    fn parsed() -> GcpProviderConfig {
        serde_yaml_ng::from_str(YAML).expect("parses")
    }

    #[test]
    fn parses_the_terraform_keys_and_refuses_others() {
        let cfg = parsed();
        assert_eq!(cfg.allowed_types().expect("known types").len(), 3);
        assert_eq!(cfg.retry_policy(), RetryPolicy::default());
        assert!(!cfg.plain_http());
        let extra = format!("{YAML}region: europe-west4\n");
        assert!(serde_yaml_ng::from_str::<GcpProviderConfig>(&extra).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let mut cfg = parsed();
        cfg.allowed_machine_types.push("e2-standard-2".into());
        let e = cfg.allowed_types().unwrap_err();
        assert_eq!(
            e,
            ConfigError::UnknownMachineType {
                name: "e2-standard-2".into()
            }
        );
        assert!(e.to_string().contains("confidential"), "{e}");

        let mut cfg = parsed();
        cfg.allowed_machine_types.clear();
        assert_eq!(
            cfg.allowed_types(),
            Err(ConfigError::Empty {
                key: "allowed_machine_types"
            })
        );

        let mut cfg = parsed();
        cfg.instance_name_prefix = "Cdvm_".into();
        assert!(matches!(
            cfg.allowed_types(),
            Err(ConfigError::Malformed {
                key: "instance_name_prefix",
                ..
            })
        ));

        let mut cfg = parsed();
        cfg.owner_label = "Orch 1".into();
        assert!(matches!(
            cfg.allowed_types(),
            Err(ConfigError::Malformed {
                key: "owner_label",
                ..
            })
        ));

        let mut cfg = parsed();
        cfg.image = " ".into();
        assert_eq!(
            cfg.allowed_types(),
            Err(ConfigError::Empty { key: "image" })
        );
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let mut cfg = parsed();
        for (endpoint, ok, plain) in [
            ("http://127.0.0.1:8080", true, true),
            ("http://localhost:1/", true, true),
            ("http://[::1]:9", true, true),
            ("https://compute.googleapis.com", true, false),
            ("http://compute.googleapis.com", false, false),
            ("http://10.0.0.1:80", false, false),
        ] {
            cfg.endpoint = Some(endpoint.into());
            assert_eq!(cfg.allowed_types().is_ok(), ok, "{endpoint}");
            assert_eq!(cfg.plain_http(), plain, "{endpoint}");
        }
    }
}
