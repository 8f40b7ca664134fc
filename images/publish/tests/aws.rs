//! `cdvm-image publish --cloud aws` against moto server behind the mock cloud's EC2/EBS proxy:
//! the real aws-sdk-ec2 and aws-sdk-ebs, the EBS direct APIs for the upload, and the AMI's UEFI
//! and TPM settings kept by the proxy (moto drops them). Every failed step must leave no
//! snapshot and no AMI behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use cdvm_mockcloud::aws_setup;
use cdvm_mockcloud::config::{FaultConfig, MockCloudConfig};
use cdvm_mockcloud::moto::MotoServer;
use cdvm_mockcloud::MockCloud;
use cdvm_provider_api::{conformance, JobTag, OwnerTag, Provider};
use cdvm_publish::config::AwsPublish;
use cdvm_publish::{Cloud, ImageToPublish, PublishConfig, PublishError};

const REGION: &str = "us-east-1";
const BLOCK: usize = 512 * 1024;

fn credentials() {
    // The SDK's standard chain reads these; moto accepts any.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::remove_var("AWS_PROFILE");
}

/// A disk of 9 blocks and a bit (the last one padded): blocks 0, 4 and 9 hold data, the rest
/// is zero.
fn disk(dir: &std::path::Path) -> (ImageToPublish, Vec<u8>) {
    let mut bytes = vec![0u8; 9 * BLOCK + 4096];
    for (i, b) in bytes[..BLOCK].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    bytes[4 * BLOCK + 17] = 0x5a;
    let tail = bytes.len() - 1;
    bytes[tail] = 0xee;
    let path = dir.join("disk.raw");
    std::fs::write(&path, &bytes).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    (
        ImageToPublish {
            name: format!("cdvm-{}", &sha[..16]),
            disk_raw: path,
            disk_sha256: sha,
            gce_tar: None,
            vhd: None,
        },
        bytes,
    )
}

struct Env {
    _moto: MotoServer,
    cloud: MockCloud,
    config: PublishConfig,
    ec2: aws_sdk_ec2::Client,
    ebs: aws_sdk_ebs::Client,
}

async fn env(fail_calls: &[&str]) -> Env {
    credentials();
    let moto = MotoServer::start().await.expect("moto server");
    let cloud = MockCloud::start(MockCloudConfig {
        moto_url: Some(moto.url.clone()),
        faults: FaultConfig {
            fail_calls: fail_calls.iter().map(|s| s.to_string()).collect(),
            ..FaultConfig::default()
        },
        ..MockCloudConfig::default()
    })
    .await
    .unwrap();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&moto.url)
        .load()
        .await;
    let config = PublishConfig {
        aws: Some(AwsPublish {
            region: REGION.into(),
            endpoint: Some(cloud.base_url.clone()),
        }),
        ..PublishConfig::default()
    };
    Env {
        ec2: aws_sdk_ec2::Client::new(&sdk),
        ebs: aws_sdk_ebs::Client::new(&sdk),
        _moto: moto,
        cloud,
        config,
    }
}

/// Our snapshots and AMIs still in moto.
async fn leftovers(env: &Env) -> (Vec<String>, Vec<String>) {
    let snaps = env
        .ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    let snaps = snaps
        .snapshots()
        .iter()
        .filter(|s| s.tags().iter().any(|t| t.key() == Some("cdvm:disk-sha256")))
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect();
    let images = env
        .ec2
        .describe_images()
        .owners("self")
        .send()
        .await
        .unwrap();
    let images = images
        .images()
        .iter()
        .filter(|i| i.name().is_some_and(|n| n.starts_with("cdvm-")))
        .filter_map(|i| i.image_id().map(str::to_owned))
        .collect();
    (snaps, images)
}

