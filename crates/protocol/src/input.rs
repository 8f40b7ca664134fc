//! The confidential input, sent NIP-59 gift-wrapped to the attested guest key G.
//! <https://github.com/nostr-protocol/nips/blob/master/59.md>
//!
//! rumor (kind 7011, signed by nobody, authored by U, `["e", request]`, content = JSON below)
//! → seal (kind 13, signed by U, NIP-44 to G) → gift wrap (kind 1059, throwaway key, NIP-44 to G).
//! Relays see only a gift wrap to G from a random key.

use nostr::nips::nip59::UnwrappedGift;
use nostr::{Event, EventBuilder, JsonUtil, Keys, Kind, PublicKey};
use serde::{Deserialize, Serialize};

use crate::blob::{BlobRef, Data};
use crate::kinds;
use crate::tags::{self, tag};
use crate::ProtocolError;

/// Largest event JSON we publish. Relays cap events near 64 KiB (strfry's default
/// `maxEventSize` is 65,536 bytes; DESIGN §9).
pub const MAX_EVENT_SIZE: usize = 64 * 1024;

/// Largest serialized input rumor (the JSON of the unsigned kind-7011 event).
///
/// Why this number: NIP-44 pads a 16–32 KiB plaintext up to a multiple of 4,096 bytes, so a rumor
/// of at most 28,672 bytes seals to 38,320 base64 characters, the seal's JSON (~38.7 KB) pads to
/// 40,960 and the gift wrap comes to ~55 KB of JSON. One byte more pads to 32,768, and the wrap
/// grows to ~66 KB, past [`MAX_EVENT_SIZE`]. The rumor, not the input, is what is bounded, because
/// JSON-in-JSON escaping doubles every `"` and `\` of the input again inside the rumor.
pub const MAX_INPUT_RUMOR: usize = 28 * 1024;

/// Largest serialized [`ConfidentialInput`] sent in one gift wrap. 24 KiB leaves room under
/// [`MAX_INPUT_RUMOR`] for the rumor's envelope (~260 bytes) and some re-escaping; an input that
/// passes this check but escapes heavily is refused with [`ProtocolError::EventTooLarge`].
/// Larger inputs travel as an encrypted blob on Blossom servers ([`Data::Blob`], §5.8).
pub const MAX_INPUT_PLAINTEXT: usize = 24 * 1024;

/// The job-specific body of the input: the user's confidential data.
///
/// Its `Debug` shows sizes only, so a stray log line cannot leak it, and it is zeroized on drop.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum InputBody {
    /// Job kind 5970: run `query` over the table given as CSV (header row first).
    Sql {
        /// The table, CSV with a header row; as a blob, also a tar of several CSV files (one
        /// table each, named after the file).
        table_csv: Data,
        /// The SQL query.
        query: String,
    },
    /// Job kind 5971: statistics over `text`.
    TextStats {
        /// The text; as a blob, also a tar of text files (statistics over all of them).
        text: Data,
    },
    /// Job kind 5050: answer `question` from `documents` with the image's LLM (§5.9).
    Rag {
        /// The documents: inline, one document; as a blob, one document or a tar of a folder
        /// (plain text, Markdown, HTML).
        documents: Data,
        /// The single document's name (cited in the answer); a folder's files carry their paths.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The single document's media type: `text/plain` (default), `text/markdown`,
        /// `text/html`. A blob's own `file-type` takes precedence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_type: Option<String>,
        /// The question.
        question: String,
        /// Generation and retrieval parameters.
        #[serde(default)]
        params: crate::rag::RagParams,
    },
}

impl InputBody {
    /// The body's one data field.
    pub fn data(&self) -> &Data {
        match self {
            InputBody::Sql { table_csv, .. } => table_csv,
            InputBody::TextStats { text } => text,
            InputBody::Rag { documents, .. } => documents,
        }
    }

