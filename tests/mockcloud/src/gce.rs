//! Compute Engine emulation: zonal instances and zone operations, at the REST paths the official
//! client (`google-cloud-compute-v1`) calls, with GCE's JSON shapes and error bodies; images and
//! global operations are in `images` (module docs there).
//!
//! - `POST   /compute/v1/projects/{p}/zones/{z}/instances[?requestId=]` → an Operation
//! - `GET    /compute/v1/projects/{p}/zones/{z}/instances[?filter=&pageToken=&maxResults=]`
//! - `GET    /compute/v1/projects/{p}/zones/{z}/instances/{name}`
//! - `DELETE /compute/v1/projects/{p}/zones/{z}/instances/{name}[?requestId=]` → an Operation
//! - `GET    /compute/v1/projects/{p}/zones/{z}/operations/{op}`
//! - `POST   /compute/v1/projects/{p}/zones/{z}/operations/{op}/wait` (blocks until DONE, at most
//!   2 minutes, like GCE)
//!
//! Validation as GCE does it (400 `invalid`/`required`): unknown machine types, a confidential
//! type on a series that lacks it (SEV_SNP needs N2D and `minCpuPlatform: "AMD Milan"`, TDX needs
//! C3 or a3-highgpu-1g), confidential without `onHostMaintenance: TERMINATE`, malformed names,
//! labels, metadata keys and image URLs. A taken name is 409 `alreadyExists`; a missing resource
//! 404 `notFound`. A repeated `requestId` returns the first operation and does nothing more.
//!
//! Faults ([`crate::faults`]): throttling is 429 `rateLimitExceeded` with `Retry-After`, refused
//! before any work; a server error on insert or delete is 503 `backendError` *after* the work is
//! done (the answer is lost, the backend must retry idempotently); on reads, before. New
//! instances stay PROVISIONING, then STAGING, and their insert operation RUNNING, for the
//! provisioning delay; a delete takes as long (STOPPING meanwhile). A lost delete reports DONE
//! and leaves the instance as it was.
//!
//! Reserved zones, out of capacity: in a zone named `exhausted-…` (e.g. `exhausted-zone-a`) every
//! insert operation ends DONE with `ZONE_RESOURCE_POOL_EXHAUSTED`; in a zone named `noquota-…`,
//! with `QUOTA_EXCEEDED`. No instance is created.
//!
//! Booting (with [`crate::config::BootConfig`]): an SEV_SNP instance carrying the
//! [`GCE_BOOTSTRAP_KEY`](cdvm_provider_api::metadata::GCE_BOOTSTRAP_KEY) metadata item publishes it on the emulated metadata server and boots a
//! local guest; delete halts the guest and withdraws the metadata; a guest that exits by itself
//! leaves its instance TERMINATED.

mod catalog;
mod errors;
mod filter;
mod image_check;
mod images;
mod store;
mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use cdvm_provider_api::metadata::MetadataService;
use cdvm_provider_api::VmId;
use serde_json::{json, Value};

use crate::faults::Fault;
use crate::AppState;
use errors::GceError;
use filter::Filter;
use store::{Instance, Key, OpError, Store};

/// The longest `zoneOperations.wait` blocks, as in GCE.
const WAIT_CAP: Duration = Duration::from_secs(120);
/// The most items one list page holds (GCE's maximum and default).
const MAX_PAGE: usize = 500;

/// Compute Engine state.
#[derive(Debug, Default)]
pub struct GceState {
    store: Mutex<Store>,
    images: Mutex<images::ImageStore>,
}

