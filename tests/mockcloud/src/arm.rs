//! Azure Resource Manager emulation: network interfaces, virtual machines and their
//! `Azure-AsyncOperation` status resources, under the real paths:
//!
//! - `PUT|GET|DELETE /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/{name}`
//! - `PUT|GET|DELETE /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}`
//!   (`GET …?$expand=instanceView` adds the power state)
//! - `GET /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines`
//!   (pages of [`PAGE_SIZE`], `nextLink` with `$skiptoken`)
//! - `GET /subscriptions/{s}/providers/Microsoft.{Compute|Network}/locations/{loc}/operations/{id}`
//! - `PUT|GET|DELETE …/providers/Microsoft.Compute/galleries/{g}/images/{d}[/versions/{v}]` and
//!   `GET /subscriptions/{s}/providers/Microsoft.Compute/locations/{loc}/capsOperations/{id}`
//!   (`cdvm-image publish --cloud azure`: [`gallery`])
//! - the blob service, page blobs only, path style: `PUT|HEAD|DELETE /blob/{account}/{container}/{blob}`
//!   ([`blob`]; Azure's is `https://{account}.blob.core.windows.net/{container}/{blob}`)
//!
//! Every request needs `Authorization: Bearer …` (401 `AuthenticationFailed`) and a supported
//! `api-version` (400 `MissingApiVersionParameter` / `NoRegisteredProviderFound`). Bodies are
//! validated like ARM does ([`validate`]): an unknown `vmSize` is 400 `InvalidParameter`;
//! `ConfidentialVM` on a non-confidential size, without a confidential disk encryption type or
//! without vTPM, or a confidential size without `ConfidentialVM`, is 400 `BadRequest`; a NIC that
//! does not exist is 400 `NotFound`; a malformed subnet or image id is 400
//! `LinkedInvalidPropertyId`; a PUT changing the size or admin of an existing VM is 409
//! `PropertyChangeNotAllowed`.
//!
//! PUTs answer 201 (200 for an update) with an `Azure-AsyncOperation` URL whose status is
//! `InProgress` until the provisioning delay has passed, then `Succeeded` (or `Failed`). DELETEs
//! answer 202 and the resource reads `Deleting` for the provisioning delay, then 404; deleting an
//! unknown resource answers 204.
//!
//! Faults ([`crate::faults`]): throttling is 429 `TooManyRequests` with `Retry-After`; a server
//! error is 500 `InternalServerError` or 503 `ServiceUnavailable` — on a PUT or DELETE it comes
//! *after* the work is done (the answer is lost, the resource changed), which is what makes a
//! retried launch dangerous. A lost delete answers 202 with a `Succeeded` operation and changes
//! nothing.
//!
//! Reserved locations, for capacity tests (a VM PUT with this `location`):
//! [`NO_CAPACITY_LOCATION`] (the VM is created, its operation fails with `AllocationFailed` and
//! it reads `Failed`), [`NO_QUOTA_LOCATION`] (409 `OperationNotAllowed` naming the cores quota)
//! and [`NO_SKU_LOCATION`] (409 `SkuNotAvailable`); both of the latter create nothing.
//!
//! Booting (with [`crate::config::BootConfig`]): a `ConfidentialVM` on an SEV-SNP size with
//! `userData` publishes the user data (base64, as given) in the Azure metadata service under the
//! VM name and boots the agent with the decoded bootstrap. Deleting the VM halts the guest and
//! withdraws the metadata; a guest that exits by itself makes the VM read `PowerState/stopped`.

pub mod blob;
pub mod gallery;
mod http;
mod nic;
mod ops;
mod sizes;
mod store;
mod validate;
mod vm;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::Value;

use axum::routing::{get, put};
use axum::Router;

use crate::AppState;

pub use sizes::{Family, SIZES};

/// A VM PUT in this location is created and then fails with `AllocationFailed`.
pub const NO_CAPACITY_LOCATION: &str = "nocapacity";
/// A VM PUT in this location is refused with 409 `OperationNotAllowed` (cores quota exceeded).
pub const NO_QUOTA_LOCATION: &str = "noquota";
/// A VM PUT in this location is refused with 409 `SkuNotAvailable`.
pub const NO_SKU_LOCATION: &str = "nosku";
/// VMs per page of a list.
pub const PAGE_SIZE: usize = 2;

/// Resource Manager state.
#[derive(Debug, Default)]
pub struct ArmState {
    store: Mutex<store::Store>,
    puts: AtomicUsize,
    server_errors: AtomicU64,
    blobs: Mutex<blob::Blobs>,
    gallery: Mutex<gallery::Gallery>,
    page_writes: AtomicUsize,
    page_bytes: AtomicU64,
}

