//! `cdvm-publish` to Azure against the mock cloud: page blob, gallery definition and version,
//! and what a failure at each step leaves behind (nothing we created, unless a delete fails too).
#![cfg(feature = "azure")]

use std::path::Path;
use std::sync::Mutex;

use cdvm_mockcloud::config::{FaultConfig, MockCloudConfig};
use cdvm_mockcloud::MockCloud;
use cdvm_publish::azure::{version_name, CONFIDENTIAL_SUPPORTED};
use cdvm_publish::config::AzurePublish;
use cdvm_publish::{Cloud, ImageToPublish, PublishError, Published};
use serde_json::json;
use sha2::{Digest, Sha256};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const RG: &str = "images";
/// How often the publish tries a call against the emulator (a named 5xx listed this often fails
/// the call for good).
const TRIES: usize = 8;

/// A 2 MiB disk with two non-zero runs (sectors 0-1 and 2048-2050) and a fixed-VHD footer:
/// three Put Page calls of 6 sectors in all. Returns the VHD and the disk's SHA-256.
fn fake_vhd(dir: &Path, salt: u8) -> (std::path::PathBuf, String) {
    let mut disk = vec![0u8; 2 << 20];
    disk[..1024].fill(0xa5);
    disk[0] = salt;
    disk[2048 * 512..2051 * 512].fill(0x5a);
    let mut footer = [0u8; 512];
    footer[..8].copy_from_slice(b"conectix");
    footer[40..48].copy_from_slice(&(disk.len() as u64).to_be_bytes());
    footer[48..56].copy_from_slice(&(disk.len() as u64).to_be_bytes());
    let sha = hex::encode(Sha256::digest(&disk));
    let path = dir.join(format!("disk-{salt}.vhd"));
    let mut vhd = disk;
    vhd.extend_from_slice(&footer);
    std::fs::write(&path, vhd).expect("write vhd");
    (path, sha)
}

fn image(dir: &Path, salt: u8) -> ImageToPublish {
    let (vhd, sha) = fake_vhd(dir, salt);
    ImageToPublish {
        name: format!("cdvm-{}", &sha[..12]),
        disk_raw: dir.join("disk.raw"),
        disk_sha256: sha,
        gce_tar: None,
        vhd: Some(vhd),
    }
}

fn section(cloud: &MockCloud) -> AzurePublish {
    AzurePublish {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        location: "westeurope".into(),
        storage_account: "cdvmimages".into(),
        container: "vhds".into(),
        gallery: "cdvm_gallery".into(),
        image_definition: "cdvm-guest".into(),
        identity_client_id: None,
        endpoint: Some(cloud.base_url.clone()),
    }
}

fn definition_id() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/galleries/cdvm_gallery/images/cdvm-guest")
}

fn version_id(image: &ImageToPublish) -> String {
    format!(
        "{}/versions/{}",
        definition_id(),
        version_name(&image.disk_sha256).expect("version")
    )
}

async fn mock(fail_calls: &[&str]) -> MockCloud {
    mock_with(FaultConfig {
        fail_calls: fail_calls.iter().map(|c| c.to_string()).collect(),
        provisioning_delay_ms: 60,
        ..FaultConfig::default()
    })
    .await
}

async fn mock_with(faults: FaultConfig) -> MockCloud {
    MockCloud::start(MockCloudConfig {
        faults,
        ..MockCloudConfig::default()
    })
    .await
    .expect("mock cloud")
}

async fn publish(
    section: &AzurePublish,
    image: &ImageToPublish,
) -> (Result<Published, PublishError>, Vec<String>) {
    let lines = Mutex::new(Vec::new());
    let progress = |l: &str| lines.lock().expect("lines").push(l.to_string());
    let config = cdvm_publish::PublishConfig {
        azure: Some(section.clone()),
        ..Default::default()
    };
    let result = cdvm_publish::publish(Cloud::Azure, &config, image, &progress).await;
    (result, lines.into_inner().expect("lines"))
}

fn confidential_definition() -> serde_json::Value {
    json!({
        "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
        "identifier": {"publisher": "p", "offer": "o", "sku": "s"},
        "features": [{"name": "SecurityType", "value": "ConfidentialVMSupported"}],
    })
}

