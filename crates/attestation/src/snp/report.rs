//! The SEV-SNP `ATTESTATION_REPORT` (AMD SEV-SNP ABI spec, Table 22): 1184 bytes, little-endian,
//! signed over bytes `0x000..0x2A0` with ECDSA P-384 / SHA-384.

use crate::snp::fields::{GuestPolicy, KeyInfo, SigningKey, TcbLayout, TcbVersion};
use crate::{Measurement, ReportData, VerifyError};

/// Size of an attestation report.
pub const REPORT_LEN: usize = 1184;
/// End of the signed part (the signature starts here).
pub const SIGNED_LEN: usize = 0x2A0;

const SIG_R: usize = 0x2A0;
const SIG_S: usize = 0x2E8;
const SIG_RESERVED: usize = 0x330;

/// A parsed attestation report. Every byte is kept (reserved ones privately), so
/// [`AttestationReport::to_bytes`] gives back exactly what [`AttestationReport::parse`] read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationReport {
    /// 0x000: report format version (2 on older firmware, 3+ adds CPUID fields).
    pub version: u32,
    /// 0x004: guest security version number.
    pub guest_svn: u32,
    /// 0x008: the guest policy.
    pub policy: GuestPolicy,
    /// 0x010: family id from the ID block.
    pub family_id: [u8; 16],
    /// 0x020: image id from the ID block.
    pub image_id: [u8; 16],
    /// 0x030: the VMPL that requested the report.
    pub vmpl: u32,
    /// 0x034: signature algorithm (1 = ECDSA P-384 with SHA-384).
    pub sig_algo: u32,
    /// 0x038: current platform TCB.
    pub current_tcb: TcbVersion,
    /// 0x040: platform information (SMT enabled, TSME enabled, …).
    pub platform_info: u64,
    /// 0x048: author-key / mask-chip / signing-key flags.
    pub key_info: KeyInfo,
    /// 0x050: the 64 bytes the guest asked to bind.
    pub report_data: ReportData,
    /// 0x090: the launch measurement.
    pub measurement: Measurement,
    /// 0x0C0: data the host provided at launch.
    pub host_data: [u8; 32],
    /// 0x0E0: SHA-384 of the ID key that signed the ID block.
    pub id_key_digest: [u8; 48],
    /// 0x110: SHA-384 of the author key that signed the ID key.
    pub author_key_digest: [u8; 48],
    /// 0x140: report id of this guest.
    pub report_id: [u8; 32],
    /// 0x160: report id of the guest's migration agent.
    pub report_id_ma: [u8; 32],
    /// 0x180: the TCB the VCEK was derived from (what the VCEK certificate states).
    pub reported_tcb: TcbVersion,
    /// 0x188: CPUID family (version 3+; zero before).
    pub cpuid_fam_id: u8,
    /// 0x189: CPUID model (version 3+).
    pub cpuid_mod_id: u8,
    /// 0x18A: CPUID stepping (version 3+).
    pub cpuid_step: u8,
    /// 0x1A0: the chip identifier (zero when MASK_CHIP_ID is set, e.g. VLEK reports).
    pub chip_id: [u8; 64],
    /// 0x1E0: committed TCB.
    pub committed_tcb: TcbVersion,
    /// 0x1E8: current firmware build.
    pub current_build: u8,
    /// 0x1E9: current firmware minor version.
    pub current_minor: u8,
    /// 0x1EA: current firmware major version.
    pub current_major: u8,
    /// 0x1EC: committed firmware build.
    pub committed_build: u8,
    /// 0x1ED: committed firmware minor version.
    pub committed_minor: u8,
    /// 0x1EE: committed firmware major version.
    pub committed_major: u8,
    /// 0x1F0: TCB at launch.
    pub launch_tcb: TcbVersion,
    /// 0x2A0: signature R, 72 bytes little-endian (48 significant, zero-extended).
    pub signature_r: [u8; 72],
    /// 0x2E8: signature S, 72 bytes little-endian (48 significant, zero-extended).
    pub signature_s: [u8; 72],
    untyped: Untyped,
}

