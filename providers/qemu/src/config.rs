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

/// Everything the QEMU provider needs.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    /// Where VM folders, the simulated secure processor's keys and the dev policy live.
    pub state_dir: PathBuf,
    /// The built guest image folder (`scripts/build-image` output: manifest.json and files).
    pub image_dir: PathBuf,
    /// The QEMU executable.
    pub qemu: PathBuf,
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
