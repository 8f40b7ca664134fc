//! Round trips and tampering through the public API.

use std::io::{Cursor, Read};

use cdvm_blob::{
    ciphertext_len, plaintext_len, BlobError, BlobKey, DecryptReader, Decryptor, EncryptReader,
    NoncePrefix, Summary, CHUNK_SIZE, RECORD_SIZE,
};
use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const C: usize = CHUNK_SIZE;
const R: usize = RECORD_SIZE;

fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    rng.fill_bytes(&mut v);
    v
}

/// Reads `inner` in small random pieces, to exercise partial reads.
struct Jittery<R> {
    inner: R,
    rng: StdRng,
}

impl<R: Read> Read for Jittery<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let max = buf.len().min(self.rng.gen_range(1..=3 * C));
        self.inner.read(&mut buf[..max])
    }
}

fn encrypt(key: &BlobKey, nonce: &NoncePrefix, plain: &[u8]) -> (Vec<u8>, Summary) {
    let mut reader = EncryptReader::new(key, nonce, Cursor::new(plain));
    assert!(reader.summary().is_none());
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("encrypt");
    let summary = reader.summary().expect("finished");
    assert_eq!(reader.plaintext_sha256(), Some(summary.plaintext_sha256));
    assert_eq!(reader.plaintext_len(), plain.len() as u64);
    (out, summary)
}

/// Decrypts with `Decryptor`, feeding slices of random sizes.
fn decrypt_push(
    key: &BlobKey,
    nonce: &NoncePrefix,
    blob: &[u8],
    rng: &mut StdRng,
) -> Result<(Vec<u8>, Summary), BlobError> {
    let mut dec = Decryptor::new(key, nonce);
    let mut chunks: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut rest = blob;
    while !rest.is_empty() {
        let n = match rng.gen_range(0..4) {
            0 => rng.gen_range(0..=16),
            1 => rng.gen_range(0..=R + 1),
            2 => R,
            _ => rng.gen_range(0..=3 * R),
        }
        .min(rest.len());
        dec.update(&rest[..n], &mut chunks)?;
        rest = &rest[n..];
    }
    let summary = dec.finish(&mut chunks)?;
    assert_eq!(chunks.len() as u64, summary.chunks);
    let plain: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    Ok((plain, summary))
}

fn decrypt_reader(
    key: &BlobKey,
    nonce: &NoncePrefix,
    blob: &[u8],
    seed: u64,
) -> Result<(Vec<u8>, Summary), BlobError> {
    let inner = Jittery {
        inner: Cursor::new(blob),
        rng: StdRng::seed_from_u64(seed),
    };
    let mut reader = DecryptReader::new(key, nonce, inner);
    let mut out = Vec::new();
    match reader.read_to_end(&mut out) {
        Ok(_) => Ok((out, reader.summary().expect("summary at end"))),
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            let inner = e
                .into_inner()
                .expect("wrapped error")
                .downcast::<BlobError>()
                .expect("a BlobError");
            Err(*inner)
        }
    }
}

fn round_trip(len: usize, rng: &mut StdRng) {
    let key = BlobKey::generate();
    let nonce = NoncePrefix::generate();
    let plain = random_bytes(rng, len);
    let (blob, enc) = encrypt(&key, &nonce, &plain);
    assert_eq!(
        blob.len() as u64,
        ciphertext_len(len as u64).expect("len"),
        "length {len}"
    );
    assert_eq!(plaintext_len(blob.len() as u64).expect("valid"), len as u64);
    let expected_chunks = len.div_ceil(C).max(1) as u64;
    assert_eq!(enc.chunks, expected_chunks);
    assert_eq!(enc.plaintext_len, len as u64);
    assert_eq!(
        enc.plaintext_sha256,
        <[u8; 32]>::from(Sha256::digest(&plain))
    );

    for _ in 0..3 {
        let (back, dec) = decrypt_push(&key, &nonce, &blob, rng).expect("decrypt");
        assert!(back == plain, "push round trip of {len} bytes");
        assert_eq!(dec, enc);
    }
    let (back, dec) = decrypt_reader(&key, &nonce, &blob, rng.gen()).expect("decrypt reader");
    assert!(back == plain, "reader round trip of {len} bytes");
    assert_eq!(dec, enc);

    // The encryptor reading its input in jittery pieces gives the same bytes.
    let jittery = Jittery {
        inner: Cursor::new(&plain),
        rng: StdRng::seed_from_u64(rng.gen()),
    };
    let mut again = Vec::new();
    let mut reader = EncryptReader::new(&key, &nonce, jittery);
    let mut buf = vec![0; 1000];
    loop {
        let n = reader.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        again.extend_from_slice(&buf[..n]);
    }
    assert!(again == blob);
}

