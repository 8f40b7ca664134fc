//! Real SEV-SNP reports verify end to end with their real AMD chains at a pinned time.
#![allow(clippy::unwrap_used)]

mod common;

use cdvm_attestation::policy::TrustedRoot;
use cdvm_attestation::VerifyError;
use common::*;

const ALL_AMD: fn() -> Vec<TrustedRoot> = || {
    vec![
        TrustedRoot::AmdMilan,
        TrustedRoot::AmdGenoa,
        TrustedRoot::AmdTurin,
    ]
};

#[test]
fn every_valid_fixture_verifies_with_its_chain() {
    for case in VALID {
        let ev = case.evidence();
        let policy = policy_for(&ev, vec![case.root()]);
        let claims = verify(&ev, &policy, T2026).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert!(!claims.simulated, "{}", case.name);
        assert_eq!(claims.measurement, report_of(&ev).measurement);
        assert_eq!(claims.policy, "test");
        let product = if case.genoa { "Genoa" } else { "Milan" };
        assert_eq!(claims.root, format!("AMD ARK-{product}"), "{}", case.name);
        assert_eq!(
            check_names(&claims),
            [
                "tee",
                "report",
                "root",
                "chain",
                "validity",
                "signature",
                "vcek-binding",
                "report-data",
                "measurement",
                "debug",
                "migration-agent",
                "vmpl",
                "tcb"
            ],
            "{}",
            case.name
        );
        let chain = &claims.checks[3].detail;
        assert_eq!(chain, &format!("ARK-{product} → SEV-{product} → VCEK"));
    }
}

#[test]
fn a_policy_listing_all_amd_roots_accepts_milan_and_genoa() {
    for case in VALID {
        let ev = case.evidence();
        verify(&ev, &policy_for(&ev, ALL_AMD()), T2026)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}

#[test]
fn claims_are_readable() {
    let case = VALID[1]; // trustee Milan: reported TCB bl=3 tee=0 snp=8 ucode=115
    let ev = case.evidence();
    let mut policy = policy_for(&ev, vec![TrustedRoot::AmdMilan]);
    policy.min_tcb.bootloader = 3;
    policy.min_tcb.snp = 8;
    policy.min_tcb.microcode = 115;
    let claims = verify(&ev, &policy, T2026).unwrap();
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
        detail("tcb"),
        "TCB bl=3 tee=0 snp=8 ucode=115 ≥ policy minimum bl=3 tee=0 snp=8 ucode=115"
    );
    assert!(
        detail("vcek-binding").contains("hwID = CHIP_ID c38427a3"),
        "{}",
        detail("vcek-binding")
    );
    assert!(detail("vcek-binding").contains("VCEK TCB = REPORTED_TCB bl=3 tee=0 snp=8 ucode=115"));
    assert!(detail("debug").contains("debugging disabled"));
    // Claims serialize for `cdvm verify --json`.
    let json = serde_json::to_value(&claims).unwrap();
    assert_eq!(json["measurement"], report_of(&ev).measurement.to_string());
    assert_eq!(json["simulated"], false);
}

#[test]
fn debug_guest_is_refused_unless_policy_allows_debug() {
    let ev = DEBUG_CASE.evidence();
    let mut policy = policy_for(&ev, vec![TrustedRoot::AmdMilan]);
    assert_eq!(
        verify(&ev, &policy, T2026),
        Err(VerifyError::DebugAllowed {
            policy: "test".into()
        })
    );
    policy.allow_debug = true;
    let claims = verify(&ev, &policy, T2026).unwrap();
    let debug = claims.checks.iter().find(|c| c.name == "debug").unwrap();
    assert!(debug.detail.contains("ALLOWS DEBUG"), "{}", debug.detail);
}

fn vlek_evidence() -> cdvm_attestation::Evidence {
    build(
        fixture("trustee_milan/test-vlek-report.bin"),
        cert_der("trustee_milan/test-vlek.der", 0),
        MILAN_ASVK,
        ("amd_roots/gosevguest_ask_ark_milan_vlek.pem", 1),
    )
}

#[test]
fn vlek_signed_aws_report_verifies_with_the_asvk_chain() {
    let ev = vlek_evidence();
    let mut policy = policy_for(&ev, vec![TrustedRoot::AmdMilan]);
    policy.max_vmpl = 1; // the AWS sample was taken at VMPL 1
    let claims = verify(&ev, &policy, T2025_06).unwrap();
    assert_eq!(claims.checks[3].detail, "ARK-Milan → SEV-VLEK-Milan → VLEK");
    let binding = &claims.checks[6].detail;
    assert!(binding.contains("CHIP_ID masked"), "{binding}");
    assert!(
        binding.contains("VLEK TCB = REPORTED_TCB bl=4 tee=0 snp=24 ucode=217"),
        "{binding}"
    );
}

#[test]
fn vlek_report_at_vmpl1_is_refused_by_a_vmpl0_policy() {
    let ev = vlek_evidence();
    let policy = policy_for(&ev, vec![TrustedRoot::AmdMilan]);
    assert_eq!(
        verify(&ev, &policy, T2025_06),
        Err(VerifyError::VmplTooHigh {
            vmpl: 1,
            max: 0,
            policy: "test".into()
        })
    );
}

#[test]
fn vlek_is_expired_at_2026() {
    let ev = vlek_evidence();
    let mut policy = policy_for(&ev, vec![TrustedRoot::AmdMilan]);
    policy.max_vmpl = 1;
    assert_eq!(
        verify(&ev, &policy, T2026),
        Err(VerifyError::CertificateExpired {
            cert: "VLEK (SEV-VLEK)".into()
        })
    );
}
