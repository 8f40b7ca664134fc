//! The same job end to end through the SSH provider: the orchestrator logs in to a real OpenSSH
//! server on this machine (Debian's openssh-server, started by the test on a loopback port, key
//! auth, pinned host key), uploads the guest image, starts QEMU there under a hard deadline, and
//! bridges the simulated secure processor over an SSH stream-local channel. The guest attests
//! with the image's launch digest and returns the result; afterwards no QEMU process and no VM
//! folder is left on the "remote" host.
//!
//! Needs `/usr/sbin/sshd`, `qemu-system-x86_64` and the image from `scripts/build-image`
//! (`.ci/run` installs and builds them); a missing one fails with a message saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../providers/ssh/src/test_sshd.rs"]
mod test_sshd;

use std::path::PathBuf;
use std::time::Duration;

use cdvm_client::demo::{DeploymentOptions, LocalDeployment, SshHost};
use cdvm_client::{run_job, JobSpec, Timeouts};
use cdvm_protocol::nostr::Keys;
use cdvm_protocol::{kinds, InputBody};

fn built_image() -> PathBuf {
    cdvm_provider_qemu::built_image_dir().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_in_a_qemu_guest_on_a_host_reached_over_ssh() {
    let sshd = test_sshd::Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let remote_dir = dir.path().join("remote");
    let opts = DeploymentOptions {
        qemu_image: Some(built_image()),
        ssh: Some(SshHost {
            host: "127.0.0.1".into(),
            port: sshd.port,
            user: sshd.user.clone(),
            private_key: sshd.client_key.clone(),
            known_host_key: sshd.host_key_line.clone(),
            remote_dir: remote_dir.clone(),
        }),
        deadlines: (120, 120, 120),
        ..DeploymentOptions::default()
    };
    let deployment = LocalDeployment::start(&dir.path().join("state"), &opts)
        .await
        .unwrap();
    let spec = JobSpec {
        relays: vec![deployment.relay.url().to_string()],
        dvm: deployment.dvm.public_key(),
        kind: kinds::TEXT_STATS,
        input: InputBody::TextStats {
            text: "the cat saw the other cat\n".into(),
        },
        policy: deployment.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: Timeouts {
            attest: Duration::from_secs(120),
            result: Duration::from_secs(90),
            destroyed: Duration::from_secs(30),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    };
    let outcome = match run_job(spec, |_, _| {}).await {
        Ok(o) => o,
        Err(e) => panic!(
            "job failed: {e}\n--- orchestrator log ---\n{}\n--- sshd log ---\n{}",
            deployment.orchestrator_log(),
            sshd.log()
        ),
    };
    let stats: serde_json::Value = serde_json::from_str(&outcome.output).unwrap();
    assert_eq!(stats["words"], 6, "{stats}");
    assert!(outcome.claims.simulated);
    common::assert_announced(
        deployment.relay.url(),
        &outcome,
        deployment.dvm.public_key(),
    )
    .await;
    assert_eq!(
        outcome.claims.measurement.to_string(),
        deployment.dev_policy.measurements[0].measurement
    );

    // Nothing of the VM is left on the host: no QEMU, no VM folder.
    common::assert_no_vm_in(&remote_dir.join("vms")).await;
    drop(deployment);
}