#[test]
fn round_trips() {
    let mut rng = StdRng::seed_from_u64(1);
    for len in [0, 1, C - 1, C, C + 1, 2 * C, 3 * C, 3 * C + 5] {
        round_trip(len, &mut rng);
    }
    let big = 5_000_000 + rng.gen_range(0..C);
    round_trip(big, &mut rng);
}

#[test]
fn chunk_layout_matches_the_spec() {
    let key = BlobKey::generate();
    let nonce = NoncePrefix::generate();
    // Exactly one chunk: one final record, not a full one plus an empty one.
    let (blob, s) = encrypt(&key, &nonce, &vec![7; C]);
    assert_eq!((blob.len(), s.chunks), (R, 1));
    let (blob, s) = encrypt(&key, &nonce, &[]);
    assert_eq!((blob.len(), s.chunks), (16, 1));
    let (blob, s) = encrypt(&key, &nonce, &vec![7; 2 * C + 1]);
    assert_eq!((blob.len(), s.chunks), (2 * R + 17, 3));
}

/// The aead crate's own STREAM decryptor reads our blobs (the format is exactly its BE32 STREAM).
#[test]
fn aead_stream_decryptor_agrees() {
    use chacha20poly1305::aead::generic_array::GenericArray;
    use chacha20poly1305::aead::stream::DecryptorBE32;
    use chacha20poly1305::XChaCha20Poly1305;
    let mut rng = StdRng::seed_from_u64(2);
    let key = BlobKey::generate();
    let nonce = NoncePrefix::generate();
    let plain = random_bytes(&mut rng, 3 * C + 100);
    let (blob, _) = encrypt(&key, &nonce, &plain);
    let mut dec = DecryptorBE32::<XChaCha20Poly1305>::new(
        GenericArray::from_slice(key.as_bytes()),
        GenericArray::from_slice(nonce.as_bytes()),
    );
    let mut back = Vec::new();
    let records: Vec<&[u8]> = blob.chunks(R).collect();
    let (last, rest) = records.split_last().expect("records");
    for r in rest {
        back.extend(dec.decrypt_next(*r).expect("non-final"));
    }
    back.extend(dec.decrypt_last(*last).expect("final"));
    assert!(back == plain);
}

struct Fixture {
    key: BlobKey,
    nonce: NoncePrefix,
    plain: Vec<u8>,
    blob: Vec<u8>,
    rng: StdRng,
}

impl Fixture {
    /// Four chunks: three full and a final one of 1000 bytes.
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(3);
        let key = BlobKey::generate();
        let nonce = NoncePrefix::generate();
        let plain = random_bytes(&mut rng, 3 * C + 1000);
        let (blob, _) = encrypt(&key, &nonce, &plain);
        Fixture {
            key,
            nonce,
            plain,
            blob,
            rng,
        }
    }

    fn record(&self, i: usize) -> &[u8] {
        &self.blob[i * R..((i + 1) * R).min(self.blob.len())]
    }

    /// Decrypts `blob` both ways and checks both fail with the same error, which is returned.
    fn fails(&mut self, blob: &[u8]) -> BlobError {
        let push =
            decrypt_push(&self.key, &self.nonce, blob, &mut self.rng).expect_err("must fail");
        let reader = decrypt_reader(&self.key, &self.nonce, blob, 9).expect_err("must fail");
        assert_eq!(format!("{push:?}"), format!("{reader:?}"));
        push
    }
}

