//! Just enough PE/COFF (Microsoft's *PE Format* specification) to append sections to an EFI
//! application: the DOS header's `e_lfanew`, the COFF file header, the PE32+ optional header's
//! alignment and size fields, and the section table. Every offset read from the file is checked
//! against its length, so a truncated or hostile stub is refused, never indexed out of bounds.

/// `IMAGE_FILE_MACHINE_AMD64`.
pub const MACHINE_AMD64: u16 = 0x8664;
/// The optional header's magic for PE32+.
pub const MAGIC_PE32_PLUS: u16 = 0x20b;
/// `IMAGE_SUBSYSTEM_EFI_APPLICATION`.
pub const SUBSYSTEM_EFI_APPLICATION: u16 = 10;
/// Size of one section header.
pub const SECTION_HEADER_SIZE: usize = 40;
/// Size of the COFF file header.
const COFF_HEADER_SIZE: usize = 20;
/// The PE32+ optional header's fixed part, before the data directories.
const OPT_FIXED_SIZE: usize = 112;
/// Index of the certificate table (Authenticode signatures) among the data directories.
const DIR_SECURITY: usize = 4;

// Field offsets inside the optional header (PE32+).
/// `SizeOfInitializedData`.
pub const OPT_SIZE_OF_INITIALIZED_DATA: usize = 8;
/// `SectionAlignment`.
const OPT_SECTION_ALIGNMENT: usize = 32;
/// `FileAlignment`.
const OPT_FILE_ALIGNMENT: usize = 36;
/// `SizeOfImage`.
pub const OPT_SIZE_OF_IMAGE: usize = 56;
/// `SizeOfHeaders`.
const OPT_SIZE_OF_HEADERS: usize = 60;
/// `CheckSum`.
pub const OPT_CHECKSUM: usize = 64;
/// `Subsystem`.
const OPT_SUBSYSTEM: usize = 68;
/// `NumberOfRvaAndSizes`.
const OPT_NUMBER_OF_RVA_AND_SIZES: usize = 108;

/// Why a file is not a PE image we can extend.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeError {
    /// The file ends before a structure it must hold.
    #[error("truncated: {what} needs bytes {start}..{end}, the file has {len}")]
    Truncated {
        /// The structure.
        what: &'static str,
        /// Its first byte.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// The file's length.
        len: u64,
    },
    /// A magic number or signature is wrong.
    #[error("not a PE image: {what} is {found:#x}, expected {expected:#x}")]
    BadMagic {
        /// Which field.
        what: &'static str,
        /// What the file has.
        found: u64,
        /// What PE requires.
        expected: u64,
    },
    /// A PE image, but not one this code handles (another machine, PE32, not EFI…).
    #[error("unsupported PE image: {what} is {found:#x}, only {supported:#x} is handled")]
    Unsupported {
        /// Which field.
        what: &'static str,
        /// What the file has.
        found: u64,
        /// What is handled.
        supported: u64,
    },
    /// An alignment that is zero or not a power of two.
    #[error("{what} is {value:#x}, not a power of two")]
    BadAlignment {
        /// Which alignment.
        what: &'static str,
        /// Its value.
        value: u32,
    },
    /// A field whose value contradicts the rest of the file.
    #[error("malformed PE image: {0}")]
    Malformed(String),
}

/// One section header, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionHeader {
    /// The 8-byte name, NUL-padded.
    pub name: [u8; 8],
    /// `VirtualSize`.
    pub virtual_size: u32,
    /// `VirtualAddress` (an RVA).
    pub virtual_address: u32,
    /// `SizeOfRawData`.
    pub size_of_raw_data: u32,
    /// `PointerToRawData`.
    pub pointer_to_raw_data: u32,
    /// `Characteristics`.
    pub characteristics: u32,
}

