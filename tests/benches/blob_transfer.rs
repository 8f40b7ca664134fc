//! Large confidential inputs through Blossom (docs/protocol.md §5.8), on the process provider with
//! a local relay and an in-process strict Blossom server: where the time and the memory go.
//!
//! Run (release binaries: the bench starts `cdvm-orchestrator` and `cdvm-agent`, and runs the
//! client as `cdvm submit`, all from target/release):
//!
//! ```text
//! cargo build --release --bins && cargo bench -p cdvm-e2e --bench blob_transfer -- [SIZES…] [--reps N]
//! ```
//!
//! SIZES like `1MB 10MB 100MB` (the default) or `1GiB`; `--reps` repeats each in-process step
//! (default 3, the median is shown). Prints markdown tables; docs/benchmarks.md records a run.
//!
//! Per size:
//! 1. **Steps, in-process**, each timed alone over the generated salary CSV: encrypt
//!    (`EncryptReader` from the file into a SHA-256 sink), decrypt
//!    (`Decryptor` over the ciphertext in memory), upload (`BlossomClient::upload` of the
//!    ciphertext file), download (`open`/`next_chunk`, size and hash checked), download+decrypt
//!    streamed, decryption on its own thread (what the guest does before its executor). The floor: `curl` PUT of the same
//!    ciphertext to the same server's /upload (valid BUD-11 token, `X-SHA-256`) and `curl` GET
//!    of it to /dev/null, in the same run. Without `curl` the floor is left out, loudly.
//! 2. **End to end**: `target/release/cdvm submit` as a child process (under `/usr/bin/time`
//!    for its peak RSS) running the SQL job (kind 5970, `demo_table::QUERY`) through the relay,
//!    the orchestrator and the process provider; the answer must equal
//!    `demo_table::expected(rows)` or the bench fails. Then a text-statistics job (kind 5971)
//!    over a text of the same size with a 16-word vocabulary, its counts checked here: its
//!    executor holds a few counters only, so the agent's peak RSS there is the transfer path's.
//! 3. **Agent peak RSS**: the agent logs its VmHWM (`peak_rss_kib`, "session over") before
//!    publishing the result; the bench holds each VM's console.log open from the moment it
//!    appears (the provider deletes the VM folder when it destroys the VM) and reads it back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdvm_blob::{BlobKey, Decryptor, EncryptReader, NoncePrefix};
use cdvm_blossom::server::{BlossomServer, ServerConfig};
use cdvm_blossom::{AuthVerb, BlossomClient, Expected, TransportPolicy};
use cdvm_client::demo::{vms_dir, DeploymentOptions, LocalDeployment};
use cdvm_client::demo_table;
use cdvm_protocol::nostr::{Keys, Timestamp};
use sha2::{Digest, Sha256};

const MB: f64 = 1e6;

/// The directory holding the release binaries (this bench runs from target/release/deps).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// "0.123 s (81 MB/s)".
fn timed(d: Duration, bytes: u64) -> String {
    format!(
        "{:.3} s ({:.0} MB/s)",
        d.as_secs_f64(),
        bytes as f64 / MB / d.as_secs_f64().max(1e-9)
    )
}

fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes.is_multiple_of(1_000_000) {
        format!("{} MB", bytes / 1_000_000)
    } else {
        format!("{bytes} B")
    }
}

// ---------------------------------------------------------------------------------------------
// Step 1: the transfer path's pieces, in-process.

struct Steps {
    ciphertext: u64,
    encrypt: Duration,
    decrypt: Duration,
    upload: Duration,
    download: Duration,
    download_decrypt: Duration,
    curl_put: Option<Duration>,
    curl_get: Option<Duration>,
}

