//! The whole job, end to end, over a real relay with the real orchestrator and agent processes,
//! and the canary property: the user's secret appears nowhere the operator can look.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, JobSpec, Timeouts};
use cdvm_orchestrator::store::{JobState, Store};
use cdvm_protocol::nostr::{JsonUtil, Keys, Kind};
use cdvm_protocol::{kinds, InputBody};

fn canary(label: &str) -> String {
    let bytes: [u8; 16] = rand_bytes();
    format!("CANARY{label}{}", hex::encode(bytes))
}

fn rand_bytes() -> [u8; 16] {
    let k = Keys::generate();
    let mut out = [0u8; 16];
    out.copy_from_slice(&k.secret_key().as_secret_bytes()[..16]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_sql_job_end_to_end_and_the_canary_stays_secret() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let opts = DeploymentOptions {
        // Log as much as the orchestrator can: the canary must not be in it at any level.
        log_filter: "trace".into(),
        ..DeploymentOptions::default()
    };
    let mut deployment = LocalDeployment::start(&state, &opts)
        .await
        .expect("deployment starts");

    let secret_row = canary("ROW");
    let secret_query = canary("QUERY");
    let table = format!("name,dept,salary\nann,eng,120\nbob,eng,100\n{secret_row},ops,90\n");
    let query = format!("SELECT dept, COUNT(*) AS n, SUM(salary) AS total, MAX(name) AS top FROM input GROUP BY dept ORDER BY dept -- {secret_query}");
    let mut stages = Vec::new();
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: table.into(),
            query,
        },
        policy: deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(60),
            result: Duration::from_secs(60),
            destroyed: Duration::from_secs(20),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let outcome = run_job(spec, |s, _| stages.push(format!("{s:?}"))).await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => panic!(
            "job failed: {e}\n--- orchestrator log ---\n{}",
            deployment.orchestrator_log()
        ),
    };

    // The result is right, and came from an attested (simulated) guest.
    assert_eq!(outcome.media_type, "text/csv");
    assert_eq!(
        outcome.output,
        format!("dept,n,total,top\neng,2,220,bob\nops,1,90,{secret_row}\n")
    );
    assert!(
        outcome.claims.simulated,
        "the process provider's TEE is simulated and must say so"
    );
    assert_eq!(outcome.claims.policy, "development-simulated");
    assert!(
        outcome.vm_destroyed,
        "the DVM confirms the VM's destruction"
    );
    // The simulated guest ran the hardware code path (configfs-tsm over FUSE) where it can.
    let interface = if cfg!(fuse_available) {
        "configfs-tsm"
    } else {
        "sim-socket"
    };
    assert!(
        stages.iter().any(|s| s.starts_with("Attested")
            && s.contains(&format!("interface: Some(\"{interface}\")"))),
        "the attestation names the {interface} interface: {stages:?}"
    );
    let order: Vec<&str> = stages
        .iter()
        .map(|s| s.split([' ', '{', '(']).next().unwrap_or(""))
        .collect();
    for stage in [
        "Submitted",
        "Attested",
        "InputSent",
        "Running",
        "ResultReceived",
        "VmDestroyed",
    ] {
        assert!(
            order.contains(&stage),
            "stage {stage} missing from {order:?}"
        );
    }
    common::assert_announced(
        deployment.relay.url(),
        &outcome,
        deployment.dvm.public_key(),
    )
    .await;
    common::assert_no_vm_left(&state).await;

    // The store went through every stage, write-ahead, and ended in success.
    let store = Store::open(&state.join("jobs.sqlite")).unwrap();
    let job = store
        .get(&outcome.request.to_hex())
        .unwrap()
        .expect("job recorded");
    assert_eq!(job.state, JobState::Succeeded);
    assert!(job.vm_destroyed);
    assert_eq!(
        store.history(&outcome.request.to_hex()).unwrap(),
        [
            "accepted",
            "launching",
            "booted",
            "attested",
            "running",
            "succeeded"
        ]
    );
    drop(store);
    deployment.stop();

    // Canary: not in the orchestrator's log (at trace level), files, or any event on the relay.
    let log = deployment.orchestrator_log();
    assert!(
        log.contains(&outcome.request.to_hex()),
        "the log is real and mentions the job"
    );
    for secret in [&secret_row, &secret_query] {
        assert!(
            !log.contains(secret.as_str()),
            "canary in the orchestrator log"
        );
        for file in common::files_under(&state) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "canary in {}",
                file.display()
            );
        }
    }
    let events = common::all_events(deployment.relay.url()).await;
    let seen: std::collections::BTreeSet<u16> = events.iter().map(|e| e.kind.as_u16()).collect();
    for kind in [
        kinds::SQL,
        kinds::ATTESTATION,
        1059,
        kinds::SQL + 1000,
        kinds::JOB_FEEDBACK,
        kinds::HANDLER_INFO,
    ] {
        assert!(
            seen.contains(&kind),
            "kind {kind} missing from relay traffic {seen:?}"
        );
    }
    assert!(events.iter().any(|e| e.kind == Kind::GiftWrap));
    for event in &events {
        let json = event.as_json();
        assert!(
            !json.contains(&secret_row) && !json.contains(&secret_query),
            "canary on the relay in {json}"
        );
    }
}

