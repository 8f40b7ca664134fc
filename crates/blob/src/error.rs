//! Errors of blob encryption and decryption.

/// Why a blob could not be encrypted or decrypted.
///
/// Decryption never releases a byte that did not authenticate: whatever the error, the chunks
/// already released were authentic, but the blob as a whole must be rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// A chunk's tag did not verify: a byte was altered, chunks were swapped, reordered or
    /// duplicated, the blob was cut inside its last chunk, or the key or nonce prefix is wrong.
    #[error(
        "chunk {index} of the encrypted blob failed authentication: the blob was altered or the key is wrong"
    )]
    ChunkAuthentication {
        /// The chunk's index, counting from 0.
        index: u64,
    },
    /// The blob ends at a chunk boundary, after a chunk that authenticates but is not the final
    /// one: the rest of the blob is missing (for example an interrupted download).
    #[error(
        "the encrypted blob is truncated: its {chunks} chunks are authentic but the last of them is not the final chunk, so the rest of the blob is missing"
    )]
    Truncated {
        /// The number of complete, authentic chunks present.
        chunks: u64,
    },
    /// Data follows the final chunk.
    #[error(
        "the encrypted blob has extra data after its final chunk (chunk {final_index}): it was altered"
    )]
    TrailingData {
        /// The index of the final chunk, counting from 0.
        final_index: u64,
    },
    /// No blob has this length (empty, shorter than a tag, or a fragment of a tag's length or less
    /// after a full record).
    #[error(
        "an encrypted blob cannot be {len} bytes long: it is empty, truncated or not a blob of this format"
    )]
    BadLength {
        /// The length in bytes.
        len: u64,
    },
    /// A hexadecimal key or nonce prefix is malformed. The text itself is never included.
    #[error("the {what} must be exactly {expected} hexadecimal digits (got {got} characters)")]
    BadHex {
        /// What was being parsed ("blob key", "nonce prefix").
        what: &'static str,
        /// Expected number of hex digits.
        expected: usize,
        /// Number of characters given.
        got: usize,
    },
    /// More chunks than the 32-bit counter allows (2³² chunks, 256 TiB).
    #[error(
        "the blob has more chunks than the 32-bit chunk counter allows (2^32 chunks of 64 KiB)"
    )]
    TooManyChunks,
    /// The decryptor was used again after it had failed.
    #[error("the blob decryptor already failed; the blob must be rejected")]
    Poisoned,
    /// Reading or writing the underlying stream failed.
    #[error("reading the blob failed")]
    Io(#[source] std::io::Error),
}

impl BlobError {
    /// Wraps the error as an [`std::io::Error`] of kind `InvalidData` (or the inner error for
    /// [`BlobError::Io`]); `get_ref().downcast_ref::<BlobError>()` gives it back.
    pub fn into_io(self) -> std::io::Error {
        match self {
            BlobError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        }
    }

    /// The blob error inside an [`std::io::Error`] made by [`BlobError::into_io`], if it is one.
    pub fn from_io_ref(e: &std::io::Error) -> Option<&BlobError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<BlobError>())
    }
}