    /// The blob the data lives in, if it is not inline.
    pub fn blob(&self) -> Option<&BlobRef> {
        match self.data() {
            Data::Blob(b) => Some(b),
            Data::Inline(_) => None,
        }
    }
}

impl std::fmt::Debug for InputBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputBody::Sql { table_csv, query } => write!(
                f,
                "Sql {{ table_csv: {table_csv:?}, query: <{} bytes> }}",
                query.len()
            ),
            InputBody::TextStats { text } => write!(f, "TextStats {{ text: {text:?} }}"),
            InputBody::Rag {
                documents,
                question,
                params,
                ..
            } => write!(
                f,
                "Rag {{ documents: {documents:?}, question: <{} bytes>, max_tokens: {} }}",
                question.len(),
                params.max_tokens
            ),
        }
    }
}

impl Drop for InputBody {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        match self {
            // `Data` zeroizes itself.
            InputBody::Sql { query, .. } => query.zeroize(),
            InputBody::TextStats { .. } => {}
            InputBody::Rag { question, name, .. } => {
                question.zeroize();
                if let Some(n) = name {
                    n.zeroize();
                }
            }
        }
    }
}

/// The JSON content of the input rumor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfidentialInput {
    /// Payload version, 1.
    pub v: u32,
    /// The job request id, 64 lowercase hex characters (equal to the rumor's `e` tag).
    pub request_id: String,
    /// The input itself.
    pub body: InputBody,
    /// Blossom servers (https) the guest may upload a result too large for one event to, in
    /// order of preference (§5.8). Empty: such a result is an `output-too-large` error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blossom: Vec<String>,
}

/// Most result servers an input may name.
pub const MAX_RESULT_SERVERS: usize = 8;

impl ConfidentialInput {
    /// Checks the blob reference and the result servers' shape (what [`wrap_input`] and
    /// [`unwrap_input`] enforce).
    pub fn check(&self) -> Result<(), ProtocolError> {
        if let Some(blob) = self.body.blob() {
            blob.check()?;
        }
        if let InputBody::Rag {
            question,
            params,
            name,
            media_type,
            ..
        } = &self.body
        {
            crate::rag::check_question(question)?;
            params.check()?;
            if name.as_ref().is_some_and(|n| n.is_empty() || n.len() > 255) {
                return Err(ProtocolError::InvalidField {
                    field: "name",
                    reason: "a document name, 1 to 255 bytes".into(),
                });
            }
            if media_type.as_ref().is_some_and(|m| m.len() > 127) {
                return Err(ProtocolError::InvalidField {
                    field: "media_type",
                    reason: "a media type, at most 127 bytes".into(),
                });
            }
        }
        if self.blossom.len() > MAX_RESULT_SERVERS {
            return Err(ProtocolError::InvalidField {
                field: "blossom",
                reason: format!(
                    "{} servers, at most {MAX_RESULT_SERVERS}",
                    self.blossom.len()
                ),
            });
        }
        for s in &self.blossom {
            if !(s.starts_with("https://") || s.starts_with("http://")) || s.len() > 2048 {
                return Err(ProtocolError::InvalidField {
                    field: "blossom",
                    reason: "each server must be an http(s) URL".into(),
                });
            }
        }
        Ok(())
    }
}

fn check_size(size: usize) -> Result<(), ProtocolError> {
    if size > MAX_INPUT_PLAINTEXT {
        return Err(ProtocolError::InputTooLarge {
            size,
            max: MAX_INPUT_PLAINTEXT,
        });
    }
    Ok(())
}

