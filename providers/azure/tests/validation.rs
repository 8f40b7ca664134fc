//! The emulator refuses what ARM refuses, with ARM's codes, and the backend surfaces those
//! refusals as typed errors naming the call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cdvm_mockcloud::config::FaultConfig;
use cdvm_mockcloud::MockCloud;
use cdvm_provider_api::conformance::sample_spec;
use cdvm_provider_api::{JobTag, OwnerTag, Provider, ProviderError};
use cdvm_provider_azure::names::{nic_name, vm_name};
use cdvm_provider_azure::{ArmError, COMPUTE_API_VERSION, NETWORK_API_VERSION};
use serde_json::{json, Value};

/// The ARM error inside a backend failure, and the call it names.
fn backend_error(e: ProviderError) -> (String, u16, String) {
    match e {
        ProviderError::Backend { call, source, .. } => {
            let arm = source
                .downcast_ref::<ArmError>()
                .unwrap_or_else(|| panic!("{call}: source is not an ArmError: {source}"));
            (
                call,
                arm.status().unwrap_or(0),
                arm.code().unwrap_or("").to_string(),
            )
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn backend_surfaces_arm_validation_errors_and_cleans_up() {
    let cloud = support::cloud(FaultConfig::default()).await;
    let spec = sample_spec(&OwnerTag("validation".into()), &JobTag("a8".repeat(32)));

    let p = support::provider(&cloud, |c| c.subnet_id = "not-a-subnet".into());
    let (call, status, code) = backend_error(p.launch(&spec).await.unwrap_err());
    assert_eq!(
        (call.as_str(), status, code.as_str()),
        ("create network interface", 400, "LinkedInvalidPropertyId")
    );
    support::assert_nothing_left(&cloud).await;

    let p = support::provider(&cloud, |c| c.image_id = "bad-image".into());
    let (call, status, code) = backend_error(p.launch(&spec).await.unwrap_err());
    assert_eq!(
        (call.as_str(), status, code.as_str()),
        ("create virtual machine", 400, "LinkedInvalidPropertyId")
    );
    support::assert_nothing_left(&cloud).await;
}

/// Raw requests, as a client other than the backend would send them.
struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    fn new(cloud: &MockCloud) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!(
                "{}/subscriptions/{}/resourceGroups/{}/providers",
                cloud.base_url,
                support::SUBSCRIPTION,
                support::GROUP
            ),
        }
    }

    fn vm_url(&self, name: &str) -> String {
        format!(
            "{}/Microsoft.Compute/virtualMachines/{name}?api-version={COMPUTE_API_VERSION}",
            self.base
        )
    }

    fn nic_url(&self, name: &str) -> String {
        format!(
            "{}/Microsoft.Network/networkInterfaces/{name}?api-version={NETWORK_API_VERSION}",
            self.base
        )
    }

    async fn put(&self, url: &str, body: &Value, token: bool) -> (u16, Value) {
        let mut request = self
            .http
            .put(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        if token {
            request = request.bearer_auth("test-token");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn nic_body() -> Value {
    json!({
        "location": "westeurope",
        "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
            "subnet": {"id": support::SUBNET}, "privateIPAllocationMethod": "Dynamic"}}]}
    })
}

fn nic_id(name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{name}",
        support::SUBSCRIPTION,
        support::GROUP
    )
}

