//! What a VM is asked to be, and how it is referred to afterwards.

use std::fmt;

use cdvm_protocol::Bootstrap;
use serde::{Deserialize, Serialize};

/// Identifies the orchestrator that owns a VM; the reconciler destroys owned VMs no live job claims.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OwnerTag(pub String);

/// Identifies the job a VM serves (the job request event id, hex).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobTag(pub String);

/// A provider-assigned VM identifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VmId(pub String);

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for OwnerTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for JobTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The size of a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmClass {
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
}

/// Everything a provider needs to launch one job's VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSpec {
    /// Owner tag of the orchestrator.
    pub owner: OwnerTag,
    /// Job tag.
    pub job: JobTag,
    /// VM size.
    pub class: VmClass,
    /// TEE type wire name (`sev-snp`).
    pub tee: String,
    /// Public bootstrap data.
    pub bootstrap: Bootstrap,
}

/// A launched VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmHandle {
    /// Provider's id.
    pub id: VmId,
    /// Owner tag it carries.
    pub owner: OwnerTag,
    /// Job tag it carries.
    pub job: JobTag,
}

/// Lifecycle of a VM as the provider sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmState {
    /// Being created.
    Pending,
    /// Running.
    Running,
    /// Stopped by itself (the guest exited); still holds resources until destroyed.
    Exited {
        /// Exit detail, if known.
        detail: String,
    },
    /// Destroyed or never existed.
    Gone,
}