impl SectionHeader {
    /// The name without its NUL padding (lossy for non-UTF-8 names).
    pub fn name_str(&self) -> String {
        let end = self.name.iter().position(|b| *b == 0).unwrap_or(8);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    /// The header's 40 bytes (relocations and line numbers zero: images have none).
    pub fn to_bytes(&self) -> [u8; SECTION_HEADER_SIZE] {
        let mut b = [0u8; SECTION_HEADER_SIZE];
        b[..8].copy_from_slice(&self.name);
        b[8..12].copy_from_slice(&self.virtual_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.virtual_address.to_le_bytes());
        b[16..20].copy_from_slice(&self.size_of_raw_data.to_le_bytes());
        b[20..24].copy_from_slice(&self.pointer_to_raw_data.to_le_bytes());
        b[36..40].copy_from_slice(&self.characteristics.to_le_bytes());
        b
    }
}

/// Where things are in a parsed PE32+ image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeLayout {
    /// Offset of the COFF file header (after the `PE\0\0` signature).
    pub coff_offset: usize,
    /// Offset of the optional header.
    pub opt_offset: usize,
    /// Offset of the section table.
    pub section_table_offset: usize,
    /// `SectionAlignment`.
    pub section_alignment: u32,
    /// `FileAlignment`.
    pub file_alignment: u32,
    /// `SizeOfHeaders`: the section table may grow up to here.
    pub size_of_headers: u32,
    /// `SizeOfImage`.
    pub size_of_image: u32,
    /// `SizeOfInitializedData`.
    pub size_of_initialized_data: u32,
    /// The sections, in table order.
    pub sections: Vec<SectionHeader>,
}

fn slice<'a>(
    data: &'a [u8],
    start: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], PeError> {
    let end = start.checked_add(len);
    match end {
        Some(end) if end <= data.len() => Ok(&data[start..end]),
        _ => Err(PeError::Truncated {
            what,
            start: start as u64,
            end: start as u64 + len as u64,
            len: data.len() as u64,
        }),
    }
}