/// Gift-wraps `input` from the user to the guest key `guest`. Refuses inputs whose JSON exceeds
/// [`MAX_INPUT_PLAINTEXT`] ([`ProtocolError::InputTooLarge`]) and rumors over
/// [`MAX_INPUT_RUMOR`] ([`ProtocolError::EventTooLarge`]), so the wrap fits one relay event.
/// Nothing of the input appears in any tag; the wrap's only tag is `["p", guest]`.
pub async fn wrap_input(
    user: &Keys,
    guest: &PublicKey,
    input: &ConfidentialInput,
) -> Result<Event, ProtocolError> {
    tags::check_version("confidential input", input.v)?;
    input.check()?;
    let request_id = tags::request_id_field(&input.request_id)?;
    let json = serde_json::to_string(input).map_err(|source| ProtocolError::Json {
        what: "confidential input",
        source,
    })?;
    check_size(json.len())?;
    let rumor = EventBuilder::new(Kind::from(kinds::INPUT_RUMOR), json)
        .tag(tag("e", [request_id.to_hex()]))
        .build(user.public_key());
    let rumor_len = rumor.as_json().len();
    if rumor_len > MAX_INPUT_RUMOR {
        return Err(ProtocolError::EventTooLarge {
            what: "input rumor",
            size: rumor_len,
            max: MAX_INPUT_RUMOR,
        });
    }
    let wrap = EventBuilder::gift_wrap(user, guest, rumor, [])
        .await
        .map_err(|source| ProtocolError::EventBuild { source })?;
    // Cannot trigger given MAX_INPUT_RUMOR; kept so a change to either constant fails loudly.
    let wrap_len = wrap.as_json().len();
    if wrap_len > MAX_EVENT_SIZE {
        return Err(ProtocolError::EventTooLarge {
            what: "gift wrap",
            size: wrap_len,
            max: MAX_EVENT_SIZE,
        });
    }
    Ok(wrap)
}

/// Unwraps a gift wrap addressed to `guest`. Returns the seal signer (the sender, to be compared
/// with the request's author by the caller) and the input.
///
/// Checks: the wrap's id and signature, kind 1059, the seal's signature (nostr), the rumor's
/// author equals the seal signer, rumor kind 7011, its `e` tag equals `request_id` in the body,
/// size, version and strict JSON.
pub async fn unwrap_input(
    guest: &Keys,
    gift_wrap: &Event,
) -> Result<(PublicKey, ConfidentialInput), ProtocolError> {
    tags::check_event(
        gift_wrap,
        |k| k == kinds::GIFT_WRAP,
        "1059 (NIP-59 gift wrap)",
    )?;
    let gift = UnwrappedGift::from_gift_wrap(guest, gift_wrap)
        .await
        .map_err(|source| ProtocolError::Nip59 { source })?;
    // nostr checks this too; it is the whole point of the seal, so check it here as well.
    if gift.rumor.pubkey != gift.sender {
        return Err(ProtocolError::SenderMismatch {
            seal: gift.sender,
            rumor: gift.rumor.pubkey,
        });
    }
    let rumor_kind = gift.rumor.kind.as_u16();
    if rumor_kind != kinds::INPUT_RUMOR {
        return Err(ProtocolError::WrongKind {
            got: rumor_kind,
            expected: "7011 (cdvm input rumor)",
        });
    }
    check_size(gift.rumor.content.len())?;
    let mut e_tags = gift
        .rumor
        .tags
        .iter()
        .map(|t| t.as_slice())
        .filter(|p| p.first().map(String::as_str) == Some("e"));
    let e = e_tags
        .next()
        .ok_or(ProtocolError::MissingTag { tag: "e" })?;
    if e_tags.next().is_some() {
        return Err(tags::malformed("e", "appears more than once"));
    }
    let tagged = tags::event_id("e", tags::value(e, 1)?)?;
    let input: ConfidentialInput =
        serde_json::from_str(&gift.rumor.content).map_err(|source| ProtocolError::Json {
            what: "confidential input",
            source,
        })?;
    tags::check_version("confidential input", input.v)?;
    input.check()?;
    if input.request_id != tagged.to_hex() {
        return Err(ProtocolError::RequestMismatch {
            context: "confidential input request_id",
            expected: tagged.to_hex(),
            found: input.request_id,
        });
    }
    Ok((gift.sender, input))
}
