//! The ConfidentialDVM user client: submit a job, verify the guest's attestation against a
//! policy, send the input encrypted to the attested key, receive and decrypt the result.
//!
//! Input is sent only after verification succeeded. Every refusal is a distinct [`ClientError`].

#![deny(missing_docs)]

pub mod blob;
pub mod discover;
pub mod error;
mod job;
pub mod rag;
mod verify;

#[cfg(feature = "demo")]
pub mod cloud_emulators;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "demo")]
pub mod demo_docs;
#[cfg(feature = "demo")]
pub mod demo_table;
#[cfg(feature = "demo")]
pub mod relay;

pub use error::ClientError;
pub use job::{run_job, JobOutcome, JobSpec, Stage, Timeouts, MAX_RESULT_IN_MEMORY};
pub use verify::{verify_attestation_event, verify_evidence};
