//! With booting configured, a confidential SEV-SNP VM boots a guest that gets its bootstrap from
//! the emulated Azure metadata service; deleting the VM halts it, and a guest that powers off by
//! itself leaves the VM stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use cdvm_mockcloud::config::{BootConfig, FaultConfig, MockCloudConfig};
use cdvm_mockcloud::MockCloud;
use cdvm_provider_api::conformance::sample_spec;
use cdvm_provider_api::metadata::{MetadataService, AZURE_IMDS_API_VERSION};
use cdvm_provider_api::{JobTag, OwnerTag, Provider, VmState};

/// A stand-in agent that records its arguments, then stays up or powers off after a moment.
fn agent(dir: &Path, stays_up: bool) -> PathBuf {
    let path = dir.join("agent.sh");
    let args = dir.join("args");
    let tail = if stays_up {
        "sleep 600 &\nwait\n"
    } else {
        "sleep 0.3\n"
    };
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n{tail}", args.display()),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn booting_cloud(dir: &Path, stays_up: bool) -> MockCloud {
    MockCloud::start(MockCloudConfig {
        faults: FaultConfig {
            provisioning_delay_ms: 20,
            ..FaultConfig::default()
        },
        boot: Some(BootConfig {
            agent_binary: agent(dir, stays_up),
            state_dir: dir.join("state"),
        }),
        ..MockCloudConfig::default()
    })
    .await
    .unwrap()
}

async fn guests(cloud: &MockCloud) -> usize {
    let booter = cloud.state.booter.as_ref().expect("booting configured");
    booter.guests(MetadataService::Azure).await.len()
}

#[tokio::test]
async fn a_confidential_snp_vm_boots_from_its_user_data_and_delete_halts_it() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = booting_cloud(dir.path(), true).await;
    let p = support::provider(&cloud, |_| {});
    let spec = sample_spec(&OwnerTag("boot".into()), &JobTag("c1".repeat(32)));
    let vm = p.launch(&spec).await.unwrap();
    assert_eq!(guests(&cloud).await, 1, "the VM booted a guest");
    assert_eq!(p.status(&vm.id).await.unwrap(), VmState::Running);

    // The guest's metadata service serves the user data: base64 of the bootstrap JSON.
    let user_data = reqwest::Client::new()
        .get(format!(
            "{}/metadata/azure/{}/metadata/instance/compute/userData?api-version={AZURE_IMDS_API_VERSION}&format=text",
            cloud.base_url, vm.id
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let json = base64::engine::general_purpose::STANDARD
        .decode(user_data)
        .unwrap();
    let bootstrap: cdvm_provider_api::Bootstrap = serde_json::from_slice(&json).unwrap();
    assert_eq!(bootstrap, spec.bootstrap);
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert!(
        args.contains(&format!(
            "--bootstrap-from azure --metadata-endpoint {}/metadata/azure/{}",
            cloud.base_url, vm.id
        )),
        "{args}"
    );

    p.destroy(&vm.id).await.unwrap();
    assert_eq!(guests(&cloud).await, 0, "delete halted the guest");
    support::assert_nothing_left(&cloud).await;
}

#[tokio::test]
async fn a_guest_that_powers_off_leaves_the_vm_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = booting_cloud(dir.path(), false).await;
    let p = support::provider(&cloud, |_| {});
    let vm = p
        .launch(&sample_spec(
            &OwnerTag("boot".into()),
            &JobTag("d2".repeat(32)),
        ))
        .await
        .unwrap();
    let mut state = p.status(&vm.id).await.unwrap();
    for _ in 0..100 {
        if matches!(state, VmState::Exited { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        state = p.status(&vm.id).await.unwrap();
    }
    assert_eq!(
        state,
        VmState::Exited {
            detail: "VM stopped".into()
        }
    );
    p.destroy(&vm.id).await.unwrap();
    support::assert_nothing_left(&cloud).await;
}

#[tokio::test]
async fn tdx_vms_are_records_only() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = booting_cloud(dir.path(), true).await;
    let p = support::provider(&cloud, |_| {});
    let mut spec = sample_spec(&OwnerTag("boot".into()), &JobTag("e3".repeat(32)));
    spec.tee = "tdx".into();
    let vm = p.launch(&spec).await.unwrap();
    assert_eq!(
        guests(&cloud).await,
        0,
        "the process provider simulates SEV-SNP only"
    );
    assert_eq!(p.status(&vm.id).await.unwrap(), VmState::Running);
    p.destroy(&vm.id).await.unwrap();
    support::assert_nothing_left(&cloud).await;
}
