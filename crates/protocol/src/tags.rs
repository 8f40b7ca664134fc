//! Small helpers to build and read tags with the exact wire shape we document.

use nostr::{Event, EventId, PublicKey, Tag, TagKind};

use crate::ProtocolError;

/// `[name, values…]`, built verbatim (no nostr standardisation, so the wire shape is ours).
pub(crate) fn tag<I, S>(name: &str, values: I) -> Tag
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    Tag::custom(TagKind::from(name), values)
}

/// The tag as a slice of strings: `[name, v1, v2, …]`.
pub(crate) fn parts(t: &Tag) -> &[String] {
    t.as_slice()
}

/// All tags named `name`, as slices (name included at index 0).
pub(crate) fn all<'a>(e: &'a Event, name: &'a str) -> impl Iterator<Item = &'a [String]> + 'a {
    e.tags
        .iter()
        .map(parts)
        .filter(move |p| p.first().map(String::as_str) == Some(name))
}

/// The one tag named `name`, or `None`; two or more is an error (which one would count?).
pub(crate) fn single<'a>(e: &'a Event, name: &str) -> Result<Option<&'a [String]>, ProtocolError> {
    let mut found = None;
    for p in e.tags.iter().map(parts) {
        if p.first().map(String::as_str) == Some(name) {
            if found.is_some() {
                return Err(malformed(name, "appears more than once"));
            }
            found = Some(p);
        }
    }
    Ok(found)
}

/// The one tag named `name`; absent or repeated is an error.
pub(crate) fn required<'a>(
    e: &'a Event,
    name: &'static str,
) -> Result<&'a [String], ProtocolError> {
    single(e, name)?.ok_or(ProtocolError::MissingTag { tag: name })
}

/// Value at `idx` of a tag, which must exist.
pub(crate) fn value(p: &[String], idx: usize) -> Result<&str, ProtocolError> {
    p.get(idx).map(String::as_str).ok_or_else(|| {
        malformed(
            p.first().map(String::as_str).unwrap_or(""),
            format!("expected at least {idx} value(s)"),
        )
    })
}

/// Value at `idx` if present and non-empty (NIP-01 optional positions may be `""`).
pub(crate) fn opt_value(p: &[String], idx: usize) -> Option<String> {
    p.get(idx).filter(|s| !s.is_empty()).cloned()
}

pub(crate) fn malformed(tag: &str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::MalformedTag {
        tag: tag.to_owned(),
        reason: reason.into(),
    }
}

/// NIP-01 ids and keys are 64 lowercase hex characters; anything else is rejected, not normalised.
fn is_lower_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses an event id found in tag `tag`.
pub(crate) fn event_id(tag: &str, s: &str) -> Result<EventId, ProtocolError> {
    if !is_lower_hex64(s) {
        return Err(malformed(
            tag,
            "event id is not 64 lowercase hex characters",
        ));
    }
    EventId::from_hex(s).map_err(|e| malformed(tag, format!("event id: {e}")))
}

/// Parses a public key found in tag `tag`, requiring a valid x-only point (not just 32 bytes).
pub(crate) fn public_key(tag: &str, s: &str) -> Result<PublicKey, ProtocolError> {
    if !is_lower_hex64(s) {
        return Err(malformed(
            tag,
            "public key is not 64 lowercase hex characters",
        ));
    }
    let pk = PublicKey::from_hex(s).map_err(|e| malformed(tag, format!("public key: {e}")))?;
    pk.xonly()
        .map_err(|e| malformed(tag, format!("public key is not on the curve: {e}")))?;
    Ok(pk)
}

/// Parses a request id carried as hex inside a JSON payload.
pub(crate) fn request_id_field(s: &str) -> Result<EventId, ProtocolError> {
    if !is_lower_hex64(s) {
        return Err(ProtocolError::InvalidField {
            field: "request_id",
            reason: "not 64 lowercase hex characters".into(),
        });
    }
    EventId::from_hex(s).map_err(|e| ProtocolError::InvalidField {
        field: "request_id",
        reason: e.to_string(),
    })
}

/// Whether a value-less marker tag (`["encrypted"]`) is present.
pub(crate) fn has_flag(e: &Event, name: &str) -> bool {
    all(e, name).next().is_some()
}

/// Verifies id + signature and that the kind satisfies `ok`.
pub(crate) fn check_event(
    e: &Event,
    ok: impl Fn(u16) -> bool,
    expected: &'static str,
) -> Result<(), ProtocolError> {
    crate::verify_event(e)?;
    let got = e.kind.as_u16();
    if !ok(got) {
        return Err(ProtocolError::WrongKind { got, expected });
    }
    Ok(())
}

/// Rejects a payload version other than [`crate::PAYLOAD_VERSION`].
pub(crate) fn check_version(what: &'static str, got: u32) -> Result<(), ProtocolError> {
    if got != crate::PAYLOAD_VERSION {
        return Err(ProtocolError::UnsupportedVersion {
            what,
            got,
            expected: crate::PAYLOAD_VERSION,
        });
    }
    Ok(())
}

/// Checks a relay URL (`ws://` or `wss://`, as NIP-01 relays are addressed); the error says why.
pub(crate) fn relay_url(s: &str) -> Result<nostr::RelayUrl, String> {
    nostr::RelayUrl::parse(s).map_err(|e| format!("`{s}` is not a ws:// or wss:// relay URL ({e})"))
}
