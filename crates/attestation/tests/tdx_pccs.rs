//! TDX collateral from a PCCS with an on-disk cache (`tdx::pccs`, `tdx.pccs` in a policy): a local
//! HTTP server stands in for Intel PCS / a PCCS and serves the real collateral of the fixtures with
//! Intel's headers, and counts requests. No network.
#![cfg(feature = "tdx")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod tdx_support;

use std::path::Path;

use cdvm_attestation::policy::Policy;
use cdvm_attestation::tdx::pccs::{quote_platform, CacheMiss, PccsError, PccsResolver, PckCa};
use cdvm_attestation::tdx::{PccsConfig, TdxCollateral, TdxError, TdxVerifier};
use cdvm_attestation::{Claims, Verifier, VerifyError};
use tdx_support::*;

/// A policy for dcap-qvl's quote that takes its collateral from `url` (or the cache alone).
fn pccs_policy(url: Option<&str>, cache: &Path) -> Policy {
    let mut policy = policy_for(&fixture(DCAP_QUOTE), None);
    tdx_rules(&mut policy).pccs = Some(PccsConfig {
        url: url.map(str::to_string),
        cache_dir: cache.to_path_buf(),
    });
    policy
}

fn verify_with(policy: &Policy, now: u64) -> Result<Claims, VerifyError> {
    verify(&evidence(fixture(DCAP_QUOTE)), policy, now)
}

fn fetch_error(r: Result<Claims, VerifyError>) -> PccsError {
    match r {
        Err(VerifyError::Tdx(TdxError::CollateralFetch(e))) => e,
        other => panic!("expected a PCCS error, got {other:?}"),
    }
}

fn cache_entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn cache_file(dir: &Path) -> std::path::PathBuf {
    dir.join("tdx-collateral-b0c06f000000-platform.json")
}

// ---- The quote's platform, the cache alone, configuration ---------------------------------------

#[test]
fn quote_platform_comes_from_the_pck_certificate() {
    assert_eq!(
        quote_platform(&fixture(DCAP_QUOTE)).unwrap(),
        ("b0c06f000000".to_string(), PckCa::Platform)
    );
    assert!(matches!(
        quote_platform(&fixture(DCAP_QUOTE)[..700]),
        Err(TdxError::Malformed(_))
    ));
}

#[test]
fn offline_without_a_cache_entry_is_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let err = fetch_error(verify_with(&pccs_policy(None, cache.path()), T_DCAPQVL));
    assert_eq!(
        err,
        PccsError::NotCached {
            path: cache_file(cache.path()).display().to_string(),
            reason: CacheMiss::Missing,
        }
    );
    let text = VerifyError::Tdx(TdxError::CollateralFetch(err)).to_string();
    assert!(text.contains("no PCCS URL is configured"), "{text}");
    assert!(cache_entries(cache.path()).is_empty());
    // A pinned file copied into the cache folder under its key is a cache entry.
    std::fs::copy(path(DCAP_COLLATERAL), cache_file(cache.path())).unwrap();
    assert_eq!(
        verify_with(&pccs_policy(None, cache.path()), T_DCAPQVL).unwrap(),
        verify_fixture(DCAP_QUOTE, DCAP_COLLATERAL, T_DCAPQVL).unwrap()
    );
    let (_, origin) = PccsResolver::offline(cache.path())
        .collateral("b0c06f000000", PckCa::Platform, at(T_DCAPQVL))
        .unwrap();
    assert!(matches!(
        origin,
        cdvm_attestation::tdx::pccs::CollateralOrigin::Cache(_)
    ));
}

#[cfg(not(feature = "pccs"))]
#[test]
fn a_pccs_url_without_the_feature_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(
        fetch_error(verify_with(
            &pccs_policy(Some("https://pccs:8081"), cache.path()),
            T_DCAPQVL
        )),
        PccsError::FeatureOff {
            url: "https://pccs:8081".into()
        }
    );
}

