//! No orphan: the orchestrator is killed while a job's VM runs; after restart the VM is destroyed
//! and the job ends with an error feedback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_orchestrator::store::{JobState, Store};
use cdvm_protocol::nostr::{Event, Keys};
use cdvm_protocol::{kinds, FeedbackStatus, JobRequestBuilder, TeeKind};

/// Publishes a text-stats request to the deployment's DVM from a fresh user.
async fn submit_job(d: &LocalDeployment) -> Event {
    let url = d.relay.url().to_string();
    let user = Keys::generate();
    let request = JobRequestBuilder::new(kinds::TEXT_STATS, d.dvm.public_key(), TeeKind::SevSnp)
        .relays(vec![url.clone()])
        .build()
        .unwrap()
        .sign_with_keys(&user)
        .unwrap();
    common::client(&url, &user)
        .await
        .send_event(&request)
        .await
        .unwrap();
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_with_a_live_vm_then_restart_leaves_no_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = common::never_attesting_agent(dir.path());
    let opts = DeploymentOptions {
        deadlines: (300, 300, 300),
        agent_binary: Some(agent.clone()),
        ..DeploymentOptions::default()
    };
    let mut d = LocalDeployment::start(&state, &opts).await.unwrap();
    let url = d.relay.url().to_string();
    let request = submit_job(&d).await;
    for _ in 0..100 {
        if common::vm_count(&state) == 1
            && !common::processes_mentioning(&agent.display().to_string()).is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(common::vm_count(&state), 1, "the job's VM is running");

    d.crash_and_restart().await.unwrap();

    let fb = common::dvm_feedback(
        &url,
        d.dvm.public_key(),
        request.id,
        Duration::from_secs(20),
    )
    .await;
    let error = fb
        .iter()
        .find(|f| f.status == Some(FeedbackStatus::Error))
        .unwrap_or_else(|| {
            panic!(
                "no error feedback after restart: {fb:?}\n{}",
                d.orchestrator_log()
            )
        });
    assert!(
        error
            .extra_info
            .as_deref()
            .unwrap_or("")
            .contains("restarted"),
        "{error:?}"
    );
    common::assert_no_vm_left(&state).await;
    assert!(common::processes_mentioning(&agent.display().to_string()).is_empty());
    let store = Store::open(&state.join("jobs.sqlite")).unwrap();
    let job = store.get(&request.id.to_hex()).unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.vm_destroyed);
}

/// The same with a real QEMU VM: the restarted orchestrator finds the QEMU process by its
/// `-name cdvm-<id>` marker and kills it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_with_a_live_qemu_vm_then_restart_leaves_no_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let opts = DeploymentOptions {
        deadlines: (300, 300, 300),
        qemu_image: Some(cdvm_provider_qemu::built_image_dir().unwrap_or_else(|e| panic!("{e}"))),
        ..DeploymentOptions::default()
    };
    let mut d = LocalDeployment::start(&state, &opts).await.unwrap();
    let url = d.relay.url().to_string();
    let request = submit_job(&d).await;
    let vms = cdvm_client::demo::qemu_vms_dir(&state);
    let qemu_running = || !common::processes_mentioning(&vms.display().to_string()).is_empty();
    for _ in 0..100 {
        if qemu_running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(qemu_running(), "the job's QEMU VM is running");

    d.crash_and_restart().await.unwrap();

    let fb = common::dvm_feedback(
        &url,
        d.dvm.public_key(),
        request.id,
        Duration::from_secs(20),
    )
    .await;
    assert!(
        fb.iter().any(|f| f.status == Some(FeedbackStatus::Error)),
        "no error feedback after restart: {fb:?}\n{}",
        d.orchestrator_log()
    );
    common::assert_no_vm_in(&vms).await;
    let store = Store::open(&state.join("jobs.sqlite")).unwrap();
    let job = store.get(&request.id.to_hex()).unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(job.vm_destroyed);
}