/// Bytes the spec reserves (or this crate does not type), kept for the exact round trip.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Untyped {
    /// 0x04C.
    r_04c: [u8; 4],
    /// 0x18B..0x1A0.
    r_18b: [u8; 21],
    /// 0x1EB.
    r_1eb: u8,
    /// 0x1EF.
    r_1ef: u8,
    /// 0x1F8..0x2A0 (v5 mitigation vectors live here).
    r_1f8: [u8; 168],
    /// 0x330..0x4A0, the rest of the signature field.
    r_sig: [u8; 368],
    /// Untyped TCB bytes (Turin FMC SPL, reserved) of current, reported, committed, launch.
    tcb_extra: [[u8; 4]; 4],
}

/// Copies `N` bytes at `off`. Offsets are constants inside the fixed-size report, so the slice is
/// always in bounds.
fn take<const N: usize>(b: &[u8; REPORT_LEN], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[off..off + N]);
    out
}

fn u32_at(b: &[u8; REPORT_LEN], off: usize) -> u32 {
    u32::from_le_bytes(take(b, off))
}

fn u64_at(b: &[u8; REPORT_LEN], off: usize) -> u64 {
    u64::from_le_bytes(take(b, off))
}

impl AttestationReport {
    /// Parses a raw report. Any length other than 1184 bytes is `Malformed`; any content parses
    /// (semantic checks are the verifier's job), so this never panics.
    pub fn parse(bytes: &[u8]) -> Result<Self, VerifyError> {
        let b: &[u8; REPORT_LEN] = bytes.try_into().map_err(|_| {
            VerifyError::Malformed(format!(
                "SNP report is {} bytes, expected {REPORT_LEN}",
                bytes.len()
            ))
        })?;
        Ok(Self::from_array(b))
    }

    /// Decodes a buffer of the right size; infallible because every byte pattern is a report.
    fn from_array(b: &[u8; REPORT_LEN]) -> Self {
        let version = u32_at(b, 0x00);
        let cpuid_fam_id = b[0x188];
        let layout = TcbLayout::for_report(version, cpuid_fam_id);
        let tcb = |off| TcbVersion::decode(take(b, off), layout);
        let (current_tcb, x_cur) = tcb(0x38);
        let (reported_tcb, x_rep) = tcb(0x180);
        let (committed_tcb, x_com) = tcb(0x1E0);
        let (launch_tcb, x_lau) = tcb(0x1F0);
        Self {
            version,
            guest_svn: u32_at(b, 0x04),
            policy: GuestPolicy(u64_at(b, 0x08)),
            family_id: take(b, 0x10),
            image_id: take(b, 0x20),
            vmpl: u32_at(b, 0x30),
            sig_algo: u32_at(b, 0x34),
            current_tcb,
            platform_info: u64_at(b, 0x40),
            key_info: KeyInfo(u32_at(b, 0x48)),
            report_data: ReportData(take(b, 0x50)),
            measurement: Measurement(take(b, 0x90)),
            host_data: take(b, 0xC0),
            id_key_digest: take(b, 0xE0),
            author_key_digest: take(b, 0x110),
            report_id: take(b, 0x140),
            report_id_ma: take(b, 0x160),
            reported_tcb,
            cpuid_fam_id,
            cpuid_mod_id: b[0x189],
            cpuid_step: b[0x18A],
            chip_id: take(b, 0x1A0),
            committed_tcb,
            current_build: b[0x1E8],
            current_minor: b[0x1E9],
            current_major: b[0x1EA],
            committed_build: b[0x1EC],
            committed_minor: b[0x1ED],
            committed_major: b[0x1EE],
            launch_tcb,
            signature_r: take(b, SIG_R),
            signature_s: take(b, SIG_S),
            untyped: Untyped {
                r_04c: take(b, 0x4C),
                r_18b: take(b, 0x18B),
                r_1eb: b[0x1EB],
                r_1ef: b[0x1EF],
                r_1f8: take(b, 0x1F8),
                r_sig: take(b, SIG_RESERVED),
                tcb_extra: [x_cur, x_rep, x_com, x_lau],
            },
        }
    }

