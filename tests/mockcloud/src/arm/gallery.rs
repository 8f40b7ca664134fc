//! Azure Compute Gallery: image definitions and image versions, under the real paths
//! (`…/providers/Microsoft.Compute/galleries/{g}/images/{d}[/versions/{v}]`, PUT/GET/DELETE).
//! Galleries themselves are not modelled: any gallery name exists.
//!
//! Checked as Azure does: a definition needs `osType`, `osState` and `identifier`
//! (400 `InvalidParameter`), `SecurityType` `ConfidentialVM[Supported]` needs
//! `hyperVGeneration: V2` (400 `InvalidParameter`), and a PUT may not change the OS, state,
//! generation or identifier of an existing one (409 `PropertyChangeNotAllowed`); a definition
//! with versions cannot be deleted (409 `CannotDeleteResource`). A version's name is
//! `Major.Minor.Patch`, each an int32 (400 `InvalidParameter`); its definition must exist (404
//! `ParentResourceNotFound`); `storageProfile.osDiskImage.source` needs a `storageAccountId`
//! of `Microsoft.Storage/storageAccounts` (400 `LinkedInvalidPropertyId`) and a `uri` naming an
//! existing page blob of that account on this mock whose last 512 bytes are a VHD footer
//! (`conectix`) (400 `InvalidParameter`). The gallery's copy is immediate: deleting the blob
//! afterwards changes nothing.
//!
//! PUTs answer 201 (200 for an update) with an `Azure-AsyncOperation` under
//! `…/locations/{loc}/capsOperations/{id}`; a version reads `Creating` for the provisioning
//! delay, then `Succeeded` (or `Failed`: the named fault `galleryImageVersions.provisioning`).
//! DELETEs answer 202 and remove at once; deleting an unknown resource answers 204.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::blob;
use super::http::{self, gate, resource_id, server_error, Namespace, Refusal};
use super::store::Outcome;
use crate::AppState;

const NS: Namespace = Namespace::Gallery;

/// A gallery image definition or version.
#[derive(Debug, Clone)]
pub struct Item {
    /// Resource id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Region.
    pub location: String,
    /// Tags.
    pub tags: Value,
    /// The request's properties.
    pub properties: Value,
    /// When it stops reading `Creating`.
    pub ready_at: Instant,
    /// How its creation ends.
    pub outcome: Outcome,
}

impl Item {
    /// As `GET` returns it.
    pub fn view(&self, kind: &str, now: Instant) -> Value {
        let state = match (now >= self.ready_at, &self.outcome) {
            (false, _) => "Creating",
            (true, Outcome::Succeeded) => "Succeeded",
            (true, Outcome::Failed { .. }) => "Failed",
        };
        let mut properties = self.properties.clone();
        if let Some(p) = properties.as_object_mut() {
            p.insert("provisioningState".into(), state.into());
        }
        json!({
            "id": self.id,
            "name": self.name,
            "type": format!("Microsoft.Compute/galleries/{kind}"),
            "location": self.location,
            "tags": self.tags,
            "properties": properties,
        })
    }
}

/// Definitions and versions, keyed by lowercased resource id.
#[derive(Debug, Default)]
pub struct Gallery {
    /// Image definitions.
    pub definitions: BTreeMap<String, Item>,
    /// Image versions.
    pub versions: BTreeMap<String, Item>,
}

fn caps_url(state: &AppState, sub: &str, loc: &str, op: &str, api: &str) -> String {
    format!(
        "{}/subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/capsOperations/{op}?api-version={api}",
        state.base_url
    )
}

fn invalid(message: impl Into<String>) -> Refusal {
    http::refuse(StatusCode::BAD_REQUEST, "InvalidParameter", message)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn parse_body(body: &[u8]) -> Result<(String, Value, Value), Refusal> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        http::refuse(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: {e}"),
        )
    })?;
    let location = str_at(&v, "/location").to_string();
    if location.is_empty() {
        return Err(http::refuse(
            StatusCode::BAD_REQUEST,
            "LocationRequired",
            "The location property is required for this definition.",
        ));
    }
    let tags = v.get("tags").cloned().unwrap_or_else(|| json!({}));
    let properties = v.get("properties").cloned().unwrap_or_else(|| json!({}));
    Ok((location, tags, properties))
}

