//! The QEMU command line for one VM, per acceleration and secure processor.
//!
//! References (QEMU documentation): `docs/system/i386/amd-memory-encryption.rst` (SEV-SNP:
//! `sev-snp-guest` object, `confidential-guest-support`, `kernel-hashes=on` so the kernel, initrd
//! and command line are measured through OVMF's hashes table; QEMU ≥ 9.1), `docs/system/i386/tdx.rst`
//! (`tdx-guest` object, `kernel-irqchip=split`; QEMU ≥ 10.1), `docs/system/invocation.rst` (`-fw_cfg`,
//! `-name`, `-no-reboot`), `docs/system/devices/virtio-serial` (`virtserialport,name=`).
//!
//! The bootstrap rides fw_cfg, which no launch digest covers, so one measured image serves every
//! job.

use std::ffi::OsString;
use std::path::Path;

use crate::config::{Accel, CpuModel, TeeMode};
use crate::image::GuestImage;

/// The virtio-serial port name the guest agent looks for (`images/agent`, `guest::SIM_SP_PORT`).
pub const SIM_SP_PORT: &str = "cdvm.sim-sp";

/// How this VM boots (the files of [`crate::Boot::Disk`], per VM where they differ).
#[derive(Clone, Copy, Debug)]
pub enum VmBoot<'a> {
    /// `-kernel`/`-initrd`/`-append` from the [`GuestImage`].
    Direct,
    /// UEFI from pflash, then the image's disk.
    Disk {
        /// `OVMF_CODE_4M.fd`, mapped read-only.
        code: &'a Path,
        /// This VM's own copy of the variable store (writable).
        vars: &'a Path,
        /// The image's `disk.raw`, shared by every VM: attached read-only, so no guest can
        /// write it (the agent needs no writable disk).
        disk: &'a Path,
    },
}

/// What varies per VM.
#[derive(Clone, Debug)]
pub struct VmArgs<'a> {
    /// The `-name` marker (`cdvm-<vm id>`): how a restarted orchestrator finds the process.
    pub name: &'a str,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Bootstrap JSON file passed through fw_cfg.
    pub bootstrap: &'a Path,
    /// Where the serial console is written.
    pub console: &'a Path,
    /// Host side of the simulated secure processor (only with [`TeeMode::Sim`]).
    pub sp_socket: &'a Path,
    /// Direct kernel boot or the UEFI disk.
    pub boot: VmBoot<'a>,
}

