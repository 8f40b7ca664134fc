//! GPU evidence files for `cdvm verify --gpu` (NVIDIA's evidence JSON or GpuEvidence JSON): the
//! reader never panics, and whatever it accepts holds at least one device.
#![no_main]

use cdvm_attestation::nvidia::parse_gpu_evidence_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(file) = parse_gpu_evidence_file(text) {
            assert!(!file.gpus.is_empty());
        }
    }
});
