//! The NVIDIA SPDM GET_MEASUREMENTS request+response parser: never panics.
#![no_main]

use cdvm_attestation::nvidia::spdm::GpuReport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = GpuReport::parse(data);
});
