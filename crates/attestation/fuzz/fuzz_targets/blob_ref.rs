//! A confidential input or result payload carrying a blob reference, as the guest and client
//! parse it after decryption: any JSON must parse and check without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = serde_json::from_slice::<cdvm_protocol::ConfidentialInput>(data) {
        let _ = input.check();
    }
    if let Ok(blob) = serde_json::from_slice::<cdvm_protocol::BlobRef>(data) {
        if blob.check().is_ok() {
            let _ = cdvm_blob::plaintext_len(blob.size);
            assert!(blob.urls().count() <= 1 + cdvm_protocol::blob::MAX_BLOB_URLS);
        }
    }
});
