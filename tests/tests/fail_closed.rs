//! Fail closed: a guest whose attestation is wrong in any way never receives the input.
//!
//! A hostile "guest" answers the user's job request over a real relay with crafted attestations.
//! The client must refuse each with its own error, and no gift wrap may ever reach that guest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use cdvm_attestation::sim::{dev_policy, SimReportOptions, SimSecureProcessor};
use cdvm_attestation::{Evidence, Measurement, Policy, VerifyError};
use cdvm_client::relay::TestRelay;
use cdvm_client::{run_job, ClientError, JobSpec, Timeouts};
use cdvm_protocol::nostr::{EventId, Filter, Keys, Kind, PublicKey, Timestamp};
use cdvm_protocol::{kinds, AttestationEvent, AttestationPayload, ImageIdentity, InputBody};
use nostr_sdk::RelayPoolNotification;

const SECRET: &str = "table,with\nsecret,1\n";

/// How the hostile guest builds its attestation for request `req` and its key `guest`.
#[derive(Clone, Copy)]
enum Forgery {
    /// Honest evidence: the control case, which must lead to the input being sent.
    Honest,
    /// One byte of the measurement flipped after signing.
    TamperedReport,
    /// Evidence bound to another job's request id (replay of another job's attestation).
    OtherRequest,
    /// Evidence bound to another guest key than the one that signs the event.
    OtherKey,
    /// A measurement the policy does not list.
    UnknownMeasurement,
    /// A guest launched with debugging allowed.
    Debug,
}

struct Setup {
    sp: SimSecureProcessor,
    good: Measurement,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sp = SimSecureProcessor::load_or_create(dir.path()).unwrap();
    let good = cdvm_attestation::sim::measure_file_bytes(b"the approved image");
    Setup {
        sp,
        good,
        _dir: dir,
    }
}

fn forge(setup: &Setup, forgery: Forgery, req: EventId, guest: &PublicKey) -> Evidence {
    let bound_to = match forgery {
        Forgery::OtherRequest => cdvm_protocol::report_data(&EventId::all_zeros(), guest),
        Forgery::OtherKey => cdvm_protocol::report_data(&req, &Keys::generate().public_key()),
        _ => cdvm_protocol::report_data(&req, guest),
    };
    let measurement = match forgery {
        Forgery::UnknownMeasurement => {
            cdvm_attestation::sim::measure_file_bytes(b"some other image")
        }
        _ => setup.good,
    };
    let opts = SimReportOptions {
        debug: matches!(forgery, Forgery::Debug),
        ..SimReportOptions::default()
    };
    let mut evidence = setup.sp.report(&bound_to, &measurement, &opts);
    if let (Forgery::TamperedReport, Evidence::SevSnp(snp)) = (forgery, &mut evidence) {
        snp.report[0x90] ^= 0x01;
    }
    evidence
}

