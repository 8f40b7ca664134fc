//! Shared helpers of the TDX tests: fixtures, pinned times, policies, evidence.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdvm_attestation::policy::{AllowedMeasurement, Policy};
use cdvm_attestation::tdx::{TdxEvidence, TdxPolicy, TdxQuote};
use cdvm_attestation::{
    AnyVerifier, Claims, Evidence, ReportData, SnpCertChain, SnpEvidence, Verifier, VerifyError,
};
use openssl::x509::X509;

/// dcap-qvl `tdx_quote` + `tdx_quote_collateral.json`: the last second of the collateral's
/// overlap window (2025-07-19T10:00:34Z).
pub const T_DCAPQVL: u64 = 1_752_919_234;
/// `tdx_quote_outdated_collateral.json` (issued 2026-02-18): 2026-03-20T10:41:14Z.
pub const T_OUTDATED_COLLATERAL: u64 = 1_774_003_274;
/// go-tdx-guest's verification time and the 2023 collateral's window: 2023-07-01T01:00:00Z.
pub const T_GOTDXGUEST: u64 = 1_688_173_200;
/// 2053-07-01T01:00:00Z: go-tdx-guest's "certificate has expired" time (PCK leaf ends 2029).
pub const T_2053: u64 = 2_635_102_800;
/// 2030-03-17T17:46:40Z: long after every collateral in the fixtures expired.
pub const T_2030: u64 = 1_900_000_000;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tdx")
        .join(rel)
}

pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(path(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

pub const DCAP_QUOTE: &str = "dcapqvl/tdx_quote";
pub const DCAP_COLLATERAL: &str = "dcapqvl/tdx_quote_collateral.json";
pub const OUTDATED_QUOTE: &str = "dcapqvl/tdx_quote_outdated";
pub const OUTDATED_COLLATERAL: &str = "dcapqvl/tdx_quote_outdated_collateral.json";
pub const SPR_QUOTE: &str = "gotdxguest/tdx_prod_quote_SPR_E4.dat";
pub const V5_QUOTE: &str = "gotdxguest/quote_v5_sample.dat";
pub const GOTDX_COLLATERAL: &str = "gotdxguest/gotdxguest_v4_collateral.derived.json";
pub const DEBUG_QUOTE: &str = "trustee/tdx_quote_4.dat";
pub const SYNTHETIC_QUOTE: &str = "intel_qvl_synthetic_via_teekit/quote.dat";

pub fn evidence(quote: Vec<u8>) -> Evidence {
    Evidence::Tdx(TdxEvidence {
        quote,
        event_log: None,
        gpus: Vec::new(),
    })
}

pub fn quote_bytes(ev: &Evidence) -> &[u8] {
    match ev {
        Evidence::Tdx(t) => &t.quote,
        _ => panic!("not TDX evidence"),
    }
}

/// A policy that accepts exactly this quote's MRTD, with `collateral` (a fixture path). Built
/// from YAML, so that fields other TEEs add to `Policy` keep their defaults.
pub fn policy_for(quote: &[u8], collateral: Option<&str>) -> Policy {
    let mrtd = TdxQuote::parse(quote).unwrap().report.mrtd;
    let mut policy =
        Policy::from_yaml("name: tdx-test\ntee: tdx\nroots: [intel-sgx-root]\ntdx: {}\n").unwrap();
    policy.tdx = Some(TdxPolicy {
        collateral: collateral.map(path),
        mrtd: vec![AllowedMeasurement {
            measurement: mrtd.to_string(),
            source: "fixture".into(),
        }],
        ..TdxPolicy::default()
    });
    policy
}

pub fn tdx_rules(policy: &mut Policy) -> &mut TdxPolicy {
    policy.tdx.as_mut().unwrap()
}

/// The quote's own REPORTDATA: what a client expecting this guest would compute.
pub fn report_data_of(quote: &[u8]) -> ReportData {
    TdxQuote::parse(quote).unwrap().report.report_data
}

/// Verifies with the dispatcher (as a client does), expecting the quote's own REPORTDATA.
pub fn verify(ev: &Evidence, policy: &Policy, now: u64) -> Result<Claims, VerifyError> {
    let expected = TdxQuote::parse(quote_bytes(ev))
        .map(|q| q.report.report_data)
        .unwrap_or(ReportData([0; 64]));
    AnyVerifier.verify(ev, &expected, policy, at(now))
}

/// Verifies `quote` (a fixture) under a policy for it with `collateral`, at `now`.
pub fn verify_fixture(quote: &str, collateral: &str, now: u64) -> Result<Claims, VerifyError> {
    let bytes = fixture(quote);
    let policy = policy_for(&bytes, Some(collateral));
    verify(&evidence(bytes), &policy, now)
}

pub fn check_names(claims: &Claims) -> Vec<&str> {
    claims.checks.iter().map(|c| c.name.as_str()).collect()
}

/// A real SEV-SNP evidence (trustee Milan report, its VCEK, the Milan ASK and ARK).
pub fn snp_evidence() -> Evidence {
    let snp = |rel: &str| {
        std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/snp")
                .join(rel),
        )
        .unwrap()
    };
    let pem = |rel: &str| X509::from_pem(&snp(rel)).unwrap().to_der().unwrap();
    Evidence::SevSnp(SnpEvidence {
        report: snp("trustee_milan/test-report.bin"),
        chain: Some(SnpCertChain {
            vcek: snp("trustee_milan/test-vcek.der"),
            ask: pem("amd_roots/virtee_milan_ask.pem"),
            ark: pem("amd_roots/virtee_milan_ark.pem"),
        }),
        gpus: Vec::new(),
        cloud_vtpm: None,
    })
}
