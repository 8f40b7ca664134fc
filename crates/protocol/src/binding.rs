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

/// The 32-byte nonce the guest sends each confidential GPU (SPDM GET_MEASUREMENTS) and the
/// verifier expects back: `REPORT_DATA[0..32]` (docs/protocol.md §4, "The GPU nonce"). One
/// definition, in the attestation crate (which this crate depends on), re-exported here so agent
/// and client name it next to [`report_data`].
pub use cdvm_attestation::nvidia::gpu_nonce;

/// Checks an event's id (the NIP-01 hash of its fields) and its BIP-340 signature.
/// <https://github.com/nostr-protocol/nips/blob/master/01.md>
pub fn verify_event(event: &Event) -> Result<(), ProtocolError> {
    event.verify().map_err(|source| ProtocolError::BadEvent {
        id: event.id,
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Known answers of docs/protocol.md §4: REPORT_DATA, then the GPU nonce derived from it.
    #[test]
    fn report_data_and_gpu_nonce_known_answers() {
        let id =
            EventId::from_hex("a53c938921b8f3e98d9d4339bfe628f80e45f0f9daa48f8685734921d02f4c87")
                .unwrap();
        let g =
            PublicKey::from_hex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
                .unwrap();
        let rd = report_data(&id, &g);
        assert_eq!(
            hex::encode(rd.as_bytes()),
            "f41b6576f1f96753d2d1ef6f166e8e768813aa26ddec4880f56bc4e74ff2ead6\
             34ca1ec9e3d60bb150db32046c703329b5c4eab558e79cba87fe505344902eab"
        );
        assert_eq!(
            hex::encode(gpu_nonce(rd.as_bytes())),
            "f41b6576f1f96753d2d1ef6f166e8e768813aa26ddec4880f56bc4e74ff2ead6"
        );
        // The verifier's view is the same function.
        assert_eq!(rd.gpu_nonce(), gpu_nonce(rd.as_bytes()));
    }
}
