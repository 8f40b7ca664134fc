//! GPU evidence verified on its own, read from NVIDIA's evidence JSON: the real H100 sample turned
//! into that format at test time, NVIDIA's real 8-GPU PPCIe file, and its real NVSwitch file,
//! which is refused as an unsupported device class before any other check. Each accepted case
//! has its tampered twin. Provenance: `tests/fixtures/nvidia/SOURCES.md`.
#![cfg(feature = "nvidia")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cdvm_attestation::nvidia::{
    parse_gpu_evidence_file, verify_gpus, verify_gpus_standalone, DeviceClass, GpuError,
    GpuEvidence, GpuFileError, GpuFileFormat, GpuPolicy, PresentedGpu,
};
use cdvm_attestation::{Check, ReportData};
use serde_json::{json, Value};

/// 2026-01-01T00:00:00Z: every certificate here is valid then.
const T2026: u64 = 1_767_225_600;
const SAMPLE_NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
const PPCIE_NONCE: &str = "4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e";
const PPCIE_GPUS: &str = "nvtrust/ppcie/gpu_evidence.json";
const PPCIE_SWITCHES: &str = "nvtrust/ppcie/switch_evidence.json";

fn text(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nvidia")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T2026)
}

fn nonce(hex_text: &str) -> [u8; 32] {
    hex::decode(hex_text).unwrap().try_into().unwrap()
}

/// The nvtrust H100 sample in NVIDIA's evidence JSON, built here as NVIDIA's collector builds
/// it: base64 of the report bytes and base64 of the PEM chain text, with `arch`.
fn sample_entry(chain_pem: &str) -> Value {
    let report = hex::decode(text("nvtrust/hopperAttestationReport.txt").trim()).unwrap();
    json!({
        "evidence": STANDARD.encode(report),
        "certificate": STANDARD.encode(chain_pem),
        "arch": "HOPPER",
    })
}

fn sample_file() -> Value {
    json!([sample_entry(&text("nvtrust/hopperCertChain.txt"))])
}

fn read(file: &Value) -> Vec<PresentedGpu> {
    parse_gpu_evidence_file(&file.to_string()).unwrap().gpus
}

fn any() -> GpuPolicy {
    GpuPolicy::default()
}

fn verify(gpus: &[PresentedGpu], nonce_hex: &str) -> Result<Vec<Check>, GpuError> {
    verify_gpus_standalone(gpus, &nonce(nonce_hex), &any(), now())
}

fn names(checks: &[Check]) -> Vec<&str> {
    checks.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn the_sample_in_nvidias_format_verifies_with_its_nonce() {
    let file = parse_gpu_evidence_file(&sample_file().to_string()).unwrap();
    assert_eq!(file.format, GpuFileFormat::Nvidia);
    assert_eq!(file.gpus.len(), 1);
    assert_eq!(file.gpus[0].arch.as_deref(), Some("HOPPER"));
    // The same evidence as the hex + PEM text forms.
    let from_text = GpuEvidence::from_text(
        &text("nvtrust/hopperAttestationReport.txt"),
        &text("nvtrust/hopperCertChain.txt"),
    )
    .unwrap();
    assert_eq!(file.gpus[0].evidence, from_text);

    let checks = verify(&file.gpus, SAMPLE_NONCE).unwrap();
    assert_eq!(
        names(&checks),
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
    assert_eq!(
        checks[1].detail,
        "Hopper GPU (GH100): leaf certificate `GH100 A01 GSP FMC LF`; the file declares arch \
         \"HOPPER\""
    );
    assert_eq!(
        checks[8].detail,
        "SPDM request nonce equals the nonce given to the verifier"
    );
}

#[test]
fn another_nonce_is_refused() {
    let gpus = read(&sample_file());
    let err = verify(&gpus, PPCIE_NONCE).unwrap_err();
    assert_eq!(
        err,
        GpuError::NonceMismatch {
            gpu: 0,
            expected: PPCIE_NONCE.into(),
            found: SAMPLE_NONCE.into()
        }
    );
    // The refusal names the check it failed, as a successful run names it.
    assert_eq!(err.check(), "gpu0-nonce");
}

#[test]
fn a_flipped_evidence_byte_is_refused() {
    let mut file = sample_file();
    let mut tampered = STANDARD
        .decode(file[0]["evidence"].as_str().unwrap())
        .unwrap();
    // A byte of measurement block 2, inside the signed part.
    tampered[37 + 8 + 55 + 12] ^= 0x01;
    file[0]["evidence"] = json!(STANDARD.encode(&tampered));
    let err = verify(&read(&file), SAMPLE_NONCE).unwrap_err();
    assert_eq!(err, GpuError::SignatureInvalid { gpu: 0 });
    assert_eq!(err.check(), "gpu0-signature");
}

#[test]
fn a_broken_chain_is_refused() {
    // The PEM chain without its third certificate (`NVIDIA GH100 Provisioner ICA 1`).
    let chain = text("nvtrust/hopperCertChain.txt");
    let blocks: Vec<&str> = chain
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .collect();
    assert_eq!(blocks.len(), 5);
    let gap: String = blocks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, b)| *b)
        .collect();
    let gpus = read(&json!([sample_entry(&gap)]));
    assert_eq!(gpus[0].evidence.certs.len(), 4);
    let err = verify(&gpus, SAMPLE_NONCE).unwrap_err();
    assert_eq!(
        err,
        GpuError::ChainInvalid {
            gpu: 0,
            cert: "GH100 A01 GSP BROM".into(),
            issuer: "NVIDIA GH100 Identity".into()
        }
    );
    assert_eq!(err.check(), "gpu0-chain");
}

