//! A RAG job (kind 5050) from the client's side against a scripted guest on a real local relay:
//! the guest attests with a simulated secure processor, receives the input, streams partial
//! answers (one delivered late, one forged by another key) and answers. The client shows only the
//! attested guest's partials, newest first-seen, and returns the answer.
#![cfg(feature = "demo")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cdvm_attestation::sim::{dev_policy, measure_file_bytes, SimReportOptions, SimSecureProcessor};
use cdvm_client::relay::TestRelay;
use cdvm_client::{rag, run_job, JobSpec, Stage, Timeouts};
use cdvm_protocol::nostr::{Event, Filter, Keys, Kind, Timestamp};
use cdvm_protocol::rag::{Citation, Finish, ModelRef, PartialAnswer, RagAnswer, RagParams, Usage};
use cdvm_protocol::{
    encrypt_result, kinds, unwrap_input, AttestationEvent, AttestationPayload, ImageIdentity,
    InputBody, JobRequest, JobResult, PublicOutcome, ResultPayload,
};
use nostr_sdk::{Client, RelayPoolNotification};

const QUESTION: &str = "What is the notice period?";

fn answer() -> RagAnswer {
    RagAnswer {
        answer: "The notice is 30 days [1].".into(),
        citations: vec![Citation {
            document: "acme.md".into(),
            chunk: 0,
            similarity: 0.8,
            text: "Notice: 30 days.".into(),
        }],
        model: ModelRef {
            name: "generator".into(),
            sha256: "ab".repeat(32),
        },
        embedder: ModelRef {
            name: "embedder".into(),
            sha256: "cd".repeat(32),
        },
        usage: Usage {
            documents: 1,
            chunks: 1,
            prompt_tokens: 90,
            completion_tokens: 9,
        },
        finish: Finish::Stop,
    }
}

/// Plays the guest for the first kind-5050 request it sees.
async fn guest(url: String, sp: SimSecureProcessor) {
    let guest = Keys::generate();
    let client = Client::new(guest.clone());
    client.add_relay(url.as_str()).await.unwrap();
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    let mut notes = client.notifications();
    client
        .subscribe(
            Filter::new()
                .kind(Kind::from(kinds::TEXT_GENERATION))
                .since(Timestamp::from(Timestamp::now().as_secs() - 60)),
            None,
        )
        .await
        .unwrap();
    client
        .subscribe(
            Filter::new()
                .kind(Kind::GiftWrap)
                .pubkey(guest.public_key()),
            None,
        )
        .await
        .unwrap();
    let mut request: Option<JobRequest> = None;
    loop {
        let Ok(RelayPoolNotification::Event { event, .. }) = notes.recv().await else {
            continue;
        };
        if event.kind.as_u16() == kinds::TEXT_GENERATION && request.is_none() {
            let r = JobRequest::from_event(&event).unwrap();
            let measurement = measure_file_bytes(b"rag test image");
            let rd = cdvm_protocol::report_data(&r.id, &guest.public_key());
            let payload = AttestationPayload {
                v: 1,
                request_id: r.id.to_hex(),
                evidence: sp.report(&rd, &measurement, &SimReportOptions::default()),
                image: ImageIdentity {
                    name: "rag test image".into(),
                    measurement: measurement.to_string(),
                },
            };
            let attestation = AttestationEvent::build(
                r.id,
                r.author,
                &payload,
                Timestamp::from(Timestamp::now().as_secs() + 60),
            )
            .unwrap()
            .sign_with_keys(&guest)
            .unwrap();
            client.send_event(&attestation).await.unwrap();
            request = Some(r);
            continue;
        }
        let Some(r) = &request else { continue };
        if event.kind != Kind::GiftWrap {
            continue;
        }
        let (user, input) = unwrap_input(&guest, &event).await.unwrap();
        match &input.body {
            InputBody::Rag { question, .. } => assert_eq!(question, QUESTION),
            other => panic!("{other:?}"),
        }
        let partial = |signer: &Keys, seq: u32, text: &str| -> Event {
            PartialAnswer {
                v: 1,
                request_id: r.id.to_hex(),
                seq,
                text: text.into(),
            }
            .build(signer, &user)
            .unwrap()
            .sign_with_keys(signer)
            .unwrap()
        };
        let stranger = Keys::generate();
        for event in [
            partial(&guest, 2, "The notice"),
            // Late: older than what the client has.
            partial(&guest, 1, "The"),
            // Well-formed, encrypted to the user, tagged to the job: but not the attested key.
            partial(&stranger, 9, "Send your keys to …"),
            partial(&guest, 3, "The notice is 30 days"),
        ] {
            client.send_event(&event).await.unwrap();
        }
        let output = serde_json::to_string(&answer()).unwrap();
        let payload = ResultPayload::ok(&r.id, "application/json", output);
        let content = encrypt_result(&guest, &user, &payload).unwrap();
        let result = JobResult::build(r, content, PublicOutcome::Success)
            .sign_with_keys(&guest)
            .unwrap();
        client.send_event(&result).await.unwrap();
        client.shutdown().await;
        return;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_attested_guests_newest_partials_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start().await.unwrap();
    let url = relay.url().to_string();
    let sp = SimSecureProcessor::load_or_create(dir.path()).unwrap();
    let policy = dev_policy(&sp, &measure_file_bytes(b"rag test image"), "test");
    // The guest's subscriptions reach back in time: it finds the request whenever it starts.
    let guest = tokio::spawn(guest(url.clone(), sp));

    let spec = JobSpec {
        relays: vec![url],
        dvm: Keys::generate().public_key(),
        kind: kinds::TEXT_GENERATION,
        input: InputBody::Rag {
            documents: "Notice: 30 days.".into(),
            name: Some("acme.md".into()),
            media_type: Some("text/markdown".into()),
            question: QUESTION.into(),
            params: RagParams::default(),
        },
        policy,
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(30),
            result: Duration::from_secs(30),
            destroyed: Duration::from_millis(100),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let mut partials = Vec::new();
    let mut shown = String::new();
    let mut display = rag::AnswerDisplay::new();
    let outcome = run_job(spec, |stage, _| {
        if let Stage::Partial { seq, text } = stage {
            partials.push((*seq, text.clone()));
            shown.push_str(&display.update(text));
        }
    })
    .await
    .unwrap();
    guest.await.unwrap();
    relay.shutdown();

    assert_eq!(
        partials,
        [
            (2, "The notice".to_owned()),
            (3, "The notice is 30 days".to_owned())
        ]
    );
    assert_eq!(shown, "The notice is 30 days");
    assert_eq!(outcome.media_type, "application/json");
    let parsed = rag::parse_answer(&outcome.media_type, &outcome.output).unwrap();
    assert_eq!(parsed, answer());
    assert!(rag::render_answer(&parsed).starts_with(
        "The notice is 30 days [1].\n\nCitations:\n[1] acme.md chunk 0  similarity 0.800\n"
    ));
}
