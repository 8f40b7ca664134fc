//! The bootstrap: the public data the orchestrator injects into a fresh VM, and the only contract
//! between orchestrator and guest besides the relays (docs/protocol.md §5.7).
//!
//! Nothing in it is secret, and the guest trusts nothing in it but the request id (which the
//! attestation binds, so the user sees any substitution) and the relays (which can only deny
//! service). The timeouts are the operator's availability settings: the guest obeys them and
//! announces the resulting input deadline to the user in its attestation event.
//!
//! How the guest finds it — fw_cfg under QEMU, a file for the process provider, a cloud's instance
//! metadata service — is the delivery, not the contract: [`metadata`] names those services; the
//! readers live in the guest agent.

pub mod metadata;

use nostr::EventId;
use serde::{Deserialize, Serialize};

use crate::tags;
use crate::ProtocolError;

/// The largest bootstrap JSON a guest reads (fw_cfg, file or metadata service); real ones are a
/// few hundred bytes.
pub const MAX_BOOTSTRAP_BYTES: usize = 16 * 1024;
/// At most this many relays: each one is a connection the guest opens.
pub const MAX_BOOTSTRAP_RELAYS: usize = 16;
/// Upper bound of either timeout: a day. A VM never outlives its job (DESIGN §3, step 8).
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Public data injected into the guest. Nothing here is secret: the operator knows all of it, and
/// the guest re-derives everything security-relevant (the user's key) from the signed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// The job request event id (64 lowercase hex): the nonce the attestation is bound to.
    pub request_id: String,
    /// Relays where the request lives and where the guest talks to the user (`ws://`/`wss://`).
    pub relays: Vec<String>,
    /// Seconds the guest waits for the user's input after publishing its attestation. The guest
    /// owns this deadline: it announces it (`deadline` tag of the attestation) and enforces it.
    pub input_timeout_secs: u64,
    /// Seconds the executor may run. Owned by the guest too: past it, the guest publishes an
    /// error result. It covers downloading a blob input (§5.8) as well as running.
    pub run_timeout_secs: u64,
    /// Largest input the guest accepts, in plaintext bytes; a blob input is refused before its
    /// download when its size says more, and while streaming when it grows past it. Absent:
    /// [`crate::DEFAULT_MAX_INPUT_BYTES`].
    #[serde(default = "default_max_input")]
    pub max_input_bytes: u64,
}

fn default_max_input() -> u64 {
    crate::DEFAULT_MAX_INPUT_BYTES
}

impl Bootstrap {
    /// Parses and checks a bootstrap as the guest receives it: strict JSON (unknown fields are an
    /// error), at most [`MAX_BOOTSTRAP_BYTES`], then [`Bootstrap::check`].
    pub fn from_json(raw: &[u8]) -> Result<Self, ProtocolError> {
        if raw.len() > MAX_BOOTSTRAP_BYTES {
            return Err(ProtocolError::InvalidField {
                field: "bootstrap",
                reason: format!("{} bytes, at most {MAX_BOOTSTRAP_BYTES}", raw.len()),
            });
        }
        let b: Self = serde_json::from_slice(raw).map_err(|source| ProtocolError::Json {
            what: "bootstrap",
            source,
        })?;
        b.check()?;
        Ok(b)
    }

    /// The bootstrap as JSON, after [`Bootstrap::check`] (the orchestrator never sends a
    /// bootstrap the guest would refuse).
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        self.check()?;
        serde_json::to_string(self).map_err(|source| ProtocolError::Json {
            what: "bootstrap",
            source,
        })
    }

    /// Checks every field: the request id is 64 lowercase hex characters, there are 1 to
    /// [`MAX_BOOTSTRAP_RELAYS`] relays, each a `ws://` or `wss://` URL, and both timeouts are
    /// 1 to [`MAX_TIMEOUT_SECS`] seconds.
    pub fn check(&self) -> Result<(), ProtocolError> {
        self.request_id()?;
        if self.relays.is_empty() || self.relays.len() > MAX_BOOTSTRAP_RELAYS {
            return Err(ProtocolError::InvalidField {
                field: "relays",
                reason: format!(
                    "{} relays; a bootstrap names 1 to {MAX_BOOTSTRAP_RELAYS}",
                    self.relays.len()
                ),
            });
        }
        for relay in &self.relays {
            tags::relay_url(relay).map_err(|reason| ProtocolError::InvalidField {
                field: "relays",
                reason,
            })?;
        }
        for (field, secs) in [
            ("input_timeout_secs", self.input_timeout_secs),
            ("run_timeout_secs", self.run_timeout_secs),
        ] {
            if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
                return Err(ProtocolError::InvalidField {
                    field,
                    reason: format!("{secs} s; must be 1 to {MAX_TIMEOUT_SECS}"),
                });
            }
        }
        if self.max_input_bytes == 0 {
            return Err(ProtocolError::InvalidField {
                field: "max_input_bytes",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The request id as an event id.
    pub fn request_id(&self) -> Result<EventId, ProtocolError> {
        tags::request_id_field(&self.request_id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// One way to spoil a good bootstrap.
    type Spoil = fn(&mut Bootstrap);

    fn good() -> Bootstrap {
        Bootstrap {
            request_id: "a53c938921b8f3e98d9d4339bfe628f80e45f0f9daa48f8685734921d02f4c87".into(),
            relays: vec![
                "ws://127.0.0.1:7777".into(),
                "wss://relay.example.com".into(),
            ],
            input_timeout_secs: 120,
            run_timeout_secs: 300,
            max_input_bytes: 1 << 30,
        }
    }

    #[test]
    fn a_good_bootstrap_round_trips() {
        let json = good().to_json().unwrap();
        assert_eq!(Bootstrap::from_json(json.as_bytes()).unwrap(), good());
    }

    #[test]
    fn bad_fields_are_refused_with_the_field_named() {
        let cases: [(&str, Spoil); 7] = [
            ("request_id", |b| b.request_id = "A53C".into()),
            ("request_id", |b| b.request_id = b.request_id.to_uppercase()),
            ("relays", |b| b.relays.clear()),
            ("relays", |b| {
                b.relays = vec!["http://relay.example.com".into()]
            }),
            ("relays", |b| b.relays = vec!["not a url".into()]),
            ("input_timeout_secs", |b| b.input_timeout_secs = 0),
            ("run_timeout_secs", |b| {
                b.run_timeout_secs = MAX_TIMEOUT_SECS + 1
            }),
        ];
        for (field, spoil) in cases {
            let mut b = good();
            spoil(&mut b);
            let raw = serde_json::to_vec(&b).unwrap();
            match Bootstrap::from_json(&raw) {
                Err(ProtocolError::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected InvalidField, got {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_and_oversize_input_are_refused() {
        let mut v = serde_json::to_value(good()).unwrap();
        v["user_pubkey"] = "ab".repeat(32).into();
        assert!(matches!(
            Bootstrap::from_json(v.to_string().as_bytes()),
            Err(ProtocolError::Json { .. })
        ));
        let big = vec![b' '; MAX_BOOTSTRAP_BYTES + 1];
        assert!(matches!(
            Bootstrap::from_json(&big),
            Err(ProtocolError::InvalidField {
                field: "bootstrap",
                ..
            })
        ));
    }
}
