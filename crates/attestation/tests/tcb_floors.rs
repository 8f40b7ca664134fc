//! TCB floors per product line: SPL numbers are not comparable across Milan, Genoa and Turin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cdvm_attestation::policy::{MinTcb, TrustedRoot};
use cdvm_attestation::snp::SnpVerifier;
use cdvm_attestation::{Verifier, VerifyError};
use common::{at, build, cert_der, fixture, policy_for, report_of, GENOA_ARK, GENOA_ASK, T2026};

#[test]
fn a_genoa_guest_is_judged_by_the_genoa_floor() {
    // Real Siena (Genoa line) report: bl=10 tee=0 snp=23 ucode=25.
    let ev = build(
        fixture("trustee_e2e/evidence.snp_report.derived.bin"),
        cert_der("trustee_e2e/evidence.vcek.derived.der", 0),
        GENOA_ASK,
        GENOA_ARK,
    );
    let expected = report_of(&ev).report_data;
    let mut policy = policy_for(&ev, vec![TrustedRoot::AmdGenoa]);
    // The Milan-sized generic floor (ucode 115) refuses it…
    policy.min_tcb = MinTcb {
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
    };
    assert!(matches!(
        SnpVerifier.verify(&ev, &expected, &policy, at(T2026)),
        Err(VerifyError::TcbTooLow { ref component, found: 25, minimum: 115, .. }) if component == "microcode"
    ));
    // …a Genoa floor it meets accepts it, and the generic floor no longer applies…
    policy.min_tcb_by_product.genoa = Some(MinTcb {
        bootloader: 10,
        tee: 0,
        snp: 23,
        microcode: 25,
    });
    let claims = SnpVerifier
        .verify(&ev, &expected, &policy, at(T2026))
        .unwrap();
    assert!(claims
        .checks
        .iter()
        .any(|c| c.name == "tcb" && c.detail.contains("ucode=25")));
    // …and a Genoa floor one step above refuses it again.
    policy.min_tcb_by_product.genoa = Some(MinTcb {
        bootloader: 10,
        tee: 0,
        snp: 24,
        microcode: 25,
    });
    assert!(matches!(
        SnpVerifier.verify(&ev, &expected, &policy, at(T2026)),
        Err(VerifyError::TcbTooLow { ref component, .. }) if component == "snp"
    ));
    // A Milan floor does not touch a Genoa guest.
    policy.min_tcb_by_product.genoa = None;
    policy.min_tcb = MinTcb::default();
    policy.min_tcb_by_product.milan = Some(MinTcb {
        bootloader: 99,
        tee: 99,
        snp: 99,
        microcode: 255,
    });
    assert!(SnpVerifier
        .verify(&ev, &expected, &policy, at(T2026))
        .is_ok());
}