impl GceState {
    /// Names of instances not deleted.
    pub fn live(&self) -> Vec<String> {
        let mut store = self.lock();
        store.sweep(Instant::now());
        store.instances.keys().map(|(_, _, n)| n.clone()).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn images(&self) -> MutexGuard<'_, images::ImageStore> {
        self.images.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Images not deleted, as `project/name`.
    pub fn image_names(&self) -> Vec<String> {
        self.images().names()
    }

    /// An image as `images.get` renders it (`base`: the mock's base URL, for its links).
    pub fn image(&self, base: &str, project: &str, name: &str) -> Option<Value> {
        self.images().render(base, project, name)
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    let zone = "/compute/v1/projects/{project}/zones/{zone}";
    Router::new()
        .route(
            &format!("{zone}/instances"),
            get(list_instances).post(insert_instance),
        )
        .route(
            &format!("{zone}/instances/{{instance}}"),
            get(get_instance).delete(delete_instance),
        )
        .route(
            &format!("{zone}/operations/{{operation}}"),
            get(get_operation),
        )
        .route(
            &format!("{zone}/operations/{{operation}}/wait"),
            post(wait_operation),
        )
        .merge(images::routes())
}

type Reply = Result<Json<Value>, GceError>;
type Params = Query<HashMap<String, String>>;

fn key(project: &str, zone: &str, name: &str) -> Key {
    (project.into(), zone.into(), name.into())
}

fn resource(project: &str, zone: &str, name: &str) -> String {
    format!("projects/{project}/zones/{zone}/instances/{name}")
}

/// Draws a fault for a read: any fault refuses the call.
fn read_fault(state: &AppState, call: &str) -> Result<(), GceError> {
    match state.faults.on_call(call) {
        Some(f) => Err(GceError::fault(f)),
        None => Ok(()),
    }
}

/// Draws a fault for a write: throttling refuses it now; a server error is returned after the
/// work is done.
fn write_fault(state: &AppState, call: &str) -> Result<bool, GceError> {
    match state.faults.on_call(call) {
        Some(Fault::Throttle) => Err(GceError::fault(Fault::Throttle)),
        Some(Fault::ServerError) => Ok(true),
        None => Ok(false),
    }
}

fn operation_reply(state: &AppState, project: &str, zone: &str, name: &str) -> Reply {
    let store = state.gce.lock();
    let k = key(project, zone, name);
    let op = store.operations.get(&k).ok_or_else(|| {
        GceError::not_found(&format!(
            "projects/{project}/zones/{zone}/operations/{name}"
        ))
    })?;
    Ok(Json(store::render_operation(
        &state.base_url,
        &k,
        op,
        Instant::now(),
    )))
}

/// The capacity failure a reserved zone answers with, if `zone` is one.
fn reserved_zone_error(project: &str, zone: &str, machine_type: &str) -> Option<OpError> {
    if zone.starts_with("exhausted-") {
        Some(OpError {
            code: "ZONE_RESOURCE_POOL_EXHAUSTED",
            message: format!(
                "The zone 'projects/{project}/zones/{zone}' does not have enough resources \
                 available to fulfill the request.  Try a different zone, or try again later."
            ),
            http_status: 503,
            http_message: "SERVICE UNAVAILABLE",
        })
    } else if zone.starts_with("noquota-") {
        let series = machine_type.split('-').next().unwrap_or_default();
        let region = zone.rsplit_once('-').map_or(zone, |(r, _)| r);
        Some(OpError {
            code: "QUOTA_EXCEEDED",
            message: format!(
                "Quota '{}_CPUS' exceeded.  Limit: 0.0 in region {region}.",
                series.to_uppercase()
            ),
            http_status: 403,
            http_message: "FORBIDDEN",
        })
    } else {
        None
    }
}

async fn insert_instance(
    State(state): State<Arc<AppState>>,
    Path((project, zone)): Path<(String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Reply {
    let lose_answer = write_fault(&state, "instances.insert")?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| GceError::parse(&e.to_string()))?;
    let request_id = q.get("requestId").map(String::as_str);
    let replayed = state.gce.lock().replay(&project, &zone, request_id);
    let op_name = match replayed {
        Some(op) => op,
        None => {
            let accepted = validate::insert(&zone, &body)?;
            let (op_name, boot) = create(&state, &project, &zone, &body, &accepted, request_id)?;
            if boot {
                boot_instance(&state, &project, &zone, &accepted).await;
            }
            op_name
        }
    };
    if lose_answer {
        return Err(GceError::fault(Fault::ServerError));
    }
    operation_reply(&state, &project, &zone, &op_name)
}

/// Records the instance (or, in a reserved zone, the failed operation); says whether to boot it.
fn create(
    state: &AppState,
    project: &str,
    zone: &str,
    body: &Value,
    accepted: &validate::Accepted,
    request_id: Option<&str>,
) -> Result<(String, bool), GceError> {
    let now = Instant::now();
    let mut store = state.gce.lock();
    store.sweep(now);
    let k = key(project, zone, &accepted.name);
    if store.instances.contains_key(&k) {
        return Err(GceError::already_exists(&resource(
            project,
            zone,
            &accepted.name,
        )));
    }
    if let Some(error) = reserved_zone_error(project, zone, &accepted.machine_type) {
        let name = store.operation(
            project,
            zone,
            "insert",
            &accepted.name,
            0,
            now,
            Some(error),
            request_id,
        );
        return Ok((name, false));
    }
    let id = store.id();
    let ready_at = now + state.faults.provisioning_delay();
    let boot = state.booter.is_some()
        && accepted.confidential.as_deref() == Some("SEV_SNP")
        && accepted.bootstrap.is_some();
    store.instances.insert(
        k,
        Instance {
            id,
            resource: body.clone(),
            machine_type: accepted.machine_type.clone(),
            series: accepted.machine.series,
            created: store::timestamp(),
            created_at: now,
            ready_at,
            gone_at: None,
            guest: None,
            terminated: None,
        },
    );
    let op = store.operation(
        project,
        zone,
        "insert",
        &accepted.name,
        id,
        ready_at,
        None,
        request_id,
    );
    tracing::info!(
        project,
        zone,
        instance = accepted.name,
        machine_type = accepted.machine_type,
        vcpus = accepted.machine.vcpus,
        memory_mib = accepted.machine.memory_mib,
        "gce: instance inserted"
    );
    Ok((op, boot))
}

async fn boot_instance(state: &AppState, project: &str, zone: &str, accepted: &validate::Accepted) {
    let (Some(booter), Some(bootstrap)) = (&state.booter, &accepted.bootstrap) else {
        return;
    };
    let name = &accepted.name;
    state
        .metadata
        .register(MetadataService::Gcp, name, bootstrap.clone());
    let booted = booter
        .boot(&state.base_url, MetadataService::Gcp, name, bootstrap)
        .await;
    let orphan = {
        let mut store = state.gce.lock();
        match (store.instances.get_mut(&key(project, zone, name)), booted) {
            (Some(i), Ok(vm)) if i.gone_at.is_none() => {
                i.guest = Some(vm);
                None
            }
            // Deleted while booting: the guest must not outlive it.
            (_, Ok(vm)) => Some(vm),
            (Some(i), Err(e)) => {
                tracing::warn!(instance = name, error = %e, "gce: guest did not boot");
                i.terminated = Some(format!("Instance failed to boot: {e}"));
                None
            }
            (None, Err(_)) => None,
        }
    };
    if let Some(vm) = orphan {
        booter.halt(&vm).await;
    }
}

/// Marks instances whose guest has exited by itself TERMINATED, as GCE shows a guest power-off.
async fn refresh_guests(state: &AppState) {
    let Some(booter) = &state.booter else {
        return;
    };
    let guests: Vec<(Key, VmId)> = state
        .gce
        .lock()
        .instances
        .iter()
        .filter(|(_, i)| i.gone_at.is_none() && i.terminated.is_none())
        .filter_map(|(k, i)| i.guest.clone().map(|g| (k.clone(), g)))
        .collect();
    for (k, vm) in guests {
        if !booter.running(&vm).await {
            if let Some(i) = state.gce.lock().instances.get_mut(&k) {
                i.terminated
                    .get_or_insert_with(|| "Instance terminated by guest OS shutdown.".into());
            }
        }
    }
}

async fn get_instance(
    State(state): State<Arc<AppState>>,
    Path((project, zone, name)): Path<(String, String, String)>,
) -> Reply {
    read_fault(&state, "instances.get")?;
    refresh_guests(&state).await;
    let now = Instant::now();
    let mut store = state.gce.lock();
    store.sweep(now);
    let k = key(&project, &zone, &name);
    let instance = store
        .instances
        .get(&k)
        .ok_or_else(|| GceError::not_found(&resource(&project, &zone, &name)))?;
    Ok(Json(store::render_instance(
        &state.base_url,
        &k,
        instance,
        now,
    )))
}

async fn list_instances(
    State(state): State<Arc<AppState>>,
    Path((project, zone)): Path<(String, String)>,
    Query(q): Params,
) -> Reply {
    read_fault(&state, "instances.list")?;
    let filter_text = q.get("filter").map(String::as_str).unwrap_or_default();
    let filter = Filter::parse(filter_text)
        .map_err(|why| GceError::invalid_field("filter", filter_text, &why))?;
    let page_size = match q.get("maxResults") {
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| *m <= MAX_PAGE)
            .ok_or_else(|| GceError::invalid_field("maxResults", m, "Must be 0 to 500."))?,
        None => MAX_PAGE,
    };
    let page_size = if page_size == 0 { MAX_PAGE } else { page_size };
    let offset = match q.get("pageToken") {
        Some(t) => t
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| GceError::invalid_field("pageToken", t, "Invalid page token."))?,
        None => 0,
    };
    refresh_guests(&state).await;
    let now = Instant::now();
    let mut store = state.gce.lock();
    store.sweep(now);
    let matching: Vec<Value> = store
        .instances
        .iter()
        .filter(|((p, z, _), _)| *p == project && *z == zone)
        .map(|(k, i)| store::render_instance(&state.base_url, k, i, now))
        .filter(|v| filter.matches(v))
        .collect();
    let zone_url = store::zone_url(&state.base_url, &project, &zone);
    let mut out = json!({
        "kind": "compute#instanceList",
        "id": format!("projects/{project}/zones/{zone}/instances"),
        "selfLink": format!("{zone_url}/instances"),
    });
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page_size)
        .cloned()
        .collect();
    // Like GCE, an empty list has no `items` at all.
    if !page.is_empty() {
        out["items"] = Value::Array(page);
    }
    if offset + page_size < matching.len() {
        out["nextPageToken"] = json!(format!("page-{}", offset + page_size));
    }
    Ok(Json(out))
}

