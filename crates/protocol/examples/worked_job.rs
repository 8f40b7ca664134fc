//! Prints every event of one whole ConfidentialDVM job, as pasted into docs/protocol.md
//! ("Worked example"): `cargo run -p cdvm-protocol --example worked_job`.
//!
//! Keys are fixed test keys; timestamps are fixed except where NIP-59 randomises them; NIP-44
//! nonces are random, so ciphertexts differ on each run. The attestation evidence is a fake SNP
//! report (right size and offsets, placeholder chain): it shows the shape, not a verifiable quote.

use std::error::Error;

use cdvm_protocol::nostr::nips::nip44;
use cdvm_protocol::nostr::{Event, EventBuilder, JsonUtil, Keys, Timestamp};
use cdvm_protocol::{
    decrypt_result, encrypt_result, kinds, report_data, unwrap_input, wrap_input, AttestationEvent,
    AttestationPayload, ConfidentialInput, ErrorClass, FeedbackStatus, HandlerInfo, ImageIdentity,
    InputBody, JobFeedback, JobRequest, JobRequestBuilder, JobResult, PublicOutcome, ResultPayload,
};

use cdvm_attestation::{Evidence, SnpCertChain, SnpEvidence, TeeKind};

const T0: u64 = 1_795_737_600; // 2026-11-27T00:00:00Z
const MEASUREMENT: &str = "3f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

fn sign(b: EventBuilder, keys: &Keys, at: u64) -> Result<Event, Box<dyn Error>> {
    Ok(b.custom_created_at(Timestamp::from(T0 + at))
        .sign_with_keys(keys)?)
}

/// An event's fields in NIP-01 order (serde_json's `Value` would sort them).
#[derive(serde::Serialize, serde::Deserialize)]
struct Nip01 {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    pubkey: String,
    created_at: u64,
    kind: u16,
    tags: Vec<Vec<String>>,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<String>,
}

/// Mirror of the announcement content, only to print it in wire order.
#[derive(serde::Serialize, serde::Deserialize)]
struct HandlerContent {
    name: String,
    about: String,
    cdvm: HandlerCdvm,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HandlerCdvm {
    v: u32,
    protocol: String,
    tees: Vec<String>,
    image: String,
    measurements: Vec<String>,
    simulated: bool,
}

/// With `--abbrev`, strings over 160 characters are cut to 120 plus `…` (for the docs).
fn abbrev(v: &str) -> String {
    let long = std::env::args().any(|a| a == "--abbrev") && v.chars().count() > 160;
    if long {
        format!("{}…", v.chars().take(120).collect::<String>())
    } else {
        v.to_owned()
    }
}

fn js(v: &str) -> Result<String, Box<dyn Error>> {
    Ok(serde_json::to_string(&abbrev(v))?)
}

/// Prints an event (or rumor) in NIP-01 field order, one tag per line.
fn show(title: &str, json: &str) -> Result<(), Box<dyn Error>> {
    let e: Nip01 = serde_json::from_str(json)?;
    let mut out = String::from("{\n");
    if let Some(id) = &e.id {
        out += &format!("  \"id\": {},\n", js(id)?);
    }
    out += &format!("  \"pubkey\": {},\n", js(&e.pubkey)?);
    out += &format!("  \"created_at\": {},\n", e.created_at);
    out += &format!("  \"kind\": {},\n", e.kind);
    let tags: Vec<String> = e
        .tags
        .iter()
        .map(|t| {
            let parts: Result<Vec<String>, _> = t.iter().map(|p| js(p)).collect();
            parts.map(|p| format!("    [{}]", p.join(", ")))
        })
        .collect::<Result<_, _>>()?;
    if tags.is_empty() {
        out += "  \"tags\": [],\n";
    } else {
        out += &format!("  \"tags\": [\n{}\n  ],\n", tags.join(",\n"));
    }
    out += &format!("  \"content\": {}", js(&e.content)?);
    if let Some(sig) = &e.sig {
        out += &format!(",\n  \"sig\": {}", js(sig)?);
    }
    println!("#### {title}\n```json\n{out}\n}}\n```\n");
    Ok(())
}

/// Prints a typed payload, pretty, in its declared field order (long strings abbreviated as in
/// [`abbrev`]; each field sits on its own line, so this works line by line).
fn show_payload<T: serde::Serialize>(title: &str, v: &T) -> Result<(), Box<dyn Error>> {
    let text = serde_json::to_string_pretty(v)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let cut = line.find(": \"").map(|i| i + 2);
        match cut {
            Some(i) if line.len() > 200 => {
                let (key, rest) = line.split_at(i);
                let comma = if rest.ends_with(',') { "," } else { "" };
                let value: String = serde_json::from_str(rest.trim_end_matches(','))?;
                out.push(format!("{key}{}{comma}", js(&value)?));
            }
            _ => out.push(line.to_owned()),
        }
    }
    println!("#### {title}\n```json\n{}\n```\n", out.join("\n"));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let user = Keys::parse("7f7ff03d123792d6ac594bfa67bf6d0c0ab55b6b1fdb6249303fe861f1ccba9a")?;
    let dvm = Keys::parse("3ee3e5d2b5fdd52e9d1ac3e7c0d3dd7be4a27ae8bd4a4fc0b4d6ff3da5bd1e13")?;
    // In a real job G is generated inside the VM; fixed here so the example is reproducible.
    let guest = Keys::parse("1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100")?;
    println!("```text");
    println!("user  U = {}", user.public_key());
    println!("dvm   O = {}", dvm.public_key());
    println!("guest G = {}", guest.public_key());
    println!("```\n");

