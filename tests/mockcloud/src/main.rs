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
    /// Create the AWS network and AMI in moto (what terraform/aws makes) for this region, and
    /// print their ids as one JSON line after the base URL.
    #[arg(long, value_name = "REGION")]
    aws_setup: Option<String>,
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
    let moto_url = config.moto_url.clone();
    let cloud = MockCloud::start(config).await?;
    println!("{}", cloud.base_url);
    if let Some(region) = &args.aws_setup {
        let moto = moto_url.context("--aws-setup needs moto_url in the config")?;
        let fixture = cdvm_mockcloud::aws_setup::provision(&moto, region)
            .await
            .context("creating the AWS network and AMI in moto")?;
        println!("{}", serde_json::to_string(&fixture)?);
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    cloud.halt_all_guests().await;
    Ok(())
}
