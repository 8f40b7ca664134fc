//! The confidential request profile (docs/protocol.md §5.2), the guest's announced deadlines
//! (§6.1) and the result's public outcome (§5.6): each accepted shape next to its refused twins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cdvm_attestation::TeeKind;
use cdvm_protocol::nostr::{Event, EventBuilder, Kind, Tag, TagKind, Timestamp};
use cdvm_protocol::profile::{output_type, params_for};
use cdvm_protocol::{
    encrypt_result, kinds, AttestationEvent, AttestationPayload, ErrorClass, ImageIdentity,
    JobFeedback, JobRequest, JobRequestBuilder, JobResult, ProtocolError, PublicOutcome,
    ResultPayload,
};
use common::*;

fn raw_tag(parts: &[&str]) -> Tag {
    Tag::custom(TagKind::from(parts[0]), parts[1..].iter().copied())
}

/// A kind-5970 request addressed to the test DVM with exactly these extra tags and content.
fn request(tags: &[&[&str]], content: &str) -> JobRequest {
    let pk = dvm().public_key().to_hex();
    let mut all = vec![raw_tag(&["p", &pk])];
    all.extend(tags.iter().map(|t| raw_tag(t)));
    let e = sign(
        EventBuilder::new(Kind::from(kinds::SQL), content).tags(all),
        &user(),
    );
    JobRequest::from_event(&e).expect("parses as a NIP-90 request")
}

const TEE: &[&str] = &["param", "tee", "sev-snp"];

#[test]
fn our_own_request_passes_the_profile() {
    for kind in [kinds::SQL, kinds::TEXT_STATS] {
        let e = sign(
            JobRequestBuilder::new(kind, dvm().public_key(), TeeKind::SevSnp)
                .relays(vec!["wss://relay.example".into()])
                .policy("default-sev-snp")
                .build()
                .unwrap(),
            &user(),
        );
        let r = JobRequest::from_event(&e).unwrap();
        assert_eq!(r.check_confidential().unwrap(), TeeKind::SevSnp);
    }
    // The minimal request: only the TEE.
    assert_eq!(
        request(&[TEE], "").check_confidential().unwrap(),
        TeeKind::SevSnp
    );
    let with_output = request(&[TEE, &["output", "text/csv"]], "");
    assert!(with_output.check_confidential().is_ok());
}

#[test]
fn a_plaintext_input_tag_is_refused_first_and_says_the_data_is_public() {
    let r = request(
        &[TEE, &["i", "name,salary\nalice,100", "text"]],
        "and content",
    );
    let e = r.check_confidential().unwrap_err();
    assert!(
        matches!(e, ProtocolError::PlaintextInput { count: 1 }),
        "{e}"
    );
    let text = e.to_string();
    assert!(text.contains("public"), "{text}");
    assert!(
        !text.contains("alice"),
        "the refusal never echoes the data: {text}"
    );
}

#[test]
fn content_encrypted_params_and_undefined_params_are_refused() {
    assert!(matches!(
        request(&[TEE], "SELECT 1").check_confidential(),
        Err(ProtocolError::NonEmptyContent { len: 8 })
    ));
    assert!(matches!(
        request(&[TEE, &["encrypted"]], "").check_confidential(),
        Err(ProtocolError::UnsupportedTag {
            tag: "encrypted",
            ..
        })
    ));
    match request(&[TEE, &["param", "max_rows", "100"]], "").check_confidential() {
        Err(ProtocolError::UnknownParam { kind, name }) => {
            assert_eq!((kind, name.as_str()), (kinds::SQL, "max_rows"))
        }
        other => panic!("{other:?}"),
    }
    for (param, value) in [
        ("input", "inline"),
        ("policy", ""),
        ("policy", "tab\there"),
        ("tee", "sgx"),
    ] {
        let tags: &[&[&str]] = if param == "tee" {
            &[&["param", param, value]]
        } else {
            &[TEE, &["param", param, value]]
        };
        assert!(
            matches!(
                request(tags, "").check_confidential(),
                Err(ProtocolError::InvalidParam { name, .. }) if name == param
            ),
            "{param}={value:?}"
        );
    }
    let long = "p".repeat(129);
    assert!(matches!(
        request(&[TEE, &["param", "policy", &long]], "").check_confidential(),
        Err(ProtocolError::InvalidParam { name: "policy", .. })
    ));
    assert!(matches!(
        request(&[], "").check_confidential(),
        Err(ProtocolError::MissingParam { name: "tee" })
    ));
    assert!(matches!(
        request(&[TEE, &["output", "text/html"]], "").check_confidential(),
        Err(ProtocolError::InvalidField {
            field: "output",
            ..
        })
    ));
}