fn recorder() -> (std::sync::Arc<Mutex<Vec<String>>>, impl Fn(&str) + Sync) {
    let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    (lines, move |s: &str| l.lock().unwrap().push(s.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_makes_a_uefi_tpm_ami_from_the_nonzero_blocks_and_the_provider_boots_it() {
    // One injected 500 on a block: the SDK's retry carries the upload through.
    let env = env(&["PutSnapshotBlock"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (image, bytes) = disk(dir.path());
    let (lines, progress) = recorder();
    let published = cdvm_publish::publish(Cloud::Aws, &env.config, &image, &progress)
        .await
        .expect("publish");
    assert_eq!(published.cloud, Cloud::Aws);
    assert!(published.image.starts_with("ami-"), "{published:?}");
    let snapshot = published.resources[0].clone();
    assert!(snapshot.starts_with("snap-"), "{published:?}");
    assert_eq!(published.resources[1], published.image);
    assert_eq!(env.cloud.state.faults.injected(), 1, "the fault happened");

    // What the proxy kept of RegisterImage, and what DescribeImages now shows.
    let attributes = env.cloud.state.aws.amis().image(&published.image).unwrap();
    assert_eq!(attributes.boot_mode.as_deref(), Some("uefi"));
    assert_eq!(attributes.tpm_support.as_deref(), Some("v2.0"));
    assert_eq!(attributes.snapshot_id.as_deref(), Some(snapshot.as_str()));
    // Three blocks hold data (the last padded with zeros); the zero blocks were skipped.
    assert_eq!(env.cloud.state.aws.amis().blocks_written(&snapshot), 3);
    for (index, start) in [(0usize, 0usize), (4, 4 * BLOCK), (9, 9 * BLOCK)] {
        let got = env
            .ebs
            .get_snapshot_block()
            .snapshot_id(&snapshot)
            .block_index(index as i32)
            .block_token("t")
            .send()
            .await
            .unwrap();
        let data = got.block_data.collect().await.unwrap().into_bytes();
        let end = (start + BLOCK).min(bytes.len());
        assert_eq!(&data[..end - start], &bytes[start..end], "block {index}");
        assert!(
            data[end - start..].iter().all(|b| *b == 0),
            "padding is zero"
        );
    }
    let snaps = env
        .ec2
        .describe_snapshots()
        .snapshot_ids(&snapshot)
        .send()
        .await
        .unwrap();
    let tags = snaps.snapshots()[0].tags();
    assert!(tags
        .iter()
        .any(|t| t.key() == Some("cdvm:disk-sha256") && t.value() == Some(&*image.disk_sha256)));
    let lines = lines.lock().unwrap().join("\n");
    assert!(lines.contains("zero blocks skipped"), "{lines}");
    assert!(lines.contains("3 of 10 blocks written"), "{lines}");

    // The provider's config names the published AMI, and the VM it launches boots it.
    let fixture = aws_setup::provision(&env._moto.url, REGION).await.unwrap();
    let provider = cdvm_provider_aws::AwsProvider::new(cdvm_provider_aws::AwsProviderConfig {
        region: REGION.into(),
        subnet_id: fixture.subnet_id,
        security_group_id: fixture.security_group_id,
        ami_id: published.image.clone(),
        role_arn: None,
        owner_tag_key: "cdvm-owner".into(),
        owner_tag: "cdvm-test".into(),
        allowed_instance_types: vec!["m6a.large".into()],
        endpoint: Some(env.cloud.base_url.clone()),
        retry: None,
    })
    .await
    .unwrap();
    let owner = OwnerTag("cdvm-test".into());
    let vm = provider
        .launch(&conformance::sample_spec(&owner, &JobTag("7".repeat(64))))
        .await
        .unwrap();
    let described = env
        .ec2
        .describe_instances()
        .instance_ids(&vm.id.0)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(instance.image_id(), Some(published.image.as_str()));
    provider.destroy(&vm.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_step_leaves_no_snapshot_and_no_ami() {
    // Five failures in a row outlast the SDK's five attempts.
    for call in [
        "StartSnapshot",
        "PutSnapshotBlock",
        "CompleteSnapshot",
        "RegisterImage",
        "DescribeImages",
    ] {
        let env = env(&[call; 5]).await;
        let dir = tempfile::tempdir().unwrap();
        let (image, _) = disk(dir.path());
        let err = cdvm_publish::publish(Cloud::Aws, &env.config, &image, &|_| {})
            .await
            .expect_err(call);
        assert!(matches!(err, PublishError::Step { .. }), "{call}: {err:?}");
        let text = cdvm_publish::error::chain(&err);
        assert!(
            text.contains("everything created before it was deleted"),
            "{call}: {text}"
        );
        assert_eq!(
            leftovers(&env).await,
            (vec![], vec![]),
            "{call}: nothing may be left: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_fails_during_the_rollback_is_named() {
    let mut fails = vec!["RegisterImage"; 5];
    fails.extend(["DeleteSnapshot"; 5]);
    let env = env(&fails).await;
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = disk(dir.path());
    let err = cdvm_publish::publish(Cloud::Aws, &env.config, &image, &|_| {})
        .await
        .expect_err("register fails");
    let PublishError::StepAndCleanup {
        step, left_behind, ..
    } = &err
    else {
        panic!("expected StepAndCleanup, got {err:?}");
    };
    assert_eq!(*step, "register image");
    let (snaps, images) = leftovers(&env).await;
    assert!(images.is_empty());
    assert_eq!(snaps.len(), 1);
    assert_eq!(left_behind.len(), 1);
    assert_eq!(left_behind[0].resource, snaps[0]);
    assert!(err.to_string().contains(&snaps[0]), "{err}");
}

#[tokio::test]
async fn a_plain_http_endpoint_off_loopback_is_refused_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = disk(dir.path());
    let config = PublishConfig {
        aws: Some(AwsPublish {
            region: REGION.into(),
            endpoint: Some("http://ec2.example.com".into()),
        }),
        ..PublishConfig::default()
    };
    let err = cdvm_publish::publish(Cloud::Aws, &config, &image, &|_| {})
        .await
        .expect_err("refused");
    assert!(matches!(err, PublishError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("loopback"), "{err}");
    let err = cdvm_publish::publish(Cloud::Aws, &PublishConfig::default(), &image, &|_| {})
        .await
        .expect_err("no section");
    assert!(err.to_string().contains("no `aws` section"), "{err}");
}