#[test]
fn nvidias_ppcie_file_verifies_all_eight_gpus() {
    let file = parse_gpu_evidence_file(&text(PPCIE_GPUS)).unwrap();
    assert_eq!(file.format, GpuFileFormat::Nvidia);
    assert_eq!(file.gpus.len(), 8);
    let eight = GpuPolicy {
        count: Some(8),
        driver_versions: vec!["590.12".into()],
        vbios_versions: vec!["96.00.a5.00.01".into()],
        ..GpuPolicy::default()
    };
    let checks = verify_gpus_standalone(&file.gpus, &nonce(PPCIE_NONCE), &eight, now()).unwrap();
    for gpu in 0..8 {
        let name = format!("gpu{gpu}-versions");
        let versions = checks.iter().find(|c| c.name == name).unwrap();
        assert_eq!(
            versions.detail,
            "driver 590.12 (allowed by the policy), VBIOS 96.00.a5.00.01 (allowed by the \
             policy), mode PPCIE"
        );
    }
    // Twins: another nonce; one GPU fewer than the policy requires; one GPU presented twice.
    assert!(matches!(
        verify_gpus_standalone(&file.gpus, &nonce(SAMPLE_NONCE), &eight, now()),
        Err(GpuError::NonceMismatch { gpu: 0, .. })
    ));
    assert_eq!(
        verify_gpus_standalone(&file.gpus[..7], &nonce(PPCIE_NONCE), &eight, now()),
        Err(GpuError::WrongCount {
            expected: 8,
            found: 7
        })
    );
    let mut twice = file.gpus.clone();
    twice[7] = twice[3].clone();
    assert_eq!(
        verify_gpus_standalone(&twice, &nonce(PPCIE_NONCE), &eight, now()),
        Err(GpuError::Duplicate {
            first: 3,
            second: 7
        })
    );
}

#[test]
fn nothing_to_verify_is_refused() {
    assert_eq!(verify(&[], SAMPLE_NONCE), Err(GpuError::Missing));
}

/// NVSwitch evidence: its chain and signature are genuine (see SOURCES.md), so only the device
/// class check stands between it and the GPU rules.
#[test]
fn nvswitch_evidence_is_refused_as_an_unsupported_device_class() {
    let file = parse_gpu_evidence_file(&text(PPCIE_SWITCHES)).unwrap();
    assert_eq!(file.gpus.len(), 4);
    assert_eq!(
        verify(&file.gpus, PPCIE_NONCE),
        Err(GpuError::UnsupportedDeviceClass {
            gpu: 0,
            found: DeviceClass::NvSwitch,
            indicator: "the evidence file declares arch \"LS10\"".into()
        })
    );

    // Without the `arch` field (nvtrust's Python collector writes none for switches), the leaf
    // certificate's name says the same.
    let mut value: Value = serde_json::from_str(&text(PPCIE_SWITCHES)).unwrap();
    for entry in value.as_array_mut().unwrap() {
        entry.as_object_mut().unwrap().remove("arch");
    }
    let no_arch = read(&value);
    let by_leaf = Err(GpuError::UnsupportedDeviceClass {
        gpu: 0,
        found: DeviceClass::NvSwitch,
        indicator: "leaf certificate \"LS_10 A01 FSP FMC LF\"".into(),
    });
    assert_eq!(verify(&no_arch, PPCIE_NONCE), by_leaf);
    assert_eq!(
        verify(&no_arch, PPCIE_NONCE).unwrap_err().check(),
        "gpu0-device"
    );
    // An `arch` that claims HOPPER does not help: the certificate decides.
    let mut claimed = no_arch.clone();
    claimed[0].arch = Some("HOPPER".into());
    assert_eq!(verify(&claimed, PPCIE_NONCE), by_leaf);

    // Before any other check: a truncated report, a chain missing its root, a wrong nonce, all
    // still give the device-class refusal.
    let mut broken = no_arch[0].clone();
    broken.evidence.report.truncate(100);
    broken.evidence.certs.pop();
    assert_eq!(verify(std::slice::from_ref(&broken), SAMPLE_NONCE), by_leaf);

    // The same through the path of GPUs attached to CPU evidence.
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&nonce(PPCIE_NONCE));
    let attached: Vec<GpuEvidence> = no_arch.iter().map(|g| g.evidence.clone()).collect();
    assert_eq!(
        verify_gpus(&attached, &ReportData(rd), Some(&any()), now()),
        by_leaf
    );
}