#[test]
fn only_our_kinds_have_a_profile_and_the_builder_keeps_to_it() {
    assert!(params_for(kinds::SQL).is_some() && params_for(kinds::TEXT_STATS).is_some());
    assert!(params_for(5972).is_none() && output_type(5972).is_none());
    let b = JobRequestBuilder::new(kinds::SQL, dvm().public_key(), TeeKind::SevSnp)
        .param("max_rows", "100")
        .build();
    assert!(matches!(b, Err(ProtocolError::UnknownParam { .. })));
    let b = JobRequestBuilder::new(kinds::SQL, dvm().public_key(), TeeKind::SevSnp)
        .relays(vec!["relay.example".into()])
        .build();
    assert!(matches!(b, Err(ProtocolError::MalformedTag { ref tag, .. }) if tag == "relays"));
}

fn attestation(tags: &[&[&str]]) -> Event {
    let req = request(&[TEE], "");
    let rd = cdvm_protocol::report_data(&req.id, &guest().public_key());
    let payload = AttestationPayload {
        v: 1,
        request_id: req.id.to_hex(),
        evidence: fake_snp_evidence(rd.as_bytes(), &[0x11; 48]),
        image: ImageIdentity {
            name: cdvm_protocol::image::GUEST_IMAGE.into(),
            measurement: "11".repeat(48),
        },
    };
    let mut all = vec![
        raw_tag(&["e", &req.id.to_hex()]),
        raw_tag(&["p", &req.author.to_hex()]),
        raw_tag(&["tee", "sev-snp"]),
    ];
    all.extend(tags.iter().map(|t| raw_tag(t)));
    sign(
        EventBuilder::new(
            Kind::from(kinds::ATTESTATION),
            serde_json::to_string(&payload).unwrap(),
        )
        .tags(all),
        &guest(),
    )
}

#[test]
fn the_attestation_announces_the_input_deadline_and_must() {
    let ok = AttestationEvent::from_event(&attestation(&[&["deadline", "input", "1795737815"]]))
        .unwrap();
    assert_eq!(ok.input_deadline, Timestamp::from(1_795_737_815));
    // A run deadline does not stand in for the input deadline.
    for tags in [&[][..], &[&["deadline", "run", "1795737815"][..]][..]] {
        assert!(matches!(
            AttestationEvent::from_event(&attestation(tags)),
            Err(ProtocolError::MissingTag { tag: "deadline" })
        ));
    }
}

#[test]
fn the_running_feedback_carries_the_run_deadline() {
    let req = request(&[TEE], "");
    let at = Timestamp::from(1_795_738_000);
    let e = sign(JobFeedback::running(req.id, req.author, at), &guest());
    let fb = JobFeedback::from_event(&e).unwrap();
    assert_eq!(fb.run_deadline, Some(at));
    assert_eq!(fb.extra_info.as_deref(), Some("running"));
    let plain = sign(
        JobFeedback::build(
            req.id,
            req.author,
            cdvm_protocol::FeedbackStatus::Processing,
            None,
        ),
        &guest(),
    );
    assert_eq!(JobFeedback::from_event(&plain).unwrap().run_deadline, None);
}

#[test]
fn the_result_states_its_outcome_in_public_and_nothing_more() {
    let req = request(&[TEE], "");
    let secret = "query: no such column: s3cr3t_column";
    for (payload, public) in [
        (
            ResultPayload::ok(&req.id, "text/csv", "a\n1\n".into()),
            PublicOutcome::Success,
        ),
        (
            ResultPayload::error(&req.id, secret.into()),
            PublicOutcome::Error(ErrorClass::JobFailed),
        ),
    ] {
        let content = encrypt_result(&guest(), &req.author, &payload).unwrap();
        let e = sign(JobResult::build(&req, content, public), &guest());
        let r = JobResult::from_event(&e).unwrap();
        assert_eq!(r.outcome, Some(public));
        let wire = serde_json::to_string(&e.tags).unwrap();
        assert!(!wire.contains("s3cr3t"), "{wire}");
    }
    // Every class round-trips through its wire name.
    for class in ErrorClass::ALL {
        assert_eq!(class.as_str().parse::<ErrorClass>().unwrap(), class);
    }
}
