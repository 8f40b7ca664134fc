//! `cdvm verify` as a whole process: spawn, verify a real Azure Milan report with its PEM chain
//! offline, print every check, exit. `cargo bench -p cdvm-client --bench verify_process` prints a
//! table of medians; docs/benchmarks.md records a run.
//!
//! The target (≤ 5 ms) is stated for a machine where one OpenSSL ECDSA P-384 verify
//! takes 0.88 ms, so the same run measures that verify and scales every row by 0.88 / measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdvm_attestation::snp::roots::AmdProduct;
use cdvm_attestation::snp::vcek::pinned_ask_ark;
use cdvm_attestation::snp::AttestationReport;

const REFERENCE_ECDSA_MS: f64 = 0.88;
const RUNS: usize = 300;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../attestation/tests/fixtures/snp")
            .join(rel),
    )
    .unwrap()
}

fn pem(der: &[u8]) -> Vec<u8> {
    openssl::x509::X509::from_der(der)
        .unwrap()
        .to_pem()
        .unwrap()
}

/// Median and 90th percentile of `RUNS` spawns of `cmd` (after 10 unmeasured ones).
fn spawns(program: &Path, args: &[String]) -> (Duration, Duration) {
    let run = || {
        let status = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{} {args:?} failed", program.display());
    };
    for _ in 0..10 {
        run();
    }
    let mut samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed()
        })
        .collect();
    samples.sort();
    (samples[RUNS / 2], samples[RUNS * 9 / 10])
}

/// Median of one OpenSSL ECDSA P-384 verify (the yardstick the targets are stated against).
fn openssl_ecdsa_ms(report: &[u8], vcek: &[u8]) -> f64 {
    let cert = openssl::x509::X509::from_der(vcek).unwrap();
    let ec = cert.public_key().unwrap().ec_key().unwrap();
    let digest = openssl::sha::sha384(&report[..0x2A0]);
    let be = |le: &[u8]| {
        let mut b = le[..48].to_vec();
        b.reverse();
        openssl::bn::BigNum::from_slice(&b).unwrap()
    };
    let sig = openssl::ecdsa::EcdsaSig::from_private_components(
        be(&report[0x2A0..0x2E8]),
        be(&report[0x2E8..0x330]),
    )
    .unwrap();
    let mut samples: Vec<Duration> = (0..500)
        .map(|_| {
            let t = Instant::now();
            assert!(black_box(sig.verify(&digest, &ec).unwrap()));
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples[250].as_secs_f64() * 1e3
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let report = fixture("trustee_az_snp_vtpm/evidence-v1.snp_report.derived.bin");
    let vcek = fixture("trustee_az_snp_vtpm/evidence-v1.vcek.derived.der");
    let parsed = AttestationReport::parse(&report).unwrap();
    let report_path = dir.path().join("report.bin");
    std::fs::write(&report_path, &report).unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "name: bench\ntee: sev-snp\nroots: [amd-milan]\nmeasurements:\n  - measurement: {}\n    source: trustee evidence-v1.json\n",
            parsed.measurement
        ),
    )
    .unwrap();
    let (ask, ark) = pinned_ask_ark(AmdProduct::Milan);
    let chain = dir.path().join("chain.pem");
    std::fs::write(&chain, [pem(&vcek), pem(&ask), pem(&ark)].concat()).unwrap();
    let verify_args: Vec<String> = [
        "verify",
        "--policy",
        policy.to_str().unwrap(),
        report_path.to_str().unwrap(),
        "--report-data",
        &parsed.report_data.to_string(),
        "--at",
        "2026-01-01T00:00:00Z",
        "--certs",
        chain.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();

    let cargo_built = PathBuf::from(env!("CARGO_BIN_EXE_cdvm"));
    let static_built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/static/x86_64-unknown-linux-gnu/release/cdvm");
    let ecdsa = openssl_ecdsa_ms(&report, &vcek);
    let scale = REFERENCE_ECDSA_MS / ecdsa;
    println!("OpenSSL ECDSA P-384 verify here: {ecdsa:.3} ms; rows scaled by {scale:.2} to the 0.88 ms reference");
    println!();
    println!("| process | median ms | p90 ms | median scaled to reference ms |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, (median, p90): (Duration, Duration)| {
        let ms = median.as_secs_f64() * 1e3;
        println!(
            "| {name} | {ms:.2} | {:.2} | {:.2} |",
            p90.as_secs_f64() * 1e3,
            ms * scale
        );
    };
    row(
        "`/bin/true` (spawn floor)",
        spawns(Path::new("/bin/true"), &[]),
    );
    for (name, binary) in [
        ("cargo build --release (dynamic)", &cargo_built),
        ("scripts/build-release (static)", &static_built),
    ] {
        if !binary.exists() {
            println!("| {name}: not built | | | |");
            continue;
        }
        row(
            &format!("`cdvm --version`, {name}"),
            spawns(binary, &["--version".to_string()]),
        );
        row(
            &format!("`cdvm verify`, {name}"),
            spawns(binary, &verify_args),
        );
    }
}
