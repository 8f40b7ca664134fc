//! The SEV-SNP report parser: any bytes give a report or an error, never a panic, and every
//! report that parses serializes back to the same bytes; the reserved-field check never panics.
#![no_main]

use cdvm_attestation::snp::AttestationReport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = AttestationReport::parse(data) {
        assert_eq!(&report.to_bytes()[..], data);
        let _ = report.check_reserved();
    }
});
