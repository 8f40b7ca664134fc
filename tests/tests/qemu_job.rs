//! A job end to end with QEMU really booting the guest image under TCG: the agent is PID 1 of a
//! Debian kernel, reaches the relay through QEMU's user network, attests through the host-side
//! simulated secure processor with the image's real SEV-SNP launch digest, downloads its
//! multi-megabyte input as an encrypted blob from a Blossom server on the host (through the guest's
//! own network stack: the real path a large input takes), and returns the result;
//! the QEMU process and its files are gone afterwards. Then the same deployment boots an initrd
//! with one byte changed, and the client refuses its attestation.
//!
//! Needs `qemu-system-x86_64` and the image from `scripts/build-image` (built by `scripts/test`
//! and `.ci/run` before the tests); a missing image fails with a message saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cdvm_attestation::VerifyError;
use cdvm_blossom::server::{BlossomServer, ServerConfig};
use cdvm_client::blob as client_blob;
use cdvm_client::demo::{qemu_vms_dir, DeploymentOptions, LocalDeployment};
use cdvm_client::{demo_table, run_job, ClientError, JobSpec, Stage, Timeouts};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::{kinds, Data, InputBody};

fn built_image() -> PathBuf {
    cdvm_provider_qemu::built_image_dir().unwrap_or_else(|e| panic!("{e}"))
}

/// A private copy of the image folder, so a test can change its files.
fn copy_image(to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(built_image()).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    to.to_path_buf()
}

fn job(deployment: &LocalDeployment, attest: Duration) -> JobSpec {
    JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: "city,temp\noslo,3\nlima,19\nlima,21\n".into(),
            query: "SELECT city, AVG(temp) AS t FROM input GROUP BY city ORDER BY city".into(),
        },
        policy: deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest,
            result: Duration::from_secs(90),
            destroyed: Duration::from_secs(30),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    }
}

/// The initrd with one byte of its payload changed, still a valid gzip stream so the kernel
/// boots it: only the measurement tells the difference. The initrd is the models' uncompressed
/// archive followed by the gzip one (docs/image.md, "Models"); the byte changed is in the latter.
fn tamper_one_byte(initrd: &Path) {
    let whole = std::fs::read(initrd).unwrap();
    // The uncompressed archive's trailer (none in a gzip-only initrd): the gzip stream follows.
    let trailer = whole
        .windows(10)
        .position(|w| w == b"TRAILER!!!")
        .unwrap_or(0);
    let gz = trailer
        + whole[trailer..]
            .windows(3)
            .position(|w| w == [0x1f, 0x8b, 0x08])
            .expect("a gzip archive in the initrd");
    let (prefix, packed) = whole.split_at(gz);
    let mut cpio = Vec::new();
    flate2::read::GzDecoder::new(packed)
        .read_to_end(&mut cpio)
        .expect("the image's main archive is gzip");
    let at = find(&cpio, b"cdvm-release").expect("the image carries /etc/cdvm-release");
    // The file's content follows its header and name; change one byte of it.
    let content = at + cpio[at..].iter().position(|b| *b == b'\n').unwrap() - 1;
    cpio[content] ^= 0x01;
    let mut out = flate2::write::GzEncoder::new(prefix.to_vec(), flate2::Compression::default());
    out.write_all(&cpio).unwrap();
    std::fs::write(initrd, out.finish().unwrap()).unwrap();
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_in_a_real_qemu_guest_and_a_tampered_initrd_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_image(&dir.path().join("image"));
    let state = dir.path().join("state");
    let opts = DeploymentOptions {
        qemu_image: Some(image.clone()),
        // The orchestrator gives up on a guest that never passes its policy after 60 s, before the
        // client (75 s) does, so the tampered VM is gone when the client returns.
        deadlines: (60, 120, 120),
        ..DeploymentOptions::default()
    };
    let deployment = LocalDeployment::start(&state, &opts).await.unwrap();

    // The honest image: the job completes inside the VM, on a 4 MB table the guest downloads
    // from a Blossom server on the host (plain http through the user-network gateway, allowed
    // only because the TEE is simulated: fw_cfg opt/cdvm/dev-blossom).
    let server = BlossomServer::start(ServerConfig {
        max_blob: 1 << 30,
        require_auth: true,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let table = dir.path().join("table.csv");
    let (rows, _) = demo_table::write(&table, 4_000_000).unwrap();
    let blob = client_blob::upload_input(
        &client_blob::client().unwrap(),
        &client_blob::Source::File(table),
        "text/csv",
        &[server.url()],
        &Keys::generate(),
        cdvm_protocol::DEFAULT_MAX_INPUT_BYTES,
        &|_| {},
    )
    .await
    .unwrap();
    let mut spec = job(&deployment, Duration::from_secs(120));
    spec.input = InputBody::Sql {
        table_csv: Data::Blob(blob),
        query: demo_table::QUERY.into(),
    };
    let mut stages = Vec::new();
    let outcome = run_job(spec, |s, t| stages.push((format!("{s:?}"), t))).await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => panic!(
            "job failed: {e}\n--- orchestrator log ---\n{}",
            deployment.orchestrator_log()
        ),
    };
    assert_eq!(outcome.output, demo_table::expected(rows));
    assert!(
        server.counters().downloads >= 1,
        "the guest fetched the blob itself"
    );
    common::assert_announced(
        deployment.relay.url(),
        &outcome,
        deployment.dvm.public_key(),
    )
    .await;
    assert!(outcome.claims.simulated);
    let pinned = &deployment.dev_policy.measurements[0].measurement;
    assert_eq!(&outcome.claims.measurement.to_string(), pinned);
    // The simulator reported the digest the image build published for real SEV-SNP hosts.
    let published = cdvm_attestation::Policy::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/image-snp.yaml"),
    )
    .unwrap();
    assert!(
        published
            .measurements
            .iter()
            .any(|m| &m.measurement == pinned),
        "the booted image's digest is pinned by policies/image-snp.yaml (run scripts/build-image)"
    );
    common::assert_no_vm_in(&qemu_vms_dir(&state)).await;

    // One byte of the initrd changed: the guest boots and attests, with another launch digest.
    tamper_one_byte(&image.join("initrd.img"));
    let mut refused = Vec::new();
    let err = run_job(job(&deployment, Duration::from_secs(75)), |s, _| {
        if let Stage::Refused { reason, .. } = s {
            refused.push(reason.clone());
        }
    })
    .await
    .expect_err("a tampered initrd must not get the input");
    match err {
        ClientError::AttestationRefused(VerifyError::MeasurementNotAllowed { .. }) => {}
        other => panic!(
            "expected MeasurementNotAllowed, got {other}\nrefusals: {refused:?}\n--- orchestrator log ---\n{}",
            deployment.orchestrator_log()
        ),
    }
    assert!(
        !refused.is_empty(),
        "the client saw and refused the attestation"
    );
    common::assert_no_vm_in(&qemu_vms_dir(&state)).await;
    drop(deployment);
}

