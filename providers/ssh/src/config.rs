//! Settings of the SSH provider.

use std::path::PathBuf;
use std::time::Duration;

pub use cdvm_provider_qemu::{Accel, CpuModel, TeeMode};

/// Everything the SSH provider needs: where the bare-metal host is and how to log in, where
/// things live on it, and the local image and state.
#[derive(Clone, Debug)]
pub struct SshConfig {
    /// The remote host name or address.
    pub host: String,
    /// Its SSH port.
    pub port: u16,
    /// The remote user QEMU runs as (needs /dev/kvm and, on a TEE host, /dev/sev or TDX access).
    pub user: String,
    /// The local private key file to log in with (OpenSSH or PEM format, unencrypted).
    pub private_key: PathBuf,
    /// The host's public key, pinned: an OpenSSH public key line (`ssh-ed25519 AAAA…`, as in the
    /// host's `/etc/ssh/ssh_host_ed25519_key.pub`) or its SHA-256 fingerprint (`SHA256:…`,
    /// optionally preceded by the key type). A host presenting any other key is refused before
    /// anything is sent to it.
    pub known_host_key: String,
    /// The provider's folder on the remote host (absolute): `images/` and `vms/` live under it.
    pub remote_dir: PathBuf,
    /// The QEMU executable on the remote host (a name looked up in the remote PATH, or a path).
    pub qemu: PathBuf,
    /// CPU acceleration on the remote host.
    pub accel: Accel,
    /// Secure processor (only [`TeeMode::Sim`] for now, as for the QEMU provider).
    pub tee: TeeMode,
    /// CPU model for the launch digest (and `-cpu` under KVM).
    pub cpu: CpuModel,
    /// The built guest image folder, on this machine (`scripts/build-image` output).
    pub image_dir: PathBuf,
    /// Local state: the simulated secure processor's keys and the development policy.
    pub state_dir: PathBuf,
    /// vCPUs of the VM class the development policy pins (the digest depends on the vCPU count).
    pub policy_vcpus: u32,
    /// A VM is killed after this long whatever happens, by `timeout -s KILL` on the remote host.
    pub max_lifetime: Duration,
}
