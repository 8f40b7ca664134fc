//! A third party answers someone's job with a forged attestation (its own simulated secure
//! processor, correctly bound to the job and its key). The client refuses it and keeps waiting;
//! the orchestrator does not follow it; the real guest's job completes; the forger gets nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use cdvm_attestation::sim::{measure_file_bytes, SimReportOptions, SimSecureProcessor};
use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, JobSpec, Stage, Timeouts};
use cdvm_protocol::nostr::{Filter, Keys, Kind, Timestamp};
use cdvm_protocol::{kinds, AttestationEvent, AttestationPayload, ImageIdentity, InputBody};
use nostr_sdk::RelayPoolNotification;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_attestation_is_skipped_and_the_real_job_completes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let d = LocalDeployment::start(&state, &DeploymentOptions::default())
        .await
        .unwrap();
    let url = d.relay.url().to_string();

    let forger = Keys::generate();
    let forger_sp = SimSecureProcessor::load_or_create(&dir.path().join("forger-sp")).unwrap();
    let hostile = common::client(&url, &forger).await;
    let mut notes = hostile.notifications();
    hostile
        .subscribe(
            Filter::new()
                .kind(Kind::from(kinds::TEXT_STATS))
                .pubkey(d.dvm.public_key()),
            None,
        )
        .await
        .unwrap();
    let forge = tokio::spawn(async move {
        loop {
            let Ok(RelayPoolNotification::Event { event, .. }) = notes.recv().await else {
                continue;
            };
            if event.kind.as_u16() != kinds::TEXT_STATS {
                continue;
            }
            let measurement = measure_file_bytes(b"forged image");
            let rd = cdvm_protocol::report_data(&event.id, &forger.public_key());
            let payload = AttestationPayload {
                v: 1,
                request_id: event.id.to_hex(),
                evidence: forger_sp.report(&rd, &measurement, &SimReportOptions::default()),
                image: ImageIdentity {
                    name: "forged".into(),
                    measurement: measurement.to_string(),
                },
            };
            let forged = AttestationEvent::build(
                event.id,
                event.pubkey,
                &payload,
                Timestamp::from(Timestamp::now().as_secs() + 120),
            )
            .unwrap()
            .sign_with_keys(&forger)
            .unwrap();
            hostile.send_event(&forged).await.unwrap();
            return (hostile, forger.public_key());
        }
    });

    let mut stages = Vec::new();
    let spec = JobSpec {
        relays: vec![url.clone()],
        dvm: d.dvm.public_key(),
        kind: kinds::TEXT_STATS,
        input: InputBody::TextStats {
            text: "one two two".into(),
        },
        policy: d.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(60),
            ..Timeouts::default()
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let outcome = run_job(spec, |s, _| {
        if let Stage::Refused { guest, .. } = s {
            stages.push(*guest);
        }
    })
    .await;
    let outcome = outcome.unwrap_or_else(|e| panic!("job failed: {e}\n{}", d.orchestrator_log()));
    let (hostile, forger_key) = forge.await.unwrap();
    hostile.shutdown().await;

    assert!(outcome.output.contains("\"words\":3"), "{}", outcome.output);
    assert_ne!(
        outcome.guest, forger_key,
        "the input went to the real guest"
    );
    assert!(outcome.vm_destroyed);
    // The forger answers within milliseconds, the real guest after its boot: the client saw the
    // forgery first, refused it, and kept waiting.
    assert_eq!(
        stages,
        vec![forger_key],
        "the forged attestation was refused, and only it"
    );
    let wraps = common::all_events(&url)
        .await
        .into_iter()
        .filter(|e| e.kind == Kind::GiftWrap && e.tags.public_keys().any(|p| *p == forger_key))
        .count();
    assert_eq!(wraps, 0, "nothing was sent to the forger");
    let log = d.orchestrator_log();
    let ignored = log
        .lines()
        .any(|l| l.contains("ignored an attestation") && l.contains(&forger_key.to_hex()));
    assert!(
        ignored,
        "the orchestrator did not follow the forger:\n{log}"
    );
    common::assert_no_vm_left(&state).await;
}
