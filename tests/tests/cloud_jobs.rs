//! A confidential job end to end through each cloud backend, against the emulators: the real
//! orchestrator process runs the AWS backend (aws-sdk-ec2) against moto server behind the mock
//! cloud's proxy, or the GCP / Azure backend against the mock cloud; the emulator boots the agent
//! locally, which reads its bootstrap from that cloud's emulated metadata service, attests through
//! a simulated secure processor, and talks to the user over a real relay. Afterwards nothing is
//! left in the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use cdvm_client::cloud_emulators::{Cloud, Emulators};
use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, JobSpec, Timeouts};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::{kinds, InputBody};

fn moto_server() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/moto-venv/bin/moto_server")
}

async fn job_through(cloud: Cloud) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let emulators = Emulators::start(cloud, &state, &moto_server(), "cdvm-demo")
        .unwrap_or_else(|e| panic!("{cloud:?} emulators: {e}"));
    let opts = DeploymentOptions {
        cloud: Some(emulators.target.clone()),
        ..DeploymentOptions::default()
    };
    let mut deployment = LocalDeployment::start(&state, &opts)
        .await
        .expect("deployment starts");
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: "city,temp\noslo,3\nrome,17\noslo,5\n".into(),
            query: "SELECT city, AVG(temp) AS t FROM input GROUP BY city ORDER BY city".into(),
        },
        policy: deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(90),
            result: Duration::from_secs(60),
            destroyed: Duration::from_secs(30),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let outcome = match run_job(spec, |_, _| {}).await {
        Ok(o) => o,
        Err(e) => panic!(
            "{cloud:?} job failed: {e}\n--- orchestrator log ---\n{}\n--- mock cloud log ---\n{}",
            deployment.orchestrator_log(),
            std::fs::read_to_string(state.join("mockcloud.log")).unwrap_or_default()
        ),
    };
    assert_eq!(outcome.output, "city,t\noslo,4\nrome,17\n");
    common::assert_announced(
        deployment.relay.url(),
        &outcome,
        deployment.dvm.public_key(),
    )
    .await;
    assert!(
        outcome.claims.simulated,
        "the emulators' TEE is simulated and must say so"
    );
    // The orchestrator destroyed the VM: the emulator has no instance and no guest left.
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = emulators.leftovers().unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        left, 0,
        "{cloud:?}: instances or guests left in the emulator"
    );
    deployment.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_through_aws_on_moto() {
    job_through(Cloud::Aws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_through_gcp_on_the_mock_cloud() {
    job_through(Cloud::Gcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_through_azure_on_the_mock_cloud() {
    job_through(Cloud::Azure).await;
}

/// A cloud out of capacity: the user gets the cloud's reason as NIP-90 error feedback, nothing is
/// launched and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capacity_reaches_the_user_as_error_feedback() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut emulators = Emulators::start(Cloud::Gcp, &state, &moto_server(), "cdvm-demo").unwrap();
    // The mock cloud answers ZONE_RESOURCE_POOL_EXHAUSTED for zones named `exhausted-…`.
    emulators.target.provider_yaml = emulators
        .target
        .provider_yaml
        .replace("\"europe-west4-a\"", "\"exhausted-europe-west4-a\"");
    let opts = DeploymentOptions {
        cloud: Some(emulators.target.clone()),
        ..DeploymentOptions::default()
    };
    let deployment = LocalDeployment::start(&state, &opts).await.unwrap();
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: "a\n1\n".into(),
            query: "SELECT a FROM input".into(),
        },
        policy: deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(60),
            result: Duration::from_secs(30),
            destroyed: Duration::from_secs(10),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let err = run_job(spec, |_, _| {})
        .await
        .expect_err("no VM can be launched");
    let text = err.to_string();
    assert!(
        text.contains("no capacity") && text.contains("ZONE_RESOURCE_POOL_EXHAUSTED"),
        "the user must hear why: {text}"
    );
    assert_eq!(emulators.leftovers().unwrap(), 0);
}
