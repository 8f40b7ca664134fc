//! Large inputs and results out of band: a reference to an encrypted blob on Blossom servers
//! (<https://github.com/hzrd149/blossom>, BUD-01/02), carried only inside an already encrypted
//! message (the NIP-59 input or the NIP-44 result). Field names follow NIP-17 kind 15 (file
//! messages, <https://github.com/nostr-protocol/nips/blob/master/17.md>) where they fit.
//!
//! The encryption format itself (`xchacha20poly1305-stream64k`) is specified in
//! docs/protocol.md §5.8 and implemented by the `cdvm-blob` crate; this module only names it.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::ProtocolError;

/// The one encryption algorithm of `cdvm/v1` blobs: the STREAM construction over
/// XChaCha20-Poly1305 in 64 KiB chunks (docs/protocol.md §5.8).
pub const BLOB_ALGORITHM: &str = "xchacha20poly1305-stream64k";

/// Most fallback URLs a reference may carry (each is one more server a downloader may try).
pub const MAX_BLOB_URLS: usize = 8;

/// Longest URL accepted in a reference.
const MAX_URL_LEN: usize = 2048;

/// An encrypted blob: where it is, how to check it, how to decrypt it.
///
/// `Debug` never shows the key; the key is zeroized on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    /// Where to fetch the ciphertext first: a Blossom URL, `<server>/<x>`.
    pub url: String,
    /// Other URLs holding the same bytes, tried in order when `url` fails (NIP-17 `fallback`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// SHA-256 of the ciphertext, lowercase hex: the Blossom address (NIP-17 `x`).
    pub x: String,
    /// SHA-256 of the plaintext, lowercase hex (NIP-17 `ox`).
    pub ox: String,
    /// Size of the ciphertext in bytes (what is downloaded; NIP-17 `size`).
    pub size: u64,
    /// Media type of the plaintext: `text/csv`, `text/plain`, `application/x-tar` (a folder) …
    #[serde(rename = "file-type")]
    pub file_type: String,
    /// [`BLOB_ALGORITHM`].
    #[serde(rename = "encryption-algorithm")]
    pub encryption_algorithm: String,
    /// The 32-byte key, lowercase hex.
    #[serde(rename = "decryption-key")]
    pub decryption_key: String,
    /// The 19-byte STREAM nonce prefix, lowercase hex.
    #[serde(rename = "decryption-nonce")]
    pub decryption_nonce: String,
}

impl std::fmt::Debug for BlobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRef")
            .field("url", &self.url)
            .field("fallback", &self.fallback)
            .field("x", &self.x)
            .field("size", &self.size)
            .field("file_type", &self.file_type)
            .field("decryption_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Drop for BlobRef {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.decryption_key.zeroize();
    }
}

fn hex_field(field: &'static str, v: &str, bytes: usize) -> Result<(), ProtocolError> {
    let ok = v.len() == bytes * 2 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::InvalidField {
            field,
            reason: format!("must be {} lowercase hex characters", bytes * 2),
        })
    }
}

fn url_field(field: &'static str, u: &str) -> Result<(), ProtocolError> {
    let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
    if !scheme_ok || u.len() > MAX_URL_LEN || u.chars().any(char::is_whitespace) {
        return Err(ProtocolError::InvalidField {
            field,
            reason: format!(
                "`{}` is not an http(s) URL of at most {MAX_URL_LEN} characters",
                u.chars().take(80).collect::<String>()
            ),
        });
    }
    Ok(())
}

impl BlobRef {
    /// Shape checks a receiver makes before fetching anything: hex lengths, the algorithm, the
    /// URLs' scheme and count, and a `size` that a ciphertext of this format can have. Whether
    /// plain `http://` may be used is the transport's decision, not this one's.
    pub fn check(&self) -> Result<(), ProtocolError> {
        url_field("url", &self.url)?;
        if self.fallback.len() > MAX_BLOB_URLS {
            return Err(ProtocolError::InvalidField {
                field: "fallback",
                reason: format!("{} URLs, at most {MAX_BLOB_URLS}", self.fallback.len()),
            });
        }
        self.fallback
            .iter()
            .try_for_each(|u| url_field("fallback", u))?;
        hex_field("x", &self.x, 32)?;
        hex_field("ox", &self.ox, 32)?;
        hex_field("decryption-key", &self.decryption_key, 32)?;
        hex_field("decryption-nonce", &self.decryption_nonce, 19)?;
        if self.encryption_algorithm != BLOB_ALGORITHM {
            return Err(ProtocolError::InvalidField {
                field: "encryption-algorithm",
                reason: format!(
                    "`{}` is not supported (only `{BLOB_ALGORITHM}`)",
                    self.encryption_algorithm
                ),
            });
        }
        // Every ciphertext carries at least one 16-byte tag.
        if self.size < 16 {
            return Err(ProtocolError::InvalidField {
                field: "size",
                reason: format!("{} bytes cannot be a ciphertext of this format", self.size),
            });
        }
        if self.file_type.is_empty()
            || self.file_type.len() > 127
            || !self.file_type.contains('/')
            || self
                .file_type
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ProtocolError::InvalidField {
                field: "file-type",
                reason: "must be a media type such as text/csv".into(),
            });
        }
        Ok(())
    }

    /// The reference to a blob just uploaded: `urls` are where servers took it (the first is
    /// the primary), the rest as produced by the encryption. Checked before it is returned.
    #[allow(clippy::too_many_arguments)] // the fields of the reference, each named once
    pub fn uploaded(
        mut urls: Vec<String>,
        x: String,
        ox: String,
        size: u64,
        file_type: &str,
        decryption_key: String,
        decryption_nonce: String,
    ) -> Result<Self, ProtocolError> {
        if urls.is_empty() {
            return Err(ProtocolError::InvalidField {
                field: "url",
                reason: "no server took the blob".into(),
            });
        }
        let url = urls.remove(0);
        urls.truncate(MAX_BLOB_URLS);
        let blob = BlobRef {
            url,
            fallback: urls,
            x,
            ox,
            size,
            file_type: file_type.to_owned(),
            encryption_algorithm: BLOB_ALGORITHM.to_owned(),
            decryption_key,
            decryption_nonce,
        };
        blob.check()?;
        Ok(blob)
    }

    /// Every URL to try, in order: `url`, then `fallback`.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.url.as_str()).chain(self.fallback.iter().map(String::as_str))
    }
}

