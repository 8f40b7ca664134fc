//! The TDX CC event log (CCEL): parse the ACPI CCEL table and the crypto-agile event log the
//! firmware left in its log area, replay the log into RTMR0..3, check the replay reproduces the
//! quote's RTMRs, and match expected boot events (docs/attestation.md, "TDX: the CCEL event
//! log").
//!
//! Nothing here is signed: the log is trustworthy only because its replay equals the RTMRs of a
//! verified quote, and then only its digests (and the data of the types whose digest is the
//! hash of their data, [`EventType::digest_covers_data`]).
//!
//! References: Intel GHCI 1.0 §4.3.3 (CC event log); ACPI 6.5 (the CCEL table); UEFI 2.10
//! (`EFI_CC_MEASUREMENT_PROTOCOL`, MR index 0 = MRTD, 1..=4 = RTMR0..3); TCG PC Client Platform
//! Firmware Profile (event log formats, event types).

mod error;
mod event_type;
mod expected;
mod log;
mod spec_id;
mod table;

pub use error::CcelError;
pub use event_type::EventType;
pub use expected::{EventMatch, ExpectedEvents};
pub use log::{Event, EventLog, MrIndex, MAX_EVENTS};
pub use spec_id::{AlgorithmSize, SpecIdEvent, TPM_ALG_SHA384};
pub use table::{CcelTable, CCEL_TABLE_LEN, CC_TYPE_TDX};

use crate::Measurement;

/// Checks that replaying `log` gives the quote's RTMR0..3, naming the first register that
/// differs. `quote_rtmrs` must come from a verified quote (`TdReport::rtmr`).
pub fn verify_replay(log: &EventLog, quote_rtmrs: &[Measurement; 4]) -> Result<(), CcelError> {
    let replayed = log.replay();
    for (index, (ours, theirs)) in replayed.iter().zip(quote_rtmrs).enumerate() {
        if *ours != theirs.0 {
            return Err(CcelError::RtmrMismatch {
                index,
                replayed: hex::encode(ours),
                quote: hex::encode(theirs.0),
            });
        }
    }
    Ok(())
}
