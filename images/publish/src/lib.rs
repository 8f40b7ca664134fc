//! `cdvm-publish`: puts the guest disk image built by `cdvm-image` into a cloud account and
//! registers it as a bootable confidential-VM image, one module per cloud, one feature each.
//!
//! Every step that creates something records it first ([`undo::Undo`]); when a later step
//! fails, everything created is deleted in reverse order before the error is returned, so a
//! failed publish leaves no half-registered image behind (and says so when a delete fails too).
//! Credentials come from each SDK's standard chain and are never logged. See docs/image.md,
//! "Publishing".
#![deny(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
pub mod config;
pub mod error;
#[cfg(feature = "gcp")]
pub mod gcp;
pub mod image;
pub mod undo;

pub use config::PublishConfig;
pub use error::PublishError;
pub use image::{Cloud, ImageToPublish, Published};

/// Progress lines for the operator (`uploading 64 MiB of 182 MiB`, `waiting for the image`).
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// Publishes `image` to `cloud` with the matching section of `config`.
pub async fn publish(
    cloud: Cloud,
    config: &PublishConfig,
    image: &ImageToPublish,
    progress: Progress<'_>,
) -> Result<Published, PublishError> {
    let missing = |section: &str| {
        PublishError::Config(format!(
            "the publish configuration has no `{section}` section"
        ))
    };
    match cloud {
        Cloud::Aws => {
            let section = config.aws.as_ref().ok_or_else(|| missing("aws"))?;
            #[cfg(feature = "aws")]
            return aws::publish(section, image, progress).await;
            #[cfg(not(feature = "aws"))]
            {
                let _ = (section, image, progress);
                Err(unsupported(cloud, "cdvm-publish/aws"))
            }
        }
        Cloud::Gcp => {
            let section = config.gcp.as_ref().ok_or_else(|| missing("gcp"))?;
            #[cfg(feature = "gcp")]
            return gcp::publish(section, image, progress).await;
            #[cfg(not(feature = "gcp"))]
            {
                let _ = (section, image, progress);
                Err(unsupported(cloud, "cdvm-publish/gcp"))
            }
        }
        Cloud::Azure => {
            let section = config.azure.as_ref().ok_or_else(|| missing("azure"))?;
            #[cfg(feature = "azure")]
            return azure::publish(section, image, progress).await;
            #[cfg(not(feature = "azure"))]
            {
                let _ = (section, image, progress);
                Err(unsupported(cloud, "cdvm-publish/azure"))
            }
        }
    }
}

#[cfg(not(all(feature = "aws", feature = "gcp", feature = "azure")))]
fn unsupported(cloud: Cloud, feature: &str) -> PublishError {
    PublishError::Config(format!(
        "this build cannot publish to {cloud}: build cdvm-image with the `{feature}` feature"
    ))
}
