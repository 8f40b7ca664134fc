//! Azure TDX vTPM evidence (HCL report with a TD report, the TD quote IMDS made of it, and a
//! vTPM quote): trustee's real fixture passes every check except Intel's DCAP collateral, which
//! the fixture set lacks for its FMSPC (00806f050000) and time; the client path therefore stops
//! at the collateral step, plainly. Each tampered twin fails at its own check.
#![cfg(all(feature = "azure", feature = "tdx"))]
#![allow(clippy::unwrap_used)]

mod tdx_support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdvm_attestation::azure::{
    trustee, verify_tdx_with_nonce, verify_tdx_without_dcap_collateral, AzureError,
    AzureTdxEvidence, AzureVtpmPolicy, HclReport, RuntimeClaims, HCL_HEADER_LEN,
};
use cdvm_attestation::tdx::{TdxError, TdxVerifier};
use cdvm_attestation::{AnyVerifier, Evidence, Policy, ReportData, Verifier, VerifyError};
use tdx_support::{fixture, policy_for};

/// trustee's test nonce (the quote's extraData).
const NONCE: &[u8] = b"challenge";
/// 2026-01-01: inside the PCK chain's validity.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn evidence() -> AzureTdxEvidence {
    trustee::tdx_evidence(&fixture("trustee_az_tdx_vtpm/evidence-v1.json")).unwrap()
}

fn user_data(ev: &AzureTdxEvidence) -> ReportData {
    let hcl = HclReport::parse(&ev.hcl_report).unwrap();
    RuntimeClaims::parse(hcl.runtime_data).unwrap().user_data
}

fn policy(ev: &AzureTdxEvidence) -> Policy {
    let mut p = policy_for(&ev.td_quote, None);
    p.azure_vtpm = Some(AzureVtpmPolicy::default());
    p
}

fn run(ev: &AzureTdxEvidence, p: &Policy) -> Result<Vec<String>, VerifyError> {
    let original = evidence();
    verify_tdx_without_dcap_collateral(ev, &user_data(&original), NONCE, p, now())
        .map(|checks| checks.into_iter().map(|c| c.name).collect())
}

fn fails(edit: impl Fn(&mut AzureTdxEvidence)) -> VerifyError {
    let mut ev = evidence();
    let p = policy(&ev);
    edit(&mut ev);
    run(&ev, &p).expect_err("tampered evidence verified")
}

#[test]
fn trustee_fixture_passes_every_check_but_the_dcap_collateral() {
    let ev = evidence();
    assert_eq!(
        run(&ev, &policy(&ev)).unwrap(),
        [
            "quote",
            "root",
            "chain",
            "qe-report",
            "attestation-key",
            "signature",
            "runtime-data",
            "measurement",
            "debug",
            "td-report",
            "report-data",
            "tpm-quote",
            "tpm-nonce",
            "pcr-digest",
            "pcr-policy"
        ]
    );
    // The evidence survives its wire form.
    let json = serde_json::to_string(&Evidence::AzureTdxVtpm(ev.clone())).unwrap();
    let back: Evidence = serde_json::from_str(&json).unwrap();
    assert_eq!(back, Evidence::AzureTdxVtpm(ev.clone()));
    assert_eq!(back.tee(), cdvm_attestation::TeeKind::Tdx);
    assert!(back.claimed_measurement().is_some());
}

#[test]
fn the_full_path_stops_at_the_missing_collateral() {
    let ev = evidence();
    let p = policy(&ev);
    let err = verify_tdx_with_nonce(
        &ev,
        &user_data(&ev),
        NONCE,
        &p,
        now(),
        &TdxVerifier::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, VerifyError::Tdx(TdxError::NoCollateral { .. })),
        "{err:?}"
    );
    // Through the client path our binding applies as well: still refused.
    assert!(AnyVerifier
        .verify(
            &Evidence::AzureTdxVtpm(ev),
            &user_data(&evidence()),
            &p,
            now()
        )
        .is_err());
}

#[test]
fn pcr_policy_is_enforced() {
    let ev = evidence();
    let mut p = policy(&ev);
    let pcr0 = hex::encode(ev.tpm_quote.pcrs[0].0);
    p.azure_vtpm = Some(AzureVtpmPolicy {
        pcrs: BTreeMap::from([(0, vec![pcr0])]),
    });
    run(&ev, &p).unwrap();
    p.azure_vtpm = Some(AzureVtpmPolicy {
        pcrs: BTreeMap::from([(0, vec!["11".repeat(32)])]),
    });
    assert!(matches!(
        run(&ev, &p),
        Err(VerifyError::Azure(AzureError::PcrNotAllowed {
            index: 0,
            ..
        }))
    ));
}

#[test]
fn policies_for_another_tee_or_without_azure_are_refused() {
    let ev = evidence();
    let mut p = policy(&ev);
    p.azure_vtpm = None;
    assert!(matches!(
        run(&ev, &p),
        Err(VerifyError::Azure(AzureError::NotAccepted { .. }))
    ));
    let mut p = policy(&ev);
    p.tee = cdvm_attestation::TeeKind::SevSnp;
    assert!(matches!(run(&ev, &p), Err(VerifyError::TeeMismatch { .. })));
}

#[test]
fn tampered_twins_fail_each_at_its_own_check() {
    // Runtime JSON changed: REPORTDATA no longer binds it.
    let err = fails(|ev| {
        let hcl = HclReport::parse(&ev.hcl_report).unwrap();
        let start = hcl.runtime_data.as_ptr() as usize - ev.hcl_report.as_ptr() as usize;
        let at = start
            + hcl
                .runtime_data
                .windows(11)
                .position(|w| w == b"\"user-data\"")
                .unwrap()
            + 14;
        ev.hcl_report[at] = if ev.hcl_report[at] == b'0' {
            b'1'
        } else {
            b'0'
        };
    });
    assert!(
        matches!(
            err,
            VerifyError::Azure(AzureError::RuntimeDataNotBound { .. })
        ),
        "{err:?}"
    );
    // vTPM quote signature.
    assert_eq!(
        fails(|ev| ev.tpm_quote.signature[7] ^= 1),
        VerifyError::Azure(AzureError::QuoteSignatureInvalid)
    );
    // A PCR value.
    assert!(matches!(
        fails(|ev| ev.tpm_quote.pcrs[3].0[0] ^= 1),
        VerifyError::Azure(AzureError::PcrDigestMismatch { .. })
    ));
    // Another nonce.
    let ev = evidence();
    assert!(matches!(
        verify_tdx_without_dcap_collateral(&ev, &user_data(&ev), b"challengf", &policy(&ev), now()),
        Err(VerifyError::Azure(AzureError::NonceMismatch { .. }))
    ));
    // A byte of the TD quote's body (MRSIGNERSEAM): its signature breaks.
    let err = fails(|ev| ev.td_quote[48 + 16 + 48 + 10] ^= 1);
    assert!(
        matches!(err, VerifyError::Tdx(TdxError::QuoteSignatureInvalid)),
        "{err:?}"
    );
    // A byte of the HCL's TD report (its REPORTDATA): not the quoted TD report.
    assert_eq!(
        fails(|ev| ev.hcl_report[HCL_HEADER_LEN + 130] ^= 1),
        VerifyError::Azure(AzureError::TdReportMismatch {
            field: "REPORTDATA"
        })
    );
}