#[tokio::test]
async fn publish_uploads_non_zero_pages_and_registers_a_confidential_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = mock(&[]).await;
    let img = image(dir.path(), 1);
    let (result, lines) = publish(&section(&cloud), &img).await;
    let published = result.expect("publish");
    assert_eq!(published.cloud, Cloud::Azure);
    assert_eq!(published.image, version_id(&img));
    assert_eq!(published.resources, [definition_id(), version_id(&img)]);
    let arm = &cloud.state.arm;
    assert_eq!(arm.live_image_versions(), [version_id(&img)]);
    let version = arm.gallery_resource(&version_id(&img)).expect("version");
    assert_eq!(version["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        version["tags"]["cdvm-disk-sha256"],
        img.disk_sha256.as_str()
    );
    let definition = arm.gallery_resource(&definition_id()).expect("definition");
    assert_eq!(definition["properties"]["hyperVGeneration"], "V2");
    assert_eq!(
        definition["properties"]["features"][0],
        json!({"name": "SecurityType", "value": CONFIDENTIAL_SUPPORTED})
    );
    // Sectors 0-1, 2048-2050 and the footer: three writes, six sectors; zeros never sent.
    assert_eq!(arm.page_writes(), (3, 6 * 512));
    assert!(arm.live_blobs().is_empty(), "the uploaded blob is deleted");
    assert!(
        lines.iter().any(|l| l.starts_with("uploaded 2 of 2 MiB")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("published ")),
        "{lines:?}"
    );

    // The same disk again: already there, nothing uploaded.
    let (again, lines) = publish(&section(&cloud), &img).await;
    assert_eq!(again.expect("republish").image, version_id(&img));
    assert!(
        lines.iter().any(|l| l.starts_with("already published")),
        "{lines:?}"
    );
    assert_eq!(arm.page_writes(), (3, 6 * 512));
}

#[tokio::test]
async fn a_failing_step_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = image(dir.path(), 2);
    // Each 5xx listed as often as the publish tries it.
    for (fault, times, step) in [
        ("blobs.putPage", TRIES, "upload"),
        (
            "galleryImages.createOrUpdate",
            TRIES,
            "create the image definition",
        ),
        (
            "galleryImageVersions.createOrUpdate",
            TRIES,
            "create the image version",
        ),
        (
            "galleryImageVersions.provisioning",
            1,
            "create the image version",
        ),
    ] {
        let cloud = mock(&vec![fault; times]).await;
        let (result, lines) = publish(&section(&cloud), &img).await;
        match result {
            Err(e @ PublishError::Step { .. }) => {
                let text = cdvm_publish::error::chain(&e);
                assert!(text.starts_with(step), "{fault}: {text}");
                if fault.ends_with("provisioning") {
                    assert!(text.contains("ReplicationJobsNotCompleted"), "{text}");
                }
            }
            other => panic!("{fault}: {other:?}"),
        }
        let arm = &cloud.state.arm;
        assert!(cloud.state.faults.injected() >= 1, "{fault} was injected");
        assert!(arm.live_blobs().is_empty(), "{fault}: blob left");
        assert!(
            arm.live_image_versions().is_empty(),
            "{fault}: version left"
        );
        assert!(
            arm.live_image_definitions().is_empty(),
            "{fault}: definition left"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("deleting what was created")),
            "{lines:?}"
        );
    }
}

