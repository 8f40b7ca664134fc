//! NIP-90 job result (kind = request kind + 1000). <https://github.com/nostr-protocol/nips/blob/master/90.md>
//!
//! Ours is signed by the guest key G and its content is a NIP-44 ciphertext to the user
//! (see [`crate::encrypt_result`]); it never echoes the request's `i` tags. Its one public word
//! about the content is the `status` tag ([`PublicOutcome`]): success, or error with a coarse,
//! non-confidential class, so the orchestrator can report the job's outcome without reading it.

use std::fmt;
use std::str::FromStr;

use nostr::{Event, EventBuilder, EventId, Kind, PublicKey};

use crate::kinds;
use crate::request::JobRequest;
use crate::tags::{self, malformed, tag};
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
    /// The public outcome (`status` tag). Our guests always send one; other DVMs' results may
    /// have none.
    pub outcome: Option<PublicOutcome>,
}

/// What a result says in public about its encrypted content: the `status` tag,
/// `["status", "success"]` or `["status", "error", <class>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublicOutcome {
    /// The encrypted outcome is `ok`.
    Success,
    /// The encrypted outcome is `error`; the class says which kind of failure, nothing more.
    Error(ErrorClass),
}

/// The coarse, non-confidential class of a failed job. It tells the operator and relays which
/// kind of failure happened, never the input, the query or the message (which stays encrypted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The input does not fit the job kind or cannot be read (bad CSV, wrong input type).
    BadInput,
    /// The input was read but the job itself failed (e.g. an SQL error in the query).
    JobFailed,
    /// The executor ran past the run deadline.
    TimeLimit,
    /// The output does not fit in one result event.
    OutputTooLarge,
    /// The executor crashed.
    Internal,
}

impl ErrorClass {
    /// Every class, in wire order.
    pub const ALL: [ErrorClass; 5] = [
        Self::BadInput,
        Self::JobFailed,
        Self::TimeLimit,
        Self::OutputTooLarge,
        Self::Internal,
    ];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadInput => "bad-input",
            Self::JobFailed => "job-failed",
            Self::TimeLimit => "time-limit",
            Self::OutputTooLarge => "output-too-large",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorClass {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| malformed("status", format!("unknown error class `{s}`")))
    }
}

impl PublicOutcome {
    fn parse(p: &[String]) -> Result<Self, ProtocolError> {
        match tags::value(p, 1)? {
            "success" if p.len() == 2 => Ok(Self::Success),
            "error" if p.len() == 3 => Ok(Self::Error(p[2].parse()?)),
            other => Err(malformed(
                "status",
                format!(
                    "`{other}` with {} value(s); a result says [\"status\", \"success\"] or [\"status\", \"error\", class]",
                    p.len() - 1
                ),
            )),
        }
    }

    fn tag(self) -> nostr::Tag {
        match self {
            Self::Success => tag("status", ["success"]),
            Self::Error(class) => tag("status", ["error", class.as_str()]),
        }
    }
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
        let outcome = match tags::single(e, "status")? {
            Some(p) => Some(PublicOutcome::parse(p)?),
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
            outcome,
        })
    }

    /// The unsigned result answering `request`, with `encrypted_content` from
    /// [`crate::encrypt_result`] and its public `outcome`. Tags: `e`, `p` (the request's author),
    /// `status`, `encrypted`, `alt`.
    ///
    /// The kind is `request.kind + 1000`; a [`JobRequest`] from [`JobRequest::from_event`] always
    /// has a kind in 5000–5999, so this is 6000–6999.
    pub fn build(
        request: &JobRequest,
        encrypted_content: String,
        outcome: PublicOutcome,
    ) -> EventBuilder {
        let kind = request.kind.saturating_add(kinds::JOB_RESULT_OFFSET);
        EventBuilder::new(Kind::from(kind), encrypted_content).tags([
            tag("e", [request.id.to_hex()]),
            tag("p", [request.author.to_hex()]),
            outcome.tag(),
            tag("encrypted", Vec::<String>::new()),
            tag("alt", [RESULT_ALT]),
        ])
    }
}