#[test]
fn both_sources_in_code_are_refused() {
    let mut policy = pccs_policy(None, Path::new("/nonexistent"));
    tdx_rules(&mut policy).collateral = Some(path(DCAP_COLLATERAL));
    assert_eq!(
        verify_with(&policy, T_DCAPQVL),
        Err(VerifyError::Tdx(TdxError::CollateralAmbiguous))
    );
    // Collateral given to the verifier still takes precedence over the policy's sources.
    let bytes = fixture(DCAP_QUOTE);
    let given = TdxCollateral::load(&path(DCAP_COLLATERAL)).unwrap();
    TdxVerifier::with_collateral(given)
        .verify(
            &evidence(bytes.clone()),
            &report_data_of(&bytes),
            &policy,
            at(T_DCAPQVL),
        )
        .unwrap();
}

fn tdx_yaml(tdx: &str) -> String {
    format!("name: t\ntee: tdx\nroots: [intel-sgx-root]\ntdx:\n{tdx}")
}

#[test]
fn policy_yaml_names_a_pccs_with_a_cache() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        tdx_yaml("  pccs:\n    url: https://pccs:8081\n    cache_dir: tdx-cache\n  mrtd: []\n"),
    )
    .unwrap();
    let policy = Policy::load(&file).unwrap();
    let tdx = policy.tdx.unwrap();
    assert_eq!(tdx.collateral, None);
    assert_eq!(
        tdx.pccs,
        Some(PccsConfig {
            url: Some("https://pccs:8081".into()),
            cache_dir: dir.path().join("tdx-cache"),
        })
    );
    assert!(matches!(
        tdx.collateral_source(),
        Ok(Some(cdvm_attestation::tdx::TdxCollateralSource::Pccs(_)))
    ));
    // Offline: no URL.
    let p = Policy::from_yaml(&tdx_yaml("  pccs: {cache_dir: /var/cache/tdx}\n")).unwrap();
    assert_eq!(p.tdx.unwrap().pccs.unwrap().url, None);
    // Round trip.
    let p = Policy::from_yaml(&tdx_yaml(
        "  pccs: {url: \"https://api.trustedservices.intel.com\", cache_dir: /c}\n",
    ))
    .unwrap();
    let again = Policy::from_yaml(&serde_yaml_ng::to_string(&p).unwrap()).unwrap();
    assert_eq!(again, p);
}

#[test]
fn invalid_pccs_configurations_are_refused() {
    for (tdx, why) in [
        (
            "  collateral: c.json\n  pccs: {url: \"https://pccs:8081\", cache_dir: /c}\n",
            "exclusive",
        ),
        ("  pccs: {url: \"https://pccs:8081\"}\n", "cache_dir"),
        (
            "  pccs: {url: \"https://pccs:8081\", cache_dir: /c, retries: 3}\n",
            "retries",
        ),
        (
            "  pccs: {url: \"ftp://pccs\", cache_dir: /c}\n",
            "http(s)://",
        ),
        ("  pccs: {url: \"https://\", cache_dir: /c}\n", "base URL"),
        (
            "  pccs: {url: \"https://pccs/?fmspc=1\", cache_dir: /c}\n",
            "base URL",
        ),
        ("  pccs: {cache_dir: \"\"}\n", "cache_dir is empty"),
    ] {
        let err = Policy::from_yaml(&tdx_yaml(tdx)).unwrap_err().to_string();
        assert!(err.contains(why), "{tdx}: {err}");
    }
}

#[test]
fn shipped_tdx_policy_still_parses() {
    let policy = Policy::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/default-tdx.yaml"),
    )
    .unwrap();
    let tdx = policy.tdx.unwrap();
    assert_eq!(tdx.pccs, None);
    assert_eq!(tdx.collateral_source(), Ok(None));
}

/// Against a local HTTP server standing in for Intel PCS / a PCCS (feature `pccs`).
#[cfg(feature = "pccs")]
mod online {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use cdvm_attestation::tdx::pccs::{BadResponse, PccsCall};