async fn delete_instance(
    State(state): State<Arc<AppState>>,
    Path((project, zone, name)): Path<(String, String, String)>,
    Query(q): Params,
) -> Reply {
    let lose_answer = write_fault(&state, "instances.delete")?;
    let request_id = q.get("requestId").map(String::as_str);
    let (op_name, halt) = {
        let now = Instant::now();
        let mut store = state.gce.lock();
        store.sweep(now);
        match store.replay(&project, &zone, request_id) {
            Some(op) => (op, None),
            None => start_delete(&state, &mut store, &project, &zone, &name, request_id, now)?,
        }
    };
    if let Some(guest) = halt {
        state.metadata.remove(MetadataService::Gcp, &name);
        if let (Some(booter), Some(vm)) = (&state.booter, guest) {
            booter.halt(&vm).await;
        }
    }
    if lose_answer {
        return Err(GceError::fault(Fault::ServerError));
    }
    operation_reply(&state, &project, &zone, &op_name)
}

/// Records a delete; returns the operation and, when the instance really stops, its guest.
#[allow(clippy::type_complexity)]
fn start_delete(
    state: &AppState,
    store: &mut Store,
    project: &str,
    zone: &str,
    name: &str,
    request_id: Option<&str>,
    now: Instant,
) -> Result<(String, Option<Option<VmId>>), GceError> {
    let k = key(project, zone, name);
    let lost = state.faults.lose_delete();
    let instance = store
        .instances
        .get_mut(&k)
        .ok_or_else(|| GceError::not_found(&resource(project, zone, name)))?;
    let id = instance.id;
    let (done_at, halt) = if lost {
        tracing::info!(instance = name, "gce: losing this delete");
        (now, None)
    } else if let Some(gone) = instance.gone_at {
        (gone, None)
    } else {
        let gone = now + state.faults.provisioning_delay();
        instance.gone_at = Some(gone);
        (gone, Some(instance.guest.take()))
    };
    let op = store.operation(project, zone, "delete", name, id, done_at, None, request_id);
    Ok((op, halt))
}

