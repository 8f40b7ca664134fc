//! `cdvm verify --gpu FILE --nonce HEX` as a process: real H100 evidence in NVIDIA's evidence JSON
//! (built here from the nvtrust sample, and NVIDIA's own 8-GPU PPCIe file) is accepted with its
//! nonce (exit 0); each tampered twin is refused (exit 3); bad input is an error (exit 2), never a
//! panic. Fixtures: `crates/attestation/tests/fixtures/nvidia/SOURCES.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use openssl::base64::encode_block;
use serde_json::{json, Value};

const NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
const PPCIE_NONCE: &str = "4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e";
const AT: &str = "2026-01-01T00:00:00Z";

fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../attestation/tests/fixtures/nvidia")
        .join(rel)
}

fn fixture(rel: &str) -> String {
    let path = fixture_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cdvm(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cdvm"))
        .args(args)
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit code `code`, and no panic on the way.
fn exits(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
}

/// Exit 3 (refused), with `line` in the printed checks.
fn refused_showing(out: &Output, line: &str) {
    exits(out, 3);
    assert!(stdout(out).contains(line), "{}", stdout(out));
}

struct Setup {
    dir: tempfile::TempDir,
    policy: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("gpu.yaml");
    std::fs::write(&policy, "name: h100-any\ngpu:\n  required: true\n").unwrap();
    Setup { dir, policy }
}

/// The nvtrust H100 sample as NVIDIA's collector writes it: base64 of the report bytes and of
/// the PEM chain text, with `arch`.
fn sample_entry(chain_pem: &str) -> Value {
    let report = hex::decode(fixture("nvtrust/hopperAttestationReport.txt").trim()).unwrap();
    json!({
        "evidence": encode_block(&report),
        "certificate": encode_block(chain_pem.as_bytes()),
        "arch": "HOPPER",
    })
}

impl Setup {
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let file = self.dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        file
    }

    fn sample(&self) -> PathBuf {
        let file = json!([sample_entry(&fixture("nvtrust/hopperCertChain.txt"))]);
        self.write("gpu_evidence.json", &file.to_string())
    }

    /// `cdvm verify --gpu FILE --nonce NONCE --policy POLICY --at AT EXTRA…`
    fn verify(&self, file: &Path, nonce: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "verify",
            "--gpu",
            path(file),
            "--nonce",
            nonce,
            "--policy",
            path(&self.policy),
        ];
        if !extra.contains(&"--at") {
            args.extend(["--at", AT]);
        }
        args.extend_from_slice(extra);
        cdvm(&args)
    }
}

