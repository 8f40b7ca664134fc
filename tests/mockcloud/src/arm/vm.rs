//! `…/providers/Microsoft.Compute/virtualMachines[/{name}]`: PUT, GET, DELETE, list.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use cdvm_provider_api::metadata::MetadataService;
use serde_json::{json, Value};

use super::http::{self, gate, resource_id, Namespace, Refusal};
use super::sizes::Family;
use super::store::{guid, Outcome, Store, Vm};
use super::validate::{self, VmRequest};
use super::{NO_CAPACITY_LOCATION, NO_QUOTA_LOCATION, NO_SKU_LOCATION, PAGE_SIZE};
use crate::AppState;

const NS: Namespace = Namespace::Compute;
const KIND: &str = "virtualMachines";

fn conflict(code: &str, message: String) -> Refusal {
    http::refuse(StatusCode::CONFLICT, code, message)
}

/// The NICs a VM names must exist and be free (or already its own).
fn check_nics(store: &Store, req: &VmRequest, vm_key: &str) -> Result<(), Refusal> {
    for (id, _) in &req.nics {
        match store.nics.get(&id.to_lowercase()) {
            Some(nic) if nic.deleting_until.is_none() => {
                if let Some(other) = nic.attached_to.as_deref().filter(|o| *o != vm_key) {
                    return Err(http::refuse(
                        StatusCode::BAD_REQUEST,
                        "NicInUse",
                        format!(
                            "Network interface {id} is already used by virtual machine {other}."
                        ),
                    ));
                }
            }
            _ => {
                return Err(http::refuse(
                    StatusCode::BAD_REQUEST,
                    "NotFound",
                    format!("Resource {id} not found."),
                ))
            }
        }
    }
    Ok(())
}

/// Refusals of a new VM in the reserved locations (see the module docs).
fn reserved_location_refusal(req: &VmRequest) -> Option<Refusal> {
    let location = req.location.as_str();
    if location.eq_ignore_ascii_case(NO_QUOTA_LOCATION) {
        return Some(conflict(
            "OperationNotAllowed",
            format!(
                "Operation could not be completed as it results in exceeding approved \
                 standardDCASv5Family Cores quota. Additional details - Deployment Model: \
                 Resource Manager, Location: {location}, Current Limit: 0, Current Usage: 0, \
                 Additional Required: 2, (Minimum) New Limit Required: 2."
            ),
        ));
    }
    if location.eq_ignore_ascii_case(NO_SKU_LOCATION) {
        return Some(conflict(
            "SkuNotAvailable",
            format!(
                "The requested VM size for resource 'Following SKUs have failed for Capacity \
                 Restrictions: {}' is currently not available in location '{location}'. Please \
                 try another size or deploy to a different location or different zone. See \
                 https://aka.ms/azureskunotavailable for details.",
                req.size
            ),
        ));
    }
    None
}

/// What a PUT did, for the steps after the lock is released.
enum Plan {
    Updated,
    Created { boot: Option<String> },
}

