//! The AWS backend against moto server: the real `aws-sdk-ec2` speaking EC2's query API to an
//! emulator on loopback. moto accepts and ignores `CpuOptions`, so what was sent is asserted from
//! moto's request recorder. Faults come from the mockcloud proxy in front of moto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use cdvm_mockcloud::aws_setup::{self, AwsFixture};
use cdvm_mockcloud::config::{BootConfig, FaultConfig, MockCloudConfig};
use cdvm_mockcloud::moto::MotoServer;
use cdvm_mockcloud::MockCloud;
use cdvm_provider_api::conformance;
use cdvm_provider_api::retry::RetrySettings;
use cdvm_provider_api::{JobTag, OwnerTag, Provider, ProviderError, VmState};
use cdvm_provider_aws::{AwsProvider, AwsProviderConfig};

const REGION: &str = "us-east-1";
const OWNER_KEY: &str = "cdvm-owner";

fn fast_retry() -> RetrySettings {
    RetrySettings {
        attempts: 10,
        base_ms: 5,
        max_ms: 50,
    }
}

fn credentials() {
    // The SDK's standard chain reads these; moto accepts any.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::remove_var("AWS_PROFILE");
}

fn config(fixture: &AwsFixture, endpoint: &str, types: &[&str]) -> AwsProviderConfig {
    AwsProviderConfig {
        region: fixture.region.clone(),
        subnet_id: fixture.subnet_id.clone(),
        security_group_id: fixture.security_group_id.clone(),
        ami_id: fixture.ami_id.clone(),
        role_arn: None,
        owner_tag_key: OWNER_KEY.into(),
        owner_tag: "cdvm-test".into(),
        allowed_instance_types: types.iter().map(|t| t.to_string()).collect(),
        endpoint: Some(endpoint.into()),
        retry: Some(fast_retry()),
    }
}

async fn moto_and_fixture() -> (MotoServer, AwsFixture) {
    credentials();
    let moto = MotoServer::start().await.expect("moto server");
    let fixture = aws_setup::provision(&moto.url, REGION)
        .await
        .expect("network and AMI in moto");
    (moto, fixture)
}

/// Instances moto still has alive (not shutting-down/terminated), all owners.
async fn live_in_moto(moto: &MotoServer, fixture: &AwsFixture) -> Vec<String> {
    let p = AwsProvider::new(config(fixture, &moto.url, &["m6a.large"]))
        .await
        .unwrap();
    let mut live = Vec::new();
    for owner in [
        "conf-tags",
        "conf-idem",
        "conf-iso-a",
        "conf-iso-b",
        "conf-destroy",
        "faults-tags",
        "faults-idem",
        "faults-iso-a",
        "faults-iso-b",
        "faults-destroy",
        "rec",
        "boot",
    ] {
        live.extend(
            p.list(&OwnerTag(owner.into()))
                .await
                .unwrap()
                .into_iter()
                .map(|h| h.id.0),
        );
    }
    live
}

