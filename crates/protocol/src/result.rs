//! NIP-90 job result (kind = request kind + 1000). <https://github.com/nostr-protocol/nips/blob/master/90.md>
//!
//! Ours is signed by the guest key G and its content is a NIP-44 ciphertext to the user
//! (see [`crate::encrypt_result`]); it never echoes the request's `i` tags.

use nostr::{Event, EventBuilder, EventId, Kind, PublicKey};

use crate::kinds;
use crate::request::JobRequest;
use crate::tags::{self, tag};
use crate::ProtocolError;

/// `alt` text of our results (NIP-31), so generic clients know the content is ciphertext.
pub(crate) const RESULT_ALT: &str = "ConfidentialDVM encrypted job result";

/// A parsed, verified NIP-90 job result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// Event id.
    pub id: EventId,
    /// Signer; for ConfidentialDVM the attested guest key G.
    pub author: PublicKey,
    /// Result kind, 6000–6999.
    pub kind: u16,
    /// The request this answers (`e` tag).
    pub request_id: EventId,
    /// The requesting user (`p` tag), when present.
    pub user: Option<PublicKey>,
    /// Whether the `encrypted` tag is present.
    pub encrypted: bool,
    /// Event content: for us, a NIP-44 v2 payload (base64).
    pub content: String,
    /// Optional `status` tag value (NIP-90 lets results carry one; ours do not).
    pub status: Option<String>,
}

impl JobResult {
    /// Verifies id and signature, checks the kind range and requires exactly one `e` tag.
    pub fn from_event(e: &Event) -> Result<Self, ProtocolError> {
        tags::check_event(e, kinds::is_job_result, "6000-6999 (NIP-90 job result)")?;
        let request_id = tags::event_id("e", tags::value(tags::required(e, "e")?, 1)?)?;
        let user = match tags::single(e, "p")? {
            Some(p) => Some(tags::public_key("p", tags::value(p, 1)?)?),
            None => None,
        };
        let status = match tags::single(e, "status")? {
            Some(p) => Some(tags::value(p, 1)?.to_owned()),
            None => None,
        };
        Ok(Self {
            id: e.id,
            author: e.pubkey,
            kind: e.kind.as_u16(),
            request_id,
            user,
            encrypted: tags::has_flag(e, "encrypted"),
            content: e.content.clone(),
            status,
        })
    }

    /// The unsigned result answering `request`, with `encrypted_content` from
    /// [`crate::encrypt_result`]. Tags: `e`, `p` (the request's author), `encrypted`, `alt`.
    ///
    /// The kind is `request.kind + 1000`; a [`JobRequest`] from [`JobRequest::from_event`] always
    /// has a kind in 5000–5999, so this is 6000–6999.
    pub fn build(request: &JobRequest, encrypted_content: String) -> EventBuilder {
        let kind = request.kind.saturating_add(kinds::JOB_RESULT_OFFSET);
        EventBuilder::new(Kind::from(kind), encrypted_content).tags([
            tag("e", [request.id.to_hex()]),
            tag("p", [request.author.to_hex()]),
            tag("encrypted", Vec::<String>::new()),
            tag("alt", [RESULT_ALT]),
        ])
    }
}
