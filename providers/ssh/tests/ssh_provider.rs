//! The SSH provider against a real OpenSSH server on a loopback port (the "remote host" is this
//! machine): it passes the shared provider conformance suite, a launched VM is a real QEMU process
//! on the host booting the real guest image, destroy leaves nothing behind, the image is uploaded
//! once, and a host presenting another key than the pinned one gets nothing.
//!
//! Needs `/usr/sbin/sshd` (openssh-server), `qemu-system-x86_64` and the image from
//! `scripts/build-image` (which `scripts/test` and `.ci/run` build first); a missing one fails
//! with a message saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/test_sshd.rs"]
mod sshd;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use cdvm_attestation::{AnyVerifier, Policy, Verifier};
use cdvm_protocol::nostr::{Event, Filter, Keys, Kind};
use cdvm_protocol::{kinds, report_data, AttestationEvent, JobRequestBuilder, TeeKind};
use nostr_relay_builder::{LocalRelay, RelayBuilder};
use nostr_sdk::Client;

use cdvm_provider_api::{conformance, JobTag, OwnerTag, Provider, ProviderError, VmState};
use cdvm_provider_ssh::{
    dev_policy_path, Accel, CpuModel, SshConfig, SshError, SshProvider, TeeMode,
};
use sshd::Sshd;

fn image_dir() -> PathBuf {
    cdvm_provider_qemu::built_image_dir().unwrap_or_else(|e| panic!("{e}"))
}

use cdvm_provider_api::conformance::sample_spec as spec;

/// A provider setup: the sshd, a remote folder and a local state folder.
struct Host {
    sshd: Sshd,
    dir: tempfile::TempDir,
}

impl Host {
    fn start() -> Self {
        Self {
            sshd: Sshd::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn remote_dir(&self) -> PathBuf {
        self.dir.path().join("remote")
    }

    fn config(&self) -> SshConfig {
        SshConfig {
            host: "127.0.0.1".into(),
            port: self.sshd.port,
            user: self.sshd.user.clone(),
            private_key: self.sshd.client_key.clone(),
            known_host_key: self.sshd.host_key_line.clone(),
            remote_dir: self.remote_dir(),
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            tee: TeeMode::Sim,
            cpu: CpuModel::Milan,
            image_dir: image_dir(),
            state_dir: self.dir.path().join("state"),
            policy_vcpus: 1,
            max_lifetime: Duration::from_secs(120),
        }
    }

    fn provider(&self) -> SshProvider {
        SshProvider::new(self.config()).unwrap()
    }

    fn vm_dir(&self, id: &str) -> PathBuf {
        self.remote_dir().join("vms").join(id)
    }
}

/// Live processes whose command line contains `needle` as (part of) an argument, as
/// (argv[0], pid). Zombies have an empty command line and do not count.
fn processes_with(needle: &str) -> Vec<(String, u32)> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (pid != me && args.iter().any(|a| a.contains(needle)))
                .then(|| (args.first().cloned().unwrap_or_default(), pid))
        })
        .collect()
}

/// Waits up to `secs` for `cond`.
async fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cond()
}

/// Every `tracing` event of this test binary (the console follower's lines among them).
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        tracing_subscriber::fmt()
            .with_env_filter("cdvm::guest_console=debug,cdvm_provider_ssh=info")
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .init();
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        std::io::stderr().write_all(bytes)?;
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn ssh_error(err: &ProviderError) -> &SshError {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<SshError>())
        .unwrap_or_else(|| panic!("not an SSH error: {err:?}"))
}

