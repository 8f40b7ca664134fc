//! Real NVIDIA H100 evidence (trustee / nvtrust samples) verifies with its real chain to the
//! pinned NVIDIA Device Identity CA; each failure has its fixture or tampered twin.
//! Provenance: `tests/fixtures/nvidia/SOURCES.md`.
#![cfg(feature = "nvidia")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdvm_attestation::nvidia::{
    certs_from_pem, verify_gpus, AllowedGpuMeasurement, GpuCert, GpuError, GpuEvidence, GpuPolicy,
    GpuReport,
};
use cdvm_attestation::{Check, ReportData};

/// 2026-01-01T00:00:00Z. Every certificate in these chains is valid 2022-03-01..9999-12-31.
const T2026: u64 = 1_767_225_600;
/// 2021-06-01: after the leaf, BROM and root began, before `NVIDIA GH100 Provisioner ICA 1`.
const T2021_06: u64 = 1_622_505_600;
/// 2020-01-01: before every certificate.
const T2020: u64 = 1_577_836_800;

const TRUSTEE_NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
const COCO_NONCE: &str = "87d8e24ab336adafe228d49e83d745f6dba4ae505372b6a5704820856b343fec";
const TRUSTEE_FWID: &str = "f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d";

const LEAF: &str = "GH100 A01 GSP FMC LF";
const BROM: &str = "GH100 A01 GSP BROM";
const ICA: &str = "NVIDIA GH100 Provisioner ICA 1";
const IDENTITY: &str = "NVIDIA GH100 Identity";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn text(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nvidia")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

fn evidence(report: &str, chain: &str) -> GpuEvidence {
    GpuEvidence::from_text(&text(report), &text(chain)).unwrap()
}

fn trustee() -> GpuEvidence {
    evidence(
        "trustee/hopperAttestationReport.txt",
        "trustee/hopper_cert_chain_case1.txt",
    )
}

fn coco() -> GpuEvidence {
    evidence(
        "trustee/hopper_coco_report1.txt",
        "trustee/hopper_coco_certs1.txt",
    )
}

/// Report data whose first half is `nonce_hex` (the second half is unrelated to the GPU).
fn bound_to(nonce_hex: &str) -> ReportData {
    let mut rd = [0x5Au8; 64];
    rd[..32].copy_from_slice(&hex::decode(nonce_hex).unwrap());
    ReportData(rd)
}

fn any_gpu() -> GpuPolicy {
    GpuPolicy {
        required: true,
        ..GpuPolicy::default()
    }
}

fn run(ev: &GpuEvidence, nonce: &str, policy: &GpuPolicy) -> Result<Vec<Check>, GpuError> {
    verify_gpus(
        std::slice::from_ref(ev),
        &bound_to(nonce),
        Some(policy),
        at(T2026),
    )
}

fn detail<'a>(checks: &'a [Check], name: &str) -> &'a str {
    &checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}"))
        .detail
}

#[test]
fn trustee_hopper_sample_verifies() {
    let checks = run(&trustee(), TRUSTEE_NONCE, &any_gpu()).unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
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
        detail(&checks, "gpu0-chain"),
        format!("NVIDIA Device Identity CA → {IDENTITY} → {ICA} → {BROM} → {LEAF}")
    );
    assert!(detail(&checks, "gpu0-leaf").contains(TRUSTEE_FWID));
    assert!(detail(&checks, "gpu0-measurements").contains("NOT judged"));
    assert_eq!(
        detail(&checks, "gpu0-versions"),
        "driver 550.90.07 (not checked), VBIOS 96.00.9f.00.01 (not checked)"
    );
}

#[test]
fn nvtrust_copy_is_the_same_evidence_and_verifies() {
    let nv = evidence(
        "nvtrust/hopperAttestationReport.txt",
        "nvtrust/hopperCertChain.txt",
    );
    assert_eq!(nv, trustee());
    run(&nv, TRUSTEE_NONCE, &any_gpu()).unwrap();
}