/// Encrypts `path` into a SHA-256 sink (the client's first pass); returns (x, size).
fn encrypt_to_hash(path: &Path, key: &BlobKey, nonce: &NoncePrefix) -> (String, u64) {
    let file = BufReader::new(std::fs::File::open(path).unwrap());
    let mut enc = EncryptReader::new(key, nonce, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = enc.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    assert!(enc.summary().is_some());
    (hex::encode(hasher.finalize()), size)
}

/// Decrypts `ciphertext` fed in 64 KiB pieces; returns the plaintext's SHA-256.
fn decrypt_all(ciphertext: &[u8], key: &BlobKey, nonce: &NoncePrefix) -> [u8; 32] {
    let mut dec = Decryptor::new(key, nonce);
    let mut out = Vec::new();
    let mut n = 0u64;
    for piece in ciphertext.chunks(64 * 1024) {
        dec.update(piece, &mut out).unwrap();
        for p in out.drain(..) {
            n += p.len() as u64;
        }
    }
    let summary = dec.finish(&mut out).unwrap();
    for p in out.drain(..) {
        n += p.len() as u64;
    }
    assert_eq!(n, summary.plaintext_len);
    summary.plaintext_sha256
}

fn curl(args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let d = t.elapsed();
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && (code == "200" || code == "201"),
        "curl {args:?}: status {code}, {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

/// `BlossomClient::upload` of a ciphertext file; returns its time.
async fn upload_file(
    blossom: &BlossomClient,
    server: &BlossomServer,
    user: &Keys,
    x: &str,
    size: u64,
    path: &Path,
) -> Duration {
    let body = cdvm_blossom::body_from_reader(std::fs::File::open(path).unwrap());
    let t = Instant::now();
    let d = blossom
        .upload(
            &server.url(),
            user,
            x,
            size,
            "application/octet-stream",
            body,
            &|_| {},
        )
        .await
        .expect("upload");
    assert_eq!(d.sha256, x);
    t.elapsed()
}

#[allow(clippy::too_many_arguments)]
async fn steps(
    server: &BlossomServer,
    blossom: &BlossomClient,
    csv: &Path,
    plain_len: u64,
    plain_sha: [u8; 32],
    work: &Path,
    reps: usize,
    have_curl: bool,
) -> Steps {
    let key = BlobKey::generate();
    let nonce = NoncePrefix::generate();
    let user = Keys::generate();

    let mut encrypt = Vec::new();
    let mut x_size = None;
    for _ in 0..reps {
        let t = Instant::now();
        let r = encrypt_to_hash(csv, &key, &nonce);
        encrypt.push(t.elapsed());
        x_size = Some(r);
    }
    let (x, size) = x_size.unwrap();

    // The ciphertext as a file (for the uploads) and in memory (for the decrypt step); untimed.
    let ct_path = work.join("input.blob");
    {
        let mut enc = EncryptReader::new(
            &key,
            &nonce,
            BufReader::new(std::fs::File::open(csv).unwrap()),
        );
        let mut f = std::io::BufWriter::new(std::fs::File::create(&ct_path).unwrap());
        std::io::copy(&mut enc, &mut f).unwrap();
        f.flush().unwrap();
    }
    let ciphertext = std::fs::read(&ct_path).unwrap();
    assert_eq!(ciphertext.len() as u64, size);
    assert_eq!(hex::encode(Sha256::digest(&ciphertext)), x);

    let mut decrypt = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let sha = decrypt_all(&ciphertext, &key, &nonce);
        decrypt.push(t.elapsed());
        assert_eq!(sha, plain_sha);
    }
    drop(ciphertext);

    // Uploads: the first stores the blob (201, untimed); every timed one, client or curl, is
    // then a re-upload the server streams, hashes and copies just the same (200).
    upload_file(blossom, server, &user, &x, size, &ct_path).await;
    let mut upload = Vec::new();
    for _ in 0..reps {
        upload.push(upload_file(blossom, server, &user, &x, size, &ct_path).await);
    }

    let url = cdvm_blossom::blob_url(&server.url(), &x);
    let expected = Expected {
        x: x.clone(),
        size,
        max: size,
    };
    let mut download = Vec::new();
    let mut download_decrypt = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let mut reader = blossom.open(&url, &expected).await.expect("open");
        while let Some(chunk) = reader.next_chunk().await.expect("chunk") {
            std::hint::black_box(&chunk);
        }
        download.push(t.elapsed());

        // As the guest does it: the network on the async task, decryption on a thread of its own.
        let t = Instant::now();
        let mut reader = blossom.open(&url, &expected).await.expect("open");
        let (ctx, mut crx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
        let decrypting = {
            let (key, nonce) = (key.clone(), nonce);
            tokio::task::spawn_blocking(move || {
                let mut dec = Decryptor::new(&key, &nonce);
                let mut out = Vec::new();
                while let Some(chunk) = crx.blocking_recv() {
                    dec.update(&chunk, &mut out).expect("decrypt");
                    out.clear();
                }
                dec.finish(&mut out).expect("final chunk")
            })
        };
        while let Some(chunk) = reader.next_chunk().await.expect("chunk") {
            ctx.send(chunk).await.expect("decryption thread");
        }
        drop(ctx);
        let summary = decrypting.await.expect("decryption thread");
        download_decrypt.push(t.elapsed());
        assert_eq!(summary.plaintext_len, plain_len);
        assert_eq!(summary.plaintext_sha256, plain_sha);
    }

    let (mut curl_put, mut curl_get) = (None, None);
    if have_curl {
        let expiration = Timestamp::from_secs(Timestamp::now().as_secs() + 3600);
        let token = cdvm_blossom::auth_header(
            &cdvm_blossom::auth_event(&user, AuthVerb::Upload, &x, expiration, "bench").unwrap(),
        );
        let upload_url = format!("{}upload", server.url());
        let ct = ct_path.display().to_string();
        let (mut puts, mut gets) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let auth = format!("Authorization: {token}");
            let sha = format!("X-SHA-256: {x}");
            puts.push(curl(&[
                // -T streams the file as a PUT body.
                "-T",
                &ct,
                "-H",
                &auth,
                "-H",
                &sha,
                "-H",
                "Content-Type: application/octet-stream",
                // No 100-continue round trip: the floor is the plain transfer.
                "-H",
                "Expect:",
                &upload_url,
            ]));
            gets.push(curl(&[url.as_str()]));
        }
        curl_put = Some(median(puts));
        curl_get = Some(median(gets));
    }
    let _ = std::fs::remove_file(&ct_path);
    Steps {
        ciphertext: size,
        encrypt: median(encrypt),
        decrypt: median(decrypt),
        upload: median(upload),
        download: median(download),
        download_decrypt: median(download_decrypt),
        curl_put,
        curl_get,
    }
}

