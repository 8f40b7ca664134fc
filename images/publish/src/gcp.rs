//! Google Compute Engine: `disk.tar.gz` is uploaded to a Cloud Storage bucket (resumable
//! upload), a GCE image is created from it (`images.insert`, UEFI and confidential-computing
//! guest OS features), and the object is deleted once GCE has copied it.
//!
//! Credentials: Application Default Credentials (the attached service account on GCE,
//! `GOOGLE_APPLICATION_CREDENTIALS`, or gcloud's ADC file); none for a plain-http loopback
//! `endpoint` (the mock cloud). The bearer token goes to Compute Engine and to the upload's
//! start only: the resumable session URL is itself the upload's credential.

mod compute;
mod error;
mod storage;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use google_cloud_auth::credentials::{anonymous, Builder as CredentialsBuilder, Credentials};
use google_cloud_compute_v1::model::{guest_os_feature, image, GuestOsFeature, Image};
use sha2::{Digest, Sha256};

pub use error::{CallError, OperationError};

use crate::config::GcpPublish;
use crate::error::{BoxError, PublishError};
use crate::undo::Undo;
use crate::{Cloud, ImageToPublish, Progress, Published};
use compute::Compute;
use storage::Storage;

/// Label whose value is the first 32 hex digits of the disk's SHA-256 (label values hold at most
/// 63 characters; the whole digest is in the image's description).
pub const SHA256_LABEL: &str = "cdvm-disk-sha256-prefix";

/// The guest OS features every published image carries: UEFI boot (the disk is a UKI on an
/// ESP), the three confidential-VM kinds, and gVNIC (required by C3 and A3 machine types).
pub const GUEST_OS_FEATURES: [&str; 5] = [
    "UEFI_COMPATIBLE",
    "SEV_CAPABLE",
    "SEV_SNP_CAPABLE",
    "TDX_CAPABLE",
    "GVNIC",
];

/// What a publish creates, for the rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    Object { bucket: String, name: String },
    Image { project: String, name: String },
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Object { bucket, name } => write!(f, "gs://{bucket}/{name}"),
            Resource::Image { project, name } => {
                write!(f, "projects/{project}/global/images/{name}")
            }
        }
    }
}

/// Uploads `image.gce_tar`, creates the image, deletes the upload; on failure deletes what was
/// created. See the module docs.
pub async fn publish(
    section: &GcpPublish,
    image: &ImageToPublish,
    progress: Progress<'_>,
) -> Result<Published, PublishError> {
    let tar = check(section, image)?;
    let io = |source| PublishError::Io {
        path: tar.to_owned(),
        source,
    };
    let size = tokio::fs::metadata(tar).await.map_err(io)?.len();
    if size == 0 {
        return Err(PublishError::MissingArtifact {
            what: "disk.tar.gz",
            hint: "it is empty: rebuild it with `cdvm-image disk`",
        });
    }
    let crc32c = storage::crc32c_file(tar).await.map_err(io)?;
    let retry = section.retry.map(Into::into).unwrap_or_default();
    let credentials = credentials(section)?;
    let build = |e: BoxError| PublishError::Step {
        step: "build the Cloud clients",
        source: e,
    };
    let base = section.endpoint.as_deref();
    let storage = Storage::new(base.unwrap_or(storage::GOOGLE), credentials.clone(), retry)
        .map_err(|e| build(Box::new(e)))?;
    let compute = Compute::new(&section.project, base, credentials, retry)
        .await
        .map_err(|e| build(Box::new(e)))?;
    let image_path = Resource::Image {
        project: section.project.clone(),
        name: image.name.clone(),
    };

    // A taken name is refused before anything is uploaded (and so is never deleted by us).
    let taken = compute
        .get(&image.name)
        .await
        .map_err(|e| PublishError::Step {
            step: "check the image name",
            source: Box::new(e),
        })?;
    if taken.is_some() {
        return Err(PublishError::Step {
            step: "check the image name",
            source: format!("{image_path} exists already (this disk is published)").into(),
        });
    }

    let object = format!("{}.tar.gz", image.name);
    let mut undo = Undo::default();
    let rollback = |r: &Resource| delete(&storage, &compute, r.clone(), progress);

    // 1. Upload. The object is recorded first: a session that fails after the last chunk may
    // still have created it.
    progress(&format!(
        "uploading {} ({size} bytes) to gs://{}/{object}",
        tar.display(),
        section.bucket
    ));
    undo.created(Resource::Object {
        bucket: section.bucket.clone(),
        name: object.clone(),
    });
    if let Err(e) = upload(
        &storage, section, image, tar, &object, size, &crc32c, progress,
    )
    .await
    {
        return Err(undo.roll_back("upload", Box::new(e), rollback).await);
    }

    // 2. The image.
    let body = image_body(section, image, &object);
    let request_id = request_id(&image.name, "insert");
    progress(&format!("creating {image_path}"));
    match compute.insert(&body, &request_id).await {
        Ok(op) => {
            undo.created(image_path.clone());
            if let Err(e) = compute.wait("images.insert", op, progress).await {
                return Err(undo
                    .roll_back("create the image", Box::new(e), rollback)
                    .await);
            }
        }
        // Someone else's image of that name: not ours to delete.
        Err(e) if e.http_status() == Some(409) => {
            return Err(undo
                .roll_back("create the image", Box::new(e), rollback)
                .await);
        }
        // The insert may have been carried out with its answer lost: delete it too.
        Err(e) => {
            undo.created(image_path.clone());
            return Err(undo
                .roll_back("create the image", Box::new(e), rollback)
                .await);
        }
    }
    let created = match compute.get(&image.name).await {
        Ok(Some(created)) => created,
        Ok(None) => {
            let e: BoxError = "the insert operation is done but the image does not exist".into();
            return Err(undo.roll_back("create the image", e, rollback).await);
        }
        Err(e) => {
            return Err(undo
                .roll_back("read the image", Box::new(e), rollback)
                .await)
        }
    };
    if let Some(why) = mismatch(&created) {
        tracing::warn!(image = %image_path, why, "the created image is not what was asked for");
        return Err(
            match undo
                .roll_back("check the image", why.clone().into(), rollback)
                .await
            {
                PublishError::Step { .. } => PublishError::Mismatch(why),
                left_behind => left_behind,
            },
        );
    }

    // 3. GCE has its own copy now; the object only costs money.
    let mut resources = vec![image_path.to_string()];
    if let Err(e) = storage.delete(&section.bucket, &object).await {
        tracing::warn!(bucket = section.bucket, object, error = %e, "could not delete the upload");
        progress(&format!(
            "warning: could not delete gs://{}/{object} ({e}); delete it by hand",
            section.bucket
        ));
        resources.push(format!("gs://{}/{object}", section.bucket));
    }
    progress(&format!("published {image_path}"));
    tracing::info!(image = %image_path, "GCE image published");
    Ok(Published {
        cloud: Cloud::Gcp,
        image: image_path.to_string(),
        resources,
    })
}

