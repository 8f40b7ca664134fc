//! NIP-90 job request (kinds 5000–5999). <https://github.com/nostr-protocol/nips/blob/master/90.md>

use cdvm_attestation::TeeKind;
use nostr::{Event, EventBuilder, EventId, Kind, PublicKey, Timestamp};

use crate::kinds;
use crate::tags::{self, malformed, parts, tag};
use crate::ProtocolError;

/// Param naming the TEE family the user requires (`sev-snp`).
pub(crate) const PARAM_TEE: &str = "tee";
/// Param naming the attestation policy the user will apply (informative for the operator).
pub(crate) const PARAM_POLICY: &str = "policy";
/// Param announcing how the input will arrive; its only value in v1 is [`INPUT_MODE`].
pub(crate) const PARAM_INPUT: &str = "input";
/// The input travels NIP-59 gift-wrapped to the attested guest key, never in the request.
pub(crate) const INPUT_MODE: &str = "nip59-to-attested-key";

/// A parsed, verified NIP-90 job request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    /// Event id (also the attestation nonce, see [`crate::report_data`]).
    pub id: EventId,
    /// The user U who signed the request.
    pub author: PublicKey,
    /// Job kind, 5000–5999.
    pub kind: u16,
    /// Signed creation time.
    pub created_at: Timestamp,
    /// Service providers the user addresses (`p` tags).
    pub providers: Vec<PublicKey>,
    /// Public inputs (`i` tags). Our own requests carry none: confidential input goes gift-wrapped.
    pub inputs: Vec<JobInputTag>,
    /// `param` tags as (name, value), in order.
    pub params: Vec<(String, String)>,
    /// Relays the user wants answers on (`relays` tag values).
    pub relays: Vec<String>,
    /// Requested output MIME type (`output` tag).
    pub output: Option<String>,
    /// Whether the request carries an `encrypted` tag (NIP-90 encrypted params in `content`).
    pub encrypted: bool,
    /// Event content (empty for our requests).
    pub content: String,
}

/// One NIP-90 `i` tag: `["i", data, input-type, relay?, marker?]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInputTag {
    /// The input itself, or its reference (URL, event id, job id).
    pub data: String,
    /// `url`, `event`, `job` or `text`.
    pub input_type: String,
    /// Relay hint, when given and non-empty.
    pub relay: Option<String>,
    /// Marker, when given and non-empty.
    pub marker: Option<String>,
}

impl JobRequest {
    /// Verifies id and signature, checks the kind range and parses the tags.
    ///
    /// Unknown tags (`client`, `alt`, `bid`, …) are ignored so that any NIP-90 client's request
    /// parses; known tags with a bad shape are rejected with [`ProtocolError::MalformedTag`].
    pub fn from_event(e: &Event) -> Result<Self, ProtocolError> {
        tags::check_event(e, kinds::is_job_request, "5000-5999 (NIP-90 job request)")?;

        let mut providers = Vec::new();
        let mut inputs = Vec::new();
        let mut params: Vec<(String, String)> = Vec::new();
        let mut relays = Vec::new();
        let mut output = None;
        let mut encrypted = false;

        for t in e.tags.iter() {
            let p = parts(t);
            let Some(name) = p.first().map(String::as_str) else {
                continue;
            };
            match name {
                "p" => providers.push(tags::public_key("p", tags::value(p, 1)?)?),
                "i" => {
                    if p.len() < 3 {
                        return Err(malformed("i", "expected [\"i\", data, input-type, …]"));
                    }
                    inputs.push(JobInputTag {
                        data: p[1].clone(),
                        input_type: p[2].clone(),
                        relay: tags::opt_value(p, 3),
                        marker: tags::opt_value(p, 4),
                    });
                }
                "param" => {
                    if p.len() != 3 {
                        return Err(malformed("param", "expected [\"param\", name, value]"));
                    }
                    // A repeated name would let two readers see two different values.
                    if params.iter().any(|(k, _)| *k == p[1]) {
                        return Err(malformed("param", format!("duplicate param `{}`", p[1])));
                    }
                    params.push((p[1].clone(), p[2].clone()));
                }
                "relays" => {
                    if p.len() < 2 {
                        return Err(malformed("relays", "expected at least one relay URL"));
                    }
                    for url in &p[1..] {
                        tags::relay_url(url).map_err(|reason| malformed("relays", reason))?;
                    }
                    relays.extend(p[1..].iter().cloned());
                }
                "output" => {
                    if output.is_some() {
                        return Err(malformed("output", "appears more than once"));
                    }
                    output = Some(tags::value(p, 1)?.to_owned());
                }
                "encrypted" => encrypted = true,
                _ => {}
            }
        }

        Ok(Self {
            id: e.id,
            author: e.pubkey,
            kind: e.kind.as_u16(),
            created_at: e.created_at,
            providers,
            inputs,
            params,
            relays,
            output,
            encrypted,
            content: e.content.clone(),
        })
    }