#[test]
fn the_fixture_decrypts() {
    let mut f = Fixture::new();
    let (back, _) = decrypt_push(&f.key, &f.nonce, &f.blob, &mut f.rng).expect("intact");
    assert!(back == f.plain);
}

#[test]
fn flipped_byte_in_chunk_2() {
    let mut f = Fixture::new();
    for offset in [0, 1, 12345, C, R - 1] {
        let mut blob = f.blob.clone();
        blob[2 * R + offset] ^= 0x01;
        let err = f.fails(&blob);
        assert!(
            matches!(err, BlobError::ChunkAuthentication { index: 2 }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "chunk 2 of the encrypted blob failed authentication: the blob was altered or the key is wrong"
        );
    }
    // And in the final chunk.
    let mut blob = f.blob.clone();
    let last = blob.len() - 1;
    blob[last] ^= 0x80;
    assert!(matches!(
        f.fails(&blob),
        BlobError::ChunkAuthentication { index: 3 }
    ));
}

#[test]
fn truncated_at_a_chunk_boundary() {
    let mut f = Fixture::new();
    for keep in 1..=3 {
        let blob = f.blob[..keep * R].to_vec();
        let err = f.fails(&blob);
        assert!(
            matches!(err, BlobError::Truncated { chunks } if chunks == keep as u64),
            "{err:?}"
        );
        assert!(err.to_string().contains("truncated"));
    }
}

#[test]
fn truncated_mid_chunk() {
    let mut f = Fixture::new();
    // Cut inside the final chunk, inside a full chunk, and to a fragment shorter than a tag.
    let blob = f.blob[..f.blob.len() - 1].to_vec();
    assert!(matches!(
        f.fails(&blob),
        BlobError::ChunkAuthentication { index: 3 }
    ));
    let blob = f.blob[..R + 5000].to_vec();
    assert!(matches!(
        f.fails(&blob),
        BlobError::ChunkAuthentication { index: 1 }
    ));
    let blob = f.blob[..2 * R + 16].to_vec();
    let err = f.fails(&blob);
    assert!(
        matches!(err, BlobError::BadLength { len } if len == 2 * R as u64 + 16),
        "{err:?}"
    );
    let blob = f.blob[..10].to_vec();
    assert!(matches!(f.fails(&blob), BlobError::BadLength { len: 10 }));
}

#[test]
fn two_chunks_swapped() {
    let mut f = Fixture::new();
    let mut blob = f.record(0).to_vec();
    blob.extend_from_slice(f.record(2));
    blob.extend_from_slice(f.record(1));
    blob.extend_from_slice(f.record(3));
    assert!(matches!(
        f.fails(&blob),
        BlobError::ChunkAuthentication { index: 1 }
    ));
}

#[test]
fn chunk_duplicated() {
    let mut f = Fixture::new();
    let mut blob = f.blob[..2 * R].to_vec();
    blob.extend_from_slice(f.record(1));
    blob.extend_from_slice(&f.blob[2 * R..]);
    assert!(matches!(
        f.fails(&blob),
        BlobError::ChunkAuthentication { index: 2 }
    ));
}

#[test]
fn final_chunk_moved_or_repeated() {
    let mut f = Fixture::new();
    // The final chunk placed early: it is at the wrong position (and the wrong flag).
    let mut blob = f.record(0).to_vec();
    blob.extend_from_slice(f.record(3));
    assert!(matches!(
        f.fails(&blob),
        BlobError::ChunkAuthentication { index: 1 }
    ));
}

#[test]
fn wrong_key_and_wrong_nonce() {
    let mut f = Fixture::new();
    let blob = f.blob.clone();
    let good_key = f.key.clone();
    f.key = BlobKey::generate();
    assert!(matches!(
        f.fails(&blob),
        BlobError::ChunkAuthentication { index: 0 }
    ));
    f.key = good_key;
    let mut nonce = *f.nonce.as_bytes();
    nonce[18] ^= 1;
    f.nonce = NoncePrefix::from_bytes(nonce);
    assert!(matches!(
        f.fails(&blob),
        BlobError::ChunkAuthentication { index: 0 }
    ));
}

#[test]
fn extra_trailing_bytes() {
    let mut f = Fixture::new();
    // After a short final chunk the extra bytes make it fail.
    let mut blob = f.blob.clone();
    blob.extend_from_slice(b"extra");
    assert!(matches!(
        f.fails(&blob),
        BlobError::ChunkAuthentication { index: 3 }
    ));
    // After a full final chunk the final chunk is recognised and the extra data named.
    let (full, _) = encrypt(&f.key, &f.nonce, &f.plain[..2 * C]);
    for extra in [&b"x"[..], &[0u8; 16], &vec![1u8; R + 3]] {
        let mut blob = full.clone();
        blob.extend_from_slice(extra);
        let err = f.fails(&blob);
        assert!(
            matches!(err, BlobError::TrailingData { final_index: 1 }),
            "{err:?}"
        );
    }
    // A whole second blob appended to a one-chunk blob.
    let (one, _) = encrypt(&f.key, &f.nonce, &f.plain[..C]);
    let mut blob = one.clone();
    blob.extend_from_slice(&one);
    assert!(matches!(
        f.fails(&blob),
        BlobError::TrailingData { final_index: 0 }
    ));
}

#[test]
fn empty_ciphertext() {
    let mut f = Fixture::new();
    let err = f.fails(&[]);
    assert!(matches!(err, BlobError::BadLength { len: 0 }), "{err:?}");
}

#[test]
fn decryptor_is_poisoned_after_an_error() {
    let f = Fixture::new();
    let mut blob = f.blob.clone();
    blob[10] ^= 1;
    let mut dec = Decryptor::new(&f.key, &f.nonce);
    let mut out = Vec::new();
    assert!(matches!(
        dec.update(&blob, &mut out),
        Err(BlobError::ChunkAuthentication { index: 0 })
    ));
    assert!(out.is_empty());
    assert!(matches!(
        dec.update(&blob, &mut out),
        Err(BlobError::Poisoned)
    ));
    assert!(matches!(dec.finish(&mut out), Err(BlobError::Poisoned)));
}

#[test]
fn decryptor_releases_only_what_it_knows_is_not_final() {
    let f = Fixture::new();
    let mut dec = Decryptor::new(&f.key, &f.nonce);
    let mut out = Vec::new();
    dec.update(&f.blob[..R], &mut out).expect("first record");
    assert!(out.is_empty(), "a lone full record could be the final one");
    dec.update(&f.blob[R..R + 1], &mut out)
        .expect("one more byte");
    assert_eq!(out.len(), 1);
    assert!(out[0][..] == f.plain[..C]);
    dec.update(&f.blob[R + 1..], &mut out).expect("rest");
    assert_eq!(out.len(), 3);
    let s = dec.finish(&mut out).expect("finish");
    assert_eq!((out.len(), s.chunks), (4, 4));
}

#[test]
fn encrypt_reader_passes_inner_errors_and_stays_failed() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }
    let key = BlobKey::generate();
    let nonce = NoncePrefix::generate();
    let mut reader = EncryptReader::new(&key, &nonce, Failing(C + 10));
    let mut out = Vec::new();
    let err = reader.read_to_end(&mut out).expect_err("inner error");
    assert_eq!(err.to_string(), "disk on fire");
    // Never plaintext: only the first full record came out.
    assert_eq!(out.len(), R);
    assert!(reader.read(&mut [0u8; 10]).is_err());
    assert!(reader.summary().is_none());
}

#[test]
fn io_error_carries_the_blob_error() {
    let f = Fixture::new();
    let mut reader = DecryptReader::new(&f.key, &f.nonce, Cursor::new(&f.blob[..R]));
    let err = reader.read_to_end(&mut Vec::new()).expect_err("truncated");
    let inner = BlobError::from_io_ref(&err).expect("blob error");
    assert!(matches!(inner, BlobError::Truncated { chunks: 1 }));
    assert!(matches!(
        err.get_ref().and_then(|e| e.downcast_ref::<BlobError>()),
        Some(BlobError::Truncated { chunks: 1 })
    ));
}