// ---------------------------------------------------------------------------------------------
// Step 2 and 3: whole jobs, the client as a child process, the agent's log watched.

/// Opens every VM's console.log as soon as it appears and keeps it open: the provider deletes
/// the VM folder on destroy, the open file still reads.
struct ConsoleWatch {
    stop: Arc<AtomicBool>,
    files: Arc<Mutex<HashMap<String, std::fs::File>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConsoleWatch {
    fn start(vms: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let files: Arc<Mutex<HashMap<String, std::fs::File>>> = Arc::default();
        let thread = {
            let (stop, files) = (stop.clone(), files.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(entries) = std::fs::read_dir(&vms) {
                        for e in entries.flatten() {
                            let name = e.file_name().to_string_lossy().to_string();
                            let mut files = files.lock().unwrap();
                            if files.contains_key(&name) {
                                continue;
                            }
                            if let Ok(f) = std::fs::File::open(e.path().join("console.log")) {
                                files.insert(name, f);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        ConsoleWatch {
            stop,
            files,
            thread: Some(thread),
        }
    }

    /// Everything the VMs seen so far printed (and forgets them).
    fn take(&self) -> Vec<String> {
        let mut files = self.files.lock().unwrap();
        files
            .drain()
            .map(|(_, mut f)| {
                let mut s = String::new();
                let _ = f.read_to_string(&mut s);
                s
            })
            .collect()
    }
}

impl Drop for ConsoleWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Seconds since midnight of a tracing line's RFC 3339 timestamp.
fn line_time(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?;
    let time = t.split('T').nth(1)?;
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// From the agent's log: (peak RSS in KiB, seconds from "input received" to "session over":
/// download, decryption and the executor).
fn agent_figures(logs: &[String]) -> (u64, Option<f64>) {
    for log in logs {
        let log = strip_ansi(log);
        let Some(over) = log.lines().find(|l| l.contains("session over")) else {
            continue;
        };
        let rss = over
            .split_whitespace()
            .find_map(|w| w.strip_prefix("peak_rss_kib="))
            .and_then(|v| v.parse().ok())
            .expect("peak_rss_kib in the agent's log");
        let input = log
            .lines()
            .find(|l| l.contains("input received"))
            .and_then(line_time);
        let guest = match (input, line_time(over)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        return (rss, guest);
    }
    panic!(
        "no agent log with a `session over` line (is target/release/cdvm-agent built from this tree?):\n{}",
        logs.join("\n---\n")
    );
}

struct Job {
    /// Spawn to the start of the encrypted upload (process start, relay, announcement).
    prepare: Duration,
    /// The client's two passes: encrypt+hash, then encrypt+upload.
    upload: Duration,
    /// Request published to result received and decrypted.
    submit_to_result: Duration,
    /// Spawn to result received.
    total: Duration,
    client_rss_kib: u64,
    agent_rss_kib: u64,
    /// Input received to the result ready, in the guest (download, decrypt, executor).
    guest: Option<f64>,
    stdout: String,
}

fn run_client(
    deployment: &LocalDeployment,
    server: &BlossomServer,
    watch: &ConsoleWatch,
    kind: u16,
    input: &Path,
    query: Option<&str>,
    work: &Path,
) -> Job {
    let _ = watch.take();
    let rss_file = work.join("client-rss.txt");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(bin_dir().join("cdvm"))
        .arg("submit")
        .arg("--relay")
        .arg(deployment.relay.url())
        .arg("--dvm")
        .arg(deployment.dvm.public_key().to_hex())
        .arg("--kind")
        .arg(kind.to_string())
        .arg("--input")
        .arg(input)
        .arg("--policy")
        .arg(&deployment.dev_policy_path)
        .arg("--blossom")
        .arg(server.url().as_str());
    if let Some(q) = query {
        cmd.arg("--query").arg(q);
    }
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn /usr/bin/time cdvm submit");
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push((t0.elapsed(), line));
        }
        seen
    });
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    let lines = lines.join().unwrap();
    let log: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert!(
        status.success(),
        "cdvm submit failed:\n{}\n--- orchestrator ---\n{}",
        log.join("\n"),
        deployment.orchestrator_log()
    );
    let at = |needle: &str| {
        lines
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no `{needle}` in the client's output:\n{}", log.join("\n")))
    };
    let upload_start = at("is sent as an encrypted blob");
    let upload_end = at("bytes of ciphertext");
    let submitted = at("submitted request");
    let result = at("result received and decrypted");
    let client_rss_kib = std::fs::read_to_string(&rss_file)
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("max RSS from /usr/bin/time");
    let (agent_rss_kib, guest) = agent_figures(&watch.take());
    Job {
        prepare: upload_start,
        upload: upload_end - upload_start,
        submit_to_result: result - submitted,
        total: result,
        client_rss_kib,
        agent_rss_kib,
        guest,
        stdout,
    }
}

/// A text of at least `bytes` bytes over a 16-word vocabulary; returns its (lines, words,
/// chars, count of the most frequent word), computed as it is written.
fn write_text(path: &Path, bytes: u64) -> (u64, u64, u64, u64) {
    const WORDS: [&str; 16] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
    ];
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut counts = [0u64; 16];
    let (mut lines, mut words, mut chars) = (0u64, 0u64, 0u64);
    while chars < bytes {
        let mut line = String::new();
        for j in 0..12u64 {
            let w = ((lines * 7 + j * 3) % 16) as usize;
            if j > 0 {
                line.push(' ');
            }
            line.push_str(WORDS[w]);
            counts[w] += 1;
        }
        line.push('\n');
        out.write_all(line.as_bytes()).unwrap();
        lines += 1;
        words += 12;
        chars += line.len() as u64;
    }
    out.flush().unwrap();
    (lines, words, chars, *counts.iter().max().unwrap())
}

struct Row {
    size: u64,
    rows: u64,
    steps: Steps,
    sql: Job,
    text: Job,
}

fn parse_args() -> (Vec<u64>, usize) {
    let mut sizes = Vec::new();
    let mut reps = 3;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--reps" => reps = args.next().and_then(|n| n.parse().ok()).expect("--reps N"),
            other => sizes.push(demo_table::parse_size(other).expect("a size such as 10MB")),
        }
    }
    if sizes.is_empty() {
        sizes = vec![1_000_000, 10_000_000, 100_000_000];
    }
    (sizes, reps.max(1))
}

fn main() {
    let (sizes, reps) = parse_args();
    let bins = bin_dir();
    for b in ["cdvm", "cdvm-agent", "cdvm-orchestrator"] {
        assert!(
            bins.join(b).is_file(),
            "{} missing: run `cargo build --release --bins` first",
            bins.join(b).display()
        );
    }
    assert!(
        Path::new("/usr/bin/time").is_file(),
        "/usr/bin/time (GNU time) is needed for the client's peak RSS"
    );
    let have_curl = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_curl {
        eprintln!();
        eprintln!(
            "!!! curl NOT FOUND: the plain-transfer floor is NOT measured; its columns say n/a !!!"
        );
        eprintln!();
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows: Vec<Row> = rt.block_on(async {
        let server = BlossomServer::start(ServerConfig {
            max_blob: u64::MAX,
            require_auth: true,
            ..ServerConfig::default()
        })
        .await
        .unwrap();
        let blossom = BlossomClient::new(TransportPolicy {
            allow_insecure_loopback: true,
            ..TransportPolicy::default()
        })
        .unwrap();
        let state = tempfile::Builder::new()
            .prefix("cdvm-bench-blob-")
            .tempdir()
            .unwrap();
        let opts = DeploymentOptions {
            deadlines: (60, 300, 900),
            per_user_per_minute: 1000,
            ..DeploymentOptions::default()
        };
        let deployment = LocalDeployment::start(&state.path().join("state"), &opts)
            .await
            .expect("local deployment (relay + orchestrator + process provider)");
        let watch = ConsoleWatch::start(vms_dir(&deployment.state_dir));
        let mut rows = Vec::new();
        for &size in &sizes {
            let work = tempfile::tempdir().unwrap();
            let csv = work.path().join("table.csv");
            let (nrows, written) = demo_table::write(&csv, size).unwrap();
            let plain_sha: [u8; 32] = Sha256::digest(std::fs::read(&csv).unwrap()).into();
            eprintln!("{}: steps ({reps} reps)…", size_label(size));
            let steps = steps(
                &server,
                &blossom,
                &csv,
                written,
                plain_sha,
                work.path(),
                reps,
                have_curl,
            )
            .await;

            eprintln!("{}: SQL job end to end…", size_label(size));
            let sql = {
                let (csv, work_path) = (csv.clone(), work.path().to_path_buf());
                let d = &deployment;
                let (s, w) = (&server, &watch);
                tokio::task::block_in_place(|| {
                    run_client(d, s, w, 5970, &csv, Some(demo_table::QUERY), &work_path)
                })
            };
            assert_eq!(
                sql.stdout,
                demo_table::expected(nrows),
                "the SQL job's answer differs from the one computed here: no numbers for it"
            );

            eprintln!("{}: text statistics job end to end…", size_label(size));
            let txt = work.path().join("words.txt");
            let (lines, words, chars, top) = write_text(&txt, size);
            let text = tokio::task::block_in_place(|| {
                run_client(&deployment, &server, &watch, 5971, &txt, None, work.path())
            });
            let v: serde_json::Value = serde_json::from_str(&text.stdout).expect("stats JSON");
            assert_eq!(v["lines"], lines, "text stats: lines");
            assert_eq!(v["words"], words, "text stats: words");
            assert_eq!(v["chars"], chars, "text stats: chars");
            assert_eq!(v["top_words"][0][1], top, "text stats: top word count");
            rows.push(Row {
                size,
                rows: nrows,
                steps,
                sql,
                text,
            });
        }
        drop(watch);
        drop(deployment);
        server.shutdown().await;
        rows
    });
    print_tables(&rows, reps, have_curl);
}

fn print_tables(rows: &[Row], reps: usize, have_curl: bool) {
    let na = || "n/a (no curl)".to_owned();
    println!("### Steps, in-process (median of {reps})\n");
    println!("| plaintext | ciphertext | encrypt | decrypt | upload (client) | upload (curl floor) | download (client) | download (curl floor) | download+decrypt streamed |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let s = &r.steps;
        let c = s.ciphertext;
        println!(
            "| {} | {} B | {} | {} | {} | {} | {} | {} | {} |",
            size_label(r.size),
            c,
            timed(s.encrypt, r.size),
            timed(s.decrypt, r.size),
            timed(s.upload, c),
            s.curl_put.map(|d| timed(d, c)).unwrap_or_else(na),
            timed(s.download, c),
            s.curl_get.map(|d| timed(d, c)).unwrap_or_else(na),
            timed(s.download_decrypt, c),
        );
    }
    println!("\n### SQL job (kind 5970) end to end: `cdvm submit` → relay → orchestrator → process provider → agent (SQLite)\n");
    println!("| plaintext | rows | client start → upload begins | client encrypt (to a spool file) + upload | submit → result | **total** (start → result) | in the guest: download + decrypt + SQL | transfer path vs curl floor | client peak RSS | agent peak RSS |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let j = &r.sql;
        let s = &r.steps;
        // The transfer path as the job runs it: the client's encrypt-then-upload plus the
        // download+decrypt step, against the plain PUT + GET of the same bytes.
        let ratio = match (s.curl_put, s.curl_get) {
            (Some(p), Some(g)) if have_curl => format!(
                "{:.1}× ({} s vs {} s)",
                (j.upload + s.download_decrypt).as_secs_f64() / (p + g).as_secs_f64(),
                secs(j.upload + s.download_decrypt),
                secs(p + g)
            ),
            _ => na(),
        };
        println!(
            "| {} | {} | {} s | {} | {} s | **{} s** | {} | {} | {:.1} MiB | {:.1} MiB |",
            size_label(r.size),
            r.rows,
            secs(j.prepare),
            timed(j.upload, r.size),
            secs(j.submit_to_result),
            secs(j.total),
            j.guest
                .map(|g| format!("{g:.3} s"))
                .unwrap_or_else(|| "?".into()),
            ratio,
            j.client_rss_kib as f64 / 1024.0,
            j.agent_rss_kib as f64 / 1024.0,
        );
    }
    println!("\n### Text statistics job (kind 5971, 16-word vocabulary) end to end: the transfer path's own memory\n");
    println!("| plaintext | client encrypt + upload | submit → result | total | in the guest: download + decrypt + count | client peak RSS | agent peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let j = &r.text;
        println!(
            "| {} | {} | {} s | {} s | {} | {:.1} MiB | {:.1} MiB |",
            size_label(r.size),
            timed(j.upload, r.size),
            secs(j.submit_to_result),
            secs(j.total),
            j.guest
                .map(|g| format!("{g:.3} s"))
                .unwrap_or_else(|| "?".into()),
            j.client_rss_kib as f64 / 1024.0,
            j.agent_rss_kib as f64 / 1024.0,
        );
    }
}
