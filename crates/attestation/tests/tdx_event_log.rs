//! `tdx.event_log` in a policy, end to end through the TDX verifier: a quote whose RTMRs are the
//! replay of a real GCP TDX CC event log (the COS fixture's log, in a quote from the simulated
//! DCAP platform, because the real quote has no collateral offline), the log carried in the
//! evidence, and the policy's expected boot events. Each positive case has its tamper twins.
#![cfg(all(feature = "sim", feature = "tdx"))]
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::SystemTime;

use cdvm_attestation::sim::measure_file_bytes;
use cdvm_attestation::sim::tdx::{dev_tdx_policy, SimTdx, SimTdxQuoteOptions};
use cdvm_attestation::tdx::ccel::{CcelError, EventLog, EventMatch, EventType, ExpectedEvents};
use cdvm_attestation::tdx::{CcelEvidence, TdxError, TdxEvidence, TdxVerifier};
use cdvm_attestation::{Claims, Evidence, Measurement, Policy, ReportData, Verifier, VerifyError};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tdx/gcp_ccel")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// shim's Authenticode digest (SHA-384), the first UEFI application of the COS boot, RTMR1.
const SHIM: &str = "5a10026c9ad41d1f90dc9cfe88bcabe1842ccfd85495c81b1a1ab926a9ef23b5d2e60eefeba0415bbe5c8c328a899a0a";

struct Setup {
    _dir: tempfile::TempDir,
    sim: SimTdx,
    policy: Policy,
    log: CcelEvidence,
}

fn setup(expected: Option<ExpectedEvents>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimTdx::load_or_create(&dir.path().join("state")).unwrap();
    let collateral = sim.write_collateral(dir.path()).unwrap();
    let mut policy = dev_tdx_policy(&sim, &mrtd(), "test firmware", &collateral);
    policy.tdx.as_mut().unwrap().event_log = expected;
    let mut log = fixture("ccel_data.dat");
    log.truncate(EventLog::parse(&log).unwrap().len);
    Setup {
        _dir: dir,
        sim,
        policy,
        log: CcelEvidence {
            table: fixture("ccel_table.dat"),
            log,
        },
    }
}

fn mrtd() -> Measurement {
    measure_file_bytes(b"the TD firmware")
}

fn shim() -> ExpectedEvents {
    ExpectedEvents {
        events: vec![EventMatch {
            name: Some("shim".into()),
            rtmr: 1,
            event_type: EventType::EfiBootServicesApplication,
            digest: Some(Measurement::from_hex(SHIM).unwrap()),
            measured: None,
        }],
    }
}

/// A quote whose RTMRs are what `log` replays to, carrying `log`.
fn verify(s: &Setup, log: Option<CcelEvidence>, rtmrs_of: &[u8]) -> Result<Claims, VerifyError> {
    let replayed = EventLog::parse(rtmrs_of).unwrap().replay();
    let mut opts = SimTdxQuoteOptions::new(mrtd());
    opts.rtmr = replayed.map(Measurement);
    let rd = ReportData([7; 64]);
    let quote = s.sim.quote_with(&rd, &opts).unwrap();
    let evidence = Evidence::Tdx(TdxEvidence {
        quote,
        event_log: log,
        gpus: Vec::new(),
    });
    TdxVerifier::default().verify(&evidence, &rd, &s.policy, SystemTime::now())
}

fn ccel(e: Result<Claims, VerifyError>) -> CcelError {
    match e {
        Err(VerifyError::Tdx(TdxError::EventLog(c))) => c,
        other => panic!("expected an event-log error, got {other:?}"),
    }
}

#[test]
fn a_log_that_replays_and_holds_the_expected_event_passes() {
    let s = setup(Some(shim()));
    let claims = verify(&s, Some(s.log.clone()), &s.log.log).unwrap();
    let check = claims
        .checks
        .iter()
        .find(|c| c.name == "event-log")
        .expect("an event-log check");
    assert!(check.detail.contains("43 events"), "{}", check.detail);
    assert!(check.detail.contains("shim"), "{}", check.detail);
}

#[test]
fn without_the_log_the_policy_refuses() {
    let s = setup(Some(shim()));
    let err = verify(&s, None, &s.log.log).unwrap_err();
    assert!(
        matches!(err, VerifyError::Tdx(TdxError::EventLogMissing { .. })),
        "{err:?}"
    );
    assert_eq!(err.check(), "tdx");
}

#[test]
fn a_log_edited_after_the_quote_does_not_replay() {
    let s = setup(Some(shim()));
    let mut edited = s.log.clone();
    // One byte inside shim's digest: the replay no longer gives the quote's RTMR1.
    let at = edited
        .log
        .windows(48)
        .position(|w| w == hex::decode(SHIM).unwrap().as_slice())
        .unwrap();
    edited.log[at + 10] ^= 1;
    match ccel(verify(&s, Some(edited), &s.log.log)) {
        CcelError::RtmrMismatch { index, .. } => assert_eq!(index, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_log_that_replays_but_lacks_the_expected_image_is_refused() {
    let mut other = shim();
    let mut digest = Measurement::from_hex(SHIM).unwrap();
    digest.0[0] ^= 0xff;
    other.events[0].digest = Some(digest);
    let s = setup(Some(other));
    match ccel(verify(&s, Some(s.log.clone()), &s.log.log)) {
        CcelError::ExpectedEventMissing { rtmr, expected, .. } => {
            assert_eq!(rtmr, 1);
            assert!(expected.contains("shim"), "{expected}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_malformed_table_is_refused() {
    let s = setup(Some(shim()));
    let mut bad = s.log.clone();
    bad.table[0] = b'X';
    assert!(matches!(
        ccel(verify(&s, Some(bad), &s.log.log)),
        CcelError::TableMalformed(_)
    ));
}

#[test]
fn a_policy_without_event_log_does_not_need_one() {
    let s = setup(None);
    let claims = verify(&s, None, &s.log.log).unwrap();
    assert!(claims.checks.iter().all(|c| c.name != "event-log"));
}

#[test]
fn the_policy_yaml_takes_event_log_strictly() {
    let yaml = |extra: &str| {
        format!(
            "name: gcp-tdx\ntee: tdx\nroots: [intel-sgx-root]\nmeasurements: []\n\
             tdx:\n  collateral: c.json\n  mrtd: []\n  event_log:\n    events:\n      \
             - {{ name: uki, rtmr: 1, type: EV_EFI_BOOT_SERVICES_APPLICATION, digest: {SHIM}{extra} }}\n"
        )
    };
    let p = Policy::from_yaml(&yaml("")).unwrap();
    assert_eq!(p.tdx.unwrap().event_log.unwrap().events.len(), 1);
    // An unknown key and a digest with the measured text too are refused.
    assert!(Policy::from_yaml(&yaml(", colour: red")).is_err());
    assert!(Policy::from_yaml(&yaml(", measured: x")).is_err());
}
