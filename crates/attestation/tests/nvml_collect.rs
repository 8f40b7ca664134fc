//! The guest's GPU collector (`nvidia::collect`, feature `nvml`) against the NVML stub
//! (`tests/nvml-stub`, a `libnvidia-ml` serving simulated H100s whose SPDM reports a test chain
//! signs): evidence is collected with the nonce derived from the report data, verifies under a
//! policy that trusts the test root, and the GPUs are made ready only after that; CC off, a
//! tampered report and a shipped policy all leave them not ready.
//!
//! The stub is found through `CDVM_NVML_STUB` (a path to `libnvidia_ml_stub.so`), or built once
//! per run with `cargo build -p cdvm-nvml-stub` into this test's own target folder.
#![cfg(feature = "nvml")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "snp")]
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use cdvm_attestation::nvidia::collect::{GpuCollectError, GpuCollector};
use cdvm_attestation::nvidia::{gpu_nonce, GpuError, GpuEvidence, GpuPolicy};
use cdvm_attestation::{Policy, ReportData};
use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509Builder, X509Extension, X509NameBuilder, X509};
use sha2::{Digest, Sha256};

const STUB_CONFIG_ENV: &str = "CDVM_NVML_STUB_CONFIG";

/// The stub is one shared library loaded into this process, configured through one environment
/// variable: the tests take turns.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stub library: `CDVM_NVML_STUB`, or built here once.
fn stub_lib() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("CDVM_NVML_STUB") {
            return PathBuf::from(path);
        }
        build_stub()
    })
}

fn build_stub() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // This binary is <target>/<profile>/deps/nvml_collect-<hash>: build into the same <target>.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).expect("target folder").to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(&workspace)
        .args(["build", "-p", "cdvm-nvml-stub", "--message-format=json"])
        .arg("--target-dir")
        .arg(&target)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run cargo to build the NVML stub");
    assert!(out.status.success(), "building cdvm-nvml-stub failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" || msg["target"]["name"] != "nvidia_ml_stub" {
            continue;
        }
        if let Some(files) = msg["filenames"].as_array() {
            for f in files.iter().filter_map(|f| f.as_str()) {
                if f.ends_with(".so") {
                    return PathBuf::from(f);
                }
            }
        }
    }
    panic!("cargo built cdvm-nvml-stub but named no .so");
}

// ---------------------------------------------------------------------------------------------
// The test chain: root → intermediate → one leaf per GPU (P-384, as NVIDIA's), made here.

struct TestChain {
    root: X509,
    intermediate: X509,
    intermediate_key: PKey<Private>,
}

struct TestGpu {
    key_pem: String,
    chain_pem: String,
    fwid: [u8; 48],
}

fn p384() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::SECP384R1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn cert(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    ca: bool,
    extra: Option<X509Extension>,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "CDVM test (NOT NVIDIA)")
        .unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(rand_u32()).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&serial).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // From 2023-11 to a year from now (and at least to 2035): valid at the pinned time of the
    // real SNP fixtures (2026-01-01) and today.
    b.set_not_before(&Asn1Time::from_unix(1_700_000_000).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix((now + 365 * 86_400).max(2_051_222_400)).unwrap())
        .unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
    } else {
        b.append_extension(BasicConstraints::new().critical().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    if let Some(ext) = extra {
        b.append_extension(ext).unwrap();
    }
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha384()).unwrap();
    b.build()
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    openssl::rand::rand_bytes(&mut b).unwrap();
    u32::from_le_bytes(b) >> 1
}

