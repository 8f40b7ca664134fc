//! Streaming decryption.

use std::io::{self, Read};

use chacha20poly1305::aead::stream::StreamPrimitive;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{
    stream, BlobError, BlobKey, NoncePrefix, Stream, Summary, MAX_CHUNKS, RECORD_SIZE, TAG_SIZE,
};

/// Push-based decryption of a blob arriving in arbitrary pieces (a network stream).
///
/// Feed the blob with [`Decryptor::update`], end with [`Decryptor::finish`]. Each chunk's plaintext
/// is released only after its tag verified. A full record is decrypted as a non-final chunk only
/// once a byte past it has arrived; whatever is buffered when the stream ends is decrypted as the
/// final chunk. Memory stays at about two records (one of ciphertext, one of plaintext) whatever
/// the blob's size.
///
/// Chunks released before an error were authentic, but the blob as a whole must then be
/// rejected (and whatever was made of the released chunks discarded). After an error `update`
/// and `finish` return [`BlobError::Poisoned`].
pub struct Decryptor {
    stream: Stream,
    /// Ciphertext not yet decrypted: at most one record.
    buf: Vec<u8>,
    /// Chunks released so far (all non-final).
    chunks: u64,
    /// Ciphertext bytes received.
    received: u64,
    plaintext_len: u64,
    hasher: Sha256,
    failed: bool,
}

impl Decryptor {
    /// A decryptor for the blob encrypted under `key` and `nonce`.
    pub fn new(key: &BlobKey, nonce: &NoncePrefix) -> Self {
        Decryptor {
            stream: stream(key, nonce),
            buf: Vec::with_capacity(RECORD_SIZE),
            chunks: 0,
            received: 0,
            plaintext_len: 0,
            hasher: Sha256::new(),
            failed: false,
        }
    }

