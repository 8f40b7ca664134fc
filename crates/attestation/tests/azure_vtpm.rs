//! Azure vTPM evidence (HCL report + TPM2 quote): trustee's real fixtures verify, and each
//! tampered twin fails with its own error.
//!
//! trustee's fixtures are not bound our way: their `user-data` and quote extraData are trustee's
//! nonces, so these tests pass exactly those through `verify_with_nonce`. Through the client
//! path (`AnyVerifier`) our binding applies and they are refused (last test).
#![cfg(feature = "azure")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use cdvm_attestation::azure::{
    trustee, verify_with_nonce, AzureError, AzureSnpEvidence, AzureVtpmPolicy, HclReport,
    QuoteAttest, HCL_HEADER_LEN, HW_REPORT_LEN,
};
use cdvm_attestation::policy::{Policy, TrustedRoot};
use cdvm_attestation::snp::AttestationReport;
use cdvm_attestation::{AnyVerifier, Claims, Evidence, ReportData, TeeKind, Verifier, VerifyError};
use common::*;

struct Case {
    file: &'static str,
    genoa: bool,
    /// The quote's extraData as trustee's test put it (48 bytes).
    nonce: &'static str,
}

const V2: Case = Case {
    file: "trustee_az_snp_vtpm/evidence-v2.json",
    genoa: false,
    nonce: "982f5c6e45df0ed3f10b6f60b02f0c8390e281300f3805e2279c16168cd6ae9aa398f647caa2338748cd0fd9f5f819ef",
};
const GENOA: Case = Case {
    file: "trustee_az_snp_vtpm/evidence-genoa.json",
    genoa: true,
    nonce: "0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f",
};

impl Case {
    fn evidence(&self) -> AzureSnpEvidence {
        let (ask, ark) = if self.genoa {
            (GENOA_ASK, GENOA_ARK)
        } else {
            (MILAN_ASK, MILAN_ARK)
        };
        trustee::snp_evidence(
            &fixture(self.file),
            cert_der(ask.0, ask.1),
            cert_der(ark.0, ark.1),
        )
        .unwrap()
    }

    fn root(&self) -> TrustedRoot {
        if self.genoa {
            TrustedRoot::AmdGenoa
        } else {
            TrustedRoot::AmdMilan
        }
    }
}

fn hw_report(ev: &AzureSnpEvidence) -> AttestationReport {
    AttestationReport::parse(HclReport::parse(&ev.hcl_report).unwrap().hw_report).unwrap()
}

/// The user-data the fixture's runtime data carries (trustee's, not our binding).
fn user_data(ev: &AzureSnpEvidence) -> ReportData {
    let hcl = HclReport::parse(&ev.hcl_report).unwrap();
    cdvm_attestation::azure::RuntimeClaims::parse(hcl.runtime_data)
        .unwrap()
        .user_data
}

fn policy(case: &Case, ev: &AzureSnpEvidence) -> Policy {
    Policy {
        name: "azure-test".into(),
        azure_vtpm: Some(AzureVtpmPolicy::default()),
        models: Vec::new(),
        ..policy_allowing(&hw_report(ev).measurement.to_string(), vec![case.root()])
    }
}

fn run(case: &Case, ev: &AzureSnpEvidence, p: &Policy) -> Result<Claims, VerifyError> {
    let nonce = hex::decode(case.nonce).unwrap();
    verify_with_nonce(ev, &user_data(&case.evidence()), &nonce, p, at(T2026))
}

fn ok(case: &Case) -> Claims {
    let ev = case.evidence();
    run(case, &ev, &policy(case, &ev)).unwrap_or_else(|e| panic!("{}: {e}", case.file))
}

fn fails(case: &Case, edit: impl Fn(&mut AzureSnpEvidence)) -> VerifyError {
    let mut ev = case.evidence();
    let p = policy(case, &ev);
    edit(&mut ev);
    run(case, &ev, &p).expect_err("tampered evidence verified")
}

