//! The Azure vTPM attester end to end on swtpm behind the emulated paravisor: the production
//! attester (raw TPM2 commands over a socket instead of /dev/tpmrm0, HTTP to a local IMDS)
//! produces evidence that the production verifier accepts under a development policy trusting
//! the simulated root, that every shipped policy refuses, and whose tampered twins fail.
//!
//! swtpm is part of CI's install list (.ci/run): without it these tests FAIL with the command
//! that installs it, they are never skipped.
#![cfg(all(feature = "azure-attester", feature = "sim"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cdvm_attestation::azure::paravisor_sim::{Paravisor, ParavisorOptions};
use cdvm_attestation::azure::{
    quote_nonce, verify_with_nonce, AzureError, AzureSnpEvidence, AzureVtpmAttester,
    AzureVtpmPolicy, HclReport, RuntimeClaims, VtpmAttestError, HCL_HEADER_LEN,
};
use cdvm_attestation::sim::{self, SimReportOptions, SimSecureProcessor};
use cdvm_attestation::{
    AnyVerifier, AttestError, Attester, Evidence, Measurement, Policy, ReportData, Verifier,
    VerifyError,
};

struct Env {
    _dir: tempfile::TempDir,
    sp: Arc<SimSecureProcessor>,
    measurement: Measurement,
    pv: Paravisor,
}

fn require_swtpm() {
    if std::process::Command::new("swtpm")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!(
            "swtpm is not installed: these tests need it (CI installs it in .ci/run). Run: \
             sudo apt-get install -y --no-install-recommends swtpm swtpm-tools"
        );
    }
}

fn env() -> Env {
    require_swtpm();
    let dir = tempfile::tempdir().unwrap();
    let sp = Arc::new(SimSecureProcessor::load_or_create(&dir.path().join("sp")).unwrap());
    let measurement = sim::measure_file_bytes(b"azure paravisor test image");
    let pv = Paravisor::start(
        Arc::clone(&sp),
        ParavisorOptions {
            dir: dir.path().join("paravisor"),
            measurement,
            report: SimReportOptions::default(),
            tdx_quoter: None,
        },
    )
    .unwrap();
    Env {
        _dir: dir,
        sp,
        measurement,
        pv,
    }
}

fn rd(n: u8) -> ReportData {
    ReportData([n; 64])
}

impl Env {
    fn policy(&self, pcrs: BTreeMap<u32, Vec<String>>) -> Policy {
        let mut p = sim::dev_policy(&self.sp, &self.measurement, "test");
        p.azure_vtpm = Some(AzureVtpmPolicy { pcrs });
        p
    }
    fn evidence(&self, data: &ReportData) -> AzureSnpEvidence {
        match self.pv.attester().evidence(data).unwrap() {
            Evidence::AzureSevSnpVtpm(e) => e,
            other => panic!("not Azure vTPM evidence: {other:?}"),
        }
    }
}

fn verify(ev: &AzureSnpEvidence, data: &ReportData, policy: &Policy) -> Result<(), VerifyError> {
    AnyVerifier
        .verify(
            &Evidence::AzureSevSnpVtpm(ev.clone()),
            data,
            policy,
            SystemTime::now(),
        )
        .map(|_| ())
}

fn pcr_policy(ev: &AzureSnpEvidence, index: u32) -> BTreeMap<u32, Vec<String>> {
    BTreeMap::from([(
        index,
        vec![hex::encode(ev.tpm_quote.pcrs[index as usize].0)],
    )])
}

