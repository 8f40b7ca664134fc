//! `cdvm`: the ConfidentialDVM user CLI.

mod cli_demo;
mod cli_verify;
mod cli_verify_gpu;
mod large_input;
mod show;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use cdvm_attestation::Policy;
use cdvm_client::{run_job, ClientError, JobSpec, Timeouts};
use cdvm_protocol::nostr::{FromBech32, Keys, PublicKey};
use cdvm_protocol::{kinds, Data, InputBody};
use clap::{Parser, Subcommand};

/// Run a confidential job on a Nostr DVM: your input goes only to a VM that proved what it is.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system locally (relay, orchestrator, simulated TEE) and one job through it.
    Demo(cli_demo::DemoArgs),
    /// Submit a job to a DVM, verify its VM, send the input, print the result.
    Submit(SubmitArgs),
    /// Verify saved evidence offline against a policy: an attestation event, CPU evidence, or
    /// (with --gpu and --nonce) GPU evidence on its own.
    Verify(cli_verify::VerifyArgs),
    /// Run a local Nostr relay on 127.0.0.1 until Ctrl-C (for trying the pieces by hand).
    Relay {
        /// The port.
        #[arg(long, default_value_t = 7777)]
        port: u16,
    },
}

#[derive(Debug, clap::Args)]
struct SubmitArgs {
    /// Relay URL (repeatable).
    #[arg(long = "relay", required = true)]
    relays: Vec<String>,
    /// The DVM's public key (npub or hex).
    #[arg(long)]
    dvm: String,
    /// Job kind: 5970 (SQL over a CSV table) or 5971 (text statistics).
    #[arg(long)]
    kind: u16,
    /// The confidential input: a file (CSV for 5970, text for 5971) or a folder (several CSV
    /// tables, or text files; sent as a tar archive). Small files go inside the encrypted input
    /// event; larger ones and folders as an encrypted blob through Blossom.
    #[arg(long)]
    input: PathBuf,
    /// Blossom server for large inputs and results (repeatable; each one holds a copy). Default:
    /// your kind-10063 server list (with --key), else the servers the DVM suggests.
    #[arg(long = "blossom")]
    blossom: Vec<String>,
    /// The SQL query (5970). Sent encrypted, like the input.
    #[arg(long)]
    query: Option<String>,
    /// The attestation policy the VM must satisfy (YAML).
    #[arg(long)]
    policy: PathBuf,
    /// Write the result here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Your secret key file (hex or nsec); default: a fresh one-time key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Seconds to wait for a verified attestation.
    #[arg(long, default_value_t = 120)]
    attest_timeout: u64,
    /// Seconds to wait for the result after sending the input.
    #[arg(long, default_value_t = 300)]
    result_timeout: u64,
    /// Folder of cached VCEKs, used when SEV-SNP evidence carries no certificate chain (hosts
    /// that supply none, such as upstream KVM).
    #[arg(long, default_value_os_t = cli_verify::default_cache())]
    vcek_cache: PathBuf,
    /// Fetch such a VCEK from AMD KDS when it is not cached (and cache it).
    #[arg(long)]
    fetch: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CDVM_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,nostr_relay_pool=error,nostr_sdk=error,nostr_relay_builder=off",
                )
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    // Offline verification needs no async runtime: keep that process start lean.
    let command = match cli.command {
        Command::Verify(args) => return exit(cli_verify::run(args)),
        other => other,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Demo(args) => cli_demo::run(args).await,
            Command::Submit(args) => submit(args).await,
            Command::Verify(args) => cli_verify::run(args),
            Command::Relay { port } => relay(port).await,
        }
    });
    exit(result)
}

fn exit(result: Result<(), ClientError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn read(path: &Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path).map_err(|source| ClientError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn load_policy(path: &Path) -> Result<Policy, ClientError> {
    Policy::load(path).map_err(|e| ClientError::Usage(e.to_string()))
}

/// The typed input body of the job kind around `data`.
fn input_body(kind: u16, data: Data, query: Option<String>) -> Result<InputBody, ClientError> {
    match kind {
        kinds::SQL => {
            let query = query.ok_or_else(|| {
                ClientError::Usage("--query is required for kind 5970 (SQL)".into())
            })?;
            Ok(InputBody::Sql {
                table_csv: data,
                query,
            })
        }
        kinds::TEXT_STATS => {
            if query.is_some() {
                return Err(ClientError::Usage("--query is only for kind 5970".into()));
            }
            Ok(InputBody::TextStats { text: data })
        }
        other => Err(ClientError::Usage(format!(
            "unknown job kind {other}; known: 5970 (SQL over CSV), 5971 (text statistics)"
        ))),
    }
}

async fn submit(args: SubmitArgs) -> Result<(), ClientError> {
    let dvm = PublicKey::from_bech32(&args.dvm)
        .or_else(|_| PublicKey::from_hex(&args.dvm))
        .map_err(|_| {
            ClientError::Usage(format!(
                "--dvm {:?} is not an npub or hex public key",
                args.dvm
            ))
        })?;
    let policy = load_policy(&args.policy)?;
    if !matches!(args.kind, kinds::SQL | kinds::TEXT_STATS) {
        return Err(ClientError::Usage(format!(
            "unknown job kind {}; known: 5970 (SQL over CSV), 5971 (text statistics)",
            args.kind
        )));
    }
    let user = match &args.key {
        Some(path) => Keys::parse(read(path)?.trim()).map_err(|_| {
            ClientError::Usage(format!("{} does not hold a secret key", path.display()))
        })?,
        None => Keys::generate(),
    };
    let prepared = large_input::prepare(
        &args.relays,
        &dvm,
        &user,
        args.kind,
        &args.input,
        &args.blossom,
        args.key.is_some(),
    )
    .await?;
    let input = input_body(args.kind, prepared.data, args.query)?;
    let spec = JobSpec {
        relays: args.relays,
        dvm,
        kind: args.kind,
        input,
        policy,
        user,
        timeouts: Timeouts {
            attest: Duration::from_secs(args.attest_timeout),
            result: Duration::from_secs(args.result_timeout),
            ..Timeouts::default()
        },
        vcek: Some(cli_verify::resolver_for(&args.vcek_cache, args.fetch)),
        result_servers: prepared.servers,
        result_file: args.output.clone(),
        transfer_progress: Some(cdvm_client::blob::TransferProgress(std::sync::Arc::new(
            show::transfer,
        ))),
    };
    let outcome = run_job(spec, show::stage).await;
    // A job that fails while its answer streams must not print its error on the answer's line.
    show::end_answer_stream();
    show::outcome(&outcome?, args.output.as_deref())
}

async fn relay(port: u16) -> Result<(), ClientError> {
    let relay = cdvm_client::relay::TestRelay::start_on(Some(port))
        .await
        .map_err(|e| ClientError::Relay(format!("cannot start a relay on port {port}: {e}")))?;
    eprintln!("relay listening on {} (Ctrl-C to stop)", relay.url());
    let _ = tokio::signal::ctrl_c().await;
    relay.shutdown();
    Ok(())
}
