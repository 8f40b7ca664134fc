//! Reserved fields of the SEV-SNP report (ABI spec 56860, Table 23 per report VERSION; Table 9
//! GUEST_POLICY; Table 3 TCB_VERSION): every real fixture has them as the spec says, and a real
//! report that verifies is refused, naming the reserved field, once one byte of any reserved
//! range or one reserved bit is changed — including 0x330..0x4A0, which the signature does not
//! cover, so that such a change would otherwise pass.
#![allow(clippy::unwrap_used)]

mod common;

use cdvm_attestation::snp::AttestationReport;
use cdvm_attestation::{Evidence, VerifyError};
use common::*;

// The names the verifier gives each reserved area (docs/attestation.md, "SEV-SNP report, byte
// by byte").
const AFTER_SIGNER_INFO: &str = "reserved 0x04C..0x050 (after SIGNER_INFO)";
const CURRENT_TCB_MG: &str = "CURRENT_TCB reserved bytes 2..=5";
const REPORTED_TCB_MG: &str = "REPORTED_TCB reserved bytes 2..=5";
const COMMITTED_TCB_MG: &str = "COMMITTED_TCB reserved bytes 2..=5";
const LAUNCH_TCB_MG: &str = "LAUNCH_TCB reserved bytes 2..=5";
const V2_CPUID_AREA: &str = "reserved 0x188..0x1A0 (v2: before CPUID fields)";
const AFTER_CPUID: &str = "reserved 0x18B..0x1A0 (after CPUID_STEP)";
const AFTER_CURRENT_MAJOR: &str = "reserved 0x1EB (after CURRENT_MAJOR)";
const AFTER_COMMITTED_MAJOR: &str = "reserved 0x1EF (after COMMITTED_MAJOR)";
const BEFORE_MIT_VECTORS: &str = "reserved 0x1F8..0x2A0 (v2-v4: before mitigation vectors)";
const AFTER_MIT_VECTORS: &str = "reserved 0x208..0x2A0 (after CURRENT_MIT_VECTOR)";
const R_EXTENSION: &str = "SIGNATURE R zero extension 0x2D0..0x2E8";
const S_EXTENSION: &str = "SIGNATURE S zero extension 0x318..0x330";
const SIG_RESERVED: &str = "reserved 0x330..0x4A0 (SIGNATURE after R and S)";

/// Offsets (first, an inner one, last) of each area every version reserves, Milan/Genoa layout.
const COMMON: &[(usize, &str)] = &[
    (0x04C, AFTER_SIGNER_INFO),
    (0x04F, AFTER_SIGNER_INFO),
    (0x03A, CURRENT_TCB_MG),
    (0x03D, CURRENT_TCB_MG),
    (0x182, REPORTED_TCB_MG),
    (0x185, REPORTED_TCB_MG),
    (0x18B, "per version"),
    (0x19F, "per version"),
    (0x1E2, COMMITTED_TCB_MG),
    (0x1E5, COMMITTED_TCB_MG),
    (0x1EB, AFTER_CURRENT_MAJOR),
    (0x1EF, AFTER_COMMITTED_MAJOR),
    (0x1F2, LAUNCH_TCB_MG),
    (0x1F5, LAUNCH_TCB_MG),
    (0x1F8, BEFORE_MIT_VECTORS),
    (0x207, BEFORE_MIT_VECTORS),
    (0x208, BEFORE_MIT_VECTORS),
    (0x29F, BEFORE_MIT_VECTORS),
    (0x2D0, R_EXTENSION),
    (0x2E7, R_EXTENSION),
    (0x318, S_EXTENSION),
    (0x32F, S_EXTENSION),
    (0x330, SIG_RESERVED),
    (0x400, SIG_RESERVED),
    (0x49F, SIG_RESERVED),
];

fn with_byte(case: Case, offset: usize, value: u8) -> Evidence {
    let mut ev = case.evidence();
    snp_mut(&mut ev).report[offset] = value;
    ev
}

fn verify_case(ev: &Evidence, case: Case) -> Result<cdvm_attestation::Claims, VerifyError> {
    verify(ev, &policy_for(ev, vec![case.root()]), T2026)
}

