//! The report-data binding and event verification shared by every party.

use cdvm_attestation::ReportData;
use nostr::{Event, EventId, PublicKey};
use sha2::{Digest, Sha512};

use crate::ProtocolError;

/// Protocol identifier: domain-separates the report-data hash and names the wire version.
pub const PROTOCOL_VERSION: &str = "cdvm/v1";

/// THE binding between a job, the one-time guest key and the hardware report (DESIGN §3.4):
/// `SHA-512("cdvm/v1" ‖ request_event_id (32 raw bytes) ‖ guest_pubkey (32 raw x-only bytes))`.
///
/// The agent asks the secure processor for evidence carrying this value; the client recomputes it
/// from the request it signed and the key that signed the attestation event. Fixed-size fields, so
/// the concatenation is unambiguous without length prefixes.
pub fn report_data(request_id: &EventId, guest: &PublicKey) -> ReportData {
    let mut h = Sha512::new();
    h.update(PROTOCOL_VERSION.as_bytes());
    h.update(request_id.as_bytes());
    h.update(guest.as_bytes());
    ReportData(h.finalize().into())
}

/// Checks an event's id (the NIP-01 hash of its fields) and its BIP-340 signature.
/// <https://github.com/nostr-protocol/nips/blob/master/01.md>
pub fn verify_event(event: &Event) -> Result<(), ProtocolError> {
    event.verify().map_err(|source| ProtocolError::BadEvent {
        id: event.id,
        source,
    })
}
