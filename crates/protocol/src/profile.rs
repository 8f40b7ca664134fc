//! The confidential request profile: what a ConfidentialDVM job request may carry, per kind.
//!
//! [`JobRequest::from_event`] reads any NIP-90 request (so the DVM can answer other clients with a
//! precise refusal); [`JobRequest::check_confidential`] then decides whether it is one we run.
//! The orchestrator applies it before any VM starts, and the guest applies it again to the request
//! it fetched itself. docs/protocol.md §5.2 is this module in prose.

use cdvm_attestation::TeeKind;

use crate::kinds;
use crate::request::{JobRequest, INPUT_MODE, PARAM_INPUT, PARAM_POLICY, PARAM_TEE};
use crate::ProtocolError;

/// Longest `policy` param value: a name, not a document.
pub const MAX_POLICY_NAME: usize = 128;

/// One param a job kind accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    /// The param name.
    pub name: &'static str,
    /// Whether a request must carry it.
    pub required: bool,
    /// What the value must be, in words (for errors and docs).
    pub values: &'static str,
}

/// Params of both our kinds: the TEE, the user's policy name, the input mode. Nothing else: a
/// param is public, and one we do not define would only be a place to leak data into.
const CONFIDENTIAL_PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: PARAM_TEE,
        required: true,
        values: "a TEE family: `sev-snp` or `tdx`",
    },
    ParamSpec {
        name: PARAM_POLICY,
        required: false,
        values: "a policy name, 1 to 128 printable ASCII characters",
    },
    ParamSpec {
        name: PARAM_INPUT,
        required: false,
        values: "`nip59-to-attested-key`",
    },
];

/// The params job `kind` accepts, or `None` for a kind this protocol does not define.
pub fn params_for(kind: u16) -> Option<&'static [ParamSpec]> {
    match kind {
        kinds::SQL | kinds::TEXT_STATS | kinds::TEXT_GENERATION => Some(CONFIDENTIAL_PARAMS),
        _ => None,
    }
}

/// The output media type a job kind produces (the only value its `output` tag may take).
pub fn output_type(kind: u16) -> Option<&'static str> {
    match kind {
        kinds::SQL => Some("text/csv"),
        kinds::TEXT_STATS | kinds::TEXT_GENERATION => Some("application/json"),
        _ => None,
    }
}

impl JobRequest {
    /// Checks the request against the confidential profile of its kind and returns its TEE:
    /// no plaintext `i` tag (checked first: it means the input is already public), empty content,
    /// no `encrypted` tag, only the params the kind defines with valid values, an `output` tag
    /// (if any) equal to the kind's output type. Relay URLs are checked by [`Self::from_event`].
    pub fn check_confidential(&self) -> Result<TeeKind, ProtocolError> {
        if !self.inputs.is_empty() {
            return Err(ProtocolError::PlaintextInput {
                count: self.inputs.len(),
            });
        }
        let Some(specs) = params_for(self.kind) else {
            return Err(ProtocolError::WrongKind {
                got: self.kind,
                expected: "5970, 5971 or 5050 (ConfidentialDVM job kinds)",
            });
        };
        if !self.content.is_empty() {
            return Err(ProtocolError::NonEmptyContent {
                len: self.content.len(),
            });
        }
        if self.encrypted {
            return Err(ProtocolError::UnsupportedTag {
                tag: "encrypted",
                reason: "NIP-90 encrypted params are not used: the input goes gift-wrapped to the attested guest",
            });
        }
        for (name, value) in &self.params {
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                return Err(ProtocolError::UnknownParam {
                    kind: self.kind,
                    name: name.clone(),
                });
            };
            let ok = match spec.name {
                PARAM_TEE => TeeKind::parse(value).is_some(),
                PARAM_POLICY => {
                    !value.is_empty()
                        && value.len() <= MAX_POLICY_NAME
                        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                }
                PARAM_INPUT => value == INPUT_MODE,
                _ => true,
            };
            if !ok {
                return Err(ProtocolError::InvalidParam {
                    name: spec.name,
                    value: value.chars().take(64).collect(),
                    expected: spec.values,
                });
            }
        }
        if let Some(missing) = specs
            .iter()
            .find(|s| s.required && self.param(s.name).is_none())
        {
            return Err(ProtocolError::MissingParam { name: missing.name });
        }
        if let (Some(got), Some(want)) = (&self.output, output_type(self.kind)) {
            if got != want {
                return Err(ProtocolError::InvalidField {
                    field: "output",
                    reason: format!("`{got}`; job kind {} produces `{want}`", self.kind),
                });
            }
        }
        self.tee()
    }
}
