//! Memory bound: a large blob goes up and comes down without ever being held whole by the
//! client. Alone in its own test binary so VmHWM measures only this.
#![cfg(all(feature = "client", feature = "server"))]

mod common;

use std::io::Read;

use cdvm_blossom::server::{BlossomServer, ServerConfig};
use cdvm_blossom::{blob_url, body_from_reader, DownloadSink, Expected};
use common::*;
use nostr::Keys;
use sha2::{Digest as _, Sha256};

const SIZE: u64 = 200 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// Deterministic bytes produced on demand, never materialised.
struct Generated {
    left: u64,
    word: u64,
}

impl Generated {
    fn new() -> Self {
        Generated {
            left: SIZE,
            word: 0x0123_4567_89ab_cdef,
        }
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.word = self
                .word
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            chunk.copy_from_slice(&self.word.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Peak resident memory of this process, in bytes.
fn vm_hwm() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("number");
    kb * 1024
}

/// Hashes and counts; stores nothing.
#[derive(Debug, Default)]
struct HashSink {
    hasher: Sha256,
    len: u64,
}

impl DownloadSink for HashSink {
    fn reset(&mut self) -> std::io::Result<()> {
        *self = HashSink::default();
        Ok(())
    }
    fn write(&mut self, chunk: &[u8]) -> Result<(), cdvm_blossom::BoxError> {
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blob_streams_both_ways_in_bounded_memory() {
    let mut hasher = Sha256::new();
    let mut gen = Generated::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = gen.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let x = hex::encode(hasher.finalize());
    let keys = Keys::generate();
    let client = dev_client();

    // Upload to a server that hashes but keeps nothing: nothing on either side may hold it.
    let discard = BlossomServer::start(ServerConfig {
        max_blob: SIZE,
        require_auth: true,
        public_url: None,
        discard_bodies: true,
    })
    .await
    .expect("start");
    let before = vm_hwm();
    let d = client
        .upload(
            &discard.url(),
            &keys,
            &x,
            SIZE,
            "application/octet-stream",
            body_from_reader(Generated::new()),
            &quiet,
        )
        .await
        .expect("upload");
    assert_eq!(d.size, SIZE);
    let growth = vm_hwm().saturating_sub(before);
    eprintln!("upload: peak grew {} KiB", growth / 1024);
    assert!(
        growth < 64 * MIB,
        "upload grew peak memory by {} MiB",
        growth / MIB
    );
    discard.shutdown().await;

    // Upload to a storing server (which holds the blob, as designed), then download: the
    // download may not add a second copy.
    let store = BlossomServer::start(ServerConfig {
        max_blob: SIZE,
        require_auth: true,
        public_url: None,
        discard_bodies: false,
    })
    .await
    .expect("start");
    client
        .upload(
            &store.url(),
            &keys,
            &x,
            SIZE,
            "application/octet-stream",
            body_from_reader(Generated::new()),
            &quiet,
        )
        .await
        .expect("upload");
    let before = vm_hwm();
    let mut sink = HashSink::default();
    let exp = Expected {
        x: x.clone(),
        size: SIZE,
        max: SIZE,
    };
    client
        .fetch_first(&[blob_url(&store.url(), &x)], &exp, &mut sink, &quiet)
        .await
        .expect("download");
    assert_eq!(sink.len, SIZE);
    assert_eq!(hex::encode(sink.hasher.finalize()), x);
    let growth = vm_hwm().saturating_sub(before);
    eprintln!(
        "download: peak grew {} KiB (peak {} MiB)",
        growth / 1024,
        vm_hwm() / MIB
    );
    assert!(
        growth < 64 * MIB,
        "download grew peak memory by {} MiB",
        growth / MIB
    );
    store.shutdown().await;
}
