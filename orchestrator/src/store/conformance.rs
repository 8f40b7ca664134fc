//! The contract every [`JobStore`] keeps, as one suite each implementation runs (as every
//! provider runs `cdvm_provider_api::conformance`): idempotent intake, the stage history, the
//! terminal step with its owed feedback, and what recovery reads back. It panics with the broken
//! rule's name.

use super::{JobState, JobStore};

fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// Runs every check on `store`, which must be empty.
pub async fn run(store: &dyn JobStore) {
    intake_is_idempotent(store).await;
    stages_are_recorded_in_order(store).await;
    the_end_and_its_feedback_are_one_step(store).await;
    recovery_reads_what_it_needs(store).await;
}

async fn intake_is_idempotent(store: &dyn JobStore) {
    let job = id(1);
    assert!(
        store
            .insert_accepted(&job, "u1", 5970)
            .await
            .expect("insert_accepted"),
        "first insert"
    );
    assert!(
        !store
            .insert_accepted(&job, "u2", 5971)
            .await
            .expect("insert_accepted"),
        "a resent request is already known"
    );
    let r = store.get(&job).await.expect("get").expect("recorded");
    assert_eq!(
        (r.user.as_str(), r.kind, r.state),
        ("u1", 5970, JobState::Accepted)
    );
    assert_eq!(
        store.history(&job).await.expect("history"),
        ["accepted"],
        "one accepted transition"
    );
    assert!(
        store.get(&id(99)).await.expect("get").is_none(),
        "unknown job"
    );
}

async fn stages_are_recorded_in_order(store: &dyn JobStore) {
    let job = id(2);
    store
        .insert_accepted(&job, "u", 5970)
        .await
        .expect("insert_accepted");
    store
        .transition(&job, JobState::Launching, None)
        .await
        .expect("transition");
    store.set_vm(&job, "vm-2").await.expect("set_vm");
    store
        .transition(&job, JobState::Booted, None)
        .await
        .expect("transition");
    assert!(
        store.guest_of(&job).await.expect("guest_of").is_none(),
        "no guest before attestation"
    );
    store
        .transition(&job, JobState::Attested, Some("guest abcd"))
        .await
        .expect("transition");
    store
        .transition(&job, JobState::Running, None)
        .await
        .expect("transition");
    let r = store.get(&job).await.expect("get").expect("recorded");
    assert_eq!(r.state, JobState::Running);
    assert_eq!(r.vm_id.as_deref(), Some("vm-2"));
    assert_eq!(
        r.detail.as_deref(),
        Some("guest abcd"),
        "a None detail keeps the last"
    );
    assert!(!r.vm_destroyed);
    assert_eq!(
        store.history(&job).await.expect("history"),
        ["accepted", "launching", "booted", "attested", "running"]
    );
    assert_eq!(
        store.guest_of(&job).await.expect("guest_of").as_deref(),
        Some("abcd")
    );
}

async fn the_end_and_its_feedback_are_one_step(store: &dyn JobStore) {
    let job = id(3);
    store
        .insert_accepted(&job, "u", 5970)
        .await
        .expect("insert_accepted");
    assert!(store
        .final_feedback(&job)
        .await
        .expect("final_feedback")
        .is_none());
    store
        .finish(
            &job,
            JobState::Failed,
            Some("deadline passed"),
            "{\"event\":1}",
        )
        .await
        .expect("finish");
    let r = store.get(&job).await.expect("get").expect("recorded");
    assert_eq!(r.state, JobState::Failed);
    assert_eq!(r.detail.as_deref(), Some("deadline passed"));
    assert_eq!(
        store.final_feedback(&job).await.expect("final_feedback"),
        Some(("{\"event\":1}".to_string(), false)),
        "recorded owed with the end"
    );
    assert!(store
        .owed()
        .await
        .expect("owed")
        .contains(&(job.clone(), "{\"event\":1}".to_string())));
    store.mark_sent(&job).await.expect("mark_sent");
    assert_eq!(
        store
            .final_feedback(&job)
            .await
            .expect("final_feedback")
            .map(|(_, sent)| sent),
        Some(true)
    );
    assert!(
        !store
            .owed()
            .await
            .expect("owed")
            .iter()
            .any(|(j, _)| j == &job),
        "sent is no longer owed"
    );
    assert_eq!(
        store
            .history(&job)
            .await
            .expect("history")
            .last()
            .map(String::as_str),
        Some("failed")
    );
}

async fn recovery_reads_what_it_needs(store: &dyn JobStore) {
    // Jobs 1 (accepted) and 2 (running) are unfinished, 3 (failed) is not; 4 succeeds now.
    let job = id(4);
    store
        .insert_accepted(&job, "u", 5971)
        .await
        .expect("insert_accepted");
    store
        .finish(&job, JobState::Succeeded, None, "{\"event\":4}")
        .await
        .expect("finish");
    store.mark_destroyed(&job).await.expect("mark_destroyed");
    assert!(
        store
            .get(&job)
            .await
            .expect("get")
            .expect("recorded")
            .vm_destroyed
    );
    let unfinished: Vec<String> = store
        .unfinished()
        .await
        .expect("unfinished")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        unfinished,
        [id(1), id(2)],
        "oldest first, terminal jobs excluded"
    );
    let owed: Vec<String> = store
        .owed()
        .await
        .expect("owed")
        .into_iter()
        .map(|(j, _)| j)
        .collect();
    assert_eq!(owed, [job], "only job 4's feedback is owed");
}
