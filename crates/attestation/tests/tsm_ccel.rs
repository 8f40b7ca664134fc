//! The guest side of the CC event log: `read_ccel` over a folder laid out like
//! `/sys/firmware/acpi/tables` (the real GCP COS table and log area).
#![cfg(all(feature = "tsm", feature = "tdx"))]
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cdvm_attestation::tdx::ccel::EventLog;
use cdvm_attestation::tsm::read_ccel;
use cdvm_attestation::AttestError;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tdx/gcp_ccel")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tables(dir: &Path, table: &[u8], log: &[u8]) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("CCEL"), table).unwrap();
    std::fs::write(dir.join("data/CCEL"), log).unwrap();
}

#[test]
fn the_log_is_read_and_cut_after_its_last_event() {
    let dir = tempfile::tempdir().unwrap();
    let area = fixture("ccel_data.dat");
    tables(dir.path(), &fixture("ccel_table.dat"), &area);
    let ev = read_ccel(dir.path()).unwrap().expect("a log");
    assert_eq!(ev.table, fixture("ccel_table.dat"));
    assert!(ev.log.len() < area.len() / 10, "{} bytes", ev.log.len());
    assert_eq!(ev.log, area[..ev.log.len()]);
    assert_eq!(EventLog::parse(&ev.log).unwrap().events.len(), 43);
}

#[test]
fn no_table_is_no_log() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read_ccel(dir.path()).unwrap().is_none());
}

#[test]
fn a_broken_table_or_log_is_an_error_not_a_missing_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut table = fixture("ccel_table.dat");
    table[0] = b'X';
    tables(dir.path(), &table, &fixture("ccel_data.dat"));
    assert!(matches!(
        read_ccel(dir.path()),
        Err(AttestError::BadResponse(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut log = fixture("ccel_data.dat");
    log[40] ^= 0xff;
    tables(dir.path(), &fixture("ccel_table.dat"), &log);
    assert!(read_ccel(dir.path()).is_err());
    // A table without its log area.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("CCEL"), fixture("ccel_table.dat")).unwrap();
    assert!(matches!(
        read_ccel(dir.path()),
        Err(AttestError::Unavailable { .. })
    ));
}
