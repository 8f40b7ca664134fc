//! Google Compute Engine backend: confidential instances through google-cloud-compute-v1.
//!
//! One job, one instance, named `<instance_name_prefix>` + 20 hex of sha256(owner, job) (the IAM
//! condition grants create/get/delete on that prefix only). The instance is confidential
//! (SEV_SNP on N2D with `minCpuPlatform: "AMD Milan"`, or TDX on C3 / a3-highgpu-1g), terminates
//! on host maintenance, has no external IP and no service account, boots shielded (secure boot,
//! vTPM) from the one configured image, and carries:
//! - labels `<owner_label_key>: <owner>` and `cdvm-job: <job>`, label-safe (lowercased, other
//!   characters `-`, 63 at most), for server-side filtering;
//! - metadata `cdvm-owner` and `cdvm-job` with the exact tags (what `list` returns), and
//!   [`GCE_BOOTSTRAP_KEY`](cdvm_provider_api::metadata::GCE_BOOTSTRAP_KEY) with the bootstrap JSON,
//!   which the guest reads from the metadata server.
//!
//! Idempotence: inserts carry a `requestId` derived from owner and job, so retries (including
//! after a 5xx that followed the work) are carried out once by GCE; an `alreadyExists` is
//! accepted when the instance carries this job's exact tags. `destroy` deletes, waits for the
//! operation, re-reads, and deletes again (fresh request id) while the instance survives.
//!
//! Every call goes through [`RetryPolicy`](cdvm_provider_api::retry::RetryPolicy): 429 waits
//! `Retry-After`, 5xx and transport failures back off, the rest is final. Quota and stock-out
//! errors (`QUOTA_EXCEEDED`, `ZONE_RESOURCE_POOL_EXHAUSTED`, …) become
//! [`ProviderError::Capacity`](cdvm_provider_api::ProviderError::Capacity).
#![deny(missing_docs)]

pub mod catalog;
mod client;
pub mod config;
mod error;
mod names;
mod provider;
mod request;

pub use catalog::{MachineType, Tee};
pub use config::{ConfigError, GcpProviderConfig, RetrySettings};
pub use error::{GcpError, OperationError};
pub use provider::GcpProvider;

/// The backend's name in logs and errors.
pub const NAME: &str = "gcp";
