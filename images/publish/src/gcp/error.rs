//! A failed Cloud Storage or Compute Engine call, and whether it is worth retrying.

use std::time::Duration;

use cdvm_provider_api::retry::Retry;
use google_cloud_gax::error::rpc::StatusDetails;

/// One entry of an operation's `error.errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationError {
    /// GCE's code (`INVALID_IMAGE_FILE`).
    pub code: String,
    /// Its message.
    pub message: String,
}

/// Why a call failed. Tokens never appear here: requests are described by their call name.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Compute Engine refused the call or it failed in transport.
    #[error("{call}: {}", describe(source))]
    Api {
        /// Which call (`images.insert`).
        call: &'static str,
        /// The SDK's error.
        #[source]
        source: google_cloud_gax::error::Error,
    },
    /// Cloud Storage answered with an HTTP error.
    #[error("{call}: HTTP {status}: {message}")]
    Http {
        /// Which call (`objects.insert`).
        call: &'static str,
        /// The status.
        status: u16,
        /// The error body's `error.message` (or the body itself).
        message: String,
        /// Its `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// A Cloud Storage request failed in transport.
    #[error("{call}: request failed")]
    Transport {
        /// Which call.
        call: &'static str,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The credential chain gave no token.
    #[error("{call}: no credentials (Application Default Credentials)")]
    Credentials {
        /// Which call wanted them.
        call: &'static str,
        /// Why.
        #[source]
        source: google_cloud_gax::error::CredentialsError,
    },
    /// The call's operation finished with errors.
    #[error("{call}: operation {operation} failed: {}", join(errors))]
    Operation {
        /// Which call started it.
        call: &'static str,
        /// The operation's name.
        operation: String,
        /// Its errors.
        errors: Vec<OperationError>,
    },
    /// The call's operation was not DONE in time.
    #[error("{call}: operation {operation} not done after {waited:?}")]
    OperationTimeout {
        /// Which call started it.
        call: &'static str,
        /// The operation's name.
        operation: String,
        /// How long it was waited for.
        waited: Duration,
    },
    /// The cloud answered something this client cannot use.
    #[error("{call}: {reason}")]
    Unexpected {
        /// Which call.
        call: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl CallError {
    /// The HTTP status of a refusal.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Api { source, .. } => source.http_status_code(),
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn join(errors: &[OperationError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `HTTP 400 invalid: message`, or the SDK's own words for transport failures.
fn describe(e: &google_cloud_gax::error::Error) -> String {
    match (e.http_status_code(), e.status()) {
        (Some(code), Some(status)) => match reason(e) {
            Some(r) => format!("HTTP {code} {r}: {}", status.message),
            None => format!("HTTP {code}: {}", status.message),
        },
        _ => e.to_string(),
    }
}

fn reason(e: &google_cloud_gax::error::Error) -> Option<&str> {
    e.status()?.details.iter().find_map(|d| match d {
        StatusDetails::ErrorInfo(info) if !info.reason.is_empty() => Some(info.reason.as_str()),
        _ => None,
    })
}

fn by_status(code: u16, after: Option<Duration>) -> Retry {
    match code {
        429 => after.map_or(Retry::Backoff, Retry::After),
        408 => Retry::Backoff,
        c if c >= 500 => Retry::Backoff,
        _ => Retry::No,
    }
}

/// Throttling and 5xx back off (throttling for at least `Retry-After`), transport failures too;
/// everything else is final.
pub fn classify(e: &CallError) -> Retry {
    match e {
        CallError::Api { source, .. } => classify_sdk(source),
        CallError::Http {
            status,
            retry_after,
            ..
        } => by_status(*status, *retry_after),
        CallError::Transport { source, .. } if !source.is_builder() => Retry::Backoff,
        _ => Retry::No,
    }
}

/// [`classify`] for the Compute Engine SDK's errors (GCE's older throttling is a 403
/// `rateLimitExceeded`).
pub fn classify_sdk(e: &google_cloud_gax::error::Error) -> Retry {
    match e.http_status_code() {
        Some(403) if reason(e).is_some_and(|r| r.ends_with("ateLimitExceeded")) => Retry::Backoff,
        Some(code) => by_status(code, retry_after(e)),
        None if e.is_io() || e.is_connect() || e.is_timeout() || e.is_transport() => Retry::Backoff,
        None => Retry::No,
    }
}

fn retry_after(e: &google_cloud_gax::error::Error) -> Option<Duration> {
    let secs = e
        .http_headers()?
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(Duration::from_secs(secs))
}
