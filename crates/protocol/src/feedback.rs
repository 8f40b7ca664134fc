//! NIP-90 job feedback (kind 7000). <https://github.com/nostr-protocol/nips/blob/master/90.md>

use std::fmt;
use std::str::FromStr;

use nostr::{Event, EventBuilder, EventId, Kind, PublicKey, Timestamp};

use crate::deadline::{self, Stage};
use crate::kinds;
use crate::tags::{self, malformed, tag};
use crate::ProtocolError;

/// The NIP-90 `status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedbackStatus {
    /// `payment-required`: the provider wants payment before it goes on.
    PaymentRequired,
    /// `processing`: the job is being worked on.
    Processing,
    /// `error`: the job failed; the extra info says why.
    Error,
    /// `success`: the job finished.
    Success,
    /// `partial`: a partial result is in `content`.
    Partial,
}

impl FeedbackStatus {
    /// The wire string.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PaymentRequired => "payment-required",
            Self::Processing => "processing",
            Self::Error => "error",
            Self::Success => "success",
            Self::Partial => "partial",
        }
    }
}

impl fmt::Display for FeedbackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FeedbackStatus {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "payment-required" => Self::PaymentRequired,
            "processing" => Self::Processing,
            "error" => Self::Error,
            "success" => Self::Success,
            "partial" => Self::Partial,
            other => return Err(malformed("status", format!("unknown status `{other}`"))),
        })
    }
}

/// A parsed, verified kind-7000 feedback event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFeedback {
    /// Event id.
    pub id: EventId,
    /// Signer: the DVM key O (orchestrator) or the guest key G (agent).
    pub author: PublicKey,
    /// The request this is about (`e` tag).
    pub request_id: EventId,
    /// The requesting user (`p` tag), when present.
    pub user: Option<PublicKey>,
    /// The `status` tag. `None` only for NIP-90 *encrypted* feedback (an `encrypted` tag), whose
    /// status sits inside the ciphertext content; a plaintext feedback without one is rejected.
    pub status: Option<FeedbackStatus>,
    /// Third element of the `status` tag (human-readable reason), when present and non-empty.
    pub extra_info: Option<String>,
    /// Event content.
    pub content: String,
    /// `amount` tag in millisats, when present.
    pub amount: Option<u64>,
    /// `["deadline", "run", …]`: on the guest's `running` feedback, when the executor's time is up.
    pub run_deadline: Option<Timestamp>,
}

impl JobFeedback {
    /// Verifies id and signature, checks kind 7000, requires one `e` tag and (unless the event is
    /// NIP-90 encrypted) one `status` tag with a known value.
    pub fn from_event(e: &Event) -> Result<Self, ProtocolError> {
        tags::check_event(
            e,
            |k| k == kinds::JOB_FEEDBACK,
            "7000 (NIP-90 job feedback)",
        )?;
        let request_id = tags::event_id("e", tags::value(tags::required(e, "e")?, 1)?)?;
        let user = match tags::single(e, "p")? {
            Some(p) => Some(tags::public_key("p", tags::value(p, 1)?)?),
            None => None,
        };
        let (status, extra_info) = match tags::single(e, "status")? {
            Some(p) => (
                Some(tags::value(p, 1)?.parse::<FeedbackStatus>()?),
                tags::opt_value(p, 2),
            ),
            None if tags::has_flag(e, "encrypted") => (None, None),
            None => return Err(ProtocolError::MissingTag { tag: "status" }),
        };
        let amount = match tags::single(e, "amount")? {
            Some(p) => Some(
                tags::value(p, 1)?
                    .parse::<u64>()
                    .map_err(|err| malformed("amount", format!("millisats: {err}")))?,
            ),
            None => None,
        };
        let run_deadline = deadline::find(e, Stage::Run)?;
        Ok(Self {
            id: e.id,
            author: e.pubkey,
            request_id,
            user,
            status,
            extra_info,
            content: e.content.clone(),
            amount,
            run_deadline,
        })
    }

    /// The unsigned feedback: `["status", s, extra?]`, `["e", request]`, `["p", user]`, empty
    /// content. Signed by O (orchestrator) or G (agent).
    pub fn build(
        request_id: EventId,
        user: PublicKey,
        status: FeedbackStatus,
        extra_info: Option<&str>,
    ) -> EventBuilder {
        let mut s = vec![status.as_str()];
        s.extend(extra_info);
        EventBuilder::new(Kind::from(kinds::JOB_FEEDBACK), "").tags([
            tag("status", s),
            tag("e", [request_id.to_hex()]),
            tag("p", [user.to_hex()]),
        ])
    }

    /// The guest's `processing` / `running` feedback, announcing when its run deadline passes:
    /// `["status", "processing", "running"]`, `["e", request]`, `["p", user]`,
    /// `["deadline", "run", <unix seconds>]`. Signed by G.
    pub fn running(request_id: EventId, user: PublicKey, run_deadline: Timestamp) -> EventBuilder {
        EventBuilder::new(Kind::from(kinds::JOB_FEEDBACK), "").tags([
            tag("status", [FeedbackStatus::Processing.as_str(), "running"]),
            tag("e", [request_id.to_hex()]),
            tag("p", [user.to_hex()]),
            deadline::deadline_tag(Stage::Run, run_deadline),
        ])
    }
}
