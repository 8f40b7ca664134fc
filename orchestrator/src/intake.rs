//! Relay intake: every incoming event is parsed at the edge into one typed [`Action`] before
//! anything else looks at it. Nothing here launches a VM or touches the store.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cdvm_protocol::kinds;
use cdvm_protocol::nostr::{Event, JsonUtil, PublicKey, Timestamp};
use cdvm_protocol::{JobRequest, TeeKind};

use crate::config::Config;

/// What to do with one incoming request event.
#[derive(Debug)]
pub enum Action {
    /// A valid job for us: record it and launch.
    Accept(Box<JobRequest>),
    /// A request addressed to us that we refuse: answer with an error feedback.
    Reject {
        /// The request to answer.
        event: Box<Event>,
        /// The reason sent to the user.
        reason: String,
    },
    /// Not a job request, forged, not for us, or part of a flood: ignore silently.
    Drop {
        /// For the log.
        why: &'static str,
    },
}

/// Per-user fixed-window rate limiter. The first excess request in a window is rejected with a
/// feedback; later ones are dropped, so a flood cannot make us publish a flood.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: HashMap<PublicKey, (Instant, u32)>,
}

enum Rate {
    Ok,
    FirstExcess,
    Excess,
}

impl RateLimiter {
    fn check(&mut self, user: PublicKey, per_minute: u32, now: Instant) -> Rate {
        // Bound memory under a flood of distinct keys.
        if self.windows.len() > 100_000 {
            self.windows
                .retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = self.windows.entry(user).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        match entry.1.cmp(&per_minute) {
            std::cmp::Ordering::Less | std::cmp::Ordering::Equal => Rate::Ok,
            std::cmp::Ordering::Greater if entry.1 == per_minute + 1 => Rate::FirstExcess,
            std::cmp::Ordering::Greater => Rate::Excess,
        }
    }
}

/// Classifies one event received on the request subscription.
pub fn classify(
    event: &Event,
    dvm: &PublicKey,
    cfg: &Config,
    live_jobs: usize,
    limiter: &mut RateLimiter,
) -> Action {
    let kind = event.kind.as_u16();
    if !(kinds::JOB_REQUEST_MIN..=kinds::JOB_REQUEST_MAX).contains(&kind) {
        return Action::Drop {
            why: "not a job request",
        };
    }
    if cdvm_protocol::verify_event(event).is_err() {
        return Action::Drop {
            why: "bad id or signature",
        };
    }
    let addressed = event.tags.public_keys().any(|p| p == dvm);
    if !addressed {
        return Action::Drop {
            why: "not addressed to this DVM",
        };
    }
    let reject = |reason: String| Action::Reject {
        event: Box::new(event.clone()),
        reason,
    };
    match limiter.check(event.pubkey, cfg.limits.per_user_per_minute, Instant::now()) {
        Rate::Ok => {}
        Rate::FirstExcess => {
            return reject(format!(
                "rate limited: at most {} requests per minute per key",
                cfg.limits.per_user_per_minute
            ))
        }
        Rate::Excess => {
            return Action::Drop {
                why: "flood from one key",
            }
        }
    }
    let size = event.as_json().len();
    if size > cfg.limits.max_request_bytes {
        return reject(format!(
            "request too large: {size} bytes, limit {}; confidential input never goes in the request",
            cfg.limits.max_request_bytes
        ));
    }
    if event.tags.len() > MAX_REQUEST_TAGS {
        return reject(format!(
            "request has {} tags; at most {MAX_REQUEST_TAGS} are accepted (docs/protocol.md §9)",
            event.tags.len()
        ));
    }
    let request = match JobRequest::from_event(event) {
        Ok(r) => r,
        Err(e) => return reject(format!("malformed request: {e}")),
    };
    if let Some(reason) = age_problem(event.created_at, cfg.limits.max_request_age_secs) {
        return reject(reason);
    }
    if !cfg.jobs.kinds.contains(&kind) {
        return reject(format!(
            "unsupported job kind {kind}; this DVM serves {:?}",
            cfg.jobs.kinds
        ));
    }
    // The confidential profile (docs/protocol.md §5.2): a plaintext `i` tag, content, or a param
    // the kind does not define is refused here, before any VM starts.
    match request.check_confidential() {
        Ok(tee) if cfg.jobs.tees.iter().any(|t| TeeKind::parse(t) == Some(tee)) => {}
        Ok(tee) => {
            return reject(format!(
                "TEE {tee} is not offered; offered: {:?}",
                cfg.jobs.tees
            ))
        }
        Err(cdvm_protocol::ProtocolError::PlaintextInput { .. })
            if kind == kinds::TEXT_GENERATION =>
        {
            // An ordinary NIP-90 text-generation client found us in a DVM directory.
            return reject(
                "refused, no VM started: this DVM takes only encrypted input. The prompt in this \
                 request's `i` tag is public: anyone reading the relay can see it. To ask a \
                 question privately, send it encrypted to an attested guest with a \
                 ConfidentialDVM client (docs/protocol.md §5.9)"
                    .into(),
            );
        }
        Err(e @ cdvm_protocol::ProtocolError::PlaintextInput { .. }) => {
            return reject(format!("refused, no VM started: {e}"))
        }
        Err(e) => return reject(format!("malformed request: {e}")),
    }
    if live_jobs >= cfg.jobs.max_concurrent {
        return reject("at capacity; try again later".into());
    }
    Action::Accept(Box::new(request))
}

/// The most tags a job request may carry: ours carry fewer than ten (p, tee, relays, bid, alt,
/// params). More is refused with an error feedback (docs/protocol.md §9).
pub const MAX_REQUEST_TAGS: usize = 100;

/// How far in the future a request may be dated (clock skew between user and DVM).
pub const MAX_FUTURE_SKEW_SECS: u64 = 600;

/// Why a request's `created_at` is unacceptable, if it is: older than `max_age` seconds, or more
/// than [`MAX_FUTURE_SKEW_SECS`] ahead. An old request may be a replay, or have waited on a relay
/// while this DVM was down; either way the user should submit a fresh one.
fn age_problem(created_at: Timestamp, max_age: u64) -> Option<String> {
    let now = Timestamp::now().as_secs();
    let created = created_at.as_secs();
    if created.saturating_add(max_age) < now {
        Some(format!(
            "request is {} s old; this DVM accepts requests up to {max_age} s old: submit a fresh one",
            now - created
        ))
    } else if created > now.saturating_add(MAX_FUTURE_SKEW_SECS) {
        Some(format!(
            "request is dated {} s in the future; check your clock (at most {MAX_FUTURE_SKEW_SECS} s ahead is accepted)",
            created - now
        ))
    } else {
        None
    }
}
