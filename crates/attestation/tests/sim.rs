//! The simulated secure processor: stable root, real-shaped signed reports, verified by the same
//! verifier — and refused by every shipped policy.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::SystemTime;

use cdvm_attestation::sim::{
    self, dev_policy, measure_file_bytes, wire, SimAttester, SimReportOptions, SimSecureProcessor,
};
use cdvm_attestation::snp::{AttestationReport, SigningKey, SnpVerifier, TcbVersion};
use cdvm_attestation::{
    AttestError, Attester, Evidence, Measurement, Policy, ReportData, TeeKind, Verifier,
    VerifyError,
};
use common::{report_of, snp_mut};

fn sp(dir: &Path) -> SimSecureProcessor {
    SimSecureProcessor::load_or_create(dir).unwrap()
}

fn rd(byte: u8) -> ReportData {
    ReportData([byte; 64])
}

fn agent() -> Measurement {
    measure_file_bytes(b"the agent binary")
}

fn verify(
    ev: &Evidence,
    expected: &ReportData,
    policy: &Policy,
) -> Result<cdvm_attestation::Claims, VerifyError> {
    SnpVerifier.verify(ev, expected, policy, SystemTime::now())
}

fn shipped_policy() -> Policy {
    Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/default-snp.yaml"))
        .unwrap()
}

#[test]
fn root_is_stable_across_restarts_and_key_file_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let a = sp(dir.path());
    let b = sp(dir.path());
    assert_eq!(a.ark_sha256_hex(), b.ark_sha256_hex());
    assert_eq!(a.chip_id(), b.chip_id());
    let mode = std::fs::metadata(dir.path().join(sim::KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let ark_pem = std::fs::read(dir.path().join(sim::ARK_FILE)).unwrap();
    assert_eq!(
        openssl::x509::X509::from_pem(&ark_pem)
            .unwrap()
            .to_der()
            .unwrap(),
        a.ark_der()
    );
    // Another directory is another processor.
    let other = tempfile::tempdir().unwrap();
    assert_ne!(sp(other.path()).ark_sha256_hex(), a.ark_sha256_hex());
}

#[test]
fn concurrent_creators_agree_on_one_root() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || sp(&path).ark_sha256_hex())
        })
        .collect();
    let fps: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(fps.iter().all(|f| f == &fps[0]), "{fps:?}");
    assert_eq!(sp(&path).ark_sha256_hex(), fps[0]);
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_readable_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    sp(dir.path());
    let key = dir.path().join(sim::KEY_FILE);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        SimSecureProcessor::load_or_create(dir.path()),
        Err(sim::SimError::InsecurePermissions { mode: 0o644, .. })
    ));
}

#[test]
fn a_corrupt_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join(sim::KEY_FILE);
    std::fs::write(&key, "not pem").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        SimSecureProcessor::load_or_create(dir.path()),
        Err(sim::SimError::BadKeyStore { .. })
    ));
}

#[test]
fn report_is_structurally_real() {
    let dir = tempfile::tempdir().unwrap();
    let p = sp(dir.path());
    let ev = p.report(&rd(7), &agent(), &SimReportOptions::default());
    let Evidence::SevSnp(snp) = &ev else {
        panic!("sim evidence is SNP")
    };
    assert_eq!(snp.report.len(), 1184);
    let r = report_of(&ev);
    assert_eq!(r.to_bytes().as_slice(), snp.report.as_slice());
    assert_eq!(r.version, 3);
    assert_eq!(r.policy.bits(), 0x30000);
    assert!(!r.policy.debug());
    assert_eq!((r.vmpl, r.sig_algo), (0, 1));
    assert_eq!(r.signing_key(), SigningKey::Vcek);
    let tcb = TcbVersion::new(3, 0, 8, 115);
    assert_eq!(
        [r.reported_tcb, r.current_tcb, r.committed_tcb, r.launch_tcb],
        [tcb; 4]
    );
    assert_eq!(r.report_data, rd(7));
    assert_eq!(r.measurement, agent());
    assert_eq!(r.chip_id, p.chip_id());
    // Random report ids; signatures use the 48 low bytes only.
    let again = report_of(&p.report(&rd(7), &agent(), &SimReportOptions::default()));
    assert_ne!(r.report_id, again.report_id);
    assert!(r.signature_r[48..]
        .iter()
        .chain(&r.signature_s[48..])
        .all(|&b| b == 0));

    let debug = report_of(&p.report(
        &rd(7),
        &agent(),
        &SimReportOptions {
            debug: true,
            ..Default::default()
        },
    ));
    assert_eq!(debug.policy.bits(), 0x30000 | (1 << 19));
}

