//! What is published and what comes back.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A cloud `cdvm-image publish` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Amazon EC2: an EBS snapshot and an AMI.
    Aws,
    /// Google Compute Engine: a Cloud Storage object and an image.
    Gcp,
    /// Azure: a page blob and an Azure Compute Gallery image version.
    Azure,
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cloud::Aws => "aws",
            Cloud::Gcp => "gcp",
            Cloud::Azure => "azure",
        })
    }
}

/// The image to publish: files written by `cdvm-image build` / `export`, and the name to give it.
#[derive(Debug, Clone)]
pub struct ImageToPublish {
    /// Name of the registered image (AMI name, GCE image name, gallery image version's tag);
    /// `cdvm-image` derives it from the disk's SHA-256, so the same disk gets the same name.
    pub name: String,
    /// The raw GPT disk (`disk.raw`): uploaded to AWS as it is.
    pub disk_raw: PathBuf,
    /// Its SHA-256, hex: recorded as a tag/label/description on every cloud.
    pub disk_sha256: String,
    /// `disk.tar.gz` (GCP's upload format).
    pub gce_tar: Option<PathBuf>,
    /// `disk.vhd` (Azure's upload format).
    pub vhd: Option<PathBuf>,
}

/// A registered image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The cloud.
    pub cloud: Cloud,
    /// What a provider's config names: an AMI id (`ami-…`), a GCE image path
    /// (`projects/P/global/images/N`), a gallery image version id
    /// (`/subscriptions/…/galleries/G/images/D/versions/V`).
    pub image: String,
    /// Everything the publish created and left in place (the image and what backs it), so an
    /// operator knows what to delete when retiring the image.
    pub resources: Vec<String>,
}
