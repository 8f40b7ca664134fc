//! The ConfidentialDVM orchestrator: relay intake → job state machine → provider.
//!
//! The orchestrator is trusted for availability only. It never holds a key that decrypts user
//! data and never receives plaintext: it sees public requests, attestation events and ciphertext.

#![deny(missing_docs)]

pub mod config;
pub mod failpoint;
pub mod intake;
mod job;
mod keyfile;
mod provider;
mod reconcile;
pub mod refusals;
mod runtime;
pub mod store;

pub use config::Config;
pub use runtime::{run, subscriptions, OrchestratorError};