/// TCG DICE TcbInfo (2.23.133.5.4.1) with one SHA-384 FWID: SEQUENCE { [6] { SEQUENCE {
/// id-sha384, OCTET STRING } } }.
fn dice_tcb_info(fwid: &[u8; 48]) -> X509Extension {
    let mut inner = vec![0x30, 0x3D, 0x06, 0x09];
    inner.extend([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02]);
    inner.extend([0x04, 0x30]);
    inner.extend(fwid);
    let mut der = vec![0x30, 0x41, 0xA6, 0x3F];
    der.extend(inner);
    let oid = Asn1Object::from_str("2.23.133.5.4.1").unwrap();
    let value = Asn1OctetString::new_from_bytes(&der).unwrap();
    X509Extension::new_from_der(&oid, false, &value).unwrap()
}

impl TestChain {
    fn new() -> Self {
        let root_key = p384();
        let root = cert("CDVM Simulated GPU Root CA", &root_key, None, true, None);
        let intermediate_key = p384();
        let intermediate = cert(
            "CDVM Simulated GH100 Identity",
            &intermediate_key,
            Some((&root, &root_key)),
            true,
            None,
        );
        TestChain {
            root,
            intermediate,
            intermediate_key,
        }
    }

    fn root_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.root.to_der().unwrap()))
    }

    fn gpu(&self, n: u8) -> TestGpu {
        let key = p384();
        let fwid: [u8; 48] = openssl::sha::sha384(format!("stub firmware {n}").as_bytes());
        let leaf = cert(
            &format!("GH100 A01 GSP FMC LF simulated {n}"),
            &key,
            Some((&self.intermediate, &self.intermediate_key)),
            false,
            Some(dice_tcb_info(&fwid)),
        );
        let mut chain_pem = String::new();
        for c in [&leaf, &self.intermediate, &self.root] {
            chain_pem.push_str(std::str::from_utf8(&c.to_pem().unwrap()).unwrap());
        }
        TestGpu {
            key_pem: String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
            chain_pem,
            fwid,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One scenario: a configured stub, opened.

struct Stub {
    _dir: tempfile::TempDir,
    ready_log: PathBuf,
    chain: TestChain,
    _serial: MutexGuard<'static, ()>,
}

#[derive(Default)]
struct Options {
    gpus: u8,
    cc_off: bool,
    dev_tools: bool,
    tamper: Option<&'static str>,
    tamper_gpu: Option<usize>,
}

impl Stub {
    fn start(opts: Options) -> (Self, GpuCollector) {
        let serial = serial();
        let dir = tempfile::tempdir().unwrap();
        let chain = TestChain::new();
        let gpus: Vec<serde_json::Value> = (0..opts.gpus)
            .map(|n| {
                let g = chain.gpu(n);
                serde_json::json!({
                    "key_pem": g.key_pem,
                    "chain_pem": g.chain_pem,
                    "fwid_hex": hex::encode(g.fwid),
                })
            })
            .collect();
        let ready_log = dir.path().join("ready.log");
        let config = serde_json::json!({
            "cc_feature": u32::from(!opts.cc_off),
            "dev_tools_mode": u32::from(opts.dev_tools),
            "gpus": gpus,
            "tamper": opts.tamper,
            "tamper_gpu": opts.tamper_gpu,
            "ready_log": ready_log,
        });
        let config_path = dir.path().join("stub.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        // Serialised by `serial()`: no other test reads or writes the environment meanwhile.
        std::env::set_var(STUB_CONFIG_ENV, &config_path);
        let collector = GpuCollector::open(Some(stub_lib())).expect("open the NVML stub");
        (
            Stub {
                _dir: dir,
                ready_log,
                chain,
                _serial: serial,
            },
            collector,
        )
    }

    /// The `set <value>` calls the stub saw, in order.
    fn ready_calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.ready_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A development GPU policy trusting this run's test root.
    fn dev_policy(&self) -> GpuPolicy {
        GpuPolicy {
            simulated_roots: vec![self.chain.root_sha256()],
            ..GpuPolicy::default()
        }
    }
}

fn report_data(byte: u8) -> ReportData {
    let mut rd = [0u8; 64];
    for (i, b) in rd.iter_mut().enumerate() {
        *b = byte ^ (i as u8);
    }
    ReportData(rd)
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn collect_and_ready(gpus: u8) {
    let (stub, collector) = Stub::start(Options {
        gpus,
        ..Options::default()
    });
    let rd = report_data(0x42);
    assert!(!collector.ready().unwrap());
    let evidence = collector.collect(&rd).unwrap();
    assert_eq!(evidence.len(), usize::from(gpus));
    for ev in &evidence {
        // The nonce the GPU signed is the one derivation of the report data.
        let report = ev.parse_report().unwrap();
        assert_eq!(report.request.nonce, gpu_nonce(rd.as_bytes()));
        assert_eq!(report.request.nonce, rd.gpu_nonce());
        assert_eq!(ev.certs.len(), 3, "leaf, intermediate, root");
    }
    // Collecting alone never sets the ready state.
    assert!(stub.ready_calls().is_empty());
    assert!(!collector.ready().unwrap());

    let policy = GpuPolicy {
        count: Some(usize::from(gpus)),
        required: true,
        ..stub.dev_policy()
    };
    let checks = collector
        .verify_and_set_ready(&evidence, &rd, &policy, now())
        .unwrap();
    for n in 0..gpus {
        for step in ["chain", "signature", "fwid", "nonce"] {
            assert!(
                checks.iter().any(|c| c.name == format!("gpu{n}-{step}")),
                "gpu{n}-{step} in {checks:?}"
            );
        }
    }
    let chain = checks.iter().find(|c| c.name == "gpu0-chain").unwrap();
    assert!(chain.detail.contains("SIMULATED root"), "{}", chain.detail);
    assert_eq!(stub.ready_calls(), vec!["set 1".to_string()]);
    assert!(collector.ready().unwrap());
}

#[test]
fn one_gpu_is_collected_verified_and_then_made_ready() {
    collect_and_ready(1);
}

#[test]
fn two_gpus_are_collected_verified_and_then_made_ready() {
    collect_and_ready(2);
}

#[test]
fn the_agent_entry_point_returns_only_verified_evidence() {
    let (stub, collector) = Stub::start(Options {
        gpus: 2,
        ..Options::default()
    });
    drop(collector);
    let rd = report_data(7);
    let gpus = cdvm_attestation::nvidia::collect::collect_verified_gpus(
        Some(stub_lib()),
        &rd,
        &stub.dev_policy(),
    )
    .unwrap();
    assert_eq!(gpus.len(), 2);
    assert_eq!(stub.ready_calls(), vec!["set 1".to_string()]);
    // And the evidence round-trips through JSON (what the attestation event carries).
    let json = serde_json::to_string(&gpus).unwrap();
    let back: Vec<GpuEvidence> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, gpus);
}

#[test]
fn cc_off_is_a_clear_refusal_and_nothing_is_made_ready() {
    let (stub, collector) = Stub::start(Options {
        gpus: 1,
        cc_off: true,
        ..Options::default()
    });
    let err = collector.collect(&report_data(1)).unwrap_err();
    assert!(matches!(err, GpuCollectError::CcOff { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "nvml: confidential computing is off on this system (cc state: cc feature off"
        ),
        "{text}"
    );
    // The agent's entry point refuses the same way, before any report is asked for.
    let err = cdvm_attestation::nvidia::collect::collect_verified_gpus(
        Some(stub_lib()),
        &report_data(1),
        &stub.dev_policy(),
    )
    .unwrap_err();
    assert!(matches!(err, GpuCollectError::CcOff { .. }), "{err:?}");
    assert!(stub.ready_calls().is_empty());
    assert!(!collector.ready().unwrap());
}

#[test]
fn dev_tools_mode_is_refused() {
    let (stub, collector) = Stub::start(Options {
        gpus: 1,
        dev_tools: true,
        ..Options::default()
    });
    let err = collector.collect(&report_data(1)).unwrap_err();
    assert!(matches!(err, GpuCollectError::DevTools { .. }), "{err:?}");
    assert!(err.to_string().contains("devtools mode on"), "{err}");
    assert!(stub.ready_calls().is_empty());
}

fn refused_and_not_ready(tamper: &'static str, tamper_gpu: Option<usize>) -> GpuError {
    let (stub, collector) = Stub::start(Options {
        gpus: 2,
        tamper: Some(tamper),
        tamper_gpu,
        ..Options::default()
    });
    let rd = report_data(9);
    let evidence = collector.collect(&rd).unwrap();
    let err = collector
        .verify_and_set_ready(&evidence, &rd, &stub.dev_policy(), now())
        .unwrap_err();
    assert!(stub.ready_calls().is_empty(), "{tamper}: ready was set");
    assert!(!collector.ready().unwrap());
    assert!(err.to_string().contains("were NOT made ready"), "{err}");
    match err {
        GpuCollectError::Verification { source } => source,
        other => panic!("{tamper}: {other:?}"),
    }
}

#[test]
fn a_flipped_report_byte_fails_verification_and_nothing_is_made_ready() {
    let err = refused_and_not_ready("flip-byte", Some(1));
    assert_eq!(err, GpuError::SignatureInvalid { gpu: 1 });
}

#[test]
fn a_report_for_another_nonce_fails_verification_and_nothing_is_made_ready() {
    let err = refused_and_not_ready("wrong-nonce", None);
    assert!(
        matches!(err, GpuError::NonceMismatch { gpu: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn evidence_for_other_report_data_is_refused() {
    let (stub, collector) = Stub::start(Options {
        gpus: 1,
        ..Options::default()
    });
    let evidence = collector.collect(&report_data(1)).unwrap();
    let err = collector
        .verify_and_set_ready(&evidence, &report_data(2), &stub.dev_policy(), now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            GpuCollectError::Verification {
                source: GpuError::NonceMismatch { .. }
            }
        ),
        "{err:?}"
    );
    assert!(stub.ready_calls().is_empty());
}

#[test]
fn nvml_failures_name_the_call_and_the_gpu() {
    let (stub, collector) = Stub::start(Options {
        gpus: 2,
        tamper: Some("report-fails"),
        tamper_gpu: Some(1),
        ..Options::default()
    });
    let err = collector.collect(&report_data(3)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "nvml: nvmlDeviceGetConfComputeGpuAttestationReport failed for GPU 1"
    );
    assert!(std::error::Error::source(&err).is_some());
    drop(collector);
    drop(stub);

    // A size beyond NVML's own buffer is an error, not a panic or a truncated report.
    let (stub, collector) = Stub::start(Options {
        gpus: 1,
        tamper: Some("oversize-report"),
        ..Options::default()
    });
    let err = collector.collect(&report_data(3)).unwrap_err();
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        source.contains("more than the 8192-byte buffer"),
        "{source}"
    );
    assert!(stub.ready_calls().is_empty());
}

#[test]
fn shipped_and_nvidia_only_policies_refuse_the_test_chain() {
    let (stub, collector) = Stub::start(Options {
        gpus: 1,
        ..Options::default()
    });
    let rd = report_data(5);
    let evidence = collector.collect(&rd).unwrap();
    // NVIDIA's root only (the default `gpu` section, as every shipped policy has).
    let err = collector
        .verify_and_set_ready(&evidence, &rd, &GpuPolicy::default(), now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            GpuCollectError::Verification {
                source: GpuError::UntrustedRoot { .. }
            }
        ),
        "{err:?}"
    );
    // Every shipped policy: none trusts a simulated GPU root, and with a `gpu` section added as
    // written there, the test chain is refused.
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut seen = 0;
    for entry in std::fs::read_dir(&policies).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let policy = Policy::load(&path).unwrap();
        assert!(!policy.trusts_simulated(), "{}", path.display());
        let gpu = policy.gpu.clone().unwrap_or_default();
        assert!(gpu.simulated_roots.is_empty(), "{}", path.display());
        let err = collector
            .verify_and_set_ready(&evidence, &rd, &gpu, now())
            .unwrap_err();
        assert!(
            matches!(
                err,
                GpuCollectError::Verification {
                    source: GpuError::UntrustedRoot { .. }
                }
            ),
            "{}: {err:?}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 1);
    assert!(stub.ready_calls().is_empty());
    // A policy naming the simulated root is a development policy: it says so.
    let dev = Policy::from_yaml(&format!(
        "name: dev\ntee: sev-snp\nroots: [amd-milan]\ngpu:\n  simulated_roots: [\"{}\"]\n",
        stub.chain.root_sha256()
    ))
    .unwrap();
    assert!(dev.trusts_simulated());
    assert!(Policy::from_yaml(
        "name: dev\ntee: sev-snp\nroots: [amd-milan]\ngpu:\n  simulated_roots: [\"abc\"]\n"
    )
    .is_err());
}

/// Real CPU evidence (a Milan SEV-SNP report and its AMD chain) with stub GPUs attached, bound to
/// its REPORT_DATA: `AnyVerifier` accepts them under a policy that trusts the test GPU root, and the
/// claims then say `simulated` although the CPU root is AMD's; the same policy without the
/// simulated GPU root refuses the GPUs.
#[cfg(feature = "snp")]
#[test]
fn a_simulated_gpu_root_makes_the_whole_verdict_simulated() {
    use cdvm_attestation::policy::TrustedRoot;
    use cdvm_attestation::{AnyVerifier, Evidence, Verifier, VerifyError};

    let case = common::VALID[1];
    let mut ev = case.evidence();
    let rd = common::report_of(&ev).report_data;
    let (stub, collector) = Stub::start(Options {
        gpus: 1,
        ..Options::default()
    });
    let gpus = collector.collect(&rd).unwrap();
    match &mut ev {
        Evidence::SevSnp(snp) => snp.gpus = gpus,
        other => panic!("{:?}", other.tee()),
    }
    let mut policy = common::policy_for(&ev, vec![TrustedRoot::AmdMilan]);
    let at = common::at(common::T2026);
    policy.gpu = Some(GpuPolicy::default());
    assert!(!policy.trusts_simulated());
    let err = AnyVerifier.verify(&ev, &rd, &policy, at).unwrap_err();
    assert!(
        matches!(err, VerifyError::Gpu(GpuError::UntrustedRoot { .. })),
        "{err:?}"
    );
    policy.gpu = Some(stub.dev_policy());
    assert!(policy.trusts_simulated());
    let claims = AnyVerifier.verify(&ev, &rd, &policy, at).unwrap();
    assert!(claims.simulated);
    assert!(claims.checks.iter().any(|c| c.name == "gpu0-nonce"));
}

/// On a real machine: `CDVM_NVML_LIB=/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 cargo test -p
/// cdvm-attestation --features nvml --test nvml_collect -- --ignored real_h100`. Collects and
/// verifies under NVIDIA's pinned root only (no simulated root) and sets the ready state.
#[test]
#[ignore = "needs an NVIDIA H100 in CC mode: run with CDVM_NVML_LIB=/path/to/libnvidia-ml.so.1 cargo test -p cdvm-attestation --features nvml --test nvml_collect -- --ignored"]
fn real_h100_in_cc_mode() {
    let lib = std::env::var_os("CDVM_NVML_LIB").map(PathBuf::from);
    let collector = GpuCollector::open(lib.as_deref()).unwrap();
    let state = collector.cc_state().unwrap();
    eprintln!("cc state: {state}");
    let rd = report_data(0xA5);
    let evidence = collector.collect(&rd).unwrap();
    let checks = collector
        .verify_and_set_ready(&evidence, &rd, &GpuPolicy::default(), now())
        .unwrap();
    for c in &checks {
        eprintln!("{}: {}", c.name, c.detail);
    }
    assert!(collector.ready().unwrap());
}
