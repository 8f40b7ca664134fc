//! UEFI boot smoke test: QEMU (q35, TCG) with Debian's OVMF boots `disk.raw` built from the real
//! image, with no `-kernel`: the firmware finds `EFI/BOOT/BOOTX64.EFI` on the ESP, systemd-stub
//! hands the kernel its `.cmdline` and `.initrd`, and the agent starts as PID 1 and logs
//! "guest ready" on the serial console. That line reaching the serial port at all shows the
//! embedded command line was used: without its `console=ttyS0` the agent's log would go to the
//! VGA console. The test stops there (no fw_cfg bootstrap is passed, so the agent would then
//! power off anyway). The same QEMU direct-boots the same kernel, initrd and command line for
//! comparison; both times are printed.
//!
//! The UEFI boot has a TPM (swtpm, as a cloud's vTPM): the agent logs PCR 4, 11 and 12, which
//! must be the values the build computed for this UKI (`cdvm_image::expected`, pinned by the
//! Azure policies): the firmware's own measurement of the UKI (PCR 4) and systemd-stub's of its
//! sections (PCR 11) checked against a real firmware and a real stub.
//!
//! The firmware is Debian's `ovmf` exactly as `images/inputs.lock` pins it, extracted from the
//! cached package (`target/image-cache/`, where `scripts/build-image` fetches it, or
//! `CDVM_OVMF_DEB`), not the machine's /usr/share/OVMF: the boot, and the PCR 4 it checks, do not
//! depend on which `ovmf` apt installed.
//!
//! Needs `qemu-system-x86_64`, `swtpm`, the built image (`CDVM_IMAGE_DIR` or `target/image`) and
//! the cached `ovmf` and `systemd-boot-efi` packages; a missing one fails the test, saying what to
//! install or build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdvm_image::manifest::Manifest;
use cdvm_image::recipe::{self, DISK_FILE};

/// What the agent logs once the guest is up (`images/agent/src/guest/mod.rs`).
const READY: &str = "guest ready";
/// TCG on a busy 2-core CI machine: generous.
const DEADLINE: Duration = Duration::from_secs(300);
/// The guest memory the provider gives the image (`IMAGE_GUEST_MEMORY_MIB`).
const MEMORY_MIB: &str = "1536";

/// Kills QEMU (or swtpm) when dropped, whatever happened.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn console(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).replace('\r', "")
}