#[test]
fn sim_evidence_verifies_under_its_dev_policy_and_is_flagged_simulated() {
    let dir = tempfile::tempdir().unwrap();
    let p = sp(dir.path());
    let policy = dev_policy(&p, &agent(), "test build");
    assert_eq!(policy.name, sim::DEV_POLICY_NAME);
    let ev = p.report(&rd(1), &agent(), &SimReportOptions::default());
    let claims = verify(&ev, &rd(1), &policy).unwrap();
    assert!(claims.simulated);
    assert!(claims.root.contains("SIMULATED"), "{}", claims.root);
    assert!(claims.root.contains(&p.ark_sha256_hex()));
    assert_eq!(claims.measurement, agent());
    assert_eq!(
        claims.checks[3].detail,
        "CDVM-SIMULATED-ARK → CDVM-SIMULATED-ASK → VCEK"
    );
    assert!(
        claims.checks[6].detail.contains("skipped"),
        "{}",
        claims.checks[6].detail
    );
}

#[test]
fn sim_evidence_under_the_shipped_policy_is_simulated_not_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let p = sp(dir.path());
    let ev = p.report(&rd(1), &agent(), &SimReportOptions::default());
    assert_eq!(
        verify(&ev, &rd(1), &shipped_policy()),
        Err(VerifyError::SimulatedNotAllowed {
            policy: "default-sev-snp".into()
        })
    );
}

#[test]
fn sim_debug_report_is_refused_by_the_dev_policy() {
    let dir = tempfile::tempdir().unwrap();
    let p = sp(dir.path());
    let ev = p.report(
        &rd(1),
        &agent(),
        &SimReportOptions {
            debug: true,
            ..Default::default()
        },
    );
    assert_eq!(
        verify(&ev, &rd(1), &dev_policy(&p, &agent(), "x")),
        Err(VerifyError::DebugAllowed {
            policy: sim::DEV_POLICY_NAME.into()
        })
    );
}

