//! Azure: `disk.vhd` as a page blob, then an Azure Compute Gallery image version made from it.
//!
//! 1. The section is checked against Azure's naming rules ([`target`]); nothing is sent before.
//! 2. The version's name comes from the disk's SHA-256 ([`target::version_name`]): if it
//!    exists already with our hash tag and `Succeeded`, that is the answer (a re-run publishes
//!    nothing); with another hash or state it is refused, never overwritten.
//! 3. An existing image definition must be Linux, generalized, Gen2, x64 and
//!    confidential-capable (else [`PublishError::Mismatch`], before anything is created).
//! 4. The VHD goes up as a page blob: Put Blob, then Put Page for each run of non-zero pages
//!    (≤ 4 MiB each: the disk is mostly zeros), Get Blob Properties to check the length. The
//!    SHA-256 of everything but the footer must equal the image's disk hash.
//! 5. The definition is created if it was absent; then the version, whose
//!    `Azure-AsyncOperation` is followed until the gallery has copied the blob; a GET checks
//!    it `Succeeded`.
//! 6. The blob is deleted (the gallery holds its own copy); failing that is a warning.
//!
//! Every resource is recorded in the rollback list *before* its create call (the names are
//! ours, and a create whose answer was lost still created it); a failed step deletes them newest
//! first (a delete of something absent counts as done). The definition is recorded only if this
//! publish created it. Tokens: scope `https://management.azure.com/.default` for ARM and
//! `https://storage.azure.com/.default` for the blob, from the managed identity
//! `identity_client_id` or the developer-tools chain; for a plain-http loopback `endpoint` (the
//! mock cloud) a fixed token naming the emulator instead, and never over plain http elsewhere.

mod blob;
mod gallery;
mod http;
mod target;

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::Url;
use cdvm_provider_azure::auth::{default_credential, EmulatorToken};

use crate::config::AzurePublish;
use crate::error::{BoxError, PublishError};
use crate::undo::Undo;
use crate::{Cloud, ImageToPublish, Progress, Published};

pub use blob::{MAX_PAGE_WRITE, STORAGE_SCOPE, STORAGE_VERSION};
pub use gallery::{CONFIDENTIAL_SUPPORTED, GALLERY_API_VERSION, SHA256_TAG};
pub use http::AzureError;
pub use target::version_name;

/// Something this publish created.
#[derive(Debug, Clone)]
enum Created {
    Blob(Url),
    Definition(String),
    Version(String),
}

impl std::fmt::Display for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Created::Blob(url) => write!(f, "page blob {url}"),
            Created::Definition(id) => write!(f, "image definition {id}"),
            Created::Version(id) => write!(f, "image version {id}"),
        }
    }
}

/// Publishes `image` (its `vhd`) to the gallery of `section`.
pub async fn publish(
    section: &AzurePublish,
    image: &ImageToPublish,
    progress: Progress<'_>,
) -> Result<Published, PublishError> {
    let target = target::Target::new(section, image)?;
    let vhd = image.vhd.as_ref().ok_or(PublishError::MissingArtifact {
        what: "disk.vhd",
        hint: "Azure takes a fixed VHD: run `cdvm-image export` to write it next to disk.raw",
    })?;
    let size = std::fs::metadata(vhd)
        .map_err(|source| PublishError::Io {
            path: vhd.clone(),
            source,
        })?
        .len();
    if size % blob::PAGE != 0 || size < 2 * blob::PAGE {
        return Err(PublishError::Config(format!(
            "{} is {size} bytes: a fixed VHD is a whole number of 512-byte sectors plus the footer",
            vhd.display()
        )));
    }
    let credential: Arc<dyn TokenCredential> = if target.emulator {
        Arc::new(EmulatorToken)
    } else {
        default_credential(section.identity_client_id.as_deref())
            .map_err(|e| step("credentials", e))?
    };
    let client = http::Client::new(credential, target.emulator);
    tracing::info!(version = %target.version, definition = %target.definition, size, "publishing to Azure");

    // Read-only checks first: nothing is created when they refuse.
    let name = "galleryImageVersions.get";
    if let Some(existing) = gallery::read(&client, name, &target.version_url)
        .await
        .map_err(|e| step("read the image version", e))?
    {
        return already_published(&target, image, &existing, progress);
    }
    let name = "galleryImages.get";
    let definition = gallery::read(&client, name, &target.definition_url)
        .await
        .map_err(|e| step("read the image definition", e))?;
    if let Some(why) = definition
        .as_ref()
        .and_then(gallery::Resource::definition_mismatch)
    {
        return Err(PublishError::Mismatch(why));
    }

    let mut undo = Undo::default();
    let result = create(
        &client,
        &target,
        image,
        vhd,
        size,
        definition.is_none(),
        &mut undo,
        progress,
    )
    .await;
    match result {
        Ok(()) => {}
        Err((what, e)) => {
            progress(&format!("{what} failed: deleting what was created"));
            let client = &client;
            let target = &target;
            return Err(undo
                .roll_back(what, Box::new(e), |r| {
                    let r = r.clone();
                    async move {
                        delete(client, target, &r, progress)
                            .await
                            .map_err(BoxError::from)
                    }
                })
                .await);
        }
    }
    // The gallery holds its own copy now; a blob left behind only costs storage.
    let mut resources: Vec<String> = Vec::new();
    for r in undo.commit() {
        match r {
            Created::Blob(url) => {
                if let Err(e) = blob::delete(&client, &url).await {
                    tracing::warn!(blob = %url, error = %crate::error::chain(&e), "could not delete the uploaded blob");
                    progress(&format!(
                        "warning: could not delete {url} ({e}); delete it by hand"
                    ));
                    resources.push(url.to_string());
                }
            }
            Created::Definition(id) | Created::Version(id) => resources.push(id),
        }
    }
    progress(&format!("published {}", target.version_id));
    Ok(Published {
        cloud: Cloud::Azure,
        image: target.version_id.clone(),
        resources,
    })
}

