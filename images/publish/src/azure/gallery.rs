//! Azure Compute Gallery: the image definition (created if absent) and the image version made
//! from the page blob, each followed through its `Azure-AsyncOperation` to its end.

use std::time::{Duration, Instant};

use azure_core::http::{Method, Url};
use cdvm_provider_azure::auth::ARM_SCOPE;
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{AzureError, Call, Client, Reply};
use super::target::Target;
use crate::Progress;

/// Microsoft.Compute API version of the gallery calls.
pub const GALLERY_API_VERSION: &str = "2023-07-03";
/// The image definition's `SecurityType` feature, as Azure documents it (`az sig
/// image-definition create --features SecurityType=ConfidentialVMSupported`); Azure compares
/// it case-insensitively.
pub const CONFIDENTIAL_SUPPORTED: &str = "ConfidentialVMSupported";
/// Tag of the image version carrying the raw disk's SHA-256.
pub const SHA256_TAG: &str = "cdvm-disk-sha256";
/// How long a definition may take to be created.
const DEFINITION_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// How long the gallery may take to copy and replicate the VHD (Azure's own figure for a
/// few-GiB image is minutes; a busy region takes longer).
pub const VERSION_DEADLINE: Duration = Duration::from_secs(90 * 60);

/// What the publish reads back of a gallery resource.
#[derive(Debug, Default, Deserialize)]
pub struct Resource {
    /// The resource id.
    #[serde(default)]
    pub id: String,
    /// Tags.
    #[serde(default)]
    pub tags: serde_json::Map<String, Value>,
    /// Properties.
    #[serde(default)]
    pub properties: Value,
}

impl Resource {
    fn prop(&self, name: &str) -> &str {
        self.properties
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `provisioningState`.
    pub fn provisioning_state(&self) -> &str {
        self.prop("provisioningState")
    }

    /// Why an existing definition cannot hold our image: not Linux, not Gen2, not x64, or not
    /// confidential-capable. `None`: it can.
    pub fn definition_mismatch(&self) -> Option<String> {
        let security = self
            .properties
            .get("features")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|f| f.get("name").and_then(Value::as_str) == Some("SecurityType"))
            .and_then(|f| f.get("value").and_then(Value::as_str))
            .unwrap_or("none");
        let confidential = ["ConfidentialVMSupported", "ConfidentialVM"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(security))
            || security.eq_ignore_ascii_case("TrustedLaunchAndConfidentialVmSupported");
        let arch = match self.prop("architecture") {
            "" => "x64",
            a => a,
        };
        let wrong = [
            (!self.prop("osType").eq_ignore_ascii_case("linux"))
                .then(|| format!("osType {}", self.prop("osType"))),
            (!self.prop("osState").eq_ignore_ascii_case("generalized"))
                .then(|| format!("osState {}", self.prop("osState"))),
            (self.prop("hyperVGeneration") != "V2")
                .then(|| format!("hyperVGeneration {}", self.prop("hyperVGeneration"))),
            (!arch.eq_ignore_ascii_case("x64")).then(|| format!("architecture {arch}")),
            (!confidential).then(|| format!("SecurityType {security}")),
        ];
        let wrong: Vec<String> = wrong.into_iter().flatten().collect();
        (!wrong.is_empty()).then(|| {
            format!(
                "the image definition {} is not a Linux, generalized, Gen2, x64, \
                 confidential-VM-capable definition ({})",
                self.id,
                wrong.join(", ")
            )
        })
    }
}

fn arm<'a>(name: &'a str, method: Method, url: &'a Url) -> Call<'a> {
    Call {
        name,
        method,
        url,
        scope: ARM_SCOPE,
        headers: vec![("accept", "application/json".into())],
        body: None,
    }
}

