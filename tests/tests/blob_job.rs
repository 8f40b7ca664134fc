//! Large inputs and results as encrypted blobs on Blossom (docs/protocol.md §5.8), end to end
//! over the real relay, orchestrator and agent processes and a strict in-process Blossom server:
//! megabyte tables, a folder, a large result, and each way a blob can be wrong, each failing
//! with its own error. The canary stays out of everything the operator, the relay and the Blossom
//! server can see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use cdvm_blob::{BlobKey, NoncePrefix, RECORD_SIZE};
use cdvm_blossom::server::{BlossomServer, ServerConfig};
use cdvm_blossom::{BlossomClient, TransportPolicy, Url};
use cdvm_client::blob::{self as client_blob, Source};
use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_client::{demo_table, run_job, ClientError, JobOutcome, JobSpec, Timeouts};
use cdvm_protocol::nostr::{JsonUtil, Keys};
use cdvm_protocol::{kinds, BlobRef, Data, InputBody, BLOB_ALGORITHM};
use sha2::Digest;

struct Env {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    state: std::path::PathBuf,
    deployment: LocalDeployment,
    server: BlossomServer,
}

async fn env(opts: DeploymentOptions) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let state = root.join("state");
    let deployment = LocalDeployment::start(&state, &opts)
        .await
        .expect("deployment starts");
    let server = BlossomServer::start(ServerConfig {
        max_blob: 1 << 30,
        require_auth: true,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    Env {
        _dir: dir,
        root,
        state,
        deployment,
        server,
    }
}

fn spec(env: &Env, kind: u16, input: InputBody, result_servers: Vec<String>) -> JobSpec {
    JobSpec {
        relays: vec![env.deployment.relay.url().to_string()],
        dvm: env.deployment.dvm.public_key(),
        kind,
        input,
        policy: env.deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(60),
            result: Duration::from_secs(240),
            destroyed: Duration::from_secs(20),
        },
        vcek: None,
        result_servers,
        result_file: None,
        transfer_progress: None,
    }
}

fn sql(table: Data, query: &str) -> InputBody {
    InputBody::Sql {
        table_csv: table,
        query: query.into(),
    }
}

/// Encrypts and uploads `source` through the client's own path (two passes, BUD-11 auth).
async fn upload(env: &Env, source: Source, file_type: &str) -> BlobRef {
    client_blob::upload_input(
        &client_blob::client().unwrap(),
        &source,
        file_type,
        &[env.server.url()],
        &Keys::generate(),
        cdvm_protocol::DEFAULT_MAX_INPUT_BYTES,
        &|_| {},
    )
    .await
    .expect("upload")
}

async fn run(spec: JobSpec) -> Result<JobOutcome, ClientError> {
    run_job(spec, |_, _| {}).await
}

/// `cdvm submit` (the real CLI) of a 5970 job over `input` against this deployment.
fn submit(env: &Env, input: &Path, query: &str) -> std::process::Command {
    let mut command =
        std::process::Command::new(cdvm_client::demo::sibling_binary("cdvm").unwrap());
    command
        .args(["submit", "--relay", env.deployment.relay.url(), "--dvm"])
        .arg(env.deployment.dvm.public_key().to_hex())
        .args(["--kind", "5970", "--query", query, "--input"])
        .arg(input)
        .arg("--policy")
        .arg(&env.deployment.dev_policy_path);
    command
}

