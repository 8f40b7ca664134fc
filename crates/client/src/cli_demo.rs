//! `cdvm demo`: one confidential SQL job through a complete local deployment.

use std::path::PathBuf;
use std::time::Instant;

use cdvm_client::cloud_emulators::{self, Cloud, Emulators};
use cdvm_client::demo::{qemu_vms_dir, vms_dir, DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, ClientError, JobSpec, Stage, Timeouts};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::{kinds, InputBody};
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
    let provider_name = match args.provider {
        DemoProvider::Process => "process",
        DemoProvider::Qemu => {
            if !args.image.join("manifest.json").is_file() {
                return Err(ClientError::Usage(format!(
                    "no guest image in {}: build it with scripts/build-image (needs qemu-system-x86 installed to run)",
                    args.image.display()
                )));
            }
            opts.qemu_image =
                Some(
                    std::path::absolute(&args.image).map_err(|source| ClientError::Io {
                        path: args.image.display().to_string(),
                        source,
                    })?,
                );
            "qemu (TCG)"
        }
        DemoProvider::Aws => "aws (moto server + mock cloud)",
        DemoProvider::Gcp => "gcp (mock cloud)",
        DemoProvider::Azure => "azure (mock cloud)",
    };
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
    eprintln!("           job: confidential SQL (kind 5970) over a 5-row salary table");
    eprintln!("           query: {SAMPLE_QUERY}");
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: SAMPLE_CSV.into(),
            query: SAMPLE_QUERY.into(),
        },
        policy: deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts::default(),
        vcek: None,
    };
    // Boot-to-attested: from the DVM's first "processing" (the VM is being launched) to a
    // verified attestation.
    let mut launched_at = None;
    let result = run_job(spec, |stage, t| {
        show::stage(stage, t);
        match stage {
            Stage::Dvm { .. } if launched_at.is_none() => launched_at = Some(t),
            Stage::Attested { .. } => {
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
    if leftover != 0 {
        return Err(ClientError::DvmError(format!(
            "{leftover} VM(s) were not destroyed"
        )));
    }
    Ok(())
}

fn count_entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}
