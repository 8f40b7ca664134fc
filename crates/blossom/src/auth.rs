//! BUD-11 authorization tokens: kind 24242 events sent as `Authorization: Nostr <base64url>`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use nostr::{Event, EventBuilder, JsonUtil as _, Keys, Kind, Tag, TagKind, Timestamp};

use crate::error::BlossomError;
use crate::hash::is_sha256_hex;

/// The event kind of Blossom authorization tokens.
pub const AUTH_KIND: u16 = 24242;

/// Longest `Authorization` value [`decode_auth_header`] looks at: a token is a few hundred bytes
/// plus one `x` tag per blob, so 16 KiB is far above any honest one.
const MAX_AUTH_HEADER: usize = 16 * 1024;

/// The action a token authorizes (its `t` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVerb {
    /// `PUT /upload`, `HEAD /upload`.
    Upload,
    /// `GET`/`HEAD /<sha256>`.
    Get,
    /// `DELETE /<sha256>`.
    Delete,
    /// `GET /list/<pubkey>`.
    List,
}

impl AuthVerb {
    /// The `t` tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthVerb::Upload => "upload",
            AuthVerb::Get => "get",
            AuthVerb::Delete => "delete",
            AuthVerb::List => "list",
        }
    }
}

/// Signs a kind 24242 token: `["t", verb]`, `["x", x]`, `["expiration", expiration]`, with
/// `reason` as the human-readable content. No `server` tag: tokens are generic (BUD-11), and
/// the `x` tag plus a short expiration already narrow what a leaked token allows.
pub fn auth_event(
    keys: &Keys,
    verb: AuthVerb,
    x: &str,
    expiration: Timestamp,
    reason: &str,
) -> Result<Event, BlossomError> {
    if !is_sha256_hex(x) {
        return Err(BlossomError::InvalidHash {
            value: x.to_owned(),
        });
    }
    // Tag::hashtag would lowercase, which is fine for our fixed verbs, but a custom `t` says
    // exactly what goes on the wire.
    let tags = [
        Tag::custom(TagKind::custom("t"), [verb.as_str()]),
        Tag::custom(TagKind::custom("x"), [x]),
        Tag::expiration(expiration),
    ];
    EventBuilder::new(Kind::Custom(AUTH_KIND), reason)
        .tags(tags)
        .sign_with_keys(keys)
        .map_err(|e| BlossomError::Auth {
            source: Box::new(e),
        })
}

/// The `Authorization` header value for `event`: `Nostr ` and the event JSON in base64url
/// without padding, as BUD-11 requires (older BUD-01 text said plain base64; servers
/// should accept both, see [`decode_auth_header`]).
pub fn auth_header(event: &Event) -> String {
    format!("Nostr {}", URL_SAFE_NO_PAD.encode(event.as_json()))
}

/// Parses an `Authorization` header value into the event it carries, accepting base64url and
/// standard base64, padded or not. Only parses: the caller verifies id, signature and claims.
pub fn decode_auth_header(value: &str) -> Result<Event, String> {
    if value.len() > MAX_AUTH_HEADER {
        return Err("authorization header too long".to_owned());
    }
    let token = value
        .strip_prefix("Nostr ")
        .ok_or_else(|| "authorization scheme is not Nostr".to_owned())?
        .trim();
    let json = [URL_SAFE_NO_PAD, URL_SAFE, STANDARD, STANDARD_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(token).ok())
        .ok_or_else(|| "authorization token is not base64".to_owned())?;
    Event::from_json(json).map_err(|e| format!("authorization token is not a nostr event: {e}"))
}
