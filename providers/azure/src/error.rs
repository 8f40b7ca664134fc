//! What can go wrong talking to Resource Manager, how each failure is retried, and which ones
//! mean "no capacity".

use std::time::Duration;

use cdvm_provider_api::retry::Retry;
use cdvm_provider_api::ProviderError;

use crate::models::ErrorDetail;
use crate::NAME;

/// A failed Resource Manager interaction; the `source` of [`ProviderError::Backend`].
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// ARM answered with an error status and its error body.
    #[error("HTTP {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// ARM error code (`InvalidParameter`, `TooManyRequests`, …).
        code: String,
        /// ARM's message.
        message: String,
        /// The server's `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// A long-running operation ended `Failed` or `Canceled`.
    #[error("operation {status}: {code}: {message}")]
    Operation {
        /// `Failed` or `Canceled`.
        status: String,
        /// ARM error code (`AllocationFailed`, …).
        code: String,
        /// ARM's message.
        message: String,
    },
    /// The request did not get an answer (connection, TLS, token acquisition, …).
    #[error("request not answered")]
    Transport(#[source] azure_core::Error),
    /// A body that is not the JSON expected (or ours could not be written).
    #[error("JSON body could not be read or written")]
    Json(#[source] serde_json::Error),
    /// An operation or deletion still not done at the deadline.
    #[error("{what} not done after {waited:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
    },
    /// A link ARM handed out (operation status, next page) points outside the endpoint; the
    /// bearer token is never sent there.
    #[error("refusing to follow {url}: not under the configured endpoint")]
    ForeignUrl {
        /// The link.
        url: String,
    },
    /// A URL could not be built.
    #[error("bad URL {url}")]
    Url {
        /// The text.
        url: String,
        /// The parse failure.
        #[source]
        source: url::ParseError,
    },
    /// The deterministic VM name is taken by a VM with other owner/job tags.
    #[error("VM {name} exists but carries other owner/job tags; refusing to touch it")]
    NameTaken {
        /// The VM name.
        name: String,
    },
    /// A list kept handing out next pages.
    #[error("more than {pages} pages")]
    TooManyPages {
        /// Pages followed.
        pages: usize,
    },
    /// Deletes kept being acknowledged but the resource stayed.
    #[error("{what} still exists after {rounds} deletes")]
    NotDeleted {
        /// The resource.
        what: String,
        /// Delete calls made.
        rounds: u32,
    },
}

/// ARM error codes that mean the region cannot give us the VM now, not that we asked wrong.
const CAPACITY_CODES: &[&str] = &[
    "SkuNotAvailable",
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
    "QuotaExceeded",
];

impl ArmError {
    /// The error from an ARM error body.
    pub(crate) fn api(status: u16, detail: ErrorDetail, retry_after: Option<Duration>) -> Self {
        let (code, message) = root_cause(detail);
        Self::Api {
            status,
            code,
            message,
            retry_after,
        }
    }

    /// The error of a failed long-running operation.
    pub(crate) fn operation(status: String, detail: ErrorDetail) -> Self {
        let (code, message) = root_cause(detail);
        Self::Operation {
            status,
            code,
            message,
        }
    }

    /// ARM's error code, if ARM gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } | Self::Operation { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The capacity or quota message, if this failure is one (the job fails with it).
    pub fn capacity_reason(&self) -> Option<String> {
        let (code, message) = match self {
            Self::Api { code, message, .. } | Self::Operation { code, message, .. } => {
                (code, message)
            }
            _ => return None,
        };
        let quota = code == "OperationNotAllowed" && message.to_ascii_lowercase().contains("quota");
        (quota || CAPACITY_CODES.contains(&code.as_str())).then(|| format!("{code}: {message}"))
    }

    /// How [`cdvm_provider_api::retry::RetryPolicy::run`] treats it: throttling waits for
    /// `Retry-After`, 5xx and unanswered requests back off, everything else is final.
    pub fn retry(&self) -> Retry {
        match self {
            Self::Api {
                status: 429,
                retry_after,
                ..
            } => retry_after.map_or(Retry::Backoff, Retry::After),
            Self::Api { status, .. } if *status >= 500 => Retry::Backoff,
            Self::Transport(e)
                if matches!(
                    e.kind(),
                    azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Connection
                ) =>
            {
                Retry::Backoff
            }
            _ => Retry::No,
        }
    }

    /// The provider error for a failed `call`: capacity and quota problems become
    /// [`ProviderError::Capacity`] with ARM's message, the rest [`ProviderError::Backend`].
    pub(crate) fn into_provider(self, call: &str) -> ProviderError {
        match self.capacity_reason() {
            Some(reason) => ProviderError::Capacity {
                provider: NAME.into(),
                reason,
            },
            None => ProviderError::Backend {
                provider: NAME.into(),
                call: call.into(),
                source: Box::new(self),
            },
        }
    }
}

/// ARM wraps the real cause at times (`DeploymentFailed` → details[0] `AllocationFailed`):
/// the innermost detail names it.
fn root_cause(mut detail: ErrorDetail) -> (String, String) {
    while detail.details.len() == 1 && !detail.details[0].code.is_empty() {
        detail = detail.details.remove(0);
    }
    (detail.code, detail.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str, message: &str) -> ArmError {
        ArmError::Api {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    #[test]
    fn capacity_and_quota_are_recognised() {
        let quota = api(
            409,
            "OperationNotAllowed",
            "Operation could not be completed as it results in exceeding approved standardDCASv5Family Cores quota.",
        );
        assert!(quota.capacity_reason().is_some());
        assert!(api(409, "OperationNotAllowed", "VM is marked for deletion")
            .capacity_reason()
            .is_none());
        assert!(api(409, "SkuNotAvailable", "x").capacity_reason().is_some());
        let op = ArmError::operation(
            "Failed".into(),
            ErrorDetail {
                code: "DeploymentFailed".into(),
                message: "outer".into(),
                details: vec![ErrorDetail {
                    code: "ZonalAllocationFailed".into(),
                    message: "inner".into(),
                    details: vec![],
                }],
            },
        );
        assert_eq!(
            op.capacity_reason().as_deref(),
            Some("ZonalAllocationFailed: inner")
        );
        assert!(matches!(
            api(400, "InvalidParameter", "x").into_provider("create virtual machine"),
            ProviderError::Backend { call, .. } if call == "create virtual machine"
        ));
    }

    #[test]
    fn throttling_and_server_errors_are_retried_others_not() {
        let throttled = ArmError::Api {
            status: 429,
            code: "TooManyRequests".into(),
            message: String::new(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(throttled.retry(), Retry::After(Duration::from_secs(3)));
        assert_eq!(api(429, "TooManyRequests", "").retry(), Retry::Backoff);
        assert_eq!(api(503, "ServiceUnavailable", "").retry(), Retry::Backoff);
        assert_eq!(api(400, "InvalidParameter", "").retry(), Retry::No);
        assert_eq!(api(404, "ResourceNotFound", "").retry(), Retry::No);
    }
}
