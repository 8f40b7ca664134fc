//! Fixed keys and fake evidence shared by the integration tests.
#![allow(dead_code)]

use cdvm_attestation::{Evidence, SnpCertChain, SnpEvidence};
use cdvm_protocol::nostr::{Event, EventBuilder, Keys, Timestamp};

/// Fixed keys, so failures are reproducible.
pub fn user() -> Keys {
    Keys::parse("7f7ff03d123792d6ac594bfa67bf6d0c0ab55b6b1fdb6249303fe861f1ccba9a").expect("user")
}
pub fn dvm() -> Keys {
    Keys::parse("3ee3e5d2b5fdd52e9d1ac3e7c0d3dd7be4a27ae8bd4a4fc0b4d6ff3da5bd1e13").expect("dvm")
}
pub fn guest() -> Keys {
    Keys::parse("1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100").expect("guest")
}
pub fn other() -> Keys {
    Keys::parse("0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526272829").expect("other")
}

/// A fixed timestamp for deterministic ids in examples.
pub const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

pub fn sign(b: EventBuilder, k: &Keys) -> Event {
    b.custom_created_at(Timestamp::from(T0))
        .sign_with_keys(k)
        .expect("sign")
}

/// Structurally an SNP report (1184 bytes) with `report_data` at offset 0x50 and the measurement
/// at 0x90, as in the AMD ABI; the chain is placeholder bytes. Not verifiable: shape only.
pub fn fake_snp_evidence(report_data: &[u8; 64], measurement: &[u8; 48]) -> Evidence {
    let mut report = vec![0u8; 1184];
    report[0] = 2; // VERSION
    report[0x50..0x90].copy_from_slice(report_data);
    report[0x90..0xC0].copy_from_slice(measurement);
    Evidence::SevSnp(SnpEvidence {
        report,
        chain: Some(SnpCertChain {
            vcek: b"fake VCEK DER".to_vec(),
            ask: b"fake ASK DER".to_vec(),
            ark: b"fake ARK DER".to_vec(),
        }),
        gpus: Vec::new(),
        cloud_vtpm: None,
    })
}

pub const MEASUREMENT_HEX: &str = "3f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

pub fn measurement() -> [u8; 48] {
    let mut m = [0u8; 48];
    hex::decode_to_slice(MEASUREMENT_HEX, &mut m).expect("hex");
    m
}
