//! The orchestrator's `provider: { azure: … }` section: the keys of terraform/config-keys.yaml
//! (filled 1:1 from `terraform output -json`), plus two optional test-only keys.

pub use cdvm_provider_api::retry::RetrySettings;

use cdvm_provider_api::retry::RetryPolicy;
use serde::Deserialize;

use crate::sizes::{self, VmSize};

/// The Resource Manager endpoint of Azure's public cloud.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";

/// Settings of the Azure backend.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureProviderConfig {
    /// Subscription of the jobs resource group.
    pub subscription_id: String,
    /// Region of the VNet and the job VMs (`westeurope`).
    pub location: String,
    /// The only resource group the identity may write to; job VMs and NICs live there.
    pub resource_group: String,
    /// Subnet resource id job NICs are created in (no public IP is ever attached).
    pub subnet_id: String,
    /// Client id of the orchestrator's user-assigned managed identity. Absent: the developer-tools
    /// chain (Azure CLI, then Azure Developer CLI) is used instead, for runs outside Azure.
    #[serde(default)]
    pub identity_client_id: Option<String>,
    /// The gallery image version job VMs boot (resource id).
    pub image_id: String,
    /// Tag key carrying the owner (the Azure Policy checks it).
    pub owner_tag_key: String,
    /// The owner tag value the Azure Policy demands; the orchestrator checks that its own
    /// top-level `owner_tag` equals it. VMs are tagged with the spec's owner.
    pub owner_tag: String,
    /// Confidential sizes the Azure Policy allows; each must be in the catalog ([`sizes::CATALOG`]).
    pub allowed_vm_sizes: Vec<String>,
    /// Test only: the Resource Manager base URL (default [`DEFAULT_ENDPOINT`]); point it at the
    /// mock cloud. Plain `http` is accepted for loopback addresses only.
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
    #[error("azure: {key} must not be empty")]
    Empty {
        /// The key.
        key: &'static str,
    },
    /// An allowed size is not a confidential size of the catalog.
    #[error(
        "azure: allowed_vm_sizes: {size:?} is not a known confidential VM size \
         (Standard_DC/EC<n>as_v5 for SEV-SNP, Standard_DC/EC<n>es_v5 for TDX, \
         Standard_NCC40ads_H100_v5)"
    )]
    UnknownSize {
        /// The size as configured.
        size: String,
    },
    /// The endpoint is not a URL.
    #[error("azure: endpoint {endpoint:?} is not an http(s) URL")]
    BadEndpoint {
        /// The endpoint as configured.
        endpoint: String,
    },
}

impl AzureProviderConfig {
    /// Checks the keys (non-empty, endpoint an http(s) URL) and resolves the allowed sizes in
    /// the catalog.
    pub fn allowed_sizes(&self) -> Result<Vec<&'static VmSize>, ConfigError> {
        let required = [
            ("subscription_id", &self.subscription_id),
            ("location", &self.location),
            ("resource_group", &self.resource_group),
            ("subnet_id", &self.subnet_id),
            ("image_id", &self.image_id),
            ("owner_tag_key", &self.owner_tag_key),
            ("owner_tag", &self.owner_tag),
        ];
        if let Some((key, _)) = required.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(ConfigError::Empty { key });
        }
        if let Some(endpoint) = &self.endpoint {
            let url = url::Url::parse(endpoint).ok();
            if !url.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
                return Err(ConfigError::BadEndpoint {
                    endpoint: endpoint.clone(),
                });
            }
        }
        if self.allowed_vm_sizes.is_empty() {
            return Err(ConfigError::Empty {
                key: "allowed_vm_sizes",
            });
        }
        self.allowed_vm_sizes
            .iter()
            .map(|s| sizes::lookup(s).ok_or_else(|| ConfigError::UnknownSize { size: s.clone() }))
            .collect()
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.map(Into::into).unwrap_or_default()
    }

    /// The Resource Manager base URL in force.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "
subscription_id: 00000000-0000-0000-0000-000000000000
location: westeurope
resource_group: cdvm-jobs
subnet_id: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/cdvm-base/providers/Microsoft.Network/virtualNetworks/cdvm/subnets/jobs
identity_client_id: 11111111-1111-1111-1111-111111111111
image_id: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/cdvm-base/providers/Microsoft.Compute/galleries/cdvm/images/guest/versions/1.0.0
owner_tag_key: cdvm-owner
owner_tag: orchestrator-1
allowed_vm_sizes: [Standard_DC2as_v5, Standard_DC2es_v5, Standard_NCC40ads_H100_v5]
";

    #[test]
    fn parses_the_terraform_keys_and_refuses_others() {
        let cfg: AzureProviderConfig = serde_yaml_ng::from_str(YAML).expect("parses");
        assert_eq!(cfg.allowed_sizes().expect("known sizes").len(), 3);
        assert_eq!(cfg.endpoint(), DEFAULT_ENDPOINT);
        assert_eq!(cfg.retry_policy(), RetryPolicy::default());
        let extra = format!("{YAML}zone: '1'\n");
        assert!(serde_yaml_ng::from_str::<AzureProviderConfig>(&extra).is_err());
    }

    #[test]
    fn unknown_sizes_and_empty_keys_are_refused() {
        let mut cfg: AzureProviderConfig = serde_yaml_ng::from_str(YAML).expect("parses");
        cfg.allowed_vm_sizes.push("Standard_D2s_v5".into());
        assert_eq!(
            cfg.allowed_sizes(),
            Err(ConfigError::UnknownSize {
                size: "Standard_D2s_v5".into()
            })
        );
        let msg = cfg.allowed_sizes().expect_err("refused").to_string();
        assert!(msg.contains("Standard_D2s_v5") && msg.contains("confidential"));
        cfg.allowed_vm_sizes.clear();
        assert_eq!(
            cfg.allowed_sizes(),
            Err(ConfigError::Empty {
                key: "allowed_vm_sizes"
            })
        );
        cfg.allowed_vm_sizes = vec!["Standard_DC2as_v5".into()];
        cfg.endpoint = Some("mailto:ops@example.com".into());
        assert!(matches!(
            cfg.allowed_sizes(),
            Err(ConfigError::BadEndpoint { .. })
        ));
        cfg.image_id = " ".into();
        assert_eq!(
            cfg.allowed_sizes(),
            Err(ConfigError::Empty { key: "image_id" })
        );
    }
}
