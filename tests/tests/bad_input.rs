//! Bad input to the orchestrator: forged, oversized, unknown, malformed, flooding. Each gets an
//! error feedback or a silent drop; none crashes the daemon or launches a VM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use cdvm_client::demo::{DeploymentOptions, LocalDeployment};
use cdvm_orchestrator::store::Store;
use cdvm_protocol::nostr::{EventBuilder, Keys, Kind, Tag, TagKind, Timestamp};
use cdvm_protocol::{kinds, FeedbackStatus};

fn param(name: &str, value: &str) -> Tag {
    Tag::custom(TagKind::custom("param"), [name, value])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_error_feedback_and_launch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = common::never_attesting_agent(dir.path());
    let opts = DeploymentOptions {
        deadlines: (4, 4, 4),
        per_user_per_minute: 2,
        agent_binary: Some(agent),
        ..DeploymentOptions::default()
    };
    let mut d = LocalDeployment::start(&state, &opts).await.unwrap();
    let url = d.relay.url().to_string();
    let dvm = d.dvm.public_key();
    let tee = param("tee", "sev-snp");

    let cases = [
        (
            "unknown kind",
            common::request_event(&Keys::generate(), 5999, dvm, vec![tee.clone()], ""),
            "unsupported job kind",
        ),
        (
            "oversized",
            common::request_event(
                &Keys::generate(),
                kinds::SQL,
                dvm,
                vec![tee.clone()],
                &"x".repeat(20_000),
            ),
            "too large",
        ),
        (
            "param without a value",
            common::request_event(
                &Keys::generate(),
                kinds::SQL,
                dvm,
                vec![Tag::custom(TagKind::custom("param"), ["tee"])],
                "",
            ),
            "malformed",
        ),
        (
            "no TEE named",
            common::request_event(&Keys::generate(), kinds::SQL, dvm, vec![], ""),
            "malformed",
        ),
        (
            "a kind the DVM does not serve (5972)",
            common::request_event(&Keys::generate(), 5972, dvm, vec![tee.clone()], ""),
            "unsupported job kind 5972",
        ),
        (
            "plaintext input in an i tag",
            common::request_event(
                &Keys::generate(),
                kinds::SQL,
                dvm,
                vec![
                    tee.clone(),
                    Tag::custom(TagKind::custom("i"), ["name,salary\nalice,100", "text"]),
                ],
                "",
            ),
            "no VM started",
        ),
        (
            "a param the kind does not define",
            common::request_event(
                &Keys::generate(),
                kinds::SQL,
                dvm,
                vec![tee.clone(), param("max_rows", "5")],
                "",
            ),
            "defines no param `max_rows`",
        ),
        (
            "relays that are not relay URLs",
            common::request_event(
                &Keys::generate(),
                kinds::SQL,
                dvm,
                vec![
                    tee.clone(),
                    Tag::custom(TagKind::custom("relays"), ["my favourite relay"]),
                ],
                "",
            ),
            "relays",
        ),
        (
            "non-empty content",
            common::request_event(&Keys::generate(), kinds::SQL, dvm, vec![tee.clone()], "hi"),
            "content must be empty",
        ),
        (
            "dated two hours ago",
            EventBuilder::new(Kind::from(kinds::SQL), "")
                .tags([Tag::public_key(dvm), tee.clone()])
                .custom_created_at(Timestamp::from(Timestamp::now().as_secs() - 7200))
                .sign_with_keys(&Keys::generate())
                .unwrap(),
            "accepts requests up to",
        ),
        (
            // Issue 16, fault 8: the SDK's default limit dropped this before the intake saw it.
            "2,001 tags",
            common::request_event(
                &Keys::generate(),
                kinds::SQL,
                dvm,
                std::iter::once(tee.clone())
                    .chain(
                        (0..2000).map(|_| Tag::custom(TagKind::custom("a"), Vec::<String>::new())),
                    )
                    .collect(),
                "",
            ),
            "at most 100 are accepted",
        ),
        (
            "unknown TEE",
            common::request_event(
                &Keys::generate(),
                kinds::SQL,
                dvm,
                vec![param("tee", "sgx-enclave-9000")],
                "",
            ),
            "malformed",
        ),
    ];
    let sender = common::client(&url, &Keys::generate()).await;
    for (_, event, _) in &cases {
        sender.send_event(event).await.unwrap();
    }
    for (name, event, expected) in &cases {
        let fb = common::dvm_feedback(&url, dvm, event.id, Duration::from_secs(10)).await;
        let error = fb
            .iter()
            .find(|f| f.status == Some(FeedbackStatus::Error))
            .unwrap_or_else(|| panic!("{name}: no error feedback; log:\n{}", d.orchestrator_log()));
        let info = error.extra_info.clone().unwrap_or_default();
        assert!(
            info.contains(expected),
            "{name}: {info:?} should say {expected:?}"
        );
        assert!(
            !fb.iter()
                .any(|f| f.status == Some(FeedbackStatus::Processing)),
            "{name}: a refused request must not be processed"
        );
        // Every refusal is also a log line naming the request.
        let log = d.orchestrator_log();
        assert!(
            log.lines()
                .any(|l| l.contains("request refused") && l.contains(&event.id.to_hex())),
            "{name}: no log line for the refusal"
        );
    }

    // A forged event (valid shape, wrong signature) sent straight over the websocket: the relay
    // or the intake drops it; the daemon lives on.
    let mut forged =
        common::request_event(&Keys::generate(), kinds::SQL, dvm, vec![tee.clone()], "");
    forged.content = "changed after signing".into();
    let _ = sender.send_event(&forged).await;

    // A flood from one key: two are accepted (the limit), one is told it is rate limited, the
    // rest are dropped without an answer.
    let flooder = Keys::generate();
    let flood: Vec<_> = (0..8)
        .map(|i| {
            common::request_event(
                &flooder,
                kinds::TEXT_STATS,
                dvm,
                // A distinct (ignored) alt text gives each request its own id.
                vec![
                    tee.clone(),
                    Tag::custom(TagKind::custom("alt"), [format!("flood {i}")]),
                ],
                "",
            )
        })
        .collect();
    for e in &flood {
        sender.send_event(e).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut processing = 0;
    let mut limited = 0;
    for e in &flood {
        for f in common::dvm_feedback(&url, dvm, e.id, Duration::from_millis(1)).await {
            match f.status {
                Some(FeedbackStatus::Processing) => processing += 1,
                Some(FeedbackStatus::Error)
                    if f.extra_info
                        .as_deref()
                        .unwrap_or("")
                        .contains("rate limited") =>
                {
                    limited += 1
                }
                _ => {}
            }
        }
    }
    assert_eq!(processing, 2, "exactly the per-user limit is accepted");
    assert_eq!(limited, 1, "one rate-limit answer, then silence");

    // Nothing refused was stored or launched; the daemon is alive; every VM is gone in the end.
    assert!(
        d.orchestrator_alive(),
        "the orchestrator survived all of it"
    );
    let store = Store::open(&state.join("jobs.sqlite")).unwrap();
    for (name, event, _) in &cases {
        assert!(
            store.get(&event.id.to_hex()).unwrap().is_none(),
            "{name} was stored"
        );
    }
    assert!(
        store.get(&forged.id.to_hex()).unwrap().is_none(),
        "forged event was stored"
    );
    drop(store);
    // The two accepted flood jobs never attest (silent agent): their deadline ends them.
    for e in flood.iter().take(2) {
        let fb = common::dvm_feedback(&url, dvm, e.id, Duration::from_secs(20)).await;
        assert!(
            fb.iter().any(|f| f.status == Some(FeedbackStatus::Error)),
            "accepted job must end in an error feedback"
        );
    }
    common::assert_no_vm_left(&state).await;
    assert!(d.orchestrator_alive());
}
