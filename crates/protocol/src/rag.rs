//! The confidential RAG job: NIP-90 text generation (kind 5050) over the user's own documents,
//! answered inside the attested guest (docs/protocol.md §5.9).
//!
//! Everything here travels encrypted: the parameters and question inside the gift-wrapped input
//! ([`crate::InputBody::Rag`]), the answer inside the NIP-44 result, and the growing answer in
//! `partial` feedback encrypted to the user ([`PartialAnswer`]).

use nostr::nips::nip44;
use nostr::{EventBuilder, EventId, Keys, Kind, PublicKey};
use serde::{Deserialize, Serialize};

use crate::feedback::FeedbackStatus;
use crate::kinds;
use crate::tags::{self, tag};
use crate::ProtocolError;

/// Most tokens a job may ask the model to generate.
pub const MAX_MAX_TOKENS: u32 = 4096;
/// Longest question, in bytes (a question, not a document: documents go in `documents`).
pub const MAX_QUESTION_BYTES: usize = 8 * 1024;
/// Chunk size bounds, in words (all-MiniLM-L6-v2 reads at most 256 word pieces; 200 words of
/// English stay under that).
pub const CHUNK_WORDS: std::ops::RangeInclusive<u32> = 16..=200;
/// Most passages a job may retrieve into the prompt.
pub const MAX_RETRIEVE: u32 = 32;
/// Longest `partial` text in one feedback event (the answer so far; later partials stop once the
/// answer outgrows it, and the final result carries the whole answer).
pub const MAX_PARTIAL_TEXT: usize = 16 * 1024;

/// The job's parameters: NIP-90 text-generation params (kind 5050's `model`, `max_tokens`,
/// `temperature`, `top_k`, `top_p`, `frequency_penalty`) and the retrieval's. Sent encrypted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RagParams {
    /// The generator to use, by the name the announcement lists; `None`: the image's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Most tokens to generate, 1 to [`MAX_MAX_TOKENS`].
    pub max_tokens: u32,
    /// Sampling temperature, 0 to 2. 0 is greedy decoding: the same input gives the same answer.
    pub temperature: f32,
    /// Sampling: keep the `top_k` most likely tokens (0: all). Ignored when greedy.
    pub top_k: u32,
    /// Sampling: nucleus probability mass, in (0, 1]. Ignored when greedy.
    pub top_p: f32,
    /// Penalty on tokens by how often they already appeared, -2 to 2.
    pub frequency_penalty: f32,
    /// Sampling seed (with a temperature above 0).
    pub seed: u32,
    /// Chunk size in words (range [`CHUNK_WORDS`]).
    pub chunk_words: u32,
    /// Words shared by consecutive chunks, less than `chunk_words`.
    pub overlap_words: u32,
    /// Passages retrieved into the prompt, 1 to [`MAX_RETRIEVE`] (fewer when the context is full).
    pub retrieve: u32,
}

impl Default for RagParams {
    fn default() -> Self {
        Self {
            model: None,
            max_tokens: 256,
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            frequency_penalty: 0.0,
            seed: 0,
            chunk_words: 120,
            overlap_words: 24,
            retrieve: 4,
        }
    }
}

impl RagParams {
    /// Checks every range; the error names the field and what it must be.
    pub fn check(&self) -> Result<(), ProtocolError> {
        let bad =
            |field: &'static str, reason: String| ProtocolError::InvalidField { field, reason };
        if !(1..=MAX_MAX_TOKENS).contains(&self.max_tokens) {
            return Err(bad(
                "max_tokens",
                format!("{}; 1 to {MAX_MAX_TOKENS}", self.max_tokens),
            ));
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Err(bad("temperature", format!("{}; 0 to 2", self.temperature)));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad("top_p", format!("{}; above 0, at most 1", self.top_p)));
        }
        if !(self.frequency_penalty.is_finite() && (-2.0..=2.0).contains(&self.frequency_penalty)) {
            return Err(bad(
                "frequency_penalty",
                format!("{}; -2 to 2", self.frequency_penalty),
            ));
        }
        if !CHUNK_WORDS.contains(&self.chunk_words) {
            return Err(bad(
                "chunk_words",
                format!(
                    "{}; {} to {}",
                    self.chunk_words,
                    CHUNK_WORDS.start(),
                    CHUNK_WORDS.end()
                ),
            ));
        }
        if self.overlap_words >= self.chunk_words {
            return Err(bad(
                "overlap_words",
                format!(
                    "{}; less than chunk_words ({})",
                    self.overlap_words, self.chunk_words
                ),
            ));
        }
        if !(1..=MAX_RETRIEVE).contains(&self.retrieve) {
            return Err(bad(
                "retrieve",
                format!("{}; 1 to {MAX_RETRIEVE}", self.retrieve),
            ));
        }
        if let Some(m) = &self.model {
            if m.is_empty() || m.len() > 128 {
                return Err(bad("model", "a model name, 1 to 128 bytes".into()));
            }
        }
        Ok(())
    }

    /// Whether decoding is greedy (deterministic).
    pub fn greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// Checks a question's size.
