//! Builder → sign → from_event round trips, malformed-tag rejection and the report-data binding.

mod common;

use cdvm_attestation::TeeKind;
use cdvm_protocol::nostr::{Event, EventBuilder, EventId, Keys, Kind, Tag, TagKind};
use cdvm_protocol::{
    decrypt_result, encrypt_result, kinds, report_data, AttestationEvent, AttestationPayload,
    FeedbackStatus, HandlerInfo, ImageIdentity, JobFeedback, JobRequest, JobRequestBuilder,
    JobResult, Outcome, ProtocolError, PublicOutcome, ResultPayload, MAX_RESULT_PLAINTEXT,
    PROTOCOL_VERSION,
};
use common::*;
use sha2::{Digest, Sha512};

/// The input deadline the attestations of these tests announce.
fn deadline() -> cdvm_protocol::nostr::Timestamp {
    cdvm_protocol::nostr::Timestamp::from(1_795_737_815)
}

fn raw_tag(parts: &[&str]) -> Tag {
    Tag::custom(TagKind::from(parts[0]), parts[1..].iter().copied())
}

fn request_event() -> (Event, JobRequest) {
    let b = JobRequestBuilder::new(kinds::SQL, dvm().public_key(), TeeKind::SevSnp)
        .relays(vec![
            "wss://relay.example".into(),
            "wss://relay2.example".into(),
        ])
        .policy("snp-milan-prod")
        .build()
        .expect("build");
    let e = sign(b, &user());
    let r = JobRequest::from_event(&e).expect("parse");
    (e, r)
}

#[test]
fn request_round_trip() {
    let (e, r) = request_event();
    assert_eq!(r.kind, kinds::SQL);
    assert_eq!(r.author, user().public_key());
    assert_eq!(r.providers, vec![dvm().public_key()]);
    assert_eq!(r.tee().expect("tee"), TeeKind::SevSnp);
    assert_eq!(r.policy(), Some("snp-milan-prod"));
    assert_eq!(r.param("input"), Some("nip59-to-attested-key"));
    assert_eq!(r.relays, ["wss://relay.example", "wss://relay2.example"]);
    assert!(
        r.inputs.is_empty(),
        "no i tags: nothing confidential in the request"
    );
    assert!(e.tags.iter().all(|t| t.as_slice()[0] != "i"));
    assert!(!r.encrypted);
    assert_eq!(r.content, "");
}

#[test]
fn request_builder_rejects_bad_kind_and_duplicate_params() {
    let b = JobRequestBuilder::new(6970, dvm().public_key(), TeeKind::SevSnp).build();
    assert!(matches!(b, Err(ProtocolError::WrongKind { got: 6970, .. })));
    let b = JobRequestBuilder::new(kinds::SQL, dvm().public_key(), TeeKind::SevSnp)
        .param("tee", "tdx")
        .build();
    assert!(matches!(b, Err(ProtocolError::MalformedTag { ref tag, .. }) if tag == "param"));
}

#[test]
fn request_unknown_tee_is_reported() {
    let e = sign(
        EventBuilder::new(Kind::from(kinds::SQL), "").tag(raw_tag(&["param", "tee", "sgx-9000"])),
        &user(),
    );
    let r = JobRequest::from_event(&e).expect("parse");
    assert!(matches!(r.tee(), Err(ProtocolError::UnknownTee { ref value }) if value == "sgx-9000"));
}

fn malformed(kind: u16, tags: &[&[&str]]) -> Result<(), ProtocolError> {
    let b = EventBuilder::new(Kind::from(kind), "").tags(tags.iter().map(|t| raw_tag(t)));
    let e = sign(b, &user());
    match kind {
        5000..=5999 => JobRequest::from_event(&e).map(|_| ()),
        6000..=6999 => JobResult::from_event(&e).map(|_| ()),
        kinds::JOB_FEEDBACK => JobFeedback::from_event(&e).map(|_| ()),
        kinds::ATTESTATION => AttestationEvent::from_event(&e).map(|_| ()),
        _ => HandlerInfo::from_event(&e).map(|_| ()),
    }
}

fn assert_malformed(r: Result<(), ProtocolError>, want_tag: &str) {
    match r {
        Err(ProtocolError::MalformedTag { tag, reason }) => {
            assert_eq!(tag, want_tag, "reason: {reason}")
        }
        other => panic!("expected MalformedTag({want_tag}), got {other:?}"),
    }
}

const ID: &str = "a53c938921b8f3e98d9d4339bfe628f80e45f0f9daa48f8685734921d02f4c87";
const PK: &str = "7782f93c5762538e1f7ccc5af83cd8018a528b9cd965048386ca1b75335f24c6";

