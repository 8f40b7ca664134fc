//! The user CLI as a user runs it: `cdvm submit` against a running orchestrator, and
//! `cdvm verify` on a saved attestation event, with their exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;

use cdvm_client::demo::{sibling_binary, DeploymentOptions, LocalDeployment};
use cdvm_protocol::kinds;
use cdvm_protocol::nostr::{Filter, JsonUtil, Kind, ToBech32};

async fn cdvm(args: Vec<String>) -> Output {
    let bin = sibling_binary("cdvm").unwrap();
    tokio::process::Command::new(bin)
        .args(args)
        .output()
        .await
        .unwrap()
}

fn shipped_policy() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies/default-snp.yaml")
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_and_verify_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let d = LocalDeployment::start(&state, &DeploymentOptions::default())
        .await
        .unwrap();
    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, "city,temp\noslo,3\nrome,19\nlima,17\n").unwrap();
    let out = dir.path().join("out.csv");
    let base = |policy: &str| -> Vec<String> {
        vec![
            "submit".into(),
            "--relay".into(),
            d.relay.url().into(),
            "--dvm".into(),
            d.dvm.public_key().to_bech32().unwrap(),
            "--kind".into(),
            "5970".into(),
            "--input".into(),
            csv.display().to_string(),
            "--query".into(),
            "SELECT city FROM input WHERE temp > 10 ORDER BY city".into(),
            "--policy".into(),
            policy.into(),
        ]
    };

    let mut args = base(&d.dev_policy_path.display().to_string());
    args.extend(["--output".into(), out.display().to_string()]);
    let run = cdvm(args).await;
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "submit failed: {stderr}\n{}",
        d.orchestrator_log()
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "city\nlima\nrome\n");
    for stage in [
        "submitted request",
        "attested: TEE sev-snp",
        "SIMULATED TEE",
        "input sent",
        "result received",
        "VM destroyed",
    ] {
        assert!(
            stderr.contains(stage),
            "progress lacks {stage:?}:\n{stderr}"
        );
    }

    // Under the shipped policy the simulated guest is refused: exit 3, input not sent.
    let mut args = base(&shipped_policy());
    args.extend(["--attest-timeout".into(), "5".into()]);
    let refused = cdvm(args).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("SIMULATED") && stderr.contains("input NOT sent"),
        "{stderr}"
    );

    // Too large for one encrypted event: refused before anything is published, exit 2.
    std::fs::write(&csv, format!("a\n{}\n", "1\n".repeat(20_000))).unwrap();
    let big = cdvm(base(&d.dev_policy_path.display().to_string())).await;
    assert_eq!(big.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&big.stderr).contains("at most"));

    // Offline verification of a saved attestation event.
    let c = common::client(d.relay.url(), &cdvm_protocol::nostr::Keys::generate()).await;
    let events = c
        .fetch_events(
            Filter::new().kind(Kind::from(kinds::ATTESTATION)),
            std::time::Duration::from_secs(3),
        )
        .await
        .unwrap();
    let attestation = events
        .into_iter()
        .next()
        .expect("an attestation event on the relay");
    let saved = dir.path().join("attestation.json");
    std::fs::write(&saved, attestation.as_json()).unwrap();
    let ok = cdvm(vec![
        "verify".into(),
        "--policy".into(),
        d.dev_policy_path.display().to_string(),
        saved.display().to_string(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("ACCEPTED")
            && stdout.contains("signature")
            && stdout.contains("report-data"),
        "{stdout}"
    );
    let json = cdvm(vec![
        "verify".into(),
        "--json".into(),
        "--policy".into(),
        d.dev_policy_path.display().to_string(),
        saved.display().to_string(),
    ])
    .await;
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["verdict"], "accepted");
    assert_eq!(v["claims"]["simulated"], true);
    let shipped = cdvm(vec![
        "verify".into(),
        "--policy".into(),
        shipped_policy(),
        saved.display().to_string(),
    ])
    .await;
    assert_eq!(shipped.status.code(), Some(3));
    // The same event with its content altered no longer carries a valid signature.
    let mut tampered = attestation.clone();
    tampered.content = tampered.content.replacen("\"v\":1", "\"v\":1 ", 1);
    std::fs::write(&saved, tampered.as_json()).unwrap();
    let bad = cdvm(vec![
        "verify".into(),
        "--policy".into(),
        d.dev_policy_path.display().to_string(),
        saved.display().to_string(),
    ])
    .await;
    assert_eq!(
        bad.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
