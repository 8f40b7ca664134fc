#!/usr/bin/env python3
"""Independent check of tests/vectors.json (not run by CI).

Re-implements the blob format from its description (crate docs of cdvm-blob) with the
`cryptography` package's IETF ChaCha20-Poly1305 and a pure-Python HChaCha20 (XChaCha20 =
HChaCha20 subkey + ChaCha20-Poly1305 with nonce 00000000 || last 8 bytes of the 24-byte nonce).

Run: python3 crates/blob/tests/vectors_check.py
"""
import hashlib
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

CHUNK = 65536


def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 7)


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """draft-irtf-cfrg-xchacha-03 section 2.2."""
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _qr(s, 0, 4, 8, 12); _qr(s, 1, 5, 9, 13); _qr(s, 2, 6, 10, 14); _qr(s, 3, 7, 11, 15)
        _qr(s, 0, 5, 10, 15); _qr(s, 1, 6, 11, 12); _qr(s, 2, 7, 8, 13); _qr(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha_encrypt(key: bytes, nonce24: bytes, plaintext: bytes) -> bytes:
    subkey = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(subkey).encrypt(b"\0\0\0\0" + nonce24[16:], plaintext, None)


def encrypt_blob(key: bytes, prefix: bytes, plaintext: bytes) -> bytes:
    assert len(key) == 32 and len(prefix) == 19
    chunks = [plaintext[i:i + CHUNK] for i in range(0, len(plaintext), CHUNK)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        last = 1 if i == len(chunks) - 1 else 0
        nonce = prefix + struct.pack(">I", i) + bytes([last])
        out.append(xchacha_encrypt(key, nonce, chunk))
    return b"".join(out)


def main() -> int:
    # HChaCha20 test vector, draft-irtf-cfrg-xchacha-03 section 2.2.1.
    k = bytes(range(32))
    n = bytes.fromhex("000000090000004a0000000031415927")
    assert hchacha20(k, n).hex() == (
        "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
    ), "HChaCha20 self-test"
    # XChaCha20-Poly1305 test vector, draft-irtf-cfrg-xchacha-03 appendix A.3.1.
    pt = bytes.fromhex(
        "4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
        "73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
        "6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
        "637265656e20776f756c642062652069742e")
    aad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    key = bytes.fromhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
    nonce = bytes.fromhex("404142434445464748494a4b4c4d4e4f5051525354555657")
    ct = ChaCha20Poly1305(hchacha20(key, nonce[:16])).encrypt(b"\0\0\0\0" + nonce[16:], pt, aad)
    assert ct[-16:].hex() == "c0875924c1c7987947deafd8780acf49", "XChaCha20-Poly1305 self-test"

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
    with open(path) as f:
        data = json.load(f)
    assert data["algorithm"] == "xchacha20poly1305-stream64k"
    key = bytes.fromhex(data["key"])
    prefix = bytes.fromhex(data["nonce_prefix"])
    failures = 0
    for v in data["vectors"]:
        if "plaintext_hex" in v:
            got = encrypt_blob(key, prefix, bytes.fromhex(v["plaintext_hex"]))
            ok = got.hex() == v["ciphertext_hex"]
        else:
            plain = bytes(i % 251 for i in range(v["plaintext_len"]))
            got = encrypt_blob(key, prefix, plain)
            ok = (hashlib.sha256(plain).hexdigest() == v["plaintext_sha256"]
                  and len(got) == v["ciphertext_len"]
                  and hashlib.sha256(got).hexdigest() == v["ciphertext_sha256"]
                  and got[:64].hex() == v["ciphertext_first64_hex"]
                  and got[-64:].hex() == v["ciphertext_last64_hex"])
        print(("ok   " if ok else "FAIL ") + v["name"])
        failures += not ok
    print(f"{len(data['vectors']) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