/// Runs the CLI off the async workers, which serve the relay and the Blossom server.
async fn cli(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

async fn run_ok(env: &Env, spec: JobSpec) -> JobOutcome {
    match run(spec).await {
        Ok(o) => o,
        Err(e) => panic!(
            "job failed: {e}\n--- orchestrator log ---\n{}",
            env.deployment.orchestrator_log()
        ),
    }
}

/// The job's error, which must be the guest's own (decrypted) message.
async fn run_err(env: &Env, spec: JobSpec) -> String {
    match run(spec).await {
        Ok(o) => panic!("expected a failure, got {:?}", o.output),
        Err(ClientError::JobFailed(message)) => message,
        Err(other) => panic!(
            "expected the guest's error, got {other}\n--- orchestrator log ---\n{}",
            env.deployment.orchestrator_log()
        ),
    }
}

fn encrypt(plain: &[u8], key: &BlobKey, nonce: &NoncePrefix) -> Vec<u8> {
    let mut out = Vec::new();
    cdvm_blob::EncryptReader::new(key, nonce, plain)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Uploads `ciphertext` as it is (tampered or not) and returns a reference to it that claims
/// `plain` under `key`/`nonce`.
async fn put_raw(
    server: &Url,
    ciphertext: Vec<u8>,
    plain: &[u8],
    key: &BlobKey,
    nonce: &NoncePrefix,
) -> BlobRef {
    let x = sha(&ciphertext);
    let size = ciphertext.len() as u64;
    let client = BlossomClient::new(TransportPolicy {
        allow_insecure_loopback: true,
        ..TransportPolicy::default()
    })
    .unwrap();
    let descriptor = client
        .upload(
            server,
            &Keys::generate(),
            &x,
            size,
            "application/octet-stream",
            cdvm_blossom::body_from_reader(std::io::Cursor::new(ciphertext)),
            &|_| {},
        )
        .await
        .unwrap();
    BlobRef {
        url: descriptor.url,
        fallback: vec![],
        x,
        ox: sha(plain),
        size,
        file_type: "text/csv".into(),
        encryption_algorithm: BLOB_ALGORITHM.into(),
        decryption_key: key.to_hex().to_string(),
        decryption_nonce: nonce.to_hex(),
    }
}

/// A CSV of about `bytes` bytes with `canary` in one row.
fn table_with(path: &Path, bytes: u64, canary: &str) -> u64 {
    let (rows, _) = demo_table::write(path, bytes).unwrap();
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str(&format!("{canary},secret,1\n"));
    std::fs::write(path, text).unwrap();
    rows
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_table_as_a_blob_and_the_canary_stays_secret() {
    let env = env(DeploymentOptions {
        log_filter: "trace".into(),
        ..DeploymentOptions::default()
    })
    .await;
    let canary = format!(
        "CANARYBLOB{}",
        hex::encode(Keys::generate().public_key().to_bytes())
    );
    let path = env.root.join("big.csv");
    let rows = table_with(&path, 10_000_000, &canary);
    let blob = upload(&env, Source::File(path), "text/csv").await;
    assert!(blob.size > 10_000_000);
    let query = format!(
        "SELECT COUNT(*) AS n, MAX(CASE WHEN department = 'secret' THEN employee END) AS last FROM input -- {}",
        &canary[..20]
    );
    let outcome = run_ok(
        &env,
        spec(
            &env,
            kinds::SQL,
            sql(Data::Blob(blob.clone()), &query),
            vec![],
        ),
    )
    .await;
    assert_eq!(outcome.output, format!("n,last\n{},{canary}\n", rows + 1));
    common::assert_no_vm_left(&env.state).await;

    // The canary is nowhere the operator, the relays or the Blossom server can look; neither is
    // the blob's key.
    let mut deployment = env.deployment;
    deployment.stop();
    let log = deployment.orchestrator_log();
    assert!(log.contains(&outcome.request.to_hex()), "the log is real");
    for secret in [canary.as_str(), blob.decryption_key.as_str()] {
        assert!(!log.contains(secret), "secret in the orchestrator log");
        for file in common::files_under(&env.state) {
            assert!(
                !contains(&std::fs::read(&file).unwrap(), secret),
                "secret in {}",
                file.display()
            );
        }
        for event in common::all_events(deployment.relay.url()).await {
            assert!(!event.as_json().contains(secret), "secret on the relay");
        }
    }
    let stored = env.server.stored();
    assert_eq!(stored.len(), 1, "the server holds the one input blob");
    assert_eq!(stored[0].0, blob.x);
    assert!(
        !contains(&stored[0].1, &canary) && !contains(&stored[0].1, "employee"),
        "the Blossom server stores ciphertext only"
    );
    assert!(env.server.counters().downloads >= 1, "the guest fetched it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabyte_table_runs_and_the_answer_is_exact() {
    let env = env(DeploymentOptions::default()).await;
    let path = env.root.join("huge.csv");
    let (rows, bytes) = demo_table::write(&path, 100_000_000).unwrap();
    assert!(bytes >= 100_000_000);
    let blob = upload(&env, Source::File(path), "text/csv").await;
    let outcome = run_ok(
        &env,
        spec(
            &env,
            kinds::SQL,
            sql(Data::Blob(blob), demo_table::QUERY),
            vec![],
        ),
    )
    .await;
    assert_eq!(outcome.output, demo_table::expected(rows));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_tables_and_a_folder_of_documents() {
    let env = env(DeploymentOptions::default()).await;
    let tables = env.root.join("tables");
    std::fs::create_dir_all(&tables).unwrap();
    std::fs::write(tables.join("people.csv"), "id,name\n1,ann\n2,bob\n").unwrap();
    std::fs::write(tables.join("salaries.csv"), "id,salary\n1,120\n2,100\n").unwrap();
    let blob = upload(&env, Source::Folder(tables), client_blob::TAR).await;
    let outcome = run_ok(
        &env,
        spec(
            &env,
            kinds::SQL,
            sql(
                Data::Blob(blob),
                "SELECT name, salary FROM people JOIN salaries USING (id) ORDER BY salary DESC",
            ),
            vec![],
        ),
    )
    .await;
    assert_eq!(outcome.output, "name,salary\nann,120\nbob,100\n");

    let docs = env.root.join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(docs.join("a.txt"), "the cat sat\n").unwrap();
    std::fs::write(docs.join("b.md"), "# The dog\nthe end\n").unwrap();
    std::fs::write(docs.join("sub/c.txt"), "cat\n").unwrap();
    let blob = upload(&env, Source::Folder(docs), client_blob::TAR).await;
    let outcome = run_ok(
        &env,
        spec(
            &env,
            kinds::TEXT_STATS,
            InputBody::TextStats {
                text: Data::Blob(blob),
            },
            vec![],
        ),
    )
    .await;
    let stats: serde_json::Value = serde_json::from_str(&outcome.output).unwrap();
    assert_eq!(stats["files"], 3);
    assert_eq!(stats["lines"], 4);
    assert_eq!(stats["words"], 8);
    assert_eq!(stats["top_words"][0], serde_json::json!(["the", 3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_too_large_for_an_event_comes_back_as_a_blob() {
    let env = env(DeploymentOptions::default()).await;
    let path = env.root.join("t.csv");
    let (rows, _) = demo_table::write(&path, 300_000).unwrap();
    let blob = upload(&env, Source::File(path.clone()), "text/csv").await;
    let query = "SELECT employee, salary FROM input ORDER BY employee LIMIT 5000";
    let expected = {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut out = String::from("employee,salary\n");
        for line in text.lines().skip(1).take(5000) {
            let f: Vec<&str> = line.split(',').collect();
            out.push_str(&format!("{},{}\n", f[0], f[2]));
        }
        out
    };
    assert!(rows >= 5000 && expected.len() > 64 * 1024);
    let servers = vec![env.server.url().to_string()];

    // In memory.
    let outcome = run_ok(
        &env,
        spec(
            &env,
            kinds::SQL,
            sql(Data::Blob(blob.clone()), query),
            servers.clone(),
        ),
    )
    .await;
    assert_eq!(outcome.output, expected);
    assert_eq!(env.server.stored().len(), 2, "input and result blobs");
    for (_, bytes) in env.server.stored() {
        assert!(!contains(&bytes, "employee-"), "ciphertext only");
    }

    // To a file, as `cdvm submit --output` does.
    let out = env.root.join("result.csv");
    let mut job = spec(
        &env,
        kinds::SQL,
        sql(Data::Blob(blob.clone()), query),
        servers,
    );
    job.result_file = Some(out.clone());
    let outcome = run_ok(&env, job).await;
    let (file, n) = outcome.output_file.expect("written to the file");
    assert_eq!(file, out);
    assert_eq!(n, expected.len() as u64);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);

    // Without a server to put it on, the user gets a clear error, not silence.
    let message = run_err(
        &env,
        spec(&env, kinds::SQL, sql(Data::Blob(blob), query), vec![]),
    )
    .await;
    assert!(message.contains("named no Blossom server"), "{message}");
}

/// Three chunks and a bit of plaintext, for the tamper cases.
fn small_table() -> Vec<u8> {
    let mut t = b"n,word\n".to_vec();
    let mut i = 0u64;
    while t.len() < 3 * 65_536 + 1000 {
        t.extend_from_slice(format!("{i},w{}\n", i % 97).as_bytes());
        i += 1;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tampered_blob_fails_with_its_own_error() {
    let env = env(DeploymentOptions::default()).await;
    let server = env.server.url();
    let plain = small_table();
    let key = BlobKey::generate();
    let nonce = NoncePrefix::generate();
    let good = encrypt(&plain, &key, &nonce);
    let count = "SELECT COUNT(*) AS n FROM input";

    // The untampered blob works (so each failure below is the tampering's doing).
    let blob = put_raw(&server, good.clone(), &plain, &key, &nonce).await;
    let ok = run_ok(
        &env,
        spec(
            &env,
            kinds::SQL,
            sql(Data::Blob(blob.clone()), count),
            vec![],
        ),
    )
    .await;
    assert!(ok.output.starts_with("n\n"));

    // A flipped byte in chunk 1.
    let mut flipped = good.clone();
    flipped[RECORD_SIZE + 100] ^= 1;
    let b = put_raw(&server, flipped, &plain, &key, &nonce).await;
    let m = run_err(
        &env,
        spec(&env, kinds::SQL, sql(Data::Blob(b), count), vec![]),
    )
    .await;
    assert!(
        m.contains("chunk 1 of the encrypted blob failed authentication"),
        "{m}"
    );

    // Truncated at a chunk boundary (a valid prefix of whole chunks).
    let b = put_raw(
        &server,
        good[..2 * RECORD_SIZE].to_vec(),
        &plain,
        &key,
        &nonce,
    )
    .await;
    let m = run_err(
        &env,
        spec(&env, kinds::SQL, sql(Data::Blob(b), count), vec![]),
    )
    .await;
    assert!(m.contains("truncated"), "{m}");

    // Chunks 0 and 1 swapped.
    let mut swapped = good[RECORD_SIZE..2 * RECORD_SIZE].to_vec();
    swapped.extend_from_slice(&good[..RECORD_SIZE]);
    swapped.extend_from_slice(&good[2 * RECORD_SIZE..]);
    let b = put_raw(&server, swapped, &plain, &key, &nonce).await;
    let m = run_err(
        &env,
        spec(&env, kinds::SQL, sql(Data::Blob(b), count), vec![]),
    )
    .await;
    assert!(
        m.contains("chunk 0 of the encrypted blob failed authentication"),
        "{m}"
    );

    // The wrong key.
    let mut wrong_key = blob.clone();
    wrong_key.decryption_key = BlobKey::generate().to_hex().to_string();
    let m = run_err(
        &env,
        spec(&env, kinds::SQL, sql(Data::Blob(wrong_key), count), vec![]),
    )
    .await;
    assert!(
        m.contains("chunk 0 of the encrypted blob failed authentication"),
        "{m}"
    );

    // The server serves other bytes than the address says (every chunk still its own tag):
    // refused by hash or tag, never used.
    env.server.faults().set_serve_wrong_bytes(true);
    let m = run_err(
        &env,
        spec(
            &env,
            kinds::SQL,
            sql(Data::Blob(blob.clone()), count),
            vec![],
        ),
    )
    .await;
    assert!(
        m.contains("failed authentication") || m.contains("sha256"),
        "{m}"
    );
    env.server.faults().set_serve_wrong_bytes(false);

    // The ciphertext is right but the reference names another hash: refused at the end, after
    // every chunk authenticated, by `x`.
    let mut wrong_x = blob.clone();
    wrong_x.x = sha(b"something else");
    let m = run_err(
        &env,
        spec(&env, kinds::SQL, sql(Data::Blob(wrong_x), count), vec![]),
    )
    .await;
    assert!(m.contains("sha256") || m.contains("hash"), "{m}");

    // The server cuts the stream short.
    env.server
        .faults()
        .set_truncate_at(Some(RECORD_SIZE as u64 + 10));
    let m = run_err(
        &env,
        spec(
            &env,
            kinds::SQL,
            sql(Data::Blob(blob.clone()), count),
            vec![],
        ),
    )
    .await;
    assert!(
        m.contains("ended after") || m.contains("interrupted"),
        "{m}"
    );
    env.server.faults().set_truncate_at(None);

    // A plaintext that does not hash to `ox` (a sender's bug or lie): refused.
    let mut wrong_ox = blob.clone();
    wrong_ox.ox = sha(b"other");
    let m = run_err(
        &env,
        spec(&env, kinds::SQL, sql(Data::Blob(wrong_ox), count), vec![]),
    )
    .await;
    assert!(m.contains("decrypted input hashes to"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_or_lies_is_skipped_for_the_next_one() {
    let env = env(DeploymentOptions::default()).await;
    let plain = small_table();
    let key = BlobKey::generate();
    let nonce = NoncePrefix::generate();
    let ct = encrypt(&plain, &key, &nonce);
    let count = "SELECT COUNT(*) AS n FROM input";

    let liar = BlossomServer::start(ServerConfig::default()).await.unwrap();
    let down = BlossomServer::start(ServerConfig::default()).await.unwrap();
    let on_liar = put_raw(&liar.url(), ct.clone(), &plain, &key, &nonce).await;
    let on_down = put_raw(&down.url(), ct.clone(), &plain, &key, &nonce).await;
    let good = put_raw(&env.server.url(), ct, &plain, &key, &nonce).await;
    liar.faults().set_serve_wrong_bytes(true);
    down.faults().set_down(true);
    let expected = format!("n\n{}\n", plain.iter().filter(|&&b| b == b'\n').count() - 1);

    let mut blob = on_liar.clone();
    blob.fallback = vec![on_down.url.clone(), good.url.clone()];
    let outcome = run_ok(
        &env,
        spec(&env, kinds::SQL, sql(Data::Blob(blob), count), vec![]),
    )
    .await;
    assert_eq!(outcome.output, expected);
    assert!(liar.counters().downloads >= 1, "the liar was tried first");
    assert!(
        env.server.counters().downloads >= 1,
        "the good server served it"
    );

    // All servers bad: the error names each one and why.
    let mut blob = on_liar;
    blob.fallback = vec![on_down.url.clone()];
    let m = run_err(
        &env,
        spec(&env, kinds::SQL, sql(Data::Blob(blob), count), vec![]),
    )
    .await;
    assert!(m.contains("any of its 2 URL(s)"), "{m}");
    assert!(
        m.contains(&liar.url().to_string()[..20]) && m.contains("503"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_over_the_cap_is_refused_by_client_and_guest() {
    let env = env(DeploymentOptions {
        max_input_bytes: Some(1_000_000),
        blossom: vec![],
        ..DeploymentOptions::default()
    })
    .await;
    let path = env.root.join("big.csv");
    demo_table::write(&path, 2_000_000).unwrap();

    // The CLI reads the cap from the announcement and refuses before uploading anything.
    let mut command = submit(&env, &path, "SELECT 1");
    command.arg("--blossom").arg(env.server.url().to_string());
    let out = cli(command).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("accepts at most 1000000"), "{stderr}");
    assert_eq!(env.server.counters().uploads, 0, "nothing was uploaded");

    // A client that ignores the cap: the guest refuses before downloading.
    let blob = upload(&env, Source::File(path), "text/csv").await;
    let downloads = env.server.counters().downloads;
    let m = run_err(
        &env,
        spec(&env, kinds::SQL, sql(Data::Blob(blob), "SELECT 1"), vec![]),
    )
    .await;
    assert!(m.contains("accepts at most 1000000"), "{m}");
    assert_eq!(env.server.counters().downloads, downloads, "no download");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdvm_submit_sends_a_large_file_through_the_servers_the_dvm_suggests() {
    let server = BlossomServer::start(ServerConfig {
        max_blob: 1 << 30,
        require_auth: true,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let env = env(DeploymentOptions {
        blossom: vec![server.url().to_string()],
        ..DeploymentOptions::default()
    })
    .await;
    let path = env.root.join("t.csv");
    let (rows, _) = demo_table::write(&path, 3_000_000).unwrap();
    let out_file = env.root.join("out.csv");
    let mut command = submit(&env, &path, demo_table::QUERY);
    command.arg("--output").arg(&out_file);
    let out = cli(command).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the DVM's announcement"), "{stderr}");
    assert!(stderr.contains("uploading to"), "progress shown: {stderr}");
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        demo_table::expected(rows)
    );
    assert_eq!(server.counters().uploads, 1);
}

/// An independent Blossom implementation (blossom-rs 0.6, open mode, memory backend): the
/// client's upload (its BUD-11 token refused, then anonymous), the guest's download, and the
/// guest's result upload all work with it too (its deviations: crates/blossom/tests/interop_blossom_rs.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_job_works_through_blossom_rs_too() {
    let env = env(DeploymentOptions::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router =
        blossom_rs::BlobServer::new(blossom_rs::MemoryBackend::new(), base.as_str()).router();
    let serving = tokio::spawn(async move { axum::serve(listener, router).await });
    let other = Url::parse(&base).unwrap();

    let path = env.root.join("t.csv");
    let (rows, _) = demo_table::write(&path, 2_000_000).unwrap();
    let blob = client_blob::upload_input(
        &client_blob::client().unwrap(),
        &Source::File(path),
        "text/csv",
        std::slice::from_ref(&other),
        &Keys::generate(),
        cdvm_protocol::DEFAULT_MAX_INPUT_BYTES,
        &|_| {},
    )
    .await
    .expect("upload to blossom-rs");
    assert!(blob.url.starts_with(&base), "{}", blob.url);
    let outcome = run_ok(
        &env,
        spec(
            &env,
            kinds::SQL,
            sql(Data::Blob(blob.clone()), demo_table::QUERY),
            vec![],
        ),
    )
    .await;
    assert_eq!(outcome.output, demo_table::expected(rows));

    // A large result, uploaded by the guest to blossom-rs and fetched back.
    let query = "SELECT employee FROM input ORDER BY employee LIMIT 5000";
    let outcome = run_ok(
        &env,
        spec(
            &env,
            kinds::SQL,
            sql(Data::Blob(blob), query),
            vec![base.clone()],
        ),
    )
    .await;
    assert_eq!(outcome.output.lines().count(), 5001);
    assert!(outcome.output.starts_with("employee\nemployee-000000000\n"));
    serving.abort();
}

/// With `--key`, `cdvm submit` takes the user's own BUD-03 server list (kind 10063) from the
/// relays when no `--blossom` is given (and the DVM suggests none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdvm_submit_uses_the_users_kind_10063_server_list() {
    let env = env(DeploymentOptions::default()).await;
    let user = Keys::generate();
    let key_file = env.root.join("user.key");
    std::fs::write(&key_file, user.secret_key().to_secret_hex()).unwrap();
    let list = cdvm_protocol::nostr::EventBuilder::new(
        cdvm_protocol::nostr::Kind::from(kinds::USER_SERVER_LIST),
        "",
    )
    .tag(cdvm_protocol::nostr::Tag::custom(
        cdvm_protocol::nostr::TagKind::from("server"),
        [env.server.url().to_string()],
    ))
    .sign_with_keys(&user)
    .unwrap();
    let relay = common::client(env.deployment.relay.url(), &user).await;
    relay.send_event(&list).await.unwrap();
    relay.shutdown().await;

    let path = env.root.join("t.csv");
    let (rows, _) = demo_table::write(&path, 500_000).unwrap();
    let mut command = submit(&env, &path, demo_table::QUERY);
    command.arg("--key").arg(&key_file);
    let out = cli(command).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("your kind-10063 server list"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        demo_table::expected(rows)
    );
    assert_eq!(env.server.counters().uploads, 1);

    // Without a key there is no list, and with no server at all the error says what to do.
    let out = cli(submit(&env, &path, demo_table::QUERY)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--blossom URL"), "{stderr}");
}
