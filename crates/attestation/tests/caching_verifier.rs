//! The caching SNP verifier skips only the certificate-link signatures on a repeat chain; every
//! other check still runs, so a cached chain never makes a bad report pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cdvm_attestation::policy::TrustedRoot;
use cdvm_attestation::snp::{CachingSnpVerifier, SnpVerifier};
use cdvm_attestation::{Verifier, VerifyError};
use common::{
    at, build, cert_der, fixture, policy_for, report_of, snp_mut, MILAN_ARK, MILAN_ASK, T2026,
    T2031,
};

fn evidence() -> cdvm_attestation::Evidence {
    build(
        fixture("virtee_milan/report_milan.derived.bin"),
        cert_der("virtee_milan/vcek_milan.der", 0),
        MILAN_ASK,
        MILAN_ARK,
    )
}

#[test]
fn cached_and_uncached_agree_and_a_cached_chain_never_saves_a_bad_report() {
    let ev = evidence();
    let policy = policy_for(&ev, vec![TrustedRoot::AmdMilan]);
    let expected = report_of(&ev).report_data;
    let cached = CachingSnpVerifier::default();
    let first = cached.verify(&ev, &expected, &policy, at(T2026)).unwrap();
    let second = cached.verify(&ev, &expected, &policy, at(T2026)).unwrap();
    let plain = SnpVerifier
        .verify(&ev, &expected, &policy, at(T2026))
        .unwrap();
    assert_eq!(first, plain);
    assert_eq!(second, plain);

    // Same chain (a cache hit), tampered report: still refused.
    let mut tampered = ev.clone();
    snp_mut(&mut tampered).report[0x60] ^= 1;
    assert_eq!(
        cached.verify(&tampered, &expected, &policy, at(T2026)),
        Err(VerifyError::SignatureInvalid)
    );
    // Same chain, after the VCEK expired: validity is checked on every call.
    assert!(matches!(
        cached.verify(&ev, &expected, &policy, at(T2031)),
        Err(VerifyError::CertificateExpired { .. })
    ));
    // A broken chain is never cached as good.
    let mut broken = ev.clone();
    let n = snp_mut(&mut broken).chain.as_mut().unwrap().vcek.len();
    snp_mut(&mut broken).chain.as_mut().unwrap().vcek[n - 10] ^= 1;
    for _ in 0..2 {
        assert!(matches!(
            cached.verify(&broken, &expected, &policy, at(T2026)),
            Err(VerifyError::ChainInvalid { .. })
        ));
    }
}
