//! The Azure backend passes the shared conformance suite against the ARM emulator, with and
//! without injected faults, and a launch raced against itself makes one VM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cdvm_mockcloud::config::FaultConfig;
use cdvm_provider_api::conformance::{self, sample_spec};
use cdvm_provider_api::{JobTag, OwnerTag, Provider};

#[tokio::test]
async fn passes_the_conformance_suite_under_faults() {
    let cloud = support::cloud(FaultConfig {
        seed: 11,
        error_rate: 0.15,
        throttle_rate: 0.15,
        provisioning_delay_ms: 200,
        lost_delete_rate: 0.3,
        fail_calls: vec![],
    })
    .await;
    let p = support::provider(&cloud, |_| {});
    conformance::run(&p, "faults", &sample_spec).await;
    assert!(
        cloud.state.faults.injected() > 0,
        "the run must actually have met faults"
    );
    support::assert_nothing_left(&cloud).await;
}

#[tokio::test]
async fn passes_the_conformance_suite_without_faults() {
    let cloud = support::cloud(FaultConfig::default()).await;
    let p = support::provider(&cloud, |_| {});
    conformance::run(&p, "plain", &sample_spec).await;
    assert_eq!(cloud.state.faults.injected(), 0);
    support::assert_nothing_left(&cloud).await;
}

#[tokio::test]
async fn concurrent_launches_of_one_job_make_one_vm() {
    let cloud = support::cloud(FaultConfig {
        provisioning_delay_ms: 50,
        ..FaultConfig::default()
    })
    .await;
    let p = support::provider(&cloud, |_| {});
    let spec = sample_spec(&OwnerTag("race".into()), &JobTag("e6".repeat(32)));
    let (a, b) = tokio::join!(p.launch(&spec), p.launch(&spec));
    let (a, b) = (a.expect("first launch"), b.expect("second launch"));
    assert_eq!(a.id, b.id);
    assert_eq!(cloud.state.live().await.arm, vec![a.id.0.clone()]);
    assert_eq!(p.list(&spec.owner).await.unwrap().len(), 1);
    p.destroy(&a.id).await.unwrap();
    support::assert_nothing_left(&cloud).await;
}
