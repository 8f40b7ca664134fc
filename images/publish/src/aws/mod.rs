//! AWS: `disk.raw` becomes an EBS snapshot through the EBS direct APIs (no S3 bucket, no
//! VM Import role), and the snapshot an AMI registered with `BootMode=uefi`,
//! `TpmSupport=v2.0` (NitroTPM, which measures the UKI into PCR 4), `ImdsSupport=v2.0` and ENA.
//! Credentials come from the SDK's standard chain (environment, profile, IMDS, SSO).

mod snapshot;

use std::fmt;
use std::time::Duration;

use aws_sdk_ec2::types::{
    ArchitectureValues, BlockDeviceMapping, BootModeValues, EbsBlockDevice, Filter, ImageState,
    ImdsSupportValues, ResourceType, Tag, TagSpecification, TpmSupportValues, VolumeType,
};

use crate::config::AwsPublish;
use crate::error::{BoxError, PublishError};
use crate::image::{Cloud, ImageToPublish, Published};
use crate::undo::Undo;
use crate::Progress;

/// The root device the AMI boots from.
const ROOT_DEVICE: &str = "/dev/xvda";
/// Tag carrying the disk's SHA-256 on the snapshot and the AMI.
pub const DISK_TAG: &str = "cdvm:disk-sha256";
/// How long to wait for the snapshot and the AMI to become usable.
const READY_WITHIN: Duration = Duration::from_secs(30 * 60);

/// Something a publish created in the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// An EBS snapshot (`snap-…`).
    Snapshot(String),
    /// An AMI (`ami-…`).
    Image(String),
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Snapshot(id) | Resource::Image(id) => f.write_str(id),
        }
    }
}

/// Uploads `image.disk_raw` and registers the AMI (module docs); on failure deletes the
/// snapshot and the AMI if they were made.
pub async fn publish(
    section: &AwsPublish,
    image: &ImageToPublish,
    progress: Progress<'_>,
) -> Result<Published, PublishError> {
    check_endpoint(section)?;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(section.region.clone()))
        // The standard mode retries throttling and 5xx on every call; each step here is
        // idempotent or fails before it changes anything (RegisterImage), so retrying is safe.
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5));
    if let Some(endpoint) = &section.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let sdk = loader.load().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let ebs = aws_sdk_ebs::Client::new(&sdk);

    let mut undo = Undo::default();
    match steps(&ec2, &ebs, image, progress, &mut undo).await {
        Ok(ami) => Ok(Published {
            cloud: Cloud::Aws,
            image: ami,
            resources: undo.commit().iter().map(ToString::to_string).collect(),
        }),
        Err((step, source)) => Err(undo
            .roll_back(step, source, |r| {
                let ec2 = ec2.clone();
                let r = r.clone();
                async move { delete(&ec2, &r).await }
            })
            .await),
    }
}

/// A plain-http endpoint only on loopback: an emulator, never AWS (credentials would travel
/// unencrypted).
fn check_endpoint(section: &AwsPublish) -> Result<(), PublishError> {
    if section.region.trim().is_empty() {
        return Err(PublishError::Config("aws.region is empty".into()));
    }
    if let Some(endpoint) = &section.endpoint {
        if let Some(rest) = endpoint.strip_prefix("http://") {
            let host = rest.split(['/', ':']).next().unwrap_or("");
            if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
                return Err(PublishError::Config(format!(
                    "aws.endpoint {endpoint}: plain http is allowed to loopback only"
                )));
            }
        } else if !endpoint.starts_with("https://") {
            return Err(PublishError::Config(format!(
                "aws.endpoint {endpoint} is not an http(s) URL"
            )));
        }
    }
    Ok(())
}

type StepError = (&'static str, BoxError);

fn step<E: std::error::Error + Send + Sync + 'static>(
    name: &'static str,
) -> impl Fn(E) -> StepError {
    move |e| (name, Box::new(e) as BoxError)
}

