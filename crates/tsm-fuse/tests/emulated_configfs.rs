//! The production configfs-tsm client (`cdvm_attestation::tsm`) against the FUSE emulation: the
//! report flow, the kernel's error codes and generation semantics, and the evidence it yields.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::SystemTime;

use cdvm_attestation::sim::{self, SimSecureProcessor};
use cdvm_attestation::snp::{AttestationReport, SnpVerifier};
use cdvm_attestation::tsm::{TsmAttester, TsmError, TsmProvider, TsmReportClient, TsmRequest};
use cdvm_attestation::{
    AttestError, Attester, Evidence, Measurement, ReportData, Verifier, VerifyError,
};
use cdvm_tsm_fuse::{AuxBlob, Faults, MountedTsm, SimSnpBackend};

struct Setup {
    _dir: tempfile::TempDir,
    sp: Arc<SimSecureProcessor>,
    measurement: Measurement,
    tsm: MountedTsm,
}

fn setup(aux: AuxBlob) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sp = Arc::new(SimSecureProcessor::load_or_create(&dir.path().join("sp")).unwrap());
    let measurement = Measurement([0x5a; 48]);
    let backend = SimSnpBackend::new(Arc::clone(&sp), measurement, aux);
    let tsm = cdvm_tsm_fuse::mount(dir.path().join("tsm"), Arc::new(backend)).unwrap();
    Setup {
        _dir: dir,
        sp,
        measurement,
        tsm,
    }
}

fn rd(b: u8) -> ReportData {
    ReportData([b; 64])
}

fn snp(evidence: Evidence) -> cdvm_attestation::SnpEvidence {
    match evidence {
        Evidence::SevSnp(e) => e,
        other => panic!("expected SNP evidence, got {other:?}"),
    }
}

fn tsm_error(e: AttestError) -> TsmError {
    match e {
        AttestError::Tsm(e) => e,
        other => panic!("expected a configfs-tsm error, got {other:?}"),
    }
}

#[test]
#[cfg_attr(not(fuse_available), ignore = "needs FUSE: /dev/fuse and root")]
fn snp_evidence_with_certificate_table_verifies_under_the_dev_policy() {
    let s = setup(AuxBlob::CertTable);
    let evidence = TsmAttester::sev_snp(s.tsm.report_root(), 0)
        .evidence(&rd(7))
        .unwrap();
    let policy = sim::dev_policy(&s.sp, &s.measurement, "test");
    let claims = SnpVerifier
        .verify(&evidence, &rd(7), &policy, SystemTime::now())
        .unwrap();
    assert!(claims.simulated);
    assert!(snp(evidence).chain.is_some());
    // The entry was removed: the report directory is empty again.
    assert_eq!(std::fs::read_dir(s.tsm.report_root()).unwrap().count(), 0);
}

#[test]
#[cfg_attr(not(fuse_available), ignore = "needs FUSE: /dev/fuse and root")]
fn report_bound_to_other_data_is_refused_by_the_verifier() {
    let s = setup(AuxBlob::CertTable);
    let evidence = TsmAttester::sev_snp(s.tsm.report_root(), 0)
        .evidence(&rd(7))
        .unwrap();
    let policy = sim::dev_policy(&s.sp, &s.measurement, "test");
    let err = SnpVerifier
        .verify(&evidence, &rd(8), &policy, SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::ReportDataMismatch { .. }),
        "{err}"
    );
}

#[test]
#[cfg_attr(not(fuse_available), ignore = "needs FUSE: /dev/fuse and root")]
fn empty_auxblob_gives_chainless_evidence_that_verifies_once_the_chain_is_resolved() {
    let s = setup(AuxBlob::Empty);
    let evidence = snp(TsmAttester::sev_snp(s.tsm.report_root(), 0)
        .evidence(&rd(3))
        .unwrap());
    assert!(evidence.chain.is_none());
    let policy = sim::dev_policy(&s.sp, &s.measurement, "test");
    let err = SnpVerifier
        .verify(
            &Evidence::SevSnp(evidence.clone()),
            &rd(3),
            &policy,
            SystemTime::now(),
        )
        .unwrap_err();
    assert_eq!(err, VerifyError::MissingChain);
    // What the client does: resolve the chain (here: the simulator's own) and verify.
    let Evidence::SevSnp(reference) = s.sp.report(&rd(0), &s.measurement, &Default::default())
    else {
        unreachable!()
    };
    let completed = evidence.with_chain(reference.chain.unwrap());
    SnpVerifier
        .verify(
            &Evidence::SevSnp(completed),
            &rd(3),
            &policy,
            SystemTime::now(),
        )
        .unwrap();
}