/// Every COMMON offset, plus the version's CPUID area, set to `value` in `case`: refused with
/// the area's name.
fn assert_each_range_refused(
    case: Case,
    cpuid_area: &'static str,
    extra: &[(usize, &'static str)],
) {
    verify_case(&case.evidence(), case).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    for &(offset, field) in COMMON.iter().chain(extra) {
        let field = if field == "per version" {
            cpuid_area
        } else {
            field
        };
        for value in [0x01, 0x80] {
            assert_eq!(
                verify_case(&with_byte(case, offset, value), case),
                Err(VerifyError::ReservedNonZero {
                    field,
                    offset,
                    value
                }),
                "{} offset {offset:#x}",
                case.name
            );
        }
    }
}

#[test]
fn every_real_fixture_has_its_reserved_fields_as_the_abi_says() {
    // All ten real reports (Milan, Genoa, Siena; v2 and v3; VCEK and AWS VLEK; Azure, go-sev-guest,
    // virtee, trustee). Their full verification is in verify_real.rs; this is the reserved part,
    // for the debug and VLEK ones too.
    for rel in ALL_REPORTS {
        let report = AttestationReport::parse(&fixture(rel)).unwrap();
        assert_eq!(report.check_reserved(), Ok(()), "{rel}");
    }
    for case in VALID {
        verify_case(&case.evidence(), *case).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    }
}

#[test]
fn v2_report_each_reserved_range_is_refused_with_its_name() {
    // trustee's Milan v2 report: in v2 the CPUID bytes 0x188..0x18B are reserved too.
    let case = VALID[1];
    assert_eq!(report_of(&case.evidence()).version, 2);
    assert_each_range_refused(
        case,
        V2_CPUID_AREA,
        &[
            (0x188, V2_CPUID_AREA),
            (0x189, V2_CPUID_AREA),
            (0x18A, V2_CPUID_AREA),
        ],
    );
}

#[test]
fn v3_reports_each_reserved_range_is_refused_with_its_name() {
    // Azure Milan and trustee's Siena (Genoa line), both v3 with CPUID fields set.
    for case in [VALID[4], VALID[2]] {
        let r = report_of(&case.evidence());
        assert_eq!(r.version, 3, "{}", case.name);
        assert_ne!(r.cpuid_fam_id, 0);
        assert_each_range_refused(case, AFTER_CPUID, &[]);
    }
}

#[test]
fn the_unsigned_signature_area_alone_is_refused() {
    // The case: the signature covers 0x000..0x2A0 only, so these edits left R and S
    // valid; each is now refused by name instead of accepted.
    let case = VALID[1];
    let mut ev = case.evidence();
    for b in &mut snp_mut(&mut ev).report[0x330..0x4A0] {
        *b = 0xFF;
    }
    assert_eq!(
        verify_case(&ev, case),
        Err(VerifyError::ReservedNonZero {
            field: SIG_RESERVED,
            offset: 0x330,
            value: 0xFF
        })
    );
}

#[test]
fn reserved_bits_of_guest_policy_and_signer_info_are_refused() {
    let case = VALID[1]; // GUEST_POLICY 0x3001f, SIGNER_INFO 0
    let bits = |offset: usize, xor: u8| {
        let mut ev = case.evidence();
        snp_mut(&mut ev).report[offset] ^= xor;
        verify_case(&ev, case)
    };
    let policy_high = |found: u64| VerifyError::ReservedBits {
        field: "GUEST_POLICY bits 63:26",
        offset: 0x08,
        mask: 0xFFFF_FFFF_FC00_0000,
        expected: 0,
        found,
    };
    let signer = |found: u64| VerifyError::ReservedBits {
        field: "SIGNER_INFO bits 31:5",
        offset: 0x48,
        mask: 0xFFFF_FFE0,
        expected: 0,
        found,
    };
    // Bit 17 cleared (byte 0x0A, bit 1).
    assert_eq!(
        bits(0x0A, 0x02),
        Err(VerifyError::ReservedBits {
            field: "GUEST_POLICY bit 17 (must be one)",
            offset: 0x08,
            mask: 1 << 17,
            expected: 1 << 17,
            found: 0
        })
    );
    assert_eq!(bits(0x0B, 0x04), Err(policy_high(1 << 26)));
    assert_eq!(bits(0x0F, 0x80), Err(policy_high(1 << 63)));
    assert_eq!(bits(0x48, 0x20), Err(signer(1 << 5)));
    assert_eq!(bits(0x4B, 0x80), Err(signer(1 << 31)));
    // Defined bits are not reserved: policy bits 18..=25 (MIGRATE_MA .. PAGE_SWAP_DISABLE) and
    // SIGNER_INFO's AUTHOR_KEY_EN / MASK_CHIP_KEY reach the signature check.
    assert_eq!(bits(0x0A, 0b1111_1100), Err(VerifyError::SignatureInvalid));
    assert_eq!(bits(0x0B, 0b0000_0011), Err(VerifyError::SignatureInvalid));
    assert_eq!(bits(0x48, 0x03), Err(VerifyError::SignatureInvalid));
}

#[test]
fn versions_without_a_known_layout_are_refused_and_known_ones_judged_by_their_layout() {
    let v2 = VALID[1];
    let v3 = VALID[4];
    let with_version = |case: Case, version: u32| {
        let mut ev = case.evidence();
        snp_mut(&mut ev).report[0..4].copy_from_slice(&version.to_le_bytes());
        verify_case(&ev, case)
    };
    for version in [0, 1, 6, 0x100, u32::MAX] {
        assert_eq!(
            with_version(v2, version),
            Err(VerifyError::ReportVersionUnsupported { version })
        );
    }
    // A v3 report relabelled v2: its CPUID bytes fall in v2's reserved range.
    let fam = report_of(&v3.evidence()).cpuid_fam_id;
    assert_eq!(
        with_version(v3, 2),
        Err(VerifyError::ReservedNonZero {
            field: V2_CPUID_AREA,
            offset: 0x188,
            value: fam
        })
    );
    // Relabelled 4 or 5 (no mitigation vectors set): the layout checks pass, the signature (over
    // VERSION) does not.
    for version in [4, 5] {
        assert_eq!(
            with_version(v3, version),
            Err(VerifyError::SignatureInvalid)
        );
    }
}

#[test]
fn a_v5_report_may_carry_mitigation_vectors_but_not_bytes_after_them() {
    // No real v5 report is in the fixtures: the layout check alone, on a real report relabelled
    // (the simulator's v4/v5 tests in sim_report_versions below also verify signatures).
    let mut bytes = fixture("trustee_e2e/evidence.snp_report.derived.bin");
    bytes[0..4].copy_from_slice(&5u32.to_le_bytes());
    bytes[0x1F8] = 0x05; // LAUNCH_MIT_VECTOR
    bytes[0x207] = 0x80; // CURRENT_MIT_VECTOR, top byte
    assert_eq!(
        AttestationReport::parse(&bytes).unwrap().check_reserved(),
        Ok(())
    );
    bytes[0x208] = 1;
    assert_eq!(
        AttestationReport::parse(&bytes).unwrap().check_reserved(),
        Err(VerifyError::ReservedNonZero {
            field: AFTER_MIT_VECTORS,
            offset: 0x208,
            value: 1
        })
    );
    // The same mitigation vector in a v4 report is a reserved byte.
    bytes[0x208] = 0;
    bytes[0..4].copy_from_slice(&4u32.to_le_bytes());
    assert_eq!(
        AttestationReport::parse(&bytes).unwrap().check_reserved(),
        Err(VerifyError::ReservedNonZero {
            field: BEFORE_MIT_VECTORS,
            offset: 0x1F8,
            value: 5
        })
    );
}

#[test]
fn errors_name_the_field_and_offset_readably() {
    let e = VerifyError::ReservedNonZero {
        field: SIG_RESERVED,
        offset: 0x400,
        value: 0x5A,
    };
    assert_eq!(
        e.to_string(),
        "SNP report: reserved 0x330..0x4A0 (SIGNATURE after R and S) must be zero, but byte 0x400 is 0x5a"
    );
    assert_eq!(e.check(), "report");
    assert_eq!(
        VerifyError::ReportVersionUnsupported { version: 6 }.to_string(),
        "SNP report version 6 is not supported (known layouts: versions 2 to 5)"
    );
}

/// The simulated secure processor, re-signing edited reports with its VCEK (read from its key
/// store), so that v4, v5 and Turin-layout reports can be verified end to end.
#[cfg(feature = "sim")]
mod sim_report_versions {
    use super::*;
    use cdvm_attestation::sim::{dev_policy, measure_file_bytes, SimReportOptions};
    use cdvm_attestation::sim::{SimSecureProcessor, KEY_FILE};
    use cdvm_attestation::snp::{SnpVerifier, SIGNED_LEN};
    use cdvm_attestation::{Measurement, ReportData, Verifier};
    use openssl::ecdsa::EcdsaSig;
    use openssl::pkey::PKey;

    struct Sim {
        _dir: tempfile::TempDir,
        sp: SimSecureProcessor,
        vcek: openssl::ec::EcKey<openssl::pkey::Private>,
    }

    fn sim() -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let sp = SimSecureProcessor::load_or_create(dir.path()).unwrap();
        // The key store holds the ARK, ASK and VCEK private keys, in that order.
        let text = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        let keys: Vec<&str> = text
            .split_inclusive("-----END PRIVATE KEY-----\n")
            .filter(|b| b.contains("PRIVATE KEY-----"))
            .collect();
        let vcek = PKey::private_key_from_pem(keys[2].as_bytes())
            .unwrap()
            .ec_key()
            .unwrap();
        Sim {
            _dir: dir,
            sp,
            vcek,
        }
    }

    fn rd() -> ReportData {
        ReportData([9; 64])
    }

    fn agent() -> Measurement {
        measure_file_bytes(b"the agent binary")
    }

    impl Sim {
        /// A simulated report with `edit` applied to its bytes, signed again.
        fn report(&self, edit: impl Fn(&mut [u8])) -> Evidence {
            let mut ev = self
                .sp
                .report(&rd(), &agent(), &SimReportOptions::default());
            let bytes = &mut snp_mut(&mut ev).report;
            edit(bytes);
            let mut r = AttestationReport::parse(bytes).unwrap();
            let digest = openssl::sha::sha384(&bytes[..SIGNED_LEN]);
            let sig = EcdsaSig::sign(&digest, &self.vcek).unwrap();
            let le = |n: &openssl::bn::BigNumRef| {
                let mut out = [0u8; 72];
                for (d, s) in out.iter_mut().zip(n.to_vec().iter().rev()) {
                    *d = *s;
                }
                out
            };
            r.signature_r = le(sig.r());
            r.signature_s = le(sig.s());
            *bytes = r.to_bytes().to_vec();
            ev
        }

        fn verify(&self, ev: &Evidence) -> Result<cdvm_attestation::Claims, VerifyError> {
            let policy = dev_policy(&self.sp, &agent(), "test");
            SnpVerifier.verify(ev, &rd(), &policy, std::time::SystemTime::now())
        }
    }

    fn set_version(b: &mut [u8], v: u32) {
        b[0..4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn simulated_reports_have_every_reserved_field_zero() {
        let s = sim();
        let ev = s.sp.report(&rd(), &agent(), &SimReportOptions::default());
        let r = report_of(&ev);
        assert_eq!(r.check_reserved(), Ok(()));
        s.verify(&ev).unwrap();
        // The re-signing helper itself changes nothing else.
        s.verify(&s.report(|_| {})).unwrap();
    }

    #[test]
    fn v5_report_with_mitigation_vectors_verifies_and_its_reserved_tail_is_checked() {
        let s = sim();
        let v5 = |b: &mut [u8]| {
            set_version(b, 5);
            b[0x1F8] = 0x03; // LAUNCH_MIT_VECTOR
            b[0x200] = 0x03; // CURRENT_MIT_VECTOR
        };
        s.verify(&s.report(v5)).unwrap();
        for (offset, field) in [(0x208, AFTER_MIT_VECTORS), (0x29F, AFTER_MIT_VECTORS)] {
            let ev = s.report(|b| {
                v5(b);
                b[offset] = 0x10;
            });
            assert_eq!(
                s.verify(&ev),
                Err(VerifyError::ReservedNonZero {
                    field,
                    offset,
                    value: 0x10
                }),
                "{offset:#x}"
            );
        }
        // Signed again after the edit, so only the reserved check can refuse it.
        let ev = s.report(|b| {
            set_version(b, 4);
            b[0x1F8] = 0x03;
        });
        assert_eq!(
            s.verify(&ev),
            Err(VerifyError::ReservedNonZero {
                field: BEFORE_MIT_VECTORS,
                offset: 0x1F8,
                value: 0x03
            })
        );
        let v4 = s.report(|b| set_version(b, 4));
        s.verify(&v4).unwrap();
    }

    #[test]
    fn turin_layout_reserves_tcb_bytes_4_to_6_and_uses_bytes_0_to_3() {
        let s = sim();
        let turin = |b: &mut [u8]| {
            set_version(b, 5);
            b[0x188] = 0x1A; // CPUID family 1Ah: Turin's TCB layout
            for base in [0x38, 0x180, 0x1E0, 0x1F0] {
                // fmc=1 bl=2 tee=3 snp=4 ... ucode=5
                b[base..base + 8].copy_from_slice(&[1, 2, 3, 4, 0, 0, 0, 5]);
            }
        };
        let claims = s.verify(&s.report(turin)).unwrap();
        let tcb = claims.checks.iter().find(|c| c.name == "tcb").unwrap();
        assert!(
            tcb.detail.starts_with("TCB bl=2 tee=3 snp=4 ucode=5"),
            "{}",
            tcb.detail
        );
        for (offset, field) in [
            (0x3C, "CURRENT_TCB reserved bytes 4..=6"),
            (0x186, "REPORTED_TCB reserved bytes 4..=6"),
            (0x1E5, "COMMITTED_TCB reserved bytes 4..=6"),
            (0x1F6, "LAUNCH_TCB reserved bytes 4..=6"),
        ] {
            let ev = s.report(|b| {
                turin(b);
                b[offset] = 7;
            });
            assert_eq!(
                s.verify(&ev),
                Err(VerifyError::ReservedNonZero {
                    field,
                    offset,
                    value: 7
                }),
                "{offset:#x}"
            );
        }
    }
}
