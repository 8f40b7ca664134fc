//! `publish.yaml`: where each cloud's image goes (unknown keys refused). Credentials are not
//! here: each SDK's standard chain supplies them (docs/image.md, "Publishing").

use std::path::Path;

use serde::Deserialize;

use crate::error::PublishError;

/// Settings of `cdvm-image publish`, one optional section per cloud.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// Amazon EC2.
    #[serde(default)]
    pub aws: Option<AwsPublish>,
    /// Google Compute Engine.
    #[serde(default)]
    pub gcp: Option<GcpPublish>,
    /// Azure Compute Gallery.
    #[serde(default)]
    pub azure: Option<AzurePublish>,
}

impl PublishConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, PublishError> {
        let text = std::fs::read_to_string(path).map_err(|source| PublishError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_yaml_ng::from_str(&text)
            .map_err(|e| PublishError::Config(format!("{}: {e}", path.display())))
    }
}

/// Where the AMI is registered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsPublish {
    /// Region of the snapshot and the AMI (the job subnet's region).
    pub region: String,
    /// EC2 and EBS endpoint override (moto server, or the mock cloud in front of it); none =
    /// the region's real endpoints.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// Where the GCE image is created.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpPublish {
    /// Project of the image (the job VMs' project).
    pub project: String,
    /// Cloud Storage bucket the `disk.tar.gz` is uploaded to (deleted again once the image
    /// exists: GCE copies it).
    pub bucket: String,
    /// Image family, so providers can name the family instead of one image.
    #[serde(default)]
    pub family: Option<String>,
    /// Test only: base URL of Compute Engine and Cloud Storage (the mock cloud). Plain `http`
    /// only to loopback, and then no credential is sent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Test only: retry pace of every call (default: 8 attempts from 200 ms, up to 20 s).
    #[serde(default)]
    pub retry: Option<cdvm_provider_api::retry::RetrySettings>,
}

/// Where the gallery image version is created.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzurePublish {
    /// Subscription of the gallery and the storage account.
    pub subscription_id: String,
    /// Resource group of the gallery and the storage account.
    pub resource_group: String,
    /// Region of the gallery.
    pub location: String,
    /// Storage account the `disk.vhd` page blob is uploaded to.
    pub storage_account: String,
    /// Container in it.
    pub container: String,
    /// The Azure Compute Gallery.
    pub gallery: String,
    /// The gallery image definition (created if absent: Linux, generalized, Hyper-V Gen2,
    /// `SecurityType=ConfidentialVMSupported`).
    pub image_definition: String,
    /// Client id of a user-assigned managed identity; absent: the developer-tools chain.
    #[serde(default)]
    pub identity_client_id: Option<String>,
    /// Test only: base URL of Resource Manager and of the blob service (the mock cloud), which
    /// is then addressed path style, `{endpoint}/blob/ACCOUNT/CONTAINER/BLOB`. Plain `http` only
    /// to loopback, and then no credential is sent (a fixed token naming the emulator instead).
    #[serde(default)]
    pub endpoint: Option<String>,
}
