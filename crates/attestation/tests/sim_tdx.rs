//! The simulated TDX platform (development DCAP PKI): its v4 quotes parse with the real parser,
//! verify with the real TDX verifier (dcap-qvl included) under a development policy, each
//! tampering fails with its own error, and every shipped policy refuses them.
#![cfg(all(feature = "sim", feature = "tdx"))]
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cdvm_attestation::policy::TrustedRoot;
use cdvm_attestation::sim::tdx::{
    dev_tdx_policy, SimTdx, SimTdxQuoteOptions, DEV_TDX_POLICY_NAME, TDX_KEY_FILE, TDX_ROOT_FILE,
};
use cdvm_attestation::sim::{measure_file_bytes, SimError};
use cdvm_attestation::tdx::{
    TdReportKind, TdxError, TdxEvidence, TdxQuote, TdxVerifier, SIMULATED_SGX_ROOT_CN,
};
use cdvm_attestation::{
    AnyVerifier, Claims, Evidence, Measurement, Policy, ReportData, TeeKind, Verifier, VerifyError,
};

struct Fixture {
    _dir: tempfile::TempDir,
    sim: SimTdx,
    collateral: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimTdx::load_or_create(&dir.path().join("state")).unwrap();
    let collateral = sim.write_collateral(dir.path()).unwrap();
    Fixture {
        _dir: dir,
        sim,
        collateral,
    }
}

fn rd(byte: u8) -> ReportData {
    ReportData([byte; 64])
}

fn mrtd() -> Measurement {
    measure_file_bytes(b"the TD firmware")
}

fn ev(quote: Vec<u8>) -> Evidence {
    Evidence::Tdx(TdxEvidence {
        quote,
        event_log: None,
        gpus: Vec::new(),
    })
}

fn dev(f: &Fixture) -> Policy {
    dev_tdx_policy(&f.sim, &mrtd(), "test firmware", &f.collateral)
}

fn verify_at(quote: &[u8], policy: &Policy, now: SystemTime) -> Result<Claims, VerifyError> {
    TdxVerifier::default().verify(&ev(quote.to_vec()), &rd(7), policy, now)
}

fn verify(quote: &[u8], policy: &Policy) -> Result<Claims, VerifyError> {
    verify_at(quote, policy, SystemTime::now())
}

fn tdx(e: Result<Claims, VerifyError>) -> TdxError {
    match e {
        Err(VerifyError::Tdx(t)) => t,
        other => panic!("expected a TDX error, got {other:?}"),
    }
}

/// Offset of the signature data in a v4 quote: header, TD report, its length field.
const SIG: usize = 48 + 584 + 4;

#[test]
fn quote_parses_with_the_real_parser() {
    let f = fixture();
    let quote = f.sim.quote(&rd(7), &mrtd()).unwrap();
    let q = TdxQuote::parse(&quote).unwrap();
    assert_eq!(q.header.version, 4);
    assert_eq!(q.report.kind, TdReportKind::Td10);
    assert_eq!(q.report.mrtd, mrtd());
    assert_eq!(q.report.report_data, rd(7));
    assert!(!q.report.td_attributes.under_debug());
    assert_eq!(q.signed_len, 48 + 584);
    assert_eq!(q.trailing_len, 0);
    assert_eq!(q.signature.qe_auth_data.len(), 32);
    let pem = String::from_utf8(q.signature.pck_cert_data.clone()).unwrap();
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 3);
}

#[test]
fn simulated_quote_verifies_under_the_dev_policy() {
    let f = fixture();
    let quote = f.sim.quote(&rd(7), &mrtd()).unwrap();
    let claims = verify(&quote, &dev(&f)).unwrap();
    assert_eq!(claims.tee, TeeKind::Tdx);
    assert_eq!(claims.measurement, mrtd());
    assert!(claims.simulated);
    assert_eq!(claims.policy, DEV_TDX_POLICY_NAME);
    assert!(claims.root.contains("SIMULATED"), "{}", claims.root);
    assert!(claims.root.contains(&f.sim.root_sha256_hex()));
    let dcap = claims.checks.iter().find(|c| c.name == "dcap").unwrap();
    assert!(dcap.detail.contains("SIMULATED"), "{}", dcap.detail);
    // The evidence helper gives the same kind of quote, and the dispatching verifier (what the
    // client uses) routes it to the same TDX verifier.
    let e = f.sim.evidence(&rd(7), &mrtd()).unwrap();
    let via_any = AnyVerifier
        .verify(&e, &rd(7), &dev(&f), SystemTime::now())
        .unwrap();
    assert!(via_any.simulated);
}

