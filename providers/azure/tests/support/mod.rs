//! What the Azure backend tests share: a static-token credential, the emulator, a fast config.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::time::{Duration, OffsetDateTime};
use cdvm_mockcloud::config::{FaultConfig, MockCloudConfig};
use cdvm_mockcloud::MockCloud;
use cdvm_provider_azure::{AzureProvider, AzureProviderConfig, RetrySettings};

/// The emulator's subscription and group.
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
pub const GROUP: &str = "cdvm-jobs";
pub const SUBNET: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/cdvm-base/providers/Microsoft.Network/virtualNetworks/cdvm/subnets/jobs";
pub const IMAGE: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/cdvm-base/providers/Microsoft.Compute/galleries/cdvm/images/guest/versions/1.0.0";
pub const OWNER_KEY: &str = "cdvm-owner";

/// A fixed bearer token: the test-only credential.
#[derive(Debug)]
pub struct StaticToken;

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            "test-token",
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

/// Millisecond waits, and enough attempts to ride out the injected faults.
pub fn fast_retry() -> RetrySettings {
    RetrySettings {
        attempts: 12,
        base_ms: 1,
        max_ms: 10,
    }
}

/// A config pointing at `endpoint`, SEV-SNP and TDX sizes allowed.
pub fn config(endpoint: &str) -> AzureProviderConfig {
    AzureProviderConfig {
        subscription_id: SUBSCRIPTION.into(),
        location: "westeurope".into(),
        resource_group: GROUP.into(),
        subnet_id: SUBNET.into(),
        identity_client_id: None,
        image_id: IMAGE.into(),
        owner_tag_key: OWNER_KEY.into(),
        owner_tag: "tests".into(),
        allowed_vm_sizes: vec![
            "Standard_DC2as_v5".into(),
            "Standard_DC4as_v5".into(),
            "Standard_DC2es_v5".into(),
        ],
        endpoint: Some(endpoint.into()),
        retry: Some(fast_retry()),
    }
}

/// The emulator with these faults.
pub async fn cloud(faults: FaultConfig) -> MockCloud {
    MockCloud::start(MockCloudConfig {
        faults,
        ..MockCloudConfig::default()
    })
    .await
    .expect("mock cloud starts")
}

/// The backend against `cloud`, its config adjusted by `adjust`.
pub fn provider(cloud: &MockCloud, adjust: impl FnOnce(&mut AzureProviderConfig)) -> AzureProvider {
    let mut cfg = config(&cloud.base_url);
    adjust(&mut cfg);
    AzureProvider::with_credential(cfg, Arc::new(StaticToken)).expect("provider")
}

/// The emulator holds nothing: no VM, no NIC, no guest.
pub async fn assert_nothing_left(cloud: &MockCloud) {
    let live = cloud.state.live().await;
    assert!(live.arm.is_empty(), "VMs left: {:?}", live.arm);
    assert_eq!(live.guests, 0, "guests left");
    assert!(
        cloud.state.arm.live_nics().is_empty(),
        "NICs left: {:?}",
        cloud.state.arm.live_nics()
    );
}
