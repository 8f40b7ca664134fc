//! The Azure vTPM parsers (HCL report, runtime-claims JSON, TPMS_ATTEST quote, TPMT_SIGNATURE):
//! any bytes give a value or an error, never a panic.
#![no_main]

use cdvm_attestation::azure::{rsassa_sha256_signature, HclReport, QuoteAttest, RuntimeClaims};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(hcl) = HclReport::parse(data) {
        let _ = RuntimeClaims::parse(hcl.runtime_data);
    }
    let _ = RuntimeClaims::parse(data);
    let _ = QuoteAttest::parse(data);
    let _ = rsassa_sha256_signature(data);
});
