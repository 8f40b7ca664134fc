//! Every stage has a deadline: a guest that never attests, or a user who never sends input, ends
//! with the VM destroyed and an error feedback to the user.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, ClientError, JobSpec, Timeouts};
use cdvm_protocol::nostr::{Filter, Keys, Kind};
use cdvm_protocol::{
    kinds, AttestationEvent, FeedbackStatus, InputBody, JobRequestBuilder, TeeKind,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_that_never_attests_is_destroyed_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = common::never_attesting_agent(dir.path());
    let opts = DeploymentOptions {
        deadlines: (3, 30, 30),
        agent_binary: Some(agent.clone()),
        ..DeploymentOptions::default()
    };
    let deployment = LocalDeployment::start(&state, &opts).await.unwrap();
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::TEXT_STATS,
        input: InputBody::TextStats {
            text: "never sent".into(),
        },
        policy: deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(30),
            ..Timeouts::default()
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let started = Instant::now();
    let verdict = run_job(spec, |_, _| {}).await;
    let elapsed = started.elapsed();
    match verdict {
        Err(ClientError::DvmError(reason)) => {
            assert!(
                reason.contains("deadline") && reason.contains("attestation"),
                "{reason}"
            );
            assert!(reason.contains("VM destroyed"), "{reason}");
        }
        other => panic!("expected the DVM's error feedback, got {other:?}"),
    }
    // The client heard of it long before its own 30 s attestation timeout.
    assert!(elapsed < Duration::from_secs(25), "took {elapsed:?}");
    common::assert_no_vm_left(&state).await;
    assert!(common::processes_mentioning(&agent.display().to_string()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_who_never_sends_input_gets_an_error_and_the_vm_is_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let opts = DeploymentOptions {
        deadlines: (60, 3, 30),
        ..DeploymentOptions::default()
    };
    let deployment = LocalDeployment::start(&state, &opts).await.unwrap();
    let url = deployment.relay.url().to_string();
    let user = Keys::generate();
    // A request and then silence: no input is ever sent.
    let request = JobRequestBuilder::new(
        kinds::TEXT_STATS,
        deployment.dvm.public_key(),
        TeeKind::SevSnp,
    )
    .relays(vec![url.clone()])
    .build()
    .unwrap()
    .sign_with_keys(&user)
    .unwrap();
    let c = common::client(&url, &user).await;
    c.send_event(&request).await.unwrap();
    let feedback = common::dvm_feedback(
        &url,
        deployment.dvm.public_key(),
        request.id,
        Duration::from_secs(40),
    )
    .await;
    let error = feedback
        .iter()
        .find(|f| f.status == Some(FeedbackStatus::Error))
        .unwrap_or_else(|| {
            panic!(
                "no error feedback: {feedback:?}\n{}",
                deployment.orchestrator_log()
            )
        });
    // One owner: the guest's input deadline, reported in the guest's words and relayed by the
    // orchestrator, whose own backstop (30 s later) never fires.
    let info = error.extra_info.clone().unwrap_or_default();
    assert!(
        info.starts_with("the guest reported an error: input deadline passed")
            && info.contains("within 3 s")
            && info.ends_with("VM destroyed"),
        "{info}"
    );
    assert_eq!(
        feedback
            .iter()
            .filter(|f| f.status == Some(FeedbackStatus::Error))
            .count(),
        1,
        "the failure is reported once: {feedback:?}"
    );
    // The user was told the deadline: the attestation announced it, 3 s after it was signed.
    let att = common::wait_for(
        &url,
        Filter::new()
            .kind(Kind::from(kinds::ATTESTATION))
            .event(request.id),
        Duration::from_secs(5),
        |_| true,
    )
    .await
    .expect("attestation on the relay");
    let parsed = AttestationEvent::from_event(&att).unwrap();
    assert_eq!(
        parsed.input_deadline.as_secs(),
        att.created_at.as_secs() + 3,
        "announced input deadline"
    );
    common::assert_no_vm_left(&state).await;
}