/// Runs one job against the hostile guest. Returns the client's verdict and whether any gift wrap
/// was published to the guest's key.
async fn run(forgery: Forgery, policy: Policy, setup: &Setup) -> (Result<(), ClientError>, bool) {
    let relay = TestRelay::start().await.unwrap();
    let url = relay.url().to_string();
    let dvm = Keys::generate();
    let guest = Keys::generate();

    // The hostile guest: waits for the request, answers with its forged attestation.
    let hostile = common::client(&url, &guest).await;
    let mut notes = hostile.notifications();
    hostile
        .subscribe(
            Filter::new()
                .kind(Kind::from(kinds::SQL))
                .pubkey(dvm.public_key()),
            None,
        )
        .await
        .unwrap();
    let evidence_for = |req: EventId| forge(setup, forgery, req, &guest.public_key());
    let guest_keys = guest.clone();
    let good = setup.good;
    let responder = async move {
        loop {
            let Ok(RelayPoolNotification::Event { event, .. }) = notes.recv().await else {
                continue;
            };
            if event.kind.as_u16() != kinds::SQL {
                continue;
            }
            let payload = AttestationPayload {
                v: 1,
                request_id: event.id.to_hex(),
                evidence: evidence_for(event.id),
                image: ImageIdentity {
                    name: "hostile".into(),
                    measurement: good.to_string(),
                },
            };
            let att = AttestationEvent::build(
                event.id,
                event.pubkey,
                &payload,
                Timestamp::from(Timestamp::now().as_secs() + 120),
            )
            .unwrap()
            .sign_with_keys(&guest_keys)
            .unwrap();
            hostile.send_event(&att).await.unwrap();
            return hostile;
        }
    };
    let spec = JobSpec {
        relays: vec![url.clone()],
        dvm: dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: SECRET.into(),
            query: "SELECT * FROM input".into(),
        },
        policy,
        user: Keys::generate(),
        timeouts: Timeouts {
            // A refused attestation is skipped while the client waits for a valid one; with only
            // the hostile guest answering, the refusal is the verdict at this deadline.
            attest: Duration::from_secs(4),
            result: Duration::from_secs(2),
            destroyed: Duration::from_secs(1),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let (verdict, hostile) = tokio::join!(run_job(spec, |_, _| {}), responder);
    hostile.shutdown().await;
    // Anything sent to the guest would be on the relay by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let wraps = common::all_events(&url)
        .await
        .into_iter()
        .filter(|e| {
            e.kind == Kind::GiftWrap && e.tags.public_keys().any(|p| *p == guest.public_key())
        })
        .count();
    relay.shutdown();
    (verdict.map(|_| ()), wraps > 0)
}

fn refused(result: Result<(), ClientError>) -> VerifyError {
    match result {
        Err(ClientError::AttestationRefused(e)) => e,
        other => panic!("expected an attestation refusal, got {other:?}"),
    }
}

fn shipped_policy() -> Policy {
    Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default-snp.yaml"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_attestation_gets_the_input_control_case() {
    let s = setup();
    let policy = dev_policy(&s.sp, &s.good, "test");
    let (verdict, input_sent) = run(Forgery::Honest, policy, &s).await;
    // The hostile guest never answers with a result, so the job times out, after the input went.
    assert!(
        matches!(verdict, Err(ClientError::Timeout(_))),
        "{verdict:?}"
    );
    assert!(
        input_sent,
        "the harness must be able to see an input being sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_report_is_refused() {
    let s = setup();
    let (verdict, input_sent) =
        run(Forgery::TamperedReport, dev_policy(&s.sp, &s.good, "t"), &s).await;
    assert_eq!(refused(verdict), VerifyError::SignatureInvalid);
    assert!(!input_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestation_from_another_job_is_refused() {
    let s = setup();
    let (verdict, input_sent) =
        run(Forgery::OtherRequest, dev_policy(&s.sp, &s.good, "t"), &s).await;
    assert!(matches!(
        refused(verdict),
        VerifyError::ReportDataMismatch { .. }
    ));
    assert!(!input_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_not_bound_in_the_report_is_refused() {
    let s = setup();
    let (verdict, input_sent) = run(Forgery::OtherKey, dev_policy(&s.sp, &s.good, "t"), &s).await;
    assert!(matches!(
        refused(verdict),
        VerifyError::ReportDataMismatch { .. }
    ));
    assert!(!input_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measurement_not_in_policy_is_refused() {
    let s = setup();
    let (verdict, input_sent) = run(
        Forgery::UnknownMeasurement,
        dev_policy(&s.sp, &s.good, "t"),
        &s,
    )
    .await;
    assert!(matches!(
        refused(verdict),
        VerifyError::MeasurementNotAllowed { .. }
    ));
    assert!(!input_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_guest_is_refused() {
    let s = setup();
    let (verdict, input_sent) = run(Forgery::Debug, dev_policy(&s.sp, &s.good, "t"), &s).await;
    assert!(matches!(refused(verdict), VerifyError::DebugAllowed { .. }));
    assert!(!input_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_evidence_under_the_shipped_policy_is_refused() {
    let s = setup();
    let (verdict, input_sent) = run(Forgery::Honest, shipped_policy(), &s).await;
    assert!(matches!(
        refused(verdict),
        VerifyError::SimulatedNotAllowed { .. }
    ));
    assert!(!input_sent);
}