#[test]
fn malformed_tags_are_rejected() {
    let mut n = 0;
    let mut check = |kind: u16, tags: &[&[&str]], tag: &str| {
        assert_malformed(malformed(kind, tags), tag);
        n += 1;
    };
    // Requests.
    check(5970, &[&["p", "not-a-key"]], "p");
    check(5970, &[&["p"]], "p");
    check(5970, &[&["p", &PK.to_uppercase()]], "p");
    // 64 hex characters that are not an x coordinate on secp256k1.
    check(5970, &[&["p", &"f".repeat(64)]], "p");
    check(5970, &[&["param", "tee"]], "param");
    check(5970, &[&["param", "tee", "sev-snp", "extra"]], "param");
    check(
        5970,
        &[&["param", "tee", "sev-snp"], &["param", "tee", "tdx"]],
        "param",
    );
    check(5970, &[&["i", "data-without-type"]], "i");
    check(5970, &[&["output", "a"], &["output", "b"]], "output");
    check(5970, &[&["relays", "https://relay.example"]], "relays");
    check(
        5970,
        &[&["relays", "wss://ok.example", "not a url"]],
        "relays",
    );
    check(5970, &[&["relays"]], "relays");
    // Results.
    check(6970, &[&["e", "abc"]], "e");
    check(6970, &[&["e", ID], &["e", ID]], "e");
    check(6970, &[&["e", ID], &["p", "zz"]], "p");
    // Feedback.
    check(7000, &[&["e", ID], &["status", "done"]], "status");
    check(
        7000,
        &[&["e", ID], &["status", "success"], &["amount", "lots"]],
        "amount",
    );
    check(7000, &[&["e", ID], &["status"]], "status");
    check(
        7000,
        &[
            &["e", ID],
            &["status", "processing"],
            &["deadline", "run", "soon"],
        ],
        "deadline",
    );
    // Results: a public status is `success` or `error` with a known class.
    check(6970, &[&["e", ID], &["status", "done"]], "status");
    check(6970, &[&["e", ID], &["status", "error"]], "status");
    check(6970, &[&["e", ID], &["status", "error", "oops"]], "status");
    check(
        6970,
        &[&["e", ID], &["status", "success", "extra"]],
        "status",
    );
    // Attestation.
    check(7010, &[&["e", ID], &["p", "00"]], "p");
    for bad in ["0120", "+120", "soon", "-1", ""] {
        check(
            7010,
            &[
                &["e", ID],
                &["p", PK],
                &["tee", "sev-snp"],
                &["deadline", "input", bad],
            ],
            "deadline",
        );
    }
    check(
        7010,
        &[
            &["e", ID],
            &["p", PK],
            &["tee", "sev-snp"],
            &["deadline", "input", "1"],
            &["deadline", "input", "2"],
        ],
        "deadline",
    );
    // Handler.
    check(31990, &[&["d", "x"], &["k", "five"]], "k");
    assert_eq!(n, 31);
}

#[test]
fn missing_tags_are_rejected() {
    assert!(matches!(
        malformed(6970, &[&["p", PK]]),
        Err(ProtocolError::MissingTag { tag: "e" })
    ));
    assert!(matches!(
        malformed(7000, &[&["e", ID]]),
        Err(ProtocolError::MissingTag { tag: "status" })
    ));
    assert!(matches!(
        malformed(7010, &[&["p", PK]]),
        Err(ProtocolError::MissingTag { tag: "e" })
    ));
}

#[test]
fn result_round_trip() {
    let (_, req) = request_event();
    let payload = ResultPayload::ok(&req.id, "text/csv", "n\n42\n".into());
    let content = encrypt_result(&guest(), &req.author, &payload).expect("encrypt");
    let e = sign(
        JobResult::build(&req, content.clone(), PublicOutcome::Success),
        &guest(),
    );
    assert_eq!(e.kind.as_u16(), 6970);
    let r = JobResult::from_event(&e).expect("parse");
    assert_eq!(r.author, guest().public_key());
    assert_eq!(r.request_id, req.id);
    assert_eq!(r.user, Some(user().public_key()));
    assert!(r.encrypted);
    assert_eq!(r.content, content);
    assert!(e
        .tags
        .iter()
        .any(|t| t.as_slice() == ["alt", "ConfidentialDVM encrypted job result"]));
    assert!(e
        .tags
        .iter()
        .all(|t| t.as_slice()[0] != "i" && t.as_slice()[0] != "request"));

    let back = decrypt_result(&user(), &r.author, &r.content).expect("decrypt");
    assert_eq!(back, payload);
    match back.outcome {
        Outcome::Ok { output_sha256, .. } => {
            assert_eq!(output_sha256, hex::encode(sha2::Sha256::digest(b"n\n42\n")))
        }
        other => panic!("ok expected, got {other:?}"),
    }
}

