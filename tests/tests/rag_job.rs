//! The confidential RAG job (kind 5050, docs/protocol.md §5.9) end to end over the real relay,
//! orchestrator and agent processes, with the real models (`scripts/fetch-models`): an inline
//! document and a folder through Blossom, the answer growing in encrypted `partial` feedback,
//! canaries in the document, the question and the answer kept from everything the operator and
//! the relay see, unsupported documents refused by name, a policy pinning another model refusing
//! the attestation, and an ordinary plaintext 5050 request refused with an explanation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdvm_blossom::server::{BlossomServer, ServerConfig};
use cdvm_client::blob::{self as client_blob, Source};
use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, ClientError, JobOutcome, JobSpec, Timeouts};
use cdvm_protocol::nostr::{Event, JsonUtil, Keys, Tag};
use cdvm_protocol::rag::{PartialAnswer, RagAnswer, RagParams};
use cdvm_protocol::{kinds, BlobRef, Data, InputBody};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_dir() -> PathBuf {
    let dir = root().join("target/models");
    assert!(
        dir.join("models.json").is_file(),
        "no models in {}: run scripts/fetch-models (scripts/test does)",
        dir.display()
    );
    dir
}

struct Env {
    _dir: tempfile::TempDir,
    state: PathBuf,
    deployment: LocalDeployment,
}

async fn env() -> Env {
    env_with((60, 120, 240)).await
}

/// A deployment with these attest, input and run deadlines (seconds).
async fn env_with(deadlines: (u64, u64, u64)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let opts = DeploymentOptions {
        models_dir: Some(models_dir()),
        // CI's two shared cores: one inference thread per agent, no spinning.
        inference_threads: Some(1),
        deadlines,
        ..DeploymentOptions::default()
    };
    let deployment = LocalDeployment::start(&state, &opts)
        .await
        .expect("deployment starts");
    Env {
        _dir: dir,
        state,
        deployment,
    }
}

fn spec(env: &Env, input: InputBody, policy: Option<cdvm_attestation::Policy>) -> JobSpec {
    JobSpec {
        relays: vec![env.deployment.relay.url().to_string()],
        dvm: env.deployment.dvm.public_key(),
        kind: kinds::TEXT_GENERATION,
        input,
        policy: policy.unwrap_or_else(|| env.deployment.dev_policy.clone()),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(60),
            result: Duration::from_secs(240),
            destroyed: Duration::from_secs(20),
        },
        vcek: None,
        result_servers: Vec::new(),
        result_file: None,
        transfer_progress: None,
    }
}

fn rag(documents: Data, name: Option<&str>, question: &str, max_tokens: u32) -> InputBody {
    InputBody::Rag {
        documents,
        name: name.map(str::to_owned),
        media_type: None,
        question: question.into(),
        params: RagParams {
            max_tokens,
            ..RagParams::default()
        },
    }
}

async fn run_ok(env: &Env, spec: JobSpec) -> (JobOutcome, RagAnswer) {
    match run_job(spec, |_, _| {}).await {
        Ok(o) => {
            assert_eq!(o.media_type, "application/json");
            let answer: RagAnswer = serde_json::from_str(&o.output).expect("a RagAnswer");
            (o, answer)
        }
        Err(e) => panic!(
            "job failed: {e}\n--- orchestrator log ---\n{}",
            env.deployment.orchestrator_log()
        ),
    }
}

/// The smollm2 file hash the image carries (from the manifest the tests' agents load).
fn generator_sha256() -> String {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(models_dir().join("models.json")).unwrap())
            .unwrap();
    m["models"][0]["sha256"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inline_document_answer_streams_encrypted_and_no_canary_leaks() {
    let env = env().await;
    let tag = hex::encode(rand_bytes());
    let doc_canary = format!("DOCCANARY{tag}");
    let question_canary = format!("QCANARY{tag}");
    let document = format!(
        "Internal memo on the Harbor Street office.\n\nThe alarm code of the Harbor Street office \
         is 4471. The code was set by facilities manager Edda Sorensen ({doc_canary}). It changes \
         every quarter.\n"
    );
    let question =
        format!("What is the alarm code of the Harbor Street office? ({question_canary})");
    // Positive twin of the model-pinning test below: the policy requires the model the image
    // carries, and the job runs.
    let mut policy = env.deployment.dev_policy.clone();
    policy.models = vec![generator_sha256()];
    let (outcome, answer) = run_ok(
        &env,
        spec(
            &env,
            rag(
                Data::Inline(document.clone()),
                Some("memo.txt"),
                &question,
                48,
            ),
            Some(policy),
        ),
    )
    .await;
    assert!(answer.answer.contains("4471"), "{:?}", answer.answer);
    assert_eq!(answer.citations.len(), 1);
    assert_eq!(answer.citations[0].document, "memo.txt");
    assert_eq!(answer.usage.documents, 1);
    assert_eq!(answer.model.sha256, generator_sha256());
    assert!(outcome.claims.simulated);

    // Partial answers: kind 7000 `partial`, signed by the guest, encrypted to the user, growing
    // towards the final answer.
    let events = common::all_events(env.deployment.relay.url()).await;
    let partials: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.kind.as_u16() == kinds::JOB_FEEDBACK
                && e.pubkey == outcome.guest
                && e.tags.iter().any(|t| t.as_slice() == ["status", "partial"])
        })
        .collect();
    assert!(!partials.is_empty(), "no partial feedback");
    for p in &partials {
        assert!(p.tags.iter().any(|t| t.as_slice() == ["encrypted"]));
        assert!(!p.content.contains("4471"));
    }
    // Decryptable only by the user the job belongs to: the spec's user key is gone, so check
    // that a stranger cannot, and that each is bound to this request.
    let stranger = Keys::generate();
    assert!(PartialAnswer::decrypt(
        &stranger,
        &outcome.guest,
        &outcome.request,
        &partials[0].content
    )
    .is_err());

    // Canaries: nowhere the operator or the relay can read.
    let answer_probe: String = answer.answer.chars().take(40).collect();
    let mut needles = vec![doc_canary.clone(), question_canary.clone()];
    if answer_probe.len() >= 12 {
        needles.push(answer_probe);
    }
    for e in &events {
        let json = e.as_json();
        for n in &needles {
            assert!(!json.contains(n.as_str()), "{n} in a relay event");
        }
    }
    let log = env.deployment.orchestrator_log();
    for n in &needles {
        assert!(!log.contains(n.as_str()), "{n} in the orchestrator log");
    }
    for file in common::files_under(&env.state) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for n in &needles {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(n.as_str()),
                "{n} in {}",
                file.display()
            );
        }
    }
    common::assert_no_vm_left(&env.state).await;
}

