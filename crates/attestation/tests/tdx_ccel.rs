//! The TDX CCEL event log: the real GCP COS 113 log (`tests/fixtures/tdx/gcp_ccel/`) parses,
//! replays to its quote's RTMRs and holds the boot events a policy names; tampered logs and
//! quotes are refused naming the register; hostile inputs give clean errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use cdvm_attestation::tdx::ccel::{
    verify_replay, CcelError, CcelTable, EventLog, EventMatch, EventType, ExpectedEvents, MrIndex,
    MAX_EVENTS, TPM_ALG_SHA384,
};
use cdvm_attestation::tdx::TdxQuote;
use cdvm_attestation::Measurement;
use sha2::{Digest, Sha384};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tdx/gcp_ccel")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn log_bytes() -> Vec<u8> {
    fixture("ccel_data.dat")
}

fn quote_rtmrs() -> [Measurement; 4] {
    TdxQuote::parse(&fixture("cos-113-tdx-quote.dat"))
        .unwrap()
        .report
        .rtmr
}

fn m(hex: &str) -> Measurement {
    Measurement::from_hex(hex).unwrap()
}

/// The RTMRs go-tdx-guest's shared SOURCES.md records for the COS quote.
const QUOTE_RTMRS: [&str; 4] = [
    "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6",
    "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1",
    "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
];
/// Event 18: shim (`\EFI\BOOT\BOOTX64.EFI`), the first UEFI application, RTMR1.
const SHIM: &str = "5a10026c9ad41d1f90dc9cfe88bcabe1842ccfd85495c81b1a1ab926a9ef23b5d2e60eefeba0415bbe5c8c328a899a0a";
/// Event 24: GRUB (`\EFI\BOOT\grub-lakitu.efi`), loaded by shim, RTMR1.
const GRUB: &str = "b1fb7f4c0689f5a920b800b2607075f4906f8c8282d44e56fc991ec01f1adac176d2040a26f1453df112d7c4f4293fc9";
/// Event 40: GRUB's measurement of the kernel file `/syslinux/vmlinuz.A`, RTMR2.
const KERNEL: &str = "b1012372f421ad28c9f542e5a1b8c4d312a0d1c8637ffba5e52b632d4b632e504da1b73964f6e8ba047bcd4f1d5a1dfe";
/// Offsets of events in `ccel_data.dat`.
const EVENT_18_SHIM: usize = 0x2bf8;
const EVENT_41_CMDLINE: usize = 0x42c3;
const EVENT_42_EXIT_BOOT_SERVICES: usize = 0x45ec;
/// pcrIndex + eventType + digest count + algorithm id: where the SHA-384 digest starts.
const DIGEST_AT: usize = 14;
/// … + digest + eventSize: where the data starts.
const DATA_AT: usize = DIGEST_AT + 48 + 4;

