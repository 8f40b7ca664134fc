//! Intake classifies every incoming event into one typed action before anything acts on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cdvm_orchestrator::intake::{classify, Action, RateLimiter};
use cdvm_orchestrator::Config;
use cdvm_protocol::nostr::{Event, EventBuilder, Keys, Kind, Tag, TagKind, Timestamp};
use cdvm_protocol::{kinds, JobRequestBuilder, TeeKind};

fn config() -> Config {
    Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/orchestrator.yaml"))
        .unwrap()
}

fn valid(user: &Keys, dvm: &Keys) -> Event {
    JobRequestBuilder::new(kinds::SQL, dvm.public_key(), TeeKind::SevSnp)
        .relays(vec!["ws://127.0.0.1:7777".into()])
        .build()
        .unwrap()
        .sign_with_keys(user)
        .unwrap()
}

fn raw(user: &Keys, kind: u16, tags: Vec<Tag>, content: &str) -> Event {
    EventBuilder::new(Kind::from(kind), content)
        .tags(tags)
        .sign_with_keys(user)
        .unwrap()
}

fn run(event: &Event, dvm: &Keys) -> Action {
    classify(
        event,
        &dvm.public_key(),
        &config(),
        0,
        &mut RateLimiter::default(),
    )
}

fn rejected(action: Action) -> String {
    match action {
        Action::Reject { reason, .. } => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn param(name: &str, value: &str) -> Tag {
    Tag::custom(TagKind::custom("param"), [name, value])
}

#[test]
fn a_valid_request_is_accepted() {
    let (user, dvm) = (Keys::generate(), Keys::generate());
    assert!(matches!(run(&valid(&user, &dvm), &dvm), Action::Accept(_)));
}

#[test]
fn a_bad_signature_is_dropped_silently() {
    let (user, dvm) = (Keys::generate(), Keys::generate());
    let mut e = valid(&user, &dvm);
    e.content = "tampered".into();
    assert!(matches!(
        run(&e, &dvm),
        Action::Drop {
            why: "bad id or signature"
        }
    ));
}

#[test]
fn a_request_for_another_dvm_is_dropped() {
    let (user, dvm) = (Keys::generate(), Keys::generate());
    let e = valid(&user, &Keys::generate());
    assert!(matches!(
        run(&e, &dvm),
        Action::Drop {
            why: "not addressed to this DVM"
        }
    ));
}

#[test]
fn stale_and_future_dated_requests_are_answered_with_their_age() {
    let (user, dvm) = (Keys::generate(), Keys::generate());
    let dated = |offset: i64| {
        let at = Timestamp::now().as_secs() as i64 + offset;
        EventBuilder::new(Kind::from(kinds::SQL), "")
            .tags([Tag::public_key(dvm.public_key()), param("tee", "sev-snp")])
            .custom_created_at(Timestamp::from(at as u64))
            .sign_with_keys(&user)
            .unwrap()
    };
    // max_request_age_secs is 600 in examples/orchestrator.yaml.
    let old = rejected(run(&dated(-3600), &dvm));
    assert!(old.contains("s old") && old.contains("600"), "{old}");
    let future = rejected(run(&dated(3600), &dvm));
    assert!(future.contains("in the future"), "{future}");
    // Inside both bounds: accepted.
    assert!(matches!(run(&dated(-60), &dvm), Action::Accept(_)));
    assert!(matches!(run(&dated(60), &dvm), Action::Accept(_)));
    // A stale request that is malformed as well is answered for the malformation.
    let bad = EventBuilder::new(Kind::from(kinds::SQL), "")
        .tags([
            Tag::public_key(dvm.public_key()),
            Tag::custom(TagKind::custom("param"), ["tee"]),
        ])
        .custom_created_at(Timestamp::from(Timestamp::now().as_secs() - 3600))
        .sign_with_keys(&user)
        .unwrap();
    assert!(rejected(run(&bad, &dvm)).contains("malformed"));
}

#[test]
fn requests_outside_the_confidential_profile_are_refused_before_any_vm() {
    let (user, dvm) = (Keys::generate(), Keys::generate());
    let p = Tag::public_key(dvm.public_key());
    let tee = param("tee", "sev-snp");
    let plaintext = raw(
        &user,
        kinds::SQL,
        vec![
            p.clone(),
            tee.clone(),
            Tag::custom(TagKind::custom("i"), ["name,salary\nalice,100", "text"]),
        ],
        "",
    );
    let reason = rejected(run(&plaintext, &dvm));
    assert!(
        reason.contains("no VM started") && reason.contains("public"),
        "{reason}"
    );
    assert!(!reason.contains("alice"), "{reason}");
    let cases: [(Vec<Tag>, &str, &str); 3] = [
        (
            vec![p.clone(), tee.clone(), param("max_rows", "5")],
            "",
            "defines no param `max_rows`",
        ),
        (
            vec![
                p.clone(),
                tee.clone(),
                Tag::custom(TagKind::custom("relays"), ["not a relay"]),
            ],
            "",
            "relays",
        ),
        (
            vec![p.clone(), tee.clone()],
            "hello",
            "content must be empty",
        ),
    ];
    for (tags, content, want) in cases {
        let e = raw(&user, kinds::SQL, tags, content);
        let reason = rejected(run(&e, &dvm));
        assert!(reason.contains(want), "{want}: {reason}");
    }
}

#[test]
fn unknown_kinds_oversize_and_malformed_tags_are_rejected_with_reasons() {
    let (user, dvm) = (Keys::generate(), Keys::generate());
    let p = Tag::public_key(dvm.public_key());
    let tee = param("tee", "sev-snp");
    let unknown = raw(&user, 5999, vec![p.clone(), tee.clone()], "");
    assert!(rejected(run(&unknown, &dvm)).contains("unsupported job kind 5999"));
    let big = raw(
        &user,
        kinds::SQL,
        vec![p.clone(), tee.clone()],
        &"x".repeat(17_000),
    );
    assert!(rejected(run(&big, &dvm)).contains("too large"));
    let half_param = raw(
        &user,
        kinds::SQL,
        vec![p.clone(), Tag::custom(TagKind::custom("param"), ["tee"])],
        "",
    );
    assert!(rejected(run(&half_param, &dvm)).contains("malformed"));
    let bad_p = raw(
        &user,
        kinds::SQL,
        vec![
            p.clone(),
            tee.clone(),
            Tag::custom(TagKind::custom("p"), ["not-a-key"]),
        ],
        "",
    );
    assert!(rejected(run(&bad_p, &dvm)).contains("malformed"));
    let no_tee = raw(&user, kinds::SQL, vec![p.clone()], "");
    assert!(rejected(run(&no_tee, &dvm)).contains("malformed"));
}

#[test]
fn non_request_kinds_are_dropped() {
    let (user, dvm) = (Keys::generate(), Keys::generate());
    let note = raw(&user, 1, vec![Tag::public_key(dvm.public_key())], "hi");
    assert!(matches!(
        run(&note, &dvm),
        Action::Drop {
            why: "not a job request"
        }
    ));
}

#[test]
fn capacity_is_enforced() {
    let (user, dvm) = (Keys::generate(), Keys::generate());
    let cfg = config();
    let action = classify(
        &valid(&user, &dvm),
        &dvm.public_key(),
        &cfg,
        cfg.jobs.max_concurrent,
        &mut RateLimiter::default(),
    );
    assert!(rejected(action).contains("at capacity"));
}

#[test]
fn a_flood_from_one_key_gets_one_answer_then_silence() {
    let (user, dvm) = (Keys::generate(), Keys::generate());
    let cfg = config();
    let mut limiter = RateLimiter::default();
    let mut accepted = 0;
    let mut answered = 0;
    let mut dropped = 0;
    for _ in 0..20 {
        match classify(
            &valid(&user, &dvm),
            &dvm.public_key(),
            &cfg,
            0,
            &mut limiter,
        ) {
            Action::Accept(_) => accepted += 1,
            Action::Reject { reason, .. } => {
                assert!(reason.contains("rate limited"));
                answered += 1;
            }
            Action::Drop { .. } => dropped += 1,
        }
    }
    assert_eq!(accepted, cfg.limits.per_user_per_minute as usize);
    assert_eq!(answered, 1);
    assert_eq!(dropped, 20 - accepted - 1);
    // Another user is not affected by the first one's flood.
    let other = Keys::generate();
    assert!(matches!(
        classify(
            &valid(&other, &dvm),
            &dvm.public_key(),
            &cfg,
            0,
            &mut limiter
        ),
        Action::Accept(_)
    ));
}

#[test]
fn extreme_timestamps_are_refused_not_a_panic() {
    // Issue 16, fault 1: `created + max_request_age_secs` must not overflow; the relay would
    // redeliver such a request at every restart.
    let (user, dvm) = (Keys::generate(), Keys::generate());
    for at in [
        u64::MAX,
        u64::MAX - 1,
        u64::MAX - 600,
        i64::MAX as u64,
        1 << 63,
    ] {
        let e = EventBuilder::new(Kind::from(kinds::SQL), "")
            .tags([Tag::public_key(dvm.public_key()), param("tee", "sev-snp")])
            .custom_created_at(Timestamp::from(at))
            .sign_with_keys(&user)
            .unwrap();
        let reason = rejected(run(&e, &dvm));
        assert!(reason.contains("in the future"), "{at}: {reason}");
    }
    // And the oldest possible date is simply old.
    let e = EventBuilder::new(Kind::from(kinds::SQL), "")
        .tags([Tag::public_key(dvm.public_key()), param("tee", "sev-snp")])
        .custom_created_at(Timestamp::from(0))
        .sign_with_keys(&user)
        .unwrap();
    assert!(rejected(run(&e, &dvm)).contains("s old"));
}

#[test]
fn arbitrary_events_never_panic_the_intake() {
    // A deterministic sweep over kinds, tag shapes, sizes and dates (the daemon classifies every
    // event a relay hands it; none may panic it). xorshift keeps the run reproducible.
    let (user, dvm) = (Keys::generate(), Keys::generate());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let kinds_pool = [kinds::SQL, kinds::SQL + 1, 5000, 6000, 7000, 1, 0, u16::MAX];
    let names = [
        "p",
        "param",
        "i",
        "relays",
        "bid",
        "encrypted",
        "e",
        "output",
        "cashu",
        "",
    ];
    let mut limiter = RateLimiter::default();
    let cfg = config();
    for round in 0..400 {
        let kind = kinds_pool[(next() % kinds_pool.len() as u64) as usize];
        let mut tags = Vec::new();
        if next() % 2 == 0 {
            tags.push(Tag::public_key(dvm.public_key()));
        }
        for _ in 0..(next() % 6) {
            let name = names[(next() % names.len() as u64) as usize];
            let len = (next() % 4) as usize;
            let values: Vec<String> = (0..len)
                .map(|i| match next() % 5 {
                    0 => String::new(),
                    1 => "tee".into(),
                    2 => "sev-snp".into(),
                    3 => "x".repeat((next() % 3000) as usize),
                    _ => format!("{}", next().wrapping_mul(i as u64 + 1)),
                })
                .collect();
            let mut all = vec![name.to_string()];
            all.extend(values);
            tags.push(Tag::parse(all).unwrap_or_else(|_| Tag::public_key(user.public_key())));
        }
        let at = match next() % 4 {
            0 => next(),
            1 => Timestamp::now().as_secs(),
            2 => Timestamp::now().as_secs().wrapping_sub(next() % 100_000),
            _ => u64::MAX - next() % 1000,
        };
        let content = "y".repeat((next() % 200) as usize);
        let e = EventBuilder::new(Kind::from(kind), content)
            .tags(tags)
            .custom_created_at(Timestamp::from(at))
            .sign_with_keys(&user)
            .unwrap();
        // Any action is fine; a panic fails the test with the round number in the backtrace.
        let _ = (
            round,
            classify(&e, &dvm.public_key(), &cfg, round, &mut limiter),
        );
    }
}

#[test]
fn a_request_with_too_many_tags_is_answered_naming_the_limit() {
    let (user, dvm) = (Keys::generate(), Keys::generate());
    let mut tags = vec![Tag::public_key(dvm.public_key()), param("tee", "sev-snp")];
    tags.extend((0..99).map(|i| Tag::custom(TagKind::custom("x"), [format!("{i}")])));
    let reason = rejected(run(&raw(&user, kinds::SQL, tags.clone(), ""), &dvm));
    assert!(
        reason.contains("101 tags") && reason.contains("at most 100"),
        "{reason}"
    );
    // At the limit: accepted.
    tags.pop();
    assert!(matches!(
        run(&raw(&user, kinds::SQL, tags, ""), &dvm),
        Action::Accept(_)
    ));
}