fn check_definition(p: &Value) -> Result<(), Refusal> {
    for field in ["osType", "osState"] {
        if str_at(p, &format!("/{field}")).is_empty() {
            return Err(invalid(format!(
                "Required parameter 'galleryImage.properties.{field}' is missing (null)."
            )));
        }
    }
    for field in ["publisher", "offer", "sku"] {
        if str_at(p, &format!("/identifier/{field}")).is_empty() {
            return Err(invalid(format!(
                "Required parameter 'galleryImage.properties.identifier.{field}' is missing (null)."
            )));
        }
    }
    let security = p
        .get("features")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|f| str_at(f, "/name") == "SecurityType")
        .map(|f| str_at(f, "/value").to_string())
        .unwrap_or_default();
    let generation = match str_at(p, "/hyperVGeneration") {
        "" => "V1",
        g => g,
    };
    let confidential = security.to_ascii_lowercase().contains("confidentialvm");
    if confidential && generation != "V2" {
        return Err(invalid(format!(
            "The SecurityType '{security}' is only supported with HyperVGeneration 'V2', not '{generation}'."
        )));
    }
    Ok(())
}

fn immutable_changed(old: &Value, new: &Value) -> Option<&'static str> {
    ["/osType", "/osState", "/hyperVGeneration", "/identifier"]
        .into_iter()
        .find(|p| old.pointer(p) != new.pointer(p))
}

pub(super) async fn put_definition(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, gallery, name)): Path<(String, String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = "galleryImages.createOrUpdate";
    let admitted = match gate(&state, &headers, &query, NS, call, true) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    if state.faults.fail_named(call) {
        return server_error(&state).into_response();
    }
    let (location, tags, properties) = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_definition(&properties) {
        return r.into_response();
    }
    let id = resource_id(&sub, &rg, NS, &format!("galleries/{gallery}/images"), &name);
    let now = Instant::now();
    let mut g = state.arm.gallery();
    let status = match g.definitions.get_mut(&id.to_lowercase()) {
        Some(old) => {
            if let Some(field) = immutable_changed(&old.properties, &properties) {
                return http::error(
                    StatusCode::CONFLICT,
                    "PropertyChangeNotAllowed",
                    format!(
                        "Changing property 'galleryImage.properties{}' is not allowed.",
                        field.replace('/', ".")
                    ),
                );
            }
            old.tags = tags;
            old.properties = properties;
            StatusCode::OK
        }
        None => {
            g.definitions.insert(
                id.to_lowercase(),
                Item {
                    id: id.clone(),
                    name,
                    location: location.clone(),
                    tags,
                    properties,
                    ready_at: now,
                    outcome: Outcome::Succeeded,
                },
            );
            StatusCode::CREATED
        }
    };
    let view = g
        .definitions
        .get(&id.to_lowercase())
        .map(|d| d.view("images", now));
    drop(g);
    let op = state.arm.lock().new_op(now, Outcome::Succeeded);
    let url = caps_url(&state, &sub, &location, &op, &admitted.api_version);
    admitted.answer(&state, http::accepted(status, view, &url))
}

fn valid_version_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<i32>().is_ok()
        })
}

