//! UEFI boot smoke test: QEMU (q35, TCG) with Debian's OVMF boots `disk.raw` built from the real
//! image, with no `-kernel`: the firmware finds `EFI/BOOT/BOOTX64.EFI` on the ESP, systemd-stub
//! hands the kernel its `.cmdline` and `.initrd`, and the agent starts as PID 1 and logs
//! "guest ready" on the serial console. That line reaching the serial port at all shows the
//! embedded command line was used: without its `console=ttyS0` the agent's log would go to the
//! VGA console. The test stops there (no fw_cfg bootstrap is passed, so the agent would then
//! power off anyway). The same QEMU direct-boots the same kernel, initrd and command line for
//! comparison; both times are printed.
//!
//! Needs `qemu-system-x86_64`, Debian's `ovmf` package and the built image (`CDVM_IMAGE_DIR` or
//! `target/image`); a missing one fails the test, saying what to install or build.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdvm_image::manifest::Manifest;
use cdvm_image::recipe::{self, DISK_FILE};

/// Debian's `ovmf` package: the firmware code (read-only) and the variable store template.
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// What the agent logs once the guest is up (`images/agent/src/guest/mod.rs`).
const READY: &str = "guest ready";
/// TCG on a busy 2-core CI machine: generous.
const DEADLINE: Duration = Duration::from_secs(300);
/// The guest memory the provider gives the image (`IMAGE_GUEST_MEMORY_MIB`).
const MEMORY_MIB: &str = "1536";

/// Kills QEMU when dropped, whatever happened.
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

fn firmware(dir: &Path) -> PathBuf {
    for f in [OVMF_CODE, OVMF_VARS] {
        assert!(
            Path::new(f).is_file(),
            "{f} is missing: install Debian's ovmf package (.ci/run lists it)"
        );
    }
    // The variable store is writable: each run gets its own copy of the template.
    let vars = dir.join("OVMF_VARS_4M.fd");
    std::fs::copy(OVMF_VARS, &vars).unwrap();
    vars
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
    let vars = firmware(dir.path());

    let disk = dir.path().join(DISK_FILE);
    let uefi: Vec<String> = vec![
        "-drive".into(),
        format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
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
    println!(
        "UEFI boot (OVMF {OVMF_CODE}, disk.raw {} bytes, sha256 {}): {READY:?} after {:.1} s",
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
