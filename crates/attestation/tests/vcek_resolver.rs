//! Finding VCEKs: product detection, the KDS URL, the cache, and fetching over HTTP from a local
//! server that stands in for AMD KDS (which rate-limits, so every fetch must be cached).
#![cfg(feature = "kds")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cdvm_attestation::policy::TrustedRoot;
use cdvm_attestation::snp::roots::AmdProduct;
use cdvm_attestation::snp::vcek::{
    product_of, vcek_path, KdsHttp, VcekError, VcekResolver, VcekSource,
};
use cdvm_attestation::snp::{AttestationReport, SnpVerifier};
use cdvm_attestation::{Evidence, SnpEvidence, Verifier};
use common::{fixture, policy_for, T2026};

const MILAN_V3: &str = "trustee_az_snp_vtpm/evidence-v1.snp_report.derived.bin";
const MILAN_V3_VCEK: &str = "trustee_az_snp_vtpm/evidence-v1.vcek.derived.der";
const SIENA_V3: &str = "trustee_e2e/evidence.snp_report.derived.bin";
const GENOA_V3: &str = "trustee_az_snp_vtpm/evidence-genoa.snp_report.derived.bin";
const MILAN_V2: &str = "trustee_milan/test-report.bin";

fn report(rel: &str) -> AttestationReport {
    AttestationReport::parse(&fixture(rel)).unwrap()
}

/// A one-route HTTP server: `route` → (status, body); everything else 404. Counts requests.
struct FakeKds {
    url: String,
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
}

fn fake_kds(route: String, status: u16, body: Vec<u8>) -> FakeKds {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (h, s) = (Arc::clone(&hits), Arc::clone(&seen));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() <= 2 {
                    break;
                }
            }
            h.fetch_add(1, Ordering::SeqCst);
            s.lock().unwrap().push(path.clone());
            let (code, payload) = if path == route {
                (status, body.clone())
            } else {
                (404, Vec::new())
            };
            let mut out = stream;
            let head = format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            );
            out.write_all(head.as_bytes()).unwrap();
            out.write_all(&payload).unwrap();
        }
    });
    FakeKds { url, hits, seen }
}

#[test]
fn product_comes_from_cpuid_in_v3_reports() {
    assert_eq!(product_of(&report(MILAN_V3)), Some(AmdProduct::Milan));
    assert_eq!(product_of(&report(GENOA_V3)), Some(AmdProduct::Genoa));
    // Siena (model 0xA0) uses Genoa's KDS path.
    assert_eq!(product_of(&report(SIENA_V3)), Some(AmdProduct::Genoa));
    assert_eq!(
        product_of(&report(MILAN_V2)),
        None,
        "v2 reports carry no CPUID"
    );
}

#[test]
fn kds_path_names_chip_and_reported_tcb() {
    let r = report(MILAN_V3);
    let expected = format!(
        "/vcek/v1/Milan/{}?blSPL=4&teeSPL=0&snpSPL=24&ucodeSPL=219",
        "66a5a7b4403a3006ca734aa36a76dd3061d56f398e1e73b0be683ecd2eede9e70811c677abf8d9c9251b52baafbdc97b8121ec0c75661ffba636073b09fa563a"
    );
    assert_eq!(vcek_path(AmdProduct::Milan, &r), expected);
    // Turin indexes by the first 8 bytes of CHIP_ID.
    let turin = vcek_path(AmdProduct::Turin, &r);
    assert!(
        turin.starts_with("/vcek/v1/Turin/66a5a7b4403a3006?blSPL="),
        "{turin}"
    );
}