#[tokio::test]
async fn an_existing_definition_is_reused_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = mock(&["galleryImageVersions.provisioning"]).await;
    let arm = &cloud.state.arm;
    arm.seed_image_definition(&definition_id(), "westeurope", confidential_definition());
    let first = image(dir.path(), 3);
    let (result, _) = publish(&section(&cloud), &first).await;
    assert!(
        matches!(result, Err(PublishError::Step { .. })),
        "{result:?}"
    );
    assert_eq!(
        arm.live_image_definitions(),
        [definition_id()],
        "not ours: kept"
    );
    assert!(arm.live_image_versions().is_empty());
    assert!(arm.live_blobs().is_empty());

    let (result, _) = publish(&section(&cloud), &first).await;
    let published = result.expect("publish");
    assert_eq!(
        published.resources,
        [version_id(&first)],
        "the definition is not ours"
    );

    // A definition that cannot hold a confidential Gen2 image is refused before any upload.
    let other = mock(&[]).await;
    let mut gen1 = confidential_definition();
    gen1["hyperVGeneration"] = json!("V1");
    gen1["features"] = json!([]);
    other
        .state
        .arm
        .seed_image_definition(&definition_id(), "westeurope", gen1);
    let (result, _) = publish(&section(&other), &image(dir.path(), 4)).await;
    match result {
        Err(PublishError::Mismatch(why)) => {
            assert!(
                why.contains("hyperVGeneration V1") && why.contains("SecurityType none"),
                "{why}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(other.state.arm.page_writes(), (0, 0));
    assert!(other.state.arm.live_blobs().is_empty());
}

#[tokio::test]
async fn a_failed_delete_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = image(dir.path(), 5);
    let mut faults = vec!["galleryImageVersions.provisioning"];
    faults.extend(["galleryImageVersions.delete"; TRIES]);
    let cloud = mock(&faults).await;
    let (result, _) = publish(&section(&cloud), &img).await;
    let PublishError::StepAndCleanup {
        step, left_behind, ..
    } = result.expect_err("fails")
    else {
        panic!("not StepAndCleanup");
    };
    assert_eq!(step, "create the image version");
    let left: Vec<&str> = left_behind.iter().map(|c| c.resource.as_str()).collect();
    // The version could not be deleted, so neither could its definition; the blob could.
    assert_eq!(
        left,
        [
            format!("image version {}", version_id(&img)),
            format!("image definition {}", definition_id()),
        ]
    );
    assert!(
        left_behind[1].reason.contains("CannotDeleteResource"),
        "{left_behind:?}"
    );
    assert!(cloud.state.arm.live_blobs().is_empty());
    assert_eq!(cloud.state.arm.live_image_versions(), [version_id(&img)]);
}

#[tokio::test]
async fn bad_configuration_is_refused_before_any_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = mock(&[]).await;
    let img = image(dir.path(), 6);
    let good = section(&cloud);
    let mut bad_account = good.clone();
    bad_account.storage_account = "Not_A_Storage_Account".into();
    let mut bad_container = good.clone();
    bad_container.container = "a--b".into();
    let mut plain_http = good.clone();
    plain_http.endpoint = Some("http://example.com".into());
    let mut bad_version = good.clone();
    bad_version.image_definition = "-leading-hyphen".into();
    for (s, what) in [
        (bad_account, "storage_account"),
        (bad_container, "container"),
        (plain_http, "endpoint"),
        (bad_version, "image_definition"),
    ] {
        let (result, _) = publish(&s, &img).await;
        match result {
            Err(PublishError::Config(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    let mut no_vhd = img.clone();
    no_vhd.vhd = None;
    let (result, _) = publish(&good, &no_vhd).await;
    assert!(
        matches!(
            result,
            Err(PublishError::MissingArtifact {
                what: "disk.vhd",
                ..
            })
        ),
        "{result:?}"
    );
    let odd = dir.path().join("odd.vhd");
    std::fs::write(&odd, vec![1u8; 1000]).expect("write");
    let mut odd_size = img.clone();
    odd_size.vhd = Some(odd);
    let (result, _) = publish(&good, &odd_size).await;
    assert!(
        matches!(result, Err(PublishError::Config(ref m)) if m.contains("1000 bytes")),
        "{result:?}"
    );
    // A VHD that does not hold the named disk is caught and rolled back.
    assert_eq!(cloud.state.arm.page_writes(), (0, 0), "nothing uploaded");
    assert!(cloud.state.arm.live_blobs().is_empty());
    let mut wrong_hash = img.clone();
    wrong_hash.disk_sha256 = "ab".repeat(32);
    let (result, _) = publish(&good, &wrong_hash).await;
    let e = result.expect_err("hash mismatch");
    assert!(
        cdvm_publish::error::chain(&e).contains("does not hold the disk"),
        "{e}"
    );
    let arm = &cloud.state.arm;
    assert!(arm.live_blobs().is_empty() && arm.live_image_definitions().is_empty());
    assert!(arm.live_image_versions().is_empty());
}

#[tokio::test]
async fn random_throttling_and_server_errors_are_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = mock_with(FaultConfig {
        seed: 11,
        error_rate: 0.15,
        throttle_rate: 0.1,
        provisioning_delay_ms: 60,
        ..FaultConfig::default()
    })
    .await;
    let img = image(dir.path(), 7);
    let (result, _) = publish(&section(&cloud), &img).await;
    assert_eq!(result.expect("publish").image, version_id(&img));
    assert!(cloud.state.faults.injected() > 0, "faults were injected");
    let arm = &cloud.state.arm;
    let version = arm.gallery_resource(&version_id(&img)).expect("version");
    assert_eq!(version["properties"]["provisioningState"], "Succeeded");
    assert!(arm.live_blobs().is_empty());
    // Retried page writes rewrite the same ranges: the blob's pages were all sent, and only them.
    assert!(arm.page_writes().0 >= 3);
}