/// The twin of the NVSwitch refusals: real Hopper evidence passes the same check, and a Hopper
/// chain under another declared architecture is refused by it.
#[test]
fn the_device_class_check_passes_hopper_and_refuses_other_declared_classes() {
    let gpus = read(&sample_file());
    let checks = verify(&gpus, SAMPLE_NONCE).unwrap();
    assert!(checks[1].detail.starts_with("Hopper GPU (GH100)"));
    for (arch, class) in [
        ("BLACKWELL", DeviceClass::BlackwellGpu),
        ("LS10", DeviceClass::NvSwitch),
        ("AMPERE", DeviceClass::Unknown),
    ] {
        let mut declared = gpus.clone();
        declared[0].arch = Some(arch.into());
        assert_eq!(
            verify(&declared, SAMPLE_NONCE),
            Err(GpuError::UnsupportedDeviceClass {
                gpu: 0,
                found: class,
                indicator: format!("the evidence file declares arch {arch:?}")
            })
        );
    }
    let mut lower = gpus.clone();
    lower[0].arch = Some("hopper".into());
    verify(&lower, SAMPLE_NONCE).unwrap();
}

#[test]
fn our_own_gpu_evidence_json_is_read_too() {
    let ev = GpuEvidence::from_text(
        &text("nvtrust/hopperAttestationReport.txt"),
        &text("nvtrust/hopperCertChain.txt"),
    )
    .unwrap();
    let one = serde_json::to_string(&ev).unwrap();
    let file = parse_gpu_evidence_file(&one).unwrap();
    assert_eq!(file.format, GpuFileFormat::Cdvm);
    assert_eq!(
        file.gpus,
        vec![PresentedGpu {
            evidence: ev.clone(),
            arch: None
        }]
    );
    verify(&file.gpus, SAMPLE_NONCE).unwrap();
    let two = parse_gpu_evidence_file(&format!("[{one}, {one}]")).unwrap();
    assert_eq!(two.gpus.len(), 2);
    // Formats are not mixed: the first entry decides.
    let mixed = json!([
        serde_json::from_str::<Value>(&one).unwrap(),
        sample_entry("x")
    ]);
    assert!(matches!(
        parse_gpu_evidence_file(&mixed.to_string()),
        Err(GpuFileError::Entry { index: 1, .. })
    ));
}

#[test]
fn malformed_files_are_input_errors_naming_the_entry() {
    let chain = text("nvtrust/hopperCertChain.txt");
    let entry = sample_entry(&chain);
    let with = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut e = entry.clone();
        edit(e.as_object_mut().unwrap());
        parse_gpu_evidence_file(&json!([sample_entry(&chain), e]).to_string())
    };
    let message = |r: Result<_, GpuFileError>| r.unwrap_err().to_string();

    let missing = message(with(&|e| {
        e.remove("evidence");
    }));
    assert!(missing.contains("entry #1") && missing.contains("missing field `evidence`"));
    let missing = message(with(&|e| {
        e.remove("certificate");
    }));
    assert!(missing.contains("missing field `certificate`"), "{missing}");
    let unknown = message(with(&|e| {
        e.insert("claims".into(), json!({}));
    }));
    assert!(unknown.contains("unknown field `claims`"), "{unknown}");
    let bad_b64 = message(with(&|e| {
        e.insert("evidence".into(), json!("EeAB*/0d"));
    }));
    assert!(bad_b64.contains("entry #1"), "{bad_b64}");
    let not_string = message(with(&|e| {
        e.insert("evidence".into(), json!([1, 2]));
    }));
    assert!(not_string.contains("entry #1"), "{not_string}");
    assert!(matches!(
        with(&|e| {
            e.insert("version".into(), json!("2.0"));
        }),
        Err(GpuFileError::Version { index: 1, found }) if found == "2.0"
    ));
    assert!(matches!(
        with(&|e| {
            e.insert("nonce".into(), json!("1234"));
        }),
        Err(GpuFileError::Nonce { index: 1 })
    ));
    assert!(matches!(
        with(&|e| {
            e.insert(
                "certificate".into(),
                json!(STANDARD.encode("no certificate here")),
            );
        }),
        Err(GpuFileError::Certificate { index: 1, .. })
    ));
    // The fields NVIDIA's attestation SDK 2025.09 adds are read (and the unsigned ones ignored).
    let full = with(&|e| {
        e.insert("version".into(), json!("1.0"));
        e.insert("nonce".into(), json!(SAMPLE_NONCE));
        e.insert("driver_version".into(), json!("550.90.07"));
        e.insert("vbios_version".into(), json!("96.00.9F.00.01"));
    })
    .unwrap();
    assert_eq!(full.gpus.len(), 2);
    assert!(matches!(
        parse_gpu_evidence_file("{\"evidence\": "),
        Err(GpuFileError::Json(_))
    ));
}
