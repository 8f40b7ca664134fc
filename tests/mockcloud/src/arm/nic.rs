//! `…/providers/Microsoft.Network/networkInterfaces/{name}`: PUT, GET, DELETE.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::http::{self, gate, resource_id, Namespace};
use super::store::{Nic, Outcome};
use super::validate;
use crate::AppState;

const NS: Namespace = Namespace::Network;
const KIND: &str = "networkInterfaces";

fn not_found(id: &str) -> Response {
    http::error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("Resource {id} not found."),
    )
}

pub(super) async fn put(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.arm.count_put();
    let admitted = match gate(&state, &headers, &query, NS, "arm.put_nic", true) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let req = match validate::nic(&body) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let id = resource_id(&sub, &rg, NS, KIND, &name);
    let key = id.to_lowercase();
    let now = Instant::now();
    let response = {
        let mut store = state.arm.lock();
        let status = match store.nics.get_mut(&key) {
            Some(nic) if nic.deleting_until.is_some() => {
                return http::error(
                    StatusCode::CONFLICT,
                    "AnotherOperationInProgress",
                    format!("Another operation on this or dependent resource is in progress: {id} is being deleted."),
                );
            }
            Some(nic) => {
                nic.tags = req.tags;
                nic.properties = req.properties;
                StatusCode::OK
            }
            None => {
                store.nics.insert(
                    key.clone(),
                    Nic {
                        id: id.clone(),
                        name,
                        location: req.location.clone(),
                        tags: req.tags,
                        properties: req.properties,
                        attached_to: None,
                        deleting_until: None,
                    },
                );
                StatusCode::CREATED
            }
        };
        let op = store.new_op(now, Outcome::Succeeded);
        let url = http::operation_url(&state, &sub, NS, &req.location, &op, &admitted.api_version);
        let view = store.nics.get(&key).map(Nic::view);
        http::accepted(status, view, &url)
    };
    admitted.answer(&state, response)
}

pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query, NS, "arm.get_nic", false) {
        return r.into_response();
    }
    let id = resource_id(&sub, &rg, NS, KIND, &name);
    let store = state.arm.lock();
    match store.nics.get(&id.to_lowercase()) {
        Some(nic) => http::ok(StatusCode::OK, nic.view()),
        None => not_found(&id),
    }
}

pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    let admitted = match gate(&state, &headers, &query, NS, "arm.delete_nic", true) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let id = resource_id(&sub, &rg, NS, KIND, &name);
    let now = Instant::now();
    let response = {
        let mut store = state.arm.lock();
        let Some(nic) = store.nics.get(&id.to_lowercase()) else {
            return admitted.answer(&state, StatusCode::NO_CONTENT.into_response());
        };
        if let Some(vm) = &nic.attached_to {
            return http::error(
                StatusCode::BAD_REQUEST,
                "NicInUse",
                format!(
                    "Network Interface {id} is used by existing resource {vm}. In order to \
                     delete the network interface, it must be dissociated from the resource."
                ),
            );
        }
        let location = nic.location.clone();
        let done_at = match nic.deleting_until {
            Some(t) => t,
            None if state.faults.lose_delete() => now,
            None => {
                let t = now + state.faults.provisioning_delay();
                if let Some(nic) = store.nics.get_mut(&id.to_lowercase()) {
                    nic.deleting_until = Some(t);
                }
                t
            }
        };
        let op = store.new_op(done_at, Outcome::Succeeded);
        let url = http::operation_url(&state, &sub, NS, &location, &op, &admitted.api_version);
        http::accepted(StatusCode::ACCEPTED, None, &url)
    };
    admitted.answer(&state, response)
}