/// GETs a gallery resource; `None` when ARM answers 404.
pub async fn read(client: &Client, name: &str, url: &Url) -> Result<Option<Resource>, AzureError> {
    match client.send(&arm(name, Method::Get, url)).await {
        Ok(reply) => reply.json(name).map(Some),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// PUTs the image definition and waits for it.
pub async fn create_definition(
    client: &Client,
    target: &Target,
    progress: Progress<'_>,
) -> Result<(), AzureError> {
    let body = json!({
        "location": target.location,
        "properties": {
            "description": "ConfidentialDVM guest image (cdvm-image publish)",
            "osType": "Linux",
            "osState": "Generalized",
            "hyperVGeneration": "V2",
            "architecture": "x64",
            // Unique within the gallery: the definition's own name as the SKU.
            "identifier": {
                "publisher": "ConfidentialDVM",
                "offer": "cdvm-guest",
                "sku": target.definition,
            },
            "features": [{"name": "SecurityType", "value": CONFIDENTIAL_SUPPORTED}],
        },
    });
    let body = body.to_string();
    let name = "galleryImages.createOrUpdate";
    let mut call = arm(name, Method::Put, &target.definition_url);
    call.headers
        .push(("content-type", "application/json".into()));
    call.body = Some(body.as_bytes());
    let reply = client.send(&call).await?;
    progress(&format!(
        "creating the image definition {}",
        target.definition
    ));
    wait(
        client,
        target,
        &reply,
        "the image definition",
        DEFINITION_DEADLINE,
        progress,
    )
    .await
}

/// PUTs the image version made from the blob and waits until the gallery has copied it.
pub async fn create_version(
    client: &Client,
    target: &Target,
    image_name: &str,
    disk_sha256: &str,
    progress: Progress<'_>,
) -> Result<(), AzureError> {
    let body = json!({
        "location": target.location,
        "tags": {SHA256_TAG: disk_sha256, "cdvm-image": image_name},
        "properties": {
            "publishingProfile": {
                "targetRegions": [{
                    "name": target.location,
                    "regionalReplicaCount": 1,
                    "storageAccountType": "Standard_LRS",
                }],
            },
            "storageProfile": {
                "osDiskImage": {
                    "hostCaching": "ReadOnly",
                    "source": {
                        "storageAccountId": target.storage_account_id,
                        "uri": target.blob_url.as_str(),
                    },
                },
            },
        },
    });
    let body = body.to_string();
    let name = "galleryImageVersions.createOrUpdate";
    let mut call = arm(name, Method::Put, &target.version_url);
    call.headers
        .push(("content-type", "application/json".into()));
    call.body = Some(body.as_bytes());
    let reply = client.send(&call).await?;
    progress(&format!(
        "the gallery is copying the VHD into image version {}",
        target.version
    ));
    wait(
        client,
        target,
        &reply,
        "the image version",
        VERSION_DEADLINE,
        progress,
    )
    .await
}

/// DELETEs a gallery resource and waits until it is gone; one that is not there is fine.
pub async fn delete(
    client: &Client,
    target: &Target,
    url: &Url,
    name: &str,
    progress: Progress<'_>,
) -> Result<(), AzureError> {
    let reply = match client.send(&arm(name, Method::Delete, url)).await {
        Err(e) if e.status() == Some(404) => return Ok(()),
        other => other?,
    };
    wait(client, target, &reply, name, DEFINITION_DEADLINE, progress).await
}

#[derive(Deserialize)]
struct Operation {
    status: String,
    #[serde(default)]
    error: Option<OperationError>,
}

#[derive(Deserialize, Default)]
struct OperationError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Follows the `Azure-AsyncOperation` of `reply`, if any, until it ends or `deadline` passes.
async fn wait(
    client: &Client,
    target: &Target,
    reply: &Reply,
    what: &str,
    deadline: Duration,
    progress: Progress<'_>,
) -> Result<(), AzureError> {
    let Some(link) = reply.header("azure-asyncoperation") else {
        return Ok(());
    };
    let url = target.follow(link)?;
    let started = Instant::now();
    let mut pause = reply.retry_after();
    let mut told = Instant::now();
    loop {
        let waited = started.elapsed();
        if waited > deadline {
            return Err(AzureError::Timeout {
                what: what.into(),
                waited,
            });
        }
        // Azure's Retry-After, within [poll/4, poll·6], so neither a 0 nor an hour stalls us.
        let wait = pause
            .unwrap_or(client.poll)
            .clamp(client.poll / 4, client.poll.saturating_mul(6));
        tokio::time::sleep(wait).await;
        let name = "operations.get";
        let status = client.send(&arm(name, Method::Get, &url)).await?;
        let op: Operation = status.json(name)?;
        match op.status.as_str() {
            "Succeeded" => return Ok(()),
            "Failed" | "Canceled" => {
                let e = op.error.unwrap_or_default();
                return Err(AzureError::Operation {
                    what: what.into(),
                    status: op.status,
                    code: e.code,
                    message: e.message,
                });
            }
            _ => pause = status.retry_after(),
        }
        if told.elapsed() >= Duration::from_secs(60) {
            told = Instant::now();
            progress(&format!(
                "still waiting for {what} ({} s)",
                started.elapsed().as_secs()
            ));
        }
    }
}
