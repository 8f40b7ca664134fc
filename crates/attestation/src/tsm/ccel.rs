//! The guest side of the CC event log: what a TDX guest's firmware logged, read from the ACPI
//! tables the kernel exposes, for the verifier to replay against the quote's RTMRs.

use std::path::{Path, PathBuf};

use crate::tdx::ccel::{CcelTable, EventLog};
use crate::tdx::CcelEvidence;
use crate::AttestError;

/// Where Linux exposes ACPI tables (`CCEL`, and the log area under `data/CCEL`).
pub const DEFAULT_ACPI_TABLES: &str = "/sys/firmware/acpi/tables";

/// Reads the CCEL table and its log from `tables` (normally [`DEFAULT_ACPI_TABLES`]). `None`
/// when the firmware published no CCEL table (direct-boot QEMU guests); an error when it did and
/// the table or log is unreadable or malformed (the platform is then not what it claims). The
/// log is cut after its last event: the rest of the area is padding, up to hundreds of KiB.
pub fn read_ccel(tables: &Path) -> Result<Option<CcelEvidence>, AttestError> {
    let table_path = tables.join("CCEL");
    let table = match std::fs::read(&table_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unavailable(table_path, e)),
    };
    let parsed =
        CcelTable::parse(&table).map_err(|e| bad(&table_path, format!("not a CCEL table: {e}")))?;
    let log_path = tables.join("data").join("CCEL");
    let mut log = std::fs::read(&log_path).map_err(|e| unavailable(log_path.clone(), e))?;
    parsed
        .check_log_len(&log)
        .map_err(|e| bad(&log_path, e.to_string()))?;
    let events = EventLog::parse(&log).map_err(|e| bad(&log_path, e.to_string()))?;
    log.truncate(events.len);
    Ok(Some(CcelEvidence { table, log }))
}

fn unavailable(path: PathBuf, source: std::io::Error) -> AttestError {
    AttestError::Unavailable {
        path: path.display().to_string(),
        source,
    }
}

fn bad(path: &Path, why: String) -> AttestError {
    AttestError::BadResponse(format!("{}: {why}", path.display()))
}
