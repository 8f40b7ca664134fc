//! A job end to end over the UEFI disk boot, as a cloud boots the image: QEMU (q35, TCG) with
//! Debian's OVMF from pflash boots the image's `disk.raw` (read-only), systemd-stub starts the
//! kernel, the agent runs as PID 1, attests through the host-side simulated secure processor
//! and runs a confidential SQL job from this client over a real relay and the real
//! orchestrator; the QEMU process and the VM's folder are gone afterwards and the shared disk is
//! unchanged. The simulator reports the measurement of the firmware and disk QEMU was given
//! (`cdvm_provider_qemu::disk`), which the provider's development policy pins.
//!
//! Here rather than in `tests/` (where `qemu_job.rs` runs the direct boot) because this crate
//! builds without llama.cpp. Needs `qemu-system-x86_64`, the image from `scripts/build-image`
//! (`CDVM_IMAGE_DIR` or `target/image`), the pinned `ovmf` package it caches in
//! `target/image-cache/`, and `cargo build --bins` (the orchestrator); a missing one fails the
//! test, saying so.
#![cfg(feature = "demo")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdvm_client::demo::{qemu_vms_dir, DeploymentOptions, LocalDeployment};
use cdvm_client::{run_job, JobSpec, Stage, Timeouts};
use cdvm_image::inputs::{extract_ovmf, Places};
use cdvm_image::lock::{Lock, LOCK_FILE};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::{kinds, InputBody};
use sha2::{Digest, Sha256};

/// TCG + UEFI on a loaded 2-core machine: the firmware alone takes 20-80 s.
const ATTEST_SECS: u64 = 300;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The built image (the convention of `cdvm_provider_qemu::built_image_dir`).
fn built_image() -> PathBuf {
    let dir = std::env::var_os("CDVM_IMAGE_DIR")
        .map_or_else(|| repo().join("target/image"), PathBuf::from);
    assert!(
        dir.join("manifest.json").is_file(),
        "no guest image in {}: run scripts/build-image first (or set CDVM_IMAGE_DIR)",
        dir.display()
    );
    dir
}

/// Debian's `ovmf` as `images/inputs.lock` pins it, from the image cache (not the machine's
/// /usr/share/OVMF, whose version apt decides).
fn pinned_ovmf(dir: &Path) -> PathBuf {
    let (lock, _) = Lock::load(&repo().join(LOCK_FILE)).expect("images/inputs.lock");
    extract_ovmf(&lock, &Places::under(&repo()), dir).unwrap_or_else(|e| {
        panic!("{e}: run scripts/build-image (it caches the pinned ovmf package)")
    })
}

fn sha256_file(path: &Path) -> String {
    let mut h = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut h).unwrap();
    hex::encode(h.finalize())
}

/// Command lines of live (not zombie) processes mentioning `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let path = entry.path();
        let Ok(cmd) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !zombie && cmd.contains(needle) {
            out.push(cmd);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_through_the_uefi_disk_boot_and_the_vm_is_destroyed() {
    let image = built_image();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(image.join("manifest.json")).unwrap())
            .unwrap();
    let disk_sha256 = manifest["outputs"]["disk.raw"]["sha256"]
        .as_str()
        .expect("the manifest lists disk.raw (rebuild the image)")
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let firmware = pinned_ovmf(&dir.path().join("ovmf"));
    let state = dir.path().join("state");
    let opts = DeploymentOptions {
        qemu_image: Some(image.clone()),
        qemu_disk_firmware: Some(firmware),
        deadlines: (ATTEST_SECS, 120, 120),
        // The guest's console in the orchestrator's log: shows the firmware booted the disk.
        log_filter: "info,nostr_relay_pool=warn,nostr_sdk=warn,cdvm::guest_console=debug".into(),
        ..DeploymentOptions::default()
    };
    let deployment = LocalDeployment::start(&state, &opts).await.unwrap();
    let pinned = &deployment.dev_policy.measurements[0];
    assert!(
        pinned.source.contains("UEFI disk"),
        "the policy pins the disk launch: {}",
        pinned.source
    );

    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::SQL,
        input: InputBody::Sql {
            table_csv: "city,temp\noslo,3\nrome,17\noslo,5\n".into(),
            query: "SELECT city, AVG(temp) AS t FROM input GROUP BY city ORDER BY city".into(),
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
    let (mut launched, mut attested) = (None, None);
    let outcome = run_job(spec, |stage, t| match stage {
        Stage::Dvm { .. } if launched.is_none() => launched = Some(t),
        Stage::Attested { .. } => attested = Some(t),
        _ => {}
    })
    .await;
    let log = deployment.orchestrator_log();
    let outcome =
        outcome.unwrap_or_else(|e| panic!("job failed: {e}\n--- orchestrator log ---\n{log}"));
    assert_eq!(outcome.output, "city,t\noslo,4\nrome,17\n");
    assert!(outcome.claims.simulated);
    assert_eq!(outcome.claims.measurement.to_string(), pinned.measurement);
    // The launch went through the firmware and the disk, not -kernel: the provider says so, and
    // the guest's console shows OVMF's boot manager starting the disk's loader.
    assert!(
        log.lines()
            .any(|l| l.contains("VM launched") && l.contains("uefi-disk")),
        "{log}"
    );
    assert!(
        log.contains("BdsDxe: starting"),
        "no UEFI boot in the console:\n{log}"
    );
    // Not a direct-boot digest: the published SEV-SNP digests do not include it.
    let published =
        std::fs::read_to_string(repo().join("policies/image-snp.yaml")).unwrap_or_default();
    assert!(!published.contains(&pinned.measurement));

    // The VM is gone: no folder, no QEMU process with its paths; the shared disk unchanged.
    let vms = qemu_vms_dir(&state);
    let needle = vms.display().to_string();
    let folders = || std::fs::read_dir(&vms).map(|d| d.count()).unwrap_or(0);
    for _ in 0..100 {
        if folders() == 0 && processes_mentioning(&needle).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(folders(), 0, "VM folders left in {}", vms.display());
    assert_eq!(processes_mentioning(&needle), Vec::<String>::new());
    assert_eq!(sha256_file(&image.join("disk.raw")), disk_sha256);
    eprintln!(
        "UEFI disk boot: boot-to-attested {:.1} s",
        (attested.unwrap() - launched.unwrap()).as_secs_f64()
    );
    drop(deployment);
}
