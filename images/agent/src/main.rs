//! `cdvm-agent`: the guest agent. Runs once per VM, for one job, then exits.
//!
//! Two ways to run: as PID 1 of the guest image (it boots the guest itself, reads the bootstrap
//! from fw_cfg and powers the VM off at the end), or as a process with flags: the bootstrap from a
//! file (the process provider's stand-in for a VM) or from a cloud's metadata service.
//!
//! It never trusts the bootstrap for anything but the request id and relays: the user's key comes
//! from the signed request itself. It never logs keys, input or output.

mod blob;
mod executors;
mod guest;
mod metadata;
mod session;
mod tee;

use std::path::PathBuf;

use anyhow::Context;
use cdvm_attestation::Attester;
use cdvm_protocol::bootstrap::metadata::MetadataService;
use clap::{Parser, ValueEnum};

/// Which secure processor to ask for evidence. There is no default: a guest never silently falls
/// back to a simulated TEE.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Tee {
    /// The host's simulated secure processor (development only, over a Unix socket).
    Sim,
    /// AMD SEV-SNP: configfs-tsm, else /dev/sev-guest.
    SevSnp,
    /// Intel TDX: configfs-tsm.
    Tdx,
    /// The one real interface found (configfs-tsm's provider, else /dev/sev-guest); never `sim`.
    Auto,
    /// Azure SEV-SNP confidential VM: the paravisor's vTPM and IMDS.
    AzureSnpVtpm,
    /// Azure TDX confidential VM: the paravisor's vTPM and IMDS `/acc/tdquote`.
    AzureTdxVtpm,
}

/// Whether to attach GPU evidence.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Gpus {
    /// No GPU evidence.
    None,
    /// Every NVIDIA GPU through NVML (confidential-computing mode required).
    Nvml,
}

/// ConfidentialDVM guest agent.
#[derive(Debug, Parser)]
#[command(version, about)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["bootstrap", "bootstrap_from"])))]
struct Args {
    /// The bootstrap JSON (request id, relays, timeouts): public data from the operator.
    #[arg(long)]
    bootstrap: Option<PathBuf>,
    /// Read the bootstrap from this cloud's instance metadata service instead (aws, gcp, azure).
    #[arg(long)]
    bootstrap_from: Option<MetadataService>,
    /// Where the metadata service answers (default: the cloud's link-local address).
    #[arg(long, requires = "bootstrap_from")]
    metadata_endpoint: Option<String>,
    /// The secure processor to use.
    #[arg(long, value_enum)]
    tee: Tee,
    /// Socket of the simulated secure processor (with `--tee sim`).
    #[arg(long, required_if_eq("tee", "sim"))]
    sim_socket: Option<PathBuf>,
    /// The configfs-tsm report directory (a path option so tests can point it at an emulation).
    #[arg(long, default_value = cdvm_attestation::tsm::DEFAULT_REPORT_ROOT)]
    tsm_root: PathBuf,
    /// SEV-SNP: the VMPL to request reports at (configfs-tsm `privlevel`).
    #[arg(long, default_value_t = 0)]
    vmpl: u32,
    /// Azure: the vTPM (`/dev/tpmrm0`, or `unix:<path>` for a TPM command socket).
    #[arg(long, default_value = "/dev/tpmrm0")]
    tpm: String,
    /// Azure: the instance metadata service address.
    #[arg(long, default_value = "169.254.169.254:80")]
    imds: std::net::SocketAddr,
    /// GPU evidence to attach.
    #[arg(long, value_enum, default_value = "none")]
    gpus: Gpus,
    /// With `--gpus nvml`: the NVML library (default: libnvidia-ml.so.1 from the loader path).
    #[arg(long)]
    nvml_lib: Option<PathBuf>,
    /// With `--gpus nvml`: the GPU policy the agent checks its own GPUs against before setting
    /// them ready (YAML, the `gpu:` section of a policy). Default: NVIDIA's root only.
    #[arg(long)]
    gpu_policy: Option<PathBuf>,
    /// The VM id (used by the host to find this process; not trusted for anything).
    #[arg(long)]
    vm_id: Option<String>,
    /// DEVELOPMENT ONLY: accept plain http:// Blossom URLs on loopback (the process provider's
    /// local Blossom server). Blobs are authenticated either way; TLS hides which blob the guest
    /// fetches. The guest image never sets this (as PID 1 it takes no flags).
    #[arg(long)]
    dev_insecure_blossom: bool,
    /// The model directory of the RAG job (`models.json` and the GGUF files it lists, docs/rag.md).
    /// Without it, this agent refuses job kind 5050. The guest image carries `/models`.
    #[arg(long)]
    models: Option<PathBuf>,
    /// Inference threads (default: every CPU this process may use).
    #[arg(long)]
    inference_threads: Option<usize>,
}