    /// The value of param `name`, if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The TEE family the user requires (param `tee`).
    pub fn tee(&self) -> Result<TeeKind, ProtocolError> {
        let v = self
            .param(PARAM_TEE)
            .ok_or(ProtocolError::MissingParam { name: PARAM_TEE })?;
        TeeKind::parse(v).ok_or_else(|| ProtocolError::UnknownTee {
            value: v.to_owned(),
        })
    }

    /// The policy name the user says it will apply (param `policy`). Informative only: the user
    /// enforces its policy itself; the operator uses this to pick a matching image.
    pub fn policy(&self) -> Option<&str> {
        self.param(PARAM_POLICY)
    }
}

/// Builds a ConfidentialDVM job request. It carries no `i` tag and nothing confidential.
#[derive(Debug, Clone)]
pub struct JobRequestBuilder {
    kind: u16,
    dvm: PublicKey,
    tee: TeeKind,
    relays: Vec<String>,
    policy: Option<String>,
    params: Vec<(String, String)>,
}

impl JobRequestBuilder {
    /// A request of job `kind` (5000–5999) addressed to the DVM key `dvm`, requiring `tee`.
    pub fn new(kind: u16, dvm: PublicKey, tee: TeeKind) -> Self {
        Self {
            kind,
            dvm,
            tee,
            relays: Vec::new(),
            policy: None,
            params: Vec::new(),
        }
    }

    /// Relays on which the user listens for feedback, attestation and result.
    pub fn relays(mut self, relays: Vec<String>) -> Self {
        self.relays = relays;
        self
    }

    /// The policy name the user will apply.
    pub fn policy(mut self, name: impl Into<String>) -> Self {
        self.policy = Some(name.into());
        self
    }

    /// An extra public param. Never put confidential data here: requests are public.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The unsigned event: `p`, `param tee`, `param policy`?, extra params, `param input`,
    /// `relays`?, `alt`. Sign it with the user's key.
    pub fn build(self) -> Result<EventBuilder, ProtocolError> {
        if !kinds::is_job_request(self.kind) {
            return Err(ProtocolError::WrongKind {
                got: self.kind,
                expected: "5000-5999 (NIP-90 job request)",
            });
        }
        for r in &self.relays {
            tags::relay_url(r).map_err(|reason| malformed("relays", reason))?;
        }
        if let Some(specs) = crate::profile::params_for(self.kind) {
            if let Some((k, _)) = self
                .params
                .iter()
                .find(|(k, _)| !specs.iter().any(|s| s.name == k))
            {
                return Err(ProtocolError::UnknownParam {
                    kind: self.kind,
                    name: k.clone(),
                });
            }
        }
        let mut seen: Vec<&str> = vec![PARAM_TEE, PARAM_INPUT];
        if self.policy.is_some() {
            seen.push(PARAM_POLICY);
        }
        for (k, _) in &self.params {
            if seen.contains(&k.as_str()) {
                return Err(malformed("param", format!("duplicate param `{k}`")));
            }
            seen.push(k);
        }

        let mut t = vec![
            tag("p", [self.dvm.to_hex()]),
            tag("param", [PARAM_TEE, self.tee.as_str()]),
        ];
        if let Some(policy) = &self.policy {
            t.push(tag("param", [PARAM_POLICY, policy.as_str()]));
        }
        for (k, v) in &self.params {
            t.push(tag("param", [k.as_str(), v.as_str()]));
        }
        t.push(tag("param", [PARAM_INPUT, INPUT_MODE]));
        if !self.relays.is_empty() {
            t.push(tag("relays", self.relays.iter().map(String::as_str)));
        }
        // NIP-31 alt text, so generic clients show something sensible for an unknown kind.
        t.push(tag("alt", ["ConfidentialDVM job request (cdvm/v1)"]));
        Ok(EventBuilder::new(Kind::from(self.kind), "").tags(t))
    }
}