    // 1. Announce.
    let handler = HandlerInfo {
        name: "ConfidentialDVM".into(),
        about: "SQL and text statistics inside a fresh SEV-SNP VM".into(),
        kinds: vec![kinds::SQL, kinds::TEXT_STATS],
        tees: vec![TeeKind::SevSnp],
        image: cdvm_protocol::image::GUEST_IMAGE.into(),
        measurements: vec![MEASUREMENT.into()],
        simulated: false,
        blossom: vec![],
        max_input_bytes: Default::default(),
        models: Vec::new(),
    };
    let ann = sign(handler.build("cdvm")?, &dvm, 0)?;
    show(
        "1. NIP-89 announcement (kind 31990, signed by O)",
        &ann.as_json(),
    )?;
    let content: HandlerContent = serde_json::from_str(&ann.content)?;
    show_payload("1b. … its content", &content)?;

    // 2. Request.
    let req_ev = sign(
        JobRequestBuilder::new(kinds::SQL, dvm.public_key(), TeeKind::SevSnp)
            .relays(vec!["wss://relay.example.com".into()])
            .policy("snp-milan-prod")
            .build()?,
        &user,
        60,
    )?;
    show("2. Job request (kind 5970, signed by U)", &req_ev.as_json())?;
    let req = JobRequest::from_event(&req_ev)?;

    // 3. Orchestrator accepts.
    let fb = sign(
        JobFeedback::build(
            req.id,
            req.author,
            FeedbackStatus::Processing,
            Some("launching"),
        ),
        &dvm,
        61,
    )?;
    show(
        "3. Feedback `processing` (kind 7000, signed by O)",
        &fb.as_json(),
    )?;

    // 4. Attestation by the guest.
    let rd = report_data(&req.id, &guest.public_key());
    let mut report = vec![0u8; 1184];
    report[0] = 2;
    report[0x50..0x90].copy_from_slice(rd.as_bytes());
    hex::decode_to_slice(MEASUREMENT, &mut report[0x90..0xC0])?;
    let evidence = Evidence::SevSnp(SnpEvidence {
        report,
        chain: Some(SnpCertChain {
            vcek: b"<VCEK DER>".to_vec(),
            ask: b"<ASK DER>".to_vec(),
            ark: b"<ARK DER>".to_vec(),
        }),
        gpus: Vec::new(),
        cloud_vtpm: None,
    });
    let payload = AttestationPayload {
        v: 1,
        request_id: req.id.to_hex(),
        evidence,
        image: ImageIdentity {
            name: cdvm_protocol::image::GUEST_IMAGE.into(),
            measurement: MEASUREMENT.into(),
        },
    };
    let att = sign(
        // The guest announces its input deadline: 120 s (the default) from now.
        AttestationEvent::build(req.id, req.author, &payload, Timestamp::from(T0 + 95 + 120))?,
        &guest,
        95,
    )?;
    show("4. Attestation (kind 7010, signed by G)", &att.as_json())?;
    show_payload("4b. … its content (AttestationPayload)", &payload)?;

