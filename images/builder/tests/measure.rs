//! Launch digests through the public API: every input counts (tamper twins). The known-answer
//! tests against the `sev` crate's published vectors are unit tests in src/measure.rs.

use std::path::{Path, PathBuf};

use cdvm_image::{snp_launch_digest, CpuModel, Firmware};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ovmf_AmdSev_suffix.bin")
}

struct Files {
    _dir: tempfile::TempDir,
    ovmf: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().expect("tempdir");
    let ovmf = dir.path().join("ovmf.fd");
    std::fs::copy(fixture(), &ovmf).expect("copy ovmf");
    let kernel = dir.path().join("vmlinuz");
    std::fs::write(&kernel, b"MZ a kernel image".repeat(4096)).expect("kernel");
    let initrd = dir.path().join("initrd.img");
    std::fs::write(&initrd, b"070701 an initramfs".repeat(4096)).expect("initrd");
    Files {
        _dir: dir,
        ovmf,
        kernel,
        initrd,
    }
}

const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";

fn digest(f: &Files) -> [u8; 48] {
    snp_launch_digest(&f.ovmf, &f.kernel, &f.initrd, CMDLINE, 2, CpuModel::Milan).expect("digest")
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset] ^= 0x01;
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn stable_for_the_same_files() {
    let f = files();
    assert_eq!(digest(&f), digest(&f));
    let fw = Firmware::load(&f.ovmf).expect("firmware");
    assert_eq!(
        fw.launch_digest(&f.kernel, &f.initrd, CMDLINE, 2, CpuModel::Milan)
            .expect("digest"),
        digest(&f)
    );
}

#[test]
fn tamper_twin_ovmf_byte() {
    let f = files();
    let before = digest(&f);
    // Byte 0 of the fixture is 0xff padding: the firmware still parses, only its pages change.
    flip(&f.ovmf, 0);
    let after = digest(&f);
    assert_ne!(before, after, "one OVMF byte changes the launch digest");
}

#[test]
fn tamper_twin_kernel_byte() {
    let f = files();
    let before = digest(&f);
    flip(&f.kernel, 12345);
    assert_ne!(
        before,
        digest(&f),
        "one kernel byte changes the launch digest"
    );
}

#[test]
fn tamper_twin_initrd_byte() {
    let f = files();
    let before = digest(&f);
    flip(&f.initrd, 0);
    assert_ne!(
        before,
        digest(&f),
        "one initrd byte changes the launch digest"
    );
}

#[test]
fn cmdline_vcpus_and_model_count() {
    let f = files();
    let base = digest(&f);
    let d = |cmdline: &str, vcpus: u32, cpu: CpuModel| {
        snp_launch_digest(&f.ovmf, &f.kernel, &f.initrd, cmdline, vcpus, cpu).expect("digest")
    };
    assert_ne!(base, d("console=ttyS0 panic=-1", 2, CpuModel::Milan));
    assert_ne!(base, d(CMDLINE, 1, CpuModel::Milan));
    assert_ne!(base, d(CMDLINE, 4, CpuModel::Milan));
    assert_ne!(base, d(CMDLINE, 2, CpuModel::Genoa));
    assert_ne!(
        d(CMDLINE, 1, CpuModel::Genoa),
        d(CMDLINE, 1, CpuModel::Milan)
    );
}
