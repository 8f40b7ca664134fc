//! TDX verification of real quotes with real Intel collateral at pinned times, and a tampered or
//! misconfigured twin for each failure (docs/attestation.md, "TDX").
#![cfg(feature = "tdx")]
#![allow(clippy::unwrap_used)]

mod tdx_support;

use cdvm_attestation::policy::{AllowedMeasurement, Policy, TrustedRoot};
use cdvm_attestation::tdx::{
    TdxCollateral, TdxError, TdxQuote, TdxVerifier, INTEL_SGX_ROOT_SHA256,
};
use cdvm_attestation::{AnyVerifier, Measurement, ReportData, TeeKind, Verifier, VerifyError};
use tdx_support::*;

fn tdx_err(e: TdxError) -> Result<(), VerifyError> {
    Err(VerifyError::Tdx(e))
}

fn outcome<T>(r: Result<T, VerifyError>) -> Result<(), VerifyError> {
    r.map(|_| ())
}

// ---- Valid quotes ------------------------------------------------------------------------------

#[test]
fn dcapqvl_quote_is_valid_and_up_to_date_at_its_pinned_time() {
    let claims = verify_fixture(DCAP_QUOTE, DCAP_COLLATERAL, T_DCAPQVL).unwrap();
    assert_eq!(claims.tee, TeeKind::Tdx);
    assert_eq!(
        claims.measurement,
        Measurement::from_hex(
            "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
        )
        .unwrap()
    );
    assert_eq!(claims.root, "Intel SGX Root CA");
    assert!(!claims.simulated);
    assert_eq!(claims.policy, "tdx-test");
    assert_eq!(
        check_names(&claims),
        [
            "tee",
            "quote",
            "root",
            "chain",
            "validity",
            "qe-report",
            "attestation-key",
            "signature",
            "collateral",
            "dcap",
            "tcb",
            "report-data",
            "measurement",
            "debug"
        ]
    );
    let detail = |name: &str| {
        claims
            .checks
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .detail
            .clone()
    };
    assert_eq!(
        detail("chain"),
        "3 certificates from the PCK up to the pinned Intel SGX Root CA"
    );
    assert!(detail("tcb").starts_with("TCB status UpToDate (advisories: none)"));
    assert!(detail("collateral").contains("b0c06f000000"));
}

#[test]
fn v5_tdx_1_5_quote_is_valid_with_collateral_for_its_fmspc() {
    // quote_v5_sample (go-tdx-guest) with dcap-qvl's 2026 collateral for the same FMSPC.
    let claims = verify_fixture(V5_QUOTE, OUTDATED_COLLATERAL, T_OUTDATED_COLLATERAL).unwrap();
    assert_eq!(
        claims.measurement.to_string(),
        "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876"
    );
    let quote = claims.checks.iter().find(|c| c.name == "quote").unwrap();
    assert!(quote.detail.contains("v5, TDX 1.5"), "{}", quote.detail);
}

#[test]
fn dispatcher_and_verifier_agree() {
    let bytes = fixture(DCAP_QUOTE);
    let policy = policy_for(&bytes, Some(DCAP_COLLATERAL));
    let ev = evidence(bytes.clone());
    let expected = report_data_of(&bytes);
    let direct = TdxVerifier::default()
        .verify(&ev, &expected, &policy, at(T_DCAPQVL))
        .unwrap();
    let dispatched = AnyVerifier
        .verify(&ev, &expected, &policy, at(T_DCAPQVL))
        .unwrap();
    assert_eq!(direct, dispatched);
}

// ---- Time ----------------------------------------------------------------------------------------

#[test]
fn collateral_outside_its_validity_is_refused() {
    // The pinned time is the last second of the overlap window; one second later the PCK CRL
    // has reached its nextUpdate.
    assert!(matches!(
        verify_fixture(DCAP_QUOTE, DCAP_COLLATERAL, T_DCAPQVL + 1),
        Err(VerifyError::Tdx(TdxError::CollateralExpired(m))) if m.contains("CrlExpired")
    ));
    // Long after (2030): still a collateral error, the PCK chain itself is valid until 2032.
    assert!(matches!(
        verify_fixture(DCAP_QUOTE, DCAP_COLLATERAL, T_2030),
        Err(VerifyError::Tdx(TdxError::CollateralExpired(_)))
    ));
    // An hour later the TCB info itself has expired too (its nextUpdate 2025-07-19T10:16:03Z);
    // dcap-qvl checks the CRLs first.
    assert!(matches!(
        verify_fixture(DCAP_QUOTE, DCAP_COLLATERAL, T_DCAPQVL + 3600),
        Err(VerifyError::Tdx(TdxError::CollateralExpired(_)))
    ));
    // Before the TCB info was issued (2025-06-15).
    assert!(matches!(
        verify_fixture(DCAP_QUOTE, DCAP_COLLATERAL, 1_750_000_000),
        Err(VerifyError::Tdx(TdxError::CollateralExpired(m))) if m.contains("in the future")
    ));
}

