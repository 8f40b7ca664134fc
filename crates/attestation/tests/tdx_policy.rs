//! TDX policies: the shipped `policies/default-tdx.yaml`, and the validation of `tdx:` sections.
#![allow(clippy::unwrap_used)]

mod tdx_support;

use std::path::{Path, PathBuf};

use cdvm_attestation::policy::{PolicyError, TrustedRoot};
use cdvm_attestation::tdx::TdxPolicy;
use cdvm_attestation::{AnyVerifier, Policy, TeeKind, Verifier, VerifyError};
use tdx_support::*;

fn shipped() -> Policy {
    Policy::load(&policies_dir().join("default-tdx.yaml")).unwrap()
}

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

const MRTD: &str = "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7";

fn tdx_yaml(tdx_section: &str) -> String {
    format!("name: t\ntee: tdx\nroots: [intel-sgx-root]\ntdx:\n{tdx_section}")
}

fn invalid(text: &str) -> bool {
    matches!(Policy::from_yaml(text), Err(PolicyError::Invalid { .. }))
}

#[test]
fn default_tdx_policy_parses_with_the_documented_values() {
    let p = shipped();
    assert_eq!(p.name, "default-tdx");
    assert_eq!(p.tee, TeeKind::Tdx);
    assert_eq!(p.roots, vec![TrustedRoot::IntelSgxRoot]);
    assert!(!p.trusts_simulated());
    let tdx = p.tdx.unwrap();
    assert!(
        tdx.mrtd.is_empty(),
        "pinned by the guest image issue; empty refuses all"
    );
    assert_eq!(tdx.allowed_tcb_status, vec!["UpToDate".to_string()]);
    assert!(!tdx.allow_debug);
    assert_eq!(
        tdx.collateral, None,
        "no collateral ships with the repository"
    );
    assert_eq!(tdx.rtmr(), [None, None, None, None]);
    assert_eq!(tdx.xfam, None);
}

#[cfg(feature = "snp")]
#[test]
fn default_tdx_policy_refuses_sev_snp_evidence() {
    let r = AnyVerifier.verify(
        &snp_evidence(),
        &cdvm_attestation::ReportData([0; 64]),
        &shipped(),
        at(T_DCAPQVL),
    );
    assert!(matches!(
        r,
        Err(VerifyError::TeeMismatch { evidence, expected, policy })
            if evidence == "sev-snp" && expected == "tdx" && policy == "default-tdx"
    ));
}

#[cfg(feature = "sim")]
#[test]
fn default_tdx_policy_refuses_simulated_evidence() {
    use cdvm_attestation::sim::SimSecureProcessor;
    use cdvm_attestation::{Measurement, ReportData};
    let dir = tempfile::tempdir().unwrap();
    let sp = SimSecureProcessor::load_or_create(dir.path()).unwrap();
    let rd = ReportData([5; 64]);
    let ev = sp.report(&rd, &Measurement([1; 48]), &Default::default());
    assert!(matches!(
        AnyVerifier.verify(&ev, &rd, &shipped(), at(T_DCAPQVL)),
        Err(VerifyError::TeeMismatch { .. })
    ));
}

#[cfg(all(feature = "sim", feature = "tdx"))]
#[test]
fn default_tdx_policy_refuses_a_simulated_tdx_quote_even_with_its_collateral_and_mrtd() {
    use cdvm_attestation::sim::tdx::SimTdx;
    use cdvm_attestation::tdx::TdxEvidence;
    use cdvm_attestation::{Evidence, Measurement, ReportData};
    let dir = tempfile::tempdir().unwrap();
    let sim = SimTdx::load_or_create(dir.path()).unwrap();
    let rd = ReportData([5; 64]);
    let mrtd = Measurement([1; 48]);
    let ev = Evidence::Tdx(TdxEvidence {
        quote: sim.quote(&rd, &mrtd).unwrap(),
        event_log: None,
        gpus: Vec::new(),
    });
    let mut policy = shipped();
    let tdx = policy.tdx.as_mut().unwrap();
    tdx.collateral = Some(sim.write_collateral(dir.path()).unwrap());
    tdx.mrtd = vec![cdvm_attestation::policy::AllowedMeasurement {
        measurement: mrtd.to_string(),
        source: "test".into(),
    }];
    assert_eq!(
        AnyVerifier.verify(&ev, &rd, &policy, std::time::SystemTime::now()),
        Err(VerifyError::SimulatedNotAllowed {
            policy: "default-tdx".into()
        })
    );
}

