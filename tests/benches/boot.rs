//! Boot-to-attested time per provider: from the DVM's first "processing" feedback (the VM is being
//! launched) to a verified attestation at the client, and the whole job, over a real relay with
//! the real orchestrator. QEMU boots the guest image under TCG here (no usable KVM), so its floor
//! is the Debian kernel's boot under emulation.
//!
//! Run: `scripts/build-image && cargo build --bins && cargo bench -p cdvm-e2e --bench boot --profile dev [-- N]`
//! (N jobs per provider, default 5). Prints a table; docs/benchmarks.md records a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, JobSpec, Stage, Timeouts};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::{kinds, InputBody};

struct Sample {
    boot_to_attested: Duration,
    whole_job: Duration,
}

async fn one_job(deployment: &LocalDeployment) -> Sample {
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: "a,b\n1,2\n3,4\n".into(),
            query: "SELECT SUM(a) AS s FROM input".into(),
        },
        policy: deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(120),
            result: Duration::from_secs(60),
            destroyed: Duration::from_secs(30),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let (mut launched, mut attested, mut done) = (None, None, None);
    run_job(spec, |stage, t| match stage {
        Stage::Dvm { .. } if launched.is_none() => launched = Some(t),
        Stage::Attested { .. } => attested = Some(t),
        Stage::VmDestroyed => done = Some(t),
        _ => {}
    })
    .await
    .expect("job");
    let launched = launched.expect("the DVM said it was launching");
    Sample {
        boot_to_attested: attested.expect("attested") - launched,
        whole_job: done.expect("destroyed"),
    }
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let s = |d: Duration| d.as_secs_f64();
    (s(v[0]), s(v[v.len() / 2]), s(v[v.len() - 1]))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let image = cdvm_provider_qemu::built_image_dir().unwrap_or_else(|e| panic!("{e}"));
    println!("| provider | jobs | boot-to-attested s (min / median / max) | whole job s (min / median / max) |");
    println!("|---|---:|---|---|");
    for (name, qemu_image) in [("process", None), ("qemu (TCG)", Some(image.clone()))] {
        let dir = tempfile::tempdir().unwrap();
        let opts = DeploymentOptions {
            qemu_image,
            deadlines: (120, 60, 60),
            per_user_per_minute: 1000,
            ..DeploymentOptions::default()
        };
        let deployment = LocalDeployment::start(&dir.path().join("state"), &opts)
            .await
            .expect("deployment");
        let mut samples = Vec::new();
        for _ in 0..n {
            samples.push(one_job(&deployment).await);
        }
        let (b0, b1, b2) = stats(samples.iter().map(|s| s.boot_to_attested).collect());
        let (w0, w1, w2) = stats(samples.iter().map(|s| s.whole_job).collect());
        println!("| {name} | {n} | {b0:.2} / {b1:.2} / {b2:.2} | {w0:.2} / {w1:.2} / {w2:.2} |");
        drop(deployment);
    }
}