    use super::*;

    const PCK_CRL: &str = "/sgx/certification/v4/pckcrl?ca=platform&encoding=der";
    const TCB: &str = "/tdx/certification/v4/tcb?fmspc=B0C06F000000";
    const QE: &str = "/tdx/certification/v4/qe/identity";
    const ROOT_CRL: &str = "/sgx/certification/v4/rootcacrl";
    const ALL: [&str; 4] = [PCK_CRL, TCB, QE, ROOT_CRL];
    /// The PCK CRL of `DCAP_COLLATERAL` has the earliest nextUpdate: 2025-07-19T10:00:35Z.
    const FIXTURE_NEXT_UPDATE: u64 = T_DCAPQVL + 1;

    #[derive(Clone)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    /// A PCCS double: path (with query) → reply; anything else 404. Counts requests.
    struct FakePccs {
        url: String,
        routes: Arc<Mutex<HashMap<String, Reply>>>,
        hits: Arc<AtomicUsize>,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl FakePccs {
        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        fn set(&self, route: &str, reply: Reply) {
            self.routes.lock().unwrap().insert(route.to_string(), reply);
        }

        fn remove(&self, route: &str) {
            self.routes.lock().unwrap().remove(route);
        }

        fn edit(&self, route: &str, f: impl FnOnce(&mut Reply)) {
            f(self.routes.lock().unwrap().get_mut(route).unwrap());
        }
    }

