//! Errors, written to be shown to a user as they are.

use std::fmt;

use url::Url;

/// A boxed error kept as the `source` of a [`BlossomError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to a Blossom server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlossomError {
    /// The URL is not `https://` (or plain `http://` to loopback when the policy allows it).
    #[error("refusing insecure or unsupported URL {url}: only https:// is allowed (http:// only to loopback when explicitly enabled)")]
    InsecureUrl {
        /// The URL refused.
        url: String,
    },
    /// A value that must be a sha256 (64 lowercase hex digits) is not one.
    #[error("{value:?} is not a sha256 (64 lowercase hex digits)")]
    InvalidHash {
        /// The value given.
        value: String,
    },
    /// The server could not be reached, or the connection failed before an answer.
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The connection broke while the blob was being received.
    #[error("download from {url} interrupted after {received} bytes: {source}")]
    Interrupted {
        /// The URL being read.
        url: String,
        /// Bytes received before the failure.
        received: u64,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The server answered with a status we do not accept.
    #[error("{url} answered {status}{}", fmt_reason(.reason))]
    Status {
        /// The URL asked.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The server's `X-Reason` header (BUD-01), or the `message` of its JSON error body.
        reason: Option<String>,
    },
    /// The blob is (or is announced as) larger than allowed.
    #[error("blob at {url} is {size} bytes or more, larger than the {max} bytes allowed")]
    TooLarge {
        /// The URL.
        url: String,
        /// Bytes announced or received so far.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The server announced a Content-Length other than the expected size.
    #[error("{url} announces {announced} bytes but the blob should be {expected} bytes")]
    SizeMismatch {
        /// The URL.
        url: String,
        /// The Content-Length.
        announced: u64,
        /// The size expected.
        expected: u64,
    },
    /// The body ended before the expected size.
    #[error("blob at {url} ended after {received} of {expected} bytes")]
    Truncated {
        /// The URL.
        url: String,
        /// Bytes received.
        received: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// The bytes received do not hash to the expected sha256.
    #[error(
        "blob at {url} has sha256 {actual}, expected {expected}: the server sent different bytes"
    )]
    HashMismatch {
        /// The URL.
        url: String,
        /// The sha256 asked for.
        expected: String,
        /// The sha256 of what arrived.
        actual: String,
    },
    /// The upload answer is not a usable blob descriptor.
    #[error("{url} answered the upload with an unusable blob descriptor: {detail}")]
    BadDescriptor {
        /// The upload URL.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The descriptor names a different blob than the one uploaded (server misbehaviour).
    #[error("{url} claims to have stored sha256 {got_sha256} ({got_size} bytes) but we uploaded {expected_sha256} ({expected_size} bytes)")]
    DescriptorMismatch {
        /// The upload URL.
        url: String,
        /// The sha256 uploaded.
        expected_sha256: String,
        /// The sha256 in the descriptor.
        got_sha256: String,
        /// The size uploaded.
        expected_size: u64,
        /// The size in the descriptor.
        got_size: u64,
    },
    /// The server cut the connection while the upload body was going out. Servers often do
    /// this right after refusing an upload (auth, size) without reading the body, and the
    /// refusal itself is then lost.
    #[error("{url} closed the connection after {sent} of {size} bytes of the upload; it may have refused it (authorization, size) without the answer getting through: {source}")]
    UploadInterrupted {
        /// The upload URL.
        url: String,
        /// Bytes handed to the connection before it failed.
        sent: u64,
        /// Bytes in the blob.
        size: u64,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The upload body produced more or fewer bytes than declared, or failed to read.
    #[error("upload body for {url} failed: {source}")]
    Body {
        /// The upload URL.
        url: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Building or signing the authorization event failed.
    #[error("cannot build the Blossom authorization event: {source}")]
    Auth {
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The download sink refused a chunk.
    #[error("writing the blob from {url} failed: {source}")]
    Sink {
        /// The URL being read.
        url: String,
        /// The sink's error.
        #[source]
        source: BoxError,
    },
    /// [`crate::BlobReader::next_chunk`] was called again after it had failed.
    #[error("download from {url} already failed")]
    ReaderFailed {
        /// The URL.
        url: String,
    },
    /// The server refused our BUD-11 token, and the upload without a token failed too: both
    /// reasons are kept, since either may be the one the operator has to fix.
    #[error("{url} refused the upload with our token ({token}) and without one ({anonymous})")]
    TokenAndAnonymousFailed {
        /// The server.
        url: String,
        /// Why the upload with the token failed.
        token: Box<BlossomError>,
        /// Why the anonymous upload failed.
        #[source]
        anonymous: Box<BlossomError>,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {source}")]
    Setup {
        /// Why.
        #[source]
        source: BoxError,
    },
}

fn fmt_reason(reason: &Option<String>) -> String {
    match reason {
        Some(r) => format!(": {r}"),
        None => String::new(),
    }
}

/// The result of trying several servers for one blob.
#[derive(Debug)]
#[non_exhaustive]
pub enum FetchError {
    /// Every server failed (or none was given); one entry per attempt, in order.
    AllFailed(Vec<(Url, BlossomError)>),
    /// The sink could not be reset after a failed attempt, so no further attempt is safe.
    ResetFailed {
        /// The attempts made so far.
        attempts: Vec<(Url, BlossomError)>,
        /// The reset error.
        source: std::io::Error,
    },
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = match self {
            FetchError::AllFailed(a) if a.is_empty() => {
                return write!(f, "no Blossom server to fetch the blob from")
            }
            FetchError::AllFailed(a) => {
                write!(f, "every Blossom server failed ({} tried):", a.len())?;
                a
            }
            FetchError::ResetFailed { attempts, source } => {
                write!(
                    f,
                    "cannot reset the download target after a failed attempt ({source}); attempts:"
                )?;
                attempts
            }
        };
        for (url, e) in attempts {
            write!(f, "\n  {url}: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FetchError::ResetFailed { source, .. } => Some(source),
            FetchError::AllFailed(_) => None,
        }
    }
}
