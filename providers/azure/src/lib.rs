//! Azure backend: one confidential VM (SEV-SNP or TDX) per job, through Azure Resource Manager.
//!
//! # SDK choice
//! The generated `azure_mgmt_compute` crate is frozen on azure_core 0.21 and unmaintained, and
//! the official `azure_resourcemanager_compute` is only a name reservation (0.0.1, no code), so
//! this crate uses the maintained azure_core 1.x for the HTTP pipeline (request ids, user agent,
//! logging with redaction, the reqwest + rustls transport) and `TokenCredential`, azure_identity
//! 1.x for production credentials, and its own typed serde models of the few ARM bodies it
//! needs ([`models`]). azure_core's bearer-token policy refuses plain `http`, so a small policy
//! of ours adds the token, over TLS or to a loopback address only (the emulator). azure_core's
//! retries are off: every call goes through [`RetryPolicy::run`](cdvm_provider_api::retry::RetryPolicy::run)
//! classified by [`ArmError::retry`]. Building this crate from scratch with its dependencies
//! (azure_core, azure_identity, reqwest 0.13, rustls with aws-lc-rs, tokio, serde) costs about
//! 12 CPU-minutes, aws-lc-sys's C build included (the AWS and GCP backends need it anyway).
//!
//! # Calls
//! - `launch`: picks the smallest allowed size with the spec's TEE that fits its class
//!   (refusing before any call otherwise), derives the VM name from owner and job, and reads
//!   it: a VM of that name with our tags is returned as is (a retried launch), one with other
//!   tags is refused. Otherwise it PUTs the NIC (job subnet, no public IP) and then the VM
//!   (`ConfidentialVM`, secure boot, vTPM, `DiskWithVMGuestState`, the one image, NIC and disk
//!   deleted with the VM, no identity, no usable login — see [`names`] — the bootstrap as
//!   base64 `userData`, owner and job tags), following each `Azure-AsyncOperation` to its end.
//!   PUT by name is idempotent, so a PUT retried after a lost answer updates, never duplicates.
//!   A failed launch deletes what it made. Quota and capacity errors become
//!   [`ProviderError::Capacity`](cdvm_provider_api::ProviderError::Capacity).
//! - `status`: `GET …?$expand=instanceView` ([`state::vm_state`]); 404 is `Gone`.
//! - `destroy`: DELETE the VM, then the NIC, each re-read until ARM answers 404 (a lost delete
//!   is sent again); unknown VMs are fine.
//! - `list`: the group's VMs, filtered by the owner tag.
//!
//! # Credentials and the emulator
//! [`AzureProvider::new`] uses the managed identity `identity_client_id` (or, without one, the
//! Azure CLI / Azure Developer CLI login). Tests point `endpoint` at the mock cloud
//! (`cdvm-mockcloud`, feature `arm`) and pass a static token to
//! [`AzureProvider::with_credential`]; `retry` makes waits milliseconds.
#![deny(missing_docs)]

pub mod auth;
mod client;
pub mod config;
mod error;
pub mod models;
pub mod names;
mod provider;
mod requests;
pub mod sizes;
pub mod state;

pub use client::{COMPUTE_API_VERSION, NETWORK_API_VERSION};
pub use config::{AzureProviderConfig, ConfigError, RetrySettings};
pub use error::ArmError;
pub use provider::AzureProvider;

/// The backend's name in logs and errors.
pub const NAME: &str = "azure";

/// The tag key carrying the job (the owner's key is configured: `owner_tag_key`).
pub const JOB_TAG_KEY: &str = "cdvm-job";
