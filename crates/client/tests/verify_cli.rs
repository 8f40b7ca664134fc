//! `cdvm verify` as a process, on a real Azure Milan report: certificates from a PEM bundle, a
//! certificate table, or the offline VCEK cache; every refusal with exit code 3 or 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use cdvm_attestation::snp::cert_table::{self, CertEntry, CertKind};
use cdvm_attestation::snp::roots::AmdProduct;
use cdvm_attestation::snp::vcek::{cache_file, pinned_ask_ark};
use cdvm_attestation::snp::AttestationReport;

fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../attestation/tests/fixtures/snp")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const REPORT: &str = "trustee_az_snp_vtpm/evidence-v1.snp_report.derived.bin";
const VCEK: &str = "trustee_az_snp_vtpm/evidence-v1.vcek.derived.der";
const AT: &str = "2026-01-01T00:00:00Z";

fn cdvm(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cdvm"))
        .args(args)
        .output()
        .unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    report: PathBuf,
    policy: PathBuf,
    report_data: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture(REPORT);
    let parsed = AttestationReport::parse(&bytes).unwrap();
    let report = dir.path().join("report.bin");
    std::fs::write(&report, &bytes).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "name: azure-milan-sample\ntee: sev-snp\nroots: [amd-milan]\nmeasurements:\n  - measurement: {}\n    source: trustee evidence-v1.json\n",
            parsed.measurement
        ),
    )
    .unwrap();
    Setup {
        report_data: parsed.report_data.to_string(),
        dir,
        report,
        policy,
    }
}

impl Setup {
    /// `cdvm verify --policy POLICY REPORT --report-data RD --at AT EXTRA…`
    fn verify(&self, policy: &Path, report_data: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "verify",
            "--policy",
            path(policy),
            path(&self.report),
            "--report-data",
            report_data,
            "--at",
            AT,
        ];
        args.extend_from_slice(extra);
        cdvm(&args)
    }

    /// The report's VCEK with the pinned Milan ASK and ARK, as a PEM bundle file.
    fn pem_bundle(&self) -> PathBuf {
        let (ask, ark) = pinned_ask_ark(AmdProduct::Milan);
        let bundle = self.dir.path().join("chain.pem");
        std::fs::write(
            &bundle,
            [pem(&fixture(VCEK)), pem(&ask), pem(&ark)].concat(),
        )
        .unwrap();
        bundle
    }
}

fn pem(der: &[u8]) -> Vec<u8> {
    openssl::x509::X509::from_der(der)
        .unwrap()
        .to_pem()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn raw_report_with_a_pem_bundle_verifies_and_prints_every_check() {
    let s = setup();
    let bundle = s.pem_bundle();
    let certs = ["--certs", path(&bundle)];
    let out = ok(&s.verify(&s.policy, &s.report_data, &certs));
    for check in [
        "chain",
        "signature",
        "report-data",
        "measurement",
        "debug",
        "tcb",
        "ACCEPTED",
        // The real Milan report under a hardware-binding policy: the CPU measured the image.
        "✓ image identity: hardware-measured",
    ] {
        assert!(out.contains(check), "{check} missing:\n{out}");
    }
    let json = ok(&s.verify(
        &s.policy,
        &s.report_data,
        &["--certs", path(&bundle), "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["verdict"], "accepted");
    assert_eq!(v["claims"]["root"], "AMD ARK-Milan");
    assert_eq!(v["claims"]["simulated"], false);
    assert_eq!(v["claims"]["image_identity"]["binding"], "hardware");

    // Tamper twins: another report data, a flipped report byte.
    let mut wrong = s.report_data.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    let out = s.verify(&s.policy, &wrong, &certs);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("report data mismatch"));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("✗ report-data:") && shown.contains("REFUSED"),
        "{shown}"
    );
    let mut bytes = fixture(REPORT);
    bytes[0x90] ^= 1;
    std::fs::write(&s.report, bytes).unwrap();
    let out = s.verify(&s.policy, &s.report_data, &certs);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature invalid"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("✗ signature:"));
}

#[test]
fn certificate_table_and_offline_cache_supply_the_vcek() {
    let s = setup();
    let (ask, ark) = pinned_ask_ark(AmdProduct::Milan);
    let table = cert_table::serialize(&[
        CertEntry {
            kind: CertKind::Vcek,
            der: fixture(VCEK),
        },
        CertEntry {
            kind: CertKind::Ask,
            der: ask,
        },
        CertEntry {
            kind: CertKind::Ark,
            der: ark,
        },
    ]);
    let table_file = s.dir.path().join("certs.bin");
    std::fs::write(&table_file, table).unwrap();
    ok(&s.verify(&s.policy, &s.report_data, &["--certs", path(&table_file)]));

    // No certificates given: the empty cache cannot help and nothing is fetched (exit 2)…
    let cache = s.dir.path().join("cache");
    let from_cache = ["--cache-dir", path(&cache)];
    let out = s.verify(&s.policy, &s.report_data, &from_cache);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no VCEK in the cache"));
    // …until the VCEK is in the cache, under its chip-and-TCB name.
    let report = AttestationReport::parse(&fixture(REPORT)).unwrap();
    let file = cache_file(&cache, AmdProduct::Milan, &report);
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(file, fixture(VCEK)).unwrap();
    ok(&s.verify(&s.policy, &s.report_data, &from_cache));
}

#[test]
fn raw_evidence_without_report_data_and_the_shipped_policy_are_refused() {
    let s = setup();
    let out = cdvm(&["verify", "--policy", path(&s.policy), path(&s.report)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--report-data is required"));
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/default-snp.yaml");
    let bundle = s.pem_bundle();
    let out = s.verify(&shipped, &s.report_data, &["--certs", path(&bundle)]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
