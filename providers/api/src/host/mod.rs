//! Building blocks for backends whose VMs are processes on a host this orchestrator controls
//! (the process provider's agents, the QEMU provider's emulators): one folder per VM and
//! marker-based process supervision. Behind the `host` feature.

pub mod process;
pub mod stamp_cache;
pub mod vm_dir;

use std::path::Path;

use crate::{OwnerTag, VmHandle, VmId, VmState};

/// The state of a local VM: Gone without a record, else what its marked process says.
pub fn status(state_dir: &Path, id: &VmId, marker: &process::Marker) -> VmState {
    match vm_dir::VmDir::new(state_dir, id).read_meta() {
        Some(meta) => process::state(meta.pid, marker),
        None => VmState::Gone,
    }
}

/// Kills a local VM's process group, waits until no marked process is left, and removes its
/// folder. Idempotent.
pub async fn destroy(state_dir: &Path, id: &VmId, marker: &process::Marker, provider: &str) {
    let dir = vm_dir::VmDir::new(state_dir, id);
    if let Some(meta) = dir.read_meta() {
        process::kill(meta.pid, marker).await;
        tracing::info!(provider, vm = %id, job = %meta.job, "VM destroyed");
    }
    dir.remove();
}

/// Every recorded VM carrying this owner tag. Backends sweep crash leftovers first
/// ([`vm_dir::sweep`]), since only they know what to release in a folder.
pub fn owned_by(state_dir: &Path, owner: &OwnerTag) -> std::io::Result<Vec<VmHandle>> {
    Ok(vm_dir::list(state_dir)?
        .into_iter()
        .filter(|m| &m.owner == owner)
        .map(|m| m.handle())
        .collect())
}
