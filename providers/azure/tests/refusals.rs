//! Specs the backend cannot serve are refused before any ARM call; quota and capacity failures
//! surface as `ProviderError::Capacity` and leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use cdvm_mockcloud::arm::{NO_CAPACITY_LOCATION, NO_QUOTA_LOCATION, NO_SKU_LOCATION};
use cdvm_mockcloud::config::FaultConfig;
use cdvm_provider_api::conformance::sample_spec;
use cdvm_provider_api::{JobTag, OwnerTag, Provider, ProviderError, VmClass};
use cdvm_provider_azure::AzureProvider;

fn spec(tee: &str, vcpus: u32, memory_mib: u32) -> cdvm_provider_api::VmSpec {
    let mut s = sample_spec(&OwnerTag("refusals".into()), &JobTag("f7".repeat(32)));
    s.tee = tee.into();
    s.class = VmClass { vcpus, memory_mib };
    s
}

fn refusal(result: Result<cdvm_provider_api::VmHandle, ProviderError>) -> String {
    match result {
        Err(ProviderError::InvalidSpec { provider, reason }) => {
            assert_eq!(provider, "azure");
            reason
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}

#[tokio::test]
async fn unservable_specs_are_refused_before_any_call() {
    let cloud = support::cloud(FaultConfig::default()).await;
    let snp_only = support::provider(&cloud, |c| {
        c.allowed_vm_sizes = vec!["Standard_DC2as_v5".into(), "Standard_DC4as_v5".into()];
    });
    let reason = refusal(snp_only.launch(&spec("tdx", 2, 1024)).await);
    assert!(reason.contains("tdx"), "{reason}");
    let reason = refusal(snp_only.launch(&spec("sev-snp", 8, 1024)).await);
    assert!(reason.contains("8 vCPUs"), "{reason}");
    let reason = refusal(snp_only.launch(&spec("sev-snp", 2, 64 * 1024)).await);
    assert!(reason.contains("65536 MiB"), "{reason}");
    let reason = refusal(snp_only.launch(&spec("sgx", 1, 256)).await);
    assert!(reason.contains("sgx"), "{reason}");
    assert_eq!(cloud.state.arm.puts(), 0, "no PUT may reach ARM");
    assert!(cloud.state.live().await.arm.is_empty());
}

#[tokio::test]
async fn unknown_sizes_in_the_config_are_refused_at_construction() {
    let mut cfg = support::config("http://127.0.0.1:9");
    cfg.allowed_vm_sizes.push("Standard_D2s_v5".into());
    match AzureProvider::with_credential(cfg, Arc::new(support::StaticToken)) {
        Err(ProviderError::InvalidSpec { reason, .. }) => {
            assert!(reason.contains("Standard_D2s_v5"), "{reason}")
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}

#[tokio::test]
async fn quota_and_capacity_errors_are_capacity_and_leave_nothing() {
    let cloud = support::cloud(FaultConfig {
        provisioning_delay_ms: 20,
        ..FaultConfig::default()
    })
    .await;
    for (location, code) in [
        (NO_CAPACITY_LOCATION, "AllocationFailed"),
        (NO_QUOTA_LOCATION, "OperationNotAllowed"),
        (NO_SKU_LOCATION, "SkuNotAvailable"),
    ] {
        let p = support::provider(&cloud, |c| c.location = location.into());
        match p.launch(&spec("sev-snp", 1, 256)).await {
            Err(ProviderError::Capacity { provider, reason }) => {
                assert_eq!(provider, "azure");
                assert!(reason.starts_with(code), "{location}: {reason}");
            }
            other => panic!("{location}: expected Capacity, got {other:?}"),
        }
        support::assert_nothing_left(&cloud).await;
    }
}
