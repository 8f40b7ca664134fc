//! Executors: one per job kind. Each runs on the decrypted input inside the guest and returns the
//! output that is encrypted to the user. A job kind without an executor is refused.

mod sql;
mod text_stats;

use cdvm_protocol::{kinds, InputBody};

/// What an executor produced.
#[derive(Debug)]
pub struct Output {
    /// IANA media type of `body`.
    pub media_type: &'static str,
    /// The output.
    pub body: String,
}

/// An executor failure: its message goes back to the user, encrypted.
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
    /// The input could not be processed.
    #[error("{0}")]
    Invalid(String),
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
