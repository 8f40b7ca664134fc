//! What every ARM request goes through (bearer token, api-version, faults) and ARM's answer shapes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::faults::Fault;
use crate::AppState;

/// The query string, as given.
pub type Query = HashMap<String, String>;

/// Which resource provider a request is for (each has its own API versions).
#[derive(Clone, Copy, Debug)]
pub enum Namespace {
    /// Microsoft.Compute.
    Compute,
    /// Microsoft.Network.
    Network,
    /// Microsoft.Compute's galleries (their own API versions).
    Gallery,
}

impl Namespace {
    /// The namespace as it appears in paths.
    pub fn name(self) -> &'static str {
        match self {
            Self::Compute | Self::Gallery => "Microsoft.Compute",
            Self::Network => "Microsoft.Network",
        }
    }

    fn api_versions(self) -> &'static [&'static str] {
        match self {
            Self::Compute => &["2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01"],
            Self::Network => &["2023-09-01", "2024-01-01", "2024-03-01", "2024-05-01"],
            Self::Gallery => &["2022-03-03", "2022-08-03", "2023-07-03", "2024-03-03"],
        }
    }

    /// The namespace named in an operation path.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Compute, Self::Network]
            .into_iter()
            .find(|n| n.name().eq_ignore_ascii_case(name))
    }
}

/// A refused request: ARM's error answer, `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: String,
    message: String,
    headers: Vec<(&'static str, &'static str)>,
}

impl Refusal {
    fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

/// A refusal with ARM's code and message.
pub fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code: code.into(),
        message: message.into(),
        headers: Vec::new(),
    }
}

/// ARM's error answer.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    refuse(status, code, message).into_response()
}

/// A JSON answer.
pub fn ok(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// An answer starting a long-running operation: `Azure-AsyncOperation` names its status URL.
pub fn accepted(status: StatusCode, body: Option<Value>, operation_url: &str) -> Response {
    let mut response = match body {
        Some(b) => (status, Json(b)).into_response(),
        None => status.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(operation_url) {
        response.headers_mut().insert("azure-asyncoperation", v);
    }
    response
}

/// The status URL of operation `id`.
pub fn operation_url(
    state: &AppState,
    subscription: &str,
    namespace: Namespace,
    location: &str,
    id: &str,
    api_version: &str,
) -> String {
    format!(
        "{}/subscriptions/{subscription}/providers/{}/locations/{location}/operations/{id}?api-version={api_version}",
        state.base_url,
        namespace.name()
    )
}

/// A server error in ARM's shape, 500 and 503 in turn.
pub fn server_error(state: &AppState) -> Refusal {
    if state
        .arm
        .server_errors
        .fetch_add(1, Ordering::SeqCst)
        .is_multiple_of(2)
    {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "An internal server error occurred. Please try again later.",
        )
    } else {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please try again later.",
        )
    }
}

fn throttled() -> Refusal {
    refuse(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type - \
         Write_1Min. For more information, see - https://aka.ms/throttling",
    )
    .with_header("retry-after", "1")
}

/// A request that passed [`gate`]: for a write, whether its answer is to be lost to a server
/// error after the work is done.
#[derive(Debug)]
pub struct Admitted {
    /// Answer with a server error once the work is done.
    pub lose_answer: bool,
    /// The api-version given.
    pub api_version: String,
}

impl Admitted {
    /// The answer, or a server error in its place.
    pub fn answer(&self, state: &AppState, response: Response) -> Response {
        if self.lose_answer {
            server_error(state).into_response()
        } else {
            response
        }
    }
}

/// Checks a request as ARM's front door does — bearer token, then api-version — and draws a
/// fault. Throttling and a read's server error answer at once; a write's server error is
/// deferred until its work is done.
pub fn gate(
    state: &AppState,
    headers: &HeaderMap,
    query: &Query,
    namespace: Namespace,
    call: &str,
    write: bool,
) -> Result<Admitted, Refusal> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !t.trim().is_empty());
    if !bearer {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing or not a bearer token.",
        )
        .with_header(
            "www-authenticate",
            "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\"",
        ));
    }
    let Some(api_version) = query.get("api-version") else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    if !namespace.api_versions().contains(&api_version.as_str()) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for API version '{api_version}' of {}. \
                 The supported api-versions are '{}'.",
                namespace.name(),
                namespace.api_versions().join(", ")
            ),
        ));
    }
    let lose_answer = match state.faults.on_call(call) {
        Some(Fault::Throttle) => return Err(throttled()),
        Some(Fault::ServerError) if !write => return Err(server_error(state)),
        Some(Fault::ServerError) => true,
        None => false,
    };
    Ok(Admitted {
        lose_answer,
        api_version: api_version.clone(),
    })
}

/// The id of a resource in a resource group.
pub fn resource_id(
    subscription: &str,
    group: &str,
    namespace: Namespace,
    kind: &str,
    name: &str,
) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{group}/providers/{}/{kind}/{name}",
        namespace.name()
    )
}
