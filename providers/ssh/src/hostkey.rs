//! The pinned host key: the remote host must present exactly this key, or nothing is sent to it
//! (fail closed; there is no trust-on-first-use and no known_hosts file).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::SshError;

/// Host key algorithms a pinned key line may name, and what libssh2 should negotiate for each.
const KEY_TYPES: &[(&str, &str)] = &[
    ("ssh-ed25519", "ssh-ed25519"),
    ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"),
    ("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"),
    ("ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"),
    ("ssh-rsa", "rsa-sha2-512,rsa-sha2-256,ssh-rsa"),
];

/// The key the host must present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PinnedKey {
    /// The key type, when the pin names it: the handshake then negotiates only that type, so a
    /// host holding several keys presents the pinned one.
    pub key_type: Option<&'static str>,
    /// SHA-256 of the public key blob.
    pub sha256: [u8; 32],
}

impl PinnedKey {
    /// Reads `known_host_key`: an OpenSSH public key line (`ssh-ed25519 AAAA… comment`, as in
    /// `/etc/ssh/ssh_host_ed25519_key.pub`, or a known_hosts / `ssh-keyscan` line with the host
    /// first), or a fingerprint `SHA256:…` as `ssh-keygen -lf` prints it, optionally preceded by
    /// the key type (`ssh-ed25519 SHA256:…`).
    pub fn parse(value: &str) -> Result<Self, SshError> {
        let bad = |reason: &str| SshError::PinnedKey {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let tokens: Vec<&str> = value.split_whitespace().collect();
        let type_at = |i: usize| -> Option<(&'static str, &'static str)> {
            let t = tokens.get(i)?;
            KEY_TYPES.iter().copied().find(|(name, _)| name == t)
        };
        if let Some(i) = tokens.iter().position(|t| t.starts_with("SHA256:")) {
            let b64 = tokens[i].trim_start_matches("SHA256:");
            let bytes = STANDARD_NO_PAD
                .decode(b64.trim_end_matches('='))
                .map_err(|e| bad(&format!("fingerprint is not base64: {e}")))?;
            let sha256: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("a SHA-256 fingerprint has 32 bytes"))?;
            let key_type = i.checked_sub(1).and_then(type_at).map(|(name, _)| name);
            return Ok(Self { key_type, sha256 });
        }
        for i in 0..tokens.len() {
            let Some((name, _)) = type_at(i) else {
                continue;
            };
            let blob = tokens
                .get(i + 1)
                .ok_or_else(|| bad("the key type is not followed by a key"))?;
            let blob = STANDARD
                .decode(blob)
                .map_err(|e| bad(&format!("key is not base64: {e}")))?;
            // The blob starts with its own type name (RFC 4253 §6.6): it must agree.
            if blob_type(&blob) != Some(name.as_bytes()) {
                return Err(bad("the key blob does not match its type"));
            }
            return Ok(Self {
                key_type: Some(name),
                sha256: Sha256::digest(&blob).into(),
            });
        }
        Err(bad(
            "expected a public key line (ssh-ed25519 AAAA…) or a fingerprint (SHA256:…)",
        ))
    }

    /// libssh2's host key method preference for the pinned type.
    pub fn method_pref(&self) -> Option<&'static str> {
        let name = self.key_type?;
        KEY_TYPES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, pref)| *pref)
    }

    /// `SHA256:…` as OpenSSH prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.sha256)
    }

    /// Whether the presented key blob is this key.
    pub fn matches(&self, blob: &[u8]) -> bool {
        Sha256::digest(blob).as_slice() == self.sha256
    }
}

/// `SHA256:<base64 without padding>` of a SHA-256 digest.
pub(crate) fn fingerprint(sha256: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(sha256))
}

/// The type string at the start of an SSH public key blob.
fn blob_type(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    blob.get(4..4 + len)
}

/// The presented key as `type SHA256:…`, for error messages.
pub(crate) fn describe(blob: &[u8]) -> String {
    let kind = blob_type(blob)
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_else(|| "unknown".into());
    format!("{kind} {}", fingerprint(&Sha256::digest(blob)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    // A real ed25519 host key (generated for this test) and its `ssh-keygen -lf` fingerprint.
    const LINE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJCHG0gnXryYstgbgbpAy8ydYNgxN1RG/VB+wp3rerXV root@host";
    const FP: &str = "SHA256:ry5mCuibbxb6RA6LvcbjvLPSzZHU+enTAqPQrIJKa1A";

    fn blob() -> Vec<u8> {
        STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIJCHG0gnXryYstgbgbpAy8ydYNgxN1RG/VB+wp3rerXV")
            .unwrap()
    }

    #[test]
    fn a_public_key_line_pins_its_type_and_hash() {
        let pin = PinnedKey::parse(LINE).unwrap();
        assert_eq!(pin.key_type, Some("ssh-ed25519"));
        assert_eq!(pin.method_pref(), Some("ssh-ed25519"));
        assert!(pin.matches(&blob()));
        assert_eq!(pin.fingerprint(), FP);
        assert_eq!(describe(&blob()), format!("ssh-ed25519 {FP}"));
    }

    #[test]
    fn a_known_hosts_line_and_a_fingerprint_pin_the_same_key() {
        let known_hosts = format!("[10.0.0.5]:2222 {LINE}");
        assert_eq!(
            PinnedKey::parse(&known_hosts).unwrap(),
            PinnedKey::parse(LINE).unwrap()
        );
        let fp = PinnedKey::parse(FP).unwrap();
        assert_eq!(fp.key_type, None);
        assert!(fp.matches(&blob()));
        let typed = PinnedKey::parse(&format!("ssh-ed25519 {FP}")).unwrap();
        assert_eq!(typed, PinnedKey::parse(LINE).unwrap());
    }

    #[test]
    fn another_key_does_not_match() {
        let pin = PinnedKey::parse(LINE).unwrap();
        let mut other = blob();
        let last = other.len() - 1;
        other[last] ^= 1;
        assert!(!pin.matches(&other));
    }

    #[test]
    fn malformed_pins_are_refused() {
        for value in [
            "",
            "AAAAC3NzaC1lZDI1NTE5",
            "ssh-ed25519",
            "ssh-ed25519 !!!",
            "SHA256:abc",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIJCHG0gnXryYstgbgbpAy8ydYNgxN1RG/VB+wp3rerXV",
        ] {
            assert!(
                matches!(PinnedKey::parse(value), Err(SshError::PinnedKey { .. })),
                "{value:?}"
            );
        }
    }
}