#[test]
fn evidence_from_swtpm_verifies_under_the_development_policy() {
    let env = env();
    let ev = env.evidence(&rd(1));
    assert_eq!(ev.tpm_quote.pcrs.len(), 24);
    let hcl = HclReport::parse(&ev.hcl_report).unwrap();
    let runtime = RuntimeClaims::parse(hcl.runtime_data).unwrap();
    assert_eq!(runtime.user_data, rd(1));
    let claims = AnyVerifier
        .verify(
            &Evidence::AzureSevSnpVtpm(ev.clone()),
            &rd(1),
            &env.policy(pcr_policy(&ev, 0)),
            SystemTime::now(),
        )
        .unwrap();
    let names: Vec<&str> = claims.checks.iter().map(|c| c.name.as_str()).collect();
    for check in [
        "runtime-data",
        "report-data",
        "tpm-quote",
        "tpm-nonce",
        "pcr-digest",
        "pcr-policy",
    ] {
        assert!(names.contains(&check), "{check} missing from {names:?}");
    }
    // The evidence survives its wire form.
    let json = serde_json::to_string(&Evidence::AzureSevSnpVtpm(ev.clone())).unwrap();
    let back: Evidence = serde_json::from_str(&json).unwrap();
    assert_eq!(back, Evidence::AzureSevSnpVtpm(ev));
}

#[test]
fn each_attestation_binds_its_own_report_data_and_pcr_changes_show() {
    let env = env();
    let first = env.evidence(&rd(1));
    // A boot component measured later: PCR 8 changes, and the next quote shows it.
    env.pv.with_swtpm(|tpm| extend_pcr(tpm, 8, &[0xab; 32]));
    let second = env.evidence(&rd(2));
    assert_ne!(first.tpm_quote.pcrs[8], second.tpm_quote.pcrs[8]);
    verify(&second, &rd(2), &env.policy(pcr_policy(&second, 8))).unwrap();
    // The old PCR value is refused by a policy pinning the new one.
    assert!(matches!(
        verify(&first, &rd(1), &env.policy(pcr_policy(&second, 8))),
        Err(VerifyError::Azure(AzureError::PcrNotAllowed {
            index: 8,
            ..
        }))
    ));
    // Evidence for one binding is refused for another.
    assert!(matches!(
        verify(&first, &rd(2), &env.policy(BTreeMap::new())),
        Err(VerifyError::ReportDataMismatch { .. })
    ));
}

fn extend_pcr(
    tpm: &mut cdvm_attestation::azure::tpm_client::Tpm<
        cdvm_attestation::azure::tpm_client::SocketTransport,
    >,
    pcr: u32,
    digest: &[u8; 32],
) {
    use cdvm_attestation::azure::tpm_client::TpmTransport;
    // TPM2_PCR_Extend(pcr, password session, TPML_DIGEST_VALUES{1, SHA-256, digest}).
    let mut cmd = Vec::new();
    cmd.extend_from_slice(&0x8002u16.to_be_bytes());
    cmd.extend_from_slice(&0u32.to_be_bytes());
    cmd.extend_from_slice(&0x182u32.to_be_bytes());
    cmd.extend_from_slice(&pcr.to_be_bytes());
    cmd.extend_from_slice(&9u32.to_be_bytes());
    cmd.extend_from_slice(&0x4000_0009u32.to_be_bytes());
    cmd.extend_from_slice(&[0, 0, 0, 0, 0]);
    cmd.extend_from_slice(&1u32.to_be_bytes());
    cmd.extend_from_slice(&0x000bu16.to_be_bytes());
    cmd.extend_from_slice(digest);
    let len = cmd.len() as u32;
    cmd[2..6].copy_from_slice(&len.to_be_bytes());
    let response = tpm.transport_mut().transact(&cmd).unwrap();
    assert_eq!(&response[6..10], &[0, 0, 0, 0], "PCR_Extend failed");
}

#[test]
fn shipped_policies_refuse_the_simulated_paravisor() {
    let env = env();
    let ev = env.evidence(&rd(3));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for name in ["default-snp.yaml", "image-snp.yaml"] {
        let mut policy = Policy::load(&root.join(name)).unwrap();
        let as_shipped = verify(&ev, &rd(3), &policy);
        assert!(as_shipped.is_err(), "{name} accepted simulated evidence");
        // Even with Azure's paravisor accepted, the simulated root is refused.
        policy.azure_vtpm = Some(AzureVtpmPolicy::default());
        assert!(
            matches!(
                verify(&ev, &rd(3), &policy),
                Err(VerifyError::SimulatedNotAllowed { .. })
            ),
            "{name}: {:?}",
            verify(&ev, &rd(3), &policy)
        );
    }
}

