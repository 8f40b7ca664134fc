//! The `Provider` seam: how the orchestrator gets a fresh confidential VM for one job and destroys it.
//!
//! Every backend (process, qemu, ssh, aws, gcp, azure) implements [`Provider`] and must pass the
//! shared [`conformance`] suite.
#![deny(missing_docs)]

pub mod conformance;
#[cfg(feature = "host")]
pub mod host;
/// Where cloud guests find their bootstrap; defined with the bootstrap in `cdvm-protocol`.
pub use cdvm_protocol::bootstrap::metadata;
#[cfg(feature = "retry")]
pub mod retry;
mod spec;

/// The bootstrap is the orchestrator–guest contract, defined in `cdvm-protocol`; a [`VmSpec`]
/// carries one.
pub use cdvm_protocol::Bootstrap;
pub use spec::{JobTag, OwnerTag, VmClass, VmHandle, VmId, VmSpec, VmState};

use async_trait::async_trait;

/// A failure of a provider call. Says which call failed and why.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the spec before doing anything (unknown class, unsupported TEE, …).
    #[error("{provider}: invalid VM spec: {reason}")]
    InvalidSpec {
        /// Provider name.
        provider: String,
        /// Why.
        reason: String,
    },
    /// No such VM (already destroyed or never existed).
    #[error("{provider}: no VM {id}")]
    NotFound {
        /// Provider name.
        provider: String,
        /// The VM id.
        id: String,
    },
    /// Out of capacity or quota; the job should fail with this reason, not be retried forever.
    #[error("{provider}: no capacity: {reason}")]
    Capacity {
        /// Provider name.
        provider: String,
        /// Why.
        reason: String,
    },
    /// A backend call failed.
    #[error("{provider}: {call} failed")]
    Backend {
        /// Provider name.
        provider: String,
        /// Which call (`launch`, `destroy`, `spawn agent`, …).
        call: String,
        /// The underlying failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A source of fresh, single-use confidential VMs.
///
/// Contract (checked by [`conformance`]):
/// - `launch` is idempotent per job tag: launching the same job twice returns the same VM.
/// - every VM carries the owner and job tags, and `list` finds it by owner.
/// - `destroy` is idempotent: destroying a destroyed or unknown VM succeeds.
/// - after `destroy`, `status` says [`VmState::Gone`] and `list` no longer returns it.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Short backend name, for logs (`process`, `qemu`, `aws`, …).
    fn name(&self) -> &str;
    /// The image name its guests report in their attestation (`cdvm_protocol::image`), which
    /// the orchestrator announces so that clients can pin it before submitting.
    fn guest_image(&self) -> &'static str;
    /// Starts a fresh VM for one job.
    async fn launch(&self, spec: &VmSpec) -> Result<VmHandle, ProviderError>;
    /// The VM's current state.
    async fn status(&self, id: &VmId) -> Result<VmState, ProviderError>;
    /// Destroys the VM and everything it owns. Idempotent.
    async fn destroy(&self, id: &VmId) -> Result<(), ProviderError>;
    /// Every live VM carrying this owner tag.
    async fn list(&self, owner: &OwnerTag) -> Result<Vec<VmHandle>, ProviderError>;
}
