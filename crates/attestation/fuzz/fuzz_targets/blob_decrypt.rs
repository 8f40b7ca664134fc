//! The guest decrypts blob bytes a Blossom server chose: any bytes, cut anywhere, must end in a
//! plaintext or an error, never a panic, and never more plaintext than the format allows.
#![no_main]

use cdvm_blob::{BlobKey, Decryptor, NoncePrefix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let key = BlobKey::from_bytes([7; 32]);
    let nonce = NoncePrefix::from_bytes([9; 19]);
    let mut d = Decryptor::new(&key, &nonce);
    let mut out = Vec::new();
    let step = usize::from(split).max(1);
    let mut failed = false;
    for piece in rest.chunks(step) {
        if d.update(piece, &mut out).is_err() {
            failed = true;
            break;
        }
    }
    if !failed {
        let _ = d.finish(&mut out);
    }
    let released: usize = out.iter().map(|c| c.len()).sum();
    assert!(released <= rest.len());
    let _ = cdvm_blob::plaintext_len(rest.len() as u64);
});
