//! `cdvm-agent`: the guest agent. Runs once per VM, for one job, then exits.
//!
//! It never trusts the bootstrap for anything but the request id and relays: the user's key comes
//! from the signed request itself. It never logs keys, input or output.

mod executors;
mod session;

use std::path::PathBuf;

use anyhow::Context;
use cdvm_attestation::Attester;
use clap::{Parser, ValueEnum};

/// Which secure processor to ask for evidence. There is no default: a guest never silently falls
/// back to a simulated TEE.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Tee {
    /// The host's simulated secure processor (development only, over a Unix socket).
    Sim,
}

/// ConfidentialDVM guest agent.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The bootstrap JSON (request id, relays, timeouts): public data from the operator.
    #[arg(long)]
    bootstrap: PathBuf,
    /// The secure processor to use.
    #[arg(long, value_enum)]
    tee: Tee,
    /// Socket of the simulated secure processor (with `--tee sim`).
    #[arg(long, required_if_eq("tee", "sim"))]
    sim_socket: Option<PathBuf>,
    /// The VM id (used by the host to find this process; not trusted for anything).
    #[arg(long)]
    vm_id: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CDVM_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,nostr_relay_pool=warn,nostr_sdk=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let text = std::fs::read_to_string(&args.bootstrap)
        .with_context(|| format!("reading bootstrap {}", args.bootstrap.display()))?;
    let bootstrap: cdvm_provider_api::Bootstrap =
        serde_json::from_str(&text).context("parsing bootstrap")?;
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
    };
    session::run(bootstrap, attester).await
}
