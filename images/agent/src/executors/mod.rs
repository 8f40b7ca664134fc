//! Executors: one per job kind. Each runs on the decrypted input inside the guest and returns the
//! output that is encrypted to the user. A job kind without an executor is refused.

#[cfg(feature = "rag")]
mod rag;
mod sql;
mod text_stats;

use std::io::Read;

use cdvm_protocol::{kinds, Data, ErrorClass, InputBody};

/// Media types the executors read (a blob's `file-type`; inline data has its kind's default).
pub mod media {
    /// A CSV table with a header row.
    pub const CSV: &str = "text/csv";
    /// Plain text.
    pub const TEXT: &str = "text/plain";
    /// Markdown, read as text.
    pub const MARKDOWN: &str = "text/markdown";
    /// JSON (results).
    pub const JSON: &str = "application/json";
    /// A folder packed as a tar archive (docs/protocol.md §5.8).
    pub const TAR: &str = "application/x-tar";
}

/// The job's data as a stream: inline data, or a blob being downloaded and decrypted. An
/// executor reads it once, front to back.
pub struct DataSource<'a> {
    /// Media type of the bytes.
    pub file_type: String,
    /// The plaintext. A read error is the download's or decryption's failure, in its own words.
    pub reader: Box<dyn Read + Send + 'a>,
}

impl std::fmt::Debug for DataSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataSource({})", self.file_type)
    }
}

/// The media type inline data of `kind` is read as.
pub fn inline_type(kind: u16) -> &'static str {
    match kind {
        kinds::SQL => media::CSV,
        _ => media::TEXT,
    }
}

/// Runs `executor` on an input whose data is inline (a blob input is refused), sending partial
/// output to `partial`.
pub fn run_inline(
    executor: &dyn Executor,
    input: &InputBody,
    partial: &Partial,
) -> Result<Output, ExecError> {
    let Data::Inline(text) = input.data() else {
        return Err(ExecError::Internal(
            "the input's data is a blob, not inline".into(),
        ));
    };
    let file_type = match input {
        InputBody::Rag {
            media_type: Some(m),
            ..
        } => m.clone(),
        _ => inline_type(executor.kind()).to_owned(),
    };
    let source = DataSource {
        file_type,
        reader: Box::new(text.as_bytes()),
    };
    executor.run(input, source, partial)
}

/// Where an executor sends its output so far while it runs (the RAG answer as it grows); the
/// session publishes it encrypted to the user. Sending never blocks the executor.
#[derive(Debug, Default, Clone)]
pub struct Partial {
    tx: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Partial {
    /// A sink that drops everything (the executors' own tests).
    #[cfg(test)]
    pub fn none() -> Self {
        Self::default()
    }

    /// A sink feeding `tx`.
    pub fn to(tx: tokio::sync::mpsc::UnboundedSender<String>) -> Self {
        Self { tx: Some(tx) }
    }

    /// Sends the output so far (ignored once the receiver is gone).
    pub fn send(&self, text: &str) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(text.to_owned());
        }
    }
}

/// A failure to read the data. The download/decryption layer puts its own error inside the
/// `io::Error`; its message reaches the user as the job's error.
pub fn read_error(e: std::io::Error) -> ExecError {
    match e.get_ref() {
        Some(inner) => ExecError::BadInput(format!("reading the input: {inner}")),
        None => ExecError::BadInput(format!("reading the input: {e}")),
    }
}

/// Limits on a folder input. The byte total is bounded by the input cap before any download
/// (the archive is at least as large as its contents); this one only stops arithmetic surprises.
const FOLDER_LIMITS: cdvm_blob::tarball::Limits = cdvm_blob::tarball::Limits {
    max_files: 100_000,
    max_total_bytes: 1 << 40,
};

/// Calls `f` on each regular file of a tar archive (a folder input), streaming, in archive
/// order. Links, special files, absolute paths and `..` are refused.
pub fn for_each_file(
    archive: &mut dyn Read,
    mut f: impl FnMut(&str, &mut dyn Read) -> Result<(), ExecError>,
) -> Result<(), ExecError> {
    use cdvm_blob::tarball::TarError;
    cdvm_blob::tarball::for_each_file(archive, &FOLDER_LIMITS, |path, file| f(path, file))
        .map(|_| ())
        .map_err(|e| match e {
            TarError::Callback { source, .. } => source,
            // The archive's own reader failed: the download's error, in its words.
            TarError::Io { source, .. } if source.get_ref().is_some() => read_error(source),
            other => ExecError::BadInput(format!("folder input: {other}")),
        })
}

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
    /// Runs on the decrypted input: `input` for the job's parameters (the query …), `data` for
    /// its data, whether inline or from a blob; output so far may go to `partial`.
    fn run(
        &self,
        input: &InputBody,
        data: DataSource<'_>,
        partial: &Partial,
    ) -> Result<Output, ExecError>;
}

/// What executors need from the agent's configuration.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    /// The model directory (`models.json` and the GGUF files), when the agent carries models.
    pub models_dir: Option<std::path::PathBuf>,
    /// Inference threads.
    pub inference_threads: usize,
}

/// The executor for a job kind, if this image has one.
pub fn for_kind(kind: u16, config: &ExecConfig) -> Option<Box<dyn Executor>> {
    match kind {
        kinds::SQL => Some(Box::new(sql::Sql::default())),
        kinds::TEXT_STATS => Some(Box::new(text_stats::TextStats)),
        #[cfg(feature = "rag")]
        kinds::TEXT_GENERATION => config
            .models_dir
            .clone()
            .map(|dir| Box::new(rag::Rag::new(dir, config.inference_threads)) as Box<dyn Executor>),
        _ => {
            let _ = config;
            None
        }
    }
}

fn input_type(input: &InputBody) -> &'static str {
    match input {
        InputBody::Sql { .. } => "sql",
        InputBody::TextStats { .. } => "text-stats",
        InputBody::Rag { .. } => "rag",
    }
}