    fn serve(routes: HashMap<String, Reply>) -> FakePccs {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let routes = Arc::new(Mutex::new(routes));
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (r, h, s) = (Arc::clone(&routes), Arc::clone(&hits), Arc::clone(&seen));
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
                let reply = r.lock().unwrap().get(&path).cloned().unwrap_or(Reply {
                    status: 404,
                    headers: Vec::new(),
                    body: Vec::new(),
                });
                let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
                for (name, value) in &reply.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str(&format!(
                    "Content-Length: {}\r\nConnection: close\r\n\r\n",
                    reply.body.len()
                ));
                let mut out = stream;
                out.write_all(head.as_bytes()).unwrap();
                out.write_all(&reply.body).unwrap();
            }
        });
        FakePccs {
            url,
            routes,
            hits,
            seen,
        }
    }

    /// Percent-encoding as Intel PCS does for issuer-chain headers (everything but unreserved).
    fn url_encode(text: &str) -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    fn ok(headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), url_encode(v)))
                .collect(),
            body,
        }
    }

    /// The PCS v4 responses that `collateral` (dcap-qvl `QuoteCollateralV3` JSON) was assembled from.
    fn pcs_responses(collateral: &str) -> HashMap<String, Reply> {
        let c: serde_json::Value =
            serde_json::from_slice(&fixture(collateral)).expect("collateral JSON");
        let s = |k: &str| c[k].as_str().unwrap().to_string();
        let signed = |field: &str, item: &str, sig: &str| {
            format!("{{\"{field}\":{},\"signature\":\"{}\"}}", s(item), s(sig)).into_bytes()
        };
        HashMap::from([
            (
                PCK_CRL.to_string(),
                ok(
                    &[("SGX-PCK-CRL-Issuer-Chain", &s("pck_crl_issuer_chain"))],
                    hex::decode(s("pck_crl")).unwrap(),
                ),
            ),
            (
                TCB.to_string(),
                ok(
                    &[("TCB-Info-Issuer-Chain", &s("tcb_info_issuer_chain"))],
                    signed("tcbInfo", "tcb_info", "tcb_info_signature"),
                ),
            ),
            (
                QE.to_string(),
                ok(
                    &[(
                        "SGX-Enclave-Identity-Issuer-Chain",
                        &s("qe_identity_issuer_chain"),
                    )],
                    signed("enclaveIdentity", "qe_identity", "qe_identity_signature"),
                ),
            ),
            // A PCCS serves the root CA CRL as hex text.
            (ROOT_CRL.to_string(), ok(&[], s("root_ca_crl").into_bytes())),
        ])
    }

    fn fake_pccs() -> FakePccs {
        serve(pcs_responses(DCAP_COLLATERAL))
    }

    // ---- The happy path and the cache ----------------------------------------------------------

    #[test]
    fn fetched_collateral_verifies_exactly_like_the_pinned_file_and_is_cached() {
        let pccs = fake_pccs();
        let cache = tempfile::tempdir().unwrap();
        let policy = pccs_policy(Some(&pccs.url), cache.path());

        let fetched = verify_with(&policy, T_DCAPQVL).unwrap();
        let pinned = verify_fixture(DCAP_QUOTE, DCAP_COLLATERAL, T_DCAPQVL).unwrap();
        assert_eq!(fetched, pinned);
        assert_eq!(pccs.hits(), 4);
        assert_eq!(*pccs.seen.lock().unwrap(), ALL);

        // The cache entry is the pinned file's collateral, in the pinned file's format.
        assert_eq!(
            cache_entries(cache.path()),
            ["tdx-collateral-b0c06f000000-platform.json"]
        );
        assert_eq!(
            TdxCollateral::load(&cache_file(cache.path())).unwrap(),
            TdxCollateral::load(&path(DCAP_COLLATERAL)).unwrap()
        );

        // The second verification is served from the cache: the PCCS is not asked again.
        assert_eq!(verify_with(&policy, T_DCAPQVL).unwrap(), pinned);
        assert_eq!(pccs.hits(), 4, "{:?}", pccs.seen.lock().unwrap());
        // Offline (no URL), the same folder serves it too.
        assert_eq!(
            verify_with(&pccs_policy(None, cache.path()), T_DCAPQVL).unwrap(),
            pinned
        );
        assert_eq!(pccs.hits(), 4);
    }

    #[test]
    fn resolver_reports_where_collateral_came_from() {
        use cdvm_attestation::tdx::pccs::CollateralOrigin;
        let pccs = fake_pccs();
        let cache = tempfile::tempdir().unwrap();
        let resolver = PccsResolver::online(cache.path(), &pccs.url);
        let (first, origin) = resolver
            .collateral("B0C06F000000", PckCa::Platform, at(T_DCAPQVL))
            .unwrap();
        assert_eq!(origin, CollateralOrigin::Pccs(pccs.url.clone()));
        assert_eq!(
            first.next_update().unwrap(),
            at(FIXTURE_NEXT_UPDATE),
            "the earliest nextUpdate (the PCK CRL's)"
        );
        let (second, origin) = resolver
            .collateral("b0c06f000000", PckCa::Platform, at(T_DCAPQVL))
            .unwrap();
        assert_eq!(origin, CollateralOrigin::Cache(cache_file(cache.path())));
        assert_eq!(first, second);
        assert_eq!(pccs.hits(), 4);
    }

    #[test]
    fn stale_cache_entry_is_refetched() {
        let pccs = fake_pccs();
        let cache = tempfile::tempdir().unwrap();
        let policy = pccs_policy(Some(&pccs.url), cache.path());
        verify_with(&policy, T_DCAPQVL).unwrap();
        assert_eq!(pccs.hits(), 4);

        // One second later the PCK CRL has reached its nextUpdate: the entry is stale, so the
        // collateral is fetched again. The PCCS still serves the same (now expired) collateral, so
        // the verification fails as with an expired pinned file, and nothing stale is cached.
        let before = std::fs::read(cache_file(cache.path())).unwrap();
        for (now, hits) in [(FIXTURE_NEXT_UPDATE, 8), (T_DCAPQVL + 3600, 12)] {
            assert!(matches!(
                verify_with(&policy, now),
                Err(VerifyError::Tdx(TdxError::CollateralExpired(_)))
            ));
            assert_eq!(pccs.hits(), hits, "refetched at {now}");
        }
        assert_eq!(std::fs::read(cache_file(cache.path())).unwrap(), before);

        // Offline, a stale entry is an error that says so.
        assert_eq!(
            fetch_error(verify_with(
                &pccs_policy(None, cache.path()),
                T_DCAPQVL + 3600
            )),
            PccsError::NotCached {
                path: cache_file(cache.path()).display().to_string(),
                reason: CacheMiss::Stale {
                    next_update: FIXTURE_NEXT_UPDATE
                },
            }
        );
    }

    #[test]
    fn corrupt_cache_entry_is_refetched() {
        let pccs = fake_pccs();
        // This time the PCCS serves the root CA CRL as DER, as Intel's CRL distribution point does.
        let root_crl_hex = String::from_utf8(pccs.routes.lock().unwrap()[ROOT_CRL].body.clone());
        pccs.edit(ROOT_CRL, |r| {
            r.body = hex::decode(root_crl_hex.unwrap()).unwrap()
        });
        let cache = tempfile::tempdir().unwrap();
        let policy = pccs_policy(Some(&pccs.url), cache.path());
        let good = TdxCollateral::load(&path(DCAP_COLLATERAL))
            .unwrap()
            .to_json()
            .unwrap();
        let other_fmspc = TdxCollateral::load(&path(OUTDATED_COLLATERAL))
            .unwrap()
            .to_json()
            .unwrap();
        let corrupt = [
            b"not json at all".to_vec(),
            good.as_bytes()[..good.len() / 2].to_vec(),
            vec![0xff, 0xfe, 0x00],
            other_fmspc.into_bytes(),
        ];
        let mut hits = 0;
        for bytes in corrupt {
            std::fs::write(cache_file(cache.path()), &bytes).unwrap();
            // Offline, it is reported as unusable.
            assert!(matches!(
                fetch_error(verify_with(&pccs_policy(None, cache.path()), T_DCAPQVL)),
                PccsError::NotCached {
                    reason: CacheMiss::Corrupt(_),
                    ..
                }
            ));
            // Online, it is replaced.
            verify_with(&policy, T_DCAPQVL).unwrap();
            hits += 4;
            assert_eq!(pccs.hits(), hits);
            assert_eq!(
                TdxCollateral::load(&cache_file(cache.path())).unwrap(),
                TdxCollateral::load(&path(DCAP_COLLATERAL)).unwrap()
            );
        }
    }

    // ---- Failures: reported precisely, never cached -------------------------------------------

    #[test]
    fn rate_limiting_is_reported_with_retry_after_and_nothing_is_cached() {
        let pccs = fake_pccs();
        pccs.set(
            TCB,
            Reply {
                status: 429,
                headers: vec![("Retry-After".into(), "3600".into())],
                body: b"Too Many Requests".to_vec(),
            },
        );
        let cache = tempfile::tempdir().unwrap();
        let err = fetch_error(verify_with(
            &pccs_policy(Some(&pccs.url), cache.path()),
            T_DCAPQVL,
        ));
        assert_eq!(
            err,
            PccsError::RateLimited {
                call: PccsCall::TcbInfo,
                url: format!("{}{TCB}", pccs.url),
                retry_after: Some("3600".into()),
            }
        );
        assert!(err.to_string().contains("Retry-After: 3600"), "{err}");
        assert_eq!(pccs.hits(), 2, "stops at the failed request, no retries");
        assert!(cache_entries(cache.path()).is_empty());
    }

    #[test]
    fn http_errors_name_the_request() {
        let pccs = fake_pccs();
        pccs.remove(QE);
        let cache = tempfile::tempdir().unwrap();
        let policy = pccs_policy(Some(&pccs.url), cache.path());
        assert_eq!(
            fetch_error(verify_with(&policy, T_DCAPQVL)),
            PccsError::Http {
                call: PccsCall::QeIdentity,
                url: format!("{}{QE}", pccs.url),
                status: 404,
            }
        );
        pccs.set(
            QE,
            Reply {
                status: 503,
                headers: Vec::new(),
                body: Vec::new(),
            },
        );
        assert!(matches!(
            fetch_error(verify_with(&policy, T_DCAPQVL)),
            PccsError::Http {
                call: PccsCall::QeIdentity,
                status: 503,
                ..
            }
        ));
        assert!(cache_entries(cache.path()).is_empty());
    }

    #[test]
    fn garbage_responses_are_bad_responses_and_nothing_is_cached() {
        let cache = tempfile::tempdir().unwrap();
        type Case = (&'static str, Box<dyn Fn(&mut Reply)>, PccsCall, BadResponse);
        let cases: Vec<Case> = vec![
            (
                TCB,
                Box::new(|r| r.body = b"<html>maintenance</html>".to_vec()),
                PccsCall::TcbInfo,
                BadResponse::NotJson(String::new()),
            ),
            (
                QE,
                Box::new(|r| r.body = br#"{"signature":"00"}"#.to_vec()),
                PccsCall::QeIdentity,
                BadResponse::NotJson(String::new()),
            ),
            (
                PCK_CRL,
                Box::new(|r| r.body = b"\x30\x03garbage".to_vec()),
                PccsCall::PckCrl,
                BadResponse::NotACrl,
            ),
            (
                ROOT_CRL,
                Box::new(|r| r.body = b"zz-not-hex".to_vec()),
                PccsCall::RootCaCrl,
                BadResponse::NotACrl,
            ),
            (
                TCB,
                Box::new(|r| r.headers.clear()),
                PccsCall::TcbInfo,
                BadResponse::MissingHeader {
                    header: "TCB-Info-Issuer-Chain",
                },
            ),
            (
                PCK_CRL,
                Box::new(|r| r.headers[0].1 = url_encode("-----BEGIN CERTIFICATE-----\nAAAA")),
                PccsCall::PckCrl,
                BadResponse::BadIssuerChain {
                    header: "SGX-PCK-CRL-Issuer-Chain",
                    reason: String::new(),
                },
            ),
        ];
        for (route, edit, call, want) in cases {
            let pccs = fake_pccs();
            pccs.edit(route, |r| edit(r));
            let err = fetch_error(verify_with(
                &pccs_policy(Some(&pccs.url), cache.path()),
                T_DCAPQVL,
            ));
            match &err {
                PccsError::BadResponse {
                    call: c,
                    url,
                    reason,
                } => {
                    assert_eq!(*c, call, "{err}");
                    assert_eq!(*url, format!("{}{route}", pccs.url));
                    assert_eq!(
                        std::mem::discriminant(reason),
                        std::mem::discriminant(&want),
                        "{err}"
                    );
                }
                other => panic!("{route}: {other:?}"),
            }
            assert!(cache_entries(cache.path()).is_empty(), "{route}");
        }
    }

    #[test]
    fn tcb_info_for_another_fmspc_is_refused_and_not_cached() {
        // A PCCS that answers the B0C06F000000 request with (genuine, Intel-signed) TCB info of
        // another platform model must not poison the cache entry.
        let pccs = fake_pccs();
        let other = pcs_responses(OUTDATED_COLLATERAL);
        pccs.set(TCB, other[TCB].clone());
        let cache = tempfile::tempdir().unwrap();
        let err = fetch_error(verify_with(
            &pccs_policy(Some(&pccs.url), cache.path()),
            T_DCAPQVL,
        ));
        assert!(
            matches!(
                &err,
                PccsError::BadResponse {
                    call: PccsCall::TcbInfo,
                    reason: BadResponse::WrongFmspc { requested, found },
                    ..
                } if requested == "b0c06f000000" && found == "90c06f000000"
            ),
            "{err:?}"
        );
        assert!(cache_entries(cache.path()).is_empty());
    }

    #[test]
    fn tampered_twin_tcb_info_signature_is_refused_and_not_cached() {
        let cache = tempfile::tempdir().unwrap();
        // One byte of the TCB info's signature flipped; then one byte of the signed TCB info itself
        // (a status upgraded, as a forger would); then the QE identity's signature.
        type Edit = Box<dyn Fn(&mut Reply)>;
        let flip_sig: Edit = Box::new(|r| {
            let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let sig = json["signature"].as_str().unwrap();
            let mut bytes = hex::decode(sig).unwrap();
            bytes[10] ^= 0x01;
            let text = String::from_utf8(r.body.clone()).unwrap();
            r.body = text.replace(sig, &hex::encode(bytes)).into_bytes();
        });
        let forge_status: Edit = Box::new(|r| {
            let text = String::from_utf8(r.body.clone()).unwrap();
            assert!(text.contains("OutOfDate"));
            r.body = text.replacen("OutOfDate", "UpToDate", 1).into_bytes();
        });
        for (route, edit, call) in [
            (TCB, flip_sig, PccsCall::TcbInfo),
            (TCB, forge_status, PccsCall::TcbInfo),
            (
                QE,
                Box::new(|r: &mut Reply| {
                    let text = String::from_utf8(r.body.clone()).unwrap();
                    let at = text.rfind("\"signature\":\"").unwrap() + 13;
                    let mut bytes = text.into_bytes();
                    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
                    r.body = bytes;
                }) as Edit,
                PccsCall::QeIdentity,
            ),
        ] {
            let pccs = fake_pccs();
            pccs.edit(route, |r| edit(r));
            let policy = pccs_policy(Some(&pccs.url), cache.path());
            assert!(
                matches!(
                    fetch_error(verify_with(&policy, T_DCAPQVL)),
                    PccsError::BadResponse {
                        call: c,
                        reason: BadResponse::SignatureInvalid,
                        ..
                    } if c == call
                ),
                "{route}"
            );
            assert!(cache_entries(cache.path()).is_empty(), "{route}");
            // The untampered server then verifies: nothing bad was remembered.
            let good = fake_pccs();
            let policy = pccs_policy(Some(&good.url), cache.path());
            verify_with(&policy, T_DCAPQVL).unwrap();
            std::fs::remove_file(cache_file(cache.path())).unwrap();
        }
    }

    #[test]
    fn issuer_chain_must_end_in_the_pinned_root() {
        // The TCB info's signer chain with its root dropped: it no longer leads to the pinned root.
        let pccs = fake_pccs();
        let c: serde_json::Value = serde_json::from_slice(&fixture(DCAP_COLLATERAL)).unwrap();
        let chain = c["tcb_info_issuer_chain"].as_str().unwrap();
        let end = "-----END CERTIFICATE-----";
        let signer_only = &chain[..chain.find(end).unwrap() + end.len()];
        let doubled = format!("{signer_only}\n{signer_only}\n");
        pccs.edit(TCB, |r| r.headers[0].1 = url_encode(&doubled));
        let cache = tempfile::tempdir().unwrap();
        assert!(matches!(
            fetch_error(verify_with(
                &pccs_policy(Some(&pccs.url), cache.path()),
                T_DCAPQVL
            )),
            PccsError::BadResponse {
                call: PccsCall::TcbInfo,
                reason: BadResponse::UntrustedIssuer(_),
                ..
            }
        ));
        assert!(cache_entries(cache.path()).is_empty());
    }

    #[test]
    fn unreachable_pccs_is_a_network_error() {
        let cache = tempfile::tempdir().unwrap();
        let policy = pccs_policy(Some("http://127.0.0.1:9"), cache.path());
        assert!(matches!(
            fetch_error(verify_with(&policy, T_DCAPQVL)),
            PccsError::Network {
                call: PccsCall::PckCrl,
                ..
            }
        ));
        assert!(cache_entries(cache.path()).is_empty());
    }
}
