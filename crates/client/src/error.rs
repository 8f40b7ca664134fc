//! Client errors, each with its own exit code so scripts can tell them apart.

use cdvm_attestation::VerifyError;
use cdvm_protocol::ProtocolError;

/// Why a job did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad arguments or input, found before anything was published.
    #[error("{0}")]
    Usage(String),
    /// The input does not fit one gift-wrapped event and no Blossom server was given.
    #[error("input is {size} bytes once encoded; at most {max} bytes fit one encrypted event: name a Blossom server (--blossom URL) to send it as an encrypted blob")]
    InputTooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// The input is larger than the DVM accepts for the job kind (its announcement's cap).
    #[error("input is {size} bytes; this DVM accepts at most {max} for the job kind (nothing was uploaded or sent)")]
    InputOverCap {
        /// Plaintext size.
        size: u64,
        /// The DVM's cap.
        max: u64,
    },
    /// A Blossom server could not be used for the input or result blob.
    #[error("blossom: {0}")]
    Blossom(String),
    /// A relay could not be used.
    #[error("relay: {0}")]
    Relay(String),
    /// The guest's attestation failed verification: the input was NOT sent.
    #[error("attestation refused, input NOT sent: {0}")]
    AttestationRefused(#[source] VerifyError),
    /// The attestation event itself is malformed or not for this job: the input was NOT sent.
    #[error("invalid attestation event, input NOT sent: {0}")]
    BadAttestationEvent(#[source] ProtocolError),
    /// The DVM reported an error for the job.
    #[error("the DVM reported an error: {0}")]
    DvmError(String),
    /// The guest ran the job and reported an error (decrypted from the result).
    #[error("the job failed inside the guest: {0}")]
    JobFailed(String),
    /// A stage did not complete in time.
    #[error("timed out while {0}")]
    Timeout(&'static str),
    /// The result could not be decrypted or checked.
    #[error("result unreadable: {0}")]
    BadResult(#[source] ProtocolError),
    /// A protocol object could not be built.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// Process exit code: 2 usage/input, 3 attestation refused, 4 job failed or timed out,
    /// 5 relay or Blossom trouble, 1 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Usage(_)
            | ClientError::InputTooLarge { .. }
            | ClientError::InputOverCap { .. }
            | ClientError::Io { .. } => 2,
            ClientError::AttestationRefused(_) | ClientError::BadAttestationEvent(_) => 3,
            ClientError::DvmError(_)
            | ClientError::JobFailed(_)
            | ClientError::Timeout(_)
            | ClientError::BadResult(_) => 4,
            ClientError::Relay(_) | ClientError::Blossom(_) => 5,
            ClientError::Protocol(_) => 1,
        }
    }
}