fn rand_bytes() -> [u8; 6] {
    let k = Keys::generate();
    let b = k.public_key().to_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

async fn blossom() -> BlossomServer {
    BlossomServer::start(ServerConfig {
        max_blob: 1 << 30,
        require_auth: true,
        ..ServerConfig::default()
    })
    .await
    .unwrap()
}

async fn upload_folder(server: &BlossomServer, folder: PathBuf) -> BlobRef {
    client_blob::upload_input(
        &client_blob::client().unwrap(),
        &Source::Folder(folder),
        client_blob::TAR,
        &[server.url()],
        &Keys::generate(),
        cdvm_protocol::DEFAULT_MAX_INPUT_BYTES,
        &|_| {},
    )
    .await
    .expect("upload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_folder_through_blossom_is_answered_from_the_right_document() {
    let env = env().await;
    let server = blossom().await;
    let blob = upload_folder(&server, root().join("examples/rag-docs")).await;
    let questions: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/rag-questions.json")).unwrap(),
    )
    .unwrap();
    // A question whose fact SmolLM2-135M reproduces with the default four passages (docs/rag.md).
    let q = &questions[7];
    let (_, answer) = run_ok(
        &env,
        spec(
            &env,
            rag(Data::Blob(blob), None, q["question"].as_str().unwrap(), 64),
            None,
        ),
    )
    .await;
    assert!(
        answer.answer.contains(q["fact"].as_str().unwrap()),
        "{:?}",
        answer.answer
    );
    assert!(answer
        .citations
        .iter()
        .any(|c| c.document == q["document"].as_str().unwrap()));
    assert_eq!(answer.usage.documents, 20);
    common::assert_no_vm_left(&env.state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unsupported_document_is_refused_by_name_and_nothing_runs_on_it() {
    let env = env().await;
    let server = blossom().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "Plain notes.").unwrap();
    std::fs::write(dir.path().join("report.pdf"), b"%PDF-1.7\n%...").unwrap();
    let blob = upload_folder(&server, dir.path().to_path_buf()).await;
    let err = run_job(
        spec(
            &env,
            rag(Data::Blob(blob), None, "What do the notes say?", 16),
            None,
        ),
        |_, _| {},
    )
    .await
    .expect_err("refused");
    let ClientError::JobFailed(message) = err else {
        panic!("expected the guest's error, got {err}");
    };
    assert!(
        message.contains("report.pdf") && message.contains("PDF"),
        "{message}"
    );
    common::assert_no_vm_left(&env.state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_pinning_another_model_refuses_the_attestation() {
    // The orchestrator's own policy accepts the guest, which then waits for an input that never
    // comes: a short input deadline ends it.
    let env = env_with((60, 10, 240)).await;
    let mut policy = env.deployment.dev_policy.clone();
    policy.models = vec!["00".repeat(32)];
    let err = run_job(
        spec(
            &env,
            rag(Data::Inline("A note.".into()), None, "What is it?", 8),
            Some(policy),
        ),
        |_, _| {},
    )
    .await
    .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("requires model") && text.contains("smollm2"),
        "{text}"
    );
    common::assert_no_vm_left(&env.state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plaintext_text_generation_request_is_refused_with_an_explanation() {
    let env = env().await;
    let user = Keys::generate();
    let request = common::request_event(
        &user,
        kinds::TEXT_GENERATION,
        env.deployment.dvm.public_key(),
        vec![Tag::parse(["i", "What is the capital of France?", "text"]).unwrap()],
        "",
    );
    let c = common::client(env.deployment.relay.url(), &user).await;
    c.send_event(&request).await.unwrap();
    let feedback = common::dvm_feedback(
        env.deployment.relay.url(),
        env.deployment.dvm.public_key(),
        request.id,
        Duration::from_secs(20),
    )
    .await;
    let info = feedback
        .iter()
        .find_map(|f| f.extra_info.clone())
        .expect("an error feedback");
    assert!(
        info.contains("only encrypted input") && info.contains("public"),
        "{info}"
    );
    assert_eq!(
        common::vm_count(&env.state),
        0,
        "no VM for a refused request"
    );
}
