//! Encryption of large confidential inputs and results that travel out of band (on a
//! [Blossom](https://github.com/hzrd149/blossom) server), and deterministic tarballs of folders.
//!
//! The sender encrypts the data under a fresh random [`BlobKey`] and [`NoncePrefix`]; the key,
//! the nonce prefix and the hashes travel inside an already-encrypted Nostr message, the
//! ciphertext is uploaded as an opaque blob. Both sides stream: neither ever holds more than about
//! two chunks of the data in memory.
//!
//! # Format: `xchacha20poly1305-stream64k`
//!
//! This is the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, "Online
//! Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance" (CRYPTO 2015,
//! <https://eprint.iacr.org/2015/189>), exactly as RustCrypto's
//! `aead::stream::EncryptorBE32`/`DecryptorBE32` (`StreamBE32`) implement it, over
//! XChaCha20-Poly1305 (the IETF ChaCha20-Poly1305 AEAD of RFC 8439 with the HChaCha20-derived
//! subkey of draft-irtf-cfrg-xchacha, 24-byte nonce, 16-byte tag).
//!
//! * **Key**: 32 random bytes ([`KEY_SIZE`]), fresh for every blob.
//! * **Nonce prefix**: 19 random bytes ([`NONCE_PREFIX_SIZE`]), fresh for every blob.
//! * **Chunks**: the plaintext is cut into chunks of [`CHUNK_SIZE`] = 65536 bytes; the last chunk
//!   holds the remainder, 0 to 65536 bytes. The number of chunks is
//!   `max(1, ceil(len / 65536))`: an empty plaintext is one empty final chunk, and a plaintext of
//!   exactly 65536 bytes is one final chunk of 65536 bytes (never a full chunk followed by an
//!   empty one). At most 2³² chunks (the counter is 32 bits).
//! * **Nonce of chunk `i`** (counting from 0), 24 bytes:
//!
//!   ```text
//!   bytes  0..19  nonce prefix (19 bytes)
//!   bytes 19..23  i as an unsigned 32-bit big-endian integer
//!   byte  23      last-chunk flag: 0x01 for the final chunk, 0x00 for every other chunk
//!   ```
//!
//! * **Chunk ciphertext**: XChaCha20-Poly1305 encryption of the chunk under the key and that
//!   nonce, with empty associated data: the chunk's ciphertext (same length as the chunk)
//!   followed by its 16-byte Poly1305 tag ([`TAG_SIZE`]). Every chunk but the last is therefore a
//!   record of exactly 65552 bytes ([`RECORD_SIZE`]); the last is 16 to 65552 bytes.
//! * **Blob** = the concatenation of the records in order. There is no header, no length field
//!   and no trailer: the key and nonce prefix travel elsewhere.
//!
//! The counter stops reordering, swapping and duplicating chunks; the last-chunk flag stops
//! truncation at a chunk boundary and appending; the tag stops every altered byte. A reader
//! releases a chunk's plaintext only after its tag checked, and releases the final chunk only
//! once the end of the blob has been seen (so a stream that stops early never looks complete).
//!
//! # Modules
//!
//! * [`EncryptReader`]: wraps any [`std::io::Read`] of plaintext and reads as the blob, hashing
//!   the plaintext in the same pass.
//! * [`Decryptor`]: push-based decryption for network streams; [`DecryptReader`]: the same over a
//!   [`std::io::Read`].
//! * [`tarball`]: deterministic packing of a folder, and a streaming, refusing unpacker.

#![deny(missing_docs)]

mod decrypt;
mod encrypt;
mod error;
mod keys;
pub mod tarball;

pub use decrypt::{DecryptReader, Decryptor};
pub use encrypt::EncryptReader;
pub use error::BlobError;
pub use keys::{BlobKey, NoncePrefix};

/// The algorithm identifier, as it appears next to the key in the message that carries it.
pub const ALGORITHM: &str = "xchacha20poly1305-stream64k";

/// Plaintext bytes in every chunk but the last.
pub const CHUNK_SIZE: usize = 65536;

/// Bytes of the Poly1305 tag after each chunk's ciphertext.
pub const TAG_SIZE: usize = 16;

/// Bytes of one full record: a full chunk's ciphertext and its tag.
pub const RECORD_SIZE: usize = CHUNK_SIZE + TAG_SIZE;

/// Bytes of the random nonce prefix (24-byte XChaCha nonce less 4 counter bytes and 1 flag byte).
pub const NONCE_PREFIX_SIZE: usize = 19;

/// Bytes of a key.
pub const KEY_SIZE: usize = 32;