#[test]
fn sim_evidence_under_another_simulators_policy_is_an_untrusted_root() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (p1, p2) = (sp(d1.path()), sp(d2.path()));
    let ev = p1.report(&rd(1), &agent(), &SimReportOptions::default());
    match verify(&ev, &rd(1), &dev_policy(&p2, &agent(), "x")) {
        Err(VerifyError::UntrustedRoot {
            fingerprint,
            trusted,
            ..
        }) => {
            assert_eq!(fingerprint, p1.ark_sha256_hex());
            assert!(trusted.contains(&p2.ark_sha256_hex()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tampered_sim_report_is_signature_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let p = sp(dir.path());
    let policy = dev_policy(&p, &agent(), "x");
    for offset in [0x08, 0x50, 0x90, 0x1A0, 0x2A0, 0x2E8] {
        let mut ev = p.report(&rd(1), &agent(), &SimReportOptions::default());
        snp_mut(&mut ev).report[offset] ^= 1;
        assert_eq!(
            verify(&ev, &rd(1), &policy),
            Err(VerifyError::SignatureInvalid),
            "offset {offset:#x}"
        );
    }
}

#[test]
fn sim_policy_rules_still_apply() {
    let dir = tempfile::tempdir().unwrap();
    let p = sp(dir.path());
    let ev = p.report(
        &rd(1),
        &agent(),
        &SimReportOptions {
            debug: false,
            tcb: TcbVersion::new(1, 0, 1, 1),
            vmpl: 0,
        },
    );
    let mut policy = dev_policy(&p, &agent(), "x");
    assert!(matches!(
        verify(&ev, &rd(2), &policy),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
    policy.min_tcb.snp = 2;
    assert!(matches!(
        verify(&ev, &rd(1), &policy),
        Err(VerifyError::TcbTooLow { .. })
    ));
    let other = dev_policy(&p, &measure_file_bytes(b"another binary"), "x");
    assert!(matches!(
        verify(&ev, &rd(1), &other),
        Err(VerifyError::MeasurementNotAllowed { .. })
    ));
}

#[test]
fn measure_file_bytes_is_sha384() {
    assert_eq!(
        measure_file_bytes(b"abc").to_string(),
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
    );
}

#[test]
fn wire_request_is_exactly_64_bytes() {
    let req = wire::encode_request(&rd(9));
    assert_eq!(req.len(), 64);
    assert_eq!(wire::decode_request(&req).unwrap(), rd(9));
    for len in [0, 63, 65] {
        assert!(
            matches!(wire::decode_request(&vec![0; len]), Err(wire::WireError::BadRequestLength(l)) if l == len)
        );
    }
}

#[test]
fn wire_response_round_trips_evidence_json() {
    let dir = tempfile::tempdir().unwrap();
    let ev = sp(dir.path()).report(&rd(3), &agent(), &SimReportOptions::default());
    let bytes = wire::encode_response(&ev).unwrap();
    assert_eq!(bytes, serde_json::to_vec(&ev).unwrap());
    assert_eq!(wire::decode_response(&bytes).unwrap(), ev);
    assert!(matches!(
        wire::decode_response(b"{}"),
        Err(wire::WireError::Json(_))
    ));
}

#[test]
fn framed_responses_round_trip_and_refuse_oversize_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let ev = sp(dir.path()).report(&rd(4), &agent(), &SimReportOptions::default());
    let framed = wire::encode_framed_response(&ev).unwrap();
    let body_len = u32::from_be_bytes(framed[..4].try_into().unwrap()) as usize;
    assert_eq!(body_len, framed.len() - 4);
    // Two responses back to back on one stream (a serial port): each read takes exactly one.
    let mut stream = std::io::Cursor::new([framed.clone(), framed.clone()].concat());
    assert_eq!(wire::read_framed_response(&mut stream).unwrap(), ev);
    assert_eq!(wire::read_framed_response(&mut stream).unwrap(), ev);
    let huge = ((wire::MAX_RESPONSE_LEN + 1) as u32).to_be_bytes();
    assert!(matches!(
        wire::read_framed_response(&mut std::io::Cursor::new(huge)),
        Err(wire::WireError::ResponseTooLarge)
    ));
    assert!(matches!(
        wire::read_framed_response(&mut std::io::Cursor::new(&framed[..framed.len() - 1])),
        Err(wire::WireError::Io(_))
    ));
}

#[test]
fn serial_attester_without_its_port_is_unavailable_naming_the_device() {
    // The real virtio-serial path is exercised by the QEMU end-to-end test; here, the failure.
    let err = SimAttester::serial("/dev/no-such-vport9p9")
        .evidence(&rd(5))
        .unwrap_err();
    assert!(
        matches!(&err, cdvm_attestation::AttestError::Unavailable { path, .. } if path == "/dev/no-such-vport9p9"),
        "{err}"
    );
}

/// A one-shot server that behaves as the provider's: read 64 bytes, answer, close.
fn serve_once(
    listener: UnixListener,
    answer: impl FnOnce(ReportData) -> Vec<u8> + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut req = [0u8; 64];
        conn.read_exact(&mut req).unwrap();
        let rd = wire::decode_request(&req).unwrap();
        conn.write_all(&answer(rd)).unwrap();
    })
}

#[test]
fn sim_attester_gets_verifiable_evidence_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let p = sp(dir.path());
    let policy = dev_policy(&p, &agent(), "x");
    let sock = dir.path().join("sp.sock");
    let server = serve_once(UnixListener::bind(&sock).unwrap(), move |rd| {
        wire::encode_response(&p.report(&rd, &agent(), &SimReportOptions::default())).unwrap()
    });
    let attester = SimAttester::new(&sock);
    assert_eq!(attester.tee(), TeeKind::SevSnp);
    let ev = attester.evidence(&rd(42)).unwrap();
    server.join().unwrap();
    assert!(verify(&ev, &rd(42), &policy).unwrap().simulated);
}

#[test]
fn sim_attester_reports_unavailable_and_bad_responses() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody.sock");
    assert!(matches!(
        SimAttester::new(&sock).evidence(&rd(1)),
        Err(AttestError::Unavailable { .. })
    ));

    let server = serve_once(UnixListener::bind(&sock).unwrap(), |_| b"not json".to_vec());
    assert!(matches!(
        SimAttester::new(&sock).evidence(&rd(1)),
        Err(AttestError::BadResponse(_))
    ));
    server.join().unwrap();

    // Evidence for other REPORT_DATA than asked is caught at the agent.
    let p = sp(dir.path());
    std::fs::remove_file(&sock).unwrap();
    let server = serve_once(UnixListener::bind(&sock).unwrap(), move |_| {
        wire::encode_response(&p.report(&rd(2), &agent(), &SimReportOptions::default())).unwrap()
    });
    match SimAttester::new(&sock).evidence(&rd(1)) {
        Err(AttestError::BadResponse(msg)) => assert!(msg.contains("REPORT_DATA"), "{msg}"),
        other => panic!("{other:?}"),
    }
    server.join().unwrap();
}

#[test]
fn sim_report_parses_with_the_public_parser() {
    let dir = tempfile::tempdir().unwrap();
    let ev = sp(dir.path()).report(&rd(5), &agent(), &SimReportOptions::default());
    let Evidence::SevSnp(s) = ev else {
        panic!("sim evidence is SNP")
    };
    AttestationReport::parse(&s.report).unwrap();
}