#[cfg(feature = "tdx")]
#[test]
fn default_tdx_policy_refuses_a_real_quote_until_it_names_collateral_and_mrtd() {
    let bytes = fixture(DCAP_QUOTE);
    let ev = evidence(bytes.clone());
    let expected = report_data_of(&bytes);
    let mut policy = shipped();
    assert!(matches!(
        AnyVerifier.verify(&ev, &expected, &policy, at(T_DCAPQVL)),
        Err(VerifyError::Tdx(
            cdvm_attestation::tdx::TdxError::NoCollateral { .. }
        ))
    ));
    policy.tdx.as_mut().unwrap().collateral = Some(path(DCAP_COLLATERAL));
    assert!(matches!(
        AnyVerifier.verify(&ev, &expected, &policy, at(T_DCAPQVL)),
        Err(VerifyError::MeasurementNotAllowed { .. })
    ));
}

#[test]
fn tee_tdx_requires_a_tdx_section() {
    assert!(invalid("name: t\ntee: tdx\nroots: [intel-sgx-root]\n"));
    let p = Policy::from_yaml(&tdx_yaml("  mrtd: []\n")).unwrap();
    assert_eq!(p.tdx, Some(TdxPolicy::default()));
}

#[test]
fn a_tdx_section_is_refused_in_a_sev_snp_policy() {
    assert!(invalid(
        "name: t\ntee: sev-snp\nroots: [amd-milan]\ntdx: {}\n"
    ));
}

#[test]
fn sev_snp_fields_are_refused_in_a_tdx_policy() {
    let m = format!("measurements:\n  - {{measurement: \"{MRTD}\", source: x}}\n");
    for extra in [
        m.as_str(),
        "allow_debug: true\n",
        "allow_migration_agent: true\n",
        "max_vmpl: 1\n",
        "min_tcb: {snp: 1}\n",
        "min_tcb_by_product: {genoa: {snp: 1}}\n",
    ] {
        let text = format!("{}{extra}", tdx_yaml("  mrtd: []\n"));
        assert!(invalid(&text), "{extra}");
    }
}

#[test]
fn tdx_values_are_validated() {
    let ok = format!(
        "  mrtd: [{{measurement: \"{MRTD}\", source: build}}]\n  rtmr1: [{{measurement: \"{MRTD}\", source: build}}]\n  xfam: [\"e702060000000000\"]\n  allowed_tcb_status: [UpToDate, SWHardeningNeeded]\n  allow_debug: false\n  collateral: /x/c.json\n"
    );
    let p = Policy::from_yaml(&tdx_yaml(&ok)).unwrap();
    let tdx = p.tdx.unwrap();
    assert_eq!(tdx.mrtd.len(), 1);
    assert_eq!(tdx.rtmr1.as_ref().unwrap().len(), 1);
    assert_eq!(tdx.collateral, Some(PathBuf::from("/x/c.json")));
    for bad in [
        "  mrtd: [{measurement: \"zz\", source: x}]\n",
        "  rtmr3: [{measurement: \"00\", source: x}]\n",
        "  xfam: [\"e7020600\"]\n",
        "  allowed_tcb_status: [Revoked]\n",
        "  allowed_tcb_status: [UpToDat]\n",
    ] {
        assert!(invalid(&tdx_yaml(bad)), "{bad}");
    }
    // Unknown fields are parse errors, as everywhere in a policy.
    for bad in [
        "  mrtds: []\n",
        "  rtmr4: []\n",
        "  allow_debugging: true\n",
    ] {
        assert!(
            matches!(
                Policy::from_yaml(&tdx_yaml(bad)),
                Err(PolicyError::Parse { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn relative_collateral_is_resolved_against_the_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        tdx_yaml("  collateral: coll/fmspc.json\n  mrtd: []\n"),
    )
    .unwrap();
    let p = Policy::load(&file).unwrap();
    assert_eq!(
        p.tdx.unwrap().collateral,
        Some(dir.path().join("coll/fmspc.json"))
    );
    // From a string there is no file: the path stays as written (working directory).
    let p = Policy::from_yaml(&tdx_yaml("  collateral: coll/fmspc.json\n")).unwrap();
    assert_eq!(
        p.tdx.unwrap().collateral,
        Some(PathBuf::from("coll/fmspc.json"))
    );
}
