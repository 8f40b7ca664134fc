//! Names GCE accepts: instance names, label keys and values, request ids.

use std::time::{SystemTime, UNIX_EPOCH};

use cdvm_provider_api::{JobTag, OwnerTag};
use sha2::{Digest, Sha256};

/// Hex digits of the owner+job hash in an instance name.
const NAME_HASH_HEX: usize = 20;
/// The longest instance name prefix (the IAM condition's, leaving room for the hash).
const MAX_PREFIX: usize = 32;
/// The longest label key or value.
const MAX_LABEL: usize = 63;

fn hash(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// Whether `p` may start instance names: a lowercase letter, then lowercase letters, digits, `-`.
pub fn is_prefix(p: &str) -> bool {
    p.len() <= MAX_PREFIX
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Whether `s` is a valid label key (`key`) or value: lowercase letters, digits, `_`, `-`, at
/// most 63 characters; keys start with a letter.
pub fn is_label(s: &str, key: bool) -> bool {
    s.len() <= MAX_LABEL
        && (!key || s.starts_with(|c: char| c.is_ascii_lowercase()))
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `s` made label-safe: lowercased, other characters replaced by `-`, cut to 63. Not injective:
/// the exact tags travel in metadata too, and labels only narrow server-side filtering.
pub fn label_value(s: &str) -> String {
    s.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(MAX_LABEL)
        .collect()
}

/// The deterministic instance name of a job: `<prefix>` + 20 hex of sha256(owner, job).
pub fn instance_name(prefix: &str, owner: &OwnerTag, job: &JobTag) -> String {
    let h = hash(&[&owner.0, &job.0]);
    let mut name = prefix.to_string();
    name.push_str(&hex::encode(h)[..NAME_HASH_HEX]);
    name
}

fn uuid(bytes: [u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&bytes[..16]);
    // RFC 9562 version 8 (custom) with the RFC variant: a valid, non-nil UUID, as GCE requires.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The `requestId` of a job's insert: the same for every retry and every re-launch of the job, so
/// GCE carries it out once.
pub fn insert_request_id(owner: &OwnerTag, job: &JobTag) -> String {
    uuid(hash(&["insert", &owner.0, &job.0]))
}

/// A fresh `requestId` for one round of `call` on `instance` (a lost delete's id would only
/// replay the lost operation), reused by the retries within the round.
pub fn fresh_request_id(call: &str, instance: &str, round: u32) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
        .to_string();
    uuid(hash(&[call, instance, &round.to_string(), &nanos]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn names_are_deterministic_and_valid() {
        let (o, j) = (OwnerTag("Orch 1".into()), JobTag("ab".repeat(32)));
        let n = instance_name("cdvm-orch-1-", &o, &j);
        assert_eq!(n, instance_name("cdvm-orch-1-", &o, &j));
        assert_eq!(n.len(), "cdvm-orch-1-".len() + 20);
        assert_ne!(
            n,
            instance_name("cdvm-orch-1-", &OwnerTag("Orch 2".into()), &j)
        );
        assert!(n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert!(is_prefix("cdvm-orch-1-") && !is_prefix("1cdvm-") && !is_prefix("Cdvm-"));
        assert!(!is_prefix(&"a".repeat(33)));
    }

    #[test]
    fn labels_are_sanitised() {
        assert_eq!(label_value("Orch 1/EU"), "orch-1-eu");
        assert_eq!(label_value(&"a".repeat(64)).len(), 63);
        assert!(is_label(&label_value("ÄÖÜ weird:tag"), false));
        assert!(is_label("cdvm-owner", true) && !is_label("1key", true) && is_label("", false));
    }

    #[test]
    fn request_ids_are_uuids() {
        let (o, j) = (OwnerTag("o".into()), JobTag("j".into()));
        let id = insert_request_id(&o, &j);
        assert_eq!(id, insert_request_id(&o, &j));
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "version 8: {id}");
        assert!(
            matches!(&id[19..20], "8" | "9" | "a" | "b"),
            "variant: {id}"
        );
        assert_ne!(
            fresh_request_id("delete", "x", 0),
            fresh_request_id("delete", "x", 1)
        );
    }
}
