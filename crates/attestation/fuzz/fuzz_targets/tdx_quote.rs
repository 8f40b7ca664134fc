//! The TDX quote parser (header, TD report body v4/v5, signature data, PCK chain): any bytes
//! give a quote or an error, never a panic.
#![no_main]

use cdvm_attestation::tdx::TdxQuote;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = TdxQuote::parse(data);
    let _ = cdvm_attestation::tdx::claimed_mrtd(data);
});
