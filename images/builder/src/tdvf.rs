//! The TDX firmware (TDVF, edk2's `OvmfPkg/IntelTdx`) as the TDX module and the firmware itself
//! measure it: its metadata (Intel's "TDX Virtual Firmware Design Guide", section 11: the
//! `TDVF` descriptor the OVMF GUIDed table points to, then one 32-byte entry per section), MRTD
//! (every page the VMM adds, and every 256-byte chunk of the sections marked `MR_EXTEND`, in the
//! TDX module's `TDH.MEM.PAGE.ADD` / `TDH.MR.EXTEND` encoding), and the configuration volume
//! (CFV: the UEFI variable store, with the Secure Boot keys) that TDVF hashes into RTMR0 before
//! reading it (`TdxHelperMeasureCfvImage`).
//!
//! The firmware is a pinned input (`ovmf-inteltdx` in images/inputs.lock), but every offset in
//! it is still checked: a wrong table gives an error, never a panic or a read outside the file.

use sha2::{Digest, Sha384};

/// TDVF section types (Design Guide table 11-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionType {
    /// Boot firmware volume: the code, measured into MRTD.
    Bfv,
    /// Configuration firmware volume: the variable store, measured into RTMR0 by TDVF.
    Cfv,
    /// The TD HOB page the VMM fills (memory map): in MRTD by address only.
    TdHob,
    /// Temporary memory the firmware needs before it accepts memory.
    TempMem,
    /// Permanent memory (TDVF 1.0 allows it; Debian's build has none).
    PermMem,
    /// The page OVMF reads the SEV/TDX kernel hashes from (not used by TDVF).
    Payload,
    /// Payload parameters.
    PayloadParam,
}

impl SectionType {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => SectionType::Bfv,
            1 => SectionType::Cfv,
            2 => SectionType::TdHob,
            3 => SectionType::TempMem,
            4 => SectionType::PermMem,
            5 => SectionType::Payload,
            6 => SectionType::PayloadParam,
            _ => return None,
        })
    }
}

/// `MR_EXTEND`: the VMM extends MRTD with the section's content, not only its addresses.
pub const ATTRIBUTE_MR_EXTEND: u32 = 0x1;
/// `PAGE_AUG`: the pages are added after launch (`TDH.MEM.PAGE.AUG`), so not in MRTD at all.
pub const ATTRIBUTE_PAGE_AUG: u32 = 0x2;