async fn steps(
    ec2: &aws_sdk_ec2::Client,
    ebs: &aws_sdk_ebs::Client,
    image: &ImageToPublish,
    progress: Progress<'_>,
    undo: &mut Undo<Resource>,
) -> Result<String, StepError> {
    let snapshot_id = snapshot::upload(ebs, image, progress, undo).await?;
    progress("waiting for the snapshot to complete");
    wait_snapshot(ec2, &snapshot_id).await?;

    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Image)
        .tags(
            Tag::builder()
                .key(DISK_TAG)
                .value(&image.disk_sha256)
                .build(),
        )
        .build();
    let registered = ec2
        .register_image()
        .name(&image.name)
        .description(format!(
            "ConfidentialDVM guest disk sha256 {}",
            image.disk_sha256
        ))
        .architecture(ArchitectureValues::X8664)
        .virtualization_type("hvm")
        .root_device_name(ROOT_DEVICE)
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(ROOT_DEVICE)
                .ebs(
                    EbsBlockDevice::builder()
                        .snapshot_id(&snapshot_id)
                        .volume_type(VolumeType::Gp3)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .ena_support(true)
        .boot_mode(BootModeValues::Uefi)
        .tpm_support(TpmSupportValues::V20)
        .imds_support(ImdsSupportValues::V20)
        .tag_specifications(tags)
        .send()
        .await
        .map_err(|e| step("register image")(aws_sdk_ec2::Error::from(e)))?;
    let ami = registered
        .image_id()
        .ok_or_else(|| {
            (
                "register image",
                "RegisterImage answered no image id".into(),
            )
        })?
        .to_owned();
    undo.created(Resource::Image(ami.clone()));
    progress(&format!(
        "registered {ami}; waiting for it to become available"
    ));
    wait_image(ec2, &ami).await?;
    Ok(ami)
}

async fn wait_snapshot(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), StepError> {
    const STEP: &str = "wait for the snapshot";
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        let answer = ec2
            .describe_snapshots()
            .snapshot_ids(id)
            .send()
            .await
            .map_err(|e| step(STEP)(aws_sdk_ec2::Error::from(e)))?;
        let state = answer
            .snapshots()
            .first()
            .and_then(|s| s.state())
            .map(|s| s.as_str().to_owned());
        match state.as_deref() {
            Some("completed") => return Ok(()),
            Some("error") => return Err((STEP, format!("snapshot {id} is in state error").into())),
            _ if tokio::time::Instant::now() >= deadline => {
                return Err((
                    STEP,
                    format!(
                        "snapshot {id} not completed after {} s",
                        READY_WITHIN.as_secs()
                    )
                    .into(),
                ))
            }
            _ => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// Waits for `available`, then checks the AMI is what was asked for: a cloud that dropped the
/// UEFI or TPM setting would give VMs whose PCRs pin nothing.
async fn wait_image(ec2: &aws_sdk_ec2::Client, ami: &str) -> Result<(), StepError> {
    const STEP: &str = "wait for the image";
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        let answer = ec2
            .describe_images()
            .image_ids(ami)
            .filters(Filter::builder().name("is-public").values("false").build())
            .send()
            .await
            .map_err(|e| step(STEP)(aws_sdk_ec2::Error::from(e)))?;
        let Some(found) = answer.images().first() else {
            return Err((
                STEP,
                format!("{ami} is not listed by DescribeImages").into(),
            ));
        };
        match found.state() {
            Some(ImageState::Available) => {
                let mut wrong = Vec::new();
                if found.boot_mode() != Some(&BootModeValues::Uefi) {
                    wrong.push(format!("boot mode {:?} (not uefi)", found.boot_mode()));
                }
                if found.tpm_support() != Some(&TpmSupportValues::V20) {
                    wrong.push(format!("TPM support {:?} (not v2.0)", found.tpm_support()));
                }
                if found.ena_support() != Some(true) {
                    wrong.push("no ENA support".to_owned());
                }
                if wrong.is_empty() {
                    return Ok(());
                }
                return Err((
                    STEP,
                    Box::new(PublishError::Mismatch(format!(
                        "{ami}: {}",
                        wrong.join(", ")
                    ))),
                ));
            }
            Some(ImageState::Failed | ImageState::Error | ImageState::Invalid) => {
                return Err((
                    STEP,
                    format!(
                        "{ami} is {:?}: {}",
                        found.state(),
                        found
                            .state_reason()
                            .and_then(|r| r.message())
                            .unwrap_or("no reason given")
                    )
                    .into(),
                ))
            }
            _ if tokio::time::Instant::now() >= deadline => {
                return Err((
                    STEP,
                    format!("{ami} not available after {} s", READY_WITHIN.as_secs()).into(),
                ))
            }
            _ => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

async fn delete(ec2: &aws_sdk_ec2::Client, resource: &Resource) -> Result<(), BoxError> {
    match resource {
        Resource::Image(id) => {
            ec2.deregister_image()
                .image_id(id)
                .send()
                .await
                .map_err(aws_sdk_ec2::Error::from)?;
        }
        Resource::Snapshot(id) => {
            ec2.delete_snapshot()
                .snapshot_id(id)
                .send()
                .await
                .map_err(aws_sdk_ec2::Error::from)?;
        }
    }
    Ok(())
}