#[test]
fn tampered_twins_fail_each_at_its_own_check() {
    let env = env();
    let data = rd(4);
    let ev = env.evidence(&data);
    let policy = env.policy(pcr_policy(&ev, 0));
    verify(&ev, &data, &policy).unwrap();

    // Runtime JSON changed (one byte of user-data's hex): no longer what the hardware signed.
    let mut t = ev.clone();
    let hcl = HclReport::parse(&t.hcl_report).unwrap();
    let json_start = hcl.runtime_data.as_ptr() as usize - t.hcl_report.as_ptr() as usize;
    let at = json_start
        + hcl
            .runtime_data
            .windows(11)
            .position(|w| w == b"\"user-data\"")
            .unwrap()
        + 14;
    t.hcl_report[at] = if t.hcl_report[at] == b'0' { b'1' } else { b'0' };
    assert!(matches!(
        verify(&t, &data, &policy),
        Err(VerifyError::Azure(AzureError::RuntimeDataNotBound { .. }))
    ));

    // Quote signature.
    let mut t = ev.clone();
    t.tpm_quote.signature[10] ^= 1;
    assert_eq!(
        verify(&t, &data, &policy),
        Err(VerifyError::Azure(AzureError::QuoteSignatureInvalid))
    );

    // A PCR value.
    let mut t = ev.clone();
    t.tpm_quote.pcrs[0].0[0] ^= 1;
    assert!(matches!(
        verify(&t, &data, &policy),
        Err(VerifyError::Azure(AzureError::PcrDigestMismatch { .. }))
    ));

    // Nonce: the quote is for this report data, not another nonce.
    let other = quote_nonce(&rd(5));
    assert!(matches!(
        verify_with_nonce(&ev, &data, &other, &policy, SystemTime::now()),
        Err(VerifyError::Azure(AzureError::NonceMismatch { .. }))
    ));

    // A byte of the hardware report (its measurement).
    let mut t = ev.clone();
    t.hcl_report[HCL_HEADER_LEN + 0x90] ^= 1;
    let err = verify(&t, &data, &policy).unwrap_err();
    assert!(matches!(err, VerifyError::SignatureInvalid), "{err:?}");
}

#[test]
fn a_paravisor_that_leaves_a_stale_report_gets_no_evidence() {
    let env = env();
    env.evidence(&rd(6));
    env.pv.set_refresh_on_write(false);
    let err = env.pv.attester().evidence(&rd(7)).unwrap_err();
    let AttestError::AzureVtpm(inner) = &err else {
        panic!("{err:?}");
    };
    assert!(
        matches!(**inner, VtpmAttestError::UserDataMismatch),
        "{inner:?}"
    );
    assert!(inner.to_string().contains("0x01400002"), "{inner}");
}

#[test]
fn a_missing_vtpm_is_an_error_naming_the_command_and_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("no-vtpm.sock");
    let attester = AzureVtpmAttester::new(
        cdvm_attestation::azure::tpm_client::SocketTransport::unix(&socket),
        cdvm_attestation::azure::imds::HttpImds::new("127.0.0.1:9".parse().unwrap()),
    );
    let err = attester.evidence(&rd(8)).unwrap_err();
    let AttestError::AzureVtpm(inner) = &err else {
        panic!("{err:?}");
    };
    let msg = inner.to_string();
    assert!(
        msg.contains("NV_ReadPublic 0x01400002") && msg.contains("no-vtpm.sock"),
        "{msg}"
    );
}

