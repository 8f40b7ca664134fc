//! NIP-89 handler announcement (kind 31990). <https://github.com/nostr-protocol/nips/blob/master/89.md>
//!
//! The content is NIP-89's kind-0-style metadata (`name`, `about`) plus our `cdvm` object naming
//! the TEEs, the guest image and its expected launch measurements.

use std::collections::BTreeMap;

use cdvm_attestation::{Measurement, TeeKind};
use nostr::{Event, EventBuilder, Kind};
use serde::{Deserialize, Serialize};

use crate::kinds;
use crate::tags::{self, malformed, tag};
use crate::ProtocolError;

/// What a ConfidentialDVM operator announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerInfo {
    /// Display name.
    pub name: String,
    /// Description.
    pub about: String,
    /// Job-request kinds served (`k` tags).
    pub kinds: Vec<u16>,
    /// TEE families offered.
    pub tees: Vec<TeeKind>,
    /// Guest image name (matches the attestation event's `image.name`).
    pub image: String,
    /// Expected launch measurements, 96 hex characters each.
    pub measurements: Vec<String>,
    /// True when the operator runs the simulated secure processor: no shipped policy accepts it.
    pub simulated: bool,
    /// Blossom servers the operator suggests for large inputs (§5.8); a client may use others.
    pub blossom: Vec<String>,
    /// Largest input the guest accepts per job kind, in plaintext bytes (§5.8). A kind missing
    /// here takes [`crate::DEFAULT_MAX_INPUT_BYTES`].
    pub max_input_bytes: BTreeMap<u16, u64>,
    /// The models the guest image carries (the RAG job, §5.9).
    pub models: Vec<crate::rag::AnnouncedModel>,
}

#[derive(Serialize, Deserialize)]
struct Content {
    name: String,
    about: String,
    cdvm: CdvmMeta,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CdvmMeta {
    v: u32,
    protocol: String,
    tees: Vec<TeeKind>,
    image: String,
    measurements: Vec<String>,
    simulated: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    blossom: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    max_input_bytes: BTreeMap<u16, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    models: Vec<crate::rag::AnnouncedModel>,
}

fn check_kind(k: u16) -> Result<(), ProtocolError> {
    if kinds::is_job_request(k) {
        Ok(())
    } else {
        Err(ProtocolError::WrongKind {
            got: k,
            expected: "5000-5999 (NIP-90 job request) in a NIP-89 `k` tag",
        })
    }
}

fn check_measurements(ms: &[String]) -> Result<(), ProtocolError> {
    for m in ms {
        if m.len() != 96 || Measurement::from_hex(m).is_err() {
            return Err(ProtocolError::InvalidField {
                field: "measurements",
                reason: format!("`{m}` is not 96 hex characters"),
            });
        }
    }
    Ok(())
}

impl HandlerInfo {
    /// The input cap for `kind`: announced, else the protocol default.
    pub fn max_input_for(&self, kind: u16) -> u64 {
        self.max_input_bytes
            .get(&kind)
            .copied()
            .unwrap_or(crate::DEFAULT_MAX_INPUT_BYTES)
    }

    /// The unsigned announcement with NIP-33 identifier `d_identifier`, signed by the DVM key O.
    pub fn build(&self, d_identifier: &str) -> Result<EventBuilder, ProtocolError> {
        if self.kinds.is_empty() {
            return Err(ProtocolError::InvalidField {
                field: "kinds",
                reason: "a handler must serve at least one job kind".into(),
            });
        }
        self.kinds.iter().try_for_each(|k| check_kind(*k))?;
        check_measurements(&self.measurements)?;
        let content = Content {
            name: self.name.clone(),
            about: self.about.clone(),
            cdvm: CdvmMeta {
                v: crate::PAYLOAD_VERSION,
                protocol: crate::PROTOCOL_VERSION.to_owned(),
                tees: self.tees.clone(),
                image: self.image.clone(),
                measurements: self.measurements.clone(),
                simulated: self.simulated,
                blossom: self.blossom.clone(),
                max_input_bytes: self.max_input_bytes.clone(),
                models: self.models.clone(),
            },
        };
        let json = serde_json::to_string(&content).map_err(|source| ProtocolError::Json {
            what: "handler content",
            source,
        })?;
        let mut t = vec![tag("d", [d_identifier])];
        t.extend(self.kinds.iter().map(|k| tag("k", [k.to_string()])));
        Ok(EventBuilder::new(Kind::from(kinds::HANDLER_INFO), json).tags(t))
    }

    /// Verifies id and signature, kind 31990, a `d` tag, the `k` tags and our `cdvm` content.
    pub fn from_event(e: &Event) -> Result<Self, ProtocolError> {
        tags::check_event(e, |k| k == kinds::HANDLER_INFO, "31990 (NIP-89 handler)")?;
        tags::required(e, "d")?;
        let mut ks = Vec::new();
        for p in tags::all(e, "k") {
            let v = tags::value(p, 1)?;
            let k: u16 = v
                .parse()
                .map_err(|err| malformed("k", format!("`{v}`: {err}")))?;
            check_kind(k)?;
            ks.push(k);
        }
        if ks.is_empty() {
            return Err(ProtocolError::MissingTag { tag: "k" });
        }
        let c: Content =
            serde_json::from_str(&e.content).map_err(|source| ProtocolError::Json {
                what: "handler content",
                source,
            })?;
        tags::check_version("handler", c.cdvm.v)?;
        if c.cdvm.protocol != crate::PROTOCOL_VERSION {
            return Err(ProtocolError::InvalidField {
                field: "cdvm.protocol",
                reason: format!(
                    "`{}`, expected `{}`",
                    c.cdvm.protocol,
                    crate::PROTOCOL_VERSION
                ),
            });
        }
        check_measurements(&c.cdvm.measurements)?;
        Ok(Self {
            name: c.name,
            about: c.about,
            kinds: ks,
            tees: c.cdvm.tees,
            image: c.cdvm.image,
            measurements: c.cdvm.measurements,
            simulated: c.cdvm.simulated,
            blossom: c.cdvm.blossom,
            max_input_bytes: c.cdvm.max_input_bytes,
            models: c.cdvm.models,
        })
    }
}
