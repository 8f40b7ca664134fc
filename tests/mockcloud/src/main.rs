//! `mockcloud --config FILE`: runs the emulator until interrupted and prints its base URL.

use std::path::PathBuf;

use anyhow::Context;
use cdvm_mockcloud::config::MockCloudConfig;
use cdvm_mockcloud::MockCloud;
use clap::Parser;

/// A localstack-style emulator of the GCE, ARM and (with moto) EC2 APIs, for tests and demos.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// YAML settings (listen address, faults, booting, moto URL).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CDVM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config: MockCloudConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => MockCloudConfig::default(),
    };
    let cloud = MockCloud::start(config).await?;
    println!("{}", cloud.base_url);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    cloud.halt_all_guests().await;
    Ok(())
}
