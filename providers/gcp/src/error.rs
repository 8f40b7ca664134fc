//! What can go wrong talking to Compute Engine, and how each failure is retried and reported.

use std::time::Duration;

use cdvm_provider_api::retry::Retry;
use cdvm_provider_api::ProviderError;
use google_cloud_gax::error::rpc::StatusDetails;

use crate::NAME;

/// Operation error codes and synchronous error reasons that mean "no capacity or quota": the job
/// fails with the cloud's message instead of being retried.
const CAPACITY_CODES: &[&str] = &[
    "QUOTA_EXCEEDED",
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "RESOURCE_POOL_EXHAUSTED",
    "quotaExceeded",
];

/// Synchronous error reasons that mean "slow down" even under a 403 (GCE's older throttling).
const RATE_LIMIT_REASONS: &[&str] = &["rateLimitExceeded", "userRateLimitExceeded"];

/// One entry of an operation's `error.errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationError {
    /// GCE's code (`ZONE_RESOURCE_POOL_EXHAUSTED`).
    pub code: String,
    /// Its message.
    pub message: String,
}

/// A failed Compute Engine call.
#[derive(Debug, thiserror::Error)]
pub enum GcpError {
    /// The API refused the call (HTTP error) or it failed in transport.
    #[error("{call}: {}", describe(source))]
    Api {
        /// Which call (`instances.insert`).
        call: &'static str,
        /// The SDK's error (HTTP status, headers, GCE's error body).
        #[source]
        source: google_cloud_gax::error::Error,
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
    /// The instance name of this job is taken by an instance with other tags.
    #[error("instance {name} exists but is not this job's (owner {owner:?}, job {job:?})")]
    NameTaken {
        /// The instance.
        name: String,
        /// The owner tag it carries, if any.
        owner: Option<String>,
        /// The job tag it carries, if any.
        job: Option<String>,
    },
    /// The insert operation finished without error, yet the instance is not there.
    #[error("instance {name}: insert done, but the instance does not exist")]
    Vanished {
        /// The instance.
        name: String,
    },
    /// The instance outlived every delete round.
    #[error("instance {name} still exists (status {status}) after {rounds} delete rounds")]
    Undeletable {
        /// The instance.
        name: String,
        /// Its last status.
        status: String,
        /// Delete rounds tried.
        rounds: u32,
    },
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

/// The first `errors[].reason` of GCE's error body.
pub(crate) fn reason(e: &google_cloud_gax::error::Error) -> Option<&str> {
    e.status()?.details.iter().find_map(|d| match d {
        StatusDetails::ErrorInfo(info) if !info.reason.is_empty() => Some(info.reason.as_str()),
        _ => None,
    })
}

/// Whether to retry: throttling waits for `Retry-After` (or backs off), 5xx and transport
/// failures back off, everything else is final.
pub(crate) fn classify(e: &google_cloud_gax::error::Error) -> Retry {
    match e.http_status_code() {
        Some(429) => retry_after(e).map_or(Retry::Backoff, Retry::After),
        Some(403) if reason(e).is_some_and(|r| RATE_LIMIT_REASONS.contains(&r)) => Retry::Backoff,
        Some(code) if code >= 500 => Retry::Backoff,
        Some(_) => Retry::No,
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

impl GcpError {
    /// HTTP status of an API refusal.
    pub(crate) fn http_status(&self) -> Option<u16> {
        match self {
            Self::Api { source, .. } => source.http_status_code(),
            _ => None,
        }
    }

    /// The cloud's own words when this is a capacity or quota failure.
    fn capacity(&self) -> Option<String> {
        match self {
            Self::Operation { errors, .. } => {
                let hits: Vec<&OperationError> = errors
                    .iter()
                    .filter(|e| CAPACITY_CODES.contains(&e.code.as_str()))
                    .collect();
                (!hits.is_empty()).then(|| {
                    hits.iter()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            }
            Self::Api { source, .. } => {
                let r = reason(source)?;
                CAPACITY_CODES
                    .contains(&r)
                    .then(|| format!("{r}: {}", source.status().map_or("", |s| &s.message)))
            }
            _ => None,
        }
    }

    /// The provider error: capacity and quota as [`ProviderError::Capacity`], the rest as
    /// [`ProviderError::Backend`] naming the call.
    pub(crate) fn into_provider(self) -> ProviderError {
        if let Some(reason) = self.capacity() {
            return ProviderError::Capacity {
                provider: NAME.into(),
                reason,
            };
        }
        let call = match &self {
            Self::Api { call, .. }
            | Self::Operation { call, .. }
            | Self::OperationTimeout { call, .. } => call,
            Self::NameTaken { .. } | Self::Vanished { .. } => "instances.insert",
            Self::Undeletable { .. } => "instances.delete",
        };
        ProviderError::Backend {
            provider: NAME.into(),
            call: (*call).into(),
            source: Box::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use google_cloud_gax::error::Error;

    fn http(code: u16, body: &str, retry_after: Option<&str>) -> Error {
        let mut headers = http::HeaderMap::new();
        if let Some(v) = retry_after {
            headers.insert("retry-after", v.parse().expect("header"));
        }
        let body = bytes::Bytes::from(body.to_string());
        match google_cloud_gax::error::rpc::Status::try_from(&body) {
            Ok(status) => Error::service_with_http_metadata(status, Some(code), Some(headers)),
            Err(_) => Error::http(code, headers, body),
        }
    }

    fn gce(code: u16, reason: &str) -> Error {
        let body = format!(
            r#"{{"error":{{"code":{code},"message":"m","errors":[{{"message":"m","domain":"global","reason":"{reason}"}}]}}}}"#
        );
        http(code, &body, None)
    }

    #[test]
    fn classification() {
        let throttled = http(429, r#"{"error":{"code":429,"message":"slow"}}"#, Some("3"));
        assert_eq!(classify(&throttled), Retry::After(Duration::from_secs(3)));
        assert_eq!(classify(&gce(429, "rateLimitExceeded")), Retry::Backoff);
        assert_eq!(classify(&gce(403, "rateLimitExceeded")), Retry::Backoff);
        assert_eq!(classify(&gce(403, "forbidden")), Retry::No);
        assert_eq!(classify(&gce(503, "backendError")), Retry::Backoff);
        assert_eq!(
            classify(&http(502, "<html>bad gateway</html>", None)),
            Retry::Backoff
        );
        assert_eq!(classify(&gce(400, "invalid")), Retry::No);
        assert_eq!(classify(&gce(404, "notFound")), Retry::No);
        assert_eq!(reason(&gce(409, "alreadyExists")), Some("alreadyExists"));
    }

    #[test]
    fn quota_is_capacity_and_the_rest_names_the_call() {
        let op = GcpError::Operation {
            call: "instances.insert",
            operation: "operation-1".into(),
            errors: vec![OperationError {
                code: "ZONE_RESOURCE_POOL_EXHAUSTED".into(),
                message: "The zone does not have enough resources".into(),
            }],
        };
        match op.into_provider() {
            ProviderError::Capacity { reason, .. } => {
                assert!(reason.contains("ZONE_RESOURCE_POOL_EXHAUSTED"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let sync_quota = GcpError::Api {
            call: "instances.insert",
            source: gce(403, "quotaExceeded"),
        };
        assert!(matches!(
            sync_quota.into_provider(),
            ProviderError::Capacity { .. }
        ));
        let bad = GcpError::Api {
            call: "instances.insert",
            source: gce(400, "invalid"),
        };
        assert_eq!(bad.to_string(), "instances.insert: HTTP 400 invalid: m");
        match bad.into_provider() {
            ProviderError::Backend { call, .. } => assert_eq!(call, "instances.insert"),
            other => panic!("{other:?}"),
        }
    }
}
