//! The ConfidentialDVM wire protocol (`cdvm/v1`): typed NIP-90 job events, the NIP-89 handler
//! announcement, the guest attestation event, the NIP-59 gift-wrapped confidential input, the
//! NIP-44 encrypted result payload, and the one report-data binding shared by agent and client.
//!
//! This crate does no I/O and holds no policy: it builds and parses events. The public contract it
//! implements is written down in `docs/protocol.md`.
//!
//! Job events are built here with `EventBuilder::new(Kind::Custom(n), ..)` instead of nostr's
//! NIP-90 helpers, because `EventBuilder::job_result` copies the request's plaintext `i` tags into
//! the result (DESIGN §3).
#![deny(missing_docs)]

mod attestation_event;
mod binding;
pub mod blob;
pub mod bootstrap;
pub mod deadline;
mod error;
mod feedback;
mod handler;
pub mod image;
mod input;
pub mod kinds;
pub mod profile;
pub mod rag;
mod request;
mod result;
mod result_payload;
mod tags;

/// Re-exported so every dependent uses exactly the pinned nostr version.
pub use nostr;

/// The TEE family named in requests, announcements and evidence.
pub use cdvm_attestation::TeeKind;
/// Attestation types that appear in this crate's signatures.
pub use cdvm_attestation::{Evidence, ReportData};

pub use attestation_event::{
    interface_tag, model_tag, AttestationEvent, AttestationPayload, ImageIdentity,
};
pub use binding::{gpu_nonce, report_data, verify_event, PROTOCOL_VERSION};
pub use blob::{BlobRef, Data, BLOB_ALGORITHM};
pub use bootstrap::Bootstrap;
pub use error::ProtocolError;
pub use feedback::{FeedbackStatus, JobFeedback};
pub use handler::HandlerInfo;
pub use input::{
    unwrap_input, wrap_input, ConfidentialInput, InputBody, MAX_EVENT_SIZE, MAX_INPUT_PLAINTEXT,
    MAX_INPUT_RUMOR, MAX_RESULT_SERVERS,
};
pub use request::{JobInputTag, JobRequest, JobRequestBuilder};
pub use result::{ErrorClass, JobResult, PublicOutcome};
pub use result_payload::{
    decrypt_result, encrypt_result, Outcome, ResultPayload, MAX_RESULT_PLAINTEXT,
};

/// The input cap when neither the announcement nor the bootstrap names one: 1 GiB of plaintext.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 1 << 30;

/// Version number carried as `"v"` in every JSON payload of `cdvm/v1`.
pub const PAYLOAD_VERSION: u32 = 1;
