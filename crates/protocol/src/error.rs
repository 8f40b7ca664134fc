//! The one error type of the protocol crate.

use nostr::{EventId, PublicKey};

/// Everything that can go wrong while building, parsing, wrapping or decrypting protocol events.
///
/// Variants carry the offending values so callers can log a precise reason without re-parsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The event's id is not its NIP-01 hash, or its BIP-340 signature does not verify.
    #[error("event {id}: {source}")]
    BadEvent {
        /// The id the event claims.
        id: EventId,
        /// What nostr found wrong (invalid id or invalid signature).
        #[source]
        source: nostr::event::Error,
    },

    /// The event's kind is not the one (or not in the range) this parser handles.
    #[error("event kind {got}: expected {expected}")]
    WrongKind {
        /// The kind found on the event.
        got: u16,
        /// A human-readable description of the accepted kinds, e.g. `5000-5999`.
        expected: &'static str,
    },

    /// A tag is present but malformed (bad key, bad id, wrong arity, unparsable number…).
    #[error("malformed `{tag}` tag: {reason}")]
    MalformedTag {
        /// The tag name (its first element).
        tag: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A tag the event kind requires is absent.
    #[error("missing required `{tag}` tag")]
    MissingTag {
        /// The tag name.
        tag: &'static str,
    },

    /// A job-request `param` the protocol requires is absent.
    #[error("missing required param `{name}`")]
    MissingParam {
        /// The param name.
        name: &'static str,
    },

    /// A confidential request carries plaintext `i` tags: its input is already public.
    #[error("the request carries {count} plaintext `i` tag(s): that input is now public on every relay that received the request; a confidential job sends its input only to the attested guest, never in the request (delete the request and submit one without `i` tags)")]
    PlaintextInput {
        /// How many `i` tags.
        count: usize,
    },

    /// A confidential request has content (requests are public; the input never goes there).
    #[error("the request content must be empty ({len} bytes found): requests are public, the input goes gift-wrapped to the attested guest")]
    NonEmptyContent {
        /// Content length in bytes.
        len: usize,
    },

    /// A param the job kind does not define.
    #[error("job kind {kind} defines no param `{name}`")]
    UnknownParam {
        /// The request kind.
        kind: u16,
        /// The param name found.
        name: String,
    },

    /// A defined param with a value outside its domain.
    #[error("param `{name}` is `{value}`; expected {expected}")]
    InvalidParam {
        /// The param name.
        name: &'static str,
        /// The value found (at most 64 characters of it).
        value: String,
        /// What is allowed.
        expected: &'static str,
    },

    /// A tag this protocol knows but does not support.
    #[error("`{tag}` tag not supported: {reason}")]
    UnsupportedTag {
        /// The tag name.
        tag: &'static str,
        /// Why.
        reason: &'static str,
    },

    /// The `tee` param names a TEE this implementation does not know.
    #[error("unknown TEE `{value}`")]
    UnknownTee {
        /// The value found.
        value: String,
    },

    /// A content field is present but invalid (bad hex, wrong length, unsupported value).
    #[error("invalid `{field}`: {reason}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// A payload carries a protocol version this implementation does not speak.
    #[error("unsupported {what} version {got} (expected {expected})")]
    UnsupportedVersion {
        /// Which payload.
        what: &'static str,
        /// The version found.
        got: u32,
        /// The version supported.
        expected: u32,
    },

    /// Two places that must name the same job request disagree (tag vs payload, rumor vs body).
    #[error("request id mismatch: {context} says {found}, expected {expected}")]
    RequestMismatch {
        /// Where the mismatch was found.
        context: &'static str,
        /// The request id that was expected (from the signed tag).
        expected: String,
        /// The request id found.
        found: String,
    },

    /// JSON content could not be (de)serialized.
    #[error("{what}: {source}")]
    Json {
        /// Which payload.
        what: &'static str,
        /// The serde_json error.
        #[source]
        source: serde_json::Error,
    },

    /// The serialized confidential input does not fit in one gift-wrapped event.
    #[error("confidential input is {size} bytes, the maximum is {max}")]
    InputTooLarge {
        /// Serialized JSON size in bytes.
        size: usize,
        /// The limit ([`crate::MAX_INPUT_PLAINTEXT`]).
        max: usize,
    },

    /// A built event would exceed what relays accept ([`crate::MAX_EVENT_SIZE`]), e.g. an input
    /// whose JSON escaping inflates the NIP-59 rumor past [`crate::MAX_INPUT_RUMOR`].
    #[error("{what} is {size} bytes, the maximum is {max}")]
    EventTooLarge {
        /// Which event or layer.
        what: &'static str,
        /// Its serialized size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },

    /// The serialized result payload does not fit in one event.
    #[error("result payload is {size} bytes, the maximum is {max}")]
    ResultTooLarge {
        /// Serialized JSON size in bytes.
        size: usize,
        /// The limit ([`crate::MAX_RESULT_PLAINTEXT`]).
        max: usize,
    },

    /// NIP-44 encryption or decryption failed (wrong key, tampered payload, bad padding…).
    #[error("NIP-44: {source}")]
    Nip44 {
        /// The nostr NIP-44 error.
        #[source]
        source: nostr::nips::nip44::Error,
    },

    /// NIP-59 unwrapping failed (not a gift wrap, not for us, bad seal, sender mismatch).
    #[error("NIP-59: {source}")]
    Nip59 {
        /// The nostr NIP-59 error.
        #[source]
        source: nostr::nips::nip59::Error,
    },

    /// nostr could not build or sign an event.
    #[error("building event: {source}")]
    EventBuild {
        /// The nostr builder error.
        #[source]
        source: nostr::event::builder::Error,
    },

    /// The rumor's author is not the key that signed the seal (an impersonation attempt).
    #[error("rumor author {rumor} is not the seal signer {seal}")]
    SenderMismatch {
        /// Seal signer.
        seal: PublicKey,
        /// Rumor `pubkey`.
        rumor: PublicKey,
    },

    /// The decrypted result's output does not hash to its `output_sha256`.
    #[error("result output hashes to {actual}, payload says {expected}")]
    ResultHashMismatch {
        /// `output_sha256` from the payload.
        expected: String,
        /// SHA-256 of the received output.
        actual: String,
    },
}