pub(super) async fn put(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.arm.count_put();
    let admitted = match gate(&state, &headers, &query, NS, "arm.put_vm", true) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let req = match validate::vm(&body) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let id = resource_id(&sub, &rg, NS, KIND, &name);
    let key = id.to_lowercase();
    let now = Instant::now();
    let plan = {
        let mut guard = state.arm.lock();
        let store = &mut *guard;
        if let Err(r) = check_nics(store, &req, &key) {
            return r.into_response();
        }
        match store.vms.get_mut(&key) {
            Some(vm) => {
                if vm.deleting_until.is_some() {
                    return conflict(
                        "OperationNotAllowed",
                        format!(
                            "Operation 'PUT' is not allowed on VM '{name}' since the VM is marked \
                             for deletion. You can only retry the Delete operation (or wait for \
                             an ongoing one to complete)."
                        ),
                    )
                    .into_response();
                }
                let changed = if vm.size != req.size {
                    Some("hardwareProfile.vmSize")
                } else if vm.admin != req.admin {
                    Some("osProfile.adminUsername")
                } else if vm.properties.pointer("/securityProfile/securityType")
                    != req.properties.pointer("/securityProfile/securityType")
                {
                    Some("securityProfile.securityType")
                } else {
                    None
                };
                if let Some(property) = changed {
                    return conflict(
                        "PropertyChangeNotAllowed",
                        format!("Changing property '{property}' is not allowed."),
                    )
                    .into_response();
                }
                vm.tags = req.tags;
                Plan::Updated
            }
            None => {
                if let Some(refusal) = reserved_location_refusal(&req) {
                    return refusal.into_response();
                }
                let outcome = if req.location.eq_ignore_ascii_case(NO_CAPACITY_LOCATION) {
                    Outcome::Failed {
                        code: "AllocationFailed".into(),
                        message: format!(
                            "Allocation failed. We do not have sufficient capacity for the \
                             requested VM size {} in this region. Read more about improving \
                             likelihood of allocation success at http://aka.ms/allocation-guidance",
                            req.size
                        ),
                    }
                } else {
                    Outcome::Succeeded
                };
                let boot = (state.booter.is_some()
                    && req.confidential
                    && req.family == Family::SevSnp
                    && outcome == Outcome::Succeeded)
                    .then(|| req.user_data.clone())
                    .flatten();
                let nics: Vec<(String, bool)> = req
                    .nics
                    .iter()
                    .map(|(id, delete)| (id.to_lowercase(), *delete))
                    .collect();
                for (nic, _) in &nics {
                    if let Some(n) = store.nics.get_mut(nic) {
                        n.attached_to = Some(key.clone());
                    }
                }
                store.vms.insert(
                    key.clone(),
                    Vm {
                        id: id.clone(),
                        name: name.clone(),
                        location: req.location.clone(),
                        tags: req.tags,
                        properties: req.properties,
                        size: req.size.to_string(),
                        admin: req.admin,
                        vm_id: guid(),
                        ready_at: now + state.faults.provisioning_delay(),
                        outcome,
                        deleting_until: None,
                        guest: None,
                        stopped: false,
                        nics,
                    },
                );
                Plan::Created { boot }
            }
        }
    };
    let status = match plan {
        Plan::Updated => StatusCode::OK,
        Plan::Created { boot } => {
            if let Some(user_data) = boot {
                boot_guest(&state, &key, &name, user_data).await;
            }
            StatusCode::CREATED
        }
    };
    let response = {
        let mut store = state.arm.lock();
        let (done_at, outcome, location, view) = match store.vms.get(&key) {
            Some(vm) => (
                vm.ready_at.max(now),
                vm.outcome.clone(),
                vm.location.clone(),
                Some(vm.view(now, false)),
            ),
            None => (now, Outcome::Succeeded, req.location, None),
        };
        let op = store.new_op(done_at, outcome);
        let url = http::operation_url(&state, &sub, NS, &location, &op, &admitted.api_version);
        http::accepted(status, view, &url)
    };
    admitted.answer(&state, response)
}

fn mark_failed(state: &AppState, key: &str, message: String) {
    if let Some(vm) = state.arm.lock().vms.get_mut(key) {
        vm.outcome = Outcome::Failed {
            code: "OSProvisioningClientError".into(),
            message,
        };
    }
}

/// Publishes the user data in the Azure metadata service and boots the agent.
async fn boot_guest(state: &AppState, key: &str, name: &str, user_data: String) {
    let Some(booter) = &state.booter else {
        return;
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&user_data)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let Some(bootstrap) = decoded else {
        mark_failed(state, key, "userData is not UTF-8 text".into());
        return;
    };
    state
        .metadata
        .register(MetadataService::Azure, name, user_data);
    match booter
        .boot(&state.base_url, MetadataService::Azure, name, &bootstrap)
        .await
    {
        Ok(guest) => {
            let orphan = {
                let mut store = state.arm.lock();
                match store.vms.get_mut(key) {
                    Some(vm) if vm.deleting_until.is_none() => {
                        vm.guest = Some(guest);
                        None
                    }
                    _ => Some(guest),
                }
            };
            // Deleted while booting: the guest must not outlive its VM.
            if let Some(guest) = orphan {
                booter.halt(&guest).await;
                state.metadata.remove(MetadataService::Azure, name);
            }
        }
        Err(e) => {
            tracing::warn!(instance = name, error = %e, "boot failed");
            state.metadata.remove(MetadataService::Azure, name);
            mark_failed(state, key, format!("The VM did not boot: {e}"));
        }
    }
}