/// A VM body ARM accepts: a DC2as_v5 confidential VM on NIC `nic`.
fn vm_body(nic: &str, tags: Value) -> Value {
    json!({
        "location": "westeurope",
        "tags": tags,
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_DC2as_v5"},
            "securityProfile": {"securityType": "ConfidentialVM",
                "uefiSettings": {"secureBootEnabled": true, "vTpmEnabled": true}},
            "storageProfile": {
                "imageReference": {"id": support::IMAGE},
                "osDisk": {"createOption": "FromImage", "managedDisk": {"securityProfile":
                    {"securityEncryptionType": "DiskWithVMGuestState"}}}},
            "networkProfile": {"networkInterfaces": [{"id": nic_id(nic),
                "properties": {"deleteOption": "Delete"}}]}
        }
    })
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn emulator_refuses_like_arm() {
    let cloud = support::cloud(FaultConfig::default()).await;
    let raw = Raw::new(&cloud);
    let (status, body) = raw.put(&raw.nic_url("n1"), &nic_body(), false).await;
    assert_eq!((status, code(&body)), (401, "AuthenticationFailed"));
    let no_version = raw
        .nic_url("n1")
        .replace(&format!("?api-version={NETWORK_API_VERSION}"), "");
    let (status, body) = raw.put(&no_version, &nic_body(), true).await;
    assert_eq!((status, code(&body)), (400, "MissingApiVersionParameter"));
    let (status, _) = raw.put(&raw.nic_url("n1"), &nic_body(), true).await;
    assert_eq!(status, 201);

    let refused = |patch: &dyn Fn(&mut Value)| {
        let mut body = vm_body("n1", json!({}));
        patch(&mut body);
        body
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "unknown size",
            refused(&|b| b["properties"]["hardwareProfile"]["vmSize"] = json!("Standard_Z9")),
            400,
            "InvalidParameter",
        ),
        (
            "ConfidentialVM on a general size",
            refused(&|b| b["properties"]["hardwareProfile"]["vmSize"] = json!("Standard_D2s_v5")),
            400,
            "BadRequest",
        ),
        (
            "no confidential disk encryption",
            refused(&|b| b["properties"]["storageProfile"]["osDisk"]["managedDisk"] = json!({})),
            400,
            "BadRequest",
        ),
        (
            "no vTPM",
            refused(&|b| {
                b["properties"]["securityProfile"]["uefiSettings"]["vTpmEnabled"] = json!(false)
            }),
            400,
            "BadRequest",
        ),
        (
            "confidential size without ConfidentialVM",
            refused(&|b| {
                b["properties"]["securityProfile"] = json!({});
                b["properties"]["storageProfile"]["osDisk"]["managedDisk"] = json!({});
            }),
            400,
            "BadRequest",
        ),
        (
            "missing NIC",
            vm_body("no-such-nic", json!({})),
            400,
            "NotFound",
        ),
        (
            "login without any key",
            refused(&|b| {
                b["properties"]["osProfile"] = json!({"computerName": "x", "adminUsername": "u",
                    "linuxConfiguration": {"disablePasswordAuthentication": true}})
            }),
            400,
            "InvalidParameter",
        ),
        (
            "user data not base64",
            refused(&|b| b["properties"]["userData"] = json!("not base64!")),
            400,
            "InvalidParameter",
        ),
    ];
    for (what, body, want_status, want_code) in cases {
        let (status, answer) = raw.put(&raw.vm_url("vm1"), &body, true).await;
        assert_eq!(
            (status, code(&answer)),
            (want_status, want_code),
            "{what}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: ARM errors carry a message"
        );
    }
    assert!(
        cloud.state.live().await.arm.is_empty(),
        "nothing refused was created"
    );

    let (status, _) = raw
        .put(&raw.vm_url("vm1"), &vm_body("n1", json!({})), true)
        .await;
    assert_eq!(status, 201);
    let (status, _) = raw
        .put(&raw.vm_url("vm1"), &vm_body("n1", json!({})), true)
        .await;
    assert_eq!(status, 200, "the same PUT again is an update");
    let resized =
        refused(&|b| b["properties"]["hardwareProfile"]["vmSize"] = json!("Standard_DC4as_v5"));
    let (status, answer) = raw.put(&raw.vm_url("vm1"), &resized, true).await;
    assert_eq!((status, code(&answer)), (409, "PropertyChangeNotAllowed"));
}

#[tokio::test]
async fn a_vm_name_taken_by_other_tags_is_not_touched() {
    let cloud = support::cloud(FaultConfig::default()).await;
    let raw = Raw::new(&cloud);
    let spec = sample_spec(&OwnerTag("mine".into()), &JobTag("b9".repeat(32)));
    let name = vm_name(&spec.owner, &spec.job);
    let (status, _) = raw
        .put(&raw.nic_url(&nic_name(&name)), &nic_body(), true)
        .await;
    assert_eq!(status, 201);
    let foreign = vm_body(
        &nic_name(&name),
        json!({support::OWNER_KEY: "someone-else"}),
    );
    let (status, _) = raw.put(&raw.vm_url(&name), &foreign, true).await;
    assert_eq!(status, 201);

    let p = support::provider(&cloud, |_| {});
    let puts = cloud.state.arm.puts();
    match p.launch(&spec).await {
        Err(ProviderError::Backend { call, source, .. }) => {
            assert_eq!(call, "launch");
            assert!(matches!(
                source.downcast_ref::<ArmError>(),
                Some(ArmError::NameTaken { .. })
            ));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        cloud.state.arm.puts(),
        puts,
        "the foreign VM was not rewritten"
    );
    assert!(p.list(&spec.owner).await.unwrap().is_empty());
    assert_eq!(cloud.state.live().await.arm, vec![name]);
}
