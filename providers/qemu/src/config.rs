//! Settings of the QEMU provider, as the orchestrator's YAML names them.

use std::path::PathBuf;

use serde::Deserialize;

/// How QEMU runs the guest's CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Accel {
    /// Software emulation: works everywhere (and is the only option where nested KVM hangs).
    Tcg,
    /// Hardware virtualisation through /dev/kvm (needed for SEV-SNP and TDX).
    Kvm,
}

/// Which secure processor the guest gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TeeMode {
    /// A plain VM plus the host-side simulated secure processor, reached over virtio-serial,
    /// which reports the SEV-SNP launch digest of the kernel, initrd and command line actually
    /// booted. Development only: no shipped policy trusts its root.
    Sim,
    /// A real AMD SEV-SNP guest (`sev-snp-guest` object; KVM on an SNP host, QEMU ≥ 9.1).
    SevSnp,
    /// A real Intel TDX guest (`tdx-guest` object; KVM on a TDX host, QEMU ≥ 10.1).
    Tdx,
}

/// The CPU model the launch digest is computed for (the VMSA of each vCPU depends on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuModel {
    /// AMD EPYC 7003 (`-cpu EPYC-Milan`).
    Milan,
    /// AMD EPYC 9004 (`-cpu EPYC-Genoa`).
    Genoa,
}

impl CpuModel {
    /// QEMU's `-cpu` name.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Self::Milan => "EPYC-Milan",
            Self::Genoa => "EPYC-Genoa",
        }
    }

    pub(crate) fn measured(self) -> cdvm_image::CpuModel {
        match self {
            Self::Milan => cdvm_image::CpuModel::Milan,
            Self::Genoa => cdvm_image::CpuModel::Genoa,
        }
    }
}

/// How a VM boots the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// QEMU loads `vmlinuz`, `initrd.img` and `cmdline` itself (`-kernel`, `-initrd`, `-append`),
    /// as an SEV-SNP launch with kernel hashes measures them.
    Direct,
    /// As a cloud boots the image: UEFI firmware from pflash finds `EFI/BOOT/BOOTX64.EFI` (the
    /// UKI) on `disk.raw`, and systemd-stub starts the kernel. No `-kernel`.
    Disk(UefiFirmware),
}

/// The UEFI firmware of [`Boot::Disk`]: Debian's `ovmf` split build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UefiFirmware {
    /// `OVMF_CODE_4M.fd`, mapped read-only.
    pub code: PathBuf,
    /// `OVMF_VARS_4M.fd`, the variable store template: each VM gets a writable copy.
    pub vars_template: PathBuf,
}

impl UefiFirmware {
    /// The two files as Debian's `ovmf` package lays them out in `dir` (`/usr/share/OVMF`).
    pub fn in_dir(dir: &std::path::Path) -> Self {
        Self {
            code: dir.join("OVMF_CODE_4M.fd"),
            vars_template: dir.join("OVMF_VARS_4M.fd"),
        }
    }
}

/// Everything the QEMU provider needs.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    /// Where VM folders, the simulated secure processor's keys and the dev policy live.
    pub state_dir: PathBuf,
    /// The built guest image folder (`scripts/build-image` output: manifest.json and files).
    pub image_dir: PathBuf,
    /// The QEMU executable.
    pub qemu: PathBuf,
    /// Direct kernel boot or the UEFI disk.
    pub boot: Boot,
    /// CPU acceleration.
    pub accel: Accel,
    /// Secure processor.
    pub tee: TeeMode,
    /// CPU model for the launch digest (and `-cpu` under KVM).
    pub cpu: CpuModel,
    /// vCPUs of the VM class the dev policy pins (the digest depends on the vCPU count).
    pub policy_vcpus: u32,
    /// A VM is killed after this long whatever happens (a hard deadline on the host).
    pub max_lifetime: std::time::Duration,
}
