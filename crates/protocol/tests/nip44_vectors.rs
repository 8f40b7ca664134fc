//! NIP-44 v2 conformance of the pinned nostr crate against paulmillr/nip44's official vectors
//! (tests/fixtures/nip44.vectors.json, sha256 269ed0f6…, the checksum printed in NIP-44).
//! <https://github.com/nostr-protocol/nips/blob/master/44.md>
//!
//! Every group asserts how many vectors it ran, so an emptied or renamed file cannot pass.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use cdvm_protocol::nostr::nips::nip44::{self, v2};
use cdvm_protocol::nostr::secp256k1::rand::{self, RngCore};
use cdvm_protocol::nostr::{Keys, PublicKey, SecretKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

const VECTORS: &str = include_str!("fixtures/nip44.vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("vector file is JSON")
}

fn group<'a>(v: &'a Value, path: &[&str]) -> &'a Vec<Value> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_array()
        .unwrap_or_else(|| panic!("{path:?} is not an array"))
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("field {k} missing in {v}"))
}

fn hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).expect("32-byte hex");
    out
}

/// An "RNG" that yields the vector's nonce: nostr draws exactly the 32 nonce bytes from it.
struct FixedNonce([u8; 32]);

impl RngCore for FixedNonce {
    fn next_u32(&mut self) -> u32 {
        unreachable!("NIP-44 only calls fill_bytes")
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!("NIP-44 only calls fill_bytes")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert_eq!(dest.len(), 32, "NIP-44 v2 draws a 32-byte nonce");
        dest.copy_from_slice(&self.0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

fn conv_key(hex: &str) -> v2::ConversationKey {
    v2::ConversationKey::new(hex32(hex))
}

/// Decrypt from a conversation key. The vectors give conversation keys, not key pairs, so the
/// key-pair API `nip44::decrypt` cannot be used; this mirrors its steps (version byte, base64)
/// in front of `v2::decrypt_to_bytes`, which skips the version check.
fn decrypt_with_conv_key(ck: &v2::ConversationKey, payload: &str) -> Result<Vec<u8>, String> {
    if payload.starts_with('#') {
        return Err("unsupported version marker '#'".into());
    }
    let raw = B64.decode(payload).map_err(|e| e.to_string())?;
    match raw.first() {
        Some(2) => {}
        Some(v) => return Err(format!("unknown version {v}")),
        None => return Err("empty payload".into()),
    }
    v2::decrypt_to_bytes(ck, &raw).map_err(|e| e.to_string())
}

#[test]
fn vector_file_is_the_published_one() {
    assert_eq!(
        hex::encode(Sha256::digest(VECTORS.as_bytes())),
        "269ed0f69e4c192512cc779e78c555090cebc7c785b609e338a62afc3ce25040"
    );
}

#[test]
fn valid_get_conversation_key() {
    let v = vectors();
    let g = group(&v, &["v2", "valid", "get_conversation_key"]);
    let mut n = 0;
    for t in g {
        let sk = SecretKey::from_hex(s(t, "sec1")).expect("sec1");
        let pk = PublicKey::from_hex(s(t, "pub2")).expect("pub2");
        let ck = v2::ConversationKey::derive(&sk, &pk).expect("derive");
        assert_eq!(hex::encode(ck.as_bytes()), s(t, "conversation_key"), "{t}");
        n += 1;
    }
    assert_eq!(n, 35);
}

// v2.valid.get_message_keys (32 vectors) is NOT run: nostr 0.44.8 keeps `get_message_keys` and
// `MessageKeys` private, and no public function exposes the ChaCha key/nonce or HMAC key. The
// encrypt_decrypt vectors below exercise the same HKDF-expand path end to end.
#[test]
fn get_message_keys_group_is_present_but_unreachable() {
    let v = vectors();
    assert_eq!(
        group(&v, &["v2", "valid", "get_message_keys", "keys"]).len(),
        32
    );
}

/// `calc_padded_len` is private too, but observable: a NIP-44 v2 payload is
/// version(1) + nonce(32) + u16 length(2) + padded plaintext + HMAC(32) bytes.
#[test]
fn valid_calc_padded_len_via_payload_length() {
    let v = vectors();
    let g = group(&v, &["v2", "valid", "calc_padded_len"]);
    let ck = v2::ConversationKey::new([7u8; 32]);
    let mut n = 0;
    let mut skipped = 0;
    for t in g {
        let len = t[0].as_u64().expect("len") as usize;
        let padded = t[1].as_u64().expect("padded") as usize;
        if len > 65_408 {
            // nostr 0.44.8 refuses plaintext above 65,408 bytes (its 2-byte-prefix codec keeps
            // room for base64 inside a relay frame; DESIGN §9), so [65536, 65536] cannot be
            // observed. It is also an invalid *encrypt* length in this file (see below).
            skipped += 1;
            continue;
        }
        let payload =
            v2::encrypt_to_bytes_with_rng(&mut FixedNonce([1; 32]), &ck, &vec![b'a'; len])
                .expect("encrypt");
        assert_eq!(payload.len(), 1 + 32 + 2 + padded + 32, "len {len}");
        n += 1;
    }
    assert_eq!((n, skipped), (23, 1));
}

#[test]
fn valid_encrypt_decrypt() {
    let v = vectors();
    let g = group(&v, &["v2", "valid", "encrypt_decrypt"]);
    let mut n = 0;
    for t in g {
        let k1 = Keys::parse(s(t, "sec1")).expect("sec1");
        let k2 = Keys::parse(s(t, "sec2")).expect("sec2");
        let ck = v2::ConversationKey::derive(k1.secret_key(), &k2.public_key()).expect("ck");
        assert_eq!(hex::encode(ck.as_bytes()), s(t, "conversation_key"));

        let plaintext = s(t, "plaintext");
        let mut rng = FixedNonce(hex32(s(t, "nonce")));
        let payload =
            v2::encrypt_to_bytes_with_rng(&mut rng, &ck, plaintext.as_bytes()).expect("encrypt");
        assert_eq!(B64.encode(&payload), s(t, "payload"), "{t}");

        // Same through the key-pair API, both directions (the conversation key is symmetric).
        let mut rng = FixedNonce(hex32(s(t, "nonce")));
        let via_keys = nip44::encrypt_with_rng(
            &mut rng,
            k1.secret_key(),
            &k2.public_key(),
            plaintext,
            nip44::Version::V2,
        )
        .expect("encrypt");
        assert_eq!(via_keys, s(t, "payload"));
        let back =
            nip44::decrypt(k2.secret_key(), &k1.public_key(), s(t, "payload")).expect("decrypt");
        assert_eq!(back, plaintext);
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn valid_encrypt_decrypt_long_msg() {
    let v = vectors();
    let g = group(&v, &["v2", "valid", "encrypt_decrypt_long_msg"]);
    let mut n = 0;
    for t in g {
        let repeat = t["repeat"].as_u64().expect("repeat") as usize;
        let plaintext = s(t, "pattern").repeat(repeat);
        assert_eq!(
            hex::encode(Sha256::digest(plaintext.as_bytes())),
            s(t, "plaintext_sha256")
        );
        let ck = conv_key(s(t, "conversation_key"));
        let mut rng = FixedNonce(hex32(s(t, "nonce")));
        let res = v2::encrypt_to_bytes_with_rng(&mut rng, &ck, plaintext.as_bytes());
        if plaintext.len() <= 65_408 {
            let payload = res.expect("encrypt");
            assert_eq!(
                hex::encode(Sha256::digest(B64.encode(&payload).as_bytes())),
                s(t, "payload_sha256")
            );
            let back = decrypt_with_conv_key(&ck, &B64.encode(&payload)).expect("decrypt");
            assert_eq!(back, plaintext.as_bytes());
        } else {
            // All three vectors are 65,532–65,535 bytes: valid NIP-44 with the 2-byte prefix, but
            // above nostr 0.44.8's 65,408-byte cap, so the payload_sha256 cannot be reproduced
            // with the pinned library. We require the refusal to be clean, not a wrong output.
            // Our protocol stays far below (MAX_INPUT_PLAINTEXT, MAX_RESULT_PLAINTEXT = 32 KiB).
            assert!(res.is_err(), "nostr 0.44.8 caps plaintext at 65,408 bytes");
        }
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn invalid_decrypt() {
    let v = vectors();
    let g = group(&v, &["v2", "invalid", "decrypt"]);
    let mut n = 0;
    for t in g {
        let ck = conv_key(s(t, "conversation_key"));
        let r = decrypt_with_conv_key(&ck, s(t, "payload"));
        assert!(r.is_err(), "must fail ({}): {t}", s(t, "note"));
        n += 1;
    }
    assert_eq!(n, 12);
}

#[test]
fn invalid_get_conversation_key() {
    let v = vectors();
    let g = group(&v, &["v2", "invalid", "get_conversation_key"]);
    let mut n = 0;
    for t in g {
        // Either the secret key, the public key or the ECDH must be rejected.
        let r = SecretKey::from_hex(s(t, "sec1")).ok().and_then(|sk| {
            PublicKey::from_hex(s(t, "pub2"))
                .ok()
                .and_then(|pk| v2::ConversationKey::derive(&sk, &pk).ok())
        });
        assert!(r.is_none(), "must fail ({}): {t}", s(t, "note"));
        n += 1;
    }
    assert_eq!(n, 8);
}

/// The vector file lists [0, 65536, 100000, 10000000] as invalid plaintext lengths. Since
/// nostr-protocol/nips 733a0471 (2026-06-28, PR #1907) NIP-44 allows up to 2^32-1 bytes with a
/// 6-byte length prefix, so 65536+ is valid under the current text; nostr 0.44.8 implements only
/// the 2-byte prefix and refuses them, which is what this (older) file expects.
#[test]
fn invalid_encrypt_msg_lengths() {
    let v = vectors();
    let g = group(&v, &["v2", "invalid", "encrypt_msg_lengths"]);
    let ck = v2::ConversationKey::new([9u8; 32]);
    let mut lens = Vec::new();
    for t in g {
        let len = t.as_u64().expect("len") as usize;
        let r = v2::encrypt_to_bytes_with_rng(&mut FixedNonce([2; 32]), &ck, &vec![b'z'; len]);
        assert!(r.is_err(), "length {len} must be refused");
        lens.push(len);
    }
    assert_eq!(lens, [0, 65_536, 100_000, 10_000_000]);
}
