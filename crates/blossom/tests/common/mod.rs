//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use cdvm_blossom::{
    body_from_reader, BlossomClient, BodyStream, BoxError, DownloadSink, Progress, TransportPolicy,
};
use sha2::{Digest as _, Sha256};

pub fn dev_client() -> BlossomClient {
    BlossomClient::new(TransportPolicy {
        allow_insecure_loopback: true,
        ..TransportPolicy::default()
    })
    .expect("client")
}

/// Deterministic pseudo-random bytes (stand-in for ciphertext).
pub fn blob(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn body(bytes: &[u8]) -> BodyStream {
    body_from_reader(Cursor::new(bytes.to_vec()))
}

pub fn quiet(_: Progress) {}

/// A sink in memory that remembers its resets.
#[derive(Debug, Default)]
pub struct VecSink {
    pub data: Vec<u8>,
    pub resets: usize,
    /// Fail the write that would take the sink past this many bytes, once.
    pub fail_after: Option<usize>,
}

impl DownloadSink for VecSink {
    fn reset(&mut self) -> std::io::Result<()> {
        self.data.clear();
        self.resets += 1;
        Ok(())
    }
    fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError> {
        if let Some(limit) = self.fail_after {
            if self.data.len() + chunk.len() > limit {
                self.fail_after = None;
                return Err("disk full (test)".into());
            }
        }
        self.data.extend_from_slice(chunk);
        Ok(())
    }
}

/// Records every progress report.
pub fn recorder() -> (Arc<Mutex<Vec<Progress>>>, impl Fn(Progress) + Sync) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    (seen, move |p| s.lock().expect("lock").push(p))
}