#[test]
fn expired_pck_certificate_is_refused() {
    // go-tdx-guest expects "certificate has expired" in 2053 (PCK leaf ends 2029-09-20).
    assert_eq!(
        outcome(verify_fixture(SPR_QUOTE, GOTDX_COLLATERAL, T_2053)),
        tdx_err(TdxError::PckCertificateExpired {
            cert: "Intel SGX PCK Certificate".into()
        })
    );
}

// ---- Collateral and TCB --------------------------------------------------------------------------

#[test]
fn collateral_for_another_fmspc_is_refused() {
    let want = tdx_err(TdxError::FmspcMismatch {
        collateral: "90c06f000000".into(),
        quote: "b0c06f000000".into(),
    });
    // At the collateral's own time and at the quote's: the model check comes first.
    assert_eq!(
        outcome(verify_fixture(
            DCAP_QUOTE,
            OUTDATED_COLLATERAL,
            T_OUTDATED_COLLATERAL
        )),
        want
    );
    assert_eq!(
        outcome(verify_fixture(DCAP_QUOTE, OUTDATED_COLLATERAL, T_DCAPQVL)),
        want
    );
}

#[test]
fn outdated_platform_tcb_is_refused() {
    // dcap-qvl's tdx_quote_outdated: TDX module SVN below every TCB level of its collateral.
    assert!(matches!(
        verify_fixture(OUTDATED_QUOTE, OUTDATED_COLLATERAL, T_OUTDATED_COLLATERAL),
        Err(VerifyError::Tdx(TdxError::TcbLevelNotFound(m))) if m.contains("No matching TCB level")
    ));
    // Two more dcap-qvl samples of the same FMSPC with an older module (SVN 05010200).
    for q in [
        "dcapqvl/tdx-quote.hex.derived.bin",
        "dcapqvl/quote-from-tappd.hex.derived.bin",
    ] {
        assert!(
            matches!(
                verify_fixture(q, DCAP_COLLATERAL, T_DCAPQVL),
                Err(VerifyError::Tdx(TdxError::TcbLevelNotFound(_)))
            ),
            "{q}"
        );
    }
    // go-tdx-guest's SPR quote with its 2023 collateral (go-tdx-guest zeroes SVNs to pass).
    assert!(matches!(
        verify_fixture(SPR_QUOTE, GOTDX_COLLATERAL, T_GOTDXGUEST),
        Err(VerifyError::Tdx(TdxError::TcbLevelNotFound(_)))
    ));
}

#[test]
fn tcb_status_must_be_listed_by_the_policy() {
    let bytes = fixture(DCAP_QUOTE);
    let mut policy = policy_for(&bytes, Some(DCAP_COLLATERAL));
    tdx_rules(&mut policy).allowed_tcb_status = vec!["SWHardeningNeeded".into()];
    assert_eq!(
        outcome(verify(&evidence(bytes.clone()), &policy, T_DCAPQVL)),
        tdx_err(TdxError::TcbStatusNotAllowed {
            status: "UpToDate".into(),
            advisories: "none".into(),
            allowed: "SWHardeningNeeded".into(),
            policy: "tdx-test".into(),
        })
    );
    tdx_rules(&mut policy).allowed_tcb_status = vec![];
    assert!(matches!(
        verify(&evidence(bytes.clone()), &policy, T_DCAPQVL),
        Err(VerifyError::Tdx(TdxError::TcbStatusNotAllowed { .. }))
    ));
    tdx_rules(&mut policy).allowed_tcb_status = vec!["SWHardeningNeeded".into(), "UpToDate".into()];
    verify(&evidence(bytes), &policy, T_DCAPQVL).unwrap();
}