#[test]
fn fetched_vcek_is_cached_and_the_assembled_chain_verifies_the_real_report() {
    let r = report(MILAN_V3);
    let kds = fake_kds(
        vcek_path(AmdProduct::Milan, &r),
        200,
        fixture(MILAN_V3_VCEK),
    );
    let cache = tempfile::tempdir().unwrap();
    let resolver = VcekResolver::with_fetch(
        Some(cache.path().to_path_buf()),
        &kds.url,
        Box::new(KdsHttp::new()),
    );

    let (chain, source) = resolver.chain(&r, AmdProduct::Milan).unwrap();
    assert!(
        matches!(source, VcekSource::Kds(ref u) if u.starts_with(&kds.url)),
        "{source:?}"
    );
    assert_eq!(kds.hits.load(Ordering::SeqCst), 1);
    let evidence = Evidence::SevSnp(SnpEvidence {
        report: fixture(MILAN_V3),
        chain: Some(chain),
        gpus: Vec::new(),
        cloud_vtpm: None,
    });
    let policy = policy_for(&evidence, vec![TrustedRoot::AmdMilan]);
    let claims = SnpVerifier
        .verify(&evidence, &r.report_data, &policy, common::at(T2026))
        .unwrap();
    assert_eq!(claims.root, "AMD ARK-Milan");

    // The second lookup is served from the cache: KDS is not asked again.
    let (again, source) = resolver.vcek(&r, AmdProduct::Milan).unwrap();
    assert!(matches!(source, VcekSource::Cache(_)));
    assert_eq!(again, fixture(MILAN_V3_VCEK));
    assert_eq!(
        kds.hits.load(Ordering::SeqCst),
        1,
        "{:?}",
        kds.seen.lock().unwrap()
    );
    // An offline resolver on the same folder finds it too.
    assert!(VcekResolver::offline(cache.path())
        .vcek(&r, AmdProduct::Milan)
        .is_ok());
}

#[test]
fn rate_limiting_and_garbage_are_reported_and_never_cached() {
    let r = report(MILAN_V3);
    let cache = tempfile::tempdir().unwrap();
    let limited = fake_kds(vcek_path(AmdProduct::Milan, &r), 429, Vec::new());
    let resolver = VcekResolver::with_fetch(
        Some(cache.path().to_path_buf()),
        &limited.url,
        Box::new(KdsHttp::new()),
    );
    assert!(matches!(
        resolver.vcek(&r, AmdProduct::Milan),
        Err(VcekError::RateLimited { .. })
    ));
    let garbage = fake_kds(
        vcek_path(AmdProduct::Milan, &r),
        200,
        b"<html>not a cert</html>".to_vec(),
    );
    let resolver = VcekResolver::with_fetch(
        Some(cache.path().to_path_buf()),
        &garbage.url,
        Box::new(KdsHttp::new()),
    );
    assert!(matches!(
        resolver.vcek(&r, AmdProduct::Milan),
        Err(VcekError::NotACertificate { .. })
    ));
    let wrong = fake_kds("/elsewhere".into(), 200, fixture(MILAN_V3_VCEK));
    let resolver = VcekResolver::with_fetch(
        Some(cache.path().to_path_buf()),
        &wrong.url,
        Box::new(KdsHttp::new()),
    );
    assert!(matches!(
        resolver.vcek(&r, AmdProduct::Milan),
        Err(VcekError::Http { status: 404, .. })
    ));
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "nothing bad was cached"
    );
    assert!(matches!(
        VcekResolver::offline(cache.path()).vcek(&r, AmdProduct::Milan),
        Err(VcekError::NotCached { .. })
    ));
}

#[test]
fn unreachable_kds_is_a_network_error() {
    let r = report(MILAN_V3);
    let resolver = VcekResolver::with_fetch(None, "http://127.0.0.1:9", Box::new(KdsHttp::new()));
    assert!(matches!(
        resolver.vcek(&r, AmdProduct::Milan),
        Err(VcekError::Network { .. })
    ));
}

#[test]
fn vlek_reports_cannot_be_resolved_from_kds() {
    let r = report("trustee_milan/test-vlek-report.bin");
    let resolver = VcekResolver::offline(tempfile::tempdir().unwrap().path());
    assert!(matches!(
        resolver.vcek(&r, AmdProduct::Milan),
        Err(VcekError::VlekNotFetchable)
    ));
}