/// Checks the version's source: a storage account id and a blob of it on this mock holding a VHD.
fn check_source(state: &AppState, p: &Value) -> Result<(), Refusal> {
    let source = p
        .pointer("/storageProfile/osDiskImage/source")
        .cloned()
        .unwrap_or(Value::Null);
    let account_id = str_at(&source, "/storageAccountId");
    let uri = str_at(&source, "/uri");
    if uri.is_empty() {
        return Err(invalid(
            "Required parameter 'galleryImageVersion.properties.storageProfile.osDiskImage.source.uri' is missing (null).",
        ));
    }
    let parts: Vec<&str> = account_id.trim_start_matches('/').split('/').collect();
    let account = match parts.as_slice() {
        [s, _, r, _, p, ns, t, account]
            if s.eq_ignore_ascii_case("subscriptions")
                && r.eq_ignore_ascii_case("resourceGroups")
                && p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.Storage")
                && t.eq_ignore_ascii_case("storageAccounts") =>
        {
            *account
        }
        _ => {
            return Err(http::refuse(
                StatusCode::BAD_REQUEST,
                "LinkedInvalidPropertyId",
                format!("Property id '{account_id}' at path 'properties.storageProfile.osDiskImage.source.storageAccountId' is invalid. Expect fully qualified resource Id that start with '/subscriptions/{{subscriptionId}}' or '/providers/{{resourceProviderNamespace}}/'."),
            ))
        }
    };
    let prefix = format!("{}/blob/", state.base_url);
    let path: Vec<&str> = uri
        .strip_prefix(&prefix)
        .map(|p| p.split('/').collect())
        .unwrap_or_default();
    let [blob_account, container, name] = path.as_slice() else {
        return Err(invalid(format!(
            "The source uri '{uri}' is not a blob of this emulator ({prefix}ACCOUNT/CONTAINER/BLOB)."
        )));
    };
    if !blob_account.eq_ignore_ascii_case(account) {
        return Err(invalid(format!(
            "The source uri '{uri}' is not in storage account '{account}'."
        )));
    }
    let blobs = state.arm.blobs();
    let Some(b) = blobs.get(&blob::key(blob_account, container, name)) else {
        return Err(invalid(format!("The source blob '{uri}' does not exist.")));
    };
    if !b.last_page().starts_with(b"conectix") {
        return Err(invalid(format!(
            "The source blob '{uri}' is not a VHD: its last 512 bytes are no 'conectix' footer."
        )));
    }
    Ok(())
}

pub(super) async fn put_version(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, gallery, image, name)): Path<(String, String, String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = "galleryImageVersions.createOrUpdate";
    let admitted = match gate(&state, &headers, &query, NS, call, true) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    if state.faults.fail_named(call) {
        return server_error(&state).into_response();
    }
    if !valid_version_name(&name) {
        return invalid(format!(
            "The gallery image version name '{name}' is invalid. It must follow the format \
             Major(int32).Minor(int32).Patch(int32)."
        ))
        .into_response();
    }
    let (location, tags, properties) = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let parent = resource_id(
        &sub,
        &rg,
        NS,
        &format!("galleries/{gallery}/images"),
        &image,
    );
    if !state
        .arm
        .gallery()
        .definitions
        .contains_key(&parent.to_lowercase())
    {
        return http::error(
            StatusCode::NOT_FOUND,
            "ParentResourceNotFound",
            format!("Can not perform requested operation on nested resource. Parent resource '{gallery}/{image}' not found."),
        );
    }
    if let Err(r) = check_source(&state, &properties) {
        return r.into_response();
    }
    let id = format!("{parent}/versions/{name}");
    let now = Instant::now();
    let outcome = if state.faults.fail_named("galleryImageVersions.provisioning") {
        Outcome::Failed {
            code: "ReplicationJobsNotCompleted".into(),
            message: format!("Replication job not completed in region: '{location}'."),
        }
    } else {
        Outcome::Succeeded
    };
    let ready_at = now + state.faults.provisioning_delay();
    let mut g = state.arm.gallery();
    let status = match g.versions.get_mut(&id.to_lowercase()) {
        Some(old) => {
            if old.properties.pointer("/storageProfile") != properties.pointer("/storageProfile") {
                return http::error(
                    StatusCode::CONFLICT,
                    "PropertyChangeNotAllowed",
                    "Changing property 'galleryImageVersion.properties.storageProfile' is not allowed.",
                );
            }
            old.tags = tags;
            StatusCode::OK
        }
        None => {
            g.versions.insert(
                id.to_lowercase(),
                Item {
                    id: id.clone(),
                    name,
                    location: location.clone(),
                    tags,
                    properties,
                    ready_at,
                    outcome: outcome.clone(),
                },
            );
            StatusCode::CREATED
        }
    };
    let view = g
        .versions
        .get(&id.to_lowercase())
        .map(|v| v.view("images/versions", now));
    drop(g);
    let op = state.arm.lock().new_op(ready_at, outcome);
    let url = caps_url(&state, &sub, &location, &op, &admitted.api_version);
    admitted.answer(&state, http::accepted(status, view, &url))
}

