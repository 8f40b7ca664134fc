//! Typed fields of the SNP attestation report: guest policy, TCB versions, signing-key flags.
//! Bit positions follow the AMD SEV-SNP ABI spec (policy: Table 9; TCB_VERSION: Table 3;
//! report flags at 0x48: Table 22).

use std::fmt;

/// The guest policy the hypervisor launched the guest with (report offset 0x08).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GuestPolicy(pub u64);

impl GuestPolicy {
    /// Bit 16: simultaneous multithreading may be enabled.
    pub const SMT: u64 = 1 << 16;
    /// Bit 17: reserved, must be one.
    pub const RESERVED_ONE: u64 = 1 << 17;
    /// Bit 18: a migration agent may be associated with the guest.
    pub const MIGRATE_MA: u64 = 1 << 18;
    /// Bit 19: the host may debug the guest (read and write its memory).
    pub const DEBUG: u64 = 1 << 19;
    /// Bit 20: the guest may run on a single socket only.
    pub const SINGLE_SOCKET: u64 = 1 << 20;

    /// The raw 64-bit policy.
    pub fn bits(&self) -> u64 {
        self.0
    }
    /// Debugging allowed: the host can read guest memory, so there is no confidentiality.
    pub fn debug(&self) -> bool {
        self.0 & Self::DEBUG != 0
    }
    /// A migration agent may be associated (it could export guest state).
    pub fn migrate_ma(&self) -> bool {
        self.0 & Self::MIGRATE_MA != 0
    }
    /// SMT allowed.
    pub fn smt(&self) -> bool {
        self.0 & Self::SMT != 0
    }
    /// Single-socket only.
    pub fn single_socket(&self) -> bool {
        self.0 & Self::SINGLE_SOCKET != 0
    }
    /// Minimum ABI major version the guest requires (bits 15:8).
    pub fn abi_major(&self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// Minimum ABI minor version the guest requires (bits 7:0).
    pub fn abi_minor(&self) -> u8 {
        self.0 as u8
    }
}

/// How the 8 bytes of a TCB_VERSION are laid out; it changed with Turin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcbLayout {
    /// Milan and Genoa: `[0]`=boot loader `[1]`=TEE `[2..6]` reserved `[6]`=SNP `[7]`=microcode.
    MilanGenoa,
    /// Turin: `[0]`=FMC `[1]`=boot loader `[2]`=TEE `[3]`=SNP `[4..7]` reserved `[7]`=microcode.
    Turin,
}

impl TcbLayout {
    /// The layout a report uses: Turin (CPUID family 1Ah) only exists with report version 3+.
    pub fn for_report(version: u32, cpuid_fam_id: u8) -> Self {
        if version >= 3 && cpuid_fam_id == 0x1A {
            TcbLayout::Turin
        } else {
            TcbLayout::MilanGenoa
        }
    }
}

/// The security patch levels (SPL) of the platform's TCB components.
///
/// Only the four components every generation has are typed; Turin's FMC SPL and the reserved
/// bytes are kept by [`crate::snp::AttestationReport`] so that reports round-trip exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcbVersion {
    /// PSP boot loader SPL.
    pub bootloader: u8,
    /// PSP OS (TEE) SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// CPU microcode SPL.
    pub microcode: u8,
}

impl TcbVersion {
    /// A TCB version from its four components.
    pub const fn new(bootloader: u8, tee: u8, snp: u8, microcode: u8) -> Self {
        Self {
            bootloader,
            tee,
            snp,
            microcode,
        }
    }

    /// Splits 8 raw bytes into the typed components and the 4 untyped bytes (reserved bytes, and
    /// Turin's FMC SPL first), so that [`Self::encode`] can rebuild the exact input.
    pub(crate) fn decode(raw: [u8; 8], layout: TcbLayout) -> (Self, [u8; 4]) {
        match layout {
            TcbLayout::MilanGenoa => (
                Self::new(raw[0], raw[1], raw[6], raw[7]),
                [raw[2], raw[3], raw[4], raw[5]],
            ),
            TcbLayout::Turin => (
                Self::new(raw[1], raw[2], raw[3], raw[7]),
                [raw[0], raw[4], raw[5], raw[6]],
            ),
        }
    }

    /// Inverse of [`Self::decode`].
    pub(crate) fn encode(&self, extra: [u8; 4], layout: TcbLayout) -> [u8; 8] {
        let t = self;
        match layout {
            TcbLayout::MilanGenoa => [
                t.bootloader,
                t.tee,
                extra[0],
                extra[1],
                extra[2],
                extra[3],
                t.snp,
                t.microcode,
            ],
            TcbLayout::Turin => [
                extra[0],
                t.bootloader,
                t.tee,
                t.snp,
                extra[1],
                extra[2],
                extra[3],
                t.microcode,
            ],
        }
    }
}

impl fmt::Display for TcbVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bl={} tee={} snp={} ucode={}",
            self.bootloader, self.tee, self.snp, self.microcode
        )
    }
}

/// Which key signed the report (bits 4:2 of the flags word at 0x48).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningKey {
    /// The chip's Versioned Chip Endorsement Key.
    Vcek,
    /// A Versioned Loaded Endorsement Key (a cloud provider's key, e.g. AWS).
    Vlek,
    /// No key: the report is unsigned.
    None,
    /// A value the spec reserves.
    Reserved(u8),
}

impl SigningKey {
    /// Short name (`VCEK`, `VLEK`, …).
    pub fn name(&self) -> String {
        match self {
            SigningKey::Vcek => "VCEK".into(),
            SigningKey::Vlek => "VLEK".into(),
            SigningKey::None => "none".into(),
            SigningKey::Reserved(v) => format!("reserved({v})"),
        }
    }
}

/// The flags word at 0x48: AUTHOR_KEY_EN, MASK_CHIP_KEY, SIGNING_KEY.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyInfo(pub u32);

impl KeyInfo {
    /// Bit 0: the author key digest is present.
    pub fn author_key_en(&self) -> bool {
        self.0 & 1 != 0
    }
    /// Bit 1: the chip key is masked (CHIP_ID is zero).
    pub fn mask_chip_key(&self) -> bool {
        self.0 & 2 != 0
    }
    /// Bits 4:2: the signing key.
    pub fn signing_key(&self) -> SigningKey {
        match ((self.0 >> 2) & 0b111) as u8 {
            0 => SigningKey::Vcek,
            1 => SigningKey::Vlek,
            7 => SigningKey::None,
            v => SigningKey::Reserved(v),
        }
    }
}
