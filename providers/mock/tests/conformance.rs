//! The process provider passes the shared provider conformance suite, and its VMs really are
//! processes that destroy kills.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use cdvm_provider_api::{conformance, JobTag, OwnerTag, Provider, VmState};
use cdvm_provider_mock::{dev_policy_path, ProcessProvider, ProcessProviderConfig};

use cdvm_provider_api::conformance::sample_spec as spec;

/// A stand-in agent that just stays up (the suite tests VM lifecycle, not the guest).
fn sleeper(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("agent.sh");
    std::fs::write(&path, "#!/bin/sh\nsleep 600 &\nwait\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn provider(dir: &std::path::Path) -> ProcessProvider {
    ProcessProvider::new(ProcessProviderConfig {
        state_dir: dir.join("state"),
        agent_binary: sleeper(dir),
        platform: Default::default(),
        models_dir: None,
        inference_threads: None,
    })
    .unwrap()
}

#[tokio::test]
async fn process_provider_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    conformance::run(&p, "conf", &spec).await;
}

#[tokio::test]
async fn destroy_kills_the_process_group_and_removes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path());
    let vm = p
        .launch(&spec(&OwnerTag("o".into()), &JobTag("ab".repeat(32))))
        .await
        .unwrap();
    assert_eq!(p.status(&vm.id).await.unwrap(), VmState::Running);
    let vms = dir.path().join("state/vms");
    assert_eq!(std::fs::read_dir(&vms).unwrap().count(), 1);
    p.destroy(&vm.id).await.unwrap();
    assert_eq!(
        std::fs::read_dir(&vms).unwrap().count(),
        0,
        "VM folder removed"
    );
    // No process of this provider's state folder survives (the sleeper's child included).
    let needle = dir.path().display().to_string();
    let survivors: Vec<_> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect();
    assert!(survivors.is_empty(), "{survivors:?}");
}

#[tokio::test]
async fn a_restarted_provider_finds_and_destroys_earlier_vms() {
    let dir = tempfile::tempdir().unwrap();
    let owner = OwnerTag("restart".into());
    let vm = provider(dir.path())
        .launch(&spec(&owner, &JobTag("cd".repeat(32))))
        .await
        .unwrap();
    // A new provider instance on the same state folder (an orchestrator restart).
    let again = provider(dir.path());
    let listed = again.list(&owner).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, vm.id);
    again.destroy(&vm.id).await.unwrap();
    assert_eq!(again.status(&vm.id).await.unwrap(), VmState::Gone);
}

#[test]
fn the_dev_policy_trusts_only_the_simulated_root_and_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let _p = provider(dir.path());
    let policy =
        cdvm_attestation::Policy::load(&dev_policy_path(&dir.path().join("state"))).unwrap();
    assert_eq!(policy.name, "development-simulated");
    assert!(policy.trusts_simulated());
    assert_eq!(policy.roots.len(), 1);
    assert_eq!(policy.measurements.len(), 1);
}
