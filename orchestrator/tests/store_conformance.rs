//! The embedded SQLite store passes the job-store conformance suite (the suite any other engine
//! must pass too), on a fresh file and again after it is reopened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cdvm_orchestrator::store::{conformance, JobState, JobStore, Store};

#[tokio::test]
async fn sqlite_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.sqlite");
    let store = Store::open(&path).unwrap();
    conformance::run(&store).await;
    drop(store);
    // Durable: a reopened file holds the same.
    let again = Store::open(&path).unwrap();
    let job = "02".repeat(32);
    assert_eq!(
        JobStore::get(&again, &job).await.unwrap().unwrap().state,
        JobState::Running
    );
    assert_eq!(JobStore::owed(&again).await.unwrap().len(), 1);
}
