//! The AWS backend's settings: the keys the Terraform module outputs (terraform/config-keys.yaml).

use cdvm_provider_api::retry::{RetryPolicy, RetrySettings};
use serde::Deserialize;

/// Settings of the AWS provider. Field names equal `terraform/aws` outputs, so
/// `terraform output -json` fills them one to one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsProviderConfig {
    /// Region of the job subnet.
    pub region: String,
    /// Private subnet job VMs are launched into.
    pub subnet_id: String,
    /// Security group with no inbound rules and egress TCP 443 only.
    pub security_group_id: String,
    /// The one AMI the orchestrator's role may launch (UEFI boot, the guest image).
    pub ami_id: String,
    /// Role to assume for launch/terminate rights; none = use the standard credential chain as is.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Tag key the role's IAM conditions check.
    pub owner_tag_key: String,
    /// Tag value every job VM carries; must equal the orchestrator's `owner_tag`.
    pub owner_tag: String,
    /// SEV-SNP instance types the role may launch (m6a/c6a/r6a sizes).
    pub allowed_instance_types: Vec<String>,
    /// EC2 endpoint override (an emulator such as moto server); none = the region's real endpoint.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Test only: retry pace (default: [`RetryPolicy::default`]).
    #[serde(default)]
    pub retry: Option<RetrySettings>,
}

impl AwsProviderConfig {
    /// The retry pace to use.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.map(Into::into).unwrap_or_default()
    }
}