    // 5. Client side: the binding it recomputes.
    let parsed = AttestationEvent::from_event(&att)?;
    println!(
        "#### 5. Client recomputes REPORT_DATA\n```text\nSHA-512(\"cdvm/v1\" || {} || {})\n= {}\n```\n",
        parsed.request_id,
        parsed.guest,
        report_data(&parsed.request_id, &parsed.guest)
    );

    // 6. Input, gift-wrapped to G.
    let input = ConfidentialInput {
        v: 1,
        request_id: req.id.to_hex(),
        body: InputBody::Sql {
            table_csv: "name,salary\nalice,100\nbob,200\n".into(),
            query: "SELECT count(*) AS n, avg(salary) AS mean FROM input".into(),
        },
        blossom: vec![],
    };
    let wrap = wrap_input(&user, &guest.public_key(), &input).await?;
    show(
        "6a. Gift wrap (kind 1059, signed by a one-time key)",
        &wrap.as_json(),
    )?;
    // What G sees after the two NIP-44 layers (shown for illustration only).
    let seal = nip44::decrypt(guest.secret_key(), &wrap.pubkey, &wrap.content)?;
    show("6b. … decrypted: the seal (kind 13, signed by U)", &seal)?;
    let seal_ev = Event::from_json(&seal)?;
    let rumor = nip44::decrypt(guest.secret_key(), &seal_ev.pubkey, &seal_ev.content)?;
    show(
        "6c. … decrypted: the rumor (kind 7011, unsigned, author U)",
        &rumor,
    )?;
    show_payload("6d. … the rumor's content (ConfidentialInput)", &input)?;
    let (sender, got) = unwrap_input(&guest, &wrap).await?;
    assert_eq!(sender, req.author);
    assert_eq!(got, input);

    // 7. Agent says it runs.
    let fb = sign(
        // The guest announces its run deadline: 300 s (the default) from now.
        JobFeedback::running(req.id, req.author, Timestamp::from(T0 + 130 + 300)),
        &guest,
        130,
    )?;
    show(
        "7. Feedback `processing` (kind 7000, signed by G)",
        &fb.as_json(),
    )?;

    // 8. Result.
    let out = ResultPayload::ok(&req.id, "text/csv", "n,mean\n2,150\n".into());
    let content = encrypt_result(&guest, &req.author, &out)?;
    let res = sign(
        JobResult::build(&req, content, PublicOutcome::Success),
        &guest,
        131,
    )?;
    show("8a. Job result (kind 6970, signed by G)", &res.as_json())?;
    let parsed = JobResult::from_event(&res)?;
    let dec = decrypt_result(&user, &parsed.author, &parsed.content)?;
    show_payload("8b. … its content decrypted by U (ResultPayload)", &dec)?;
    // The executor's own words for the same query with `salary` misspelt (checked by the
    // agent's `worked_example_in_protocol_md_is_a_real_run` test).
    let err = ResultPayload::error(&req.id, "query: no such column: salry in SELECT count(*) AS n, avg(salry) AS mean FROM input at offset 26".into());
    show_payload("8c. (an error outcome instead, encrypted as 8a)", &err)?;
    let res_err = sign(
        JobResult::build(
            &req,
            encrypt_result(&guest, &req.author, &err)?,
            PublicOutcome::Error(ErrorClass::JobFailed),
        ),
        &guest,
        131,
    )?;
    show(
        "8d. … whose result event says only the class in public",
        &res_err.as_json(),
    )?;

    // 9. Orchestrator closes.
    let fb = sign(
        JobFeedback::build(
            req.id,
            req.author,
            FeedbackStatus::Success,
            Some("result delivered to the user; VM destroyed"),
        ),
        &dvm,
        140,
    )?;
    show(
        "9a. Feedback `success` (kind 7000, signed by O)",
        &fb.as_json(),
    )?;
    let fb = sign(
        JobFeedback::build(
            req.id,
            req.author,
            FeedbackStatus::Error,
            Some("the job failed in the guest (job-failed); VM destroyed"),
        ),
        &dvm,
        141,
    )?;
    show(
        "9b. (or, after 8d) Feedback `error` (kind 7000, signed by O)",
        &fb.as_json(),
    )?;

    Ok(())
}
