//! Stage deadlines, announced by the party that enforces them: `["deadline", stage, unix-seconds]`.
//!
//! Each deadline has one owner. The guest owns the input deadline (it announces it on its
//! attestation event and gives up when it passes) and the run deadline (on its `running`
//! feedback); the orchestrator owns only the attestation deadline and keeps a late backstop for a
//! guest that falls silent (docs/protocol.md §6.1).

use std::fmt;

use nostr::{Event, Tag, Timestamp};

use crate::tags::{self, malformed, tag};
use crate::ProtocolError;

/// The tag name.
pub(crate) const DEADLINE_TAG: &str = "deadline";

/// A stage the guest announces a deadline for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The user's input must reach the guest before this time (announced on the attestation).
    Input,
    /// The executor must finish before this time (announced on the guest's `running` feedback).
    Run,
}

impl Stage {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Run => "run",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `["deadline", stage, "<unix seconds>"]`.
pub(crate) fn deadline_tag(stage: Stage, at: Timestamp) -> Tag {
    tag(
        DEADLINE_TAG,
        [stage.as_str().to_owned(), at.as_secs().to_string()],
    )
}

/// The deadline for `stage`, if the event has one; a malformed or repeated one is an error.
pub(crate) fn find(e: &Event, stage: Stage) -> Result<Option<Timestamp>, ProtocolError> {
    let mut found = None;
    for p in tags::all(e, DEADLINE_TAG) {
        if tags::value(p, 1)? != stage.as_str() {
            continue;
        }
        if found.is_some() {
            return Err(malformed(DEADLINE_TAG, format!("two `{stage}` deadlines")));
        }
        let v = tags::value(p, 2)?;
        // Canonical decimal only: "0120" or "+120" would let two readers disagree.
        let secs: u64 = v
            .parse()
            .ok()
            .filter(|n: &u64| n.to_string() == v)
            .ok_or_else(|| malformed(DEADLINE_TAG, format!("`{v}` is not Unix seconds")))?;
        found = Some(Timestamp::from_secs(secs));
    }
    Ok(found)
}
