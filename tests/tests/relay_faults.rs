//! Relays that forget (issue 16, fault 9): an in-memory relay restarted while a job is being
//! accepted loses the request, which the guest fetches by id. The orchestrator keeps the signed
//! request and publishes it again until the guest attests, so the job still runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, Stage};
use cdvm_protocol::FeedbackStatus;

/// The real agent, started `secs` late: the relay restart happens before the guest asks.
fn late_agent(dir: &std::path::Path, secs: u32) -> std::path::PathBuf {
    let agent = cdvm_client::demo::sibling_binary("cdvm-agent").unwrap();
    let path = dir.join("late-agent.sh");
    std::fs::write(
        &path,
        format!("#!/bin/sh\nsleep {secs}\nexec {} \"$@\"\n", agent.display()),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_restarted_with_empty_memory_during_acceptance_loses_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let opts = DeploymentOptions {
        agent_binary: Some(late_agent(dir.path(), 3)),
        ..DeploymentOptions::default()
    };
    let mut d = LocalDeployment::start(&state, &opts).await.unwrap();
    let spec = common::sql_spec(&d, "n\n20\n22\n", "SELECT SUM(n) AS s FROM input");
    let (accepted_tx, accepted_rx) = tokio::sync::oneshot::channel();
    let mut accepted_tx = Some(accepted_tx);
    let job = tokio::spawn(async move {
        run_job(spec, move |stage, _| {
            if let Stage::Dvm {
                status: FeedbackStatus::Processing,
                ..
            } = stage
            {
                if let Some(tx) = accepted_tx.take() {
                    let _ = tx.send(());
                }
            }
        })
        .await
    });
    // The DVM accepted the job; its guest starts in 3 s. The relay forgets everything now.
    tokio::time::timeout(Duration::from_secs(30), accepted_rx)
        .await
        .expect("the DVM acknowledged the job")
        .unwrap();
    d.restart_relay().await.unwrap();
    let outcome = job.await.unwrap().unwrap_or_else(|e| {
        panic!(
            "the job was lost with the relay's memory: {e}\n{}",
            d.orchestrator_log()
        )
    });
    assert_eq!(outcome.output, "s\n42\n");
    common::assert_no_vm_left(&state).await;
}
