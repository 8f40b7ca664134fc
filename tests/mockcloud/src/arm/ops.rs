//! `GET …/providers/{namespace}/locations/{loc}/operations/{id}`: the status of a long-running
//! operation.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::http::{self, gate, Namespace};
use crate::AppState;

pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    Path((_sub, namespace, _loc, id)): Path<(String, String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    let Some(namespace) = Namespace::parse(&namespace) else {
        return http::error(
            StatusCode::NOT_FOUND,
            "InvalidResourceNamespace",
            format!("The resource namespace '{namespace}' is invalid."),
        );
    };
    if let Err(r) = gate(&state, &headers, &query, namespace, "arm.operation", false) {
        return r.into_response();
    }
    let store = state.arm.lock();
    match store.ops.get(&id) {
        Some(op) => http::ok(StatusCode::OK, op.view(&id, Instant::now())),
        None => http::error(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            format!("The operation '{id}' could not be found."),
        ),
    }
}

/// `GET /subscriptions/{s}/providers/Microsoft.Compute/locations/{loc}/capsOperations/{id}`: the
/// status of a gallery operation (gallery API versions).
pub(super) async fn get_caps(
    State(state): State<Arc<AppState>>,
    Path((_sub, _namespace, _loc, id)): Path<(String, String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(
        &state,
        &headers,
        &query,
        Namespace::Gallery,
        "arm.operation",
        false,
    ) {
        return r.into_response();
    }
    let store = state.arm.lock();
    match store.ops.get(&id) {
        Some(op) => http::ok(StatusCode::OK, op.view(&id, Instant::now())),
        None => http::error(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            format!("The operation '{id}' could not be found."),
        ),
    }
}
