//! The agent as PID 1 of the guest image: mount the kernel file systems, load the image's
//! modules, bring up the network by DHCP on the first Ethernet interface, read the public bootstrap from
//! fw_cfg or, on a cloud, its metadata service, pick the secure processor, and power off when the
//! job is over.

mod dhcp;
mod dhcp_client;
mod fw_cfg;
mod interface;
mod modules;
mod netlink;
mod network;
mod ports;
mod source;
mod tpm;
pub(crate) mod tsm;

use std::net::Ipv4Addr;
use std::time::Instant;

use anyhow::Context;
use cdvm_attestation::Attester;
use cdvm_protocol::Bootstrap;
use nix::mount::{mount, MsFlags};

/// The virtio-serial port the host's simulated secure processor listens on.
pub(crate) const SIM_SP_PORT: &str = "cdvm.sim-sp";

/// What the guest learned while booting.
pub(crate) struct Booted {
    pub bootstrap: Bootstrap,
    pub attester: Box<dyn Attester>,
    /// Development only (simulated TEE): Blossom URLs on the host's loopback are fetched over
    /// plain http through this address (the user-network gateway).
    pub dev_blossom_via: Option<Ipv4Addr>,
}

/// Prepares the guest. Every step's failure names the step; the caller powers off either way.
pub(crate) fn boot() -> anyhow::Result<Booted> {
    let started = Instant::now();
    mount_kernel_filesystems()?;
    let modules = modules::load_all()?;
    // configfs-tsm (the hardware attesters' interface): say what is there, create nothing.
    tsm::log_state();
    // A vTPM (clouds, the UEFI disk boot test): the boot measurements policies pin.
    tpm::log_pcrs();
    let network = network::up().context("bringing up the network")?;
    tracing::info!(
        modules,
        interface = %network.interface,
        ms = started.elapsed().as_millis() as u64,
        uptime_ms = uptime_ms().unwrap_or(0),
        "guest ready"
    );
    let source = source::detect()?;
    let (bootstrap, tee, dev_blossom_via) = match source {
        source::Source::FwCfg => {
            let tee = fw_cfg::tee()?;
            let via = dev_blossom(&tee, network.gateway)?;
            (fw_cfg::bootstrap()?, tee, via)
        }
        source::Source::Cloud(service) => {
            tracing::info!(cloud = %service, "reading the bootstrap from the metadata service");
            let url = crate::metadata::Url::parse(service.default_endpoint())?;
            let bootstrap = crate::runtime()?
                .block_on(crate::metadata::read_bootstrap(service, &url))
                .context("reading the bootstrap from the metadata service")?;
            // A cloud VM's secure processor is probed; the simulated one is never offered.
            (bootstrap, "auto".to_owned(), None)
        }
    };
    let attester: Box<dyn Attester> = match tee.as_str() {
        "sim" => {
            let port = ports::find(SIM_SP_PORT)?;
            tracing::warn!(
                "using the host's SIMULATED secure processor: this guest gives no confidentiality"
            );
            Box::new(cdvm_attestation::sim::SimAttester::serial(port))
        }
        // Real hardware: configfs-tsm (the kernel has it), SNP also /dev/sev-guest; never `sim`.
        hw @ ("sev-snp" | "tdx" | "auto") => {
            let opts = crate::tee::HardwareOptions {
                tsm_root: cdvm_attestation::tsm::DEFAULT_REPORT_ROOT.into(),
                vmpl: 0,
            };
            match hw {
                "sev-snp" => crate::tee::sev_snp(&opts)?,
                "tdx" => crate::tee::tdx(&opts)?,
                _ => crate::tee::auto(&opts)?,
            }
        }
        other => anyhow::bail!("unknown secure processor {other:?} in fw_cfg opt/cdvm/tee"),
    };
    let attester = match source {
        source::Source::Cloud(cloud) => crate::tee::with_cloud_vtpm(attester, cloud)?,
        source::Source::FwCfg => attester,
    };
    Ok(Booted {
        bootstrap,
        attester,
        dev_blossom_via,
    })
}

/// fw_cfg `opt/cdvm/dev-blossom` = `loopback-via-gateway` lets a test guest fetch blobs from the
/// host's loopback over plain http, through the lease's gateway (QEMU user networking's 10.0.2.2
/// is the host's loopback). Honoured only under the simulated TEE: fw_cfg is not
/// measured, so on real hardware the operator could otherwise set it; a simulated guest is
/// refused by every shipped policy anyway.
fn dev_blossom(tee: &str, gateway: Option<Ipv4Addr>) -> anyhow::Result<Option<Ipv4Addr>> {
    let Some(value) = fw_cfg::optional("dev-blossom")? else {
        return Ok(None);
    };
    match (tee, value.trim()) {
        ("sim", "loopback-via-gateway") => {
            let gateway = gateway
                .context("fw_cfg opt/cdvm/dev-blossom needs a gateway, the lease gave none")?;
            tracing::warn!(%gateway, "development: plain-http Blossom on the host's loopback is allowed");
            Ok(Some(gateway))
        }
        ("sim", other) => anyhow::bail!("unknown fw_cfg opt/cdvm/dev-blossom value {other:?}"),
        _ => anyhow::bail!(
            "fw_cfg opt/cdvm/dev-blossom is set on a real secure processor ({tee}); refusing to boot"
        ),
    }
}

/// Seconds since the kernel started, from /proc/uptime, in milliseconds.
fn uptime_ms() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some((secs * 1000.0) as u64)
}

fn mount_kernel_filesystems() -> anyhow::Result<()> {
    let none: Option<&str> = None;
    for (source, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        ("tmpfs", "/tmp", "tmpfs"),
    ] {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
        mount(Some(source), target, Some(fstype), flags, none)
            .with_context(|| format!("mounting {fstype} on {target}"))?;
    }
    Ok(())
}

/// Ends the VM. PID 1 must never return: the kernel would panic.
pub(crate) fn power_off() -> ! {
    nix::unistd::sync();
    let err = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    tracing::error!(error = ?err, "power off failed");
    // With panic=-1 and QEMU's -no-reboot, exiting PID 1 still ends the VM.
    std::process::exit(1)
}
