//! Real NIP-90 events from DVMDash (tests/fixtures/nip90-events) parse with our typed parsers,
//! verify, and stop verifying once tampered. <https://github.com/nostr-protocol/nips/blob/master/90.md>

use std::fs;
use std::path::PathBuf;

use cdvm_protocol::nostr::{Event, JsonUtil};
use cdvm_protocol::{
    verify_event, FeedbackStatus, JobFeedback, JobRequest, JobResult, ProtocolError,
};

fn events() -> Vec<(String, Event)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nip90-events");
    let mut out: Vec<(String, Event)> = fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| {
            let path = e.expect("entry").path();
            let json = fs::read_to_string(&path).expect("read");
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let ev = Event::from_json(json).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, ev)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_fixture_parses_with_its_typed_parser() {
    let evs = events();
    let (mut req, mut res, mut fb) = (0, 0, 0);
    for (name, e) in &evs {
        verify_event(e).unwrap_or_else(|err| panic!("{name}: {err}"));
        match e.kind.as_u16() {
            5000..=5999 => {
                let r = JobRequest::from_event(e).unwrap_or_else(|err| panic!("{name}: {err}"));
                assert_eq!(r.id, e.id);
                assert_eq!(r.author, e.pubkey);
                req += 1;
            }
            6000..=6999 => {
                let r = JobResult::from_event(e).unwrap_or_else(|err| panic!("{name}: {err}"));
                assert_eq!(r.kind, e.kind.as_u16());
                res += 1;
            }
            7000 => {
                JobFeedback::from_event(e).unwrap_or_else(|err| panic!("{name}: {err}"));
                fb += 1;
            }
            k => panic!("{name}: unexpected kind {k}"),
        }
        // Each typed parser refuses the other families' kinds.
        if !(5000..=5999).contains(&e.kind.as_u16()) {
            assert!(matches!(
                JobRequest::from_event(e),
                Err(ProtocolError::WrongKind { .. })
            ));
        }
    }
    assert_eq!((evs.len(), req, res, fb), (11, 4, 4, 3));
}

#[test]
fn fixture_fields_are_read_correctly() {
    let evs = events();
    let get = |n: &str| {
        evs.iter()
            .find(|(name, _)| name == n)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("{n}"))
    };

    let r = JobRequest::from_event(&get("5001-summarization-request.json")).expect("5001");
    assert_eq!(r.kind, 5001);
    assert_eq!(r.inputs.len(), 2);
    assert_eq!(r.inputs[0].data, "Summarize this");
    assert_eq!(r.inputs[0].input_type, "text");
    assert_eq!(r.inputs[1].input_type, "event");
    assert_eq!(r.relays.len(), 7);
    assert_eq!(r.output.as_deref(), Some("text/plain"));
    assert!(!r.encrypted);
    assert!(r.providers.is_empty());
    assert!(matches!(
        r.tee(),
        Err(ProtocolError::MissingParam { name: "tee" })
    ));

    let r = JobRequest::from_event(&get("5302-encrypted-nip44-request.json")).expect("5302");
    assert!(r.encrypted);
    assert_eq!(r.providers.len(), 1);
    assert!(r.inputs.is_empty());

    let res = JobResult::from_event(&get("6302-encrypted-nip44-result.json")).expect("6302");
    assert_eq!(
        res.request_id.to_hex(),
        "a0de2ea1c7d079749a2e5cf58e419dd75b962d6af569e2134d859b37e386ae92"
    );
    assert!(res.encrypted);
    assert_eq!(res.outcome, None);
    let res = JobResult::from_event(&get("6001-summarization-result.json")).expect("6001");
    assert_eq!(res.outcome, Some(cdvm_protocol::PublicOutcome::Success));
    assert!(res.user.is_some());

    let fb = JobFeedback::from_event(&get("7000-payment-required-bolt11.json")).expect("7000");
    assert_eq!(fb.status, Some(FeedbackStatus::PaymentRequired));
    assert_eq!(
        fb.extra_info.as_deref(),
        Some("I would like to process this job!")
    );
    assert_eq!(fb.amount, Some(25_000));
    let fb = JobFeedback::from_event(&get("7000-feedback-for-5050.json")).expect("7000");
    assert_eq!(fb.status, Some(FeedbackStatus::Processing));
    assert_eq!(fb.extra_info, None);
    // Encrypted feedback keeps its status inside the ciphertext.
    let fb = JobFeedback::from_event(&get("7000-encrypted-nip44-feedback.json")).expect("7000");
    assert_eq!(fb.status, None);
}

/// Replaces one character of the content; the id no longer matches.
fn tamper(e: &Event) -> Event {
    let mut v: serde_json::Value = serde_json::from_str(&e.as_json()).expect("json");
    let content = v["content"].as_str().expect("content").to_owned();
    let mut chars: Vec<char> = content.chars().collect();
    if chars.is_empty() {
        chars.push('x');
    } else {
        chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    }
    v["content"] = serde_json::Value::String(chars.into_iter().collect());
    Event::from_json(v.to_string()).expect("still well-formed JSON")
}

#[test]
fn tampered_fixtures_fail_verification() {
    let evs = events();
    for (name, e) in &evs {
        let t = tamper(e);
        assert!(
            matches!(verify_event(&t), Err(ProtocolError::BadEvent { id, .. }) if id == e.id),
            "{name}"
        );
        let typed_err = match t.kind.as_u16() {
            5000..=5999 => JobRequest::from_event(&t).err(),
            6000..=6999 => JobResult::from_event(&t).err(),
            _ => JobFeedback::from_event(&t).err(),
        };
        assert!(
            matches!(typed_err, Some(ProtocolError::BadEvent { .. })),
            "{name}"
        );
    }
    assert_eq!(evs.len(), 11);
}

#[test]
fn forged_signature_fails_verification() {
    let (_, e) = events().into_iter().next().expect("one");
    let mut v: serde_json::Value = serde_json::from_str(&e.as_json()).expect("json");
    let sig = v["sig"].as_str().expect("sig").to_owned();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    v["sig"] = serde_json::Value::String(format!("{flipped}{}", &sig[1..]));
    let forged = Event::from_json(v.to_string()).expect("json");
    assert!(matches!(
        verify_event(&forged),
        Err(ProtocolError::BadEvent { .. })
    ));
}
