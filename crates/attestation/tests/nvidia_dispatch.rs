//! GPU evidence checked together with the CPU evidence through `AnyVerifier`: the GPU must be
//! bound to the same report data (job and guest key) the CPU evidence carries.
//!
//! No real CPU evidence carries the real GPU sample's nonce, so the CPU side is the simulated
//! SNP secure processor (it signs whatever report data it is given): its report data's first
//! half is the GPU report's SPDM request nonce, and the real H100 evidence is attached.
#![cfg(all(feature = "sim", feature = "nvidia"))]
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::SystemTime;

use cdvm_attestation::nvidia::{GpuError, GpuEvidence, GpuPolicy};
use cdvm_attestation::sim::{dev_policy, measure_file_bytes, SimReportOptions, SimSecureProcessor};
use cdvm_attestation::{AnyVerifier, Evidence, Policy, ReportData, Verifier, VerifyError};

const NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";

fn text(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nvidia")
        .join(rel);
    std::fs::read_to_string(p).unwrap()
}

fn gpu() -> GpuEvidence {
    GpuEvidence::from_text(
        &text("trustee/hopperAttestationReport.txt"),
        &text("trustee/hopper_cert_chain_case1.txt"),
    )
    .unwrap()
}

fn report_data(first_half: &[u8]) -> ReportData {
    let mut rd = [0xC3u8; 64]; // the second half: the rest of the job/key binding
    rd[..32].copy_from_slice(first_half);
    ReportData(rd)
}

struct Setup {
    _dir: tempfile::TempDir,
    evidence: Evidence,
    policy: Policy,
}

/// Simulated SNP evidence binding `rd`, with the real H100 evidence attached.
fn setup(rd: &ReportData, gpus: Vec<GpuEvidence>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sp = SimSecureProcessor::load_or_create(dir.path()).unwrap();
    let m = measure_file_bytes(b"agent");
    let mut evidence = sp.report(rd, &m, &SimReportOptions::default());
    let Evidence::SevSnp(snp) = &mut evidence else {
        panic!("not SNP")
    };
    snp.gpus = gpus;
    let mut policy = dev_policy(&sp, &m, "test");
    policy.gpu = Some(GpuPolicy {
        required: true,
        ..GpuPolicy::default()
    });
    Setup {
        _dir: dir,
        evidence,
        policy,
    }
}

fn verify(s: &Setup, expected: &ReportData) -> Result<cdvm_attestation::Claims, VerifyError> {
    AnyVerifier.verify(&s.evidence, expected, &s.policy, SystemTime::now())
}

#[test]
fn cpu_and_gpu_bound_to_the_same_report_data_are_accepted() {
    let rd = report_data(&hex::decode(NONCE).unwrap());
    let s = setup(&rd, vec![gpu()]);
    let claims = verify(&s, &rd).unwrap();
    assert!(claims.simulated);
    let names: Vec<&str> = claims.checks.iter().map(|c| c.name.as_str()).collect();
    // The CPU checks come first, then the GPU's.
    let cpu_end = names.iter().position(|n| *n == "gpu-count").unwrap();
    assert!(names[..cpu_end].contains(&"report-data"));
    assert_eq!(
        &names[cpu_end..],
        [
            "gpu-count",
            "gpu0-device",
            "gpu0-report",
            "gpu0-chain",
            "gpu0-validity",
            "gpu0-leaf",
            "gpu0-signature",
            "gpu0-fwid",
            "gpu0-nonce",
            "gpu0-measurements",
            "gpu0-versions"
        ]
    );
    // Evidence with GPUs survives the wire format.
    let json = serde_json::to_string(&s.evidence).unwrap();
    assert_eq!(serde_json::from_str::<Evidence>(&json).unwrap(), s.evidence);
}

#[test]
fn gpu_evidence_without_a_gpu_policy_is_refused() {
    let rd = report_data(&hex::decode(NONCE).unwrap());
    let mut s = setup(&rd, vec![gpu()]);
    s.policy.gpu = None;
    assert_eq!(
        verify(&s, &rd).unwrap_err(),
        VerifyError::Gpu(GpuError::NotInPolicy { count: 1 })
    );
}

#[test]
fn a_gpu_bound_to_another_job_is_refused() {
    // The CPU evidence is genuinely this job's (its report data is what the client expects),
    // but the GPU answered another nonce.
    let rd = report_data(&[0x11; 32]);
    let s = setup(&rd, vec![gpu()]);
    assert_eq!(
        verify(&s, &rd).unwrap_err(),
        VerifyError::Gpu(GpuError::NonceMismatch {
            gpu: 0,
            expected: "11".repeat(32),
            found: NONCE.into()
        })
    );
}

#[test]
fn the_cpu_binding_is_checked_first() {
    // Evidence for another job entirely: the CPU report data check refuses it before any GPU.
    let rd = report_data(&hex::decode(NONCE).unwrap());
    let s = setup(&rd, vec![gpu()]);
    let mut other = rd;
    other.0[63] ^= 1;
    assert!(matches!(
        verify(&s, &other),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
}

#[test]
fn a_required_gpu_that_is_absent_is_refused() {
    let rd = report_data(&hex::decode(NONCE).unwrap());
    let s = setup(&rd, Vec::new());
    assert_eq!(
        verify(&s, &rd).unwrap_err(),
        VerifyError::Gpu(GpuError::Missing)
    );
}
