//! A folder input's archive, after decryption, is the user's bytes: the streaming unpacker must
//! refuse what it does not accept and respect its limits, never panic or extract anything.
#![no_main]

use std::io::Read;

use cdvm_blob::tarball::{for_each_file, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_files: 16,
        max_total_bytes: 1 << 16,
    };
    let mut total = 0u64;
    let _ = for_each_file(data, &limits, |path, file| {
        assert!(!path.starts_with('/') && !path.split('/').any(|c| c == ".."));
        let mut sink = Vec::new();
        file.read_to_end(&mut sink).map(|n| total += n as u64)
    });
    assert!(total <= limits.max_total_bytes);
});
