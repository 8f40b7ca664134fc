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

/// The command lines of running processes that mention `needle`.
fn survivors(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
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
    let left = survivors(&dir.path().display().to_string());
    assert!(left.is_empty(), "{left:?}");
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

/// The reconciler's pass: everything listed for the owner is destroyed.
async fn reconcile(p: &ProcessProvider, owner: &OwnerTag) {
    for vm in p.list(owner).await.unwrap() {
        p.destroy(&vm.id).await.unwrap();
    }
}

/// Issue 16, fault 4: a crash at any step of destroy (or of create) leaves a state the
/// reconciler's next pass (list, then destroy what is listed) or the next start cleans up: no
/// folder and no process is left. Each state is what a crash after one step leaves.
#[tokio::test]
async fn every_partial_destroy_state_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let owner = OwnerTag("partial".into());
    let p = provider(dir.path());
    let vms = dir.path().join("state/vms");
    let count = || std::fs::read_dir(&vms).unwrap().count();
    let files = |id: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(vms.join(id))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    type Crash = fn(&std::path::Path);
    let crashes: [(&str, Crash); 4] = [
        // Before anything was removed (the process still runs).
        ("nothing removed yet", |_| {}),
        // The old order: the record went first, the other files stayed (the leak found).
        ("record removed, files left", |d| {
            std::fs::remove_file(d.join("meta.json")).unwrap();
        }),
        // The new order: everything but the record removed.
        ("files removed, record left", |d| {
            for e in std::fs::read_dir(d).unwrap() {
                let path = e.unwrap().path();
                if path.file_name().unwrap() != "meta.json" {
                    if path.is_dir() {
                        std::fs::remove_dir_all(&path).unwrap();
                    } else {
                        std::fs::remove_file(&path).unwrap();
                    }
                }
            }
        }),
        // Only the empty folder left.
        ("empty folder left", |d| {
            for e in std::fs::read_dir(d).unwrap() {
                let path = e.unwrap().path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).unwrap();
                } else {
                    std::fs::remove_file(&path).unwrap();
                }
            }
        }),
    ];
    for (i, (name, crash)) in crashes.iter().enumerate() {
        let vm = p
            .launch(&spec(&owner, &JobTag(format!("{i:02}").repeat(32))))
            .await
            .unwrap();
        assert!(files(&vm.id.0).contains(&"meta.json".to_string()), "{name}");
        if i > 0 {
            // Destroy kills before it removes anything: these crashes come after the kill.
            let meta: serde_json::Value = serde_json::from_slice(
                &std::fs::read(vms.join(&vm.id.0).join("meta.json")).unwrap(),
            )
            .unwrap();
            let pgid = meta["pid"].as_u64().unwrap();
            std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status()
                .unwrap();
            // ... and releases the VM's configfs-tsm mount (when FUSE is there) first of all.
            let _ = cdvm_tsm_fuse::detach_stale(&vms.join(&vm.id.0).join("tsm"));
        }
        crash(&vms.join(&vm.id.0));
        reconcile(&p, &owner).await;
        assert_eq!(count(), 0, "{name}: a VM folder is left");
        assert_eq!(p.status(&vm.id).await.unwrap(), VmState::Gone, "{name}");
    }
    // A create that crashed before its folder was renamed into place: the next start removes it.
    std::fs::create_dir_all(vms.join(".new-proc-00")).unwrap();
    std::fs::write(vms.join(".new-proc-00/bootstrap.json"), "{}").unwrap();
    std::fs::write(vms.join(".new-proc-00/meta.json"), "{}").unwrap();
    assert!(
        p.list(&owner).await.unwrap().is_empty(),
        "staging is never listed"
    );
    drop(p);
    let again = provider(dir.path());
    assert_eq!(count(), 0, "staging folder removed at start");
    reconcile(&again, &owner).await;
    // No process of this state folder survives.
    let left = survivors(&dir.path().display().to_string());
    assert!(left.is_empty(), "{left:?}");
}