/// The RAG job (kind 5050) in a QEMU guest answering from the models its measured image
/// carries: the attestation names the model that answered. Ignored in `scripts/test` because
/// llama.cpp's AVX2 kernels under QEMU's TCG (no KVM here) are emulated instruction by
/// instruction: one short answer took 859 s on 2026-12-07, more than CI's budget allows. Run it
/// with `cargo test -p cdvm-e2e --test qemu_job -- --ignored --nocapture` (docs/benchmarks.md
/// records the run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes of LLM inference under TCG emulation: run by hand (see the doc comment)"]
async fn a_rag_job_answers_from_the_models_in_the_qemu_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_image(&dir.path().join("image"));
    let state = dir.path().join("state");
    let opts = DeploymentOptions {
        qemu_image: Some(image),
        deadlines: (120, 300, 3600),
        // Switches kind 5050 on and gives the VM the memory for the models (the guest loads the
        // ones in its image, not these).
        models_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/models")),
        ..DeploymentOptions::default()
    };
    let deployment = LocalDeployment::start(&state, &opts).await.unwrap();
    // The RAG job with the models in the measured image: the attestation names the model the
    // image carries, and the answer comes from it.
    let mut spec = job(&deployment, Duration::from_secs(120));
    spec.kind = kinds::TEXT_GENERATION;
    spec.timeouts.result = Duration::from_secs(3600);
    spec.input = InputBody::Rag {
        documents: Data::Inline(
            "Facilities memo. The alarm code of the Harbor Street office is 4471. It changes every quarter.".into(),
        ),
        name: Some("memo.txt".into()),
        media_type: None,
        question: "What is the alarm code of the Harbor Street office?".into(),
        params: cdvm_protocol::rag::RagParams {
            max_tokens: 16,
            retrieve: 1,
            ..Default::default()
        },
    };
    let mut models = Vec::new();
    let started = std::time::Instant::now();
    let outcome = run_job(spec, |s, _| {
        if let Stage::Attested { models: m, .. } = s {
            models.clone_from(m);
        }
    })
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => panic!(
            "RAG job failed: {e}\n--- orchestrator log ---\n{}",
            deployment.orchestrator_log()
        ),
    };
    let answer: cdvm_protocol::rag::RagAnswer = serde_json::from_str(&outcome.output).unwrap();
    eprintln!(
        "RAG job in QEMU (TCG) took {:.1} s: {:?}",
        started.elapsed().as_secs_f64(),
        answer.answer
    );
    assert!(answer.answer.contains("4471"), "{:?}", answer.answer);
    assert!(
        models.iter().any(|m| m == &answer.model),
        "the attestation names the model that answered: {models:?}"
    );
    common::assert_no_vm_in(&qemu_vms_dir(&state)).await;

    drop(deployment);
}
