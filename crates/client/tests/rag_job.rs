//! A RAG job (kind 5050) from the client's side against a scripted guest on a real local relay:
//! the guest attests with a simulated secure processor, receives the input, streams partial
//! answers (one delivered late, one forged by another key) and answers; the DVM's key then
//! confirms the VM destroyed. The client shows only the attested guest's partials, each newer than
//! the last, and returns the answer; `cdvm submit` prints it and saves it as JSON, and sends a
//! folder as an encrypted tar through a local Blossom server.
#![cfg(feature = "demo")]
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use cdvm_attestation::sim::{dev_policy, measure_file_bytes, SimReportOptions, SimSecureProcessor};
use cdvm_blossom::server::{BlossomServer, ServerConfig};
use cdvm_client::relay::TestRelay;
use cdvm_client::{rag, run_job, JobSpec, Stage, Timeouts};
use cdvm_protocol::nostr::{Event, Filter, Keys, Kind, Timestamp};
use cdvm_protocol::rag::{Citation, Finish, ModelRef, PartialAnswer, RagAnswer, RagParams, Usage};
use cdvm_protocol::{
    encrypt_result, kinds, unwrap_input, AttestationEvent, AttestationPayload, Data,
    FeedbackStatus, ImageIdentity, InputBody, JobFeedback, JobRequest, JobResult, PublicOutcome,
    ResultPayload,
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

/// Plays the guest for the first kind-5050 request it sees, then the DVM (key `dvm`) confirming
/// the VM's destruction.
/// Returns the input body it received.
async fn guest(url: String, sp: SimSecureProcessor, dvm: Keys) -> InputBody {
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
        let destroyed = JobFeedback::build(
            r.id,
            user,
            FeedbackStatus::Success,
            Some("result delivered to the user; VM destroyed"),
        )
        .sign_with_keys(&dvm)
        .unwrap();
        client.send_event(&destroyed).await.unwrap();
        client.shutdown().await;
        return input.body.clone();
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
    let dvm = Keys::generate();
    let guest = tokio::spawn(guest(url.clone(), sp, dvm.clone()));

    let spec = JobSpec {
        relays: vec![url],
        dvm: dvm.public_key(),
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
            destroyed: Duration::from_secs(30),
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
    let received = guest.await.unwrap();
    relay.shutdown();
    assert!(matches!(&received, InputBody::Rag { params, .. } if *params == RagParams::default()));

    assert_eq!(
        partials,
        [
            (2, "The notice".to_owned()),
            (3, "The notice is 30 days".to_owned())
        ]
    );
    assert_eq!(shown, "The notice is 30 days");
    assert!(outcome.vm_destroyed);
    assert_eq!(outcome.media_type, "application/json");
    let parsed = rag::parse_answer(&outcome.media_type, &outcome.output).unwrap();
    assert_eq!(parsed, answer());
    assert!(rag::render_answer(&parsed).starts_with(
        "The notice is 30 days [1].\n\nCitations:\n[1] acme.md chunk 0  similarity 0.800\n"
    ));
}

/// A relay, a scripted guest and `cdvm submit --kind 5050 --question QUESTION` with `args`.
/// Returns what the guest received, standard output and standard error.
async fn cdvm_submit(dir: &Path, args: &[&OsStr]) -> (InputBody, String, String) {
    let relay = TestRelay::start().await.unwrap();
    let url = relay.url().to_string();
    let sp = SimSecureProcessor::load_or_create(&dir.join("sp")).unwrap();
    // JSON is YAML: the policy file needs no YAML writer.
    let policy = dev_policy(&sp, &measure_file_bytes(b"rag test image"), "test");
    let policy_path = dir.join("policy.yaml");
    std::fs::write(&policy_path, serde_json::to_string(&policy).unwrap()).unwrap();
    let dvm = Keys::generate();
    let guest = tokio::spawn(guest(url.clone(), sp, dvm.clone()));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cdvm"))
        .args([
            "submit",
            "--relay",
            &url,
            "--dvm",
            &dvm.public_key().to_hex(),
        ])
        .args(["--kind", "5050", "--question", QUESTION])
        .arg("--policy")
        .arg(&policy_path)
        .args(["--attest-timeout", "30", "--result-timeout", "30"])
        .args(args)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let received = guest.await.unwrap();
    relay.shutdown();
    (received, String::from_utf8(out.stdout).unwrap(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdvm_submit_streams_the_answer_prints_it_and_saves_it_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let document = dir.path().join("acme.md");
    std::fs::write(&document, "Notice: 30 days.").unwrap();
    let saved = dir.path().join("answer.json");
    let (received, stdout, stderr) = cdvm_submit(
        dir.path(),
        &[
            "--input".as_ref(),
            document.as_ref(),
            "--output".as_ref(),
            saved.as_ref(),
            "--max-tokens".as_ref(),
            "64".as_ref(),
        ],
    )
    .await;
    // The single document went inline, named and typed by its file; --max-tokens arrived.
    let expected = RagParams {
        max_tokens: 64,
        ..RagParams::default()
    };
    match &received {
        InputBody::Rag {
            documents: Data::Inline(text),
            name,
            media_type,
            params,
            ..
        } => {
            assert_eq!(text, "Notice: 30 days.");
            assert_eq!(name.as_deref(), Some("acme.md"));
            assert_eq!(media_type.as_deref(), Some("text/markdown"));
            assert_eq!(params, &expected);
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(stdout, rag::render_answer(&answer()));
    // Streamed on standard error: each new end once, the line closed before the next stage.
    assert_eq!(
        stderr.matches("the answer as the VM writes it").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains(":\nThe notice is 30 days\n["), "{stderr}");
    assert!(!stderr.contains("Send your keys"), "{stderr}");
    assert!(stderr.contains("VM destroyed"), "{stderr}");
    let json = std::fs::read_to_string(&saved).unwrap();
    assert_eq!(serde_json::from_str::<RagAnswer>(&json).unwrap(), answer());
    assert!(json.starts_with("{\n  "), "pretty: {json}");
    assert!(!dir.path().join("answer.json.partial").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_goes_as_an_encrypted_tar_of_its_documents() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(docs.join("contracts")).unwrap();
    std::fs::write(docs.join("contracts/acme.md"), "Notice: 30 days.").unwrap();
    std::fs::write(docs.join("handbook.txt"), "Leave: 25 days.").unwrap();
    let server = BlossomServer::start(ServerConfig::default()).await.unwrap();
    let url = server.url().to_string();
    let (received, stdout, _) = cdvm_submit(
        dir.path(),
        &[
            "--input".as_ref(),
            docs.as_ref(),
            "--blossom".as_ref(),
            url.as_ref(),
        ],
    )
    .await;
    assert_eq!(stdout, rag::render_answer(&answer()));
    let InputBody::Rag {
        documents: Data::Blob(blob),
        name: None,
        media_type: None,
        ..
    } = &received
    else {
        panic!("{received:?}")
    };
    assert_eq!(blob.file_type, "application/x-tar");
    // What the guest would read: the server's blob, decrypted with the key sent to it alone.
    let tar = dir.path().join("documents.tar");
    cdvm_client::blob::fetch_result(&cdvm_client::blob::client().unwrap(), blob, &tar, &|_| {})
        .await
        .unwrap();
    let mut names = Vec::new();
    cdvm_blob::tarball::for_each_file(
        std::fs::File::open(&tar).unwrap(),
        &Default::default(),
        |name, _| -> Result<(), std::convert::Infallible> {
            names.push(name.to_owned());
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(names, ["contracts/acme.md", "handbook.txt"]);
    server.shutdown().await;
}