async fn recorded(moto: &MotoServer) -> String {
    reqwest::get(format!("{}/moto-api/recorder/download-recording", moto.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn decoded_body(line: &str) -> String {
    let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let body = entry["body"].as_str().unwrap_or_default();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or_default();
    String::from_utf8_lossy(&raw).into_owned()
}

async fn recorder(moto: &MotoServer, action: &str) {
    reqwest::Client::new()
        .post(format!("{}/moto-api/recorder/{action}", moto.url))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn conformance_against_moto() {
    let (moto, fixture) = moto_and_fixture().await;
    let p = AwsProvider::new(config(&fixture, &moto.url, &["m6a.large", "c6a.xlarge"]))
        .await
        .unwrap();
    conformance::run(&p, "conf", &conformance::sample_spec).await;
    assert!(
        live_in_moto(&moto, &fixture).await.is_empty(),
        "instances leaked in moto"
    );
}

#[tokio::test]
async fn conformance_with_faults_through_the_proxy() {
    let (moto, fixture) = moto_and_fixture().await;
    let cloud = MockCloud::start(MockCloudConfig {
        faults: FaultConfig {
            seed: 11,
            error_rate: 0.15,
            throttle_rate: 0.15,
            provisioning_delay_ms: 100,
            lost_delete_rate: 0.3,
            fail_calls: vec![],
        },
        moto_url: Some(moto.url.clone()),
        ..MockCloudConfig::default()
    })
    .await
    .unwrap();
    let p = AwsProvider::new(config(&fixture, &cloud.base_url, &["m6a.large"]))
        .await
        .unwrap();
    conformance::run(&p, "faults", &conformance::sample_spec).await;
    assert!(
        cloud.state.faults.injected() > 3,
        "faults must really have been injected"
    );
    assert!(
        live_in_moto(&moto, &fixture).await.is_empty(),
        "instances leaked in moto"
    );
    assert!(
        cloud.state.live().await.aws.is_empty(),
        "the proxy saw instances not terminated"
    );
}

#[tokio::test]
async fn run_instances_sends_snp_imdsv2_terminate_and_tags() {
    let (moto, fixture) = moto_and_fixture().await;
    let p = AwsProvider::new(config(&fixture, &moto.url, &["r6a.large", "m6a.large"]))
        .await
        .unwrap();
    recorder(&moto, "start-recording").await;
    let owner = OwnerTag("rec".into());
    let job = JobTag("f".repeat(64));
    let spec = conformance::sample_spec(&owner, &job);
    let vm = p.launch(&spec).await.unwrap();
    recorder(&moto, "stop-recording").await;
    let log = recorded(&moto).await;
    let run = log
        .lines()
        .find(|l| decoded_body(l).contains("Action=RunInstances"))
        .expect("RunInstances recorded");
    let entry: serde_json::Value = serde_json::from_str(run).unwrap();
    // The recorder keeps bodies base64-encoded.
    let body = base64::engine::general_purpose::STANDARD
        .decode(entry["body"].as_str().unwrap())
        .unwrap();
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap();
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("CpuOptions.AmdSevSnp"), Some("enabled"));
    assert_eq!(
        get("InstanceType"),
        Some("m6a.large"),
        "smallest allowed type that fits"
    );
    assert_eq!(get("MetadataOptions.HttpTokens"), Some("required"));
    assert_eq!(get("MetadataOptions.HttpEndpoint"), Some("enabled"));
    assert_eq!(get("InstanceInitiatedShutdownBehavior"), Some("terminate"));
    assert_eq!(get("ImageId"), Some(fixture.ami_id.as_str()));
    assert_eq!(get("SubnetId"), Some(fixture.subnet_id.as_str()));
    assert_eq!(
        get("SecurityGroupId.1"),
        Some(fixture.security_group_id.as_str())
    );
    assert_eq!(
        get("ClientToken").map(str::to_string),
        Some(cdvm_provider_aws::client_token(&owner, &job))
    );
    let user_data = base64::engine::general_purpose::STANDARD
        .decode(get("UserData").unwrap())
        .unwrap();
    let bootstrap: cdvm_provider_api::Bootstrap = serde_json::from_slice(&user_data).unwrap();
    assert_eq!(
        bootstrap, spec.bootstrap,
        "user data is exactly the bootstrap"
    );
    let tags: Vec<_> = form
        .iter()
        .filter(|(k, _)| k.starts_with("TagSpecification."))
        .collect();
    assert!(tags.iter().any(|(_, v)| v == "instance") && tags.iter().any(|(_, v)| v == "volume"));
    assert!(tags.iter().any(|(_, v)| v == OWNER_KEY) && tags.iter().any(|(_, v)| v == "rec"));
    assert!(tags.iter().any(|(_, v)| v == &job.0), "job tag");
    p.destroy(&vm.id).await.unwrap();
}

#[tokio::test]
async fn refusals_happen_before_any_call() {
    let (moto, fixture) = moto_and_fixture().await;
    for bad in [&["m5.large"][..], &["m6a.metal"], &[]] {
        let err = AwsProvider::new(config(&fixture, &moto.url, bad))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::InvalidSpec { .. }),
            "{bad:?}: {err}"
        );
    }
    let p = AwsProvider::new(config(&fixture, &moto.url, &["m6a.large"]))
        .await
        .unwrap();
    recorder(&moto, "start-recording").await;
    let owner = OwnerTag("rec".into());
    let mut tdx = conformance::sample_spec(&owner, &JobTag("1".repeat(64)));
    tdx.tee = "tdx".into();
    let err = p.launch(&tdx).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidSpec { reason, .. } if reason.contains("tdx")),
        "{err}"
    );
    let mut big = conformance::sample_spec(&owner, &JobTag("2".repeat(64)));
    big.class.vcpus = 64;
    let err = p.launch(&big).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidSpec { reason, .. } if reason.contains("64 vCPUs")),
        "{err}"
    );
    recorder(&moto, "stop-recording").await;
    assert!(
        !recorded(&moto)
            .await
            .lines()
            .any(|l| decoded_body(l).contains("RunInstances")),
        "refused specs must not reach EC2"
    );
}

