//! Executors: one per job kind. Each runs on the decrypted input inside the guest and returns the
//! output that is encrypted to the user. A job kind without an executor is refused.

mod sql;
mod text_stats;

use cdvm_protocol::{kinds, ErrorClass, InputBody};

/// What an executor produced.
#[derive(Debug)]
pub struct Output {
    /// IANA media type of `body`.
    pub media_type: &'static str,
    /// The output.
    pub body: String,
}

/// An executor failure: its message goes back to the user, encrypted; only its [`ErrorClass`]
/// is public (the result's `status` tag).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The input does not fit the job kind.
    #[error("input of type {got} does not fit job kind {kind}")]
    WrongInput {
        /// The request kind.
        kind: u16,
        /// The input type received.
        got: &'static str,
    },
    /// The input cannot be read (bad CSV, …).
    #[error("{0}")]
    BadInput(String),
    /// The input was read but the job failed (an SQL error, a write query, …).
    #[error("{0}")]
    Failed(String),
    /// The job ran past its time limit.
    #[error("{0}")]
    TimeLimit(String),
    /// The output exceeds a limit.
    #[error("{0}")]
    TooLarge(String),
    /// Something failed that the input did not cause.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ExecError {
    /// The public, non-confidential class of this failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::WrongInput { .. } | Self::BadInput(_) => ErrorClass::BadInput,
            Self::Failed(_) => ErrorClass::JobFailed,
            Self::TimeLimit(_) => ErrorClass::TimeLimit,
            Self::TooLarge(_) => ErrorClass::OutputTooLarge,
            Self::Internal(_) => ErrorClass::Internal,
        }
    }
}

/// Runs one job kind.
pub trait Executor: Send + Sync {
    /// The NIP-90 request kind served.
    fn kind(&self) -> u16;
    /// Runs on the decrypted input.
    fn run(&self, input: &InputBody) -> Result<Output, ExecError>;
}

/// The executor for a job kind, if this image has one.
pub fn for_kind(kind: u16) -> Option<Box<dyn Executor>> {
    match kind {
        kinds::SQL => Some(Box::new(sql::Sql::default())),
        kinds::TEXT_STATS => Some(Box::new(text_stats::TextStats)),
        _ => None,
    }
}

fn input_type(input: &InputBody) -> &'static str {
    match input {
        InputBody::Sql { .. } => "sql",
        InputBody::TextStats { .. } => "text-stats",
    }
}