#[test]
fn coco_ci_h100_verifies_despite_its_trailing_byte() {
    let ev = coco();
    let report = ev.parse_report().unwrap();
    assert_eq!(ev.report.len(), 4130);
    assert_eq!(report.signed_len + 96, 4129);
    assert_eq!(report.trailing, 1);
    assert_eq!(hex::encode(report.request.nonce), COCO_NONCE);
    let checks = run(&ev, COCO_NONCE, &any_gpu()).unwrap();
    assert!(detail(&checks, "gpu0-report").contains("1 unsigned trailing byte(s) ignored"));
    assert_eq!(
        detail(&checks, "gpu0-versions"),
        "driver 580.95.05 (not checked), VBIOS 96.00.74.00.1a (not checked), mode SPT"
    );
    // The trailing byte is not signed: changing it changes nothing.
    let mut other = ev.clone();
    *other.report.last_mut().unwrap() ^= 0xFF;
    run(&other, COCO_NONCE, &any_gpu()).unwrap();
    // A second extra byte is refused.
    other.report.push(0);
    assert!(matches!(
        run(&other, COCO_NONCE, &any_gpu()),
        Err(GpuError::Malformed { gpu: 0, .. })
    ));
}

/// The parsed report matches trustee's expected claims for the same sample.
#[test]
fn parsed_fields_match_trustee_claims() {
    let claims: serde_json::Value =
        serde_json::from_str(&text("trustee/hopperAttestationReport-claims.txt")).unwrap();
    let report = trustee().parse_report().unwrap();
    let expected: BTreeMap<u8, String> = claims["measurements"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), v.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(expected.len(), 64);
    assert_eq!(report.blocks.len(), 64);
    for block in &report.blocks {
        assert_eq!(block.value_type, 0x01, "index {}", block.index);
        assert_eq!(hex::encode(&block.value), expected[&block.index]);
    }
    let config = &claims["config"];
    assert_eq!(report.fwid_hex().unwrap(), config["fwid"]);
    assert_eq!(report.driver_version().unwrap(), config["driver_version"]);
    assert_eq!(report.vbios_version().unwrap(), config["vbios_version"]);
    assert_eq!(hex::encode(report.request.nonce), TRUSTEE_NONCE);
    assert_eq!(
        hex::encode(report.response_nonce),
        "b4b8a06aaaa35542839388e159d447a5d6f6194998fd86513e2d591ccf640985"
    );
    assert_eq!(report.trailing, 0);
}

#[test]
fn every_truncation_is_refused_without_panicking() {
    for ev in [trustee(), coco()] {
        let full = ev.report.len();
        let structure = full - ev.parse_report().unwrap().trailing;
        for len in 0..=full {
            let parsed = GpuReport::parse(&ev.report[..len]);
            assert_eq!(parsed.is_ok(), len >= structure, "prefix {len} of {full}");
            if len < structure {
                let cut = GpuEvidence {
                    report: ev.report[..len].to_vec(),
                    certs: ev.certs.clone(),
                };
                assert!(
                    matches!(
                        run(&cut, TRUSTEE_NONCE, &any_gpu()),
                        Err(GpuError::Malformed { gpu: 0, .. })
                    ),
                    "prefix {len}"
                );
            }
        }
    }
}

#[test]
fn another_nonce_is_another_job() {
    let err = run(&trustee(), COCO_NONCE, &any_gpu()).unwrap_err();
    assert_eq!(
        err,
        GpuError::NonceMismatch {
            gpu: 0,
            expected: COCO_NONCE.into(),
            found: TRUSTEE_NONCE.into()
        }
    );
    // Only the first half of the report data is the GPU nonce.
    let mut rd = bound_to(TRUSTEE_NONCE);
    rd.0[32..].fill(0);
    verify_gpus(&[trustee()], &rd, Some(&any_gpu()), at(T2026)).unwrap();
}

