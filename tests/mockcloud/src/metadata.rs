//! The three clouds' instance metadata services, one per instance under
//! `/metadata/<aws|gcp|azure>/<instance>/…`, with each service's request rules (IMDSv2 token,
//! `Metadata-Flavor: Google`, `Metadata: true`), so the agent's real metadata code is exercised.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use cdvm_provider_api::metadata::{MetadataService, AZURE_IMDS_API_VERSION, GCE_BOOTSTRAP_KEY};
use rand::Rng;
use serde::Deserialize;

use crate::AppState;

/// What each instance's metadata service answers. Values are stored as the service returns them:
/// AWS the decoded user data, GCP the attribute value, Azure the base64 user data.
#[derive(Debug, Default)]
pub struct MetadataStore {
    values: Mutex<HashMap<(MetadataService, String), String>>,
    aws_tokens: Mutex<HashMap<String, String>>,
}

impl MetadataStore {
    /// Publishes an instance's bootstrap.
    pub fn register(&self, service: MetadataService, instance: &str, value: String) {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((service, instance.to_string()), value);
    }

    /// Withdraws it (the instance is gone).
    pub fn remove(&self, service: MetadataService, instance: &str) {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(service, instance.to_string()));
        if service == MetadataService::Aws {
            self.aws_tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(instance);
        }
    }

    fn get(&self, service: MetadataService, instance: &str) -> Option<String> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(service, instance.to_string()))
            .cloned()
    }
}

/// The base URL an instance's agent is given as `--metadata-endpoint`.
pub fn endpoint(base_url: &str, service: MetadataService, instance: &str) -> String {
    format!("{base_url}/metadata/{}/{instance}", service.name())
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/metadata/aws/{instance}/latest/api/token", put(aws_token))
        .route(
            "/metadata/aws/{instance}/latest/user-data",
            get(aws_user_data),
        )
        .route(
            "/metadata/gcp/{instance}/computeMetadata/v1/instance/attributes/{key}",
            get(gcp_attribute),
        )
        .route(
            "/metadata/azure/{instance}/metadata/instance/compute/userData",
            get(azure_user_data),
        )
}

async fn aws_token(
    State(state): State<Arc<AppState>>,
    Path(instance): Path<String>,
    headers: HeaderMap,
) -> Response {
    // IMDSv2: a token is issued only to a PUT with a TTL header (1–21600 s).
    let ttl = headers
        .get("x-aws-ec2-metadata-token-ttl-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    if !matches!(ttl, Some(1..=21600)) {
        return (StatusCode::BAD_REQUEST, "missing or invalid token TTL").into_response();
    }
    let token = hex::encode(rand::thread_rng().gen::<[u8; 24]>());
    state
        .metadata
        .aws_tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(instance, token.clone());
    token.into_response()
}

async fn aws_user_data(
    State(state): State<Arc<AppState>>,
    Path(instance): Path<String>,
    headers: HeaderMap,
) -> Response {
    let presented = headers
        .get("x-aws-ec2-metadata-token")
        .and_then(|v| v.to_str().ok());
    let issued = state
        .metadata
        .aws_tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&instance)
        .cloned();
    // HttpTokens=required: no valid token, no data.
    if presented.is_none() || presented != issued.as_deref() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match state.metadata.get(MetadataService::Aws, &instance) {
        Some(v) => v.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn gcp_attribute(
    State(state): State<Arc<AppState>>,
    Path((instance, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return (
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header.",
        )
            .into_response();
    }
    if key != GCE_BOOTSTRAP_KEY {
        return StatusCode::NOT_FOUND.into_response();
    }
    match state.metadata.get(MetadataService::Gcp, &instance) {
        Some(v) => v.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize)]
struct AzureQuery {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
    format: Option<String>,
}

async fn azure_user_data(
    State(state): State<Arc<AppState>>,
    Path(instance): Path<String>,
    Query(q): Query<AzureQuery>,
    headers: HeaderMap,
) -> Response {
    if headers.get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":"Bad request. Required metadata header not specified"}"#,
        )
            .into_response();
    }
    if q.api_version.as_deref() != Some(AZURE_IMDS_API_VERSION)
        || q.format.as_deref() != Some("text")
    {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":"Bad request. api-version or format invalid"}"#,
        )
            .into_response();
    }
    match state.metadata.get(MetadataService::Azure, &instance) {
        Some(v) => v.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