pub fn check_question(question: &str) -> Result<(), ProtocolError> {
    if question.trim().is_empty() {
        return Err(ProtocolError::InvalidField {
            field: "question",
            reason: "empty".into(),
        });
    }
    if question.len() > MAX_QUESTION_BYTES {
        return Err(ProtocolError::InvalidField {
            field: "question",
            reason: format!("{} bytes; at most {MAX_QUESTION_BYTES}", question.len()),
        });
    }
    Ok(())
}

/// The answer: the `output` of an `ok` result, as JSON (media type `application/json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RagAnswer {
    /// The generated answer.
    pub answer: String,
    /// The passages the answer was generated from, most similar first.
    pub citations: Vec<Citation>,
    /// The generator that wrote the answer.
    pub model: ModelRef,
    /// The embedder that ranked the passages.
    pub embedder: ModelRef,
    /// Counts, for the user and for pricing.
    pub usage: Usage,
    /// Why generation stopped.
    pub finish: Finish,
}

/// One retrieved passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Citation {
    /// The document's name: its path in the folder, or the single document's name.
    pub document: String,
    /// The chunk's index within its document, from 0.
    pub chunk: u32,
    /// Cosine similarity between the question and the passage, -1 to 1.
    pub similarity: f32,
    /// The passage as given to the model.
    pub text: String,
}

/// A model by name and file hash (the hash the announcement and attestation name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// The model's name in the announcement.
    pub name: String,
    /// SHA-256 of the model file, 64 lowercase hex characters.
    pub sha256: String,
}

/// A model the guest image carries, as the NIP-89 announcement lists it (docs/protocol.md §5.9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnouncedModel {
    /// Name, as job params and results use it.
    pub name: String,
    /// `generator` or `embedder`.
    pub role: String,
    /// SHA-256 of the model file, 64 lowercase hex characters (the attestation names it too).
    pub sha256: String,
    /// Licence (SPDX identifier).
    pub license: String,
    /// Context length in tokens a job may use.
    pub context_length: u32,
    /// What a price is counted in, e.g. `generated token`.
    pub price_unit: String,
}

/// Token and passage counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Documents read.
    pub documents: u32,
    /// Chunks embedded.
    pub chunks: u32,
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finish {
    /// The model ended its answer.
    Stop,
    /// `max_tokens` (or the context) ran out first.
    Length,
}

/// The content of a `partial` feedback, before NIP-44 encryption to the user: the answer so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialAnswer {
    /// Payload version, 1.
    pub v: u32,
    /// The job request id, 64 lowercase hex characters.
    pub request_id: String,
    /// 1, 2, 3, … in the order sent: relays may deliver out of order, a client keeps the highest.
    pub seq: u32,
    /// The whole answer generated so far (not a delta: a lost event costs nothing).
    pub text: String,
}

impl PartialAnswer {
    /// The signed-by-caller feedback event: kind 7000, `["status", "partial"]`, `["e", request]`,
    /// `["p", user]`, `["encrypted"]`, content = NIP-44 v2 from `guest` to `user`.
    pub fn build(&self, guest: &Keys, user: &PublicKey) -> Result<EventBuilder, ProtocolError> {
        let request_id = tags::request_id_field(&self.request_id)?;
        if self.text.len() > MAX_PARTIAL_TEXT {
            return Err(ProtocolError::EventTooLarge {
                what: "partial answer",
                size: self.text.len(),
                max: MAX_PARTIAL_TEXT,
            });
        }
        let json = serde_json::to_string(self).map_err(|source| ProtocolError::Json {
            what: "partial answer",
            source,
        })?;
        let content = nip44::encrypt(guest.secret_key(), user, json, nip44::Version::V2)
            .map_err(|source| ProtocolError::Nip44 { source })?;
        Ok(
            EventBuilder::new(Kind::from(kinds::JOB_FEEDBACK), content).tags([
                tag("status", [FeedbackStatus::Partial.as_str()]),
                tag("e", [request_id.to_hex()]),
                tag("p", [user.to_hex()]),
                tag("encrypted", Vec::<String>::new()),
            ]),
        )
    }