fn step(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> PublishError {
    PublishError::Step {
        step: what,
        source: Box::new(e),
    }
}

/// The version exists: ours (same disk, `Succeeded`) is the answer, anything else is refused.
fn already_published(
    target: &target::Target,
    image: &ImageToPublish,
    existing: &gallery::Resource,
    progress: Progress<'_>,
) -> Result<Published, PublishError> {
    let tag = existing.tags.get(SHA256_TAG).and_then(|v| v.as_str());
    if tag != Some(image.disk_sha256.as_str()) || existing.provisioning_state() != "Succeeded" {
        return Err(PublishError::Mismatch(format!(
            "image version {} exists with disk hash {} and state {}; it is not replaced",
            target.version_id,
            tag.unwrap_or("(none)"),
            existing.provisioning_state()
        )));
    }
    progress(&format!("already published: {}", target.version_id));
    Ok(Published {
        cloud: Cloud::Azure,
        image: target.version_id.clone(),
        resources: vec![target.version_id.clone()],
    })
}

/// Steps 4 and 5; on failure, the step's name and why.
#[allow(clippy::too_many_arguments)]
async fn create(
    client: &http::Client,
    target: &target::Target,
    image: &ImageToPublish,
    vhd: &std::path::Path,
    size: u64,
    make_definition: bool,
    undo: &mut Undo<Created>,
    progress: Progress<'_>,
) -> Result<(), (&'static str, AzureError)> {
    let url = &target.blob_url;
    undo.created(Created::Blob(url.clone()));
    progress(&format!("uploading {} MiB to {url}", size >> 20));
    blob::create(client, url, size)
        .await
        .map_err(|e| ("upload", e))?;
    let (uploaded, digest) = blob::write_pages(client, url, vhd, size, progress)
        .await
        .map_err(|e| ("upload", e))?;
    tracing::info!(
        size = uploaded.size,
        sent = uploaded.sent,
        "page blob written"
    );
    if !hex::encode(digest).eq_ignore_ascii_case(&image.disk_sha256) {
        return Err((
            "upload",
            AzureError::Check(format!(
                "{} does not hold the disk {} (its SHA-256 is {})",
                vhd.display(),
                image.disk_sha256,
                hex::encode(digest)
            )),
        ));
    }
    let length = blob::length(client, url).await.map_err(|e| ("upload", e))?;
    if length != size {
        return Err((
            "upload",
            AzureError::Check(format!("the blob is {length} bytes, the VHD {size}")),
        ));
    }
    if make_definition {
        undo.created(Created::Definition(target.definition_id.clone()));
        gallery::create_definition(client, target, progress)
            .await
            .map_err(|e| ("create the image definition", e))?;
    }
    undo.created(Created::Version(target.version_id.clone()));
    gallery::create_version(client, target, &image.name, &image.disk_sha256, progress)
        .await
        .map_err(|e| ("create the image version", e))?;
    let name = "galleryImageVersions.get";
    let version = gallery::read(client, name, &target.version_url)
        .await
        .map_err(|e| ("create the image version", e))?;
    match version.as_ref().map(gallery::Resource::provisioning_state) {
        Some("Succeeded") => Ok(()),
        state => Err((
            "create the image version",
            AzureError::Check(format!(
                "image version {} reads {} after its operation succeeded",
                target.version_id,
                state.unwrap_or("absent")
            )),
        )),
    }
}

async fn delete(
    client: &http::Client,
    target: &target::Target,
    created: &Created,
    progress: Progress<'_>,
) -> Result<(), AzureError> {
    match created {
        Created::Blob(url) => blob::delete(client, url).await,
        Created::Definition(_) => {
            let url = &target.definition_url;
            gallery::delete(client, target, url, "galleryImages.delete", progress).await
        }
        Created::Version(_) => {
            let url = &target.version_url;
            gallery::delete(client, target, url, "galleryImageVersions.delete", progress).await
        }
    }
}