fn image_store_mtimes(remote: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(remote.join("images")).unwrap().flatten() {
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            out.push((file.path(), file.metadata().unwrap().modified().unwrap()));
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_provider_passes_the_conformance_suite_and_uploads_the_image_once() {
    let host = Host::start();
    let p = host.provider();
    p.check().await.unwrap();
    conformance::run(&p, "ssh-conf", &spec).await;
    let remote = host.remote_dir();
    assert_eq!(
        std::fs::read_dir(remote.join("vms")).unwrap().count(),
        0,
        "every VM folder is gone"
    );
    // Five VMs, one upload of each of the three image files.
    assert_eq!(
        p.uploads(),
        3,
        "the image is uploaded once, then reused by hash"
    );
    let store = image_store_mtimes(&remote);
    assert_eq!(store.len(), 3, "{store:?}");

    // A restarted orchestrator (a new provider) finds the image in the store too.
    let again = host.provider();
    let vm = again
        .launch(&spec(&OwnerTag("o".into()), &JobTag("ab".repeat(32))))
        .await
        .unwrap();
    again.destroy(&vm.id).await.unwrap();
    assert_eq!(again.uploads(), 0);
    assert_eq!(
        image_store_mtimes(&remote),
        store,
        "the stored image was not rewritten"
    );

    assert!(
        wait_for(5, || processes_with(remote.to_str().unwrap()).is_empty()).await,
        "processes left on the host: {:?}",
        processes_with(remote.to_str().unwrap())
    );
    assert!(host.sshd.log().is_empty(), "sshd: {}", host.sshd.log());
}

/// A relay on this machine with one signed job request on it (the guest fetches it by id).
async fn relay_with_request() -> (LocalRelay, Client, Event) {
    let relay = LocalRelay::new(RelayBuilder::default());
    relay.run().await.unwrap();
    let url = relay.url().await.to_string();
    let user = Keys::generate();
    let dvm = Keys::generate();
    let request = JobRequestBuilder::new(kinds::SQL, dvm.public_key(), TeeKind::SevSnp)
        .relays(vec![url.clone()])
        .build()
        .unwrap()
        .sign_with_keys(&user)
        .unwrap();
    let client = Client::new(user);
    client.add_relay(url.as_str()).await.unwrap();
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(5)).await;
    client.send_event(&request).await.unwrap();
    (relay, client, request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_on_the_remote_host_boots_and_attests_through_the_ssh_bridge() {
    let log = captured_log();
    let (relay, client, request) = relay_with_request().await;
    let host = Host::start();
    let p = host.provider();
    let owner = OwnerTag("boot".into());
    let mut vm_spec = spec(&owner, &JobTag(request.id.to_hex()));
    vm_spec.bootstrap.relays = vec![relay.url().await.to_string()];
    vm_spec.bootstrap.input_timeout_secs = 60;
    vm_spec.class.memory_mib = cdvm_provider_qemu::IMAGE_GUEST_MEMORY_MIB;
    let vm = p.launch(&vm_spec).await.unwrap();
    let marker = format!("cdvm-{}", vm.id.0);
    assert_eq!(p.status(&vm.id).await.unwrap(), VmState::Running);

    // It really is QEMU, started by the host's sshd, under the coreutils deadline.
    let procs = processes_with(&marker);
    assert!(
        procs.iter().any(|(argv0, _)| argv0 == "qemu-system-x86_64"),
        "{procs:?}"
    );
    assert!(
        procs.iter().any(|(argv0, _)| argv0 == "timeout"),
        "{procs:?}"
    );

    // The guest boots: the kernel starts the agent as /init, which reports itself ready and finds
    // the simulated SP's virtio-serial port; it says so on the serial console.
    let console = host.vm_dir(&vm.id.0).join("console.log");
    let read = || std::fs::read_to_string(&console).unwrap_or_default();
    assert!(
        wait_for(90, || read().contains("SIMULATED secure processor")).await,
        "the guest did not boot to the agent in 90 s; console:\n{}",
        read()
    );
    assert!(read().contains("guest ready"), "{}", read());

    // The agent fetched the request through the relay, asked the secure processor (over
    // virtio-serial → QEMU's socket on the host → the SSH channel → this process) and published
    // its attestation. It verifies, as a client would check it, under the provider's development
    // policy: the evidence names this request and the guest's key, and carries the launch digest
    // of the image files the provider uploaded.
    let filter = Filter::new()
        .kind(Kind::from(kinds::ATTESTATION))
        .event(request.id);
    let deadline = Instant::now() + Duration::from_secs(90);
    let attestation = loop {
        let events = client
            .fetch_events(filter.clone(), Duration::from_secs(2))
            .await
            .unwrap();
        if let Some(e) = events.into_iter().next() {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no attestation in 90 s; console:\n{}",
            read()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let attestation = AttestationEvent::from_event(&attestation).unwrap();
    let policy = Policy::load(&dev_policy_path(&host.dir.path().join("state"))).unwrap();
    let claims = AnyVerifier
        .verify(
            &attestation.payload.evidence,
            &report_data(&request.id, &attestation.guest),
            &policy,
            SystemTime::now(),
        )
        .expect("the attestation must verify under the provider's dev policy");
    assert_eq!(attestation.request_id, request.id);
    assert!(claims.simulated, "{claims:?}");
    assert_eq!(
        claims.measurement.to_string(),
        attestation.payload.image.measurement,
        "the report carries the launch digest the guest claims"
    );

    // … and the provider repeated the console in the orchestrator's log.
    let logged = || String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        wait_for(10, || logged()
            .lines()
            .any(|l| l.contains("cdvm::guest_console")
                && l.contains(&vm.id.0)
                && l.contains("guest ready")))
        .await,
        "the console was not streamed to the log:\n{}",
        logged()
    );

    p.destroy(&vm.id).await.unwrap();
    assert!(
        processes_with(&marker).is_empty(),
        "QEMU still runs: {:?}",
        processes_with(&marker)
    );
    assert!(!host.vm_dir(&vm.id.0).exists(), "the VM folder is left");
    assert!(
        wait_for(5, || processes_with(&vm.id.0).is_empty()).await,
        "processes left: {:?}",
        processes_with(&vm.id.0)
    );
    assert_eq!(p.status(&vm.id).await.unwrap(), VmState::Gone);
    assert!(p.list(&owner).await.unwrap().is_empty());
    relay.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_presenting_another_key_gets_nothing() {
    let host = Host::start();
    let keys = tempfile::tempdir().unwrap();
    let other = sshd::keygen(&keys.path().join("other"));
    for pin in [other, sshd::fingerprint(&keys.path().join("other.pub"))] {
        let mut cfg = host.config();
        cfg.known_host_key = pin;
        let p = SshProvider::new(cfg).unwrap();
        let err = p
            .launch(&spec(&OwnerTag("o".into()), &JobTag("ef".repeat(32))))
            .await
            .expect_err("a launch on a host with another key must fail");
        assert!(
            matches!(ssh_error(&err), SshError::HostKeyMismatch { .. }),
            "{err:?}"
        );
        assert!(
            format!("{}", ssh_error(&err)).contains("host key mismatch"),
            "{err}"
        );
        // Every call fails the same way; none pretends success.
        let id = cdvm_provider_api::VmId("ssh-0000000000000000".into());
        for err in [
            p.status(&id).await.unwrap_err(),
            p.destroy(&id).await.unwrap_err(),
            p.list(&OwnerTag("o".into())).await.unwrap_err(),
            p.check().await.unwrap_err(),
        ] {
            assert!(
                matches!(ssh_error(&err), SshError::HostKeyMismatch { .. }),
                "{err:?}"
            );
        }
    }
    assert!(
        !host.remote_dir().exists(),
        "nothing may be written on a host that failed the key check"
    );
    // The pinned fingerprint of the real key is as good as its key line.
    let mut cfg = host.config();
    cfg.known_host_key = sshd::fingerprint(&host.sshd.dir.path().join("host_key.pub"));
    SshProvider::new(cfg).unwrap().check().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_past_its_hard_deadline_is_killed_on_the_remote_host() {
    let host = Host::start();
    let mut cfg = host.config();
    cfg.max_lifetime = Duration::from_secs(2);
    let p = SshProvider::new(cfg).unwrap();
    let vm = p
        .launch(&spec(&OwnerTag("o".into()), &JobTag("12".repeat(32))))
        .await
        .unwrap();
    let marker = format!("cdvm-{}", vm.id.0);
    assert!(
        wait_for(10, || processes_with(&marker).is_empty()).await,
        "QEMU outlived its deadline: {:?}",
        processes_with(&marker)
    );
    let state = p.status(&vm.id).await.unwrap();
    assert!(matches!(state, VmState::Exited { .. }), "{state:?}");
    p.destroy(&vm.id).await.unwrap();
    assert_eq!(p.status(&vm.id).await.unwrap(), VmState::Gone);
}

#[tokio::test]
async fn a_host_without_qemu_fails_the_check_and_the_launch_with_the_reason() {
    let host = Host::start();
    let mut cfg = host.config();
    cfg.qemu = "/nonexistent/qemu-system-x86_64".into();
    let p = SshProvider::new(cfg).unwrap();
    let err = p.check().await.unwrap_err();
    assert!(
        matches!(ssh_error(&err), SshError::Exec { stderr_tail, .. } if stderr_tail.contains("/nonexistent/qemu-system-x86_64 is missing")),
        "{err:?}"
    );
    let owner = OwnerTag("o".into());
    let err = p
        .launch(&spec(&owner, &JobTag("34".repeat(32))))
        .await
        .unwrap_err();
    assert!(
        matches!(ssh_error(&err), SshError::Exec { call, status: 127, stderr_tail } if call == "start QEMU" && stderr_tail.contains("not found on the host")),
        "{err:?}"
    );
    // The failed launch left no record behind.
    assert!(p.list(&owner).await.unwrap().is_empty());
}

#[test]
fn hardware_modes_and_a_missing_image_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = |tee| SshConfig {
        host: "127.0.0.1".into(),
        port: 22,
        user: "nobody".into(),
        private_key: dir.path().join("key"),
        known_host_key: "SHA256:ry5mCuibbxb6RA6LvcbjvLPSzZHU+enTAqPQrIJKa1A".into(),
        remote_dir: "/srv/cdvm".into(),
        qemu: "qemu-system-x86_64".into(),
        accel: Accel::Tcg,
        tee,
        cpu: CpuModel::Milan,
        image_dir: dir.path().join("no-image"),
        state_dir: dir.path().join("state"),
        policy_vcpus: 1,
        max_lifetime: Duration::from_secs(10),
    };
    for tee in [TeeMode::SevSnp, TeeMode::Tdx] {
        let err = SshProvider::new(cfg(tee)).expect_err("must refuse");
        assert!(err.to_string().contains("use tee: sim"), "{err}");
    }
    let err = SshProvider::new(cfg(TeeMode::Sim)).expect_err("must refuse");
    assert!(err.to_string().contains("load guest image"), "{err}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("scripts/build-image"), "{source}");
    let mut bad = cfg(TeeMode::Sim);
    bad.known_host_key = "not a key".into();
    let err = SshProvider::new(bad).expect_err("must refuse");
    assert!(format!("{err:?}").contains("PinnedKey"), "{err:?}");
}