/// Uploads the archive and checks what Cloud Storage holds afterwards.
#[allow(clippy::too_many_arguments)]
async fn upload(
    storage: &Storage,
    section: &GcpPublish,
    image: &ImageToPublish,
    tar: &std::path::Path,
    object: &str,
    size: u64,
    crc32c: &str,
    progress: Progress<'_>,
) -> Result<(), CallError> {
    let session = storage
        .start_upload(&section.bucket, object, size, crc32c, &image.disk_sha256)
        .await?;
    let sent = storage.upload(&session, tar, size, progress).await?;
    // What GCE will read, asked for again rather than taken from the last chunk's answer.
    let info =
        storage
            .get(&section.bucket, object)
            .await?
            .ok_or_else(|| CallError::Unexpected {
                call: "objects.get",
                reason: format!("the upload finished ({sent:?}) but the object does not exist"),
            })?;
    if info.size != size || info.crc32c.as_deref() != Some(crc32c) {
        return Err(CallError::Unexpected {
            call: "objects.upload",
            reason: format!(
                "the object holds {} bytes with CRC32C {:?}, the file {size} bytes with {crc32c}",
                info.size, info.crc32c
            ),
        });
    }
    Ok(())
}

/// Deletes one created resource (the rollback).
async fn delete(
    storage: &Storage,
    compute: &Compute,
    resource: Resource,
    progress: Progress<'_>,
) -> Result<(), BoxError> {
    progress(&format!("deleting {resource}"));
    match &resource {
        Resource::Object { bucket, name } => storage.delete(bucket, name).await?,
        Resource::Image { name, .. } => {
            compute
                .delete(name, &request_id(name, "delete"), progress)
                .await?
        }
    }
    Ok(())
}

/// The `images.insert` body.
fn image_body(section: &GcpPublish, image: &ImageToPublish, object: &str) -> Image {
    let features = GUEST_OS_FEATURES
        .iter()
        .map(|f| GuestOsFeature::new().set_type(guest_os_feature::Type::from(*f)));
    let sha = &image.disk_sha256;
    Image::new()
        .set_name(&image.name)
        .set_description(format!("ConfidentialDVM guest disk, sha256 {sha}"))
        // GCE reads the archive itself, so this is always Cloud Storage's public URL form.
        .set_raw_disk(
            image::RawDisk::new()
                .set_source(format!("{}/{}/{object}", storage::GOOGLE, section.bucket))
                .set_container_type(image::raw_disk::ContainerType::Tar),
        )
        .set_guest_os_features(features)
        .set_architecture(image::Architecture::X8664)
        .set_labels([(SHA256_LABEL, sha.get(..32).unwrap_or(sha))])
        .set_or_clear_family(section.family.clone())
}