#[tokio::test]
async fn moto_errors_are_typed_and_name_the_call() {
    let (moto, mut fixture) = moto_and_fixture().await;
    fixture.subnet_id = "subnet-00000000000000000".into();
    let p = AwsProvider::new(config(&fixture, &moto.url, &["m6a.large"]))
        .await
        .unwrap();
    let spec = conformance::sample_spec(&OwnerTag("rec".into()), &JobTag("3".repeat(64)));
    let err = p.launch(&spec).await.unwrap_err();
    match &err {
        ProviderError::Backend { call, source, .. } => {
            assert_eq!(call, "RunInstances");
            assert!(
                source.to_string().contains("InvalidSubnetID.NotFound"),
                "{source}"
            );
        }
        other => panic!("expected a RunInstances backend error, got {other}"),
    }
}

#[tokio::test]
async fn a_booted_guest_reads_imdsv2_and_its_power_off_terminates_the_instance() {
    let (moto, fixture) = moto_and_fixture().await;
    let state = tempfile::tempdir().unwrap();
    let agent =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/cdvm-agent");
    assert!(agent.exists(), "build the agent first: cargo build --bins");
    let cloud = MockCloud::start(MockCloudConfig {
        moto_url: Some(moto.url.clone()),
        boot: Some(BootConfig {
            agent_binary: agent,
            state_dir: state.path().to_path_buf(),
        }),
        ..MockCloudConfig::default()
    })
    .await
    .unwrap();
    let p = AwsProvider::new(config(&fixture, &cloud.base_url, &["m6a.large"]))
        .await
        .unwrap();
    let owner = OwnerTag("boot".into());
    let vm = p
        .launch(&conformance::sample_spec(&owner, &JobTag("4".repeat(64))))
        .await
        .unwrap();
    assert_eq!(cloud.state.live().await.aws, vec![vm.id.0.clone()]);
    // The sample bootstrap names an unreachable relay: the agent reads its bootstrap over IMDSv2,
    // fails to reach the relay and exits; the proxy then terminates the instance, as AWS does
    // for InstanceInitiatedShutdownBehavior=terminate.
    let mut state_now = VmState::Running;
    // A deadline, not a speed check: about 45 s alone here, much more on a loaded CI machine.
    for _ in 0..1800 {
        state_now = p.status(&vm.id).await.unwrap();
        if state_now == VmState::Gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        state_now,
        VmState::Gone,
        "the guest's exit must end the instance"
    );
    assert!(
        cloud.state.live().await == Default::default(),
        "nothing left in the emulator"
    );
    assert!(live_in_moto(&moto, &fixture).await.is_empty());
}
