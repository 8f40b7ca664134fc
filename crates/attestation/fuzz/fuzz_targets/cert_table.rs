//! The extended report's certificate table parser: never panics, and whatever it accepts
//! survives a serialize/parse round trip.
#![no_main]

use cdvm_attestation::snp::cert_table;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = cert_table::parse(data) {
        let again = cert_table::parse(&cert_table::serialize(&entries)).expect("own output parses");
        assert_eq!(again, entries);
    }
});
