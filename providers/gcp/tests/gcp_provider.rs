//! The Compute Engine backend against the mock cloud's GCE emulator: the conformance suite with and
//! without faults, refusals before any call, the emulator's validation as typed errors, capacity
//! errors, and booting through the emulated metadata server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cdvm_mockcloud::config::{BootConfig, FaultConfig, MockCloudConfig};
use cdvm_mockcloud::MockCloud;
use cdvm_provider_api::conformance::{self, sample_spec};
use cdvm_provider_api::metadata::{MetadataService, GCE_BOOTSTRAP_KEY};
use cdvm_provider_api::{JobTag, OwnerTag, Provider, ProviderError, VmClass, VmState};
use cdvm_provider_gcp::{GcpProvider, GcpProviderConfig, RetrySettings};
use google_cloud_auth::credentials::anonymous;
use google_cloud_compute_v1::client::{Instances, ZoneOperations};
use google_cloud_compute_v1::model::{
    confidential_instance_config::ConfidentialInstanceType, scheduling::OnHostMaintenance,
    AttachedDisk, AttachedDiskInitializeParams, ConfidentialInstanceConfig, Instance,
    NetworkInterface, Scheduling,
};
use google_cloud_gax::error::rpc::StatusDetails;
use google_cloud_gax::retry_policy::NeverRetry;

const PROJECT: &str = "cdvm-test";
const ZONE: &str = "europe-west4-a";
const PREFIX: &str = "cdvm-test-";

async fn cloud(faults: FaultConfig, boot: Option<BootConfig>) -> MockCloud {
    MockCloud::start(MockCloudConfig {
        faults,
        boot,
        ..MockCloudConfig::default()
    })
    .await
    .expect("mock cloud starts")
}

fn config(cloud: &MockCloud, zone: &str, types: &[&str]) -> GcpProviderConfig {
    GcpProviderConfig {
        project: PROJECT.into(),
        zone: zone.into(),
        network: format!("projects/{PROJECT}/global/networks/jobs"),
        subnetwork: format!("projects/{PROJECT}/regions/europe-west4/subnetworks/jobs"),
        service_account_email: format!("orchestrator@{PROJECT}.iam.gserviceaccount.com"),
        image: "projects/cdvm-images/global/images/cdvm-guest-1".into(),
        instance_name_prefix: PREFIX.into(),
        owner_label_key: "cdvm-owner".into(),
        owner_label: "test".into(),
        allowed_machine_types: types.iter().map(|t| t.to_string()).collect(),
        endpoint: Some(cloud.base_url.clone()),
        // Fast and persistent: faults hit about one call in three.
        retry: Some(RetrySettings {
            attempts: 15,
            base_ms: 2,
            max_ms: 40,
        }),
    }
}

async fn provider(cloud: &MockCloud, zone: &str) -> GcpProvider {
    GcpProvider::new(config(
        cloud,
        zone,
        &["n2d-standard-2", "n2d-standard-8", "c3-standard-4"],
    ))
    .await
    .expect("provider builds")
}

#[tokio::test]
async fn conformance_with_faults() {
    let cloud = cloud(
        FaultConfig {
            seed: 7,
            error_rate: 0.15,
            throttle_rate: 0.15,
            provisioning_delay_ms: 200,
            lost_delete_rate: 0.3,
            fail_calls: vec![],
        },
        None,
    )
    .await;
    let p = provider(&cloud, ZONE).await;
    conformance::run(&p, "faulty", &sample_spec).await;
    assert!(
        cloud.state.faults.injected() > 0,
        "the run must have met faults"
    );
    assert!(
        cloud.state.live().await.gce.is_empty(),
        "nothing may be left"
    );
}

