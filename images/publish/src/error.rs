//! Why a publish failed.

use std::path::PathBuf;

/// A boxed error from a cloud SDK or HTTP client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A resource a failed publish could not delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupFailure {
    /// The resource (its id or path).
    pub resource: String,
    /// Why the delete failed.
    pub reason: String,
}

/// Why `cdvm-image publish` failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The publish configuration is unusable.
    #[error("publish configuration: {0}")]
    Config(String),
    /// A file of the image could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The image folder lacks a file this cloud needs.
    #[error("{what} is missing: {hint}")]
    MissingArtifact {
        /// Which file.
        what: &'static str,
        /// How to make it.
        hint: &'static str,
    },
    /// A step failed; everything created before it was deleted.
    #[error("{step} failed (everything created before it was deleted)")]
    Step {
        /// The step (`upload`, `register image`, …).
        step: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A step failed and some of what was created could not be deleted: the operator must
    /// delete `left_behind` by hand.
    #[error("{step} failed, and these could not be deleted: {}", fmt_left(.left_behind))]
    StepAndCleanup {
        /// The step.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: BoxError,
        /// What is still there.
        left_behind: Vec<CleanupFailure>,
    },
    /// The cloud registered the image but not as asked (e.g. without UEFI or TPM), and it was
    /// deleted again.
    #[error("the registered image is not what was asked for: {0}")]
    Mismatch(String),
}

fn fmt_left(left: &[CleanupFailure]) -> String {
    left.iter()
        .map(|c| format!("{} ({})", c.resource, c.reason))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An error and its sources on one line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
