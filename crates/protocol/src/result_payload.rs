//! The decrypted content of our job result, NIP-44 v2 encrypted from G to the user.
//! <https://github.com/nostr-protocol/nips/blob/master/44.md>

use nostr::nips::nip44;
use nostr::{EventId, Keys, PublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::blob::BlobRef;
use crate::tags;
use crate::ProtocolError;

/// Largest serialized [`ResultPayload`]: its NIP-44 ciphertext (padding + base64) must stay well
/// under the ~64 KiB event size relays accept (DESIGN §9).
pub const MAX_RESULT_PLAINTEXT: usize = 32 * 1024;

/// What the guest returns to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultPayload {
    /// Payload version, 1.
    pub v: u32,
    /// The job request id, 64 lowercase hex characters.
    pub request_id: String,
    /// Output or error.
    pub outcome: Outcome,
}

/// The job's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Outcome {
    /// The executor succeeded.
    Ok {
        /// MIME type of `output`, e.g. `text/csv`, `application/json`.
        media_type: String,
        /// The output.
        output: String,
        /// SHA-256 of `output`'s UTF-8 bytes, lowercase hex.
        output_sha256: String,
    },
    /// The executor succeeded and its output, too large for one event, is an encrypted blob
    /// (§5.8): `blob.ox` is the SHA-256 of the output, `blob.file-type` its media type.
    OkBlob {
        /// MIME type of the output.
        media_type: String,
        /// Where the encrypted output is and how to decrypt it.
        blob: BlobRef,
    },
    /// The executor failed; `message` says why in the executor's words. It may quote the
    /// user's query (SQLite does): it is encrypted to the user like any output.
    Error {
        /// Reason.
        message: String,
    },
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl ResultPayload {
    /// A successful result; computes `output_sha256`.
    pub fn ok(request_id: &EventId, media_type: &str, output: String) -> Self {
        Self {
            v: crate::PAYLOAD_VERSION,
            request_id: request_id.to_hex(),
            outcome: Outcome::Ok {
                media_type: media_type.to_owned(),
                output_sha256: sha256_hex(&output),
                output,
            },
        }
    }

    /// A successful result whose output went to a blob.
    pub fn ok_blob(request_id: &EventId, media_type: &str, blob: BlobRef) -> Self {
        Self {
            v: crate::PAYLOAD_VERSION,
            request_id: request_id.to_hex(),
            outcome: Outcome::OkBlob {
                media_type: media_type.to_owned(),
                blob,
            },
        }
    }

    /// A failed job.
    pub fn error(request_id: &EventId, message: String) -> Self {
        Self {
            v: crate::PAYLOAD_VERSION,
            request_id: request_id.to_hex(),
            outcome: Outcome::Error { message },
        }
    }
}

/// Serializes `payload` and encrypts it NIP-44 v2 from `guest` to `user`; the result is the
/// job-result event's content. Refuses JSON over [`MAX_RESULT_PLAINTEXT`] and an `ok` outcome
/// whose `output_sha256` is not the hash of its output.
pub fn encrypt_result(
    guest: &Keys,
    user: &PublicKey,
    payload: &ResultPayload,
) -> Result<String, ProtocolError> {
    // Same checks as the receiver, so a buggy sender fails here rather than at the user.
    check(payload)?;
    let json = serde_json::to_string(payload).map_err(|source| ProtocolError::Json {
        what: "result payload",
        source,
    })?;
    if json.len() > MAX_RESULT_PLAINTEXT {
        return Err(ProtocolError::ResultTooLarge {
            size: json.len(),
            max: MAX_RESULT_PLAINTEXT,
        });
    }
    nip44::encrypt(guest.secret_key(), user, json, nip44::Version::V2)
        .map_err(|source| ProtocolError::Nip44 { source })
}

/// Decrypts a job result's content sent by `guest` to `user`, parses it strictly and re-checks
/// `output_sha256`. The caller compares `request_id` with the request it sent.
pub fn decrypt_result(
    user: &Keys,
    guest: &PublicKey,
    content: &str,
) -> Result<ResultPayload, ProtocolError> {
    let json = nip44::decrypt(user.secret_key(), guest, content)
        .map_err(|source| ProtocolError::Nip44 { source })?;
    let payload: ResultPayload =
        serde_json::from_str(&json).map_err(|source| ProtocolError::Json {
            what: "result payload",
            source,
        })?;
    check(&payload)?;
    Ok(payload)
}

/// Version, request id shape and, for `ok`, that `output_sha256` is the hash of `output`.
fn check(payload: &ResultPayload) -> Result<(), ProtocolError> {
    tags::check_version("result payload", payload.v)?;
    tags::request_id_field(&payload.request_id)?;
    if let Outcome::OkBlob { blob, .. } = &payload.outcome {
        blob.check()?;
    }
    if let Outcome::Ok {
        output,
        output_sha256,
        ..
    } = &payload.outcome
    {
        let actual = sha256_hex(output);
        if actual != *output_sha256 {
            return Err(ProtocolError::ResultHashMismatch {
                expected: output_sha256.clone(),
                actual,
            });
        }
    }
    Ok(())
}