impl ArmState {
    /// The store, with resources whose deletion has completed removed.
    fn lock(&self) -> MutexGuard<'_, store::Store> {
        let mut store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store.reap(Instant::now());
        store
    }

    /// Names of virtual machines not deleted (those still `Deleting` included).
    pub fn live(&self) -> Vec<String> {
        self.lock().vms.values().map(|v| v.name.clone()).collect()
    }

    /// Names of network interfaces not deleted.
    pub fn live_nics(&self) -> Vec<String> {
        self.lock().nics.values().map(|n| n.name.clone()).collect()
    }

    /// PUT requests received (NICs and VMs, refused ones included): tests check that a refused
    /// spec made none.
    pub fn puts(&self) -> usize {
        self.puts.load(Ordering::SeqCst)
    }

    fn blobs(&self) -> MutexGuard<'_, blob::Blobs> {
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gallery(&self) -> MutexGuard<'_, gallery::Gallery> {
        self.gallery.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blobs not deleted, as `account/container/blob`.
    pub fn live_blobs(&self) -> Vec<String> {
        self.blobs().keys().cloned().collect()
    }

    /// Put Page requests carried out (`update` only), and the bytes they wrote: tests check that
    /// zero ranges of a sparse disk were not sent.
    pub fn page_writes(&self) -> (usize, u64) {
        (
            self.page_writes.load(Ordering::SeqCst),
            self.page_bytes.load(Ordering::SeqCst),
        )
    }

    /// Resource ids of the gallery image definitions not deleted.
    pub fn live_image_definitions(&self) -> Vec<String> {
        self.gallery()
            .definitions
            .values()
            .map(|d| d.id.clone())
            .collect()
    }

    /// Resource ids of the gallery image versions not deleted.
    pub fn live_image_versions(&self) -> Vec<String> {
        self.gallery()
            .versions
            .values()
            .map(|v| v.id.clone())
            .collect()
    }

    /// A gallery image definition or version as `GET` returns it (ids are case-insensitive).
    pub fn gallery_resource(&self, id: &str) -> Option<Value> {
        let g = self.gallery();
        let key = id.to_lowercase();
        let now = Instant::now();
        g.definitions
            .get(&key)
            .map(|d| d.view("images", now))
            .or_else(|| g.versions.get(&key).map(|v| v.view("images/versions", now)))
    }

    /// Puts an image definition in place without a request (tests of an existing one): `id`
    /// is its full resource id, `properties` what a PUT would carry.
    pub fn seed_image_definition(&self, id: &str, location: &str, properties: Value) {
        let name = id.rsplit('/').next().unwrap_or(id).to_string();
        self.gallery().definitions.insert(
            id.to_lowercase(),
            gallery::Item {
                id: id.into(),
                name,
                location: location.into(),
                tags: Value::Object(Default::default()),
                properties,
                ready_at: Instant::now(),
                outcome: store::Outcome::Succeeded,
            },
        );
    }

    fn count_put(&self) {
        self.puts.fetch_add(1, Ordering::SeqCst);
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    const RG: &str = "/subscriptions/{sub}/resourceGroups/{rg}/providers";
    Router::new()
        .route(
            &format!("{RG}/Microsoft.Compute/virtualMachines"),
            get(vm::list),
        )
        .route(
            &format!("{RG}/Microsoft.Compute/virtualMachines/{{name}}"),
            get(vm::get).put(vm::put).delete(vm::delete),
        )
        .route(
            &format!("{RG}/Microsoft.Network/networkInterfaces/{{name}}"),
            get(nic::get).put(nic::put).delete(nic::delete),
        )
        .route(
            "/subscriptions/{sub}/providers/{namespace}/locations/{loc}/operations/{id}",
            get(ops::get),
        )
        .route(
            "/subscriptions/{sub}/providers/{namespace}/locations/{loc}/capsOperations/{id}",
            get(ops::get_caps),
        )
        .route(
            &format!("{RG}/Microsoft.Compute/galleries/{{gallery}}/images/{{image}}"),
            get(gallery::get_definition)
                .put(gallery::put_definition)
                .delete(gallery::delete_definition),
        )
        .route(
            &format!("{RG}/Microsoft.Compute/galleries/{{gallery}}/images/{{image}}/versions/{{version}}"),
            get(gallery::get_version)
                .put(gallery::put_version)
                .delete(gallery::delete_version),
        )
        .route(
            "/blob/{account}/{container}/{blob}",
            put(blob::put)
                .head(blob::head)
                .delete(blob::delete)
                // Put Page takes up to 4 MiB (axum's default would stop at 2 MiB); one byte more
                // reaches the handler, which refuses it as Azure does.
                .layer(axum::extract::DefaultBodyLimit::max(
                    blob::MAX_PAGE_WRITE as usize + 1,
                )),
        )
}