#[test]
fn nvidia_evidence_json_is_accepted_with_its_nonce_and_every_check_shown() {
    let s = setup();
    let file = s.sample();
    let out = s.verify(&file, NONCE, &[]);
    exits(&out, 0);
    let shown = stdout(&out);
    for check in [
        "NVIDIA evidence JSON, 1 device(s)",
        "✓ gpu-count:",
        "✓ gpu0-device: Hopper GPU (GH100): leaf certificate `GH100 A01 GSP FMC LF`",
        "✓ gpu0-report:",
        "✓ gpu0-chain: NVIDIA Device Identity CA → NVIDIA GH100 Identity →",
        "✓ gpu0-validity:",
        "✓ gpu0-leaf:",
        "✓ gpu0-signature:",
        "✓ gpu0-fwid:",
        "✓ gpu0-nonce: SPDM request nonce equals the nonce given to the verifier",
        "✓ gpu0-measurements:",
        "✓ gpu0-versions: driver 550.90.07",
        "verdict: ACCEPTED under policy `h100-any`",
    ] {
        assert!(shown.contains(check), "{check} missing:\n{shown}");
    }

    let out = s.verify(&file, NONCE, &["--json"]);
    exits(&out, 0);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["verdict"], "accepted");
    assert_eq!(v["policy"], "h100-any");
    assert_eq!(v["checks"].as_array().unwrap().len(), 11);
    assert_eq!(v["checks"][1]["name"], "gpu0-device");

    // A full SNP policy with a `gpu` section serves too; one without is an input error.
    let full = "name: snp-with-gpu\ntee: sev-snp\nroots: [amd-milan]\n";
    let with_gpu = s.write("full.yaml", &format!("{full}gpu:\n  count: 1\n"));
    let out = cdvm(&[
        "verify",
        "--gpu",
        path(&file),
        "--nonce",
        NONCE,
        "--policy",
        path(&with_gpu),
        "--at",
        AT,
    ]);
    exits(&out, 0);
    assert!(stdout(&out).contains("ACCEPTED under policy `snp-with-gpu`"));
    let without = s.write("cpu-only.yaml", full);
    let out = cdvm(&[
        "verify",
        "--gpu",
        path(&file),
        "--nonce",
        NONCE,
        "--policy",
        path(&without),
    ]);
    exits(&out, 2);
    assert!(
        stderr(&out).contains("no `gpu` section"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn another_nonce_is_refused() {
    let s = setup();
    let out = s.verify(&s.sample(), PPCIE_NONCE, &[]);
    exits(&out, 3);
    assert!(stdout(&out).contains("✗ gpu0-nonce: GPU: GPU #0: nonce mismatch"));
    assert!(stdout(&out).contains("verdict: REFUSED under policy `h100-any`"));
    let out = s.verify(&s.sample(), PPCIE_NONCE, &["--json"]);
    exits(&out, 3);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["verdict"], "refused");
    assert_eq!(v["failed_check"], "gpu0-nonce");
}

#[test]
fn a_flipped_evidence_byte_is_refused() {
    let s = setup();
    let mut report = hex::decode(fixture("nvtrust/hopperAttestationReport.txt").trim()).unwrap();
    report[200] ^= 0x01; // inside the measurement record: signed
    let mut entry = sample_entry(&fixture("nvtrust/hopperCertChain.txt"));
    entry["evidence"] = json!(encode_block(&report));
    let file = s.write("tampered.json", &json!([entry]).to_string());
    let out = s.verify(&file, NONCE, &[]);
    refused_showing(
        &out,
        "✗ gpu0-signature: GPU: GPU #0: report signature invalid",
    );
}

#[test]
fn a_broken_chain_is_refused() {
    let s = setup();
    // trustee's case 3: the chain without `NVIDIA GH100 Provisioner ICA 1`.
    let entry = sample_entry(&fixture("trustee/hopper_cert_chain_case3.txt"));
    let file = s.write("broken.json", &json!([entry]).to_string());
    let out = s.verify(&file, NONCE, &[]);
    refused_showing(&out, "✗ gpu0-chain: GPU: GPU #0: certificate chain broken");
}

#[test]
fn at_pins_the_verification_time() {
    let s = setup();
    let out = s.verify(&s.sample(), NONCE, &["--at", "2020-01-01T00:00:00Z"]);
    refused_showing(&out, "✗ gpu0-validity:");
}

#[test]
fn nvidias_ppcie_files_eight_gpus_pass_and_its_nvswitches_are_refused() {
    let s = setup();
    let gpus = fixture_path("nvtrust/ppcie/gpu_evidence.json");
    let out = s.verify(&gpus, PPCIE_NONCE, &[]);
    exits(&out, 0);
    let shown = stdout(&out);
    assert!(
        shown.contains("8 device(s)") && shown.contains("✓ gpu7-versions:"),
        "{shown}"
    );

    let switches = fixture_path("nvtrust/ppcie/switch_evidence.json");
    let out = s.verify(&switches, PPCIE_NONCE, &[]);
    refused_showing(
        &out,
        "✗ gpu0-device: GPU: GPU #0: unsupported device class: NVSwitch",
    );
}

#[test]
fn bad_input_is_an_error_not_a_refusal() {
    let s = setup();
    let chain = fixture("nvtrust/hopperCertChain.txt");
    let mut missing = sample_entry(&chain);
    missing.as_object_mut().unwrap().remove("certificate");
    let mut bad_b64 = sample_entry(&chain);
    bad_b64["evidence"] = json!("not base64!");
    for (name, text, says) in [
        ("truncated.json", "[{\"evidence\": ".to_string(), "not JSON"),
        (
            "bad-base64.json",
            json!([bad_b64]).to_string(),
            "device entry #0",
        ),
        (
            "missing.json",
            json!([missing]).to_string(),
            "missing field `certificate`",
        ),
        ("empty.json", "[]".to_string(), "lists no device"),
        ("string.json", "\"x\"".to_string(), "found a string"),
    ] {
        let file = s.write(name, &text);
        let out = s.verify(&file, NONCE, &[]);
        exits(&out, 2);
        assert!(stderr(&out).contains(says), "{name}: {}", stderr(&out));
    }
    let out = s.verify(&s.dir.path().join("absent.json"), NONCE, &[]);
    exits(&out, 2);
}

#[test]
fn the_nonce_is_required_and_exactly_32_bytes() {
    let s = setup();
    let file = s.sample();
    let out = cdvm(&["verify", "--gpu", path(&file), "--policy", path(&s.policy)]);
    exits(&out, 2);
    assert!(stderr(&out).contains("--nonce"), "{}", stderr(&out));
    for bad in [
        &NONCE[..62],
        &format!("{NONCE}00"),
        &NONCE.replace('9', "g"),
    ] {
        let out = s.verify(&file, bad, &[]);
        exits(&out, 2);
        assert!(
            stderr(&out).contains("exactly 64 hex characters"),
            "{bad}: {}",
            stderr(&out)
        );
    }
    // --nonce belongs to --gpu, and --gpu excludes the CPU-evidence options.
    let out = cdvm(&[
        "verify",
        "--nonce",
        NONCE,
        "--policy",
        path(&s.policy),
        path(&file),
    ]);
    exits(&out, 2);
    let out = s.verify(&file, NONCE, &["--report-data", &"00".repeat(64)]);
    exits(&out, 2);
}