/// Why the created image is not what was asked for, if it is not.
fn mismatch(created: &Image) -> Option<String> {
    if created.status != Some(image::Status::Ready) {
        return Some(format!("status {:?}, not READY", created.status));
    }
    let has = |want: &str| {
        created
            .guest_os_features
            .iter()
            .any(|f| f.r#type.as_ref().and_then(|t| t.name()) == Some(want))
    };
    let missing: Vec<&str> = GUEST_OS_FEATURES
        .iter()
        .copied()
        .filter(|f| !has(f))
        .collect();
    (!missing.is_empty()).then(|| format!("guest OS features {missing:?} are missing"))
}

/// A UUID-shaped request id (GCE wants one), the same for every retry of one call.
fn request_id(name: &str, what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let h = hex::encode(Sha256::digest(format!(
        "{name} {what} {nanos} {}",
        std::process::id()
    )));
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Checks the configuration and the image before anything is created; returns the archive.
fn check<'a>(
    section: &GcpPublish,
    image: &'a ImageToPublish,
) -> Result<&'a std::path::Path, PublishError> {
    let config = |s: String| Err(PublishError::Config(format!("gcp: {s}")));
    if section.project.trim().is_empty() {
        return config("project must not be empty".into());
    }
    let bucket_ok = |b: &str| {
        (3..=222).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(&c))
    };
    if !bucket_ok(&section.bucket) {
        return config(format!(
            "bucket {:?} is not a Cloud Storage bucket name (3 to 222 of a-z 0-9 - _ .)",
            section.bucket
        ));
    }
    if !is_name(&image.name) {
        return config(format!(
            "image name {:?}: a lowercase letter, then lowercase letters, digits or -, at most \
             63 characters, not ending in -",
            image.name
        ));
    }
    if let Some(family) = section.family.as_deref().filter(|f| !is_name(f)) {
        return config(format!("family {family:?} has the form of an image name"));
    }
    if image.disk_sha256.len() != 64
        || !image
            .disk_sha256
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return config(format!(
            "disk sha256 {:?} is not 64 lowercase hex digits",
            image.disk_sha256
        ));
    }
    if let Some(endpoint) = &section.endpoint {
        if !endpoint.starts_with("https://") && !plain_http_loopback(endpoint) {
            return config(format!(
                "endpoint {endpoint:?} must be https://…, or http:// on a loopback address"
            ));
        }
    }
    image
        .gce_tar
        .as_deref()
        .ok_or(PublishError::MissingArtifact {
            what: "disk.tar.gz",
            hint: "run `cdvm-image disk` on the image folder to write it",
        })
}

/// GCE's resource-name form: `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.last()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Whether `endpoint` is plain http on a loopback address (the emulator): then no credential.
fn plain_http_loopback(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Anonymous for the loopback emulator, else Application Default Credentials.
fn credentials(section: &GcpPublish) -> Result<Credentials, PublishError> {
    if section.endpoint.as_deref().is_some_and(plain_http_loopback) {
        return Ok(anonymous::Builder::new().build());
    }
    CredentialsBuilder::default()
        .build()
        .map_err(|e| PublishError::Step {
            step: "find credentials (Application Default Credentials)",
            source: Box::new(e),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn names_endpoints_and_request_ids() {
        assert!(is_name("cdvm-guest-0a1b"));
        assert!(!is_name("Cdvm") && !is_name("cdvm-") && !is_name("1cdvm") && !is_name(""));
        assert!(!is_name(&"a".repeat(64)));
        assert!(plain_http_loopback("http://127.0.0.1:8080"));
        assert!(plain_http_loopback("http://[::1]:80/x"));
        assert!(plain_http_loopback("http://localhost"));
        assert!(!plain_http_loopback("http://10.0.0.1"));
        assert!(!plain_http_loopback("http://127.0.0.1.example.com"));
        let id = request_id("n", "insert");
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.as_bytes()[14], b'4');
    }

    #[test]
    fn the_body_asks_for_every_feature() {
        let section = GcpPublish {
            project: "p".into(),
            bucket: "b".into(),
            family: Some("cdvm-guest".into()),
            endpoint: None,
            retry: None,
        };
        let image = ImageToPublish {
            name: "cdvm-guest-1".into(),
            disk_raw: "disk.raw".into(),
            disk_sha256: "a".repeat(64),
            gce_tar: Some("disk.tar.gz".into()),
            vhd: None,
        };
        let json = serde_json::to_value(image_body(&section, &image, "o.tar.gz")).unwrap();
        assert_eq!(
            json["rawDisk"]["source"],
            "https://storage.googleapis.com/b/o.tar.gz"
        );
        assert_eq!(json["architecture"], "X86_64");
        assert_eq!(json["family"], "cdvm-guest");
        assert_eq!(json["labels"][SHA256_LABEL], "a".repeat(32));
        let features: Vec<&str> = json["guestOsFeatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["type"].as_str().unwrap())
            .collect();
        assert_eq!(features, GUEST_OS_FEATURES);
    }
}
