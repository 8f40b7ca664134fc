//! Event kinds used by the protocol, each with the NIP that defines it.

/// Lowest NIP-90 job-request kind. <https://github.com/nostr-protocol/nips/blob/master/90.md>
pub const JOB_REQUEST_MIN: u16 = 5000;
/// Highest NIP-90 job-request kind. <https://github.com/nostr-protocol/nips/blob/master/90.md>
pub const JOB_REQUEST_MAX: u16 = 5999;
/// A NIP-90 job result's kind is its request's kind plus this.
/// <https://github.com/nostr-protocol/nips/blob/master/90.md>
pub const JOB_RESULT_OFFSET: u16 = 1000;
/// Lowest NIP-90 job-result kind. <https://github.com/nostr-protocol/nips/blob/master/90.md>
pub const JOB_RESULT_MIN: u16 = JOB_REQUEST_MIN + JOB_RESULT_OFFSET;
/// Highest NIP-90 job-result kind. <https://github.com/nostr-protocol/nips/blob/master/90.md>
pub const JOB_RESULT_MAX: u16 = JOB_REQUEST_MAX + JOB_RESULT_OFFSET;
/// NIP-90 job feedback. <https://github.com/nostr-protocol/nips/blob/master/90.md>
pub const JOB_FEEDBACK: u16 = 7000;
/// NIP-89 handler information (addressable). <https://github.com/nostr-protocol/nips/blob/master/89.md>
pub const HANDLER_INFO: u16 = 31990;

/// Blossom user server list (BUD-03), replaceable: `["server", url]` tags in order of preference.
/// <https://github.com/hzrd149/blossom/blob/master/buds/03.md>
pub const USER_SERVER_LIST: u16 = 10063;
/// Blossom authorization event (BUD-11), sent in an HTTP header, never published.
/// <https://github.com/hzrd149/blossom/blob/master/buds/11.md>
pub const BLOSSOM_AUTH: u16 = 24242;

/// Ours: the guest attestation event, signed by the one-time guest key G.
///
/// A *regular* event (NIP-01 range 1000–9999, <https://github.com/nostr-protocol/nips/blob/master/01.md>)
/// so relays store every one; next to NIP-90 feedback (7000) because it is job traffic. Not assigned
/// by any NIP as of 2026-11.
pub const ATTESTATION: u16 = 7010;

/// Ours: the kind of the NIP-59 rumor that carries the confidential input inside a gift wrap.
///
/// The rumor is never published on its own (<https://github.com/nostr-protocol/nips/blob/master/59.md>);
/// a dedicated kind keeps it from being mistaken for a chat message (NIP-17 kind 14).
pub const INPUT_RUMOR: u16 = 7011;

/// NIP-59 seal. <https://github.com/nostr-protocol/nips/blob/master/59.md>
pub const SEAL: u16 = 13;
/// NIP-59 gift wrap. <https://github.com/nostr-protocol/nips/blob/master/59.md>
pub const GIFT_WRAP: u16 = 1059;

/// Our job kind: SQL over a confidential CSV table (in the NIP-90 request range,
/// <https://github.com/nostr-protocol/nips/blob/master/90.md>; not in the DVM kinds registry).
pub const SQL: u16 = 5970;
/// Our job kind: statistics over a confidential text (NIP-90 request range, as [`SQL`]).
pub const TEXT_STATS: u16 = 5971;
/// NIP-90 text generation, used for the confidential RAG job: DVM explorers and clients list a
/// DVM by it. Its prompt and documents travel only in the encrypted input (docs/protocol.md §5.9).
/// <https://github.com/nostr-protocol/data-vending-machines/blob/master/kinds/5050.md>
pub const TEXT_GENERATION: u16 = 5050;

/// The result kind answering a request kind (5xxx → 6xxx), or `None` outside the request range.
/// <https://github.com/nostr-protocol/nips/blob/master/90.md>
pub fn result_kind(request_kind: u16) -> Option<u16> {
    if is_job_request(request_kind) {
        Some(request_kind + JOB_RESULT_OFFSET)
    } else {
        None
    }
}

/// Whether `kind` is a NIP-90 job-request kind (5000–5999).
pub fn is_job_request(kind: u16) -> bool {
    (JOB_REQUEST_MIN..=JOB_REQUEST_MAX).contains(&kind)
}

/// Whether `kind` is a NIP-90 job-result kind (6000–6999).
pub fn is_job_result(kind: u16) -> bool {
    (JOB_RESULT_MIN..=JOB_RESULT_MAX).contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_kind_maps_only_requests() {
        assert_eq!(result_kind(5000), Some(6000));
        assert_eq!(result_kind(SQL), Some(6970));
        assert_eq!(result_kind(5999), Some(6999));
        assert_eq!(result_kind(4999), None);
        assert_eq!(result_kind(6000), None);
        assert_eq!(result_kind(JOB_FEEDBACK), None);
    }
}
