//! `cdvm_publish::gcp::publish` against the mock cloud's Cloud Storage and Compute Engine: what
//! a publish leaves, and that a failure at any step leaves nothing (or names what it left).
#![cfg(feature = "gcp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Mutex;

use cdvm_mockcloud::config::{FaultConfig, MockCloudConfig};
use cdvm_mockcloud::MockCloud;
use cdvm_provider_api::retry::RetrySettings;
use cdvm_publish::config::GcpPublish;
use cdvm_publish::error::chain;
use cdvm_publish::gcp::{publish, GUEST_OS_FEATURES, SHA256_LABEL};
use cdvm_publish::{ImageToPublish, PublishError};

const PROJECT: &str = "cdvm-images";
const BUCKET: &str = "cdvm-uploads";
const NAME: &str = "cdvm-guest-0123456789ab";
const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// Over two 4 MiB chunks, so the upload resumes twice.
const DISK: usize = 9 * 1024 * 1024 + 4096;

async fn cloud(faults: FaultConfig) -> MockCloud {
    MockCloud::start(MockCloudConfig {
        faults,
        ..MockCloudConfig::default()
    })
    .await
    .expect("mock cloud starts")
}

/// Named faults; operations take a moment, so they are waited for.
fn fail(calls: &[&str]) -> FaultConfig {
    FaultConfig {
        fail_calls: calls.iter().map(|c| c.to_string()).collect(),
        provisioning_delay_ms: 30,
        ..FaultConfig::default()
    }
}

/// Three attempts a call, so a named fault listed three times fails it for good.
fn section(cloud: &MockCloud, attempts: u32) -> GcpPublish {
    GcpPublish {
        project: PROJECT.into(),
        bucket: BUCKET.into(),
        family: Some("cdvm-guest".into()),
        endpoint: Some(cloud.base_url.clone()),
        retry: Some(RetrySettings {
            attempts,
            base_ms: 1,
            max_ms: 5,
        }),
    }
}