fn u16_at(data: &[u8], at: usize, what: &'static str) -> Result<u16, PeError> {
    let b = slice(data, at, 2, what)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(data: &[u8], at: usize, what: &'static str) -> Result<u32, PeError> {
    let b = slice(data, at, 4, what)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn power_of_two(value: u32, what: &'static str) -> Result<u32, PeError> {
    if value.is_power_of_two() {
        Ok(value)
    } else {
        Err(PeError::BadAlignment { what, value })
    }
}

impl PeLayout {
    /// Parses an x86-64 PE32+ EFI application and checks that its headers and sections lie
    /// inside the file.
    pub fn parse(data: &[u8]) -> Result<Self, PeError> {
        let mz = u16_at(data, 0, "DOS header")?;
        if mz != 0x5a4d {
            return Err(PeError::BadMagic {
                what: "DOS signature",
                found: mz.into(),
                expected: 0x5a4d,
            });
        }
        let pe_offset = u32_at(data, 0x3c, "DOS header (e_lfanew)")? as usize;
        let sig = u32_at(data, pe_offset, "PE signature")?;
        if sig != 0x0000_4550 {
            return Err(PeError::BadMagic {
                what: "PE signature",
                found: sig.into(),
                expected: 0x4550,
            });
        }
        let coff_offset = pe_offset + 4;
        slice(data, coff_offset, COFF_HEADER_SIZE, "COFF header")?;
        let machine = u16_at(data, coff_offset, "COFF header")?;
        if machine != MACHINE_AMD64 {
            return Err(PeError::Unsupported {
                what: "COFF Machine",
                found: machine.into(),
                supported: MACHINE_AMD64.into(),
            });
        }
        let nsections = u16_at(data, coff_offset + 2, "COFF header")? as usize;
        let opt_size = u16_at(data, coff_offset + 16, "COFF header")? as usize;
        let opt_offset = coff_offset + COFF_HEADER_SIZE;
        let opt = slice(data, opt_offset, opt_size, "optional header")?;
        if opt_size < OPT_FIXED_SIZE {
            return Err(PeError::Malformed(format!(
                "SizeOfOptionalHeader {opt_size} is below the PE32+ minimum {OPT_FIXED_SIZE}"
            )));
        }
        let magic = u16_at(opt, 0, "optional header")?;
        if magic != MAGIC_PE32_PLUS {
            return Err(PeError::Unsupported {
                what: "optional header Magic",
                found: magic.into(),
                supported: MAGIC_PE32_PLUS.into(),
            });
        }
        let subsystem = u16_at(opt, OPT_SUBSYSTEM, "optional header")?;
        if subsystem != SUBSYSTEM_EFI_APPLICATION {
            return Err(PeError::Unsupported {
                what: "Subsystem",
                found: subsystem.into(),
                supported: SUBSYSTEM_EFI_APPLICATION.into(),
            });
        }
        let ndirs = u32_at(opt, OPT_NUMBER_OF_RVA_AND_SIZES, "optional header")? as usize;
        let dirs_fit = ndirs
            .checked_mul(8)
            .and_then(|n| n.checked_add(OPT_FIXED_SIZE))
            .is_some_and(|end| end <= opt_size);
        if !dirs_fit {
            return Err(PeError::Malformed(format!(
                "{ndirs} data directories do not fit SizeOfOptionalHeader {opt_size}"
            )));
        }
        if ndirs > DIR_SECURITY {
            let at = OPT_FIXED_SIZE + DIR_SECURITY * 8;
            let (rva, size) = (
                u32_at(opt, at, "optional header")?,
                u32_at(opt, at + 4, "optional header")?,
            );
            // Authenticode signatures sit at the end of the file and cover the whole image:
            // anything appended after them would be outside the signature, or break it.
            if rva != 0 || size != 0 {
                return Err(PeError::Malformed(format!(
                    "the image is signed (certificate table at {rva:#x}, {size} bytes): sign the \
                     UKI after building it, not the stub before"
                )));
            }
        }
        let section_alignment = power_of_two(
            u32_at(opt, OPT_SECTION_ALIGNMENT, "optional header")?,
            "SectionAlignment",
        )?;
        let file_alignment = power_of_two(
            u32_at(opt, OPT_FILE_ALIGNMENT, "optional header")?,
            "FileAlignment",
        )?;
        let size_of_headers = u32_at(opt, OPT_SIZE_OF_HEADERS, "optional header")?;
        let size_of_image = u32_at(opt, OPT_SIZE_OF_IMAGE, "optional header")?;
        let size_of_initialized_data =
            u32_at(opt, OPT_SIZE_OF_INITIALIZED_DATA, "optional header")?;
        let section_table_offset = opt_offset + opt_size;
        let table = slice(
            data,
            section_table_offset,
            nsections * SECTION_HEADER_SIZE,
            "section table",
        )?;
        if (section_table_offset + table.len()) as u64 > u64::from(size_of_headers) {
            return Err(PeError::Malformed(format!(
                "the section table ends at {:#x}, past SizeOfHeaders {size_of_headers:#x}",
                section_table_offset + table.len()
            )));
        }
        let mut sections = Vec::with_capacity(nsections);
        for raw in table.chunks_exact(SECTION_HEADER_SIZE) {
            let mut name = [0u8; 8];
            name.copy_from_slice(&raw[..8]);
            let s = SectionHeader {
                name,
                virtual_size: u32_at(raw, 8, "section header")?,
                virtual_address: u32_at(raw, 12, "section header")?,
                size_of_raw_data: u32_at(raw, 16, "section header")?,
                pointer_to_raw_data: u32_at(raw, 20, "section header")?,
                characteristics: u32_at(raw, 36, "section header")?,
            };
            let raw_end = u64::from(s.pointer_to_raw_data) + u64::from(s.size_of_raw_data);
            if s.size_of_raw_data != 0 && raw_end > data.len() as u64 {
                return Err(PeError::Truncated {
                    what: "section data",
                    start: s.pointer_to_raw_data.into(),
                    end: raw_end,
                    len: data.len() as u64,
                });
            }
            let vend =
                u64::from(s.virtual_address) + u64::from(s.virtual_size.max(s.size_of_raw_data));
            if vend > u64::from(size_of_image) {
                return Err(PeError::Malformed(format!(
                    "section {} ends at RVA {vend:#x}, past SizeOfImage {size_of_image:#x}",
                    s.name_str()
                )));
            }
            sections.push(s);
        }
        Ok(Self {
            coff_offset,
            opt_offset,
            section_table_offset,
            section_alignment,
            file_alignment,
            size_of_headers,
            size_of_image,
            size_of_initialized_data,
            sections,
        })
    }

    /// Offset of `NumberOfSections` in the file.
    pub fn number_of_sections_offset(&self) -> usize {
        self.coff_offset + 2
    }

    /// Room, in section headers, between the end of the section table and `SizeOfHeaders` (and
    /// the first section's data, should it start earlier).
    pub fn header_room(&self) -> usize {
        let table_end = self.section_table_offset + self.sections.len() * SECTION_HEADER_SIZE;
        let first_data = self
            .sections
            .iter()
            .filter(|s| s.size_of_raw_data != 0)
            .map(|s| s.pointer_to_raw_data as usize)
            .min()
            .unwrap_or(usize::MAX);
        let limit = (self.size_of_headers as usize).min(first_data);
        limit.saturating_sub(table_end) / SECTION_HEADER_SIZE
    }
}