/// The most chunks one blob can have: the 32-bit counter's range.
pub const MAX_CHUNKS: u64 = 1 << 32;

/// The outcome of encrypting or decrypting a whole blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Bytes of plaintext.
    pub plaintext_len: u64,
    /// SHA-256 of the plaintext.
    pub plaintext_sha256: [u8; 32],
    /// Number of chunks (at least 1).
    pub chunks: u64,
}

/// The number of chunks a plaintext of `plaintext_len` bytes is cut into (at least 1).
fn chunk_count(plaintext_len: u64) -> u64 {
    plaintext_len.div_ceil(CHUNK_SIZE as u64).max(1)
}

/// The length of the blob that encrypts `plaintext_len` bytes, or `None` when that would need
/// more than [`MAX_CHUNKS`] chunks or overflow a `u64`.
pub fn ciphertext_len(plaintext_len: u64) -> Option<u64> {
    let chunks = chunk_count(plaintext_len);
    if chunks > MAX_CHUNKS {
        return None;
    }
    plaintext_len.checked_add(chunks.checked_mul(TAG_SIZE as u64)?)
}

/// The length of the plaintext inside a blob of `ciphertext_len` bytes.
///
/// # Errors
///
/// [`BlobError::BadLength`] when no plaintext encrypts to that length (0 to 15 bytes; or a
/// trailing fragment of 16 bytes or fewer after a full record), [`BlobError::TooManyChunks`]
/// when it would need more than [`MAX_CHUNKS`] chunks.
pub fn plaintext_len(ciphertext_len: u64) -> Result<u64, BlobError> {
    let record = RECORD_SIZE as u64;
    let tag = TAG_SIZE as u64;
    let full = ciphertext_len / record;
    let rem = ciphertext_len % record;
    let (chunks, last_plain) = if rem == 0 {
        if full == 0 {
            return Err(BlobError::BadLength {
                len: ciphertext_len,
            });
        }
        (full, CHUNK_SIZE as u64)
    } else {
        // A final record shorter than a tag is impossible; an empty final chunk (a bare tag) only
        // exists when it is the only chunk (the empty plaintext).
        if rem < tag || (rem == tag && full > 0) {
            return Err(BlobError::BadLength {
                len: ciphertext_len,
            });
        }
        (full + 1, rem - tag)
    };
    if chunks > MAX_CHUNKS {
        return Err(BlobError::TooManyChunks);
    }
    Ok((chunks - 1) * CHUNK_SIZE as u64 + last_plain)
}

type Aead = chacha20poly1305::XChaCha20Poly1305;
type Stream = chacha20poly1305::aead::stream::StreamBE32<Aead>;

/// The STREAM primitive for a key and nonce prefix: stateless, chunk index and flag given per call.
fn stream(key: &BlobKey, nonce: &NoncePrefix) -> Stream {
    use chacha20poly1305::aead::stream::NewStream;
    use chacha20poly1305::aead::KeyInit;
    let aead = Aead::new(chacha20poly1305::Key::from_slice(key.as_bytes()));
    Stream::from_aead(
        aead,
        chacha20poly1305::aead::generic_array::GenericArray::from_slice(nonce.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        let c = CHUNK_SIZE as u64;
        for p in [
            0,
            1,
            c - 1,
            c,
            c + 1,
            2 * c,
            2 * c + 1,
            3 * c + 5,
            (MAX_CHUNKS - 1) * c + 1,
            MAX_CHUNKS * c,
        ] {
            let n = ciphertext_len(p).expect("representable");
            assert_eq!(plaintext_len(n).expect("valid length"), p, "plaintext {p}");
        }
        assert_eq!(ciphertext_len(0), Some(16));
        assert_eq!(ciphertext_len(c), Some(c + 16));
        assert_eq!(ciphertext_len(c + 1), Some(c + 1 + 32));
        assert_eq!(ciphertext_len(MAX_CHUNKS * c + 1), None);
        assert_eq!(ciphertext_len(u64::MAX), None);
    }

    #[test]
    fn impossible_lengths() {
        let r = RECORD_SIZE as u64;
        for n in [0, 1, 15, r + 1, r + 16, 2 * r + 16] {
            assert!(
                matches!(plaintext_len(n), Err(BlobError::BadLength { len }) if len == n),
                "{n}"
            );
        }
        assert!(matches!(plaintext_len(16), Ok(0)));
        assert!(matches!(plaintext_len(r + 17), Ok(65537)));
        assert!(matches!(
            plaintext_len((MAX_CHUNKS + 1) * r),
            Err(BlobError::TooManyChunks)
        ));
    }
}