#[test]
fn chain_cases_fail_precisely() {
    let report = "trustee/hopperAttestationReport.txt";
    let case = |n: u8| evidence(report, &format!("trustee/hopper_cert_chain_case{n}.txt"));
    // Case 2: only the root.
    assert_eq!(
        run(&case(2), TRUSTEE_NONCE, &any_gpu()),
        Err(GpuError::ChainIncomplete { gpu: 0, found: 1 })
    );
    // Case 3: `NVIDIA GH100 Provisioner ICA 1` missing.
    assert_eq!(
        run(&case(3), TRUSTEE_NONCE, &any_gpu()),
        Err(GpuError::ChainInvalid {
            gpu: 0,
            cert: BROM.into(),
            issuer: IDENTITY.into()
        })
    );
    // Case 4: the signing leaf missing; the chain now starts at the BROM CA.
    assert!(matches!(
        run(&case(4), TRUSTEE_NONCE, &any_gpu()),
        Err(GpuError::NotAttestationLeaf { gpu: 0, cert, .. }) if cert == BROM
    ));
    // No certificates at all.
    let mut none = trustee();
    none.certs.clear();
    assert_eq!(
        run(&none, TRUSTEE_NONCE, &any_gpu()),
        Err(GpuError::ChainIncomplete { gpu: 0, found: 0 })
    );
}

#[test]
fn a_chain_not_ending_in_the_pinned_root_is_untrusted() {
    let mut ev = trustee();
    ev.certs.pop(); // now ends at `NVIDIA GH100 Identity`
    assert!(matches!(
        run(&ev, TRUSTEE_NONCE, &any_gpu()),
        Err(GpuError::UntrustedRoot { gpu: 0, cert, .. }) if cert == IDENTITY
    ));
}

#[test]
fn validity_is_checked_leaf_to_root_at_the_given_time() {
    let ev = trustee();
    let rd = bound_to(TRUSTEE_NONCE);
    let at_time = |t: u64| verify_gpus(std::slice::from_ref(&ev), &rd, Some(&any_gpu()), at(t));
    assert_eq!(
        at_time(T2021_06),
        Err(GpuError::CertificateExpired {
            gpu: 0,
            cert: ICA.into()
        })
    );
    assert_eq!(
        at_time(T2020),
        Err(GpuError::CertificateExpired {
            gpu: 0,
            cert: LEAF.into()
        })
    );
}

/// Flips one bit of `bytes[at]`.
fn flip(bytes: &mut [u8], at: usize) {
    bytes[at] ^= 0x01;
}

#[test]
fn tampered_reports_fail_the_signature() {
    let ev = trustee();
    let report = ev.parse_report().unwrap();
    let len = ev.report.len();
    let block2 = 37 + 8 + 55 + 7; // value of the second measurement block (index 2)
    assert_eq!(
        &ev.report[block2..block2 + 48],
        report.measurement(2).unwrap()
    );
    let opaque_fwid = len - 96 - 1 - 4 - 48; // FWID is the second-to-last opaque field
    assert_eq!(
        hex::encode(&ev.report[opaque_fwid..opaque_fwid + 48]),
        TRUSTEE_FWID
    );
    for (what, offset) in [
        ("measurement block", block2 + 5),
        ("signature r", len - 96 + 3),
        ("signature s", len - 1),
        (
            "response nonce",
            report.signed_len - 2 - report.opaque_data.len() - 10,
        ),
        ("opaque FWID", opaque_fwid),
        ("request param2", 3),
    ] {
        let mut t = ev.clone();
        flip(&mut t.report, offset);
        assert_eq!(
            run(&t, TRUSTEE_NONCE, &any_gpu()),
            Err(GpuError::SignatureInvalid { gpu: 0 }),
            "{what}"
        );
    }
    // The request nonce is signed too: rewriting it to this job's nonce does not help.
    let mut t = ev.clone();
    t.report[4..36].copy_from_slice(&hex::decode(COCO_NONCE).unwrap());
    assert_eq!(
        run(&t, COCO_NONCE, &any_gpu()),
        Err(GpuError::SignatureInvalid { gpu: 0 })
    );
}

