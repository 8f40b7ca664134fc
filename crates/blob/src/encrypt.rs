//! Streaming encryption.

use std::io::{self, Read};

use chacha20poly1305::aead::stream::StreamPrimitive;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::{
    stream, BlobError, BlobKey, NoncePrefix, Stream, Summary, CHUNK_SIZE, MAX_CHUNKS, RECORD_SIZE,
};

/// Reads as the encrypted blob of everything its inner reader yields.
///
/// It buffers one chunk at most, plus one byte of look-ahead: a chunk is the final one only if the
/// inner reader has nothing after it, so after a full chunk it reads one more byte to know.
/// The plaintext is hashed as it passes; once the reader returned end of file,
/// [`EncryptReader::summary`] gives its length, SHA-256 and chunk count.
///
/// Errors of the inner reader are passed through (`Interrupted` is retried); a blob of more than
/// 2³² chunks fails with `InvalidInput` wrapping [`BlobError::TooManyChunks`]. After an error the
/// reader only returns errors: the blob read so far must be discarded. The inner reader must be
/// blocking (`WouldBlock` is an error like any other).
pub struct EncryptReader<R: Read> {
    stream: Stream,
    inner: R,
    /// The current record: plaintext while it fills, ciphertext once encrypted in place.
    buf: Zeroizing<Vec<u8>>,
    /// How much of `buf` (as ciphertext) has been returned.
    pos: usize,
    /// The first byte of the next chunk, read ahead.
    lookahead: Zeroizing<Option<u8>>,
    /// Chunks encrypted so far.
    chunks: u64,
    plaintext_len: u64,
    hasher: Sha256,
    /// Set once the final chunk has been encrypted.
    summary: Option<Summary>,
    /// Set when reading or encrypting failed: the output so far is incomplete for good.
    failed: bool,
}

impl<R: Read> EncryptReader<R> {
    /// Encrypts what `inner` yields under `key` and `nonce`. Both must be fresh for every blob.
    pub fn new(key: &BlobKey, nonce: &NoncePrefix, inner: R) -> Self {
        EncryptReader {
            stream: stream(key, nonce),
            inner,
            buf: Zeroizing::new(Vec::with_capacity(RECORD_SIZE)),
            pos: 0,
            lookahead: Zeroizing::new(None),
            chunks: 0,
            plaintext_len: 0,
            hasher: Sha256::new(),
            summary: None,
            failed: false,
        }
    }

    /// Bytes of plaintext read from the inner reader so far (the whole length once finished).
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// SHA-256 of the plaintext, once the final chunk has been encrypted (`None` before).
    pub fn plaintext_sha256(&self) -> Option<[u8; 32]> {
        self.summary.map(|s| s.plaintext_sha256)
    }

    /// Length, SHA-256 and chunk count of the plaintext, once the final chunk has been encrypted
    /// (`None` before). The final chunk is encrypted when the inner reader reports end of file;
    /// reading this reader to its end guarantees it.
    pub fn summary(&self) -> Option<Summary> {
        self.summary
    }

    /// The inner reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn wipe(&mut self) {
        self.lookahead.zeroize();
        self.buf.zeroize();
    }

    /// Reads one byte of plaintext, or `None` at end of file.
    fn read_byte(&mut self) -> io::Result<Option<u8>> {
        let mut byte = [0u8; 1];
        loop {
            match self.inner.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Fills `buf` with the next chunk and encrypts it in place.
    fn next_record(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.pos = 0;
        if let Some(b) = self.lookahead.take() {
            self.buf.push(b);
        }
        // Fill up to a full chunk. Hash and count what arrives (the look-ahead byte was counted
        // when it was read).
        while self.buf.len() < CHUNK_SIZE {
            let start = self.buf.len();
            self.buf.resize(CHUNK_SIZE, 0);
            let n = loop {
                match self.inner.read(&mut self.buf[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(start);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(start + n);
            self.hasher.update(&self.buf[start..start + n]);
            self.plaintext_len += n as u64;
            if n == 0 {
                break;
            }
        }
        let last = if self.buf.len() < CHUNK_SIZE {
            true
        } else {
            match self.read_byte()? {
                Some(b) => {
                    self.hasher.update([b]);
                    self.plaintext_len += 1;
                    *self.lookahead = Some(b);
                    false
                }
                None => true,
            }
        };
        // A non-final chunk may not take the counter's last value (the final chunk needs it).
        let index = self.chunks;
        let allowed = if last {
            index < MAX_CHUNKS
        } else {
            index + 1 < MAX_CHUNKS
        };
        let position = match u32::try_from(index) {
            Ok(p) if allowed => p,
            _ => {
                self.wipe();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    BlobError::TooManyChunks,
                ));
            }
        };
        self.stream
            .encrypt_in_place(position, last, &[], &mut *self.buf)
            .map_err(|_| {
                // Unreachable: chunks are far below XChaCha20-Poly1305's message limit.
                io::Error::new(io::ErrorKind::InvalidInput, BlobError::TooManyChunks)
            })?;
        self.chunks += 1;
        if last {
            let digest = std::mem::take(&mut self.hasher).finalize();
            self.summary = Some(Summary {
                plaintext_len: self.plaintext_len,
                plaintext_sha256: digest.into(),
                chunks: self.chunks,
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for EncryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.buf.len() {
            if self.summary.is_some() {
                return Ok(0);
            }
            if self.failed {
                return Err(io::Error::other(
                    "the blob encryption already failed; its output must be discarded",
                ));
            }
            if let Err(e) = self.next_record() {
                self.failed = true;
                self.wipe();
                self.pos = 0;
                return Err(e);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<R: Read> std::fmt::Debug for EncryptReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptReader")
            .field("chunks", &self.chunks)
            .field("plaintext_len", &self.plaintext_len)
            .field("finished", &self.summary.is_some())
            .finish_non_exhaustive()
    }
}