fn kernel_cmdline() -> String {
    let log = EventLog::parse(&log_bytes()).unwrap();
    let data = &log.events[40].data;
    let text = std::str::from_utf8(data).unwrap();
    text.strip_prefix("kernel_cmdline: ")
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

#[test]
fn table_parses_and_sizes_the_log_area() {
    let table = CcelTable::parse(&fixture("ccel_table.dat")).unwrap();
    assert_eq!(table.cc_type, 2);
    assert_eq!(table.cc_subtype, 0);
    assert_eq!(&table.oem_id, b"INTEL ");
    assert_eq!(table.log_area_min_len, 0x40000);
    assert_eq!(table.log_area_start, 0xbedb_f000);
    table.check_log_len(&log_bytes()).unwrap();
    let mut longer = log_bytes();
    longer.push(0xFF);
    assert_eq!(
        table.check_log_len(&longer),
        Err(CcelError::LogLargerThanArea {
            len: 0x40001,
            laml: 0x40000
        })
    );
}

#[test]
fn malformed_tables_are_refused() {
    let good = fixture("ccel_table.dat");
    assert!(matches!(
        CcelTable::parse(&good[..55]),
        Err(CcelError::TableMalformed(_))
    ));
    let mut sig = good.clone();
    sig[0] = b'X';
    sig[9] = sig[9].wrapping_sub(b'X' - b'C'); // keep the checksum right
    assert!(
        matches!(CcelTable::parse(&sig), Err(CcelError::TableMalformed(e)) if e.contains("signature"))
    );
    let mut longer = good.clone();
    longer.push(0);
    assert!(
        matches!(CcelTable::parse(&longer), Err(CcelError::TableMalformed(e)) if e.contains("length field"))
    );
    let mut sum = good.clone();
    sum[40] ^= 1;
    assert!(
        matches!(CcelTable::parse(&sum), Err(CcelError::TableMalformed(e)) if e.contains("checksum"))
    );
    let mut sev = good.clone();
    sev[36] = 1;
    sev[9] = sev[9].wrapping_add(1);
    assert_eq!(
        CcelTable::parse(&sev),
        Err(CcelError::NotTdx { cc_type: 1 })
    );
}

#[test]
fn real_log_parses_with_its_events_per_rtmr() {
    let bytes = log_bytes();
    let log = EventLog::parse(&bytes).unwrap();
    assert_eq!(log.spec_id.algorithms.len(), 1);
    assert_eq!(log.spec_id.algorithms[0].alg_id, TPM_ALG_SHA384);
    assert_eq!(log.spec_id.algorithms[0].digest_size, 48);
    assert_eq!(log.spec_id.spec_version, (2, 0, 0));
    // TDVF writes the Spec ID event with MR index 1, not the TCG log's PCR 0.
    assert_eq!(u32::from_le_bytes(bytes[..4].try_into().unwrap()), 1);
    assert_eq!(log.events.len(), 43);
    assert_eq!(log.len, 18101);
    assert!(bytes[log.len..].iter().all(|b| *b == 0xFF));
    let counts: Vec<usize> = (0..4).map(|i| log.events_in(i).count()).collect();
    assert_eq!(counts, [16, 7, 20, 0]);
    assert!(log
        .events
        .iter()
        .all(|e| matches!(e.mr, MrIndex::Rtmr(0..=2))));

    let types =
        |rtmr: usize| -> Vec<EventType> { log.events_in(rtmr).map(|e| e.event_type).collect() };
    // RTMR0: the TD HOB, the firmware volume, Secure Boot variables, ACPI tables, boot variables.
    let r0 = types(0);
    assert_eq!(r0[0], EventType::EfiHandoffTables2);
    assert_eq!(r0[1], EventType::EfiPlatformFirmwareBlob2);
    assert_eq!(
        r0.iter()
            .filter(|t| **t == EventType::EfiVariableDriverConfig)
            .count(),
        5
    );
    assert_eq!(
        r0.iter()
            .filter(|t| **t == EventType::PlatformConfigFlags)
            .count(),
        3
    );
    assert_eq!(
        r0.iter()
            .filter(|t| **t == EventType::EfiVariableAuthority)
            .count(),
        2
    );
    // RTMR1: the boot loaders (shim, GRUB), the GPT, the EFI actions.
    assert_eq!(
        types(1),
        [
            EventType::EfiAction,
            EventType::Separator,
            EventType::EfiGptEvent,
            EventType::EfiBootServicesApplication,
            EventType::EfiBootServicesApplication,
            EventType::EfiAction,
            EventType::EfiAction,
        ]
    );
    // RTMR2: everything GRUB measured (EV_IPL): MOK lists, grub.cfg, its commands, the kernel
    // file and the kernel command line.
    assert!(types(2).iter().all(|t| *t == EventType::Ipl));
    assert_eq!(log.events[17].digest, m(SHIM).0);
    assert_eq!(log.events[23].digest, m(GRUB).0);
    assert_eq!(log.events[39].data, b"/syslinux/vmlinuz.A\0");
    assert_eq!(log.events[39].digest, m(KERNEL).0);
    assert!(kernel_cmdline().starts_with("/syslinux/vmlinuz.A init=/usr/lib/systemd/systemd"));
    // GRUB measures the command line without its prefix and NUL.
    assert_eq!(
        log.events[40].digest,
        <[u8; 48]>::from(Sha384::digest(kernel_cmdline().as_bytes()))
    );
}

#[test]
fn real_log_replays_to_the_quote_rtmrs() {
    let log = EventLog::parse(&log_bytes()).unwrap();
    let rtmrs = quote_rtmrs();
    for (i, hex) in QUOTE_RTMRS.iter().enumerate() {
        assert_eq!(rtmrs[i], m(hex));
    }
    let replayed = log.replay();
    for i in 0..4 {
        assert_eq!(replayed[i], rtmrs[i].0, "RTMR{i}");
    }
    verify_replay(&log, &rtmrs).unwrap();
}

#[test]
fn quote_report_data_is_the_nonce() {
    // go-tdx-guest's TestReplayCcelWithTdQuote validates REPORTDATA = nonce.dat zero-padded to
    // 64 bytes; the nonce is 64 bytes, so they are equal (and all zero).
    let nonce = fixture("nonce.dat");
    let quote = TdxQuote::parse(&fixture("cos-113-tdx-quote.dat")).unwrap();
    assert_eq!(nonce.len(), 64);
    assert_eq!(quote.report.report_data.0.as_slice(), nonce.as_slice());
    assert!(nonce.iter().all(|b| *b == 0));
}

#[test]
fn changed_event_digest_is_a_mismatch_naming_the_rtmr() {
    let mut bytes = log_bytes();
    bytes[EVENT_18_SHIM + DIGEST_AT + 5] ^= 0x01;
    let log = EventLog::parse(&bytes).unwrap();
    let err = verify_replay(&log, &quote_rtmrs()).unwrap_err();
    let CcelError::RtmrMismatch {
        index,
        replayed,
        quote,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*index, 1);
    assert_eq!(quote, QUOTE_RTMRS[1]);
    assert_eq!(replayed, &hex::encode(log.replay()[1]));
    assert!(err.to_string().starts_with("RTMR1 mismatch"));
}

#[test]
fn changed_data_of_a_data_digest_event_is_refused() {
    // EV_EFI_ACTION's digest is SHA-384 of its string: "Exit Boot Services Invocation" → "Fxit…".
    let mut bytes = log_bytes();
    bytes[EVENT_42_EXIT_BOOT_SERVICES + DATA_AT] ^= 0x03;
    assert_eq!(
        EventLog::parse(&bytes),
        Err(CcelError::DataDigestMismatch {
            event: 42,
            event_type: EventType::EfiAction
        })
    );
}

#[test]
fn changed_data_of_an_ipl_event_is_not_bound_so_matching_uses_digests() {
    // GRUB's EV_IPL digest covers the text after the `kernel_cmdline: ` prefix, a convention
    // of one boot loader, so the parser does not check it: an edited command line in the data
    // still parses and replays. What binds it is the digest, and that is what a policy matches.
    let genuine = kernel_cmdline();
    let mut bytes = log_bytes();
    let at = EVENT_41_CMDLINE + DATA_AT + "kernel_cmdline: ".len() + 20;
    bytes[at] ^= 0x20;
    let log = EventLog::parse(&bytes).unwrap();
    verify_replay(&log, &quote_rtmrs()).unwrap();
    let shown = std::str::from_utf8(&log.events[40].data)
        .unwrap()
        .to_string();
    assert_ne!(
        shown.trim_end_matches('\0'),
        format!("kernel_cmdline: {genuine}")
    );

    let expect = |text: &str| ExpectedEvents {
        events: vec![EventMatch {
            name: Some("kernel command line".into()),
            rtmr: 2,
            event_type: EventType::Ipl,
            digest: None,
            measured: Some(text.into()),
        }],
    };
    expect(&genuine).check(&log, &quote_rtmrs()).unwrap();
    let forged = shown
        .trim_end_matches('\0')
        .strip_prefix("kernel_cmdline: ")
        .unwrap();
    assert!(matches!(
        expect(forged).check(&log, &quote_rtmrs()),
        Err(CcelError::ExpectedEventMissing {
            index: 0,
            rtmr: 2,
            ..
        })
    ));
}

#[test]
fn changed_quote_rtmr_is_a_mismatch() {
    let log = EventLog::parse(&log_bytes()).unwrap();
    for i in 0..4 {
        let mut rtmrs = quote_rtmrs();
        rtmrs[i].0[47] ^= 0x80;
        match verify_replay(&log, &rtmrs) {
            Err(CcelError::RtmrMismatch {
                index,
                replayed,
                quote,
            }) => {
                assert_eq!(index, i);
                assert_eq!(replayed, QUOTE_RTMRS[i]);
                assert_eq!(quote, hex::encode(rtmrs[i].0));
            }
            other => panic!("RTMR{i}: {other:?}"),
        }
    }
}

#[test]
fn every_truncation_is_an_error_or_a_shorter_log_that_does_not_replay() {
    let bytes = log_bytes();
    let full = EventLog::parse(&bytes).unwrap();
    let boundaries: Vec<usize> = full.events.iter().map(|e| e.offset).collect();
    for cut in 0..full.len {
        match EventLog::parse(&bytes[..cut]) {
            Ok(log) => {
                // Only a cut exactly between events parses (an empty rest is the end).
                assert!(boundaries.contains(&cut), "cut {cut} parsed");
                assert!(verify_replay(&log, &quote_rtmrs()).is_err(), "cut {cut}");
            }
            Err(CcelError::Truncated { .. } | CcelError::EventSizePastEnd { .. }) => {}
            Err(e) => panic!("cut {cut}: {e:?}"),
        }
    }
}

#[test]
fn oversized_event_size_is_refused() {
    for size in [u32::MAX, 0x40000] {
        let mut bytes = log_bytes();
        let size_at = EVENT_18_SHIM + DIGEST_AT + 48;
        bytes[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
        match EventLog::parse(&bytes) {
            Err(CcelError::EventSizePastEnd {
                event: 18,
                offset,
                size: s,
                ..
            }) => {
                assert_eq!((offset, s), (EVENT_18_SHIM, size));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn garbage_and_corrupted_logs_fail_cleanly() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for len in [0usize, 1, 7, 8, 31, 32, 65, 100, 1000, 70_000] {
        let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        assert!(
            EventLog::parse(&garbage).is_err(),
            "{len} random bytes parsed"
        );
        let _ = CcelTable::parse(&garbage);
    }
    // Every byte of the Spec ID event and the first events, flipped: no panic.
    let bytes = log_bytes();
    for at in 0..0x300 {
        let mut copy = bytes.clone();
        copy[at] ^= 0xA5;
        if let Ok(log) = EventLog::parse(&copy) {
            let _ = log.replay();
        }
    }
    // Non-padding after the padding.
    let mut trailing = bytes.clone();
    trailing[100_000] = 0x00;
    assert_eq!(
        EventLog::parse(&trailing),
        Err(CcelError::TrailingData { offset: 18101 })
    );
}

/// Hand-built logs: the Spec ID event declaring `algs`, then events, then padding.
struct LogBuilder(Vec<u8>);

impl LogBuilder {
    fn new(algs: &[(u16, u16)]) -> Self {
        let mut spec = b"Spec ID Event03\0".to_vec();
        spec.extend_from_slice(&0u32.to_le_bytes()); // platform class
        spec.extend_from_slice(&[0, 2, 0, 2]); // minor, major, errata, uintn size
        spec.extend_from_slice(&(algs.len() as u32).to_le_bytes());
        for (id, size) in algs {
            spec.extend_from_slice(&id.to_le_bytes());
            spec.extend_from_slice(&size.to_le_bytes());
        }
        spec.push(0); // vendor info size
        let mut out = Vec::new();
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&[0u8; 20]);
        out.extend_from_slice(&(spec.len() as u32).to_le_bytes());
        out.extend_from_slice(&spec);
        Self(out)
    }

    fn sha384() -> Self {
        Self::new(&[(TPM_ALG_SHA384, 48)])
    }

    fn event(mut self, mr: u32, ty: u32, digests: &[(u16, &[u8])], data: &[u8]) -> Self {
        self.0.extend_from_slice(&mr.to_le_bytes());
        self.0.extend_from_slice(&ty.to_le_bytes());
        self.0
            .extend_from_slice(&(digests.len() as u32).to_le_bytes());
        for (alg, d) in digests {
            self.0.extend_from_slice(&alg.to_le_bytes());
            self.0.extend_from_slice(d);
        }
        self.0.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.0.extend_from_slice(data);
        self
    }

    fn ev(self, mr: u32, ty: u32, digest: [u8; 48], data: &[u8]) -> Self {
        self.event(mr, ty, &[(TPM_ALG_SHA384, &digest[..])], data)
    }

    fn padded(mut self, pad: u8, n: usize) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(pad, n));
        self.0
    }
}

const EV_IPL: u32 = 0x0D;
const EV_NO_ACTION: u32 = 0x03;
const EV_EFI_ACTION: u32 = 0x8000_0007;

#[test]
fn replay_known_answer_on_a_tiny_log() {
    let abc: [u8; 48] = Sha384::digest(b"abc").into();
    let bytes = LogBuilder::sha384()
        .ev(1, EV_IPL, [1; 48], b"one")
        .ev(2, EV_NO_ACTION, [9; 48], b"not extended")
        .ev(1, EV_IPL, [2; 48], b"")
        .ev(3, EV_EFI_ACTION, abc, b"abc")
        .padded(0x00, 40);
    let log = EventLog::parse(&bytes).unwrap();
    assert_eq!(log.events.len(), 4);
    assert_eq!(log.events[1].extends(), None);
    // Independently computed (Python hashlib): RTMR0 = H(H(0⁴⁸ ‖ 01⁴⁸) ‖ 02⁴⁸),
    // RTMR2 = H(0⁴⁸ ‖ H("abc")).
    let expected = [
        "11422093d9248558e623cdd803580126f1912db17c838f511a296eb2e7dba8382ad56767569170322357e1a8fef06eae",
        QUOTE_RTMRS[3],
        "93732e3733514a841c982cfa75ea76ab55fe011acb9cd980ef4523913c65be1b0998e04d77f8c174f81a82151619ca40",
        QUOTE_RTMRS[3],
    ];
    let replayed = log.replay();
    for i in 0..4 {
        assert_eq!(hex::encode(replayed[i]), expected[i], "RTMR{i}");
    }
    verify_replay(&log, &expected.map(m)).unwrap();
}

#[test]
fn other_algorithms_are_skipped_and_sha384_is_required() {
    // SHA-256 and SHA-384 declared; events carry both; only SHA-384 is extended.
    let both = LogBuilder::new(&[(0x000B, 32), (TPM_ALG_SHA384, 48)])
        .event(
            1,
            EV_IPL,
            &[(0x000B, &[7u8; 32][..]), (TPM_ALG_SHA384, &[1u8; 48][..])],
            b"x",
        )
        .padded(0xFF, 8);
    let log = EventLog::parse(&both).unwrap();
    assert_eq!(log.events[0].digest, [1; 48]);

    let only_256 = LogBuilder::new(&[(0x000B, 32)]).padded(0xFF, 8);
    assert!(
        matches!(EventLog::parse(&only_256), Err(CcelError::NoSha384 { algorithms }) if algorithms == "0x000b:32")
    );
    let short_384 = LogBuilder::new(&[(TPM_ALG_SHA384, 32)]).padded(0xFF, 8);
    assert!(matches!(
        EventLog::parse(&short_384),
        Err(CcelError::NoSha384 { .. })
    ));

    let undeclared = LogBuilder::sha384()
        .event(1, EV_IPL, &[(0x000B, &[7u8; 32][..])], b"x")
        .padded(0xFF, 8);
    assert_eq!(
        EventLog::parse(&undeclared),
        Err(CcelError::UndeclaredAlgorithm {
            event: 1,
            alg: 0x000B
        })
    );
    let none = LogBuilder::sha384()
        .event(1, EV_IPL, &[], b"x")
        .padded(0xFF, 8);
    assert!(matches!(
        EventLog::parse(&none),
        Err(CcelError::BadDigestList { event: 1, .. })
    ));
    let sha256_only = LogBuilder::new(&[(0x000B, 32), (TPM_ALG_SHA384, 48)])
        .event(1, EV_IPL, &[(0x000B, &[7u8; 32][..])], b"x")
        .padded(0xFF, 8);
    assert!(
        matches!(EventLog::parse(&sha256_only), Err(CcelError::BadDigestList { reason, .. }) if reason.contains("no SHA-384"))
    );
    let twice = LogBuilder::new(&[(0x000B, 32), (TPM_ALG_SHA384, 48)])
        .event(
            1,
            EV_IPL,
            &[
                (TPM_ALG_SHA384, &[1u8; 48][..]),
                (TPM_ALG_SHA384, &[1u8; 48][..]),
            ],
            b"x",
        )
        .padded(0xFF, 8);
    assert!(matches!(
        EventLog::parse(&twice),
        Err(CcelError::BadDigestList { .. })
    ));
}

#[test]
fn bad_spec_id_events_are_refused() {
    let good = LogBuilder::sha384().padded(0xFF, 8);
    EventLog::parse(&good).unwrap();
    let mut sig = good.clone();
    sig[32 + 14] = b'2'; // "Spec ID Event02"
    assert!(
        matches!(EventLog::parse(&sig), Err(CcelError::BadSpecIdEvent(e)) if e.contains("signature"))
    );
    let mut pcr = good.clone();
    pcr[0] = 5;
    assert!(matches!(
        EventLog::parse(&pcr),
        Err(CcelError::BadSpecIdEvent(_))
    ));
    let mut sha1 = good.clone();
    sha1[10] = 1;
    assert!(matches!(
        EventLog::parse(&sha1),
        Err(CcelError::BadSpecIdEvent(_))
    ));
    let dup = LogBuilder::new(&[(TPM_ALG_SHA384, 48), (TPM_ALG_SHA384, 48)]).padded(0xFF, 8);
    assert!(
        matches!(EventLog::parse(&dup), Err(CcelError::BadSpecIdEvent(e)) if e.contains("twice"))
    );
    // numberOfAlgorithms far beyond the event: truncated, no huge allocation.
    let mut many = good.clone();
    many[32 + 24..32 + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        EventLog::parse(&many),
        Err(CcelError::Truncated { event: 0, .. })
    ));
}

#[test]
fn mr_index_out_of_range_is_refused() {
    let bytes = LogBuilder::sha384()
        .ev(5, EV_IPL, [1; 48], b"")
        .padded(0xFF, 8);
    assert_eq!(
        EventLog::parse(&bytes),
        Err(CcelError::MrIndexOutOfRange {
            event: 1,
            event_type: EventType::Ipl,
            index: 5
        })
    );
    // MR index 0 (MRTD) is never extended by firmware …
    let mrtd = LogBuilder::sha384()
        .ev(1, EV_IPL, [1; 48], b"")
        .ev(0, EV_IPL, [1; 48], b"")
        .padded(0xFF, 8);
    assert!(matches!(
        EventLog::parse(&mrtd),
        Err(CcelError::MrIndexOutOfRange {
            event: 2,
            index: 0,
            ..
        })
    ));
    // … but an EV_NO_ACTION event may name it: it extends nothing.
    let no_action = LogBuilder::sha384()
        .ev(0, EV_NO_ACTION, [0; 48], b"info")
        .padded(0xFF, 8);
    let log = EventLog::parse(&no_action).unwrap();
    assert_eq!(log.events[0].mr, MrIndex::Mrtd);
    assert_eq!(log.replay(), [[0; 48]; 4]);
}

#[test]
fn too_many_events_are_refused() {
    let mut b = LogBuilder::sha384();
    for _ in 0..=MAX_EVENTS {
        b = b.ev(1, EV_NO_ACTION, [0; 48], b"");
    }
    assert_eq!(
        EventLog::parse(&b.padded(0xFF, 8)),
        Err(CcelError::TooManyEvents { max: MAX_EVENTS })
    );
}

const POLICY: &str = r#"
events:
  - name: shim
    rtmr: 1
    type: EV_EFI_BOOT_SERVICES_APPLICATION
    digest: 5a10026c9ad41d1f90dc9cfe88bcabe1842ccfd85495c81b1a1ab926a9ef23b5d2e60eefeba0415bbe5c8c328a899a0a
  - name: grub
    rtmr: 1
    type: EV_EFI_BOOT_SERVICES_APPLICATION
    digest: b1fb7f4c0689f5a920b800b2607075f4906f8c8282d44e56fc991ec01f1adac176d2040a26f1453df112d7c4f4293fc9
  - name: kernel
    rtmr: 2
    type: EV_IPL
    digest: b1012372f421ad28c9f542e5a1b8c4d312a0d1c8637ffba5e52b632d4b632e504da1b73964f6e8ba047bcd4f1d5a1dfe
  - name: boot services exited
    rtmr: 1
    type: EV_EFI_ACTION
    measured: Exit Boot Services Invocation
"#;

fn policy() -> ExpectedEvents {
    let mut expected: ExpectedEvents = serde_yaml_ng::from_str(POLICY).unwrap();
    expected.events.push(EventMatch {
        name: Some("kernel command line".into()),
        rtmr: 2,
        event_type: EventType::Ipl,
        digest: None,
        measured: Some(kernel_cmdline()),
    });
    expected
}

#[test]
fn expected_events_match_the_real_log() {
    let expected = policy();
    expected.validate().unwrap();
    assert_eq!(expected.events[0].digest, Some(m(SHIM)));
    let log = EventLog::parse(&log_bytes()).unwrap();
    expected.check(&log, &quote_rtmrs()).unwrap();
}

#[test]
fn expected_event_with_another_digest_is_refused_naming_it() {
    let log = EventLog::parse(&log_bytes()).unwrap();
    let mut expected = policy();
    let mut other = m(GRUB);
    other.0[0] ^= 1;
    expected.events[1].digest = Some(other);
    let err = expected.check(&log, &quote_rtmrs()).unwrap_err();
    let CcelError::ExpectedEventMissing {
        index,
        rtmr,
        expected: text,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((*index, *rtmr), (1, 1));
    assert!(
        text.contains("(grub)") && text.contains(&other.to_string()),
        "{text}"
    );
    assert!(err
        .to_string()
        .starts_with("no event in RTMR1 matches expected event 1"));

    // The right digest in the wrong register, or with the wrong type, does not match either.
    let mut wrong_rtmr = policy();
    wrong_rtmr.events[0].rtmr = 2;
    assert!(matches!(
        wrong_rtmr.check(&log, &quote_rtmrs()),
        Err(CcelError::ExpectedEventMissing {
            index: 0,
            rtmr: 2,
            ..
        })
    ));
    let mut wrong_type = policy();
    wrong_type.events[2].event_type = EventType::EfiBootServicesApplication;
    assert!(matches!(
        wrong_type.check(&log, &quote_rtmrs()),
        Err(CcelError::ExpectedEventMissing { index: 2, .. })
    ));
}

#[test]
fn expected_events_need_a_log_that_replays() {
    let mut bytes = log_bytes();
    bytes[EVENT_18_SHIM + DIGEST_AT] ^= 1;
    let log = EventLog::parse(&bytes).unwrap();
    assert!(matches!(
        policy().check(&log, &quote_rtmrs()),
        Err(CcelError::RtmrMismatch { index: 1, .. })
    ));
}

#[test]
fn expectation_yaml_is_strict_and_validated() {
    let unknown =
        format!("events:\n  - rtmr: 1\n    type: EV_IPL\n    digest: {SHIM}\n    pcr: 4\n");
    let err = serde_yaml_ng::from_str::<ExpectedEvents>(&unknown).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    let bad_type = "events:\n  - rtmr: 1\n    type: EV_BOGUS\n    measured: x\n";
    assert!(serde_yaml_ng::from_str::<ExpectedEvents>(bad_type).is_err());
    let hex_type = "events:\n  - rtmr: 1\n    type: \"0x0000000d\"\n    measured: x\n";
    let parsed: ExpectedEvents = serde_yaml_ng::from_str(hex_type).unwrap();
    assert_eq!(parsed.events[0].event_type, EventType::Ipl);

    let base = EventMatch {
        name: None,
        rtmr: 1,
        event_type: EventType::Ipl,
        digest: Some(m(SHIM)),
        measured: Some("x".into()),
    };
    let invalid = |m: EventMatch| ExpectedEvents { events: vec![m] }.validate();
    assert!(matches!(
        invalid(base.clone()),
        Err(CcelError::InvalidExpectation { index: 0, .. })
    ));
    assert!(invalid(EventMatch {
        measured: None,
        digest: None,
        ..base.clone()
    })
    .is_err());
    assert!(invalid(EventMatch {
        measured: None,
        rtmr: 4,
        ..base.clone()
    })
    .is_err());
    assert!(invalid(EventMatch {
        measured: None,
        event_type: EventType::NoAction,
        ..base.clone()
    })
    .is_err());
    invalid(EventMatch {
        measured: None,
        ..base
    })
    .unwrap();
}

/// Prints the real log (`cargo test -p cdvm-attestation --test tdx_ccel -- --ignored
/// --nocapture`): what a GCP COS TDX boot measures.
#[test]
#[ignore]
fn explore_real_log() {
    let log = EventLog::parse(&log_bytes()).unwrap();
    for e in &log.events {
        let text: String = String::from_utf8_lossy(&e.data)
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .take(100)
            .collect();
        println!(
            "{:>2} {:?} {:<34} {}… {:>5} B {text}",
            e.number,
            e.mr,
            e.event_type.to_string(),
            &hex::encode(e.digest)[..16],
            e.data.len()
        );
    }
}
