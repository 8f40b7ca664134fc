//! `cdvm-orchestrator`: the ConfidentialDVM control-plane daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Serve confidential NIP-90 jobs: one fresh attested VM per job.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The YAML configuration (see examples/orchestrator.yaml).
    #[arg(long, short)]
    config: PathBuf,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    json_logs: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CDVM_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,nostr_relay_pool=warn,nostr_sdk=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.json_logs {
        builder.json().init();
    } else {
        builder.init();
    }
    let cfg = cdvm_orchestrator::Config::load(&args.config)?;
    cdvm_orchestrator::run(cfg, shutdown_signal())
        .await
        .context("orchestrator stopped")?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}