/// On a real Azure SEV-SNP confidential VM (DCasv5/ECasv5), as root:
/// `cargo test -p cdvm-attestation --features azure-attester,sim --test azure_paravisor -- --ignored real_azure_cvm`
/// (prints nothing on success; the evidence must verify under the shipped roots with this VM's
/// measurement allowed)
#[test]
#[ignore = "needs an Azure SEV-SNP confidential VM: run as root with `cargo test -p cdvm-attestation --features azure-attester,sim --test azure_paravisor -- --ignored real_azure_cvm`"]
fn real_azure_cvm_vtpm_evidence() {
    use cdvm_attestation::azure::imds::HttpImds;
    use cdvm_attestation::azure::tpm_client::DeviceTransport;
    use cdvm_attestation::policy::TrustedRoot;
    let attester = AzureVtpmAttester::new(
        DeviceTransport::open(DeviceTransport::DEFAULT_PATH).unwrap(),
        HttpImds::azure(),
    );
    let data = rd(9);
    let Evidence::AzureSevSnpVtpm(ev) = attester.evidence(&data).unwrap() else {
        panic!("not Azure vTPM evidence");
    };
    let claimed = Evidence::AzureSevSnpVtpm(ev.clone())
        .claimed_measurement()
        .unwrap();
    let mut policy = Policy::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/default-snp.yaml"),
    )
    .unwrap();
    policy.measurements = vec![cdvm_attestation::policy::AllowedMeasurement {
        measurement: claimed.to_string(),
        source: "this VM".into(),
    }];
    policy.roots = vec![TrustedRoot::AmdMilan, TrustedRoot::AmdGenoa];
    policy.azure_vtpm = Some(AzureVtpmPolicy::default());
    verify(&ev, &data, &policy).unwrap();
}

/// A TDX CVM end to end: the paravisor puts a TD report in the HCL report, and IMDS
/// `/acc/tdquote` quotes it with the simulated TDX platform (development DCAP PKI), so the
/// production attester's evidence verifies through `AnyVerifier` under a development policy.
#[cfg(feature = "tdx")]
mod tdx_cvm {
    use super::*;
    use cdvm_attestation::azure::paravisor_sim::sim_tdx_quoter;
    use cdvm_attestation::azure::{
        verify_tdx_with_nonce, AzureTdxEvidence, HclReportType, TDREPORT_MRTD, TDREPORT_REPORTDATA,
    };
    use cdvm_attestation::sim::tdx::{dev_tdx_policy, SimTdx};
    use cdvm_attestation::tdx::{TdxError, TdxQuote, TdxVerifier};
    use cdvm_attestation::Claims;

    struct TdxEnv {
        _dir: tempfile::TempDir,
        tdx: Arc<SimTdx>,
        collateral: std::path::PathBuf,
        mrtd: Measurement,
        pv: Paravisor,
    }

    fn tdx_env() -> TdxEnv {
        require_swtpm();
        let dir = tempfile::tempdir().unwrap();
        // The SP only signs the (unused) SNP chain that THIM serves; the TD quote is SimTdx's.
        let sp = Arc::new(SimSecureProcessor::load_or_create(&dir.path().join("sp")).unwrap());
        let tdx = Arc::new(SimTdx::load_or_create(&dir.path().join("tdx")).unwrap());
        let collateral = tdx.write_collateral(dir.path()).unwrap();
        let mrtd = sim::measure_file_bytes(b"azure tdx paravisor test image");
        let pv = Paravisor::start(
            sp,
            ParavisorOptions {
                dir: dir.path().join("paravisor"),
                measurement: mrtd,
                report: SimReportOptions::default(),
                tdx_quoter: Some(sim_tdx_quoter(Arc::clone(&tdx))),
            },
        )
        .unwrap();
        TdxEnv {
            _dir: dir,
            tdx,
            collateral,
            mrtd,
            pv,
        }
    }

    impl TdxEnv {
        fn policy(&self, pcrs: BTreeMap<u32, Vec<String>>) -> Policy {
            let mut p = dev_tdx_policy(&self.tdx, &self.mrtd, "test", &self.collateral);
            p.azure_vtpm = Some(AzureVtpmPolicy { pcrs });
            p
        }
        fn evidence(&self, data: &ReportData) -> AzureTdxEvidence {
            let attester = self.pv.attester();
            assert_eq!(attester.tee(), cdvm_attestation::TeeKind::Tdx);
            match attester.evidence(data).unwrap() {
                Evidence::AzureTdxVtpm(e) => e,
                other => panic!("not Azure TDX vTPM evidence: {other:?}"),
            }
        }
    }

    fn verify(
        ev: &AzureTdxEvidence,
        data: &ReportData,
        policy: &Policy,
    ) -> Result<Claims, VerifyError> {
        AnyVerifier.verify(
            &Evidence::AzureTdxVtpm(ev.clone()),
            data,
            policy,
            SystemTime::now(),
        )
    }