const CASES: [&Case; 2] = [&V2, &GENOA];

#[test]
fn trustee_milan_and_genoa_fixtures_verify_with_their_own_nonces() {
    for case in CASES {
        let claims = ok(case);
        let names: Vec<&str> = claims.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "tee",
                "report",
                "root",
                "chain",
                "validity",
                "signature",
                "vcek-binding",
                "runtime-data",
                "measurement",
                "debug",
                "migration-agent",
                "vmpl",
                "tcb",
                "report-data",
                "tpm-quote",
                "tpm-nonce",
                "pcr-digest",
                "pcr-policy"
            ],
            "{}",
            case.file
        );
        assert_eq!(claims.tee, TeeKind::SevSnp);
        assert!(!claims.simulated);
    }
}

#[test]
fn changed_runtime_data_is_not_bound() {
    for case in CASES {
        let err = fails(case, |ev| {
            // A byte inside the runtime JSON (its `vmUniqueId`, near the end).
            let hcl = HclReport::parse(&ev.hcl_report).unwrap();
            let at = HCL_HEADER_LEN + HW_REPORT_LEN + 20 + hcl.runtime_data.len() - 140;
            ev.hcl_report[at] ^= 1;
        });
        assert!(
            matches!(
                err,
                VerifyError::Azure(AzureError::RuntimeDataNotBound { .. })
            ),
            "{err}"
        );
        assert_eq!(err.check(), "runtime-data");
    }
}

#[test]
fn flipped_quote_signature_is_refused() {
    for case in CASES {
        let err = fails(case, |ev| ev.tpm_quote.signature[10] ^= 1);
        assert_eq!(err, VerifyError::Azure(AzureError::QuoteSignatureInvalid));
    }
}

#[test]
fn changed_pcr_value_breaks_the_quoted_digest() {
    for case in CASES {
        let err = fails(case, |ev| ev.tpm_quote.pcrs[7].0[0] ^= 1);
        assert!(
            matches!(
                err,
                VerifyError::Azure(AzureError::PcrDigestMismatch { .. })
            ),
            "{err}"
        );
    }
}

#[test]
fn wrong_nonce_is_refused() {
    for case in CASES {
        let ev = case.evidence();
        let err = verify_with_nonce(
            &ev,
            &user_data(&ev),
            &[7; 48],
            &policy(case, &ev),
            at(T2026),
        )
        .unwrap_err();
        assert!(
            matches!(err, VerifyError::Azure(AzureError::NonceMismatch { .. })),
            "{err}"
        );
        assert_eq!(err.check(), "tpm-nonce");
    }
}

#[test]
fn flipped_hardware_report_byte_breaks_the_snp_signature() {
    for case in CASES {
        // MEASUREMENT's first byte (report offset 0x90), inside the signed part.
        let err = fails(case, |ev| ev.hcl_report[HCL_HEADER_LEN + 0x90] ^= 1);
        assert_eq!(err, VerifyError::SignatureInvalid);
    }
}

#[test]
fn wrong_user_data_is_a_report_data_mismatch() {
    for case in CASES {
        let ev = case.evidence();
        let nonce = hex::decode(case.nonce).unwrap();
        let err = verify_with_nonce(
            &ev,
            &ReportData([0x42; 64]),
            &nonce,
            &policy(case, &ev),
            at(T2026),
        )
        .unwrap_err();
        assert!(
            matches!(err, VerifyError::ReportDataMismatch { .. }),
            "{err}"
        );
    }
}

#[test]
fn a_policy_without_azure_vtpm_refuses_the_paravisor() {
    let ev = V2.evidence();
    let mut p = policy(&V2, &ev);
    p.azure_vtpm = None;
    let err = run(&V2, &ev, &p).unwrap_err();
    assert!(
        matches!(err, VerifyError::Azure(AzureError::NotAccepted { .. })),
        "{err}"
    );
}

