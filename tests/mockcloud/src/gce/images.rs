//! Compute Engine images and global operations:
//!
//! - `POST   /compute/v1/projects/{p}/global/images[?requestId=]` → a global Operation
//! - `GET    /compute/v1/projects/{p}/global/images/{name}`
//! - `DELETE /compute/v1/projects/{p}/global/images/{name}[?requestId=]` → a global Operation
//! - `GET    /compute/v1/projects/{p}/global/operations/{op}`
//! - `POST   /compute/v1/projects/{p}/global/operations/{op}/wait`
//!
//! `rawDisk.source` must be `https://storage.googleapis.com/BUCKET/OBJECT` naming an object of
//! the emulated Cloud Storage (400 otherwise, before anything is created). The object must be
//! a gzip'd tar whose first member is `disk.raw`, as GCE requires; GCE reads it while the
//! operation runs, so a bad archive fails the operation (`INVALID_IMAGE_FILE`, the mock's own
//! code) and leaves the image FAILED, to be deleted. A new image is PENDING for the
//! provisioning delay, then READY. A taken name is 409 `alreadyExists`; a repeated `requestId`
//! returns the first operation.
//!
//! Faults: named calls `images.insert`, `images.get`, `images.delete`, `globalOperations.get`
//! and `globalOperations.wait` are answered 503 and not carried out; the named call
//! `images.insert.operation` makes the next insert's operation end with `INTERNAL_ERROR` (image
//! FAILED). Random faults as for instances (a server error on a write after the work).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::errors::GceError;
use super::{image_check, read_fault, store, write_fault, Params, Reply};
use crate::faults::Fault;
use crate::AppState;

/// `(project, name)`.
type Key = (String, String);

/// Images and global operations.
#[derive(Debug, Default)]
pub(crate) struct ImageStore {
    images: BTreeMap<Key, Image>,
    operations: HashMap<Key, GlobalOp>,
    requests: HashMap<Key, String>,
    next_id: u64,
}

#[derive(Debug)]
struct Image {
    id: u64,
    resource: Value,
    created: String,
    ready_at: Instant,
    archive_size: usize,
    disk_size: u64,
    failed: bool,
}