    fn pcr_policy(ev: &AzureTdxEvidence, index: u32) -> BTreeMap<u32, Vec<String>> {
        BTreeMap::from([(
            index,
            vec![hex::encode(ev.tpm_quote.pcrs[index as usize].0)],
        )])
    }

    #[test]
    fn evidence_verifies_end_to_end_under_the_development_policy() {
        let env = tdx_env();
        let ev = env.evidence(&rd(10));
        let hcl = HclReport::parse(&ev.hcl_report).unwrap();
        assert_eq!(hcl.report_type, HclReportType::Tdx);
        assert_eq!(
            RuntimeClaims::parse(hcl.runtime_data).unwrap().user_data,
            rd(10)
        );
        // The quote is of the HCL's TD report, as Azure's quoting service makes it.
        let quote = TdxQuote::parse(&ev.td_quote).unwrap();
        assert_eq!(
            quote.report.report_data.0[..],
            hcl.hw_report[TDREPORT_REPORTDATA]
        );
        assert_eq!(quote.report.mrtd.0[..], hcl.hw_report[TDREPORT_MRTD]);
        assert_eq!(quote.report.mrtd, env.mrtd);

        let claims = verify(&ev, &rd(10), &env.policy(pcr_policy(&ev, 0))).unwrap();
        assert!(claims.simulated, "simulated DCAP root must mark the claims");
        let names: Vec<&str> = claims.checks.iter().map(|c| c.name.as_str()).collect();
        for check in [
            "runtime-data",
            "td-report",
            "tpm-quote",
            "tpm-nonce",
            "pcr-digest",
            "pcr-policy",
        ] {
            assert!(names.contains(&check), "{check} missing from {names:?}");
        }
        assert_eq!(
            Evidence::AzureTdxVtpm(ev.clone()).claimed_measurement(),
            Some(env.mrtd)
        );
        // Evidence for one binding is refused for another.
        assert!(matches!(
            verify(&ev, &rd(11), &env.policy(BTreeMap::new())),
            Err(VerifyError::ReportDataMismatch { .. })
        ));
        // The evidence survives its wire form.
        let json = serde_json::to_string(&Evidence::AzureTdxVtpm(ev.clone())).unwrap();
        let back: Evidence = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Evidence::AzureTdxVtpm(ev));
    }

    #[test]
    fn tampered_twins_fail_each_at_its_own_check() {
        let env = tdx_env();
        let data = rd(12);
        let ev = env.evidence(&data);
        let policy = env.policy(pcr_policy(&ev, 0));
        verify(&ev, &data, &policy).unwrap();

        // Runtime JSON changed (one byte of user-data's hex): not what the TD quote binds.
        let mut t = ev.clone();
        let hcl = HclReport::parse(&t.hcl_report).unwrap();
        let json_start = hcl.runtime_data.as_ptr() as usize - t.hcl_report.as_ptr() as usize;
        let at = json_start
            + hcl
                .runtime_data
                .windows(11)
                .position(|w| w == b"\"user-data\"")
                .unwrap()
            + 14;
        t.hcl_report[at] = if t.hcl_report[at] == b'0' { b'1' } else { b'0' };
        let err = verify(&t, &data, &policy).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Azure(AzureError::RuntimeDataNotBound { .. })
            ),
            "{err:?}"
        );

        // TPM quote signature.
        let mut t = ev.clone();
        t.tpm_quote.signature[10] ^= 1;
        assert_eq!(
            verify(&t, &data, &policy).unwrap_err(),
            VerifyError::Azure(AzureError::QuoteSignatureInvalid)
        );

        // A PCR value.
        let mut t = ev.clone();
        t.tpm_quote.pcrs[0].0[0] ^= 1;
        assert!(matches!(
            verify(&t, &data, &policy),
            Err(VerifyError::Azure(AzureError::PcrDigestMismatch { .. }))
        ));

        // Nonce: the TPM quote is for this report data, not another nonce.
        let other = quote_nonce(&rd(13));
        assert!(matches!(
            verify_tdx_with_nonce(
                &ev,
                &data,
                &other,
                &policy,
                SystemTime::now(),
                &TdxVerifier::default()
            ),
            Err(VerifyError::Azure(AzureError::NonceMismatch { .. }))
        ));

        // A byte of the TD quote's body (MRSEAM, header 48 + TEE_TCB_SVN 16): the attestation
        // key's signature no longer covers it.
        let mut t = ev.clone();
        t.td_quote[48 + 16] ^= 1;
        assert_eq!(
            verify(&t, &data, &policy).unwrap_err(),
            VerifyError::Tdx(TdxError::QuoteSignatureInvalid)
        );

        // The HCL's TD report (no signature of its own) with another MRTD: not the quoted one.
        let mut t = ev.clone();
        t.hcl_report[HCL_HEADER_LEN + TDREPORT_MRTD.start] ^= 1;
        assert!(matches!(
            verify(&t, &data, &policy),
            Err(VerifyError::Azure(AzureError::TdReportMismatch {
                field: "MRTD"
            }))
        ));
    }

    #[test]
    fn every_shipped_policy_refuses_it() {
        let env = tdx_env();
        let data = rd(14);
        let ev = env.evidence(&data);
        verify(&ev, &data, &env.policy(BTreeMap::new())).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        let mut shipped = 0;
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            shipped += 1;
            let mut policy = Policy::load(&path).unwrap();
            let as_shipped = verify(&ev, &data, &policy);
            assert!(
                as_shipped.is_err(),
                "{} accepted simulated evidence",
                path.display()
            );
            // Even with Azure's paravisor accepted, this MRTD allowed and the simulated
            // collateral at hand, the simulated DCAP root is refused.
            policy.azure_vtpm = Some(AzureVtpmPolicy::default());
            if let Some(tdx) = policy.tdx.as_mut() {
                tdx.collateral = Some(env.collateral.clone());
                tdx.mrtd = env.policy(BTreeMap::new()).tdx.unwrap().mrtd;
                let err = verify(&ev, &data, &policy).unwrap_err();
                assert!(
                    matches!(err, VerifyError::SimulatedNotAllowed { .. }),
                    "{}: {err:?}",
                    path.display()
                );
            } else {
                let err = verify(&ev, &data, &policy).unwrap_err();
                assert!(
                    matches!(err, VerifyError::TeeMismatch { .. }),
                    "{}: {err:?}",
                    path.display()
                );
            }
        }
        assert_eq!(shipped, 9, "a new shipped policy: check it here");
    }
}

