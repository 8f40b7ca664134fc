//! The attestation certificate chain as NVML returns it (PEM text, leaf first, NUL padding):
//! the reader never panics, and whatever it accepts holds at least one non-empty certificate.
#![no_main]

use cdvm_attestation::nvidia::certs_from_driver_chain;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = certs_from_driver_chain(data) {
        assert!(!certs.is_empty());
        assert!(certs.iter().all(|c| !c.0.is_empty()));
    }
});
