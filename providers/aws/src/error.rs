//! What an EC2 failure means: retry, capacity, gone, or a final backend error.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use cdvm_provider_api::retry::Retry;
use cdvm_provider_api::ProviderError;

use crate::NAME;

/// One failed EC2 call, flattened so it can be classified and kept as a `source`.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {}{}", code.as_deref().unwrap_or("no error code"), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
pub struct Ec2Error {
    /// The EC2 action (`RunInstances`, …).
    pub call: &'static str,
    /// EC2's error code, if the service answered.
    pub code: Option<String>,
    /// EC2's message.
    pub message: Option<String>,
    /// HTTP status, if a response came back.
    pub status: Option<u16>,
    /// The SDK's error (transport failures have no code).
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl Ec2Error {
    /// Wraps an SDK error of `call`.
    pub fn new<E>(call: &'static str, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = e.code().map(str::to_string);
        let message = e.message().map(str::to_string);
        let (status, source): (_, Box<dyn std::error::Error + Send + Sync>) = match e {
            SdkError::ServiceError(s) => (Some(s.raw().status().as_u16()), Box::new(s.into_err())),
            // Transport failures: keep the whole chain's text (the SDK error is not Sync).
            other => (None, DisplayErrorContext(&other).to_string().into()),
        };
        Self {
            call,
            code,
            message,
            status,
            source,
        }
    }

    /// Whether the instance id is unknown or not an instance id at all.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed")
        )
    }

    /// Whether AWS is out of capacity or the account out of quota for this launch.
    pub fn is_capacity(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(
                "InsufficientInstanceCapacity"
                    | "InstanceLimitExceeded"
                    | "VcpuLimitExceeded"
                    | "InsufficientCapacity"
                    | "MaxSpotInstanceCountExceeded"
            )
        )
    }

    /// How to retry: throttling and server-side failures back off; everything else is final.
    pub fn retry(&self) -> Retry {
        match (self.code.as_deref(), self.status) {
            (Some("RequestLimitExceeded" | "Throttling" | "ThrottlingException"), _) => {
                Retry::Backoff
            }
            (
                Some("InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable"),
                _,
            ) => Retry::Backoff,
            (_, Some(s)) if s >= 500 || s == 429 => Retry::Backoff,
            // No response at all (connection refused/reset, timeout): the call may be retried;
            // launches stay single thanks to the client token.
            (None, None) => Retry::Backoff,
            _ => Retry::No,
        }
    }

    /// The provider error this becomes.
    pub fn into_provider(self) -> ProviderError {
        if self.is_capacity() {
            ProviderError::Capacity {
                provider: NAME.into(),
                reason: self.to_string(),
            }
        } else {
            ProviderError::Backend {
                provider: NAME.into(),
                call: self.call.into(),
                source: Box::new(self),
            }
        }
    }
}
