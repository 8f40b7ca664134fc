//! Known-answer vectors (tests/vectors.json), generated once by this test with
//! `CDVM_BLOB_WRITE_VECTORS=1` and checked independently by tests/vectors_check.py.

use std::io::{Cursor, Read};

use cdvm_blob::{BlobKey, DecryptReader, EncryptReader, NoncePrefix, ALGORITHM};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn key() -> BlobKey {
    BlobKey::from_bytes(std::array::from_fn(|i| i as u8)) // 00 01 .. 1f
}

fn nonce() -> NoncePrefix {
    NoncePrefix::from_bytes(std::array::from_fn(|i| 0xa0 + i as u8)) // a0 a1 .. b2
}

/// 70000 bytes, byte i = i mod 251.
fn pattern() -> Vec<u8> {
    (0..70000u32).map(|i| (i % 251) as u8).collect()
}

fn encrypt(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    EncryptReader::new(&key(), &nonce(), Cursor::new(plain))
        .read_to_end(&mut out)
        .expect("encrypt");
    out
}

fn compute() -> Value {
    let big = encrypt(&pattern());
    json!({
        "algorithm": ALGORITHM,
        "key": hex::encode(key().as_bytes()),
        "nonce_prefix": nonce().to_hex(),
        "vectors": [
            {
                "name": "empty",
                "plaintext_hex": "",
                "ciphertext_hex": hex::encode(encrypt(b"")),
            },
            {
                "name": "hello",
                "plaintext_hex": hex::encode(b"hello, blob"),
                "ciphertext_hex": hex::encode(encrypt(b"hello, blob")),
            },
            {
                "name": "pattern-70000",
                "plaintext_pattern": "70000 bytes, byte i = i mod 251",
                "plaintext_len": 70000,
                "plaintext_sha256": hex::encode(Sha256::digest(pattern())),
                "ciphertext_len": big.len(),
                "ciphertext_sha256": hex::encode(Sha256::digest(&big)),
                "ciphertext_first64_hex": hex::encode(&big[..64]),
                "ciphertext_last64_hex": hex::encode(&big[big.len() - 64..]),
            }
        ]
    })
}

#[test]
fn known_answers() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors.json");
    let computed = compute();
    if std::env::var_os("CDVM_BLOB_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&computed).expect("json") + "\n";
        std::fs::write(&path, text).expect("write vectors");
    }
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("vectors.json")).expect("json");
    assert_eq!(stored, computed);

    // The stored ciphertexts decrypt back.
    for (i, plain) in [(0, &b""[..]), (1, &b"hello, blob"[..])] {
        let ct = hex::decode(
            stored["vectors"][i]["ciphertext_hex"]
                .as_str()
                .expect("hex"),
        )
        .expect("hex");
        let mut back = Vec::new();
        DecryptReader::new(&key(), &nonce(), Cursor::new(ct))
            .read_to_end(&mut back)
            .expect("decrypt");
        assert_eq!(back, plain);
    }
}
