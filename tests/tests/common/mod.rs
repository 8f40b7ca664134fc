//! Helpers shared by the end-to-end tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdvm_protocol::nostr::{Event, EventBuilder, Filter, Keys, Kind, PublicKey, Tag};
use nostr_sdk::Client;

/// A connected raw Nostr client (plays an arbitrary user or attacker).
pub async fn client(relay: &str, keys: &Keys) -> Client {
    let c = Client::new(keys.clone());
    c.add_relay(relay).await.unwrap();
    c.connect().await;
    c.wait_for_connection(Duration::from_secs(5)).await;
    c
}

/// Every event the relay stored.
pub async fn all_events(relay: &str) -> Vec<Event> {
    let c = client(relay, &Keys::generate()).await;
    let events = c
        .fetch_events(Filter::new().limit(100_000), Duration::from_secs(5))
        .await
        .unwrap();
    c.shutdown().await;
    events.into_iter().collect()
}

/// Events matching `filter`, waiting until at least one matches `pred` or `timeout` passes.
pub async fn wait_for(
    relay: &str,
    filter: Filter,
    timeout: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Option<Event> {
    let c = client(relay, &Keys::generate()).await;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let events = c
            .fetch_events(filter.clone(), Duration::from_secs(2))
            .await
            .unwrap();
        if let Some(e) = events.into_iter().find(|e| pred(e)) {
            c.shutdown().await;
            return Some(e);
        }
        if tokio::time::Instant::now() > deadline {
            c.shutdown().await;
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A stand-in agent that starts and never attests. It keeps its command line (no `exec`), so the
/// provider can find and kill it; `sleep` shares its process group.
pub fn never_attesting_agent(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("silent-agent.sh");
    std::fs::write(&path, "#!/bin/sh\nsleep 600 &\nwait\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        if pid == std::process::id().to_string() {
            continue;
        }
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !zombie && cmd.contains(needle) {
            out.push(format!("{pid}: {cmd}"));
        }
    }
    out
}

/// Number of VM folders the process provider holds.
pub fn vm_count(state_dir: &Path) -> usize {
    std::fs::read_dir(cdvm_client::demo::vms_dir(state_dir))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits until the process provider holds no VM and no agent process of this state folder is left.
pub async fn assert_no_vm_left(state_dir: &Path) {
    assert_no_vm_in(&cdvm_client::demo::vms_dir(state_dir)).await;
}

/// Waits (up to 10 s) until the VM folder `vms` is empty and no process (agent, QEMU) mentions
/// it: every VM process is started with paths inside its folder; the orchestrator is not a VM.
pub async fn assert_no_vm_in(vms: &Path) {
    let needle = vms.display().to_string();
    let folders = || std::fs::read_dir(vms).map(|d| d.count()).unwrap_or(0);
    for _ in 0..100 {
        if folders() == 0 && processes_mentioning(&needle).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "VMs left: {} folders, processes: {:?}",
        folders(),
        processes_mentioning(&needle)
    );
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A signed kind-`kind` event with these tags, p-tagged to `dvm`.
pub fn request_event(
    keys: &Keys,
    kind: u16,
    dvm: PublicKey,
    tags: Vec<Tag>,
    content: &str,
) -> Event {
    EventBuilder::new(Kind::from(kind), content)
        .tag(Tag::public_key(dvm))
        .tags(tags)
        .sign_with_keys(keys)
        .unwrap()
}

/// Error feedback (kind 7000) from `dvm` about `request`, waiting up to `timeout`.
pub async fn dvm_feedback(
    relay: &str,
    dvm: PublicKey,
    request: cdvm_protocol::nostr::EventId,
    timeout: Duration,
) -> Vec<cdvm_protocol::JobFeedback> {
    let filter = Filter::new()
        .author(dvm)
        .kind(Kind::from(7000u16))
        .event(request);
    let _ = wait_for(relay, filter.clone(), timeout, |e| {
        cdvm_protocol::JobFeedback::from_event(e).is_ok_and(|f| {
            matches!(
                f.status,
                Some(cdvm_protocol::FeedbackStatus::Error | cdvm_protocol::FeedbackStatus::Success)
            )
        })
    })
    .await;
    let c = client(relay, &Keys::generate()).await;
    let events = c
        .fetch_events(filter, Duration::from_secs(2))
        .await
        .unwrap();
    c.shutdown().await;
    events
        .into_iter()
        .filter_map(|e| cdvm_protocol::JobFeedback::from_event(&e).ok())
        .collect()
}

/// The DVM's NIP-89 announcement names the image the job's guest reported and lists the
/// measurement its report carried (docs/protocol.md §5.1): a client can pin both beforehand.
pub async fn assert_announced(relay: &str, outcome: &cdvm_client::JobOutcome, dvm: PublicKey) {
    let ann = wait_for(
        relay,
        Filter::new()
            .author(dvm)
            .kind(Kind::from(cdvm_protocol::kinds::HANDLER_INFO)),
        Duration::from_secs(10),
        |_| true,
    )
    .await
    .expect("the DVM announced itself");
    let info = cdvm_protocol::HandlerInfo::from_event(&ann).unwrap();
    let att = wait_for(
        relay,
        Filter::new()
            .author(outcome.guest)
            .kind(Kind::from(cdvm_protocol::kinds::ATTESTATION))
            .event(outcome.request),
        Duration::from_secs(10),
        |_| true,
    )
    .await
    .expect("the guest's attestation is on the relay");
    let att = cdvm_protocol::AttestationEvent::from_event(&att).unwrap();
    assert_eq!(info.image, att.payload.image.name, "announced image name");
    let measured = outcome.claims.measurement.to_string();
    assert_eq!(att.payload.image.measurement, measured);
    assert!(
        info.measurements.contains(&measured),
        "measurement {measured} not announced: {:?}",
        info.measurements
    );
    assert_eq!(info.simulated, outcome.claims.simulated);
}

/// A small SQL job for `d`'s DVM from a fresh user, checked against its development policy,
/// with generous timeouts (tests tighten `timeouts` where they need to).
pub fn sql_spec(
    d: &cdvm_client::demo::LocalDeployment,
    table_csv: &str,
    query: &str,
) -> cdvm_client::JobSpec {
    cdvm_client::JobSpec {
        relays: vec![d.relay.url().to_string()],
        dvm: d.dvm.public_key(),
        kind: cdvm_protocol::kinds::SQL,
        input: cdvm_protocol::InputBody::Sql {
            table_csv: table_csv.into(),
            query: query.into(),
        },
        policy: d.dev_policy.clone(),
        user: Keys::generate(),
        timeouts: cdvm_client::Timeouts {
            attest: Duration::from_secs(60),
            result: Duration::from_secs(60),
            destroyed: Duration::from_secs(20),
        },
        vcek: None,
        result_servers: vec![],
        result_file: None,
        transfer_progress: None,
    }
}
