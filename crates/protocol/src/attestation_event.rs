//! The guest attestation event (our kind 7010), signed by the one-time guest key G.
//!
//! It carries the hardware evidence whose report data is [`crate::report_data`] of the request id
//! and G, so a client that verifies the evidence knows G was born in the attested VM for this job.

use cdvm_attestation::{Evidence, Measurement};
use nostr::{Event, EventBuilder, EventId, Kind, PublicKey, Timestamp};
use serde::{Deserialize, Serialize};

use crate::deadline::{self, Stage};
use crate::kinds;
use crate::tags::{self, tag};
use crate::ProtocolError;

/// `alt` text (NIP-31) for generic clients.
const ATTESTATION_ALT: &str = "ConfidentialDVM guest attestation (cdvm/v1)";

/// The JSON content of the attestation event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationPayload {
    /// Payload version, 1.
    pub v: u32,
    /// The job request id, 64 lowercase hex characters; must equal the event's `e` tag.
    pub request_id: String,
    /// The hardware evidence (report + certificate chain).
    pub evidence: Evidence,
    /// What the guest says it runs; the verifier trusts only the measured value in the report.
    pub image: ImageIdentity,
}

/// The guest image's name and expected launch measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageIdentity {
    /// Image name, as announced in the NIP-89 handler.
    pub name: String,
    /// Launch measurement, 96 hex characters (48 bytes).
    pub measurement: String,
}

/// A parsed, verified attestation event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationEvent {
    /// Event id.
    pub event_id: EventId,
    /// The guest key G: the event's author, the key bound into the report data.
    pub guest: PublicKey,
    /// The job request (`e` tag; equal to `payload.request_id`).
    pub request_id: EventId,
    /// The user (`p` tag).
    pub user: PublicKey,
    /// The content.
    pub payload: AttestationPayload,
    /// When the guest stops waiting for the input (`["deadline", "input", …]` tag): the guest
    /// owns this deadline and publishes an `error` feedback when it passes.
    pub input_deadline: Timestamp,
    /// The interface the guest says it got its evidence through (`["interface", …]` tag, e.g.
    /// `configfs-tsm`), for display only: it is not covered by the evidence, and the verifier
    /// never relies on it.
    pub interface: Option<String>,
    /// The models the image carries (`["model", name, sha256]` tags, docs/protocol.md §5.9). Part
    /// of the measured image: a policy that pins the image measurement pins them; a policy may
    /// also require a model hash by name.
    pub models: Vec<crate::rag::ModelRef>,
}

/// A `["model", <name>, <sha256>]` tag of an attestation event: a model file the image carries.
pub fn model_tag(model: &crate::rag::ModelRef) -> nostr::Tag {
    tag("model", [model.name.as_str(), model.sha256.as_str()])
}

/// The optional `["interface", <name>]` tag of an attestation event: how the guest obtained its
/// evidence (`configfs-tsm`, `sev-guest-ioctl`, `azure-vtpm`, `sim-socket`, `sim-serial`).
/// Informative only; docs/protocol.md §5.3.
pub fn interface_tag(name: &str) -> nostr::Tag {
    tag("interface", [name])
}

fn check_payload(request_id: &EventId, payload: &AttestationPayload) -> Result<(), ProtocolError> {
    tags::check_version("attestation payload", payload.v)?;
    if payload.request_id != request_id.to_hex() {
        return Err(ProtocolError::RequestMismatch {
            context: "attestation payload request_id",
            expected: request_id.to_hex(),
            found: payload.request_id.clone(),
        });
    }
    let m = &payload.image.measurement;
    if m.len() != 96 || Measurement::from_hex(m).is_err() {
        return Err(ProtocolError::InvalidField {
            field: "image.measurement",
            reason: format!("`{m}` is not 96 hex characters"),
        });
    }
    Ok(())
}

impl AttestationEvent {
    /// The unsigned attestation event, to be signed by G. Tags: `e`, `p`, `tee`,
    /// `deadline input`, `alt`.
    pub fn build(
        request_id: EventId,
        user: PublicKey,
        payload: &AttestationPayload,
        input_deadline: Timestamp,
    ) -> Result<EventBuilder, ProtocolError> {
        check_payload(&request_id, payload)?;
        let json = serde_json::to_string(payload).map_err(|source| ProtocolError::Json {
            what: "attestation payload",
            source,
        })?;
        Ok(
            EventBuilder::new(Kind::from(kinds::ATTESTATION), json).tags([
                tag("e", [request_id.to_hex()]),
                tag("p", [user.to_hex()]),
                tag("tee", [payload.evidence.tee().as_str()]),
                deadline::deadline_tag(Stage::Input, input_deadline),
                tag("alt", [ATTESTATION_ALT]),
            ]),
        )
    }

    /// Verifies id and signature, kind 7010, the `e`/`p`/`tee`/`deadline` tags and that the payload names
    /// the same request and TEE as the signed tags. Does NOT verify the evidence itself: that is
    /// the attestation verifier's job, with [`crate::report_data`]`(request_id, guest)`.
    pub fn from_event(e: &Event) -> Result<Self, ProtocolError> {
        tags::check_event(e, |k| k == kinds::ATTESTATION, "7010 (cdvm attestation)")?;
        let request_id = tags::event_id("e", tags::value(tags::required(e, "e")?, 1)?)?;
        let user = tags::public_key("p", tags::value(tags::required(e, "p")?, 1)?)?;
        let tee = tags::value(tags::required(e, "tee")?, 1)?.to_owned();
        let input_deadline = deadline::find(e, Stage::Input)?
            .ok_or(ProtocolError::MissingTag { tag: "deadline" })?;
        let payload: AttestationPayload =
            serde_json::from_str(&e.content).map_err(|source| ProtocolError::Json {
                what: "attestation payload",
                source,
            })?;
        check_payload(&request_id, &payload)?;
        let interface = match tags::single(e, "interface")? {
            Some(t) => Some(tags::value(t, 1)?.to_owned()),
            None => None,
        };
        let mut models = Vec::new();
        for t in e.tags.iter() {
            let p = tags::parts(t);
            if p.first().map(String::as_str) != Some("model") {
                continue;
            }
            let name = tags::value(p, 1)?;
            let sha256 = tags::value(p, 2)?;
            if sha256.len() != 64
                || !sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(tags::malformed(
                    "model",
                    "sha256 must be 64 lowercase hex digits",
                ));
            }
            models.push(crate::rag::ModelRef {
                name: name.to_owned(),
                sha256: sha256.to_owned(),
            });
        }
        if tee != payload.evidence.tee().as_str() {
            return Err(tags::malformed(
                "tee",
                format!("`{tee}` but the evidence is `{}`", payload.evidence.tee()),
            ));
        }
        Ok(Self {
            event_id: e.id,
            guest: e.pubkey,
            request_id,
            user,
            payload,
            input_deadline,
            interface,
            models,
        })
    }
}