async fn get_operation(
    State(state): State<Arc<AppState>>,
    Path((project, zone, operation)): Path<(String, String, String)>,
) -> Reply {
    read_fault(&state, "zoneOperations.get")?;
    operation_reply(&state, &project, &zone, &operation)
}

async fn wait_operation(
    State(state): State<Arc<AppState>>,
    Path((project, zone, operation)): Path<(String, String, String)>,
) -> Reply {
    read_fault(&state, "zoneOperations.wait")?;
    let done_at = state
        .gce
        .lock()
        .operations
        .get(&key(&project, &zone, &operation))
        .map(|op| op.done_at);
    if let Some(done_at) = done_at {
        let wait = done_at
            .saturating_duration_since(Instant::now())
            .min(WAIT_CAP);
        tokio::time::sleep(wait).await;
    }
    operation_reply(&state, &project, &zone, &operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_zones_fail_for_capacity() {
        let e = reserved_zone_error("p", "exhausted-zone-a", "n2d-standard-2").expect("exhausted");
        assert_eq!(e.code, "ZONE_RESOURCE_POOL_EXHAUSTED");
        let e = reserved_zone_error("p", "noquota-west1-a", "n2d-standard-2").expect("quota");
        assert_eq!(e.code, "QUOTA_EXCEEDED");
        assert!(e.message.contains("N2D_CPUS"), "{}", e.message);
        assert!(reserved_zone_error("p", "us-central1-a", "n2d-standard-2").is_none());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = store::timestamp();
        assert_eq!(t.len(), "2026-05-01T10:00:00.000-00:00".len(), "{t}");
        assert!(t.starts_with("20"), "{t}");
    }
}