fn not_found(rg: &str, name: &str) -> Response {
    http::error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group '{rg}' \
             was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, &query, NS, "arm.get_vm", false) {
        return r.into_response();
    }
    let expand = query
        .get("$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"));
    let key = resource_id(&sub, &rg, NS, KIND, &name).to_lowercase();
    let guest = match state.arm.lock().vms.get(&key) {
        None => return not_found(&rg, &name),
        Some(vm) => vm
            .guest
            .clone()
            .filter(|_| expand && !vm.stopped && vm.deleting_until.is_none()),
    };
    // A guest that powered off by itself leaves the VM stopped (still allocated).
    let exited = match (&guest, &state.booter) {
        (Some(g), Some(b)) => !b.running(g).await,
        _ => false,
    };
    let mut store = state.arm.lock();
    match store.vms.get_mut(&key) {
        None => not_found(&rg, &name),
        Some(vm) => {
            if exited {
                vm.stopped = true;
            }
            http::ok(StatusCode::OK, vm.view(Instant::now(), expand))
        }
    }
}

pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, name)): Path<(String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    let admitted = match gate(&state, &headers, &query, NS, "arm.delete_vm", true) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let key = resource_id(&sub, &rg, NS, KIND, &name).to_lowercase();
    let now = Instant::now();
    let (response, began, guest) = {
        let mut guard = state.arm.lock();
        let store = &mut *guard;
        let Some(vm) = store.vms.get_mut(&key) else {
            return admitted.answer(&state, StatusCode::NO_CONTENT.into_response());
        };
        let location = vm.location.clone();
        let (done_at, began, guest) = match vm.deleting_until {
            Some(t) => (t, false, None),
            None if state.faults.lose_delete() => (now, false, None),
            None => {
                let t = now + state.faults.provisioning_delay();
                vm.deleting_until = Some(t);
                let guest = vm.guest.take();
                for (nic, delete) in vm.nics.clone() {
                    if let Some(n) = store.nics.get_mut(&nic) {
                        if delete {
                            n.deleting_until = Some(t);
                        } else {
                            n.attached_to = None;
                        }
                    }
                }
                (t, true, guest)
            }
        };
        let op = store.new_op(done_at, Outcome::Succeeded);
        let url = http::operation_url(&state, &sub, NS, &location, &op, &admitted.api_version);
        (
            http::accepted(StatusCode::ACCEPTED, None, &url),
            began,
            guest,
        )
    };
    if began {
        state.metadata.remove(MetadataService::Azure, &name);
    }
    if let (Some(guest), Some(booter)) = (guest, &state.booter) {
        booter.halt(&guest).await;
    }
    admitted.answer(&state, response)
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Path((sub, rg)): Path<(String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    let admitted = match gate(&state, &headers, &query, NS, "arm.list_vms", false) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let skip: usize = match query.get("$skiptoken").map(|t| t.parse()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return http::error(
                StatusCode::BAD_REQUEST,
                "InvalidSkipToken",
                "The skip token is invalid.",
            )
        }
    };
    // The ids of this group's VMs all start with it (the name left empty).
    let prefix = resource_id(&sub, &rg, NS, KIND, "").to_lowercase();
    let now = Instant::now();
    let store = state.arm.lock();
    let all: Vec<&Vm> = store
        .vms
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, v)| v)
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(PAGE_SIZE)
        .map(|v| v.view(now, false))
        .collect();
    let mut body = json!({ "value": page });
    if skip + PAGE_SIZE < all.len() {
        body["nextLink"] = json!(format!(
            "{}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines?api-version={}&$skiptoken={}",
            state.base_url,
            admitted.api_version,
            skip + PAGE_SIZE
        ));
    }
    http::ok(StatusCode::OK, body)
}
