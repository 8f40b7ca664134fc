//! The QEMU provider passes the shared provider conformance suite with real QEMU processes
//! booting the real guest image, and destroy leaves nothing behind.
//!
//! Needs `qemu-system-x86_64` and the image from `scripts/build-image` (which `scripts/test` and
//! `.ci/run` build first); a missing one fails with a message saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use cdvm_provider_api::{conformance, JobTag, OwnerTag, Provider, VmState};
use cdvm_provider_qemu::{Accel, Boot, CpuModel, QemuConfig, QemuProvider, TeeMode, UefiFirmware};

fn image_dir() -> PathBuf {
    cdvm_provider_qemu::built_image_dir().unwrap_or_else(|e| panic!("{e}"))
}

use cdvm_provider_api::conformance::sample_spec as spec;

fn config(state: &std::path::Path) -> QemuConfig {
    QemuConfig {
        state_dir: state.to_path_buf(),
        image_dir: image_dir(),
        qemu: "qemu-system-x86_64".into(),
        boot: Boot::Direct,
        accel: Accel::Tcg,
        tee: TeeMode::Sim,
        cpu: CpuModel::Milan,
        policy_vcpus: 1,
        max_lifetime: Duration::from_secs(120),
    }
}

fn qemu_processes_named(name: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|a| a == name.as_bytes()))
                .unwrap_or(false)
        })
        .count()
}

#[tokio::test]
async fn qemu_provider_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let p = QemuProvider::new(config(dir.path())).unwrap();
    conformance::run(&p, "qemu-conf", &spec).await;
    assert_eq!(
        std::fs::read_dir(dir.path().join("vms")).unwrap().count(),
        0,
        "every VM folder is gone"
    );
}

#[tokio::test]
async fn destroy_kills_qemu_and_removes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = QemuProvider::new(config(dir.path())).unwrap();
    let vm = p
        .launch(&spec(&OwnerTag("o".into()), &JobTag("cd".repeat(32))))
        .await
        .unwrap();
    let marker = format!("cdvm-{}", vm.id.0);
    assert_eq!(p.status(&vm.id).await.unwrap(), VmState::Running);
    // The process is really QEMU and it really starts writing the guest's console.
    let console = dir.path().join("vms").join(&vm.id.0).join("console.log");
    let mut waited = 0;
    while std::fs::metadata(&console).map(|m| m.len()).unwrap_or(0) == 0 && waited < 600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert!(
        std::fs::metadata(&console).unwrap().len() > 0,
        "the guest printed nothing in 60 s"
    );
    assert_eq!(qemu_processes_named(&marker), 1);
    p.destroy(&vm.id).await.unwrap();
    assert_eq!(qemu_processes_named(&marker), 0, "QEMU still runs");
    assert!(!dir.path().join("vms").join(&vm.id.0).exists());
    assert_eq!(p.status(&vm.id).await.unwrap(), VmState::Gone);
}

#[tokio::test]
async fn a_vm_past_its_hard_deadline_is_killed_by_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_lifetime = Duration::from_secs(2);
    let p = QemuProvider::new(cfg).unwrap();
    let vm = p
        .launch(&spec(&OwnerTag("o".into()), &JobTag("ef".repeat(32))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        matches!(p.status(&vm.id).await.unwrap(), VmState::Exited { .. }),
        "the VM must be dead after its lifetime"
    );
    p.destroy(&vm.id).await.unwrap();
}

#[tokio::test]
async fn hardware_modes_are_refused_until_the_image_can_attest_on_them() {
    let dir = tempfile::tempdir().unwrap();
    for tee in [TeeMode::SevSnp, TeeMode::Tdx] {
        let mut cfg = config(dir.path());
        cfg.tee = tee;
        let err = QemuProvider::new(cfg).expect_err("must refuse");
        assert!(err.to_string().contains("use tee: sim"), "{err}");
    }
}

#[tokio::test]
async fn a_missing_image_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.image_dir = dir.path().join("nope");
    let err = QemuProvider::new(cfg).expect_err("must refuse");
    assert!(err.to_string().contains("load guest image"), "{err}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("scripts/build-image"), "{source}");
}

#[tokio::test]
async fn the_disk_boot_needs_its_firmware_and_pins_what_it_boots() {
    let dir = tempfile::tempdir().unwrap();
    let fw_dir = dir.path().join("ovmf");
    std::fs::create_dir_all(&fw_dir).unwrap();
    let firmware = UefiFirmware::in_dir(&fw_dir);
    let mut cfg = config(&dir.path().join("state"));
    cfg.boot = Boot::Disk(firmware.clone());
    // No firmware: refused at start, naming the missing file.
    let err = QemuProvider::new(cfg.clone()).expect_err("must refuse");
    assert!(err.to_string().contains("OVMF_CODE_4M.fd"), "{err}");
    // With it (stand-in bytes: nothing boots here), the development policy pins the
    // measurement of exactly this firmware and the image's disk, not a direct-boot digest.
    std::fs::write(&firmware.code, b"code").unwrap();
    std::fs::write(&firmware.vars_template, b"vars").unwrap();
    QemuProvider::new(cfg.clone()).unwrap();
    let expected = cdvm_provider_qemu::disk::sim_measurement(
        &firmware,
        &image_dir().join(cdvm_provider_qemu::disk::DISK_FILE),
        1,
        CpuModel::Milan,
    )
    .unwrap()
    .to_string();
    let policy =
        std::fs::read_to_string(cdvm_provider_qemu::dev_policy_path(&cfg.state_dir)).unwrap();
    assert!(policy.contains(&expected), "{policy}");
    assert!(policy.contains("simulated UEFI disk launch"), "{policy}");
}