#[tokio::test]
async fn conformance_without_faults() {
    let cloud = cloud(FaultConfig::default(), None).await;
    let p = provider(&cloud, ZONE).await;
    conformance::run(&p, "clean", &sample_spec).await;
    // Owner tags that are not label-safe round-trip exactly, and do not leak into each other.
    let (a, b) = (OwnerTag("Team A".into()), OwnerTag("team-a".into()));
    let job = JobTag("e".repeat(64));
    let va = p.launch(&sample_spec(&a, &job)).await.unwrap();
    let vb = p.launch(&sample_spec(&b, &job)).await.unwrap();
    assert_ne!(va.id, vb.id);
    assert_eq!(p.list(&a).await.unwrap(), vec![va.clone()]);
    assert_eq!(p.list(&b).await.unwrap(), vec![vb.clone()]);
    p.destroy(&va.id).await.unwrap();
    p.destroy(&vb.id).await.unwrap();
    assert!(cloud.state.live().await.gce.is_empty());
}

#[tokio::test]
async fn refusals_come_before_any_call() {
    // Every call would be throttled (and counted): a refusal must make none.
    let cloud = cloud(
        FaultConfig {
            throttle_rate: 1.0,
            ..FaultConfig::default()
        },
        None,
    )
    .await;
    let p = GcpProvider::new(config(&cloud, ZONE, &["n2d-standard-2"]))
        .await
        .unwrap();
    let owner = OwnerTag("o".into());
    let job = JobTag("a".repeat(64));
    let mut tdx = sample_spec(&owner, &job);
    tdx.tee = "tdx".into();
    let mut big = sample_spec(&owner, &job);
    big.class = VmClass {
        vcpus: 4,
        memory_mib: 1024,
    };
    let mut sev = sample_spec(&owner, &job);
    sev.tee = "sev".into();
    for (spec, why) in [
        (tdx, "no allowed machine type runs tdx"),
        (big, "no allowed sev-snp machine type has 4 vCPUs"),
        (sev, "not offered"),
    ] {
        match p.launch(&spec).await {
            Err(ProviderError::InvalidSpec { reason, .. }) => {
                assert!(reason.contains(why), "{reason}")
            }
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }
    // Ids that cannot be ours are not looked up either.
    let stranger = cdvm_provider_api::VmId("someone-elses-vm".into());
    assert_eq!(p.status(&stranger).await.unwrap(), VmState::Gone);
    p.destroy(&stranger).await.unwrap();
    assert_eq!(cloud.state.faults.injected(), 0, "no API call was made");

    for bad in [&["e2-standard-2"][..], &["n2d-standard-3"], &[]] {
        match GcpProvider::new(config(&cloud, ZONE, bad)).await {
            Err(ProviderError::InvalidSpec { reason, .. }) => {
                assert!(reason.contains("allowed_machine_types"), "{reason}")
            }
            other => panic!("{bad:?} must be refused, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn capacity_and_quota_errors_are_capacity() {
    let cloud = cloud(FaultConfig::default(), None).await;
    for (zone, code) in [
        ("exhausted-zone-a", "ZONE_RESOURCE_POOL_EXHAUSTED"),
        ("noquota-zone-a", "QUOTA_EXCEEDED"),
    ] {
        let p = provider(&cloud, zone).await;
        let spec = sample_spec(&OwnerTag("o".into()), &JobTag("c".repeat(64)));
        match p.launch(&spec).await {
            Err(ProviderError::Capacity { provider, reason }) => {
                assert_eq!(provider, "gcp");
                assert!(reason.contains(code), "{reason}");
            }
            other => panic!("{zone}: expected Capacity, got {other:?}"),
        }
    }
    assert!(cloud.state.live().await.gce.is_empty());
}

#[tokio::test]
async fn a_refused_insert_is_a_backend_error_naming_the_call() {
    let cloud = cloud(FaultConfig::default(), None).await;
    let mut cfg = config(&cloud, ZONE, &["n2d-standard-2"]);
    cfg.image = "cdvm-guest-1".into();
    let p = GcpProvider::new(cfg).await.unwrap();
    let spec = sample_spec(&OwnerTag("o".into()), &JobTag("b".repeat(64)));
    match p.launch(&spec).await {
        Err(e @ ProviderError::Backend { .. }) => {
            let ProviderError::Backend { call, source, .. } = &e else {
                unreachable!()
            };
            assert_eq!(call, "instances.insert");
            let text = source.to_string();
            assert!(
                text.contains("HTTP 400 invalid") && text.contains("sourceImage"),
                "{text}"
            );
        }
        other => panic!("expected Backend, got {other:?}"),
    }
}

/// SDK clients straight at the emulator, no retries.
async fn sdk(cloud: &MockCloud) -> (Instances, ZoneOperations) {
    let instances = Instances::builder()
        .with_endpoint(&cloud.base_url)
        .with_credentials(anonymous::Builder::new().build())
        .with_retry_policy(NeverRetry)
        .build()
        .await
        .unwrap();
    let operations = ZoneOperations::builder()
        .with_endpoint(&cloud.base_url)
        .with_credentials(anonymous::Builder::new().build())
        .with_retry_policy(NeverRetry)
        .build()
        .await
        .unwrap();
    (instances, operations)
}

fn body(
    name: &str,
    machine_type: &str,
    kind: ConfidentialInstanceType,
    terminate: bool,
) -> Instance {
    let maintenance = if terminate {
        OnHostMaintenance::Terminate
    } else {
        OnHostMaintenance::Migrate
    };
    let vm = Instance::new()
        .set_name(name)
        .set_machine_type(format!("zones/{ZONE}/machineTypes/{machine_type}"))
        .set_confidential_instance_config(
            ConfidentialInstanceConfig::new().set_confidential_instance_type(kind.clone()),
        )
        .set_scheduling(Scheduling::new().set_on_host_maintenance(maintenance))
        .set_disks([AttachedDisk::new().set_boot(true).set_initialize_params(
            AttachedDiskInitializeParams::new()
                .set_source_image("projects/cdvm-images/global/images/cdvm-guest-1"),
        )])
        .set_network_interfaces([NetworkInterface::new().set_subnetwork(format!(
            "projects/{PROJECT}/regions/europe-west4/subnetworks/jobs"
        ))])
        .set_labels([("team", "blue")]);
    if kind == ConfidentialInstanceType::SevSnp {
        vm.set_min_cpu_platform("AMD Milan")
    } else {
        vm
    }
}

fn refusal(e: &google_cloud_gax::error::Error) -> (u16, String, String) {
    let status = e.status().expect("a GCE error body");
    let reason = status
        .details
        .iter()
        .find_map(|d| match d {
            StatusDetails::ErrorInfo(i) => Some(i.reason.clone()),
            _ => None,
        })
        .unwrap_or_default();
    (
        e.http_status_code().unwrap(),
        reason,
        status.message.clone(),
    )
}

#[tokio::test]
async fn the_emulator_validates_like_gce() {
    let cloud = cloud(FaultConfig::default(), None).await;
    let (instances, operations) = sdk(&cloud).await;
    let insert = |b: Instance, request_id: Option<&str>| {
        instances
            .insert()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_body(b)
            .set_or_clear_request_id(request_id.map(String::from))
            .send()
    };
    use ConfidentialInstanceType::{SevSnp, Tdx};
    for (b, field) in [
        (
            body("vm-a", "n2d-standard-3", SevSnp, true),
            "resource.machineType",
        ),
        (
            body("vm-a", "c3-standard-4", SevSnp, true),
            "resource.confidentialInstanceConfig.confidentialInstanceType",
        ),
        (
            body("vm-a", "n2d-standard-2", Tdx, true),
            "resource.confidentialInstanceConfig.confidentialInstanceType",
        ),
        (
            body("vm-a", "c3-standard-4", Tdx, false),
            "resource.scheduling.onHostMaintenance",
        ),
        (
            body("vm-a", "n2d-standard-2", SevSnp, true).set_min_cpu_platform("AMD Rome"),
            "resource.minCpuPlatform",
        ),
        (
            body("VM_A", "n2d-standard-2", SevSnp, true),
            "resource.name",
        ),
        (
            body("vm-a", "n2d-standard-2", SevSnp, true).set_labels([("owner", "Team A")]),
            "resource.labels",
        ),
    ] {
        let e = insert(b, None).await.expect_err(field);
        let (code, reason, message) = refusal(&e);
        assert_eq!((code, reason.as_str()), (400, "invalid"), "{message}");
        assert!(
            message.starts_with(&format!("Invalid value for field '{field}'")),
            "{message}"
        );
    }
    assert!(cloud.state.live().await.gce.is_empty());

    // A request id makes a repeated insert one instance and one operation.
    let rid = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d";
    let first = insert(body("vm-a", "c3-standard-4", Tdx, true), Some(rid))
        .await
        .unwrap();
    let again = insert(body("vm-a", "c3-standard-4", Tdx, true), Some(rid))
        .await
        .unwrap();
    assert_eq!(first.name, again.name);
    assert_eq!(first.kind.as_deref(), Some("compute#operation"));
    assert_eq!(cloud.state.live().await.gce, vec!["vm-a".to_string()]);
    let e = insert(body("vm-a", "c3-standard-4", Tdx, true), None)
        .await
        .unwrap_err();
    let (code, reason, message) = refusal(&e);
    assert_eq!((code, reason.as_str()), (409, "alreadyExists"), "{message}");

    let done = operations
        .wait()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_operation(first.name.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status
            .and_then(|s| s.name().map(String::from))
            .as_deref(),
        Some("DONE")
    );
    assert!(done.target_link.unwrap().ends_with("/instances/vm-a"));
    let vm = instances
        .get()
        .set_project(PROJECT)
        .set_zone(ZONE)
        .set_instance("vm-a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        vm.status
            .and_then(|s| s.name().map(String::from))
            .as_deref(),
        Some("RUNNING")
    );
    assert!(vm
        .machine_type
        .unwrap()
        .ends_with("/zones/europe-west4-a/machineTypes/c3-standard-4"));

    for missing in [
        instances
            .get()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance("vm-z")
            .send()
            .await
            .map(drop),
        instances
            .delete()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_instance("vm-z")
            .send()
            .await
            .map(drop),
        operations
            .get()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_operation("operation-0")
            .send()
            .await
            .map(drop),
    ] {
        let (code, reason, message) = refusal(&missing.unwrap_err());
        assert_eq!((code, reason.as_str()), (404, "notFound"), "{message}");
    }
}

#[tokio::test]
async fn the_emulator_filters_and_pages_lists() {
    let cloud = cloud(FaultConfig::default(), None).await;
    let (instances, _) = sdk(&cloud).await;
    for (name, team) in [
        ("vm-1", "blue"),
        ("vm-2", "blue"),
        ("vm-3", "blue"),
        ("vm-4", "red"),
    ] {
        instances
            .insert()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_body(
                body(
                    name,
                    "n2d-standard-2",
                    ConfidentialInstanceType::SevSnp,
                    true,
                )
                .set_labels([("team", team)]),
            )
            .send()
            .await
            .unwrap();
    }
    let list = |filter: &str, token: Option<String>| {
        instances
            .list()
            .set_project(PROJECT)
            .set_zone(ZONE)
            .set_filter(filter)
            .set_max_results(2_u32)
            .set_or_clear_page_token(token)
            .send()
    };
    let page = list("labels.team = \"blue\"", None).await.unwrap();
    let names: Vec<_> = page.items.iter().filter_map(|i| i.name.clone()).collect();
    assert_eq!(names, ["vm-1", "vm-2"]);
    let page = list("labels.team=blue", page.next_page_token)
        .await
        .unwrap();
    let names: Vec<_> = page.items.iter().filter_map(|i| i.name.clone()).collect();
    assert_eq!(names, ["vm-3"]);
    assert_eq!(page.next_page_token, None);
    let page = list("labels.team = \"green\"", None).await.unwrap();
    assert!(page.items.is_empty());
    let (code, reason, _) = refusal(&list("labels.team ~ blue", None).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (400, "invalid"));
}

/// A stand-in guest: stays up (`lifetime` "600") or powers off soon (`"0.3"`).
fn agent(dir: &Path, lifetime: &str) -> PathBuf {
    let path = dir.join(format!("agent-{lifetime}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\nsleep {lifetime} &\nwait\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `GET` over plain HTTP/1.1 (the metadata server), returning status and body.
async fn http_get(base: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

async fn booting(lifetime: &str) -> (MockCloud, GcpProvider, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let boot = BootConfig {
        agent_binary: agent(dir.path(), lifetime),
        state_dir: dir.path().join("state"),
    };
    let cloud = cloud(
        FaultConfig {
            provisioning_delay_ms: 100,
            ..FaultConfig::default()
        },
        Some(boot),
    )
    .await;
    let p = provider(&cloud, ZONE).await;
    (cloud, p, dir)
}

#[tokio::test]
async fn instances_boot_serve_their_bootstrap_and_halt_on_delete() {
    let (cloud, p, _dir) = booting("600").await;
    let booter = cloud.state.booter.as_ref().unwrap();
    let spec = sample_spec(&OwnerTag("o".into()), &JobTag("d".repeat(64)));
    let vm = p.launch(&spec).await.unwrap();
    assert_eq!(
        booter.guests(MetadataService::Gcp).await.len(),
        1,
        "a guest booted"
    );
    let attribute = format!(
        "/metadata/gcp/{}/computeMetadata/v1/instance/attributes/{GCE_BOOTSTRAP_KEY}",
        vm.id
    );
    let (code, served) = http_get(
        &cloud.base_url,
        &attribute,
        &[("Metadata-Flavor", "Google")],
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(served, serde_json::to_string(&spec.bootstrap).unwrap());
    assert_eq!(p.status(&vm.id).await.unwrap(), VmState::Running);

    p.destroy(&vm.id).await.unwrap();
    assert!(
        booter.guests(MetadataService::Gcp).await.is_empty(),
        "delete halts the guest"
    );
    let (code, _) = http_get(
        &cloud.base_url,
        &attribute,
        &[("Metadata-Flavor", "Google")],
    )
    .await;
    assert_eq!(code, 404, "metadata withdrawn");
    assert_eq!(cloud.state.live().await.guests, 0);
}

#[tokio::test]
async fn a_guest_that_powers_off_leaves_its_instance_terminated() {
    let (cloud, p, _dir) = booting("0.3").await;
    let vm = p
        .launch(&sample_spec(&OwnerTag("o".into()), &JobTag("f".repeat(64))))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let detail = loop {
        match p.status(&vm.id).await.unwrap() {
            VmState::Exited { detail } => break detail,
            other => {
                assert!(Instant::now() < deadline, "still {other:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(detail.starts_with("TERMINATED"), "{detail}");
    p.destroy(&vm.id).await.unwrap();
    assert_eq!(cloud.state.live().await, Default::default());
}

#[tokio::test]
async fn deletes_that_are_always_lost_fail_naming_the_call() {
    // Every delete is acknowledged and not carried out.
    let cloud = cloud(
        FaultConfig {
            lost_delete_rate: 1.0,
            ..FaultConfig::default()
        },
        None,
    )
    .await;
    let p = provider(&cloud, ZONE).await;
    let vm = p
        .launch(&sample_spec(&OwnerTag("o".into()), &JobTag("9".repeat(64))))
        .await
        .unwrap();
    match p.destroy(&vm.id).await {
        Err(ProviderError::Backend { call, source, .. }) => {
            assert_eq!(call, "instances.delete");
            assert!(source.to_string().contains("8 delete rounds"), "{source}");
        }
        other => panic!("expected Backend, got {other:?}"),
    }
    assert_eq!(cloud.state.live().await.gce, vec![vm.id.0.clone()]);
}