#[test]
fn forged_collateral_is_refused() {
    // Rewrite the TCB info (e.g. to upgrade a status): Intel's signature no longer verifies.
    let text = String::from_utf8(fixture(DCAP_COLLATERAL)).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tcb = json["tcb_info"]
        .as_str()
        .unwrap()
        .replacen("OutOfDate", "UpToDate", 1);
    json["tcb_info"] = serde_json::Value::String(tcb);
    let forged = TdxCollateral::from_json(&json.to_string()).unwrap();
    let bytes = fixture(DCAP_QUOTE);
    let policy = policy_for(&bytes, None);
    let result = TdxVerifier::with_collateral(forged).verify(
        &evidence(bytes.clone()),
        &report_data_of(&bytes),
        &policy,
        at(T_DCAPQVL),
    );
    assert!(
        matches!(&result, Err(VerifyError::Tdx(TdxError::CollateralInvalid(m))) if m.contains("tcb_info")),
        "{result:?}"
    );
}

#[test]
fn collateral_comes_from_the_verifier_or_the_policy() {
    let bytes = fixture(DCAP_QUOTE);
    let ev = evidence(bytes.clone());
    let expected = report_data_of(&bytes);
    let no_collateral = policy_for(&bytes, None);
    assert_eq!(
        outcome(AnyVerifier.verify(&ev, &expected, &no_collateral, at(T_DCAPQVL))),
        tdx_err(TdxError::NoCollateral {
            policy: "tdx-test".into()
        })
    );
    let good = TdxCollateral::load(&path(DCAP_COLLATERAL)).unwrap();
    assert_eq!(good.fmspc(), "b0c06f000000");
    TdxVerifier::with_collateral(good)
        .verify(&ev, &expected, &no_collateral, at(T_DCAPQVL))
        .unwrap();
    // The verifier's collateral takes precedence over the policy's file.
    let other = TdxCollateral::load(&path(OUTDATED_COLLATERAL)).unwrap();
    let with_file = policy_for(&bytes, Some(DCAP_COLLATERAL));
    assert!(matches!(
        TdxVerifier::with_collateral(other).verify(&ev, &expected, &with_file, at(T_DCAPQVL)),
        Err(VerifyError::Tdx(TdxError::FmspcMismatch { .. }))
    ));
    // A missing or non-collateral file.
    for bad in ["dcapqvl/no-such-file.json", DCAP_QUOTE] {
        let policy = policy_for(&bytes, Some(bad));
        assert!(
            matches!(
                AnyVerifier.verify(&ev, &expected, &policy, at(T_DCAPQVL)),
                Err(VerifyError::Tdx(TdxError::CollateralUnreadable { .. }))
            ),
            "{bad}"
        );
    }
}

// ---- Debug ---------------------------------------------------------------------------------------

#[test]
fn debug_td_is_refused_unless_the_policy_allows_it() {
    // trustee tdx_quote_4: TD_ATTRIBUTES.DEBUG set; signatures, chain, collateral and TCB pass
    // (dcap-qvl is asked not to judge debug, so the policy step reports it with its own error).
    let bytes = fixture(DEBUG_QUOTE);
    let mut policy = policy_for(&bytes, Some(GOTDX_COLLATERAL));
    assert_eq!(
        outcome(verify(&evidence(bytes.clone()), &policy, T_GOTDXGUEST)),
        Err(VerifyError::DebugAllowed {
            policy: "tdx-test".into()
        })
    );
    tdx_rules(&mut policy).allow_debug = true;
    let claims = verify(&evidence(bytes), &policy, T_GOTDXGUEST).unwrap();
    let debug = claims.checks.iter().find(|c| c.name == "debug").unwrap();
    assert!(debug.detail.contains("TD UNDER DEBUG"), "{}", debug.detail);
}

#[test]
fn earlier_checks_win_over_debug() {
    // The debug quote fails REPORT_DATA and MRTD first when those are wrong too.
    let bytes = fixture(DEBUG_QUOTE);
    let policy = policy_for(&bytes, Some(GOTDX_COLLATERAL));
    let r = AnyVerifier.verify(
        &evidence(bytes.clone()),
        &ReportData([7; 64]),
        &policy,
        at(T_GOTDXGUEST),
    );
    assert!(matches!(r, Err(VerifyError::ReportDataMismatch { .. })));
    let mut policy = policy;
    tdx_rules(&mut policy).mrtd.clear();
    assert!(matches!(
        verify(&evidence(bytes), &policy, T_GOTDXGUEST),
        Err(VerifyError::MeasurementNotAllowed { .. })
    ));
}

// ---- Policy measurements ---------------------------------------------------------------------------

