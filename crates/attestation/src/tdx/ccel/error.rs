//! Why a CCEL table or event log was refused, or did not match the quote or the expectations.

use crate::tdx::ccel::EventType;

/// Why a CCEL table or event log was refused. Events are numbered in log order: the Spec ID
/// event is 0, the first crypto-agile event 1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CcelError {
    /// The ACPI CCEL table is not 56 bytes with the "CCEL" signature, a matching length field
    /// and a zero checksum.
    #[error("malformed ACPI CCEL table: {0}")]
    TableMalformed(String),
    /// The CCEL table is for another confidential-computing technology (1 = SEV).
    #[error("CCEL table CC type {cc_type} is not TDX (2)")]
    NotTdx {
        /// The table's CC type.
        cc_type: u8,
    },
    /// The log is larger than the log area the table declares (LAML).
    #[error("event log of {len} bytes is larger than the CCEL log area ({laml} bytes)")]
    LogLargerThanArea {
        /// Bytes given.
        len: usize,
        /// The table's log area minimum length.
        laml: u64,
    },
    /// A fixed-size field (an event header, a digest, a Spec ID field) runs past the end.
    #[error("event log truncated: {what} of event {event} needs {needed} bytes at offset {offset}, only {left} left")]
    Truncated {
        /// The field.
        what: &'static str,
        /// The event being read.
        event: usize,
        /// Where the field starts.
        offset: usize,
        /// Its size.
        needed: usize,
        /// Bytes left in the log.
        left: usize,
    },
    /// An event's `eventSize` runs past the end of the log.
    #[error("event {event} at offset {offset} declares {size} bytes of data, only {left} left")]
    EventSizePastEnd {
        /// The event.
        event: usize,
        /// Where the event starts.
        offset: usize,
        /// The declared data size.
        size: u32,
        /// Bytes left in the log after the size field.
        left: usize,
    },
    /// The first event is not a well-formed TCG "Spec ID Event03" (crypto-agile log header).
    #[error("bad Spec ID event: {0}")]
    BadSpecIdEvent(String),
    /// The Spec ID event does not declare SHA-384 with 48-byte digests: the log cannot be
    /// replayed into RTMRs.
    #[error(
        "the event log does not carry SHA-384 digests (Spec ID event algorithms: {algorithms})"
    )]
    NoSha384 {
        /// The declared algorithms (`id:size`, hex ids).
        algorithms: String,
    },
    /// An event carries a digest of an algorithm the Spec ID event did not declare.
    #[error("event {event} carries a digest of undeclared algorithm {alg:#06x}")]
    UndeclaredAlgorithm {
        /// The event.
        event: usize,
        /// The algorithm id.
        alg: u16,
    },
    /// An event's digest list is empty, longer than the declared algorithms, repeats an
    /// algorithm, or has no SHA-384 digest.
    #[error("event {event} digest list: {reason}")]
    BadDigestList {
        /// The event.
        event: usize,
        /// What is wrong.
        reason: String,
    },
    /// An event names an MR index other than 1..=4 (RTMR0..3); 0 (MRTD) is only allowed for
    /// EV_NO_ACTION events, which extend nothing.
    #[error("event {event} ({event_type}) names MR index {index}: only 1..=4 (RTMR0..3) can be extended")]
    MrIndexOutOfRange {
        /// The event.
        event: usize,
        /// Its type.
        event_type: EventType,
        /// The MR index it names.
        index: u32,
    },
    /// More events than [`crate::tdx::ccel::MAX_EVENTS`].
    #[error("event log has more than {max} events")]
    TooManyEvents {
        /// The cap.
        max: usize,
    },
    /// Bytes after the end-of-log padding marker that are not padding.
    #[error(
        "non-padding bytes after the end of the event log (padding starts at offset {offset})"
    )]
    TrailingData {
        /// Where the padding starts.
        offset: usize,
    },
    /// An event whose type defines its digest as SHA-384 of its data carries other data.
    #[error("event {event} ({event_type}): its data does not hash to its SHA-384 digest")]
    DataDigestMismatch {
        /// The event.
        event: usize,
        /// Its type.
        event_type: EventType,
    },
    /// Replaying the log does not give the quote's RTMR: the log is not the one measured.
    #[error("RTMR{index} mismatch: the event log replays to {replayed}, the quote has {quote}")]
    RtmrMismatch {
        /// 0..=3.
        index: usize,
        /// Hex of the replayed value.
        replayed: String,
        /// Hex of the quote's value.
        quote: String,
    },
    /// An expectation is not well formed (RTMR out of range, no or both of digest/measured).
    #[error("invalid expected event {index}: {reason}")]
    InvalidExpectation {
        /// Position in the expectation list.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// No event of the verified log matches an expectation.
    #[error("no event in RTMR{rtmr} matches expected event {index}: {expected}")]
    ExpectedEventMissing {
        /// Position in the expectation list.
        index: usize,
        /// The RTMR it names.
        rtmr: u8,
        /// The expectation, described.
        expected: String,
    },
}
