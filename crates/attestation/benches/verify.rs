//! Verification cost per evidence family, cold and with a warm chain cache, with the crypto
//! primitive underneath as the floor. `cargo bench -p cdvm-attestation --all-features` prints a
//! table of medians; docs/benchmarks.md records a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdvm_attestation::policy::{AllowedMeasurement, MinTcb, Policy, TrustedRoot};
use cdvm_attestation::snp::{AttestationReport, CachingSnpVerifier, SnpVerifier};
use cdvm_attestation::{Evidence, SnpCertChain, SnpEvidence, TeeKind, Verifier};
use openssl::x509::X509;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel),
    )
    .unwrap()
}

fn pem_der(rel: &str) -> Vec<u8> {
    X509::stack_from_pem(&fixture(rel)).unwrap()[0]
        .to_der()
        .unwrap()
}

/// Median and 90th percentile of `f` over enough runs to take about a second.
fn measure(mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..20 {
        f();
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(1) || samples.len() < 50 {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 9 / 10])
}

/// Medians of `f` and `g` sampled alternately, so drift in machine speed (a shared 2-core VM)
/// hits both alike and their ratio is fair.
fn measure_pair(mut f: impl FnMut(), mut g: impl FnMut()) -> (Duration, Duration) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) || a.len() < 50 {
        let t = Instant::now();
        f();
        a.push(t.elapsed());
        let t = Instant::now();
        g();
        b.push(t.elapsed());
    }
    a.sort();
    b.sort();
    (a[a.len() / 2], b[b.len() / 2])
}

fn ratio_row(name: &str, (x, y): (Duration, Duration)) {
    println!(
        "| {name:<52} | {:>9.3} | {:>9.3} | {:>6.2} |",
        x.as_secs_f64() * 1e3,
        y.as_secs_f64() * 1e3,
        x.as_secs_f64() / y.as_secs_f64()
    );
}

fn row(name: &str, (median, p90): (Duration, Duration)) {
    println!(
        "| {name:<52} | {:>9.3} | {:>9.3} |",
        median.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3
    );
}