#[test]
fn wrong_report_data_is_refused() {
    let bytes = fixture(DCAP_QUOTE);
    let policy = policy_for(&bytes, Some(DCAP_COLLATERAL));
    let mut expected = report_data_of(&bytes);
    expected.0[63] ^= 1;
    match AnyVerifier.verify(&evidence(bytes.clone()), &expected, &policy, at(T_DCAPQVL)) {
        Err(VerifyError::ReportDataMismatch { expected: e, found }) => {
            assert_eq!(e, expected.to_string());
            assert_eq!(found, report_data_of(&bytes).to_string());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mrtd_must_be_in_the_policy() {
    let bytes = fixture(DCAP_QUOTE);
    let mrtd = TdxQuote::parse(&bytes).unwrap().report.mrtd.to_string();
    let mut policy = policy_for(&bytes, Some(DCAP_COLLATERAL));
    let want = Err(VerifyError::MeasurementNotAllowed {
        measurement: mrtd,
        policy: "tdx-test".into(),
    });
    tdx_rules(&mut policy).mrtd = vec![AllowedMeasurement {
        measurement: "ab".repeat(48),
        source: "another build".into(),
    }];
    assert_eq!(
        outcome(verify(&evidence(bytes.clone()), &policy, T_DCAPQVL)),
        want
    );
    // An empty list allows nothing.
    tdx_rules(&mut policy).mrtd.clear();
    assert_eq!(outcome(verify(&evidence(bytes), &policy, T_DCAPQVL)), want);
}

#[test]
fn rtmrs_are_checked_when_the_policy_lists_them() {
    let bytes = fixture(DCAP_QUOTE);
    let rtmr = TdxQuote::parse(&bytes).unwrap().report.rtmr;
    let allow = |m: &Measurement| {
        vec![AllowedMeasurement {
            measurement: m.to_string(),
            source: "image build".into(),
        }]
    };
    let mut policy = policy_for(&bytes, Some(DCAP_COLLATERAL));
    {
        let rules = tdx_rules(&mut policy);
        rules.rtmr0 = Some(allow(&rtmr[0]));
        rules.rtmr1 = Some(allow(&rtmr[1]));
        rules.rtmr2 = Some(allow(&rtmr[2]));
        rules.rtmr3 = Some(allow(&rtmr[3]));
    }
    let claims = verify(&evidence(bytes.clone()), &policy, T_DCAPQVL).unwrap();
    let names = check_names(&claims);
    assert!(names.ends_with(&["measurement", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "debug"]));

    tdx_rules(&mut policy).rtmr2 = Some(allow(&Measurement([0xEE; 48])));
    assert_eq!(
        outcome(verify(&evidence(bytes.clone()), &policy, T_DCAPQVL)),
        tdx_err(TdxError::RtmrNotAllowed {
            index: 2,
            value: rtmr[2].to_string(),
            policy: "tdx-test".into(),
        })
    );
    // An empty list allows nothing; absent is not checked.
    tdx_rules(&mut policy).rtmr2 = None;
    tdx_rules(&mut policy).rtmr3 = Some(vec![]);
    assert!(matches!(
        verify(&evidence(bytes), &policy, T_DCAPQVL),
        Err(VerifyError::Tdx(TdxError::RtmrNotAllowed { index: 3, .. }))
    ));
}

#[test]
fn xfam_is_checked_when_the_policy_lists_it() {
    let bytes = fixture(DCAP_QUOTE);
    let mut policy = policy_for(&bytes, Some(DCAP_COLLATERAL));
    tdx_rules(&mut policy).xfam = Some(vec!["E702060000000000".into()]);
    let claims = verify(&evidence(bytes.clone()), &policy, T_DCAPQVL).unwrap();
    assert_eq!(check_names(&claims).last(), Some(&"xfam"));
    tdx_rules(&mut policy).xfam = Some(vec!["e718060000000000".into()]);
    assert_eq!(
        outcome(verify(&evidence(bytes), &policy, T_DCAPQVL)),
        tdx_err(TdxError::XfamNotAllowed {
            value: "e702060000000000".into(),
            policy: "tdx-test".into(),
        })
    );
}

// ---- Roots ---------------------------------------------------------------------------------------

#[test]
fn policy_without_the_intel_root_refuses_intel_quotes() {
    let bytes = fixture(DCAP_QUOTE);
    let mut policy = policy_for(&bytes, Some(DCAP_COLLATERAL));
    policy.roots = vec![TrustedRoot::AmdMilan];
    assert_eq!(
        outcome(verify(&evidence(bytes), &policy, T_DCAPQVL)),
        Err(VerifyError::UntrustedRoot {
            fingerprint: INTEL_SGX_ROOT_SHA256.into(),
            policy: "tdx-test".into(),
            trusted: "amd-milan".into(),
        })
    );
}

#[test]
fn quote_chained_to_another_root_is_refused() {
    // Intel QVL's synthetic sample: self-consistent, but its "Intel SGX Root CA" is a test key.
    let bytes = fixture(SYNTHETIC_QUOTE);
    let policy = policy_for(&bytes, Some(DCAP_COLLATERAL));
    match verify(&evidence(bytes), &policy, T_DCAPQVL) {
        Err(VerifyError::UntrustedRoot { fingerprint, .. }) => {
            assert_ne!(fingerprint, INTEL_SGX_ROOT_SHA256)
        }
        other => panic!("{other:?}"),
    }
}

// ---- Tampering -----------------------------------------------------------------------------------

/// Byte offsets in dcap-qvl's v4 `tdx_quote`: header 0..48, TD report 48..632, signature data
/// length 632, quote signature 636..700, attestation key 700..764, certification data type 764,
/// size 766, QE report 770..1154, QE report signature 1154..1218, QE auth data size 1218, auth
/// data 1220..1252, PCK chain type 1252, size 1254, PEM 1258.. (leaf first).
fn tampered(offset: usize) -> Result<(), VerifyError> {
    let mut bytes = fixture(DCAP_QUOTE);
    bytes[offset] ^= 0x01;
    let policy = policy_for(&fixture(DCAP_QUOTE), Some(DCAP_COLLATERAL));
    let original = report_data_of(&fixture(DCAP_QUOTE));
    outcome(AnyVerifier.verify(&evidence(bytes), &original, &policy, at(T_DCAPQVL)))
}

#[test]
fn tampered_twins_are_refused_with_their_own_errors() {
    // A byte of the TD report (REPORTDATA) or of the header: the quote signature fails.
    assert_eq!(tampered(48 + 520), tdx_err(TdxError::QuoteSignatureInvalid));
    assert_eq!(tampered(30), tdx_err(TdxError::QuoteSignatureInvalid));
    // MRTD: the signature fails before the measurement is looked at.
    assert_eq!(tampered(48 + 136), tdx_err(TdxError::QuoteSignatureInvalid));
    // A byte of the quote signature.
    assert_eq!(tampered(640), tdx_err(TdxError::QuoteSignatureInvalid));
    // The attestation key or the QE auth data: no longer what the QE report binds.
    assert_eq!(tampered(710), tdx_err(TdxError::AttestationKeyNotBound));
    assert_eq!(tampered(1230), tdx_err(TdxError::AttestationKeyNotBound));
    // The QE report or its signature.
    assert_eq!(tampered(800), tdx_err(TdxError::QeReportSignatureInvalid));
    assert_eq!(tampered(1160), tdx_err(TdxError::QeReportSignatureInvalid));
}

#[test]
fn tampered_pck_certificate_breaks_the_chain() {
    let bytes = fixture(DCAP_QUOTE);
    let leaf_end = bytes
        .windows(25)
        .position(|w| w == b"-----END CERTIFICATE-----")
        .unwrap();
    // A base64 character inside the PCK leaf's signature, swapped for another valid one.
    let at_sig = leaf_end - 12;
    let mut tampered = bytes.clone();
    tampered[at_sig] = if bytes[at_sig] == b'A' { b'B' } else { b'A' };
    let policy = policy_for(&bytes, Some(DCAP_COLLATERAL));
    assert_eq!(
        outcome(AnyVerifier.verify(
            &evidence(tampered),
            &report_data_of(&bytes),
            &policy,
            at(T_DCAPQVL)
        )),
        tdx_err(TdxError::PckChainInvalid {
            cert: "Intel SGX PCK Certificate".into(),
            issuer: "Intel SGX PCK Platform CA".into(),
        })
    );
}

#[test]
fn go_tdx_guest_negative_edits_are_refused() {
    // go-tdx-guest TestNegativeVerification: each single-byte edit of the SPR quote must fail.
    // The unedited quote passes every check up to the TCB level (which its 2023 collateral
    // does not cover), so each edit below fails at the step it breaks.
    let base = fixture(SPR_QUOTE);
    let policy = policy_for(&base, Some(GOTDX_COLLATERAL));
    let run = |offset: usize, value: u8| {
        let mut q = base.clone();
        q[offset] = value;
        outcome(AnyVerifier.verify(
            &evidence(q),
            &report_data_of(&base),
            &policy,
            at(T_GOTDXGUEST),
        ))
    };
    assert!(matches!(
        run(0, base[0]),
        Err(VerifyError::Tdx(TdxError::TcbLevelNotFound(_)))
    ));
    // [0x00]=3: unsupported version.
    assert!(matches!(
        run(0x00, 3),
        Err(VerifyError::Tdx(TdxError::Unsupported(m))) if m.contains("version 3")
    ));
    // [0x278]=0x10: the signature data size no longer holds the certification data.
    assert!(matches!(
        run(0x278, 0x10),
        Err(VerifyError::Tdx(TdxError::Malformed(_)))
    ));
    // [0x1343]=0x32: breaks the root certificate's PEM END line ("PCK chain invalid").
    assert!(matches!(
        run(0x1343, 0x32),
        Err(VerifyError::Tdx(TdxError::PckChainMalformed(_)))
    ));
    // [0x1329]=0x32: alters the root certificate's signature. go-tdx-guest reports a root
    // signature failure; we compare the root with the pinned one byte for byte first, so it is
    // simply not Intel's root any more.
    assert!(matches!(
        run(0x1329, 0x32),
        Err(VerifyError::UntrustedRoot { fingerprint, .. }) if fingerprint != INTEL_SGX_ROOT_SHA256
    ));
    // [0xF5F]=0x32: the intermediate's signature.
    assert_eq!(
        run(0xF5F, 0x32),
        tdx_err(TdxError::PckChainInvalid {
            cert: "Intel SGX PCK Platform CA".into(),
            issuer: "Intel SGX Root CA".into(),
        })
    );
    // [0xB77]=0x32: the PCK leaf's signature.
    assert_eq!(
        run(0xB77, 0x32),
        tdx_err(TdxError::PckChainInvalid {
            cert: "Intel SGX PCK Certificate".into(),
            issuer: "Intel SGX PCK Platform CA".into(),
        })
    );
    // [0x1E] (header) and [0x3C] (TD report): the quote signature.
    assert_eq!(run(0x1E, 0x32), tdx_err(TdxError::QuoteSignatureInvalid));
    assert_eq!(run(0x3C, 0x32), tdx_err(TdxError::QuoteSignatureInvalid));
}

#[test]
fn malformed_and_sgx_quotes_are_refused() {
    let policy = policy_for(&fixture(DCAP_QUOTE), Some(DCAP_COLLATERAL));
    let mut cut = fixture(DCAP_QUOTE);
    cut.truncate(700);
    assert!(matches!(
        verify(&evidence(cut), &policy, T_DCAPQVL),
        Err(VerifyError::Tdx(TdxError::Malformed(_)))
    ));
    assert!(matches!(
        verify(&evidence(fixture("dcapqvl/sgx_quote")), &policy, T_DCAPQVL),
        Err(VerifyError::Tdx(TdxError::Unsupported(_)))
    ));
}

// ---- TEE family ----------------------------------------------------------------------------------

#[test]
fn evidence_of_another_tee_is_a_tee_mismatch() {
    let tdx_policy = policy_for(&fixture(DCAP_QUOTE), Some(DCAP_COLLATERAL));
    let snp = snp_evidence();
    let mut results =
        vec![TdxVerifier::default().verify(&snp, &ReportData([0; 64]), &tdx_policy, at(T_DCAPQVL))];
    // The dispatcher hands SEV-SNP evidence to the SNP verifier (without the `snp` feature it
    // refuses it as unsupported instead).
    if cfg!(feature = "snp") {
        results.push(AnyVerifier.verify(&snp, &ReportData([0; 64]), &tdx_policy, at(T_DCAPQVL)));
    }
    for r in results {
        assert_eq!(
            outcome(r),
            Err(VerifyError::TeeMismatch {
                evidence: "sev-snp".into(),
                expected: "tdx".into(),
                policy: "tdx-test".into(),
            })
        );
    }
    let snp_policy = Policy::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/default-snp.yaml"),
    )
    .unwrap();
    let tdx = evidence(fixture(DCAP_QUOTE));
    let want = || {
        Err(VerifyError::TeeMismatch {
            evidence: "tdx".into(),
            expected: "sev-snp".into(),
            policy: "default-sev-snp".into(),
        })
    };
    assert_eq!(outcome(verify(&tdx, &snp_policy, T_DCAPQVL)), want());
    assert_eq!(
        outcome(TdxVerifier::default().verify(
            &tdx,
            &ReportData([0; 64]),
            &snp_policy,
            at(T_DCAPQVL)
        )),
        want()
    );
}
