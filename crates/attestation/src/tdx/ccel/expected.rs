//! Boot events a policy expects in a verified log: "RTMR1 holds shim's image digest", "RTMR2
//! holds the measurement of this kernel command line".

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

use crate::tdx::ccel::{verify_replay, CcelError, Event, EventLog, EventType};
use crate::Measurement;

/// Events a policy expects in the CCEL log, each matched against the events of its RTMR after
/// the log's replay is checked against the quote. Containment, not equality: other events may
/// be present (pin the whole register with `tdx.rtmrN` for that).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedEvents {
    /// Every entry must match at least one event.
    pub events: Vec<EventMatch>,
}

/// One expected event: an event of `event_type` extended into `rtmr` whose SHA-384 digest is
/// `digest`, or is SHA-384 of the text `measured`. Exactly one of the two. Only digests are
/// compared: the replay binds them to the quote, not the data next to them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMatch {
    /// What the event is, for error messages (`shim`, `kernel command line`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The RTMR it is extended into, 0..=3 (CC MR index minus one).
    pub rtmr: u8,
    /// Its event type (`EV_EFI_BOOT_SERVICES_APPLICATION`, `EV_IPL`, …).
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Its SHA-384 digest (96 hex characters): e.g. a UEFI application's Authenticode hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Measurement>,
    /// Text whose SHA-384 is its digest: what GRUB measures for a command or the kernel command
    /// line (the text after the `grub_cmd: ` / `kernel_cmdline: ` prefix of the event data), or
    /// an EV_EFI_ACTION string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<String>,
}

impl EventMatch {
    /// The digest the event must have, or why the entry is not well formed.
    pub fn expected_digest(&self) -> Result<[u8; 48], String> {
        if self.rtmr > 3 {
            return Err(format!("rtmr {} (only 0..=3)", self.rtmr));
        }
        if self.event_type == EventType::NoAction {
            return Err("EV_NO_ACTION events extend nothing, so nothing binds them".into());
        }
        match (&self.digest, &self.measured) {
            (Some(d), None) => Ok(d.0),
            (None, Some(text)) => Ok(Sha384::digest(text.as_bytes()).into()),
            _ => Err("give exactly one of `digest` and `measured`".into()),
        }
    }

    /// True if `event` is extended into this RTMR, has this type and the expected digest.
    pub fn matches(&self, event: &Event) -> bool {
        self.expected_digest().is_ok_and(|digest| {
            event.extends() == Some(usize::from(self.rtmr))
                && event.event_type == self.event_type
                && event.digest == digest
        })
    }
}

impl fmt::Display for EventMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in RTMR{}", self.event_type, self.rtmr)?;
        if let Some(name) = &self.name {
            write!(f, " ({name})")?;
        }
        if let Some(d) = &self.digest {
            write!(f, " with digest {d}")?;
        }
        if let Some(text) = &self.measured {
            let short: String = text.chars().take(80).collect();
            let more = if short.len() < text.len() { "…" } else { "" };
            write!(f, " measuring {short:?}{more}")?;
            if let Ok(d) = self.expected_digest() {
                write!(f, " (digest {})", hex::encode(d))?;
            }
        }
        Ok(())
    }
}

impl ExpectedEvents {
    /// Checks every entry is well formed (for a policy loader).
    pub fn validate(&self) -> Result<(), CcelError> {
        for (index, m) in self.events.iter().enumerate() {
            m.expected_digest()
                .map_err(|reason| CcelError::InvalidExpectation { index, reason })?;
        }
        Ok(())
    }

    /// Checks the log replays to the quote's RTMRs ([`verify_replay`]), then that every
    /// expected event is in it. The quote must already be verified: its RTMRs are the anchor.
    pub fn check(&self, log: &EventLog, quote_rtmrs: &[Measurement; 4]) -> Result<(), CcelError> {
        self.validate()?;
        verify_replay(log, quote_rtmrs)?;
        for (index, m) in self.events.iter().enumerate() {
            if !log.events.iter().any(|e| m.matches(e)) {
                return Err(CcelError::ExpectedEventMissing {
                    index,
                    rtmr: m.rtmr,
                    expected: m.to_string(),
                });
            }
        }
        Ok(())
    }
}