/// A query that fails in the guest (docs/protocol.md §5.6): the user gets the guest's message,
/// encrypted; the operator and the relay learn only that the job failed and its class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_query_ends_in_an_error_that_names_only_its_class() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let deployment = LocalDeployment::start(&state, &DeploymentOptions::default())
        .await
        .expect("deployment starts");
    let secret = canary("FAILING");
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: format!("name\n{secret}\n").into(),
            // The table is `input`; `t` does not exist.
            query: format!("SELECT name FROM t -- {secret}"),
        },
        policy: deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(60),
            result: Duration::from_secs(60),
            destroyed: Duration::from_secs(20),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let mut request = None;
    let err = run_job(spec, |s, _| {
        if let cdvm_client::Stage::Submitted { request: r } = s {
            request = Some(*r);
        }
    })
    .await
    .expect_err("the query fails");
    match &err {
        cdvm_client::ClientError::JobFailed(message) => {
            assert_eq!(message, "query: no such table: t")
        }
        other => panic!(
            "expected JobFailed, got {other}\n{}",
            deployment.orchestrator_log()
        ),
    }
    let request = request.expect("submitted");
    let url = deployment.relay.url();
    let fb = common::dvm_feedback(
        url,
        deployment.dvm.public_key(),
        request,
        Duration::from_secs(20),
    )
    .await;
    assert!(
        !fb.iter()
            .any(|f| f.status == Some(cdvm_protocol::FeedbackStatus::Success)),
        "a failed job is not reported as a success: {fb:?}"
    );
    let error = fb
        .iter()
        .find(|f| f.status == Some(cdvm_protocol::FeedbackStatus::Error))
        .unwrap_or_else(|| {
            panic!(
                "no error feedback: {fb:?}\n{}",
                deployment.orchestrator_log()
            )
        });
    assert_eq!(
        error.extra_info.as_deref(),
        Some("the job failed in the guest (job-failed); VM destroyed")
    );
    // The result event says the class in public, and nothing public carries the message.
    let events = common::all_events(url).await;
    let result = events
        .iter()
        .find(|e| e.kind.as_u16() == kinds::SQL + 1000)
        .expect("the guest published a result");
    let parsed = cdvm_protocol::JobResult::from_event(result).unwrap();
    assert_eq!(
        parsed.outcome,
        Some(cdvm_protocol::PublicOutcome::Error(
            cdvm_protocol::ErrorClass::JobFailed
        ))
    );
    for event in &events {
        let json = event.as_json();
        assert!(!json.contains("no such table"), "message in public: {json}");
        assert!(!json.contains(&secret), "canary in public: {json}");
    }
    let store = Store::open(&state.join("jobs.sqlite")).unwrap();
    let job = store.get(&request.to_hex()).unwrap().expect("job recorded");
    assert_eq!(job.state, JobState::Failed);
    drop(store);
    common::assert_no_vm_left(&state).await;
}