#[test]
fn a_tdx_policy_is_a_tee_mismatch() {
    let ev = V2.evidence();
    let mut p = policy(&V2, &ev);
    p.tee = TeeKind::Tdx;
    let err = run(&V2, &ev, &p).unwrap_err();
    assert!(matches!(err, VerifyError::TeeMismatch { .. }), "{err}");
}

#[test]
fn pcr_policy_allows_listed_values_and_refuses_others() {
    let ev = V2.evidence();
    let mut p = policy(&V2, &ev);
    let pcr7 = hex::encode(ev.tpm_quote.pcrs[7].0);
    p.azure_vtpm = Some(AzureVtpmPolicy {
        pcrs: BTreeMap::from([(7, vec!["00".repeat(32), pcr7.to_uppercase()])]),
    });
    run(&V2, &ev, &p).unwrap();
    p.azure_vtpm = Some(AzureVtpmPolicy {
        pcrs: BTreeMap::from([(4, vec!["00".repeat(32)])]),
    });
    let err = run(&V2, &ev, &p).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Azure(AzureError::PcrNotAllowed { index: 4, .. })
        ),
        "{err}"
    );
}

#[test]
fn pcr_policy_is_validated_when_loaded() {
    let yaml = |pcrs: &str| {
        format!("name: p\ntee: sev-snp\nroots: [amd-milan]\nazure_vtpm:\n  pcrs:\n{pcrs}")
    };
    let good = format!("    7: [\"{}\"]\n", "ab".repeat(32));
    let p = Policy::from_yaml(&yaml(&good)).unwrap();
    assert_eq!(p.azure_vtpm.unwrap().pcrs[&7].len(), 1);
    assert!(Policy::from_yaml(&yaml("    7: [\"abc\"]\n")).is_err());
    assert!(Policy::from_yaml(&yaml(&format!("    24: [\"{}\"]\n", "ab".repeat(32)))).is_err());
}

#[test]
fn evidence_json_round_trips_and_is_strict() {
    let ev = Evidence::AzureSevSnpVtpm(V2.evidence());
    let json = serde_json::to_value(&ev).unwrap();
    assert_eq!(json["tee"], "azure-sev-snp-vtpm");
    let back: Evidence = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, ev);
    assert_eq!(
        ev.claimed_measurement(),
        Some(hw_report(&V2.evidence()).measurement)
    );
    let mut extra = json;
    extra["tpm_quote"]["extra"] = 1.into();
    assert!(serde_json::from_value::<Evidence>(extra).is_err());
}

#[test]
fn any_verifier_applies_our_binding_so_trustee_nonces_are_refused() {
    // Our binding: extraData = SHA-256(report data). trustee's quote carries its own nonce.
    let ev = V2.evidence();
    let p = policy(&V2, &ev);
    let err = AnyVerifier
        .verify(
            &Evidence::AzureSevSnpVtpm(ev.clone()),
            &user_data(&ev),
            &p,
            at(T2026),
        )
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Azure(AzureError::NonceMismatch { .. })),
        "{err}"
    );
}

#[test]
fn truncated_or_garbled_structures_are_refused_without_panics() {
    let ev = GENOA.evidence();
    for n in 0..ev.hcl_report.len() {
        let _ = HclReport::parse(&ev.hcl_report[..n]);
    }
    let msg = &ev.tpm_quote.message;
    for n in 0..msg.len() {
        assert!(QuoteAttest::parse(&msg[..n]).is_err(), "{n}");
    }
    let mut bad = msg.clone();
    bad[0] = 0;
    assert!(QuoteAttest::parse(&bad).is_err());
    let q = QuoteAttest::parse(msg).unwrap();
    assert_eq!(q.pcr_select[0].pcrs, (0..24).collect::<Vec<u32>>());
    let mut hcl = ev.hcl_report.clone();
    hcl[0] = b'X';
    assert!(matches!(
        HclReport::parse(&hcl),
        Err(AzureError::MalformedHcl(_))
    ));
}
