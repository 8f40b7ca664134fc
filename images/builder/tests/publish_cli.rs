//! `cdvm-image publish` of the built disk (`scripts/build-image`'s, checked against its
//! manifest) to the three emulated clouds, as an operator runs it: the binary, a publish.yaml,
//! the JSON it prints. AWS through moto server behind the mock cloud's EC2/EBS proxy, GCP and
//! Azure through the mock cloud. The rollbacks are tested per cloud in cdvm-publish's tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cdvm_mockcloud::config::MockCloudConfig;
use cdvm_mockcloud::moto::MotoServer;
use cdvm_mockcloud::MockCloud;

async fn publish(config: &std::path::Path, cloud: &str) -> serde_json::Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cdvm-image"))
        .args(["publish", "--cloud", cloud, "--config"])
        .arg(config)
        .arg("--image")
        .arg(common::image_dir())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "publish --cloud {cloud}: {stderr}");
    // The operator is told which config key takes the image, and progress was shown.
    assert!(stderr.contains("provider's config"), "{stderr}");
    assert!(stderr.contains("checking"), "{stderr}");
    serde_json::from_slice(&out.stdout).expect("the result is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_disk_is_published_to_aws_gcp_and_azure() {
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::remove_var("AWS_PROFILE");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::image_dir().join("manifest.json")).unwrap(),
    )
    .unwrap();
    let disk_sha = manifest["outputs"]["disk.raw"]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let name = format!("cdvm-{}", &disk_sha[..16]);

    let moto = MotoServer::start().await.expect("moto server");
    let cloud = MockCloud::start(MockCloudConfig {
        moto_url: Some(moto.url.clone()),
        ..MockCloudConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("publish.yaml");
    std::fs::write(
        &config,
        format!(
            "aws:\n  region: us-east-1\n  endpoint: {e}\n\
             gcp:\n  project: cdvm-test\n  bucket: cdvm-images\n  family: cdvm-guest\n  endpoint: {e}\n\
             azure:\n  subscription_id: 00000000-0000-0000-0000-000000000001\n  resource_group: cdvm-images\n  location: westeurope\n  storage_account: cdvmimages\n  container: vhds\n  gallery: cdvm_gallery\n  image_definition: cdvm-guest\n  endpoint: {e}\n",
            e = cloud.base_url
        ),
    )
    .unwrap();

    let aws = publish(&config, "aws").await;
    let ami = aws["image"].as_str().unwrap();
    assert!(ami.starts_with("ami-"), "{aws}");
    let attributes = cloud
        .state
        .aws
        .amis()
        .image(ami)
        .expect("registered through the proxy");
    assert_eq!(attributes.boot_mode.as_deref(), Some("uefi"));
    assert_eq!(attributes.tpm_support.as_deref(), Some("v2.0"));
    let snapshot = attributes.snapshot_id.unwrap();
    // The disk is mostly zeros: far fewer blocks than its 364 were sent.
    let blocks = cloud.state.aws.amis().blocks_written(&snapshot);
    assert!((1..364).contains(&blocks), "{blocks} blocks written");

    let gcp = publish(&config, "gcp").await;
    assert_eq!(
        gcp["image"],
        format!("projects/cdvm-test/global/images/{name}")
    );
    assert_eq!(cloud.state.gce.image_names(), [format!("cdvm-test/{name}")]);
    let image = cloud
        .state
        .gce
        .image(&cloud.base_url, "cdvm-test", &name)
        .unwrap();
    assert_eq!(image["status"], "READY", "{image}");
    assert!(
        cloud.state.gcs.objects().is_empty(),
        "the upload is deleted once GCE has it"
    );

    let azure = publish(&config, "azure").await;
    let version = azure["image"].as_str().unwrap();
    assert_eq!(cloud.state.arm.live_image_versions(), [version.to_owned()]);
    assert!(version.contains("/galleries/cdvm_gallery/images/cdvm-guest/versions/1."));
    assert!(
        cloud.state.arm.live_blobs().is_empty(),
        "the VHD blob is deleted once copied"
    );
}