    /// Decrypts a `partial` feedback's content from `guest` and checks it belongs to `request`.
    pub fn decrypt(
        user: &Keys,
        guest: &PublicKey,
        request: &EventId,
        content: &str,
    ) -> Result<Self, ProtocolError> {
        let json = nip44::decrypt(user.secret_key(), guest, content)
            .map_err(|source| ProtocolError::Nip44 { source })?;
        let p: Self = serde_json::from_str(&json).map_err(|source| ProtocolError::Json {
            what: "partial answer",
            source,
        })?;
        tags::check_version("partial answer", p.v)?;
        if p.request_id != request.to_hex() {
            return Err(ProtocolError::RequestMismatch {
                context: "partial answer request_id",
                expected: request.to_hex(),
                found: p.request_id,
            });
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_pass_and_each_range_is_enforced() {
        assert!(RagParams::default().check().is_ok());
        let cases: Vec<(&str, RagParams)> = vec![
            (
                "max_tokens",
                RagParams {
                    max_tokens: 0,
                    ..Default::default()
                },
            ),
            (
                "max_tokens",
                RagParams {
                    max_tokens: MAX_MAX_TOKENS + 1,
                    ..Default::default()
                },
            ),
            (
                "temperature",
                RagParams {
                    temperature: f32::NAN,
                    ..Default::default()
                },
            ),
            (
                "temperature",
                RagParams {
                    temperature: 2.5,
                    ..Default::default()
                },
            ),
            (
                "top_p",
                RagParams {
                    top_p: 0.0,
                    ..Default::default()
                },
            ),
            (
                "frequency_penalty",
                RagParams {
                    frequency_penalty: f32::INFINITY,
                    ..Default::default()
                },
            ),
            (
                "chunk_words",
                RagParams {
                    chunk_words: 8,
                    ..Default::default()
                },
            ),
            (
                "overlap_words",
                RagParams {
                    overlap_words: 120,
                    ..Default::default()
                },
            ),
            (
                "retrieve",
                RagParams {
                    retrieve: 0,
                    ..Default::default()
                },
            ),
            (
                "model",
                RagParams {
                    model: Some(String::new()),
                    ..Default::default()
                },
            ),
        ];
        for (field, p) in cases {
            match p.check() {
                Err(ProtocolError::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn params_parse_strictly_with_defaults() {
        let p: RagParams = serde_json::from_str(r#"{"max_tokens": 64}"#).unwrap();
        assert_eq!(p.max_tokens, 64);
        assert_eq!(p.retrieve, 4);
        assert!(p.greedy());
        assert!(serde_json::from_str::<RagParams>(r#"{"max_token": 64}"#).is_err());
    }

    #[test]
    fn partial_answer_round_trip_and_tamper_twin() {
        let guest = Keys::generate();
        let user = Keys::generate();
        let request = EventId::all_zeros();
        let p = PartialAnswer {
            v: 1,
            request_id: request.to_hex(),
            seq: 3,
            text: "The shortest notice is".into(),
        };
        let event = p
            .build(&guest, &user.public_key())
            .unwrap()
            .sign_with_keys(&guest)
            .unwrap();
        assert!(!event.content.contains("shortest"));
        let back =
            PartialAnswer::decrypt(&user, &guest.public_key(), &request, &event.content).unwrap();
        assert_eq!(back, p);
        // Another job's partial is refused.
        let other = EventId::from_slice(&[1; 32]).unwrap();
        assert!(
            PartialAnswer::decrypt(&user, &guest.public_key(), &other, &event.content).is_err()
        );
        // A third party cannot read it.
        let stranger = Keys::generate();
        assert!(
            PartialAnswer::decrypt(&stranger, &guest.public_key(), &request, &event.content)
                .is_err()
        );
    }

    #[test]
    fn question_bounds() {
        assert!(check_question("  ").is_err());
        assert!(check_question(&"x".repeat(MAX_QUESTION_BYTES + 1)).is_err());
        assert!(check_question("Which contract?").is_ok());
    }
}