/// The guest image's model directory (docs/image.md).
const IMAGE_MODELS: &str = "/models";

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CDVM_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,nostr_relay_pool=warn,nostr_sdk=warn")
            }),
        )
        .with_writer(std::io::stderr)
        // PID 1 writes to a serial console that ends up in log files: no colour codes.
        .with_ansi(std::process::id() != 1)
        .init();
    if std::process::id() == 1 {
        run_as_init()
    } else {
        run_as_process(Args::parse())
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run_as_init() -> ! {
    let outcome = guest::boot().and_then(|booted| {
        runtime()?.block_on(session::run(
            booted.bootstrap,
            booted.attester,
            session::Options {
                image_name: cdvm_protocol::image::GUEST_IMAGE,
                dev_insecure_blossom: booted.dev_blossom_via.is_some(),
                loopback_alias: booted.dev_blossom_via,
                exec: executors::ExecConfig {
                    models_dir: std::path::Path::new(IMAGE_MODELS)
                        .join("models.json")
                        .is_file()
                        .then(|| PathBuf::from(IMAGE_MODELS)),
                    inference_threads: cpus(),
                },
            },
        ))
    });
    match outcome {
        Ok(()) => tracing::info!("job over, powering off"),
        Err(e) => tracing::error!("job failed: {e:#}; powering off"),
    }
    guest::power_off()
}

fn run_as_process(args: Args) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let bootstrap = match (&args.bootstrap, args.bootstrap_from) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading bootstrap {}", path.display()))?;
            cdvm_protocol::Bootstrap::from_json(text.as_bytes()).context("parsing bootstrap")?
        }
        (None, Some(service)) => {
            let endpoint = args
                .metadata_endpoint
                .as_deref()
                .unwrap_or(service.default_endpoint());
            let url = metadata::Url::parse(endpoint)?;
            runtime
                .block_on(metadata::read_bootstrap(service, &url))
                .context("reading the bootstrap from the metadata service")?
        }
        (None, None) => anyhow::bail!("give --bootstrap or --bootstrap-from"),
    };
    let hardware = tee::HardwareOptions {
        tsm_root: args.tsm_root.clone(),
        vmpl: args.vmpl,
    };
    let attester: Box<dyn Attester> = match args.tee {
        Tee::Sim => {
            let socket = args
                .sim_socket
                .context("--sim-socket is required with --tee sim")?;
            tracing::warn!(
                "using the SIMULATED secure processor: this guest gives no confidentiality"
            );
            Box::new(cdvm_attestation::sim::SimAttester::new(socket))
        }
        Tee::SevSnp => tee::sev_snp(&hardware)?,
        Tee::Tdx => tee::tdx(&hardware)?,
        Tee::Auto => tee::auto(&hardware)?,
        Tee::AzureSnpVtpm | Tee::AzureTdxVtpm => tee::azure(
            &tee::AzureOptions {
                tpm: args.tpm.clone(),
                imds: args.imds,
            },
            matches!(args.tee, Tee::AzureTdxVtpm),
        )?,
    };
    let attester: Box<dyn Attester> = match args.gpus {
        Gpus::None => attester,
        Gpus::Nvml => {
            let policy = match &args.gpu_policy {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading GPU policy {}", path.display()))?;
                    serde_yaml_ng::from_str(&text)
                        .with_context(|| format!("parsing GPU policy {}", path.display()))?
                }
                None => cdvm_attestation::nvidia::GpuPolicy::default(),
            };
            Box::new(tee::WithGpus {
                inner: attester,
                nvml_lib: args.nvml_lib.clone(),
                policy,
            })
        }
    };
    runtime.block_on(session::run(
        bootstrap,
        attester,
        session::Options {
            image_name: cdvm_protocol::image::PROCESS_AGENT_IMAGE,
            dev_insecure_blossom: args.dev_insecure_blossom,
            loopback_alias: None,
            exec: executors::ExecConfig {
                models_dir: args.models.clone(),
                inference_threads: args.inference_threads.unwrap_or_else(cpus),
            },
        },
    ))
}