/// Runs a small SQL job on a process-provider deployment started with `opts`; returns the
/// outcome and the stages as the client saw them. The VM must be destroyed and none left over.
async fn simulated_job(
    opts: DeploymentOptions,
    table_csv: &str,
    query: &str,
) -> (
    cdvm_client::JobOutcome,
    Vec<String>,
    LocalDeployment,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let deployment = LocalDeployment::start(&state, &opts)
        .await
        .expect("deployment starts");
    let mut stages = Vec::new();
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: table_csv.into(),
            query: query.into(),
        },
        policy: deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(60),
            result: Duration::from_secs(60),
            destroyed: Duration::from_secs(20),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let outcome = match run_job(spec, |s, _| stages.push(format!("{s:?}"))).await {
        Ok(o) => o,
        Err(e) => panic!(
            "job failed: {e}\n--- orchestrator log ---\n{}",
            deployment.orchestrator_log()
        ),
    };
    assert!(
        outcome.vm_destroyed,
        "no VM-destroyed feedback\n--- orchestrator log ---\n{}",
        deployment.orchestrator_log()
    );
    common::assert_no_vm_left(&state).await;
    // The state folder outlives the deployment: the caller keeps it until the test ends.
    (outcome, stages, deployment, dir)
}

fn attested_through(stages: &[String], interface: &str) -> bool {
    stages.iter().any(|s| {
        s.starts_with("Attested") && s.contains(&format!("interface: Some(\"{interface}\")"))
    })
}

/// A simulated TDX guest: a v4 quote from the development DCAP PKI through the emulated
/// configfs-tsm, verified by the real TDX verifier (dcap-qvl) under the development TDX policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(fuse_available),
    ignore = "needs FUSE (root and /dev/fuse): a simulated TDX guest has no other interface"
)]
async fn confidential_sql_job_on_a_simulated_tdx_guest_through_configfs_tsm() {
    let opts = DeploymentOptions {
        tee: cdvm_attestation::TeeKind::Tdx,
        ..DeploymentOptions::default()
    };
    let (outcome, stages, mut deployment, _state) = simulated_job(
        opts,
        "a,b\n1,2\n3,4\n",
        "SELECT SUM(a) AS s, SUM(b) AS t FROM input",
    )
    .await;
    assert_eq!(deployment.dev_policy.tee, cdvm_attestation::TeeKind::Tdx);
    assert_eq!(outcome.output, "s,t\n4,6\n");
    assert_eq!(outcome.claims.tee, cdvm_attestation::TeeKind::Tdx);
    assert!(outcome.claims.simulated);
    assert!(attested_through(&stages, "configfs-tsm"), "{stages:?}");
    deployment.stop();
}

/// A simulated Azure SEV-SNP confidential VM: the agent writes its report data to the vTPM (swtpm
/// behind an emulated paravisor), reads the HCL report, takes a TPM quote and fetches the chain
/// from IMDS; the client verifies it all with the Azure vTPM verifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_sql_job_on_a_simulated_azure_cvm_through_the_vtpm() {
    let opts = DeploymentOptions {
        azure_vtpm: true,
        ..DeploymentOptions::default()
    };
    let (outcome, stages, mut deployment, _state) =
        simulated_job(opts, "a\n5\n7\n", "SELECT MAX(a) AS m FROM input").await;
    assert!(deployment.dev_policy.azure_vtpm.is_some());
    assert_eq!(outcome.output, "m\n7\n");
    assert!(outcome.claims.simulated);
    assert!(
        outcome.claims.checks.iter().any(|c| c.name == "tpm-quote"),
        "the Azure vTPM checks ran: {:?}",
        outcome.claims.checks
    );
    assert!(attested_through(&stages, "azure-vtpm"), "{stages:?}");
    deployment.stop();
}
