//! The parts of an `ATTESTATION_REPORT` that the ABI reserves must be as the spec says: zero, or
//! one for GUEST_POLICY bit 17. AMD SEV-SNP ABI spec (56860), Table 23 `ATTESTATION_REPORT` (the
//! layout per report VERSION), Table 9 `GUEST_POLICY`, Table 3 `TCB_VERSION`, and the ECDSA P-384
//! signature format (R and S zero-extended to 72 bytes, then reserved to 0x4A0).
//!
//! Why: bytes 0x2A0..0x4A0 are outside what the signature covers, so without this check an accepted
//! report could be altered there byte for byte and still pass. Inside the signed part, a non-zero
//! reserved byte means a layout this verifier does not know (a newer VERSION, an unknown policy
//! bit that might relax the guest's protection, a TCB component the VCEK binding does not cover),
//! so it is refused rather than read as something it is not. The ranges follow go-sev-guest's
//! `ReportToProto` checks, plus the reserved bytes of the four TCB_VERSION fields.

use crate::snp::fields::TcbLayout;
use crate::snp::report::REPORT_LEN;
use crate::snp::signature::SIG_ALGO_ECDSA_P384_SHA384;
use crate::VerifyError;

/// Report versions whose layout is known: 2 (ABI 1.51), 3 (adds CPUID_FAM_ID/MOD_ID/STEP at
/// 0x188..0x18B), 4 (firmware 1.55.31; same public layout as 3) and 5 (adds LAUNCH_MIT_VECTOR and
/// CURRENT_MIT_VECTOR at 0x1F8..0x208).
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 2..=5;

/// One reserved byte range: it must be all zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedRange {
    /// How errors and docs name it.
    pub field: &'static str,
    /// Offsets in the report, end exclusive.
    pub range: (usize, usize),
}

const fn r(field: &'static str, start: usize, end: usize) -> ReservedRange {
    ReservedRange {
        field,
        range: (start, end),
    }
}

/// Reserved bytes of the four TCB_VERSION fields (current, reported, committed, launch), per
/// layout: Milan/Genoa bytes 2..=5, Turin bytes 4..=6.
const TCB_MILAN_GENOA: [ReservedRange; 4] = [
    r("CURRENT_TCB reserved bytes 2..=5", 0x3A, 0x3E),
    r("REPORTED_TCB reserved bytes 2..=5", 0x182, 0x186),
    r("COMMITTED_TCB reserved bytes 2..=5", 0x1E2, 0x1E6),
    r("LAUNCH_TCB reserved bytes 2..=5", 0x1F2, 0x1F6),
];
const TCB_TURIN: [ReservedRange; 4] = [
    r("CURRENT_TCB reserved bytes 4..=6", 0x3C, 0x3F),
    r("REPORTED_TCB reserved bytes 4..=6", 0x184, 0x187),
    r("COMMITTED_TCB reserved bytes 4..=6", 0x1E4, 0x1E7),
    r("LAUNCH_TCB reserved bytes 4..=6", 0x1F4, 0x1F7),
];

/// The byte ranges that must be zero in a report of this version, TCB layout and signature
/// algorithm, in offset order. `None` for a version whose layout is unknown.
pub fn reserved_ranges(
    version: u32,
    layout: TcbLayout,
    sig_algo: u32,
) -> Option<Vec<ReservedRange>> {
    if !SUPPORTED_VERSIONS.contains(&version) {
        return None;
    }
    let mut out = vec![r("reserved 0x04C..0x050 (after SIGNER_INFO)", 0x4C, 0x50)];
    out.extend(match layout {
        TcbLayout::MilanGenoa => TCB_MILAN_GENOA,
        TcbLayout::Turin => TCB_TURIN,
    });
    out.push(if version == 2 {
        r(
            "reserved 0x188..0x1A0 (v2: before CPUID fields)",
            0x188,
            0x1A0,
        )
    } else {
        r("reserved 0x18B..0x1A0 (after CPUID_STEP)", 0x18B, 0x1A0)
    });
    out.push(r("reserved 0x1EB (after CURRENT_MAJOR)", 0x1EB, 0x1EC));
    out.push(r("reserved 0x1EF (after COMMITTED_MAJOR)", 0x1EF, 0x1F0));
    out.push(if version >= 5 {
        r(
            "reserved 0x208..0x2A0 (after CURRENT_MIT_VECTOR)",
            0x208,
            0x2A0,
        )
    } else {
        r(
            "reserved 0x1F8..0x2A0 (v2-v4: before mitigation vectors)",
            0x1F8,
            0x2A0,
        )
    });
    // Another algorithm would have another signature layout; it is refused at the signature step.
    if sig_algo == SIG_ALGO_ECDSA_P384_SHA384 {
        out.extend([
            r("SIGNATURE R zero extension 0x2D0..0x2E8", 0x2D0, 0x2E8),
            r("SIGNATURE S zero extension 0x318..0x330", 0x318, 0x330),
            r(
                "reserved 0x330..0x4A0 (SIGNATURE after R and S)",
                0x330,
                REPORT_LEN,
            ),
        ]);
    }
    out.sort_by_key(|x| x.range.0);
    Some(out)
}

/// Reserved bits inside a typed field: `(value & mask) == expected`.
struct ReservedBits {
    field: &'static str,
    offset: usize,
    mask: u64,
    expected: u64,
}