fn not_found(id: &str) -> Response {
    http::error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The Resource '{id}' was not found."),
    )
}

pub(super) async fn get_definition(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, gallery, name)): Path<(String, String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    let call = "galleryImages.get";
    if let Err(r) = gate(&state, &headers, &query, NS, call, false) {
        return r.into_response();
    }
    if state.faults.fail_named(call) {
        return server_error(&state).into_response();
    }
    let id = resource_id(&sub, &rg, NS, &format!("galleries/{gallery}/images"), &name);
    match state.arm.gallery().definitions.get(&id.to_lowercase()) {
        Some(d) => http::ok(StatusCode::OK, d.view("images", Instant::now())),
        None => not_found(&id),
    }
}

pub(super) async fn get_version(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, gallery, image, name)): Path<(String, String, String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    let call = "galleryImageVersions.get";
    if let Err(r) = gate(&state, &headers, &query, NS, call, false) {
        return r.into_response();
    }
    if state.faults.fail_named(call) {
        return server_error(&state).into_response();
    }
    let parent = resource_id(
        &sub,
        &rg,
        NS,
        &format!("galleries/{gallery}/images"),
        &image,
    );
    let id = format!("{parent}/versions/{name}");
    match state.arm.gallery().versions.get(&id.to_lowercase()) {
        Some(v) => http::ok(StatusCode::OK, v.view("images/versions", Instant::now())),
        None => not_found(&id),
    }
}

pub(super) async fn delete_definition(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, gallery, name)): Path<(String, String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    let id = resource_id(&sub, &rg, NS, &format!("galleries/{gallery}/images"), &name);
    delete(
        &state,
        &sub,
        &headers,
        &query,
        "galleryImages.delete",
        id,
        false,
    )
    .await
}

pub(super) async fn delete_version(
    State(state): State<Arc<AppState>>,
    Path((sub, rg, gallery, image, name)): Path<(String, String, String, String, String)>,
    Query(query): Query<http::Query>,
    headers: HeaderMap,
) -> Response {
    let parent = resource_id(
        &sub,
        &rg,
        NS,
        &format!("galleries/{gallery}/images"),
        &image,
    );
    let id = format!("{parent}/versions/{name}");
    delete(
        &state,
        &sub,
        &headers,
        &query,
        "galleryImageVersions.delete",
        id,
        true,
    )
    .await
}

async fn delete(
    state: &AppState,
    sub: &str,
    headers: &HeaderMap,
    query: &http::Query,
    call: &str,
    id: String,
    version: bool,
) -> Response {
    let admitted = match gate(state, headers, query, NS, call, true) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    if state.faults.fail_named(call) {
        return server_error(state).into_response();
    }
    let key = id.to_lowercase();
    let mut g = state.arm.gallery();
    if !version
        && g.versions
            .keys()
            .any(|v| v.starts_with(&format!("{key}/versions/")))
    {
        return http::error(
            StatusCode::CONFLICT,
            "CannotDeleteResource",
            format!("Can not delete resource before nested resources are deleted: {id} has image versions."),
        );
    }
    let removed = if version {
        g.versions.remove(&key)
    } else {
        g.definitions.remove(&key)
    };
    drop(g);
    let Some(item) = removed else {
        return admitted.answer(state, StatusCode::NO_CONTENT.into_response());
    };
    let now = Instant::now();
    let op = state.arm.lock().new_op(now, Outcome::Succeeded);
    let url = caps_url(state, sub, &item.location, &op, &admitted.api_version);
    admitted.answer(state, http::accepted(StatusCode::ACCEPTED, None, &url))
}