#[test]
fn state_is_stable_across_restarts_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let a = SimTdx::load_or_create(dir.path()).unwrap();
    let b = SimTdx::load_or_create(dir.path()).unwrap();
    assert_eq!(a.root_sha256_hex(), b.root_sha256_hex());
    let mode = std::fs::metadata(dir.path().join(TDX_KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let root =
        openssl::x509::X509::from_pem(&std::fs::read(dir.path().join(TDX_ROOT_FILE)).unwrap())
            .unwrap();
    assert_eq!(root.to_der().unwrap(), a.root_der());
    let cn = root
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap();
    assert_eq!(cn, SIMULATED_SGX_ROOT_CN);

    // A quote of the reloaded platform verifies under a policy built from the first load.
    let coll = a.write_collateral(dir.path()).unwrap();
    let policy = dev_tdx_policy(&a, &mrtd(), "x", &coll);
    verify(&b.quote(&rd(7), &mrtd()).unwrap(), &policy).unwrap();

    std::fs::set_permissions(
        dir.path().join(TDX_KEY_FILE),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(matches!(
        SimTdx::load_or_create(dir.path()),
        Err(SimError::InsecurePermissions { mode: 0o644, .. })
    ));
}

#[test]
fn tampered_body_fails_the_quote_signature() {
    let f = fixture();
    let quote = f.sim.quote(&rd(7), &mrtd()).unwrap();
    // REPORTDATA is the body's last 64 bytes; MRTD starts at 48 + 136.
    for offset in [48 + 584 - 1, 48 + 136] {
        let mut q = quote.clone();
        q[offset] ^= 1;
        let err = tdx(verify(&q, &dev(&f)));
        assert_eq!(err, TdxError::QuoteSignatureInvalid, "offset {offset}");
    }
}

#[test]
fn tampered_quote_signature_fails() {
    let f = fixture();
    let mut q = f.sim.quote(&rd(7), &mrtd()).unwrap();
    q[SIG + 5] ^= 1;
    assert_eq!(tdx(verify(&q, &dev(&f))), TdxError::QuoteSignatureInvalid);
}

#[test]
fn tampered_qe_report_signature_fails() {
    let f = fixture();
    let mut q = f.sim.quote(&rd(7), &mrtd()).unwrap();
    // Signature (64) ‖ attestation key (64) ‖ type (2) ‖ size (4) ‖ QE report (384) ‖ its sig.
    q[SIG + 64 + 64 + 6 + 384 + 3] ^= 1;
    assert_eq!(
        tdx(verify(&q, &dev(&f))),
        TdxError::QeReportSignatureInvalid
    );
}

#[test]
fn tampered_qe_auth_data_unbinds_the_attestation_key() {
    let f = fixture();
    let mut q = f.sim.quote(&rd(7), &mrtd()).unwrap();
    // After the QE report signature: auth data size (2), then the auth data.
    q[SIG + 64 + 64 + 6 + 384 + 64 + 2] ^= 1;
    assert_eq!(tdx(verify(&q, &dev(&f))), TdxError::AttestationKeyNotBound);
}

#[test]
fn another_simulated_root_in_the_policy_is_untrusted() {
    let f = fixture();
    let other = tempfile::tempdir().unwrap();
    let other = SimTdx::load_or_create(other.path()).unwrap();
    assert_ne!(other.root_sha256_hex(), f.sim.root_sha256_hex());
    let policy = dev_tdx_policy(&other, &mrtd(), "x", &f.collateral);
    let quote = f.sim.quote(&rd(7), &mrtd()).unwrap();
    match verify(&quote, &policy) {
        Err(VerifyError::UntrustedRoot { fingerprint, .. }) => {
            assert_eq!(fingerprint, f.sim.root_sha256_hex())
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn collateral_past_its_next_update_is_expired() {
    let f = fixture();
    let quote = f.sim.quote(&rd(7), &mrtd()).unwrap();
    let later = SystemTime::now() + Duration::from_secs(40 * 86_400);
    assert!(matches!(
        tdx(verify_at(&quote, &dev(&f), later)),
        TdxError::CollateralExpired(_)
    ));
}

#[test]
fn another_mrtd_is_not_allowed() {
    let f = fixture();
    let other = measure_file_bytes(b"other firmware");
    let quote = f.sim.quote(&rd(7), &other).unwrap();
    assert_eq!(
        verify(&quote, &dev(&f)),
        Err(VerifyError::MeasurementNotAllowed {
            measurement: other.to_string(),
            policy: DEV_TDX_POLICY_NAME.into()
        })
    );
}

#[test]
fn other_report_data_is_a_mismatch() {
    let f = fixture();
    let quote = f.sim.quote(&rd(8), &mrtd()).unwrap();
    assert!(matches!(
        verify(&quote, &dev(&f)),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
}

#[test]
fn debug_td_is_refused() {
    let f = fixture();
    let opts = SimTdxQuoteOptions {
        debug: true,
        ..SimTdxQuoteOptions::new(mrtd())
    };
    let quote = f.sim.quote_with(&rd(7), &opts).unwrap();
    assert_eq!(
        verify(&quote, &dev(&f)),
        Err(VerifyError::DebugAllowed {
            policy: DEV_TDX_POLICY_NAME.into()
        })
    );
}

fn shipped_policies() -> Vec<(String, Policy)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.display().to_string();
            out.push((name, Policy::load(&path).unwrap()));
        }
    }
    assert!(out.len() >= 3, "{out:?}");
    out
}

#[test]
fn every_shipped_policy_refuses_the_simulated_quote() {
    let f = fixture();
    let quote = f.sim.quote(&rd(7), &mrtd()).unwrap();
    for (file, mut policy) in shipped_policies() {
        // Even with the collateral and MRTD a deployment would add, the root is refused.
        if let Some(t) = policy.tdx.as_mut() {
            t.collateral = Some(f.collateral.clone());
            t.mrtd = dev(&f).tdx.unwrap().mrtd;
        }
        let result = verify(&quote, &policy);
        match policy.tee {
            TeeKind::Tdx => assert_eq!(
                result,
                Err(VerifyError::SimulatedNotAllowed {
                    policy: policy.name.clone()
                }),
                "{file}"
            ),
            _ => assert!(
                matches!(result, Err(VerifyError::TeeMismatch { .. })),
                "{file}: {result:?}"
            ),
        }
        assert!(!policy.trusts_simulated(), "{file}");
    }
}

#[test]
fn intel_root_policy_refuses_the_simulated_quote() {
    let f = fixture();
    let quote = f.sim.quote(&rd(7), &mrtd()).unwrap();
    let mut policy = dev(&f);
    policy.roots = vec![TrustedRoot::IntelSgxRoot];
    assert_eq!(
        verify(&quote, &policy),
        Err(VerifyError::SimulatedNotAllowed {
            policy: DEV_TDX_POLICY_NAME.into()
        })
    );
}

#[test]
fn sim_tdx_can_be_shared_between_threads() {
    // The configfs-tsm emulation and the process provider serve quotes from several threads.
    fn shareable<T: Send + Sync>() {}
    shareable::<SimTdx>();
}

#[test]
fn forged_collateral_is_invalid() {
    let f = fixture();
    let quote = f.sim.quote(&rd(7), &mrtd()).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&f.collateral).unwrap()).unwrap();
    let tcb_info = json["tcb_info"].as_str().unwrap().to_string();
    assert!(tcb_info.contains("\"pcesvn\":13"), "{tcb_info}");
    // A forger lowering the required PCESVN without Intel's (here: the simulator's) signature.
    json["tcb_info"] = tcb_info.replace("\"pcesvn\":13", "\"pcesvn\":12").into();
    let forged = f.collateral.with_file_name("forged.json");
    std::fs::write(&forged, json.to_string()).unwrap();
    let policy = dev_tdx_policy(&f.sim, &mrtd(), "x", &forged);
    assert!(matches!(
        tdx(verify(&quote, &policy)),
        TdxError::CollateralInvalid(_)
    ));
}

#[test]
fn collateral_signed_by_another_simulated_pki_is_invalid() {
    let f = fixture();
    let other_dir = tempfile::tempdir().unwrap();
    let other = SimTdx::load_or_create(other_dir.path()).unwrap();
    let foreign = other.write_collateral(other_dir.path()).unwrap();
    let quote = f.sim.quote(&rd(7), &mrtd()).unwrap();
    let policy = dev_tdx_policy(&f.sim, &mrtd(), "x", &foreign);
    assert!(matches!(
        tdx(verify(&quote, &policy)),
        TdxError::CollateralInvalid(_)
    ));
}