/// GUEST_POLICY bit 17 must be one; bits 63:26 must be zero (bit 25, PAGE_SWAP_DISABLE, is the
/// highest defined). SIGNER_INFO bits 31:5 must be zero.
const BITS: [ReservedBits; 3] = [
    ReservedBits {
        field: "GUEST_POLICY bit 17 (must be one)",
        offset: 0x08,
        mask: 1 << 17,
        expected: 1 << 17,
    },
    ReservedBits {
        field: "GUEST_POLICY bits 63:26",
        offset: 0x08,
        mask: !((1 << 26) - 1),
        expected: 0,
    },
    ReservedBits {
        field: "SIGNER_INFO bits 31:5",
        offset: 0x48,
        mask: 0xFFFF_FFE0,
        expected: 0,
    },
];

/// Checks the version, the reserved bits and the reserved bytes of a raw report, in that order
/// (bytes in offset order); the first violation is returned.
pub(crate) fn check(b: &[u8; REPORT_LEN]) -> Result<(), VerifyError> {
    let word = |off: usize, len: usize| {
        let mut le = [0u8; 8];
        le[..len].copy_from_slice(&b[off..off + len]);
        u64::from_le_bytes(le)
    };
    let version = word(0x00, 4) as u32;
    let layout = TcbLayout::for_report(version, b[0x188]);
    let ranges = reserved_ranges(version, layout, word(0x34, 4) as u32)
        .ok_or(VerifyError::ReportVersionUnsupported { version })?;
    for bits in &BITS {
        let len = if bits.offset == 0x48 { 4 } else { 8 };
        let found = word(bits.offset, len) & bits.mask;
        if found != bits.expected {
            return Err(VerifyError::ReservedBits {
                field: bits.field,
                offset: bits.offset,
                mask: bits.mask,
                expected: bits.expected,
                found,
            });
        }
    }
    for res in ranges {
        let (start, end) = res.range;
        if let Some(i) = b[start..end].iter().position(|&x| x != 0) {
            return Err(VerifyError::ReservedNonZero {
                field: res.field,
                offset: start + i,
                value: b[start + i],
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Sorted, disjoint, non-empty, inside the report.
    #[test]
    fn ranges_do_not_overlap_and_stay_in_the_report() {
        for version in SUPPORTED_VERSIONS {
            for layout in [TcbLayout::MilanGenoa, TcbLayout::Turin] {
                let ranges = reserved_ranges(version, layout, 1).unwrap();
                for pair in ranges.windows(2) {
                    assert!(pair[0].range.1 <= pair[1].range.0, "{pair:?}");
                }
                for x in &ranges {
                    assert!(x.range.0 < x.range.1 && x.range.1 <= REPORT_LEN, "{x:?}");
                }
            }
        }
    }

    #[test]
    fn unknown_versions_have_no_layout() {
        for v in [0, 1, 6, u32::MAX] {
            assert_eq!(reserved_ranges(v, TcbLayout::MilanGenoa, 1), None);
        }
    }

    #[test]
    fn another_signature_algorithm_leaves_the_signature_area_to_the_signature_step() {
        let ranges = reserved_ranges(3, TcbLayout::MilanGenoa, 2).unwrap();
        assert!(ranges.iter().all(|x| x.range.1 <= 0x2A0));
    }

    /// Independently of the tables above: the fields ABI Table 23 defines for each version. Every
    /// other byte of the report must be in a reserved range, and no defined byte may be.
    #[test]
    fn reserved_ranges_are_exactly_the_bytes_no_field_defines() {
        let always: &[(usize, usize)] = &[
            (0x000, 0x040), // VERSION, GUEST_SVN, POLICY, FAMILY_ID, IMAGE_ID, VMPL, SIG_ALGO, CURRENT_TCB
            (0x040, 0x04C), // PLATFORM_INFO, SIGNER_INFO
            (0x050, 0x188), // REPORT_DATA .. REPORT_ID_MA, REPORTED_TCB
            (0x1A0, 0x1EB), // CHIP_ID, COMMITTED_TCB, CURRENT_BUILD/MINOR/MAJOR
            (0x1EC, 0x1EF), // COMMITTED_BUILD/MINOR/MAJOR
            (0x1F0, 0x1F8), // LAUNCH_TCB
            (0x2A0, 0x2D0), // SIGNATURE R, 48 significant bytes
            (0x2E8, 0x318), // SIGNATURE S, 48 significant bytes
        ];
        let cpuid = (0x188, 0x18B); // v3+
        let mit_vectors = (0x1F8, 0x208); // v5
                                          // Reserved bytes inside each 8-byte TCB_VERSION, per layout (Table 3).
        let tcb_reserved = |layout| match layout {
            TcbLayout::MilanGenoa => 2..6,
            TcbLayout::Turin => 4..7,
        };
        for layout in [TcbLayout::MilanGenoa, TcbLayout::Turin] {
            for version in SUPPORTED_VERSIONS {
                let mut defined = always.to_vec();
                if version >= 3 {
                    defined.push(cpuid);
                }
                if version >= 5 {
                    defined.push(mit_vectors);
                }
                let ranges = reserved_ranges(version, layout, 1).unwrap();
                for off in 0..REPORT_LEN {
                    let in_tcb_reserved = [0x38, 0x180, 0x1E0, 0x1F0]
                        .iter()
                        .any(|base| tcb_reserved(layout).contains(&off.wrapping_sub(*base)));
                    let is_defined = !in_tcb_reserved
                        && defined.iter().any(|(lo, hi)| (*lo..*hi).contains(&off));
                    let checked = ranges.iter().any(|x| (x.range.0..x.range.1).contains(&off));
                    assert_eq!(
                        checked, !is_defined,
                        "v{version} {layout:?} offset {off:#x}"
                    );
                }
            }
        }
    }
}
