//! The guest image's kernel really has what the hardware attesters need: booted by the QEMU
//! provider under TCG, the agent (PID 1) loads configfs, the configfs-tsm core (`tsm`) and both
//! provider drivers' modules, the provider drivers refuse to bind (no SEV-SNP or TDX hardware under
//! TCG) without failing the boot, and the configfs-tsm report directory is there and empty, with no
//! provider registered. The cloud NIC and disk drivers load or are skipped without failing the boot
//! (`hv_vmbus` finds no Hyper-V), and the network comes up by DHCP from QEMU user networking's
//! server (10.0.2.15/24, gateway 10.0.2.2, DNS 10.0.2.3). Also prints the boot and DHCP times.
//!
//! Needs `qemu-system-x86_64` and the image from `scripts/build-image` (which `scripts/test` and
//! `.ci/run` build first); a missing one fails with a message saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cdvm_provider_api::conformance::sample_spec;
use cdvm_provider_api::{JobTag, OwnerTag, Provider};
use cdvm_provider_qemu::{Accel, Boot, CpuModel, QemuConfig, QemuProvider, TeeMode};

/// The line the agent logs when configfs-tsm is there without a provider (`guest/tsm.rs`).
const TSM_EMPTY: &str = "configfs-tsm: /sys/kernel/config/tsm/report present, no TSM provider \
                         registered (no SEV-SNP/TDX hardware)";

fn config(state: &Path) -> QemuConfig {
    QemuConfig {
        state_dir: state.to_path_buf(),
        image_dir: cdvm_provider_qemu::built_image_dir().unwrap_or_else(|e| panic!("{e}")),
        qemu: "qemu-system-x86_64".into(),
        boot: Boot::Direct,
        accel: Accel::Tcg,
        tee: TeeMode::Sim,
        cpu: CpuModel::Milan,
        policy_vcpus: 1,
        max_lifetime: Duration::from_secs(120),
    }
}

/// The console's lines so far (the agent's log: ANSI colours are off for PID 1).
fn console_lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

fn field(line: &str, name: &str) -> Option<u64> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[tokio::test]
async fn the_kernel_loads_the_tsm_modules_and_the_report_directory_is_empty_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let p = QemuProvider::new(config(dir.path())).unwrap();
    let started = Instant::now();
    let mut spec = sample_spec(&OwnerTag("o".into()), &JobTag("5e".repeat(32)));
    spec.class.memory_mib = cdvm_provider_qemu::IMAGE_GUEST_MEMORY_MIB;
    let vm = p.launch(&spec).await.unwrap();
    let console: PathBuf = dir.path().join("vms").join(&vm.id.0).join("console.log");
    let deadline = started + Duration::from_secs(90);
    let lines = loop {
        let lines = console_lines(&console);
        if lines.iter().any(|l| l.contains("guest ready")) || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wall = started.elapsed();
    p.destroy(&vm.id).await.unwrap();
    let log = lines.join("\n");

    let ready = lines
        .iter()
        .position(|l| l.contains("guest ready"))
        .unwrap_or_else(|| panic!("the guest did not get ready in 90 s; console:\n{log}"));
    let has = |needles: &[&str]| {
        lines[..ready]
            .iter()
            .position(|l| needles.iter().all(|n| l.contains(n)))
    };
    // The configfs-tsm core and what it needs, and the network/fw_cfg the image always loaded.
    let mut loaded = Vec::new();
    for module in ["configfs", "tsm", "virtio_net", "qemu_fw_cfg"] {
        let at = has(&["module loaded", &format!("module={module}")])
            .unwrap_or_else(|| panic!("no 'module loaded module={module}' line; console:\n{log}"));
        loaded.push(at);
    }
    assert!(loaded[0] < loaded[1], "configfs loads before tsm:\n{log}");
    // The provider drivers find no hardware under TCG: logged, not fatal.
    for (module, why) in [
        ("sev_guest", "no SEV-SNP guest device"),
        ("tdx_guest", "no TDX guest support"),
    ] {
        let at = has(&["module not loaded", why, &format!("module={module}")])
            .unwrap_or_else(|| panic!("no clear line for {module} under TCG; console:\n{log}"));
        assert!(at > loaded[1], "{module} is tried after tsm:\n{log}");
    }
    // Every cloud's drivers are in the image: PCI drivers load without their hardware, Hyper-V's
    // bus finds no Hyper-V and the drivers on it are skipped, not tried.
    for module in ["ena", "gve", "nvme", "virtio_blk", "sd_mod"] {
        has(&["module loaded", &format!("module={module}")]).unwrap_or_else(|| {
            panic!(
                "no 'module loaded module={module}' line; console:
{log}"
            )
        });
    }
    has(&["module not loaded", "no Hyper-V VMBus", "module=hv_vmbus"])
        .unwrap_or_else(|| panic!("no clear line for hv_vmbus under TCG; console:\n{log}"));
    for module in ["hv_netvsc", "hv_storvsc"] {
        has(&[
            "module skipped",
            "needs hv_vmbus",
            &format!("module={module}"),
        ])
        .unwrap_or_else(|| panic!("{module} not skipped; console:\n{log}"));
    }
    // The network: the first Ethernet interface, configured from slirp's DHCP lease.
    has(&["network interface", "interface=eth0"])
        .unwrap_or_else(|| panic!("no 'network interface' line; console:\n{log}"));
    let lease = has(&[
        "DHCP lease",
        "address=10.0.2.15/24",
        "gateway=10.0.2.2",
        "dns=10.0.2.3",
        "server=10.0.2.2",
    ])
    .map(|at| lines[at].clone())
    .unwrap_or_else(|| panic!("no DHCP lease line from slirp; console:\n{log}"));
    let dhcp_ms = field(&lease, "ms").expect("ms in the DHCP lease line");

    // configfs mounted, the report directory present and empty, no provider: exactly one line.
    let tsm_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("configfs-tsm:"))
        .collect();
    assert_eq!(tsm_lines.len(), 1, "one configfs-tsm line:\n{log}");
    assert!(
        tsm_lines[0].ends_with(TSM_EMPTY),
        "expected {TSM_EMPTY:?}, got {:?}",
        tsm_lines[0]
    );
    assert!(
        !log.contains("report entries already there"),
        "the report directory must be empty"
    );

    let ready_line = &lines[ready];
    let uptime = field(ready_line, "uptime_ms").expect("uptime_ms in the guest ready line");
    let agent_ms = field(ready_line, "ms").expect("ms in the guest ready line");
    eprintln!(
        "boot under TCG: guest ready at kernel uptime {uptime} ms (agent's own steps {agent_ms} \
         ms, DHCP {dhcp_ms} ms), {:.1} s wall from launch",
        wall.as_secs_f64()
    );
}
