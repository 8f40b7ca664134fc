//! Shared helpers: fixture loading, evidence assembly, policies, pinned times.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdvm_attestation::policy::{AllowedMeasurement, MinTcb, Policy, TrustedRoot};
use cdvm_attestation::snp::{AttestationReport, SnpVerifier};
use cdvm_attestation::{
    Claims, Evidence, ReportData, SnpCertChain, SnpEvidence, TeeKind, Verifier, VerifyError,
};
use openssl::x509::X509;

/// 2026-01-01T00:00:00Z: inside every SNP fixture's validity except the AWS VLEK.
pub const T2026: u64 = 1_767_225_600;
/// 2025-06-01T00:00:00Z: inside the AWS VLEK's validity.
pub const T2025_06: u64 = 1_748_736_000;
/// 2031-01-01T00:00:00Z: after every fixture VCEK expired, before the ARKs/ASKs did.
pub const T2031: u64 = 1_924_992_000;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/snp")
        .join(rel)
}

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(path(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// The `index`-th certificate of a PEM file, or the DER file itself, as DER.
pub fn cert_der(rel: &str, index: usize) -> Vec<u8> {
    let bytes = fixture(rel);
    if rel.ends_with(".der") {
        assert_eq!(index, 0);
        return bytes;
    }
    X509::stack_from_pem(&bytes).unwrap()[index]
        .to_der()
        .unwrap()
}

pub const MILAN_ASK: (&str, usize) = ("amd_roots/virtee_milan_ask.pem", 0);
pub const MILAN_ARK: (&str, usize) = ("amd_roots/virtee_milan_ark.pem", 0);
pub const GENOA_ASK: (&str, usize) = ("amd_roots/virtee_genoa_ask.pem", 0);
pub const GENOA_ARK: (&str, usize) = ("amd_roots/virtee_genoa_ark.pem", 0);
/// ASVK (SEV-VLEK-Milan) is the first certificate of that file, ARK-Milan the second.
pub const MILAN_ASVK: (&str, usize) = ("amd_roots/gosevguest_ask_ark_milan_vlek.pem", 0);

/// A real report with the leaf that signed it and its product line.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub name: &'static str,
    pub report: &'static str,
    pub leaf: (&'static str, usize),
    pub genoa: bool,
}

/// Every valid, non-debug, VCEK-signed fixture report.
pub const VALID: &[Case] = &[
    Case {
        name: "virtee_milan",
        report: "virtee_milan/report_milan.derived.bin",
        leaf: ("virtee_milan/vcek_milan.der", 0),
        genoa: false,
    },
    Case {
        name: "trustee_milan",
        report: "trustee_milan/test-report.bin",
        leaf: ("trustee_milan/test-vcek.der", 0),
        genoa: false,
    },
    Case {
        name: "trustee_e2e_genoa",
        report: "trustee_e2e/evidence.snp_report.derived.bin",
        leaf: ("trustee_e2e/evidence.vcek.derived.der", 0),
        genoa: true,
    },
    Case {
        name: "azure_genoa",
        report: "trustee_az_snp_vtpm/evidence-genoa.snp_report.derived.bin",
        leaf: ("trustee_az_snp_vtpm/vcek-genoa.pem", 0),
        genoa: true,
    },
    Case {
        name: "azure_v0",
        report: "trustee_az_snp_vtpm/evidence-v0.snp_report.derived.bin",
        leaf: ("trustee_az_snp_vtpm/evidence-v0.vcek.derived.pem", 0),
        genoa: false,
    },
    Case {
        name: "azure_v1",
        report: "trustee_az_snp_vtpm/evidence-v1.snp_report.derived.bin",
        leaf: ("trustee_az_snp_vtpm/evidence-v1.vcek.derived.der", 0),
        genoa: false,
    },
    Case {
        name: "azure_v2",
        report: "trustee_az_snp_vtpm/evidence-v2.snp_report.derived.bin",
        leaf: ("trustee_az_snp_vtpm/evidence-v2.vcek.derived.der", 0),
        genoa: false,
    },
    Case {
        name: "azure_hcl",
        report: "trustee_az_snp_vtpm/hcl-report.snp_report.derived.bin",
        leaf: ("trustee_az_snp_vtpm/vcek.pem", 0),
        genoa: false,
    },
];

/// The go-sev-guest Milan report: valid, but its guest policy allows DEBUG.
pub const DEBUG_CASE: Case = Case {
    name: "gosevguest_milan",
    report: "gosevguest_milan/attestation.bin",
    leaf: ("gosevguest_milan/vcek.der", 0),
    genoa: false,
};

/// Every fixture report file (for parse round trips).
pub const ALL_REPORTS: &[&str] = &[
    "virtee_milan/report_milan.derived.bin",
    "trustee_milan/test-report.bin",
    "trustee_milan/test-vlek-report.bin",
    "trustee_e2e/evidence.snp_report.derived.bin",
    "gosevguest_milan/attestation.bin",
    "trustee_az_snp_vtpm/evidence-genoa.snp_report.derived.bin",
    "trustee_az_snp_vtpm/evidence-v0.snp_report.derived.bin",
    "trustee_az_snp_vtpm/evidence-v1.snp_report.derived.bin",
    "trustee_az_snp_vtpm/evidence-v2.snp_report.derived.bin",
    "trustee_az_snp_vtpm/hcl-report.snp_report.derived.bin",
];

pub fn build(report: Vec<u8>, leaf: Vec<u8>, ask: (&str, usize), ark: (&str, usize)) -> Evidence {
    Evidence::SevSnp(SnpEvidence {
        report,
        chain: Some(SnpCertChain {
            vcek: leaf,
            ask: cert_der(ask.0, ask.1),
            ark: cert_der(ark.0, ark.1),
        }),
        gpus: Vec::new(),
        cloud_vtpm: None,
    })
}

impl Case {
    pub fn evidence(&self) -> Evidence {
        let (ask, ark) = if self.genoa {
            (GENOA_ASK, GENOA_ARK)
        } else {
            (MILAN_ASK, MILAN_ARK)
        };
        build(
            fixture(self.report),
            cert_der(self.leaf.0, self.leaf.1),
            ask,
            ark,
        )
    }

    pub fn root(&self) -> TrustedRoot {
        if self.genoa {
            TrustedRoot::AmdGenoa
        } else {
            TrustedRoot::AmdMilan
        }
    }
}

pub fn snp(ev: &Evidence) -> &SnpEvidence {
    match ev {
        Evidence::SevSnp(s) => s,
        other => panic!("not SNP evidence: {:?}", other.tee()),
    }
}

pub fn snp_mut(ev: &mut Evidence) -> &mut SnpEvidence {
    match ev {
        Evidence::SevSnp(s) => s,
        other => panic!("not SNP evidence: {:?}", other.tee()),
    }
}

pub fn report_of(ev: &Evidence) -> AttestationReport {
    AttestationReport::parse(&snp(ev).report).unwrap()
}

/// A policy trusting `roots` that allows exactly this evidence's measurement, TCB floor zero.
pub fn policy_for(ev: &Evidence, roots: Vec<TrustedRoot>) -> Policy {
    policy_allowing(&report_of(ev).measurement.to_string(), roots)
}

/// A policy trusting `roots` that allows exactly `measurement` (96 hex), TCB floor zero.
pub fn policy_allowing(measurement: &str, roots: Vec<TrustedRoot>) -> Policy {
    Policy {
        name: "test".into(),
        tee: TeeKind::SevSnp,
        roots,
        measurements: vec![AllowedMeasurement {
            measurement: measurement.into(),
            source: "fixture".into(),
        }],
        min_tcb: MinTcb::default(),
        min_tcb_by_product: Default::default(),
        allow_debug: false,
        allow_migration_agent: false,
        max_vmpl: 0,
        tdx: None,
        gpu: None,
        azure_vtpm: None,
        image_binding: Default::default(),
        cloud_vtpm: None,
        models: Vec::new(),
    }
}

/// Verifies with the evidence's own REPORT_DATA as the expected value.
pub fn verify(ev: &Evidence, policy: &Policy, now: u64) -> Result<Claims, VerifyError> {
    let expected: ReportData = report_of(ev).report_data;
    SnpVerifier.verify(ev, &expected, policy, at(now))
}

pub fn check_names(claims: &Claims) -> Vec<&str> {
    claims.checks.iter().map(|c| c.name.as_str()).collect()
}
