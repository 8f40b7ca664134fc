//! Compute Engine's error bodies: `{"error":{"code","message","errors":[{"message","domain","reason"}]}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::faults::Fault;

/// A refused request, answered in GCE's error shape.
#[derive(Debug)]
pub(crate) struct GceError {
    status: StatusCode,
    reason: &'static str,
    domain: &'static str,
    message: String,
    retry_after: Option<u32>,
}

impl GceError {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            domain: "global",
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `invalid`: a field has a value GCE does not accept.
    pub(crate) fn invalid_field(field: &str, value: &str, why: &str) -> Self {
        let message = format!("Invalid value for field '{field}': '{value}'. {why}");
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// 400 `required`: a field is missing.
    pub(crate) fn required(field: &str) -> Self {
        let message = format!("Required field '{field}' not specified");
        Self::new(StatusCode::BAD_REQUEST, "required", message)
    }

    /// 400 `parseError`: the body is not JSON.
    pub(crate) fn parse(detail: &str) -> Self {
        let message = format!("Invalid JSON payload received. {detail}");
        Self::new(StatusCode::BAD_REQUEST, "parseError", message)
    }

    /// 404 `notFound`.
    pub(crate) fn not_found(resource: &str) -> Self {
        let message = format!("The resource '{resource}' was not found");
        Self::new(StatusCode::NOT_FOUND, "notFound", message)
    }

    /// 409 `alreadyExists`.
    pub(crate) fn already_exists(resource: &str) -> Self {
        let message = format!("The resource '{resource}' already exists");
        Self::new(StatusCode::CONFLICT, "alreadyExists", message)
    }

    /// An injected fault: 429 `rateLimitExceeded` with `Retry-After`, or 503 `backendError`.
    pub(crate) fn fault(fault: Fault) -> Self {
        match fault {
            Fault::Throttle => Self {
                domain: "usageLimits",
                retry_after: Some(1),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rateLimitExceeded",
                    "Rate Limit Exceeded",
                )
            },
            Fault::ServerError => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backendError",
                "Internal error. Please try again or contact Google Support.",
            ),
        }
    }
}

impl IntoResponse for GceError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "code": self.status.as_u16(),
                "message": self.message,
                "errors": [{
                    "message": self.message,
                    "domain": self.domain,
                    "reason": self.reason,
                }],
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