#[test]
fn a_report_signed_by_another_gpu_fails_the_signature() {
    // The trustee report with the CoCo H100's (valid) chain.
    let mut ev = trustee();
    ev.certs = coco().certs;
    assert_eq!(
        run(&ev, TRUSTEE_NONCE, &any_gpu()),
        Err(GpuError::SignatureInvalid { gpu: 0 })
    );
}

#[test]
fn tampered_certificates_fail_precisely() {
    let ev = trustee();
    // A byte inside the leaf's serial number: still parses, no longer signed by the BROM CA.
    let mut t = ev.clone();
    flip(&mut t.certs[0].0, 20);
    assert_eq!(
        run(&t, TRUSTEE_NONCE, &any_gpu()),
        Err(GpuError::ChainInvalid {
            gpu: 0,
            cert: LEAF.into(),
            issuer: BROM.into()
        })
    );
    // The same in the ICA.
    let mut t = ev.clone();
    flip(&mut t.certs[2].0, 20);
    assert_eq!(
        run(&t, TRUSTEE_NONCE, &any_gpu()),
        Err(GpuError::ChainInvalid {
            gpu: 0,
            cert: ICA.into(),
            issuer: IDENTITY.into()
        })
    );
    // The outer SEQUENCE tag of the BROM certificate: no longer DER.
    let mut t = ev.clone();
    flip(&mut t.certs[1].0, 0);
    assert!(matches!(
        run(&t, TRUSTEE_NONCE, &any_gpu()),
        Err(GpuError::BadCertificate { gpu: 0, cert, .. }) if cert == "certificate #1"
    ));
    // Any change to the root makes it another root.
    let mut t = ev.clone();
    flip(&mut t.certs[4].0, 20);
    assert!(matches!(
        run(&t, TRUSTEE_NONCE, &any_gpu()),
        Err(GpuError::UntrustedRoot { gpu: 0, .. })
    ));
}

#[test]
fn measurement_policy() {
    let ev = trustee();
    let index2 = hex::encode(ev.parse_report().unwrap().measurement(2).unwrap());
    let with = |values: Vec<String>, index: u8| GpuPolicy {
        measurements: vec![AllowedGpuMeasurement {
            index,
            values,
            source: "trustee claims".into(),
        }],
        ..any_gpu()
    };
    let checks = run(
        &ev,
        TRUSTEE_NONCE,
        &with(vec!["00".repeat(48), index2.clone()], 2),
    )
    .unwrap();
    assert_eq!(
        detail(&checks, "gpu0-measurements"),
        "1 of 64 indices match the policy: 2 (trustee claims); the others are not judged"
    );
    assert_eq!(
        run(&ev, TRUSTEE_NONCE, &with(vec!["00".repeat(48)], 2)),
        Err(GpuError::MeasurementNotAllowed {
            gpu: 0,
            index: 2,
            found: index2.clone()
        })
    );
    assert_eq!(
        run(&ev, TRUSTEE_NONCE, &with(Vec::new(), 2)),
        Err(GpuError::MeasurementNotAllowed {
            gpu: 0,
            index: 2,
            found: index2.clone()
        })
    );
    assert_eq!(
        run(&ev, TRUSTEE_NONCE, &with(vec![index2], 65)),
        Err(GpuError::MeasurementMissing { gpu: 0, index: 65 })
    );
}

