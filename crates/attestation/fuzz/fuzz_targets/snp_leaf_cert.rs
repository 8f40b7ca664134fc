//! The SNP chain's certificate reading and signature checks (`x509-cert` + aws-lc, src/x509.rs):
//! arbitrary bytes as the VCEK of a real Milan report, with the pinned ASK and ARK, through the
//! whole verifier. Never panics; whatever it is, it is refused (only AMD's real VCEK verifies,
//! and the seed is a one-byte-flipped copy of it).
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use cdvm_attestation::policy::Policy;
use cdvm_attestation::snp::roots::AmdProduct;
use cdvm_attestation::snp::vcek::pinned_ask_ark;
use cdvm_attestation::snp::{AttestationReport, SnpVerifier};
use cdvm_attestation::{Evidence, ReportData, SnpCertChain, SnpEvidence, Verifier};
use libfuzzer_sys::fuzz_target;

const REPORT: &[u8] = include_bytes!("../../tests/fixtures/snp/virtee_milan/report_milan.derived.bin");
const VCEK: &[u8] = include_bytes!("../../tests/fixtures/snp/virtee_milan/vcek_milan.der");

/// What every input shares, built once: the policy's YAML parse would otherwise dominate each run.
struct Fixed {
    report_data: ReportData,
    policy: Policy,
    ask: Vec<u8>,
    ark: Vec<u8>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let report = AttestationReport::parse(REPORT).expect("fixture parses");
        let (ask, ark) = pinned_ask_ark(AmdProduct::Milan);
        let policy = Policy::from_yaml(&format!(
            "name: fuzz\ntee: sev-snp\nroots: [amd-milan]\nmeasurements:\n  - measurement: {}\n    source: fixture\n",
            report.measurement
        ))
        .expect("policy parses");
        Fixed { report_data: report.report_data, policy, ask, ark }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixed();
    let evidence = Evidence::SevSnp(SnpEvidence {
        report: REPORT.to_vec(),
        chain: Some(SnpCertChain { vcek: data.to_vec(), ask: f.ask.clone(), ark: f.ark.clone() }),
        gpus: Vec::new(),
        cloud_vtpm: None,
    });
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let verdict = SnpVerifier.verify(&evidence, &f.report_data, &f.policy, now);
    assert_eq!(verdict.is_ok(), data == VCEK, "only the real VCEK verifies");
});