    /// A report with every field zero; the simulator fills it in.
    #[cfg(feature = "sim")]
    pub(crate) fn zeroed() -> Self {
        Self::from_array(&[0u8; REPORT_LEN])
    }

    /// Serializes back to the 1184-byte wire form.
    pub fn to_bytes(&self) -> [u8; REPORT_LEN] {
        let mut b = [0u8; REPORT_LEN];
        let mut put = |off: usize, src: &[u8]| b[off..off + src.len()].copy_from_slice(src);
        let layout = self.tcb_layout();
        let x = &self.untyped.tcb_extra;
        put(0x00, &self.version.to_le_bytes());
        put(0x04, &self.guest_svn.to_le_bytes());
        put(0x08, &self.policy.0.to_le_bytes());
        put(0x10, &self.family_id);
        put(0x20, &self.image_id);
        put(0x30, &self.vmpl.to_le_bytes());
        put(0x34, &self.sig_algo.to_le_bytes());
        put(0x38, &self.current_tcb.encode(x[0], layout));
        put(0x40, &self.platform_info.to_le_bytes());
        put(0x48, &self.key_info.0.to_le_bytes());
        put(0x4C, &self.untyped.r_04c);
        put(0x50, &self.report_data.0);
        put(0x90, &self.measurement.0);
        put(0xC0, &self.host_data);
        put(0xE0, &self.id_key_digest);
        put(0x110, &self.author_key_digest);
        put(0x140, &self.report_id);
        put(0x160, &self.report_id_ma);
        put(0x180, &self.reported_tcb.encode(x[1], layout));
        put(
            0x188,
            &[self.cpuid_fam_id, self.cpuid_mod_id, self.cpuid_step],
        );
        put(0x18B, &self.untyped.r_18b);
        put(0x1A0, &self.chip_id);
        put(0x1E0, &self.committed_tcb.encode(x[2], layout));
        put(
            0x1E8,
            &[
                self.current_build,
                self.current_minor,
                self.current_major,
                self.untyped.r_1eb,
                self.committed_build,
                self.committed_minor,
                self.committed_major,
                self.untyped.r_1ef,
            ],
        );
        put(0x1F0, &self.launch_tcb.encode(x[3], layout));
        put(0x1F8, &self.untyped.r_1f8);
        put(SIG_R, &self.signature_r);
        put(SIG_S, &self.signature_s);
        put(SIG_RESERVED, &self.untyped.r_sig);
        b
    }

    /// Checks what the ABI reserves, before anything else is trusted: the VERSION is one whose
    /// layout is known (2 to 5), GUEST_POLICY bit 17 is one and its bits 63:26 zero, SIGNER_INFO
    /// bits 31:5 are zero, and every reserved byte range of this version (including R and S's
    /// zero extension and 0x330..0x4A0, which the signature does not cover) is zero. See
    /// [`crate::snp::reserved_ranges`].
    pub fn check_reserved(&self) -> Result<(), VerifyError> {
        crate::snp::reserved::check(&self.to_bytes())
    }

    /// The bytes the signature covers: `0x000..0x2A0`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        self.to_bytes()[..SIGNED_LEN].to_vec()
    }

    /// The TCB byte layout this report uses.
    pub fn tcb_layout(&self) -> TcbLayout {
        TcbLayout::for_report(self.version, self.cpuid_fam_id)
    }

    /// Which key signed the report.
    pub fn signing_key(&self) -> SigningKey {
        self.key_info.signing_key()
    }

    /// Turin's FMC SPL of the reported TCB (`None` for Milan/Genoa layouts).
    pub fn reported_fmc(&self) -> Option<u8> {
        match self.tcb_layout() {
            TcbLayout::Turin => Some(self.untyped.tcb_extra[1][0]),
            TcbLayout::MilanGenoa => None,
        }
    }

    /// True when CHIP_ID is all zero (masked, or a VLEK report).
    pub fn chip_id_masked(&self) -> bool {
        self.chip_id.iter().all(|&b| b == 0)
    }
}