/// Starts QEMU with `boot` (firmware and disk, or kernel) and waits for [`READY`] on the
/// console; returns the console and the time from spawn to that line.
fn boot_until_ready(dir: &Path, name: &str, boot: &[String]) -> (String, Duration) {
    let log = dir.join(format!("{name}.console.log"));
    let stderr = std::fs::File::create(dir.join(format!("{name}.qemu.stderr"))).unwrap();
    let mut args: Vec<String> = [
        "-machine",
        "q35,accel=tcg",
        "-m",
        MEMORY_MIB,
        "-smp",
        "1",
        "-nographic",
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-monitor",
        "none",
        "-netdev",
        "user,id=net0",
        "-device",
        "virtio-net-pci,netdev=net0,romfile=",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push("-serial".into());
    args.push(format!("file:{}", log.display()));
    args.extend_from_slice(boot);
    let started = Instant::now();
    let child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("qemu-system-x86_64 ({e}): install qemu-system-x86"));
    let mut qemu = Qemu(child);
    loop {
        let text = console(&log);
        if text.contains(READY) {
            let took = started.elapsed();
            drop(qemu);
            return (text, took);
        }
        if let Ok(Some(status)) = qemu.0.try_wait() {
            let err = std::fs::read_to_string(dir.join(format!("{name}.qemu.stderr")))
                .unwrap_or_default();
            panic!("{name}: QEMU ended ({status}) before {READY:?}:\n{err}\nconsole:\n{text}");
        }
        if started.elapsed() > DEADLINE {
            drop(qemu);
            panic!("{name}: no {READY:?} in {DEADLINE:?}; console:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts swtpm (TPM 2.0) for one QEMU; returns its guard and QEMU's arguments for it.
fn swtpm(dir: &Path) -> (Qemu, Vec<String>) {
    let state = dir.join("tpm");
    std::fs::create_dir_all(&state).unwrap();
    let sock = state.join("swtpm.sock");
    let child = Command::new("swtpm")
        .arg("socket")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .arg("--ctrl")
        .arg(format!("type=unixio,path={}", sock.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("swtpm ({e}): install swtpm"));
    let guard = Qemu(child);
    let started = Instant::now();
    while !sock.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "swtpm made no socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let args = vec![
        "-chardev".into(),
        format!("socket,id=chrtpm,path={}", sock.display()),
        "-tpmdev".into(),
        "emulator,id=tpm0,chardev=chrtpm".into(),
        "-device".into(),
        "tpm-tis,tpmdev=tpm0".into(),
    ];
    (guard, args)
}

/// The PCR values the agent logged: `TPM PCR pcr=N sha256=HEX`.
fn logged_pcrs(console: &str) -> std::collections::BTreeMap<u32, String> {
    let field = |line: &str, key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
    };
    console
        .lines()
        .filter(|l| l.contains("TPM PCR"))
        .filter_map(|l| Some((field(l, "pcr=")?.parse().ok()?, field(l, "sha256=")?)))
        .collect()
}

/// The pinned firmware code (read-only) and a writable copy of its variable store template.
fn firmware(dir: &Path) -> (PathBuf, PathBuf) {
    let (code, template) = common::ovmf(dir);
    for f in [&code, &template] {
        assert!(
            f.is_file(),
            "{} is not in the pinned ovmf package",
            f.display()
        );
    }
    // The variable store is writable: each run gets its own copy of the template.
    let vars = dir.join("OVMF_VARS_4M.fd");
    std::fs::copy(&template, &vars).unwrap();
    (code, vars)
}

#[test]
fn ovmf_boots_the_disk_to_the_agent_and_it_is_compared_with_direct_boot() {
    let image = common::image_dir();
    let manifest =
        Manifest::from_json(&std::fs::read_to_string(image.join(recipe::MANIFEST)).unwrap())
            .expect("manifest.json");
    let dir = tempfile::tempdir().unwrap();
    let built = recipe::build_uefi(
        &common::stub(),
        &manifest.inputs.agent.version,
        &image.join(recipe::VMLINUZ),
        &image.join(recipe::INITRD),
        &manifest.cmdline,
        dir.path(),
    )
    .expect("build the disk");
    let (code, vars) = firmware(dir.path());

    let disk = dir.path().join(DISK_FILE);
    let (_swtpm, tpm_args) = swtpm(dir.path());
    let mut uefi: Vec<String> = vec![
        "-drive".into(),
        format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            code.display()
        ),
        "-drive".into(),
        format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        "-drive".into(),
        format!(
            "if=none,id=disk0,format=raw,readonly=on,file={}",
            disk.display()
        ),
        "-device".into(),
        "virtio-blk-pci,drive=disk0".into(),
    ];
    uefi.extend(tpm_args);
    let (text, uefi_time) = boot_until_ready(dir.path(), "uefi", &uefi);
    // The firmware booted the disk (not a network or shell fallback), then the agent ran.
    assert!(
        text.contains("BdsDxe: starting"),
        "no UEFI boot manager line:\n{text}"
    );
    let agent_lines = text.lines().filter(|l| l.contains("cdvm_agent")).count();
    assert!(agent_lines >= 2, "the agent did not log as PID 1:\n{text}");
    assert!(
        text.contains("module loaded module=virtio_net"),
        "the kernel did not load the initrd's modules:\n{text}"
    );
    // What the firmware and the stub extended is what the build predicted.
    let expected = recipe::uefi_expected(dir.path(), &built).expect("expected values");
    let pcrs = logged_pcrs(&text);
    for (index, want) in [
        (4, &expected.pcr4),
        (11, &expected.pcr11),
        (12, &expected.pcr12),
    ] {
        assert_eq!(
            pcrs.get(&index),
            Some(want),
            "PCR {index}: the guest's vTPM holds {:?}, the build expects {want}; console:\n{text}",
            pcrs.get(&index)
        );
    }
    println!("vTPM PCRs as the build predicted: {pcrs:?}");
    println!(
        "UEFI boot (OVMF {} {}, disk.raw {} bytes, sha256 {}): {READY:?} after {:.1} s",
        common::lock().ovmf.package,
        common::lock().ovmf.version,
        built.disk.size,
        built.disk.sha256,
        uefi_time.as_secs_f64()
    );
    for line in text
        .lines()
        .filter(|l| l.contains("BdsDxe") || l.contains(READY))
    {
        println!("  console: {line}");
    }

    // Direct boot of the same kernel, initrd and command line (SeaBIOS, as the QEMU provider
    // under TCG), for comparison.
    let direct: Vec<String> = vec![
        "-kernel".into(),
        image.join(recipe::VMLINUZ).display().to_string(),
        "-initrd".into(),
        image.join(recipe::INITRD).display().to_string(),
        "-append".into(),
        manifest.cmdline.clone(),
    ];
    let (text, direct_time) = boot_until_ready(dir.path(), "direct", &direct);
    println!(
        "direct boot (-kernel/-initrd/-append): {READY:?} after {:.1} s; UEFI disk boot took {:+.1} s more",
        direct_time.as_secs_f64(),
        uefi_time.as_secs_f64() - direct_time.as_secs_f64()
    );
    for line in text.lines().filter(|l| l.contains(READY)) {
        println!("  console: {line}");
    }
}