/// A disk.tar.gz whose only member is `member` (GCE wants `disk.raw`), stored, not
/// compressed, so it is as large as the disk.
fn image(dir: &Path, member: &str) -> ImageToPublish {
    let tar_path = dir.join("disk.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tar_path).unwrap(),
        flate2::Compression::none(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut x: u32 = 1;
    let disk: Vec<u8> = (0..DISK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut header = tar::Header::new_gnu();
    header.set_path(member).unwrap();
    header.set_size(disk.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append(&header, disk.as_slice()).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    ImageToPublish {
        name: NAME.into(),
        disk_raw: dir.join("disk.raw"),
        disk_sha256: SHA.into(),
        gce_tar: Some(tar_path),
        vhd: None,
    }
}

async fn run(
    cloud: &MockCloud,
    section: &GcpPublish,
) -> (Result<cdvm_publish::Published, PublishError>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "disk.raw");
    run_with(cloud, section, &img).await
}

async fn run_with(
    _cloud: &MockCloud,
    section: &GcpPublish,
    img: &ImageToPublish,
) -> (Result<cdvm_publish::Published, PublishError>, Vec<String>) {
    let lines = Mutex::new(Vec::new());
    let progress = |l: &str| lines.lock().unwrap().push(l.to_string());
    let result = publish(section, img, &progress).await;
    (result, lines.into_inner().unwrap())
}

fn image_path() -> String {
    format!("projects/{PROJECT}/global/images/{NAME}")
}

fn assert_nothing_left(cloud: &MockCloud) {
    assert_eq!(cloud.state.gce.image_names(), Vec::<String>::new());
    assert_eq!(cloud.state.gcs.objects(), Vec::<String>::new());
}

#[tokio::test]
async fn publish_creates_a_ready_confidential_image_and_deletes_the_upload() {
    let cloud = cloud(FaultConfig::default()).await;
    let (result, lines) = run(&cloud, &section(&cloud, 3)).await;
    let published = result.expect("publishes");
    assert_eq!(published.image, image_path());
    assert_eq!(published.resources, vec![image_path()]);
    let image = cloud
        .state
        .gce
        .image(&cloud.base_url, PROJECT, NAME)
        .expect("the image exists");
    assert_eq!(image["status"], "READY");
    assert_eq!(image["family"], "cdvm-guest");
    assert_eq!(image["architecture"], "X86_64");
    assert_eq!(image["labels"][SHA256_LABEL], &SHA[..32]);
    assert!(image["description"].as_str().unwrap().contains(SHA));
    let features: Vec<&str> = image["guestOsFeatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    for f in GUEST_OS_FEATURES {
        assert!(features.contains(&f), "{f} missing from {features:?}");
    }
    assert_eq!(
        image["rawDisk"]["source"],
        format!("https://storage.googleapis.com/{BUCKET}/{NAME}.tar.gz")
    );
    // GCE copied the archive: the upload is gone.
    assert_eq!(cloud.state.gcs.objects(), Vec::<String>::new());
    let uploads = lines.iter().filter(|l| l.starts_with("uploaded ")).count();
    assert!(uploads >= 3, "a progress line per 4 MiB chunk: {lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("published ")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn publish_goes_through_random_throttling_and_server_errors() {
    let cloud = cloud(FaultConfig {
        seed: 11,
        error_rate: 0.2,
        throttle_rate: 0.1,
        ..FaultConfig::default()
    })
    .await;
    let (result, _) = run(&cloud, &section(&cloud, 12)).await;
    result.expect("publishes despite the faults");
    assert!(cloud.state.faults.injected() > 0, "faults were injected");
    assert_eq!(
        cloud.state.gce.image_names(),
        vec![format!("{PROJECT}/{NAME}")]
    );
    assert_eq!(cloud.state.gcs.objects(), Vec::<String>::new());
}

#[tokio::test]
async fn a_failure_at_each_step_leaves_nothing() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["objects.insert"; 3], "upload", "objects.insert"),
        (&["objects.upload"; 3], "upload", "objects.upload"),
        (&["images.insert"; 3], "create the image", "images.insert"),
        (
            &["images.insert.operation"],
            "create the image",
            "INTERNAL_ERROR",
        ),
        (
            &["globalOperations.wait"; 3],
            "create the image",
            "globalOperations.wait",
        ),
    ];
    for (calls, want_step, want_text) in cases {
        let cloud = cloud(fail(calls)).await;
        let (result, _) = run(&cloud, &section(&cloud, 3)).await;
        match result {
            Err(e @ PublishError::Step { step, .. }) => {
                assert_eq!(step, *want_step, "{calls:?}");
                let text = chain(&e);
                assert!(text.contains(want_text), "{calls:?}: {text}");
            }
            other => panic!("{calls:?}: {other:?}"),
        }
        assert_eq!(cloud.state.faults.injected(), calls.len(), "{calls:?}");
        assert_nothing_left(&cloud);
    }
}

#[tokio::test]
async fn an_archive_gce_cannot_read_fails_the_image_and_is_rolled_back() {
    let cloud = cloud(FaultConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "disk.img");
    let (result, _) = run_with(&cloud, &section(&cloud, 3), &img).await;
    let e = result.expect_err("GCE refuses the archive");
    let text = chain(&e);
    assert!(
        text.contains("INVALID_IMAGE_FILE") && text.contains("disk.img"),
        "{text}"
    );
    assert_nothing_left(&cloud);
}

#[tokio::test]
async fn a_failed_rollback_names_what_it_left() {
    // The image's operation fails, and so does deleting the image.
    let cloud = cloud(fail(&[
        "images.insert.operation",
        "images.delete",
        "images.delete",
        "images.delete",
    ]))
    .await;
    let (result, _) = run(&cloud, &section(&cloud, 3)).await;
    match result {
        Err(PublishError::StepAndCleanup {
            step, left_behind, ..
        }) => {
            assert_eq!(step, "create the image");
            let left: Vec<&str> = left_behind.iter().map(|c| c.resource.as_str()).collect();
            assert_eq!(left, vec![image_path().as_str()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cloud.state.gce.image_names(),
        vec![format!("{PROJECT}/{NAME}")]
    );
    assert_eq!(
        cloud.state.gcs.objects(),
        Vec::<String>::new(),
        "the object was deleted"
    );

    // The insert fails, and so does deleting the uploaded object.
    let cloud = self::cloud(fail(&[
        "images.insert",
        "images.insert",
        "images.insert",
        "objects.delete",
        "objects.delete",
        "objects.delete",
    ]))
    .await;
    let (result, _) = run(&cloud, &section(&cloud, 3)).await;
    let object = format!("gs://{BUCKET}/{NAME}.tar.gz");
    match result {
        Err(e @ PublishError::StepAndCleanup { .. }) => {
            assert!(e.to_string().contains(&object), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cloud.state.gce.image_names(), Vec::<String>::new());
    assert_eq!(
        cloud.state.gcs.objects(),
        vec![format!("{BUCKET}/{NAME}.tar.gz")]
    );
}

#[tokio::test]
async fn an_upload_that_cannot_be_deleted_afterwards_is_reported_not_fatal() {
    let cloud = cloud(fail(&["objects.delete"; 3])).await;
    let (result, lines) = run(&cloud, &section(&cloud, 3)).await;
    let published = result.expect("the image is published");
    let object = format!("gs://{BUCKET}/{NAME}.tar.gz");
    assert_eq!(published.resources, vec![image_path(), object.clone()]);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("warning:") && l.contains(&object)),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_taken_name_is_refused_and_the_existing_image_kept() {
    let cloud = cloud(FaultConfig::default()).await;
    let s = section(&cloud, 3);
    run(&cloud, &s).await.0.expect("first publish");
    let (again, _) = run(&cloud, &s).await;
    match again {
        Err(
            e @ PublishError::Step {
                step: "check the image name",
                ..
            },
        ) => {
            assert!(chain(&e).contains("exists already"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cloud.state.gce.image_names(),
        vec![format!("{PROJECT}/{NAME}")]
    );
}

#[tokio::test]
async fn bad_configuration_is_refused_before_anything_is_created() {
    let cloud = cloud(FaultConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), "disk.raw");
    let mut remote_http = section(&cloud, 3);
    remote_http.endpoint = Some("http://10.1.2.3:8080".into());
    let mut no_bucket = section(&cloud, 3);
    no_bucket.bucket = String::new();
    let mut bad_family = section(&cloud, 3);
    bad_family.family = Some("Guest_Images".into());
    for (s, want) in [
        (&remote_http, "http:// on a loopback address"),
        (&no_bucket, "bucket \"\""),
        (&bad_family, "family"),
    ] {
        match run_with(&cloud, s, &img).await.0 {
            Err(PublishError::Config(why)) => assert!(why.contains(want), "{why}"),
            other => panic!("{want}: {other:?}"),
        }
    }
    let no_tar = ImageToPublish {
        gce_tar: None,
        ..img.clone()
    };
    let got = run_with(&cloud, &section(&cloud, 3), &no_tar).await.0;
    assert!(
        matches!(
            got,
            Err(PublishError::MissingArtifact {
                what: "disk.tar.gz",
                ..
            })
        ),
        "{got:?}"
    );
    assert_nothing_left(&cloud);
}