/// The servers of a BUD-03 user server list (kind 10063): its `["server", url]` tags in order,
/// http(s) URLs only, at most [`MAX_BLOB_URLS`]. <https://github.com/hzrd149/blossom/blob/master/buds/03.md>
pub fn server_list(event: &nostr::Event) -> Vec<String> {
    if event.kind.as_u16() != crate::kinds::USER_SERVER_LIST {
        return Vec::new();
    }
    event
        .tags
        .iter()
        .map(|t| t.as_slice())
        .filter(|p| p.first().map(String::as_str) == Some("server"))
        .filter_map(|p| p.get(1))
        .filter(|u| url_field("server", u).is_ok())
        .take(MAX_BLOB_URLS)
        .cloned()
        .collect()
}

/// Data in an input: inline (a JSON string, as before blobs existed) or an encrypted blob (a JSON
/// object, [`BlobRef`]).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Data {
    /// The data itself, inside the encrypted input.
    Inline(String),
    /// A reference to the encrypted data on Blossom servers.
    Blob(BlobRef),
}

impl Data {
    /// Size for display: inline bytes, or the blob's ciphertext size.
    pub fn len(&self) -> u64 {
        match self {
            Data::Inline(s) => s.len() as u64,
            Data::Blob(b) => b.size,
        }
    }

    /// Whether there is no data at all (an empty inline string).
    pub fn is_empty(&self) -> bool {
        matches!(self, Data::Inline(s) if s.is_empty())
    }
}

impl From<String> for Data {
    fn from(s: String) -> Self {
        Data::Inline(s)
    }
}

impl From<&str> for Data {
    fn from(s: &str) -> Self {
        Data::Inline(s.to_owned())
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Data::Inline(s) => write!(f, "<{} bytes inline>", s.len()),
            Data::Blob(b) => write!(f, "<blob of {} bytes, {}>", b.size, b.file_type),
        }
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Data::Inline(s) = self {
            s.zeroize();
        }
    }
}

// Hand-written so that a malformed blob object reports the field at fault, not serde's
// "did not match any variant of untagged enum".
impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Data;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string (inline data) or a blob reference object")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Data, E> {
                Ok(Data::Inline(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Data, E> {
                Ok(Data::Inline(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Data, A::Error> {
                BlobRef::deserialize(de::value::MapAccessDeserializer::new(map)).map(Data::Blob)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn sample() -> BlobRef {
        BlobRef {
            url: "https://blossom.example/".to_owned() + &"ab".repeat(32),
            fallback: vec![],
            x: "ab".repeat(32),
            ox: "cd".repeat(32),
            size: 1_000_016,
            file_type: "text/csv".into(),
            encryption_algorithm: BLOB_ALGORITHM.into(),
            decryption_key: "11".repeat(32),
            decryption_nonce: "22".repeat(19),
        }
    }

    #[test]
    fn inline_and_blob_round_trip_and_the_key_never_shows_in_debug() {
        let d: Data = serde_json::from_str("\"a,b\\n1,2\\n\"").unwrap();
        assert_eq!(d, Data::Inline("a,b\n1,2\n".into()));
        let b = Data::Blob(sample());
        let json = serde_json::to_string(&b).unwrap();
        assert!(json.contains("\"decryption-key\""), "{json}");
        assert_eq!(serde_json::from_str::<Data>(&json).unwrap(), b);
        assert!(!format!("{b:?}").contains(&"11".repeat(32)));
        assert!(!format!("{:?}", sample()).contains(&"11".repeat(32)));
    }

    #[test]
    fn a_malformed_blob_names_its_field() {
        let mut v = serde_json::to_string(&sample()).unwrap();
        v = v.replace("\"size\"", "\"sise\"");
        let err = serde_json::from_str::<Data>(&v).unwrap_err().to_string();
        assert!(err.contains("sise"), "{err}");
        assert!(serde_json::from_str::<Data>("12").is_err());
    }

    #[test]
    fn check_refuses_each_bad_field() {
        sample().check().unwrap();
        type Spoil = Box<dyn Fn(&mut BlobRef)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("url", Box::new(|b| b.url = "ftp://x/y".into())),
            ("x", Box::new(|b| b.x = "AB".repeat(32))),
            ("ox", Box::new(|b| b.ox.pop().map(|_| ()).unwrap_or(()))),
            (
                "decryption-key",
                Box::new(|b| b.decryption_key = "zz".repeat(32)),
            ),
            (
                "decryption-nonce",
                Box::new(|b| b.decryption_nonce = "22".repeat(24)),
            ),
            (
                "encryption-algorithm",
                Box::new(|b| b.encryption_algorithm = "aes".into()),
            ),
            ("size", Box::new(|b| b.size = 15)),
            ("file-type", Box::new(|b| b.file_type = "csv".into())),
            (
                "fallback",
                Box::new(|b| b.fallback = vec![b.url.clone(); 9]),
            ),
        ];
        for (field, f) in cases {
            let mut b = sample();
            f(&mut b);
            match b.check() {
                Err(ProtocolError::InvalidField { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
