//! Deterministic names and the admin account nobody can use.
//!
//! ARM insists on an admin account for a Linux VM made from a generalized image, and with
//! password logins off it insists on an SSH key. Job VMs must have no login at all, so the
//! account gets a fixed name and one Ed25519 "public key" that is a SHA-256 output: no private
//! key for it is known to anyone (finding one means solving a discrete logarithm for a point
//! nobody chose). Both are fixed rather than random so that a retried PUT of the same VM is an
//! identical request (ARM refuses changes to `osProfile`). Besides, the guest image runs no
//! provisioning agent (`provisionVMAgent: false`) and no SSH server, so the account is never even
//! created in the guest; extensions are off too (`allowExtensionOperations: false`).

use base64::Engine;
use cdvm_provider_api::{JobTag, OwnerTag};
use sha2::{Digest, Sha256};

/// The admin account name ARM is given.
pub const ADMIN_USERNAME: &str = "cdvmnologin";

/// Where ARM would write the key.
pub fn authorized_keys_path() -> String {
    format!("/home/{ADMIN_USERNAME}/.ssh/authorized_keys")
}

/// `ssh-ed25519 …`: an OpenSSH public key line whose private key nobody holds.
pub fn nobody_ssh_key() -> String {
    const ALGO: &[u8] = b"ssh-ed25519";
    let point =
        Sha256::digest(b"ConfidentialDVM: an Ed25519 public key whose private key nobody holds");
    let mut blob = Vec::with_capacity(4 + ALGO.len() + 4 + point.len());
    for field in [ALGO, point.as_slice()] {
        blob.extend_from_slice(&(field.len() as u32).to_be_bytes());
        blob.extend_from_slice(field);
    }
    format!(
        "ssh-ed25519 {} cdvm-nobody",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

/// The VM name of a job: `cdvm-` and 20 hex digits of SHA-256(owner, job), so a retried launch
/// finds the VM the first one made. 25 characters: within ARM's 64 and Linux's host name limit.
pub fn vm_name(owner: &OwnerTag, job: &JobTag) -> String {
    let mut h = Sha256::new();
    h.update(owner.0.as_bytes());
    h.update([0]);
    h.update(job.0.as_bytes());
    format!("cdvm-{}", &hex::encode(h.finalize())[..20])
}

/// The NIC name of a VM.
pub fn nic_name(vm: &str) -> String {
    format!("{vm}-nic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_and_distinct() {
        let o = OwnerTag("o".into());
        let a = vm_name(&o, &JobTag("a".into()));
        assert_eq!(a, vm_name(&o, &JobTag("a".into())));
        assert_ne!(a, vm_name(&o, &JobTag("b".into())));
        assert_ne!(a, vm_name(&OwnerTag("p".into()), &JobTag("a".into())));
        assert_eq!(a.len(), 25);
        assert_eq!(nic_name(&a), format!("{a}-nic"));
    }

    #[test]
    fn the_nobody_key_is_a_well_formed_ed25519_line() {
        let line = nobody_ssh_key();
        let mut parts = line.split(' ');
        assert_eq!(parts.next(), Some("ssh-ed25519"));
        let blob = base64::engine::general_purpose::STANDARD
            .decode(parts.next().expect("blob"))
            .expect("base64");
        assert_eq!(blob.len(), 4 + 11 + 4 + 32);
        assert_eq!(&blob[4..15], b"ssh-ed25519");
        assert_eq!(
            line,
            nobody_ssh_key(),
            "fixed, so retried PUTs are identical"
        );
    }
}