/// On a real Azure TDX confidential VM (DCesv5/ECesv5), as root:
/// `cargo test -p cdvm-attestation --all-features --test azure_paravisor -- --ignored real_azure_tdx_cvm`
#[cfg(feature = "tdx")]
#[test]
#[ignore = "needs an Azure TDX confidential VM: run as root with `cargo test -p cdvm-attestation --all-features --test azure_paravisor -- --ignored real_azure_tdx_cvm`"]
fn real_azure_tdx_cvm_vtpm_evidence() {
    use cdvm_attestation::azure::imds::HttpImds;
    use cdvm_attestation::azure::tpm_client::DeviceTransport;
    use cdvm_attestation::azure::HclReportType;
    use sha2::{Digest, Sha256};
    let attester = AzureVtpmAttester::tdx(
        DeviceTransport::open(DeviceTransport::DEFAULT_PATH).unwrap(),
        HttpImds::azure(),
    );
    let data = rd(11);
    let Evidence::AzureTdxVtpm(ev) = attester.evidence(&data).unwrap() else {
        panic!("not Azure TDX evidence");
    };
    let hcl = HclReport::parse(&ev.hcl_report).unwrap();
    assert_eq!(hcl.report_type, HclReportType::Tdx);
    assert_eq!(
        RuntimeClaims::parse(hcl.runtime_data).unwrap().user_data,
        data
    );
    let quote = cdvm_attestation::tdx::TdxQuote::parse(&ev.td_quote).unwrap();
    assert_eq!(
        quote.report.report_data.0[..32],
        Sha256::digest(hcl.runtime_data)[..]
    );
    println!(
        "{}",
        serde_json::to_string(&Evidence::AzureTdxVtpm(ev)).unwrap()
    );
}
