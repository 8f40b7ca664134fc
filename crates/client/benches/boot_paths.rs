//! Boot-to-attested of a QEMU guest (TCG, simulated secure processor) by boot path: the direct
//! kernel boot (`-kernel`/`-initrd`/`-append`, what `qemu_job` runs) and the UEFI disk boot
//! (Debian's OVMF boots `disk.raw`, what a cloud does), each over a real relay with the real
//! orchestrator. Boot-to-attested runs from the DVM's first "processing" feedback (it is
//! launching the VM) to the attestation verified at the client; the whole job from the request
//! to the VM's destruction. Both paths boot the same kernel, initrd and command line.
//!
//! Run: `cargo build --bins && cargo bench -p cdvm-client --bench boot_paths --profile dev [-- N]`
//! (N jobs per path, default 3). Needs `qemu-system-x86_64`, the image from `scripts/build-image`
//! (`CDVM_IMAGE_DIR` or `target/image`) and the pinned `ovmf` package it caches. Prints a table;
//! docs/image.md ("UEFI disk") records a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, JobSpec, Stage, Timeouts};
use cdvm_image::inputs::{extract_ovmf, Places};
use cdvm_image::lock::{Lock, LOCK_FILE};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::{kinds, InputBody};

const ATTEST_SECS: u64 = 300;

struct Sample {
    boot_to_attested: Duration,
    whole_job: Duration,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
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
            attest: Duration::from_secs(ATTEST_SECS + 30),
            result: Duration::from_secs(120),
            destroyed: Duration::from_secs(30),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let (mut launched, mut attested, mut done) = (None, None, None);
    let outcome = run_job(spec, |stage, t| match stage {
        Stage::Dvm { .. } if launched.is_none() => launched = Some(t),
        Stage::Attested { .. } => attested = Some(t),
        Stage::VmDestroyed => done = Some(t),
        _ => {}
    })
    .await;
    if let Err(e) = outcome {
        panic!(
            "job failed: {e}\n--- orchestrator log ---\n{}",
            deployment.orchestrator_log()
        );
    }
    Sample {
        boot_to_attested: attested.expect("attested") - launched.expect("launching"),
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
        .unwrap_or(3);
    let image = std::env::var_os("CDVM_IMAGE_DIR")
        .map_or_else(|| repo().join("target/image"), PathBuf::from);
    assert!(
        image.join("manifest.json").is_file(),
        "no guest image in {}: run scripts/build-image first",
        image.display()
    );
    let work = tempfile::tempdir().unwrap();
    let (lock, _) = Lock::load(&repo().join(LOCK_FILE)).expect("images/inputs.lock");
    let firmware = extract_ovmf(&lock, &Places::under(&repo()), &work.path().join("ovmf"))
        .unwrap_or_else(|e| panic!("{e}: run scripts/build-image (it caches the pinned ovmf)"));
    println!("| QEMU boot path (TCG) | jobs | boot-to-attested s (min / median / max) | whole job s (min / median / max) |");
    println!("|---|---:|---|---|");
    for (name, disk) in [
        ("direct kernel (-kernel/-initrd/-append)", None),
        ("UEFI disk (OVMF + disk.raw)", Some(firmware.clone())),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = DeploymentOptions {
            qemu_image: Some(image.clone()),
            qemu_disk_firmware: disk,
            deadlines: (ATTEST_SECS, 60, 60),
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
        println!("| {name} | {n} | {b0:.1} / {b1:.1} / {b2:.1} | {w0:.1} / {w1:.1} / {w2:.1} |");
        drop(deployment);
    }
}
