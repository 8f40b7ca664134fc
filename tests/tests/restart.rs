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

/// Issue 16, fault 2: a crash after a job's end was stored but before its feedback was published
/// used to leave the user with no answer at all (recovery skips ended jobs). The feedback is now
/// stored as owed with the end; the next start publishes it: one error feedback, recorded sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_failure_and_its_feedback_still_answers_the_user() {
    use cdvm_orchestrator::failpoint::points::AFTER_END_RECORDED;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = common::never_attesting_agent(dir.path());
    let opts = DeploymentOptions {
        deadlines: (3, 300, 300),
        agent_binary: Some(agent.clone()),
        failpoint: Some(AFTER_END_RECORDED.into()),
        ..DeploymentOptions::default()
    };
    let mut d = LocalDeployment::start(&state, &opts).await.unwrap();
    let url = d.relay.url().to_string();
    let request = submit_job(&d).await;
    assert!(
        d.wait_for_orchestrator_exit(Duration::from_secs(60)).await,
        "the orchestrator did not reach {AFTER_END_RECORDED}:\n{}",
        d.orchestrator_log()
    );
    let hex = request.id.to_hex();
    {
        let store = Store::open(&state.join("jobs.sqlite")).unwrap();
        assert_eq!(store.get(&hex).unwrap().unwrap().state, JobState::Failed);
        let (_, sent) = store.final_feedback(&hex).unwrap().expect("feedback owed");
        assert!(!sent, "the crash came before the feedback was published");
    }
    let before =
        common::dvm_feedback(&url, d.dvm.public_key(), request.id, Duration::from_secs(1)).await;
    assert!(
        !before
            .iter()
            .any(|f| f.status == Some(FeedbackStatus::Error)),
        "no answer was published before the crash: {before:?}"
    );

    d.set_failpoint(None);
    d.crash_and_restart().await.unwrap();
    let fb = common::dvm_feedback(
        &url,
        d.dvm.public_key(),
        request.id,
        Duration::from_secs(20),
    )
    .await;
    let errors: Vec<_> = fb
        .iter()
        .filter(|f| f.status == Some(FeedbackStatus::Error))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one answer: {fb:?}\n{}",
        d.orchestrator_log()
    );
    assert!(
        errors[0]
            .extra_info
            .as_deref()
            .unwrap_or("")
            .contains("waiting for attestation"),
        "the answer the crashed run owed, not a new one: {:?}",
        errors[0]
    );
    let mut sent = false;
    for _ in 0..50 {
        let store = Store::open(&state.join("jobs.sqlite")).unwrap();
        if store.final_feedback(&hex).unwrap().is_some_and(|(_, s)| s) {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "the owed feedback is recorded sent");
    common::assert_no_vm_left(&state).await;
    assert!(common::processes_mentioning(&agent.display().to_string()).is_empty());
}

/// Issue 16, fault 3: a crash between the guest's result and the store's `succeeded` used to make
/// recovery tell a user who already had the result that the job failed. Recovery now asks the
/// relays for the attested guest's result first and ends the job as the user saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_guests_result_ends_the_job_as_the_user_saw_it() {
    use cdvm_client::run_job;
    use cdvm_orchestrator::failpoint::points::AFTER_GUEST_RESULT;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let opts = DeploymentOptions {
        failpoint: Some(AFTER_GUEST_RESULT.into()),
        ..DeploymentOptions::default()
    };
    let mut d = LocalDeployment::start(&state, &opts).await.unwrap();
    let url = d.relay.url().to_string();
    let mut spec = common::sql_spec(&d, "n\n1\n2\n", "SELECT SUM(n) AS s FROM input");
    // The crashed orchestrator never confirms; the result is what matters here.
    spec.timeouts.destroyed = Duration::from_secs(1);
    let user = spec.user.public_key();
    // The user gets the result (the guest publishes it; the VM-destroyed confirmation cannot come).
    let outcome = run_job(spec, |_, _| {}).await;
    assert!(
        d.wait_for_orchestrator_exit(Duration::from_secs(30)).await,
        "the orchestrator did not reach {AFTER_GUEST_RESULT}: {outcome:?}\n{}",
        d.orchestrator_log()
    );
    // The request id: the user's job request in the store (the only job).
    let store = Store::open(&state.join("jobs.sqlite")).unwrap();
    let job = store
        .unfinished()
        .unwrap()
        .pop()
        .expect("the job is unfinished");
    assert_eq!(job.user, user.to_hex());
    drop(store);

    d.set_failpoint(None);
    d.crash_and_restart().await.unwrap();
    let id = cdvm_protocol::nostr::EventId::from_hex(&job.id).unwrap();
    let fb = common::dvm_feedback(&url, d.dvm.public_key(), id, Duration::from_secs(30)).await;
    assert!(
        fb.iter().any(|f| f.status == Some(FeedbackStatus::Success)),
        "recovery found the result: {fb:?}\n{}",
        d.orchestrator_log()
    );
    assert!(
        !fb.iter().any(|f| f.status == Some(FeedbackStatus::Error)),
        "no contradicting error: {fb:?}"
    );
    let store = Store::open(&state.join("jobs.sqlite")).unwrap();
    assert_eq!(
        store.get(&job.id).unwrap().unwrap().state,
        JobState::Succeeded
    );
    common::assert_no_vm_left(&state).await;
}