#[derive(Debug)]
struct GlobalOp {
    id: u64,
    op_type: &'static str,
    target: String,
    target_id: u64,
    started: String,
    done_at: Instant,
    error: Option<(&'static str, String)>,
}

impl ImageStore {
    #[allow(clippy::too_many_arguments)]
    fn operation(
        &mut self,
        project: &str,
        op_type: &'static str,
        target: &str,
        target_id: u64,
        done_at: Instant,
        error: Option<(&'static str, String)>,
        request_id: Option<&str>,
    ) -> String {
        self.next_id += 1;
        let id = 5_000_000_000_000_000_000 + self.next_id;
        let name = format!("operation-global-{id:x}");
        self.operations.insert(
            (project.into(), name.clone()),
            GlobalOp {
                id,
                op_type,
                target: target.into(),
                target_id,
                started: store::timestamp(),
                done_at,
                error,
            },
        );
        if let Some(r) = request_id {
            self.requests
                .insert((project.into(), r.into()), name.clone());
        }
        name
    }

    /// Names of the images held, `project/name`.
    pub(crate) fn names(&self) -> Vec<String> {
        self.images
            .keys()
            .map(|(p, n)| format!("{p}/{n}"))
            .collect()
    }

    /// The image as `images.get` renders it.
    pub(crate) fn render(&self, base: &str, project: &str, name: &str) -> Option<Value> {
        let i = self.images.get(&(project.into(), name.into()))?;
        let mut v = i.resource.clone();
        let status = if i.failed {
            "FAILED"
        } else if Instant::now() >= i.ready_at {
            "READY"
        } else {
            "PENDING"
        };
        v["kind"] = json!("compute#image");
        v["id"] = json!(i.id.to_string());
        v["creationTimestamp"] = json!(i.created);
        v["selfLink"] = json!(format!("{}/{name}", images_url(base, project)));
        v["status"] = json!(status);
        v["sourceType"] = json!("RAW");
        v["archiveSizeBytes"] = json!(i.archive_size.to_string());
        v["diskSizeGb"] = json!(i.disk_size.div_ceil(1 << 30).max(1).to_string());
        v["labelFingerprint"] = json!("42WmSpB8rSM=");
        Some(v)
    }
}

fn images_url(base: &str, project: &str) -> String {
    format!("{base}/compute/v1/projects/{project}/global/images")
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    let global = "/compute/v1/projects/{project}/global";
    Router::new()
        .route(&format!("{global}/images"), post(insert_image))
        .route(
            &format!("{global}/images/{{image}}"),
            get(get_image).delete(delete_image),
        )
        .route(
            &format!("{global}/operations/{{operation}}"),
            get(get_operation),
        )
        .route(
            &format!("{global}/operations/{{operation}}/wait"),
            post(wait_operation),
        )
}

fn named(state: &AppState, call: &str) -> Result<(), GceError> {
    if state.faults.fail_named(call) {
        return Err(GceError::fault(Fault::ServerError));
    }
    Ok(())
}

fn operation_reply(state: &AppState, project: &str, name: &str) -> Reply {
    let store = state.gce.images();
    let op = store
        .operations
        .get(&(project.into(), name.into()))
        .ok_or_else(|| {
            GceError::not_found(&format!("projects/{project}/global/operations/{name}"))
        })?;
    let base = format!("{}/compute/v1/projects/{project}/global", state.base_url);
    let done = Instant::now() >= op.done_at;
    let mut v = json!({
        "kind": "compute#operation",
        "id": op.id.to_string(),
        "name": name,
        "operationType": op.op_type,
        "targetLink": format!("{base}/images/{}", op.target),
        "targetId": op.target_id.to_string(),
        "status": if done { "DONE" } else { "RUNNING" },
        "user": "mockcloud@example.iam.gserviceaccount.com",
        "progress": if done { 100 } else { 0 },
        "insertTime": op.started,
        "startTime": op.started,
        "selfLink": format!("{base}/operations/{name}"),
    });
    if done {
        v["endTime"] = json!(store::timestamp());
        if let Some((code, message)) = &op.error {
            v["error"] = json!({"errors": [{"code": code, "message": message}]});
            v["httpErrorStatusCode"] = json!(400);
            v["httpErrorMessage"] = json!("BAD REQUEST");
        }
    }
    Ok(Json(v))
}

async fn insert_image(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Reply {
    named(&state, "images.insert")?;
    let lose_answer = write_fault(&state, "images.insert")?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| GceError::parse(&e.to_string()))?;
    let request_id = q.get("requestId").map(String::as_str);
    let replayed = request_id.and_then(|r| {
        let store = state.gce.images();
        store.requests.get(&(project.clone(), r.into())).cloned()
    });
    let op_name = match replayed {
        Some(op) => op,
        None => create(&state, &project, &body, request_id)?,
    };
    if lose_answer {
        return Err(GceError::fault(Fault::ServerError));
    }
    operation_reply(&state, &project, &op_name)
}

/// Checks the request and its archive and records the image; returns the operation.
fn create(
    state: &AppState,
    project: &str,
    body: &Value,
    request_id: Option<&str>,
) -> Result<String, GceError> {
    let accepted = image_check::insert(body)?;
    let archive = state
        .gcs
        .object(&accepted.bucket, &accepted.object)
        .ok_or_else(|| {
            GceError::invalid_field(
                "resource.rawDisk.source",
                &format!(
                    "https://storage.googleapis.com/{}/{}",
                    accepted.bucket, accepted.object
                ),
                "The object does not exist or is not readable.",
            )
        })?;
    let checked = image_check::disk_tar(&archive);
    let injected = state.faults.fail_named("images.insert.operation");
    let mut store = state.gce.images();
    let key = (project.to_string(), accepted.name.clone());
    if store.images.contains_key(&key) {
        return Err(GceError::already_exists(&format!(
            "projects/{project}/global/images/{}",
            accepted.name
        )));
    }
    let error = match (&checked, injected) {
        (Err(why), _) => Some(("INVALID_IMAGE_FILE", format!("Invalid image file: {why}"))),
        (Ok(_), true) => Some(("INTERNAL_ERROR", "Internal error (injected).".to_string())),
        (Ok(_), false) => None,
    };
    store.next_id += 1;
    let id = 6_000_000_000_000_000_000 + store.next_id;
    let ready_at = Instant::now() + state.faults.provisioning_delay();
    store.images.insert(
        key,
        Image {
            id,
            resource: body.clone(),
            created: store::timestamp(),
            ready_at,
            archive_size: archive.len(),
            disk_size: checked.as_ref().copied().unwrap_or(0),
            failed: error.is_some(),
        },
    );
    tracing::info!(
        project,
        image = accepted.name,
        failed = error.is_some(),
        "gce: image inserted"
    );
    Ok(store.operation(
        project,
        "insert",
        &accepted.name,
        id,
        ready_at,
        error,
        request_id,
    ))
}

async fn get_image(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> Reply {
    named(&state, "images.get")?;
    read_fault(&state, "images.get")?;
    state
        .gce
        .images()
        .render(&state.base_url, &project, &name)
        .map(Json)
        .ok_or_else(|| GceError::not_found(&format!("projects/{project}/global/images/{name}")))
}

async fn delete_image(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    Query(q): Params,
) -> Reply {
    named(&state, "images.delete")?;
    let lose_answer = write_fault(&state, "images.delete")?;
    let request_id = q.get("requestId").map(String::as_str);
    let op_name = {
        let mut store = state.gce.images();
        let replayed =
            request_id.and_then(|r| store.requests.get(&(project.clone(), r.into())).cloned());
        match replayed {
            Some(op) => op,
            None => {
                let image = store
                    .images
                    .remove(&(project.clone(), name.clone()))
                    .ok_or_else(|| {
                        GceError::not_found(&format!("projects/{project}/global/images/{name}"))
                    })?;
                tracing::info!(project, image = name, "gce: image deleted");
                store.operation(
                    &project,
                    "delete",
                    &name,
                    image.id,
                    Instant::now(),
                    None,
                    request_id,
                )
            }
        }
    };
    if lose_answer {
        return Err(GceError::fault(Fault::ServerError));
    }
    operation_reply(&state, &project, &op_name)
}

async fn get_operation(
    State(state): State<Arc<AppState>>,
    Path((project, operation)): Path<(String, String)>,
) -> Reply {
    named(&state, "globalOperations.get")?;
    read_fault(&state, "globalOperations.get")?;
    operation_reply(&state, &project, &operation)
}

async fn wait_operation(
    State(state): State<Arc<AppState>>,
    Path((project, operation)): Path<(String, String)>,
) -> Reply {
    named(&state, "globalOperations.wait")?;
    read_fault(&state, "globalOperations.wait")?;
    let done_at = state
        .gce
        .images()
        .operations
        .get(&(project.clone(), operation.clone()))
        .map(|op| op.done_at);
    if let Some(done_at) = done_at {
        let wait = done_at
            .saturating_duration_since(Instant::now())
            .min(super::WAIT_CAP);
        tokio::time::sleep(wait).await;
    }
    operation_reply(&state, &project, &operation)
}
