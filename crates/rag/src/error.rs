//! Errors. A message reaches the user (encrypted): it may name a document, never quote one.

use thiserror::Error;

/// A RAG failure.
#[derive(Debug, Error)]
pub enum RagError {
    /// A document's format is not one the job reads.
    #[error("document `{document}`: {reason}; supported: plain text (.txt), Markdown (.md), HTML (.html); convert it to text first")]
    Unsupported {
        /// The document's name.
        document: String,
        /// What it is.
        reason: String,
    },
    /// The documents hold no text at all.
    #[error("the documents hold no text to search")]
    NoText,
    /// More chunks than the job will embed.
    #[error("the documents make {chunks} chunks; at most {max}: send fewer documents or use larger chunks")]
    TooManyChunks {
        /// Chunks made.
        chunks: usize,
        /// The limit.
        max: usize,
    },
    /// More documents than the job will read.
    #[error("{count} documents; at most {max}")]
    TooManyDocuments {
        /// Documents sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The question (with the answer's token budget) does not fit the model's context.
    #[error("the question is {question_tokens} tokens; with max_tokens {max_tokens} the model's context of {context} tokens has no room for it: shorten the question or lower max_tokens")]
    QuestionTooLong {
        /// Tokens in the prompt without passages.
        question_tokens: usize,
        /// The answer budget asked for.
        max_tokens: usize,
        /// The model's context length.
        context: usize,
    },
    /// The job asked for a model this image does not carry.
    #[error("model `{asked}` is not in this image; it carries: {available}")]
    UnknownModel {
        /// The name asked for.
        asked: String,
        /// The names available.
        available: String,
    },
    /// A model file failed its hash check or could not be read.
    #[error("model file {path}: {reason}")]
    ModelFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The model manifest is invalid.
    #[error("model manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The inference engine failed.
    #[error("inference engine: {0}")]
    Engine(String),
    /// The caller stopped the job (time limit).
    #[error("stopped: {0}")]
    Stopped(String),
}