/// The full argument list (without the executable).
pub fn build(
    image: &GuestImage,
    accel: Accel,
    tee: TeeMode,
    cpu: CpuModel,
    vm: &VmArgs<'_>,
) -> Vec<OsString> {
    let mut a = Args::default();
    a.push(["-name", vm.name]);
    a.push(["-nodefaults", "-nographic", "-no-user-config", "-no-reboot"]);
    let accel_name = match accel {
        Accel::Tcg => "tcg",
        Accel::Kvm => "kvm",
    };
    match tee {
        TeeMode::Sim => {
            a.push(["-machine", &format!("q35,accel={accel_name}")]);
            // `max` is the fastest model under TCG; under KVM, the measured model.
            let cpu_name = match accel {
                Accel::Tcg => "max",
                Accel::Kvm => cpu.qemu_name(),
            };
            a.push(["-cpu", cpu_name]);
        }
        TeeMode::SevSnp => {
            a.push([
                "-machine",
                &format!(
                    "q35,accel={accel_name},confidential-guest-support=sev0,memory-backend=ram0"
                ),
            ]);
            a.push([
                "-object",
                &format!(
                    "memory-backend-memfd,id=ram0,size={}M,share=true",
                    vm.memory_mib
                ),
            ]);
            a.push([
                "-object",
                "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on",
            ]);
            a.push(["-cpu", cpu.qemu_name()]);
            if let VmBoot::Direct = vm.boot {
                a.push_path("-bios", &image.ovmf);
            }
        }
        TeeMode::Tdx => {
            a.push([
                "-machine",
                &format!(
                    "q35,accel={accel_name},kernel-irqchip=split,confidential-guest-support=tdx0"
                ),
            ]);
            a.push(["-object", "tdx-guest,id=tdx0"]);
            a.push(["-cpu", "host"]);
            // docs/system/i386/tdx.rst: TDVF as -bios (a TD has no pflash); -shim (QEMU >= 10.0)
            // because Debian's TDVF enforces Secure Boot with Microsoft's keys.
            if let (VmBoot::Direct, Some(tdx)) = (&vm.boot, &image.tdx) {
                a.push_path("-bios", &tdx.tdvf);
                a.push_path("-shim", &tdx.shim);
            }
        }
    }
    a.push(["-smp", &vm.vcpus.to_string()]);
    a.push(["-m", &format!("{}M", vm.memory_mib)]);
    match vm.boot {
        VmBoot::Direct => {
            a.push_path("-kernel", &image.kernel);
            a.push_path("-initrd", &image.initrd);
            a.push(["-append", &image.cmdline]);
        }
        VmBoot::Disk { code, vars, disk } => {
            // As images/builder/tests/uefi_boot.rs boots it: the split OVMF build as two pflash
            // units, the code read-only; the disk on virtio-blk, read-only (QEMU opens the file
            // O_RDONLY, so no guest can write the image every VM shares).
            a.push_prefixed(
                "-drive",
                "if=pflash,format=raw,unit=0,readonly=on,file=",
                code,
            );
            a.push_prefixed("-drive", "if=pflash,format=raw,unit=1,file=", vars);
            a.push_prefixed(
                "-drive",
                "if=none,id=disk0,format=raw,readonly=on,file=",
                disk,
            );
            a.push(["-device", "virtio-blk-pci,drive=disk0"]);
        }
    }
    a.push_prefixed("-serial", "file:", vm.console);
    // User-mode networking: the guest reaches the host's loopback as 10.0.2.2, nothing inbound.
    a.push(["-netdev", "user,id=net0"]);
    a.push(["-device", "virtio-net-pci,netdev=net0,romfile="]);
    a.push_prefixed("-fw_cfg", "name=opt/cdvm/bootstrap,file=", vm.bootstrap);
    let tee_name = match tee {
        TeeMode::Sim => "sim",
        TeeMode::SevSnp => "sev-snp",
        TeeMode::Tdx => "tdx",
    };
    a.push(["-fw_cfg", &format!("name=opt/cdvm/tee,string={tee_name}")]);
    if tee == TeeMode::Sim {
        // Development: the simulated guest may fetch blobs from a Blossom server on the host's
        // loopback over plain http (the agent honours this only under the simulated TEE).
        a.push([
            "-fw_cfg",
            "name=opt/cdvm/dev-blossom,string=loopback-via-gateway",
        ]);
        a.push(["-device", "virtio-serial-pci"]);
        a.push_prefixed("-chardev", "socket,id=simsp,path=", vm.sp_socket);
        a.push([
            "-device",
            &format!("virtserialport,chardev=simsp,name={SIM_SP_PORT}"),
        ]);
    }
    a.0
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push<const N: usize>(&mut self, items: [&str; N]) {
        self.0.extend(items.iter().map(OsString::from));
    }

    fn push_path(&mut self, flag: &str, path: &Path) {
        self.0.push(flag.into());
        self.0.push(path.as_os_str().to_owned());
    }

    /// `flag prefix<path>`; QEMU option values split on commas, so a path holding one is refused
    /// when the provider creates its folders (see `lib.rs`).
    fn push_prefixed(&mut self, flag: &str, prefix: &str, path: &Path) {
        let mut value = OsString::from(prefix);
        value.push(path.as_os_str());
        self.0.push(flag.into());
        self.0.push(value);
    }
}

/// Paths that go into QEMU option values must not contain a comma (QEMU's option separator).
pub(crate) fn usable_in_option(path: &Path) -> bool {
    !path.as_os_str().as_encoded_bytes().contains(&b',')
}

/// For tests and docs: the argument list as strings.
pub fn to_strings(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}