#[test]
fn version_policy() {
    let ev = trustee();
    let ok = GpuPolicy {
        driver_versions: vec!["550.90.07".into()],
        vbios_versions: vec!["96.00.9f.00.01".into()],
        ..any_gpu()
    };
    let checks = run(&ev, TRUSTEE_NONCE, &ok).unwrap();
    assert_eq!(
        detail(&checks, "gpu0-versions"),
        "driver 550.90.07 (allowed by the policy), VBIOS 96.00.9f.00.01 (allowed by the policy)"
    );
    let old_driver = GpuPolicy {
        driver_versions: vec!["535.104.05".into()],
        ..ok.clone()
    };
    assert_eq!(
        run(&ev, TRUSTEE_NONCE, &old_driver),
        Err(GpuError::VersionNotAllowed {
            gpu: 0,
            what: "driver version",
            found: "550.90.07".into()
        })
    );
    let other_vbios = GpuPolicy {
        vbios_versions: vec!["96.00.74.00.1a".into()],
        ..ok
    };
    assert_eq!(
        run(&ev, TRUSTEE_NONCE, &other_vbios),
        Err(GpuError::VersionNotAllowed {
            gpu: 0,
            what: "VBIOS version",
            found: "96.00.9f.00.01".into()
        })
    );
}

#[test]
fn gpu_count_rules() {
    let rd = bound_to(TRUSTEE_NONCE);
    let now = at(T2026);
    assert_eq!(
        verify_gpus(&[], &rd, Some(&any_gpu()), now),
        Err(GpuError::Missing)
    );
    assert_eq!(
        verify_gpus(&[trustee()], &rd, None, now),
        Err(GpuError::NotInPolicy { count: 1 })
    );
    let two = GpuPolicy {
        count: Some(2),
        ..GpuPolicy::default()
    };
    assert_eq!(
        verify_gpus(&[trustee()], &rd, Some(&two), now),
        Err(GpuError::WrongCount {
            expected: 2,
            found: 1
        })
    );
    // One GPU presented twice does not make two.
    assert_eq!(
        verify_gpus(&[trustee(), trustee()], &rd, Some(&two), now),
        Err(GpuError::Duplicate {
            first: 0,
            second: 1
        })
    );
    // Each GPU is checked against the same nonce: the second GPU here answered another job.
    assert!(matches!(
        verify_gpus(&[trustee(), coco()], &rd, Some(&two), now),
        Err(GpuError::NonceMismatch { gpu: 1, .. })
    ));
}

#[test]
fn evidence_formats() {
    // JSON round trip (base64 report and DER certificates).
    let ev = trustee();
    let json = serde_json::to_string(&ev).unwrap();
    assert_eq!(serde_json::from_str::<GpuEvidence>(&json).unwrap(), ev);
    assert!(serde_json::from_str::<GpuEvidence>(&json.replace("\"certs\"", "\"chain\"")).is_err());
    // Chain files are leaf-first PEM concatenations; trustee's signing-cert file is that leaf.
    assert_eq!(ev.certs.len(), 5);
    let leaf: Vec<GpuCert> = certs_from_pem(&text("trustee/hopper_signing_cert.pem")).unwrap();
    assert_eq!(leaf, vec![ev.certs[0].clone()]);
    assert!(matches!(
        certs_from_pem("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"),
        Err(GpuError::BadCertificate { .. })
    ));
}

#[test]
fn a_policy_file_carries_the_gpu_section() {
    let yaml = format!(
        "name: gpu-test\ntee: sev-snp\nroots: [amd-milan]\ngpu:\n  required: true\n  count: 1\n  \
         measurements:\n    - index: 2\n      values: [\"{}\"]\n      source: trustee sample\n  \
         driver_versions: [\"550.90.07\"]\n",
        hex::encode(trustee().parse_report().unwrap().measurement(2).unwrap())
    );
    let policy = cdvm_attestation::Policy::from_yaml(&yaml).unwrap();
    let gpu = policy.gpu.as_ref().unwrap();
    run(&trustee(), TRUSTEE_NONCE, gpu).unwrap();
    let typo = yaml.replace("driver_versions", "driver_version");
    assert!(cdvm_attestation::Policy::from_yaml(&typo).is_err());
}
