//! The typed 1184-byte report: every fixture parses and round-trips exactly; wrong sizes and
//! arbitrary bytes never panic.
#![allow(clippy::unwrap_used)]

mod common;

use cdvm_attestation::snp::{AttestationReport, SigningKey, TcbLayout, TcbVersion, REPORT_LEN};
use cdvm_attestation::VerifyError;
use common::{fixture, ALL_REPORTS};

#[test]
fn every_fixture_parses_and_round_trips_byte_exact() {
    for rel in ALL_REPORTS {
        let bytes = fixture(rel);
        let report = AttestationReport::parse(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(report.to_bytes().as_slice(), bytes.as_slice(), "{rel}");
        assert_eq!(report.signed_bytes(), bytes[..0x2A0].to_vec(), "{rel}");
    }
}

#[test]
fn wrong_lengths_are_malformed() {
    for len in [0, 1, 1183, 1185, 2 * REPORT_LEN] {
        match AttestationReport::parse(&vec![0u8; len]) {
            Err(VerifyError::Malformed(msg)) => assert!(msg.contains(&len.to_string()), "{msg}"),
            other => panic!("{len} bytes: {other:?}"),
        }
    }
}

#[test]
fn arbitrary_bytes_parse_and_round_trip() {
    // Any 1184 bytes are a report structurally (checks are the verifier's job), including the
    // Turin TCB layout and nonzero reserved bytes.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..64 {
        let mut bytes = [0u8; REPORT_LEN];
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        if round % 2 == 0 {
            bytes[0..4].copy_from_slice(&3u32.to_le_bytes());
            bytes[0x188] = 0x1A;
        }
        let report = AttestationReport::parse(&bytes).unwrap();
        assert_eq!(report.to_bytes(), bytes);
    }
}

#[test]
fn fields_of_trustee_milan_report() {
    // Values from the shared fixture SOURCES.md (independently decoded).
    let r = AttestationReport::parse(&fixture("trustee_milan/test-report.bin")).unwrap();
    assert_eq!(r.version, 2);
    assert_eq!(r.guest_svn, 4);
    assert_eq!(r.policy.bits(), 0x3001f);
    assert!(!r.policy.debug() && !r.policy.migrate_ma() && r.policy.smt());
    assert_eq!((r.policy.abi_major(), r.policy.abi_minor()), (0, 31));
    assert_eq!(r.vmpl, 0);
    assert_eq!(r.sig_algo, 1);
    assert_eq!(r.platform_info, 1);
    assert_eq!(r.signing_key(), SigningKey::Vcek);
    assert_eq!(r.tcb_layout(), TcbLayout::MilanGenoa);
    assert_eq!(r.reported_tcb, TcbVersion::new(3, 0, 8, 115));
    assert_eq!(r.current_tcb, TcbVersion::new(3, 0, 8, 206));
    assert_eq!(r.launch_tcb, TcbVersion::new(3, 0, 8, 115));
    assert_eq!(
        (r.current_major, r.current_minor, r.current_build),
        (1, 52, 4)
    );
    assert_eq!(
        r.measurement.to_string(),
        "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
    );
    assert_eq!(
        r.report_data.to_string(),
        "ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e20000000000000000000000000000000000000000000000000000000000000000"
    );
    assert_eq!(hex::encode(&r.chip_id[..4]), "c38427a3");
    assert_eq!(
        hex::encode(r.id_key_digest),
        "0356215882a825279a85b300b0b742931d113bf7e32dde2e50ffde7ec743ca491ecdd7f336dc28a6e0b2bb57af7a44a3"
    );
}

#[test]
fn fields_of_v3_vlek_and_debug_reports() {
    let vlek = AttestationReport::parse(&fixture("trustee_milan/test-vlek-report.bin")).unwrap();
    assert_eq!(vlek.version, 3);
    assert_eq!(vlek.signing_key(), SigningKey::Vlek);
    assert_eq!(vlek.vmpl, 1);
    assert!(vlek.chip_id_masked());
    assert_eq!(
        (vlek.cpuid_fam_id, vlek.cpuid_mod_id, vlek.cpuid_step),
        (0x19, 0x01, 1)
    );
    assert_eq!(vlek.reported_tcb, TcbVersion::new(4, 0, 24, 217));
    assert_eq!(vlek.current_tcb.microcode, 220);
    assert_eq!(vlek.launch_tcb.microcode, 219);
    assert_eq!(vlek.reported_fmc(), None);

    let dbg = AttestationReport::parse(&fixture("gosevguest_milan/attestation.bin")).unwrap();
    assert_eq!(dbg.policy.bits(), 0xb0000);
    assert!(dbg.policy.debug());
    assert_eq!(dbg.reported_tcb.to_string(), "bl=2 tee=0 snp=5 ucode=68");

    let genoa =
        AttestationReport::parse(&fixture("trustee_e2e/evidence.snp_report.derived.bin")).unwrap();
    assert_eq!(
        (genoa.cpuid_fam_id, genoa.cpuid_mod_id, genoa.cpuid_step),
        (0x19, 0xa0, 2)
    );
    assert_eq!(genoa.reported_tcb, TcbVersion::new(10, 0, 23, 25));
}

#[test]
fn turin_layout_decodes_fmc_and_components() {
    let mut bytes = [0u8; REPORT_LEN];
    bytes[0..4].copy_from_slice(&3u32.to_le_bytes());
    bytes[0x188] = 0x1A;
    // Turin TCB_VERSION: [0]=fmc [1]=bl [2]=tee [3]=snp [7]=ucode.
    bytes[0x180..0x188].copy_from_slice(&[3, 9, 2, 11, 0, 0, 0, 72]);
    let r = AttestationReport::parse(&bytes).unwrap();
    assert_eq!(r.tcb_layout(), TcbLayout::Turin);
    assert_eq!(r.reported_tcb, TcbVersion::new(9, 2, 11, 72));
    assert_eq!(r.reported_fmc(), Some(3));
    assert_eq!(r.to_bytes(), bytes);
}

#[test]
fn edited_fields_serialize_where_the_spec_puts_them() {
    let mut r =
        AttestationReport::parse(&fixture("virtee_milan/report_milan.derived.bin")).unwrap();
    r.vmpl = 2;
    r.reported_tcb.microcode = 0xAB;
    r.chip_id[63] = 0xEE;
    r.signature_s[0] = 0x11;
    let b = r.to_bytes();
    assert_eq!(b[0x30], 2);
    assert_eq!(b[0x187], 0xAB);
    assert_eq!(b[0x1DF], 0xEE);
    assert_eq!(b[0x2E8], 0x11);
}