fn snp() -> (Evidence, Policy, cdvm_attestation::ReportData) {
    let report = fixture("snp/virtee_milan/report_milan.derived.bin");
    let parsed = AttestationReport::parse(&report).unwrap();
    let evidence = Evidence::SevSnp(SnpEvidence {
        report,
        chain: Some(SnpCertChain {
            vcek: fixture("snp/virtee_milan/vcek_milan.der"),
            ask: pem_der("snp/amd_roots/virtee_milan_ask.pem"),
            ark: pem_der("snp/amd_roots/virtee_milan_ark.pem"),
        }),
        gpus: Vec::new(),
        cloud_vtpm: None,
    });
    let policy = Policy {
        name: "bench".into(),
        tee: TeeKind::SevSnp,
        roots: vec![TrustedRoot::AmdMilan],
        measurements: vec![AllowedMeasurement {
            measurement: parsed.measurement.to_string(),
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
    };
    (evidence, policy, parsed.report_data)
}

fn main() {
    // Criterion-style filters are passed by `cargo bench`; this harness runs everything.
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    println!("| what | median ms | p90 ms |");
    println!("|---|---:|---:|");

    let (ev, policy, rd) = snp();
    row(
        "SNP: full verification, cold (SnpVerifier)",
        measure(|| {
            black_box(SnpVerifier.verify(&ev, &rd, &policy, now).unwrap());
        }),
    );
    // Breakdown: where a refusal stops tells what the stages before it cost.
    let mut wrong_rd = rd;
    wrong_rd.0[0] ^= 1;
    row(
        "SNP: breakdown, through chain+signature+binding (bad REPORT_DATA)",
        measure(|| {
            black_box(
                SnpVerifier
                    .verify(&ev, &wrong_rd, &policy, now)
                    .unwrap_err(),
            );
        }),
    );
    let mut genoa_only = policy.clone();
    genoa_only.roots = vec![TrustedRoot::AmdGenoa];
    row(
        "SNP: breakdown, through root selection (untrusted root)",
        measure(|| {
            black_box(SnpVerifier.verify(&ev, &rd, &genoa_only, now).unwrap_err());
        }),
    );
    let cached = CachingSnpVerifier::default();
    cached.verify(&ev, &rd, &policy, now).unwrap();
    row(
        "SNP: full verification, chain cached (CachingSnpVerifier)",
        measure(|| {
            black_box(cached.verify(&ev, &rd, &policy, now).unwrap());
        }),
    );

    // The floor: one ECDSA P-384 verify (the report signature) and the three chain links.
    let Evidence::SevSnp(snp) = &ev else {
        unreachable!()
    };
    let vcek = X509::from_der(&snp.chain.as_ref().unwrap().vcek).unwrap();
    let ask = X509::from_der(&snp.chain.as_ref().unwrap().ask).unwrap();
    let ark = X509::from_der(&snp.chain.as_ref().unwrap().ark).unwrap();
    let parsed = AttestationReport::parse(&snp.report).unwrap();
    let ec = vcek.public_key().unwrap().ec_key().unwrap();
    let digest = openssl::sha::sha384(&snp.report[..0x2A0]);
    let be = |le: &[u8]| {
        let mut b = le[..48].to_vec();
        b.reverse();
        openssl::bn::BigNum::from_slice(&b).unwrap()
    };
    let sig = openssl::ecdsa::EcdsaSig::from_private_components(
        be(&snp.report[0x2A0..0x2E8]),
        be(&snp.report[0x2E8..0x330]),
    )
    .unwrap();
    row(
        "floor: ECDSA P-384 verify of the report (OpenSSL)",
        measure(|| {
            assert!(black_box(sig.verify(&digest, &ec).unwrap()));
        }),
    );
    let fixed_sig = [
        sig.r().to_vec_padded(48).unwrap(),
        sig.s().to_vec_padded(48).unwrap(),
    ]
    .concat();
    let point = ec
        .public_key()
        .to_bytes(
            ec.group(),
            openssl::ec::PointConversionForm::UNCOMPRESSED,
            &mut openssl::bn::BigNumContext::new().unwrap(),
        )
        .unwrap();
    let aws_key = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
        point,
    )
    .unwrap();
    row(
        "floor: ECDSA P-384 verify of the report (aws-lc, as SnpVerifier)",
        measure(|| {
            black_box(aws_key.verify_sig(&snp.report[..0x2A0], &fixed_sig)).unwrap();
        }),
    );
    let ask_key = ask.public_key().unwrap();
    let ark_key = ark.public_key().unwrap();
    row(
        "floor: 3 RSA-PSS chain links ARK/ASK/VCEK (OpenSSL)",
        measure(|| {
            assert!(black_box(ark.verify(&ark_key).unwrap()));
            assert!(black_box(ask.verify(&ark_key).unwrap()));
            assert!(black_box(vcek.verify(&ask_key).unwrap()));
        }),
    );
    let sev_peer = sev_full_check(&snp.report, &snp.chain.as_ref().unwrap().vcek);
    row(
        "peer: virtee/sev 8 (openssl), VCEK+report parse, 3 links + report",
        measure(&sev_peer),
    );
    row(
        "parse: ATTESTATION_REPORT (1184 bytes)",
        measure(|| {
            black_box(AttestationReport::parse(black_box(&snp.report)).unwrap());
        }),
    );
    let _ = (parsed, SystemTime::now());
    tdx_rows();
    gpu_rows();

    // Paired comparisons: each pair sampled alternately.
    println!();
    println!("| pair (alternating samples) | A median ms | B median ms | A/B |");
    println!("|---|---:|---:|---:|");
    ratio_row(
        "A = SNP cold, B = ECDSA P-384 (OpenSSL)",
        measure_pair(
            || {
                black_box(SnpVerifier.verify(&ev, &rd, &policy, now).unwrap());
            },
            || {
                assert!(black_box(sig.verify(&digest, &ec).unwrap()));
            },
        ),
    );
    ratio_row(
        "A = SNP chain cached, B = ECDSA P-384 (OpenSSL)",
        measure_pair(
            || {
                black_box(cached.verify(&ev, &rd, &policy, now).unwrap());
            },
            || {
                assert!(black_box(sig.verify(&digest, &ec).unwrap()));
            },
        ),
    );
    tdx_pair();
}

/// virtee/sev's documented SNP check, per report: parse the VCEK and the report, then verify ARK
/// self-signature, ASK by ARK, VCEK by ASK and the report signature (its builtin Milan ARK/ASK,
/// parsed once). Its chain checks include the two pinned links our verifier skips.
fn sev_full_check(report: &[u8], vcek: &[u8]) -> impl Fn() {
    use sev::certs::snp::{builtin::milan, ca, Certificate, Chain, Verifiable};
    use sev::firmware::guest::AttestationReport as SevReport;
    use sev::parser::ByteParser;
    let (ark, ask) = (milan::ark().unwrap(), milan::ask().unwrap());
    let (report, vcek) = (report.to_vec(), vcek.to_vec());
    move || {
        let chain = Chain {
            ca: ca::Chain {
                ark: ark.clone(),
                ask: ask.clone(),
            },
            vek: Certificate::from_der(&vcek).unwrap(),
        };
        let parsed = SevReport::from_bytes(&report).unwrap();
        black_box((&chain, &parsed).verify()).unwrap();
    }
}

/// The dcap-qvl quote with its collateral at its pinned time, for our verifier and for dcap-qvl.
struct TdxCase {
    evidence: Evidence,
    quote: Vec<u8>,
    policy: Policy,
    rd: cdvm_attestation::ReportData,
    verifier: cdvm_attestation::tdx::TdxVerifier,
    qvl: dcap_qvl::QuoteCollateralV3,
    root: Vec<u8>,
    now_secs: u64,
}

fn tdx_case() -> TdxCase {
    use cdvm_attestation::tdx::{TdxCollateral, TdxEvidence, TdxPolicy, TdxQuote, TdxVerifier};
    let quote = fixture("tdx/dcapqvl/tdx_quote");
    let text = String::from_utf8(fixture("tdx/dcapqvl/tdx_quote_collateral.json")).unwrap();
    let parsed = TdxQuote::parse(&quote).unwrap();
    let mut policy =
        Policy::from_yaml("name: bench\ntee: tdx\nroots: [intel-sgx-root]\ntdx: {}\n").unwrap();
    policy.tdx = Some(TdxPolicy {
        mrtd: vec![AllowedMeasurement {
            measurement: parsed.report.mrtd.to_string(),
            source: "fixture".into(),
        }],
        ..TdxPolicy::default()
    });
    TdxCase {
        evidence: Evidence::Tdx(TdxEvidence {
            quote: quote.clone(),
            event_log: None,
            gpus: Vec::new(),
        }),
        quote,
        policy,
        rd: parsed.report.report_data,
        verifier: TdxVerifier::with_collateral(TdxCollateral::from_json(&text).unwrap()),
        qvl: serde_json::from_str(&text).unwrap(),
        root: cdvm_attestation::tdx::roots::intel_sgx_root_der()
            .unwrap()
            .to_vec(),
        now_secs: 1_752_919_234,
    }
}

impl TdxCase {
    fn ours(&self) {
        let now = UNIX_EPOCH + Duration::from_secs(self.now_secs);
        black_box(
            self.verifier
                .verify(&self.evidence, &self.rd, &self.policy, now)
                .unwrap(),
        );
    }

    fn dcap_qvl_alone(&self) {
        black_box(
            dcap_qvl::verify::QuoteVerifier::new(self.root.clone())
                .verify(&self.quote, &self.qvl, self.now_secs)
                .unwrap(),
        );
    }
}

fn tdx_rows() {
    let case = tdx_case();
    row(
        "TDX: full verification (TdxVerifier, collateral in memory)",
        measure(|| case.ours()),
    );
    row(
        "peer: dcap-qvl QuoteVerifier::verify alone",
        measure(|| case.dcap_qvl_alone()),
    );
}

fn tdx_pair() {
    let case = tdx_case();
    ratio_row(
        "A = TDX TdxVerifier, B = dcap-qvl alone",
        measure_pair(|| case.ours(), || case.dcap_qvl_alone()),
    );
}

fn gpu_rows() {
    use cdvm_attestation::nvidia::{verify_gpus, GpuEvidence, GpuPolicy};
    let report = String::from_utf8(fixture("nvidia/trustee/hopperAttestationReport.txt")).unwrap();
    let chain = String::from_utf8(fixture("nvidia/trustee/hopper_cert_chain_case1.txt")).unwrap();
    let gpu = GpuEvidence::from_text(&report, &chain).unwrap();
    let nonce = gpu.parse_report().unwrap().request.nonce;
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&nonce);
    let rd = cdvm_attestation::ReportData(rd);
    let policy = GpuPolicy::default();
    let now = SystemTime::now();
    let gpus = [gpu];
    row(
        "GPU: one H100 SPDM report + 5-cert chain (verify_gpus)",
        measure(|| {
            black_box(verify_gpus(&gpus, &rd, Some(&policy), now).unwrap());
        }),
    );
}