#[test]
fn result_decrypt_fails_for_wrong_keys_and_bad_hash() {
    let id = EventId::from_hex(ID).expect("id");
    let payload = ResultPayload::error(&id, "query failed: no such table".into());
    let content = encrypt_result(&guest(), &user().public_key(), &payload).expect("encrypt");
    assert_eq!(
        decrypt_result(&user(), &guest().public_key(), &content).expect("ok"),
        payload
    );
    assert!(matches!(
        decrypt_result(&other(), &guest().public_key(), &content),
        Err(ProtocolError::Nip44 { .. })
    ));
    assert!(matches!(
        decrypt_result(&user(), &other().public_key(), &content),
        Err(ProtocolError::Nip44 { .. })
    ));

    // A payload whose hash does not match its output, encrypted by hand.
    let bad = format!(
        r#"{{"v":1,"request_id":"{ID}","outcome":{{"status":"ok","media_type":"text/plain","output":"42","output_sha256":"{}"}}}}"#,
        "0".repeat(64)
    );
    let ct = cdvm_protocol::nostr::nips::nip44::encrypt(
        guest().secret_key(),
        &user().public_key(),
        bad,
        cdvm_protocol::nostr::nips::nip44::Version::V2,
    )
    .expect("nip44");
    assert!(matches!(
        decrypt_result(&user(), &guest().public_key(), &ct),
        Err(ProtocolError::ResultHashMismatch { .. })
    ));

    // Unknown fields are refused, at the top and inside the outcome.
    for extra in [
        format!(
            r#"{{"v":1,"request_id":"{ID}","outcome":{{"status":"error","message":"m"}},"x":1}}"#
        ),
        format!(
            r#"{{"v":1,"request_id":"{ID}","outcome":{{"status":"error","message":"m","x":1}}}}"#
        ),
        format!(r#"{{"v":2,"request_id":"{ID}","outcome":{{"status":"error","message":"m"}}}}"#),
    ] {
        let ct = cdvm_protocol::nostr::nips::nip44::encrypt(
            guest().secret_key(),
            &user().public_key(),
            extra,
            cdvm_protocol::nostr::nips::nip44::Version::V2,
        )
        .expect("nip44");
        assert!(matches!(
            decrypt_result(&user(), &guest().public_key(), &ct),
            Err(ProtocolError::Json { .. } | ProtocolError::UnsupportedVersion { .. })
        ));
    }
}

#[test]
fn result_payload_json_shape_and_size_limit() {
    let id = EventId::from_hex(ID).expect("id");
    let p = ResultPayload::ok(&id, "text/plain", "hello".into());
    let v: serde_json::Value = serde_json::to_value(&p).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"v":1,"request_id":ID,"outcome":{"status":"ok","media_type":"text/plain",
            "output":"hello",
            "output_sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}})
    );
    let mut forged = p.clone();
    if let Outcome::Ok { output, .. } = &mut forged.outcome {
        *output = "hullo".into();
    }
    assert!(matches!(
        encrypt_result(&guest(), &user().public_key(), &forged),
        Err(ProtocolError::ResultHashMismatch { .. })
    ));
    let big = ResultPayload::ok(&id, "text/plain", "x".repeat(MAX_RESULT_PLAINTEXT));
    assert!(matches!(
        encrypt_result(&guest(), &user().public_key(), &big),
        Err(ProtocolError::ResultTooLarge { .. })
    ));
}

#[test]
fn feedback_round_trip() {
    let id = EventId::from_hex(ID).expect("id");
    for (status, wire) in [
        (FeedbackStatus::PaymentRequired, "payment-required"),
        (FeedbackStatus::Processing, "processing"),
        (FeedbackStatus::Error, "error"),
        (FeedbackStatus::Success, "success"),
        (FeedbackStatus::Partial, "partial"),
    ] {
        assert_eq!(status.as_str(), wire);
        let e = sign(
            JobFeedback::build(id, user().public_key(), status, Some("running")),
            &guest(),
        );
        assert_eq!(
            e.tags.first().expect("status").as_slice(),
            ["status", wire, "running"]
        );
        let f = JobFeedback::from_event(&e).expect("parse");
        assert_eq!(f.status, Some(status));
        assert_eq!(f.extra_info.as_deref(), Some("running"));
        assert_eq!(f.request_id, id);
        assert_eq!(f.user, Some(user().public_key()));
        assert_eq!(f.author, guest().public_key());
        assert_eq!(f.amount, None);
    }
    let e = sign(
        JobFeedback::build(id, user().public_key(), FeedbackStatus::Success, None),
        &dvm(),
    );
    assert_eq!(
        e.tags.first().expect("status").as_slice(),
        ["status", "success"]
    );
    assert_eq!(JobFeedback::from_event(&e).expect("parse").extra_info, None);
}

fn handler() -> HandlerInfo {
    HandlerInfo {
        name: "ConfidentialDVM".into(),
        about: "SQL and text statistics inside a fresh SEV-SNP VM".into(),
        kinds: vec![kinds::SQL, kinds::TEXT_STATS],
        tees: vec![TeeKind::SevSnp],
        image: "cdvm-guest-0.1.0".into(),
        measurements: vec![MEASUREMENT_HEX.into()],
        simulated: true,
        blossom: vec!["https://blossom.example".into()],
        max_input_bytes: [(kinds::SQL, 100 << 20)].into_iter().collect(),
        models: Vec::new(),
    }
}

#[test]
fn handler_round_trip() {
    let h = handler();
    let e = sign(h.build("cdvm-main").expect("build"), &dvm());
    assert_eq!(e.kind.as_u16(), 31990);
    let tags: Vec<Vec<String>> = e.tags.iter().map(|t| t.as_slice().to_vec()).collect();
    assert_eq!(
        tags,
        [vec!["d", "cdvm-main"], vec!["k", "5970"], vec!["k", "5971"]]
    );
    assert_eq!(HandlerInfo::from_event(&e).expect("parse"), h);

    let mut bad = handler();
    bad.measurements = vec!["abcd".into()];
    assert!(matches!(
        bad.build("x"),
        Err(ProtocolError::InvalidField { .. })
    ));
    let mut bad = handler();
    bad.kinds = vec![7000];
    assert!(matches!(
        bad.build("x"),
        Err(ProtocolError::WrongKind { .. })
    ));
    // Someone else's NIP-89 handler (no cdvm object) is not ours.
    let foreign = sign(
        EventBuilder::new(Kind::from(31990), r#"{"name":"x","about":"y"}"#)
            .tags([raw_tag(&["d", "x"]), raw_tag(&["k", "5050"])]),
        &dvm(),
    );
    assert!(matches!(
        HandlerInfo::from_event(&foreign),
        Err(ProtocolError::Json { .. })
    ));
}

fn attestation_payload(req: &EventId, guest_keys: &Keys) -> AttestationPayload {
    let rd = report_data(req, &guest_keys.public_key());
    AttestationPayload {
        v: 1,
        request_id: req.to_hex(),
        evidence: fake_snp_evidence(rd.as_bytes(), &measurement()),
        image: ImageIdentity {
            name: "cdvm-guest-0.1.0".into(),
            measurement: MEASUREMENT_HEX.into(),
        },
    }
}

#[test]
fn attestation_round_trip() {
    let (_, req) = request_event();
    let p = attestation_payload(&req.id, &guest());
    let e = sign(
        AttestationEvent::build(req.id, req.author, &p, deadline()).expect("build"),
        &guest(),
    );
    assert_eq!(e.kind.as_u16(), kinds::ATTESTATION);
    let tags: Vec<Vec<String>> = e.tags.iter().map(|t| t.as_slice().to_vec()).collect();
    assert_eq!(tags[0], ["e", &req.id.to_hex()]);
    assert_eq!(tags[1], ["p", &req.author.to_hex()]);
    assert_eq!(tags[2], ["tee", "sev-snp"]);
    assert_eq!(tags[3], ["deadline", "input", "1795737815"]);
    let a = AttestationEvent::from_event(&e).expect("parse");
    assert_eq!(a.input_deadline, deadline());
    assert_eq!(a.guest, guest().public_key());
    assert_eq!(a.request_id, req.id);
    assert_eq!(a.user, user().public_key());
    assert_eq!(a.payload, p);
    assert_eq!(a.event_id, e.id);

    // Evidence JSON shape: {"tee":"sev-snp","report":b64,"chain":{"vcek","ask","ark"}}.
    let v: serde_json::Value = serde_json::from_str(&e.content).expect("json");
    assert_eq!(v["evidence"]["tee"], "sev-snp");
    assert!(v["evidence"]["report"].is_string());
    for k in ["vcek", "ask", "ark"] {
        assert!(v["evidence"]["chain"][k].is_string(), "{k}");
    }
    assert_eq!(v["v"], 1);
}

#[test]
fn attestation_rejects_mismatches() {
    let (_, req) = request_event();
    let other_id = EventId::from_hex(ID).expect("id");
    let p = attestation_payload(&req.id, &guest());
    // The builder refuses a payload naming another request.
    assert!(matches!(
        AttestationEvent::build(other_id, req.author, &p, deadline()),
        Err(ProtocolError::RequestMismatch { .. })
    ));
    // A hand-made event whose e tag and payload disagree.
    let json = serde_json::to_string(&p).expect("json");
    let e = sign(
        EventBuilder::new(Kind::from(kinds::ATTESTATION), json.clone()).tags([
            raw_tag(&["e", ID]),
            raw_tag(&["p", PK]),
            raw_tag(&["tee", "sev-snp"]),
            raw_tag(&["deadline", "input", "1795737815"]),
        ]),
        &guest(),
    );
    assert!(matches!(
        AttestationEvent::from_event(&e),
        Err(ProtocolError::RequestMismatch { .. })
    ));
    // tee tag disagrees with the evidence.
    let e = sign(
        EventBuilder::new(Kind::from(kinds::ATTESTATION), json).tags([
            raw_tag(&["e", &req.id.to_hex()]),
            raw_tag(&["p", PK]),
            raw_tag(&["tee", "tdx"]),
            raw_tag(&["deadline", "input", "1795737815"]),
        ]),
        &guest(),
    );
    assert_malformed(AttestationEvent::from_event(&e).map(|_| ()), "tee");
    // Unknown payload field.
    let mut v = serde_json::to_value(&p).expect("json");
    v["extra"] = serde_json::json!(true);
    let e = sign(
        EventBuilder::new(Kind::from(kinds::ATTESTATION), v.to_string()).tags([
            raw_tag(&["e", &req.id.to_hex()]),
            raw_tag(&["p", PK]),
            raw_tag(&["tee", "sev-snp"]),
            raw_tag(&["deadline", "input", "1795737815"]),
        ]),
        &guest(),
    );
    assert!(matches!(
        AttestationEvent::from_event(&e),
        Err(ProtocolError::Json { .. })
    ));
    // Bad measurement.
    let mut bad = p.clone();
    bad.image.measurement = "zz".into();
    assert!(matches!(
        AttestationEvent::build(req.id, req.author, &bad, deadline()),
        Err(ProtocolError::InvalidField {
            field: "image.measurement",
            ..
        })
    ));
}

/// Known answer: computed independently from the literal byte concatenation
/// `"cdvm/v1" ‖ id ‖ pubkey` (and cross-checked with Python's hashlib, value below).
#[test]
fn report_data_known_answer() {
    let id_hex = ID;
    let pk_hex = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"; // secp256k1 G
    let id = EventId::from_hex(id_hex).expect("id");
    let pk = cdvm_protocol::nostr::PublicKey::from_hex(pk_hex).expect("pk");

    let mut bytes = b"cdvm/v1".to_vec();
    bytes.extend(hex::decode(id_hex).expect("hex"));
    bytes.extend(hex::decode(pk_hex).expect("hex"));
    assert_eq!(bytes.len(), 7 + 32 + 32);
    let expected: [u8; 64] = Sha512::digest(&bytes).into();

    let rd = report_data(&id, &pk);
    assert_eq!(rd.0, expected);
    assert_eq!(rd.to_string(), REPORT_DATA_KAT);
    assert_eq!(PROTOCOL_VERSION, "cdvm/v1");

    // Any change in either input changes the binding.
    let other_id = EventId::from_hex(&format!("{}0", &id_hex[..63])).expect("id");
    assert_ne!(report_data(&other_id, &pk), rd);
    assert_ne!(report_data(&id, &guest().public_key()), rd);
    // Order matters: swapping id and key bytes is a different value.
    let swapped_id = EventId::from_hex(pk_hex).expect("id");
    let swapped_pk = cdvm_protocol::nostr::PublicKey::from_hex(id_hex).expect("pk");
    assert_ne!(report_data(&swapped_id, &swapped_pk), rd);
}

/// python3 -c 'import hashlib;print(hashlib.sha512(b"cdvm/v1"+bytes.fromhex(ID)+bytes.fromhex(G)).hexdigest())'
/// with ID = a53c9389… (above) and G = 79be667e… (the secp256k1 generator's x coordinate).
const REPORT_DATA_KAT: &str =
    "f41b6576f1f96753d2d1ef6f166e8e768813aa26ddec4880f56bc4e74ff2ead634ca1ec9e3d60bb150db32046c703329b5c4eab558e79cba87fe505344902eab";
