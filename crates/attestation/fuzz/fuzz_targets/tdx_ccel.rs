//! The TDX CCEL parsers (ACPI table, crypto-agile event log) and the replay: any bytes give a
//! log or an error, never a panic, and a parsed log always replays.
#![no_main]

use cdvm_attestation::tdx::ccel::{CcelTable, EventLog};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = CcelTable::parse(data);
    if let Ok(log) = EventLog::parse(data) {
        let _ = log.replay();
    }
});