    /// Chunks authenticated and released so far.
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Bytes of plaintext released so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Ciphertext bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Takes the next piece of the blob (any length, empty included) and appends to `out` the
    /// plaintext of every chunk it completes and authenticates, in order.
    ///
    /// # Errors
    ///
    /// [`BlobError::ChunkAuthentication`] for a chunk whose tag fails,
    /// [`BlobError::TrailingData`] when data follows a chunk that authenticates as the final one,
    /// [`BlobError::TooManyChunks`], [`BlobError::Poisoned`] after an earlier error.
    pub fn update(
        &mut self,
        mut data: &[u8],
        out: &mut Vec<Zeroizing<Vec<u8>>>,
    ) -> Result<(), BlobError> {
        if self.failed {
            return Err(BlobError::Poisoned);
        }
        while !data.is_empty() {
            if self.buf.len() == RECORD_SIZE {
                // A full record with data after it: it must be a non-final chunk.
                match self.release_non_final() {
                    Ok(chunk) => out.push(chunk),
                    Err(e) => {
                        self.failed = true;
                        self.buf.clear();
                        return Err(e);
                    }
                }
            }
            let take = (RECORD_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            self.received += take as u64;
            data = &data[take..];
        }
        Ok(())
    }

    fn release_non_final(&mut self) -> Result<Zeroizing<Vec<u8>>, BlobError> {
        let index = self.chunks;
        // The counter's last value is kept for the final chunk, as `aead::stream` does.
        let position = match u32::try_from(index) {
            Ok(p) if p < u32::MAX => p,
            _ => return Err(BlobError::TooManyChunks),
        };
        let mut chunk = Zeroizing::new(Vec::with_capacity(RECORD_SIZE));
        chunk.extend_from_slice(&self.buf);
        if self
            .stream
            .decrypt_in_place(position, false, &[], &mut *chunk)
            .is_err()
        {
            // Name the case where the final chunk is followed by more data.
            let mut as_final = Zeroizing::new(self.buf.clone());
            if self
                .stream
                .decrypt_in_place(position, true, &[], &mut *as_final)
                .is_ok()
            {
                return Err(BlobError::TrailingData { final_index: index });
            }
            return Err(BlobError::ChunkAuthentication { index });
        }
        self.buf.clear();
        self.chunks += 1;
        self.plaintext_len += chunk.len() as u64;
        self.hasher.update(&*chunk);
        Ok(chunk)
    }

    /// Ends the blob: decrypts the buffered remainder as the final chunk, appends its plaintext to
    /// `out` and returns the whole plaintext's length, SHA-256 and chunk count. Only now is the
    /// blob known to be complete: compare the SHA-256 to the one that came with the key.
    ///
    /// # Errors
    ///
    /// [`BlobError::BadLength`] when the blob's length is impossible (empty; a fragment shorter
    /// than a tag; a bare tag after a full record), [`BlobError::Truncated`] when the blob ends
    /// at a chunk boundary after a non-final chunk, [`BlobError::ChunkAuthentication`] when the
    /// final chunk fails (altered, or cut inside the chunk), [`BlobError::Poisoned`].
    pub fn finish(mut self, out: &mut Vec<Zeroizing<Vec<u8>>>) -> Result<Summary, BlobError> {
        if self.failed {
            return Err(BlobError::Poisoned);
        }
        let index = self.chunks;
        if self.buf.len() < TAG_SIZE || (self.buf.len() == TAG_SIZE && index > 0) {
            return Err(BlobError::BadLength { len: self.received });
        }
        // Non-final chunks stop below u32::MAX, so the final chunk's index always fits.
        let position = match u32::try_from(index) {
            Ok(p) if index < MAX_CHUNKS => p,
            _ => return Err(BlobError::TooManyChunks),
        };
        let mut chunk = Zeroizing::new(Vec::with_capacity(RECORD_SIZE));
        chunk.extend_from_slice(&self.buf);
        if self
            .stream
            .decrypt_in_place(position, true, &[], &mut *chunk)
            .is_err()
        {
            // A full record that authenticates as non-final: the blob stops at a chunk boundary.
            if self.buf.len() == RECORD_SIZE && position < u32::MAX {
                let mut as_non_final = Zeroizing::new(std::mem::take(&mut self.buf));
                if self
                    .stream
                    .decrypt_in_place(position, false, &[], &mut *as_non_final)
                    .is_ok()
                {
                    return Err(BlobError::Truncated { chunks: index + 1 });
                }
            }
            return Err(BlobError::ChunkAuthentication { index });
        }
        self.plaintext_len += chunk.len() as u64;
        self.hasher.update(&*chunk);
        out.push(chunk);
        Ok(Summary {
            plaintext_len: self.plaintext_len,
            plaintext_sha256: self.hasher.finalize().into(),
            chunks: index + 1,
        })
    }
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("chunks", &self.chunks)
            .field("received", &self.received)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Reads as the plaintext of the blob its inner reader yields, through a [`Decryptor`].
///
/// Every byte it returns has been authenticated, but the blob is known complete and intact only
/// when it has returned end of file (`Ok(0)`): an error before that (kind `InvalidData`, with the
/// [`BlobError`] inside: `BlobError::from_io_ref(&e)` or
/// `e.get_ref().and_then(|e| e.downcast_ref::<BlobError>())`) means the data read so far must be
/// discarded. Errors of the inner reader pass through unchanged (`Interrupted` is retried).
pub struct DecryptReader<R: Read> {
    inner: R,
    decryptor: Option<Decryptor>,
    /// Plaintext chunks decrypted, not yet returned.
    pending: std::collections::VecDeque<Zeroizing<Vec<u8>>>,
    /// How much of the front pending chunk has been returned.
    pos: usize,
    /// Ciphertext read buffer.
    input: Vec<u8>,
    summary: Option<Summary>,
    failed: bool,
}

impl<R: Read> DecryptReader<R> {
    /// Decrypts the blob `inner` yields, encrypted under `key` and `nonce`.
    pub fn new(key: &BlobKey, nonce: &NoncePrefix, inner: R) -> Self {
        DecryptReader {
            inner,
            decryptor: Some(Decryptor::new(key, nonce)),
            pending: std::collections::VecDeque::new(),
            pos: 0,
            input: vec![0; RECORD_SIZE],
            summary: None,
            failed: false,
        }
    }

    /// Length, SHA-256 and chunk count of the plaintext, once the reader has returned end of
    /// file (`None` before).
    pub fn summary(&self) -> Option<Summary> {
        if self.pending.is_empty() {
            self.summary
        } else {
            None
        }
    }

    /// The inner reader back.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn fail(&mut self, e: BlobError) -> io::Error {
        self.failed = true;
        self.pending.clear();
        self.decryptor = None;
        e.into_io()
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(front) = self.pending.front() {
                let n = out.len().min(front.len() - self.pos);
                out[..n].copy_from_slice(&front[self.pos..self.pos + n]);
                self.pos += n;
                if self.pos == front.len() {
                    self.pending.pop_front();
                    self.pos = 0;
                }
                if n > 0 {
                    return Ok(n);
                }
                continue;
            }
            if self.failed {
                return Err(BlobError::Poisoned.into_io());
            }
            let Some(decryptor) = self.decryptor.as_mut() else {
                return Ok(0);
            };
            let n = match self.inner.read(&mut self.input) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut chunks = Vec::new();
            let result = if n == 0 {
                match self.decryptor.take() {
                    Some(d) => d.finish(&mut chunks).map(|s| self.summary = Some(s)),
                    None => Ok(()),
                }
            } else {
                decryptor.update(&self.input[..n], &mut chunks)
            };
            if let Err(e) = result {
                return Err(self.fail(e));
            }
            self.pending.extend(chunks);
        }
    }
}

impl<R: Read> std::fmt::Debug for DecryptReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptReader")
            .field("decryptor", &self.decryptor)
            .field("summary", &self.summary)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