#[test]
#[cfg_attr(not(fuse_available), ignore = "needs FUSE: /dev/fuse and root")]
fn privlevel_becomes_the_reports_vmpl() {
    let s = setup(AuxBlob::CertTable);
    let evidence = snp(TsmAttester::sev_snp(s.tsm.report_root(), 2)
        .evidence(&rd(1))
        .unwrap());
    assert_eq!(AttestationReport::parse(&evidence.report).unwrap().vmpl, 2);
}

#[test]
#[cfg_attr(not(fuse_available), ignore = "needs FUSE: /dev/fuse and root")]
fn another_writer_between_write_and_read_is_an_error_not_a_report() {
    let s = setup(AuxBlob::CertTable);
    s.tsm.set_faults(Faults {
        interfere_after_outblob: true,
        ..Faults::default()
    });
    let err = tsm_error(
        TsmAttester::sev_snp(s.tsm.report_root(), 0)
            .evidence(&rd(1))
            .unwrap_err(),
    );
    // Our two writes (privlevel, inblob) make 2; the other writer made 3.
    assert!(
        matches!(
            err,
            TsmError::GenerationChanged {
                expected: 2,
                found: 3,
                step: "reading outblob"
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "configfs-tsm: generation changed from 2 to 3 while reading outblob: another writer used \
         this report entry, the report is discarded"
    );
}

#[test]
#[cfg_attr(not(fuse_available), ignore = "needs FUSE: /dev/fuse and root")]
fn no_registered_provider_is_enxio() {
    let s = setup(AuxBlob::CertTable);
    s.tsm.set_faults(Faults {
        no_provider: true,
        ..Faults::default()
    });
    let client = TsmReportClient::new(s.tsm.report_root());
    assert_eq!(client.provider().unwrap(), None);
    let err = tsm_error(
        TsmAttester::sev_snp(s.tsm.report_root(), 0)
            .evidence(&rd(1))
            .unwrap_err(),
    );
    assert!(
        matches!(
            err,
            TsmError::NoProvider {
                attribute: "provider"
            }
        ),
        "{err}"
    );
}

#[test]
#[cfg_attr(not(fuse_available), ignore = "needs FUSE: /dev/fuse and root")]
fn a_busy_firmware_is_retried_a_bounded_number_of_times() {
    let s = setup(AuxBlob::CertTable);
    s.tsm.set_faults(Faults {
        busy_reads: 1,
        ..Faults::default()
    });
    TsmAttester::sev_snp(s.tsm.report_root(), 0)
        .evidence(&rd(1))
        .unwrap();
    s.tsm.set_faults(Faults {
        busy_reads: 100,
        ..Faults::default()
    });
    let err = tsm_error(
        TsmAttester::sev_snp(s.tsm.report_root(), 0)
            .evidence(&rd(1))
            .unwrap_err(),
    );
    assert!(
        matches!(
            err,
            TsmError::Busy {
                tries: 3,
                step: "reading outblob",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
#[cfg_attr(not(fuse_available), ignore = "needs FUSE: /dev/fuse and root")]
fn the_wrong_provider_is_refused() {
    let s = setup(AuxBlob::CertTable);
    let err = tsm_error(
        TsmAttester::tdx(s.tsm.report_root())
            .evidence(&rd(1))
            .unwrap_err(),
    );
    assert!(
        matches!(&err, TsmError::WrongProvider { expected: "tdx_guest", found } if found == "sev_guest"),
        "{err}"
    );
}

#[test]
fn a_missing_report_directory_is_named() {
    let err = TsmReportClient::new("/nonexistent/tsm/report")
        .get_report(
            TsmProvider::SevGuest,
            &TsmRequest {
                inblob: rd(1),
                privlevel: None,
            },
        )
        .unwrap_err();
    assert!(matches!(err, TsmError::Absent { .. }));
    assert!(err.to_string().contains("/nonexistent/tsm/report"));
}

/// The kernel's own semantics, observed through plain file operations.
#[test]
#[cfg_attr(not(fuse_available), ignore = "needs FUSE: /dev/fuse and root")]
fn kernel_semantics_of_an_entry() {
    let s = setup(AuxBlob::CertTable);
    let entry = s.tsm.report_root().join("manual");
    std::fs::create_dir(&entry).unwrap();
    let read = |name: &str| std::fs::read(entry.join(name));
    let generation = || String::from_utf8(read("generation").unwrap()).unwrap();
    assert_eq!(generation(), "0\n");
    assert_eq!(read("provider").unwrap(), b"sev_guest\n");
    // outblob before inblob: EINVAL.
    assert_eq!(read("outblob").unwrap_err().raw_os_error(), Some(22));
    // 65 bytes into inblob: EFBIG, nothing stored.
    assert_eq!(
        std::fs::write(entry.join("inblob"), [0u8; 65])
            .unwrap_err()
            .raw_os_error(),
        Some(27)
    );
    assert_eq!(generation(), "0\n");
    // privlevel above 3: EINVAL.
    assert_eq!(
        std::fs::write(entry.join("privlevel"), "4")
            .unwrap_err()
            .raw_os_error(),
        Some(22)
    );
    std::fs::write(entry.join("inblob"), [9u8; 64]).unwrap();
    assert_eq!(generation(), "1\n");
    let first = read("outblob").unwrap();
    assert_eq!(first.len(), 1184);
    // The same generation gives the same (cached) report; a new write gives a new one.
    assert_eq!(read("outblob").unwrap(), first);
    std::fs::write(entry.join("inblob"), [9u8; 64]).unwrap();
    assert_eq!(generation(), "2\n");
    assert_ne!(
        read("outblob").unwrap(),
        first,
        "a fresh report has a fresh REPORT_ID"
    );
    // Write-only and read-only attributes.
    assert_eq!(read("inblob").unwrap_err().raw_os_error(), Some(13));
    assert_eq!(
        std::fs::write(entry.join("outblob"), b"x")
            .unwrap_err()
            .raw_os_error(),
        Some(13)
    );
    std::fs::remove_dir(&entry).unwrap();
    assert!(!entry.exists());
}

#[test]
#[cfg_attr(not(fuse_available), ignore = "needs FUSE: /dev/fuse and root")]
fn tdx_quote_through_configfs_verifies_under_the_dev_tdx_policy() {
    use cdvm_attestation::sim::tdx::{dev_tdx_policy, SimTdx};
    let dir = tempfile::tempdir().unwrap();
    let tdx = Arc::new(SimTdx::load_or_create(&dir.path().join("tdx")).unwrap());
    let mrtd = Measurement([0x33; 48]);
    let backend = cdvm_tsm_fuse::SimTdxBackend::new(Arc::clone(&tdx), mrtd);
    let tsm = cdvm_tsm_fuse::mount(dir.path().join("tsm"), Arc::new(backend)).unwrap();
    // TDX entries have no privlevel, privlevel_floor or auxblob.
    let entry = tsm.report_root().join("look");
    std::fs::create_dir(&entry).unwrap();
    assert!(!entry.join("privlevel").exists());
    assert!(!entry.join("auxblob").exists());
    std::fs::remove_dir(&entry).unwrap();

    let evidence = TsmAttester::tdx(tsm.report_root())
        .evidence(&rd(5))
        .unwrap();
    assert!(matches!(evidence, Evidence::Tdx(_)));
    let collateral = tdx.write_collateral(dir.path()).unwrap();
    let policy = dev_tdx_policy(&tdx, &mrtd, "test", &collateral);
    let claims = cdvm_attestation::AnyVerifier
        .verify(&evidence, &rd(5), &policy, SystemTime::now())
        .unwrap();
    assert!(claims.simulated);
    // Bound to other data: refused.
    assert!(cdvm_attestation::AnyVerifier
        .verify(&evidence, &rd(6), &policy, SystemTime::now())
        .is_err());
}