const PAGE: u64 = 0x1000;
/// `TDH.MR.EXTEND` measures 256 bytes at a time.
const CHUNK: u64 = 0x100;
/// `96b582de-1fb2-45f7-baea-a366c55a082d`, OVMF's GUIDed table footer, little-endian bytes.
const TABLE_FOOTER_GUID: [u8; 16] = guid_le(
    0x96b5_82de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
/// `e47a6535-984a-4798-865e-4685a7bf8ec2`, the entry holding the TDVF metadata offset.
const TDX_METADATA_GUID: [u8; 16] = guid_le(
    0xe47a_6535,
    0x984a,
    0x4798,
    [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
);
/// The footer sits this far before the end of the image (the reset vector follows it).
const FOOTER_END_FROM_END: usize = 32;

const fn guid_le(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// One TDVF section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Where its bytes start in the firmware file.
    pub data_offset: u32,
    /// How many bytes the file holds for it (0 for memory-only sections).
    pub raw_data_size: u32,
    /// Its guest-physical address (page aligned).
    pub memory_address: u64,
    /// Its size in guest memory (page aligned, at least `raw_data_size`).
    pub memory_data_size: u64,
    /// What it is.
    pub section_type: SectionType,
    /// [`ATTRIBUTE_MR_EXTEND`], [`ATTRIBUTE_PAGE_AUG`].
    pub attributes: u32,
}

/// Why a firmware is not a TDVF this module can measure.
#[derive(Debug, thiserror::Error)]
pub enum TdvfError {
    /// The GUIDed table at the end of the image is missing or inconsistent.
    #[error("no OVMF GUIDed table footer: {0}")]
    Table(&'static str),
    /// No entry gives the TDVF metadata offset: not a TDX build of OVMF.
    #[error("the OVMF table has no TDX metadata entry (e47a6535-…): not a TDX firmware")]
    NoMetadata,
    /// The descriptor is not `TDVF` version 1.
    #[error("TDVF descriptor: {0}")]
    Descriptor(String),
    /// A section entry breaks the Design Guide's rules.
    #[error("TDVF section {index}: {reason}")]
    Section {
        /// Its position in the metadata.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A parsed TDVF image.
#[derive(Clone, Debug)]
pub struct Tdvf<'a> {
    image: &'a [u8],
    /// The sections, in metadata order (the order the VMM adds them).
    pub sections: Vec<Section>,
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

impl<'a> Tdvf<'a> {
    /// Parses the metadata of `image` (the whole `.fd` file).
    pub fn parse(image: &'a [u8]) -> Result<Self, TdvfError> {
        let footer_end = image
            .len()
            .checked_sub(FOOTER_END_FROM_END)
            .ok_or(TdvfError::Table("image too short"))?;
        let guid_at = footer_end
            .checked_sub(16)
            .ok_or(TdvfError::Table("image too short"))?;
        if image.get(guid_at..footer_end) != Some(&TABLE_FOOTER_GUID[..]) {
            return Err(TdvfError::Table("footer GUID not found"));
        }
        let len_at = guid_at
            .checked_sub(2)
            .ok_or(TdvfError::Table("image too short"))?;
        let tables_len = usize::from(le_u16(image, len_at).ok_or(TdvfError::Table("length"))?);
        // The length counts the footer entry itself (GUID + length).
        let tables_start = footer_end
            .checked_sub(tables_len)
            .ok_or(TdvfError::Table("length beyond the image"))?;
        let tables = &image[tables_start..len_at];
        // Entries are read backwards: each ends with its length (u16) and GUID.
        let mut end = tables.len();
        let mut entry = None;
        while end >= 18 {
            let guid = &tables[end - 16..end];
            let len = usize::from(le_u16(tables, end - 18).ok_or(TdvfError::Table("entry"))?);
            if len < 18 || len > end {
                return Err(TdvfError::Table("entry length out of range"));
            }
            if guid == TDX_METADATA_GUID {
                entry = Some(&tables[end - len..end - 18]);
                break;
            }
            end -= len;
        }
        let entry = entry.ok_or(TdvfError::NoMetadata)?;
        let from_end = entry
            .len()
            .checked_sub(4)
            .and_then(|at| le_u32(entry, at))
            .ok_or_else(|| {
                TdvfError::Descriptor("metadata entry shorter than its offset".into())
            })?;
        let desc_at = image
            .len()
            .checked_sub(from_end as usize)
            .ok_or_else(|| TdvfError::Descriptor(format!("offset {from_end} beyond the image")))?;
        if image.get(desc_at..desc_at + 4) != Some(b"TDVF".as_slice()) {
            return Err(TdvfError::Descriptor("signature is not \"TDVF\"".into()));
        }
        let version =
            le_u32(image, desc_at + 8).ok_or_else(|| TdvfError::Descriptor("truncated".into()))?;
        if version != 1 {
            return Err(TdvfError::Descriptor(format!(
                "version {version}, only 1 is known"
            )));
        }
        let count =
            le_u32(image, desc_at + 12).ok_or_else(|| TdvfError::Descriptor("truncated".into()))?;
        let desc_len =
            le_u32(image, desc_at + 4).ok_or_else(|| TdvfError::Descriptor("truncated".into()))?;
        if u64::from(desc_len) != 16 + 32 * u64::from(count) {
            return Err(TdvfError::Descriptor(format!(
                "length {desc_len} does not hold {count} sections"
            )));
        }
        let mut sections = Vec::with_capacity(count as usize);
        for index in 0..count as usize {
            let at = desc_at + 16 + 32 * index;
            let bad = |reason: String| TdvfError::Section { index, reason };
            let field = |v: Option<u64>| v.ok_or_else(|| bad("truncated".into()));
            let raw_type = field(le_u32(image, at + 24).map(u64::from))? as u32;
            let s = Section {
                data_offset: field(le_u32(image, at).map(u64::from))? as u32,
                raw_data_size: field(le_u32(image, at + 4).map(u64::from))? as u32,
                memory_address: field(le_u64(image, at + 8))?,
                memory_data_size: field(le_u64(image, at + 16))?,
                section_type: SectionType::from_u32(raw_type)
                    .ok_or_else(|| bad(format!("unknown type {raw_type}")))?,
                attributes: field(le_u32(image, at + 28).map(u64::from))? as u32,
            };
            if !s.memory_address.is_multiple_of(PAGE) || !s.memory_data_size.is_multiple_of(PAGE) {
                return Err(bad("address or size not page aligned".into()));
            }
            if s.memory_data_size < u64::from(s.raw_data_size) {
                return Err(bad("more file bytes than memory".into()));
            }
            if s.memory_address.checked_add(s.memory_data_size).is_none() {
                return Err(bad("memory range overflows".into()));
            }
            let file_end = u64::from(s.data_offset) + u64::from(s.raw_data_size);
            if file_end > image.len() as u64 {
                return Err(bad(format!("file bytes end at {file_end}, past the image")));
            }
            if s.attributes & ATTRIBUTE_MR_EXTEND != 0
                && u64::from(s.raw_data_size) != s.memory_data_size
            {
                // Every measured chunk must come from the file.
                return Err(bad(
                    "MR_EXTEND section not backed by the file in full".into()
                ));
            }
            sections.push(s);
        }
        Ok(Tdvf { image, sections })
    }

    /// MRTD after the VMM added every section page by page, each page then its 256-byte chunks
    /// (what KVM's `KVM_TDX_INIT_MEM_REGION` does per page: `TDH.MEM.PAGE.ADD`, then
    /// `TDH.MR.EXTEND` when the section is measured), sections in metadata order (QEMU's).
    pub fn mrtd(&self) -> [u8; 48] {
        let mut h = Sha384::new();
        for s in &self.sections {
            let pages = s.memory_data_size / PAGE;
            for page in 0..pages {
                let gpa = s.memory_address + page * PAGE;
                if s.attributes & ATTRIBUTE_PAGE_AUG == 0 {
                    h.update(mr_block(b"MEM.PAGE.ADD", gpa));
                }
                if s.attributes & ATTRIBUTE_MR_EXTEND != 0 {
                    for chunk in 0..PAGE / CHUNK {
                        let offset = page * PAGE + chunk * CHUNK;
                        h.update(mr_block(b"MR.EXTEND", gpa + chunk * CHUNK));
                        // In range: parse() checked the section is file-backed in full.
                        let at = (u64::from(s.data_offset) + offset) as usize;
                        h.update(&self.image[at..at + CHUNK as usize]);
                    }
                }
            }
        }
        h.finalize().into()
    }

    /// The configuration volume's bytes (the variable store TDVF hashes into RTMR0).
    pub fn cfv(&self) -> Option<&'a [u8]> {
        let s = self
            .sections
            .iter()
            .find(|s| s.section_type == SectionType::Cfv)?;
        let start = s.data_offset as usize;
        self.image.get(start..start + s.raw_data_size as usize)
    }

    /// SHA-384 of the CFV: the digest of TDVF's `EV_EFI_PLATFORM_FIRMWARE_BLOB2` event in RTMR0.
    pub fn cfv_digest(&self) -> Option<[u8; 48]> {
        self.cfv().map(|c| Sha384::digest(c).into())
    }
}

/// The 128-byte buffer the TDX module hashes for one operation: the operation's name, zero
/// padded to 16 bytes, the GPA (little-endian), zeros.
fn mr_block(op: &[u8], gpa: u64) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[..op.len()].copy_from_slice(op);
    b[16..24].copy_from_slice(&gpa.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_little_endian_encoded() {
        assert_eq!(
            hex::encode(TABLE_FOOTER_GUID),
            "de82b596b21ff745baeaa366c55a082d"
        );
    }

    #[test]
    fn an_image_without_the_footer_is_refused() {
        let image = vec![0u8; 8192];
        assert!(matches!(Tdvf::parse(&image), Err(TdvfError::Table(_))));
        assert!(matches!(Tdvf::parse(&[]), Err(TdvfError::Table(_))));
    }
}
