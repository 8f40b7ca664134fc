//! The Unified Kernel Image: Debian's systemd-stub (`linuxx64.efi.stub`, package
//! `systemd-boot-efi`) with the os-release, the command line, the initrd and the kernel appended
//! as PE sections, the way systemd's `ukify` builds one. The firmware starts it as an ordinary EFI
//! application (`EFI/BOOT/BOOTX64.EFI`); the stub finds its sections by name in its own loaded
//! image and hands the kernel the command line and the initrd (systemd 252's `stub.c`).
//!
//! Each section goes after everything the stub has (its sections, and the COFF symbol table it
//! keeps at the end of the file): its file offset at the next `FileAlignment` boundary, its RVA at
//! the next `SectionAlignment` boundary and at least a 4 KiB page, so that no two sections share
//! a page. The big parts (kernel and initrd, about 200 MB with the models) are streamed from
//! their files, never held in memory.

use std::io::{Read, Write};
use std::path::Path;

use crate::deb::{self, io_err, DebError, Sha256Writer};
use crate::pe::{self, PeError, PeLayout, SectionHeader, SECTION_HEADER_SIZE};

/// The stub's path inside the package.
pub const STUB_IN_DEB: &str = "usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// `IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ`: what ukify gives every section it adds.
pub const SECTION_FLAGS: u32 = 0x0000_0040 | 0x4000_0000;
/// The smallest RVA alignment of an added section (one page).
pub const MIN_SECTION_VMA_ALIGN: u32 = 4096;
/// The section names, in the order they are appended (ukify's: the kernel last).
pub const SECTION_ORDER: [&str; 4] = [".osrel", ".cmdline", ".initrd", ".linux"];

/// Why a UKI could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UkiError {
    /// The stub is not a PE image we can extend.
    #[error("the EFI stub is refused")]
    Stub {
        /// What is wrong with it.
        #[source]
        source: PeError,
    },
    /// The stub's headers have no room for the new section headers.
    #[error("the EFI stub has room for {room} more section headers before SizeOfHeaders, {needed} are needed")]
    NoHeaderRoom {
        /// Free section-header slots.
        room: usize,
        /// Sections to add.
        needed: usize,
    },
    /// The stub already has a section of that name (it is a UKI, not a stub).
    #[error("the EFI stub already has a {name} section (is it already a UKI?)")]
    DuplicateSection {
        /// The section.
        name: String,
    },
    /// The image would not fit PE's 32-bit offsets and sizes.
    #[error("section {name} ({size} bytes) would end past PE's 4 GiB limit")]
    TooLarge {
        /// The section.
        name: String,
        /// Its size.
        size: u64,
    },
    /// Reading an input or writing the output failed.
    #[error(transparent)]
    Io(#[from] DebError),
    /// An input file changed size while it was copied.
    #[error("{path} changed while it was copied ({expected} bytes expected, {actual} read)")]
    Changed {
        /// The file.
        path: String,
        /// Its size when the layout was made.
        expected: u64,
        /// What was read.
        actual: u64,
    },
}

/// What goes into one added section.
#[derive(Clone, Copy, Debug)]
pub enum Content<'a> {
    /// Bytes in memory (the os-release, the command line).
    Bytes(&'a [u8]),
    /// A file, streamed (the kernel, the initrd).
    File(&'a Path),
}

impl Content<'_> {
    fn len(&self) -> Result<u64, UkiError> {
        Ok(match self {
            Content::Bytes(b) => b.len() as u64,
            Content::File(p) => std::fs::metadata(p).map_err(io_err(p))?.len(),
        })
    }
}

/// One added section: where it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Its name (`.linux`…).
    pub name: String,
    /// Its RVA.
    pub virtual_address: u32,
    /// Its content's exact size (`VirtualSize`).
    pub virtual_size: u32,
    /// Its file offset (`PointerToRawData`).
    pub file_offset: u32,
    /// Its size in the file, rounded up to `FileAlignment` (`SizeOfRawData`).
    pub size_of_raw_data: u32,
}

/// The new headers and where every added section goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UkiLayout {
    /// The stub with its headers updated, zero-padded up to the first added section.
    pub head: Vec<u8>,
    /// The added sections, in file order.
    pub sections: Vec<Placed>,
    /// The UKI's size in bytes.
    pub size: u64,
    /// The new `SizeOfImage`.
    pub size_of_image: u32,
}

fn align_up(value: u64, align: u32) -> Option<u64> {
    let a = u64::from(align);
    value.checked_add(a - 1).map(|v| v / a * a)
}

fn to_u32(value: u64, name: &str, size: u64) -> Result<u32, UkiError> {
    u32::try_from(value).map_err(|_| UkiError::TooLarge {
        name: name.to_string(),
        size,
    })
}

/// Lays out `sections` (name and size) after the stub's own content and returns the updated
/// headers: `NumberOfSections`, `SizeOfImage`, `SizeOfInitializedData`, the new section headers,
/// and `CheckSum` zeroed (EFI loaders do not check it; zero is deterministic and what a later
/// signing tool recomputes anyway).
pub fn layout(stub: &[u8], sections: &[(&str, u64)]) -> Result<UkiLayout, UkiError> {
    let pe = PeLayout::parse(stub).map_err(|source| UkiError::Stub { source })?;
    for (name, _) in sections {
        if pe.sections.iter().any(|s| s.name_str() == *name) {
            return Err(UkiError::DuplicateSection {
                name: name.to_string(),
            });
        }
    }
    let room = pe.header_room();
    if room < sections.len() {
        return Err(UkiError::NoHeaderRoom {
            room,
            needed: sections.len(),
        });
    }
    let vma_align = pe.section_alignment.max(MIN_SECTION_VMA_ALIGN);
    // Past every byte of the stub (a symbol table may follow its last section) and every RVA.
    let mut file_end = pe
        .sections
        .iter()
        .map(|s| u64::from(s.pointer_to_raw_data) + u64::from(s.size_of_raw_data))
        .fold(stub.len() as u64, u64::max);
    let mut vma_end = pe
        .sections
        .iter()
        .map(|s| u64::from(s.virtual_address) + u64::from(s.virtual_size.max(s.size_of_raw_data)))
        .fold(u64::from(pe.size_of_headers), u64::max);
    let mut placed = Vec::with_capacity(sections.len());
    let mut init_data = u64::from(pe.size_of_initialized_data);
    for (name, size) in sections {
        let too_large = || UkiError::TooLarge {
            name: name.to_string(),
            size: *size,
        };
        let file_offset = align_up(file_end, pe.file_alignment).ok_or_else(too_large)?;
        let raw = align_up(*size, pe.file_alignment).ok_or_else(too_large)?;
        let vma = align_up(vma_end, vma_align).ok_or_else(too_large)?;
        let p = Placed {
            name: name.to_string(),
            virtual_address: to_u32(vma, name, *size)?,
            virtual_size: to_u32(*size, name, *size)?,
            file_offset: to_u32(file_offset, name, *size)?,
            size_of_raw_data: to_u32(raw, name, *size)?,
        };
        file_end = file_offset.checked_add(raw).ok_or_else(too_large)?;
        vma_end = vma.checked_add(*size).ok_or_else(too_large)?;
        init_data = init_data.checked_add(raw).ok_or_else(too_large)?;
        to_u32(file_end, name, *size)?;
        placed.push(p);
    }
    let last = sections.last().map_or("(none)", |(n, _)| n);
    let size_of_image = to_u32(
        align_up(vma_end, pe.section_alignment).unwrap_or(u64::MAX),
        last,
        vma_end,
    )?;
    let init_data = to_u32(init_data, last, init_data)?;

    let head_len = placed
        .first()
        .map_or(stub.len(), |p| p.file_offset as usize);
    let mut head = stub.to_vec();
    head.resize(head_len, 0);
    let nsections =
        u16::try_from(pe.sections.len() + placed.len()).map_err(|_| UkiError::NoHeaderRoom {
            room,
            needed: placed.len(),
        })?;
    let at = pe.number_of_sections_offset();
    head[at..at + 2].copy_from_slice(&nsections.to_le_bytes());
    let opt = pe.opt_offset;
    head[opt + pe::OPT_SIZE_OF_IMAGE..][..4].copy_from_slice(&size_of_image.to_le_bytes());
    head[opt + pe::OPT_SIZE_OF_INITIALIZED_DATA..][..4].copy_from_slice(&init_data.to_le_bytes());
    head[opt + pe::OPT_CHECKSUM..][..4].copy_from_slice(&0u32.to_le_bytes());
    let mut at = pe.section_table_offset + pe.sections.len() * SECTION_HEADER_SIZE;
    for p in &placed {
        let mut name = [0u8; 8];
        let bytes = p.name.as_bytes();
        name[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
        let header = SectionHeader {
            name,
            virtual_size: p.virtual_size,
            virtual_address: p.virtual_address,
            size_of_raw_data: p.size_of_raw_data,
            pointer_to_raw_data: p.file_offset,
            characteristics: SECTION_FLAGS,
        };
        head[at..at + SECTION_HEADER_SIZE].copy_from_slice(&header.to_bytes());
        at += SECTION_HEADER_SIZE;
    }
    Ok(UkiLayout {
        head,
        sections: placed,
        size: file_end,
        size_of_image,
    })
}

/// The os-release text in `.osrel` (systemd-boot shows `PRETTY_NAME`).
pub fn os_release(version: &str) -> String {
    format!(
        "NAME=\"ConfidentialDVM\"\nID=confidentialdvm\nVERSION_ID={version}\n\
         PRETTY_NAME=\"ConfidentialDVM guest {version}\"\n"
    )
}

/// What a written UKI is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UkiWritten {
    /// The layout it was written with.
    pub layout: UkiLayout,
    /// Hex SHA-256 of the bytes written.
    pub sha256: String,
    /// Bytes written.
    pub size: u64,
}

/// Writes the UKI of `stub` and `parts` (name, content) to `out`, streaming file contents.
pub fn write<W: Write>(
    stub: &[u8],
    parts: &[(&str, Content<'_>)],
    out: W,
    out_name: &Path,
) -> Result<(W, UkiWritten), UkiError> {
    let sizes = parts
        .iter()
        .map(|(n, c)| Ok((*n, c.len()?)))
        .collect::<Result<Vec<_>, UkiError>>()?;
    let layout = layout(stub, &sizes)?;
    let mut out = Sha256Writer::new(out);
    let werr = |e| DebError::Io {
        path: out_name.display().to_string(),
        source: e,
    };
    out.write_all(&layout.head).map_err(werr)?;
    let mut written = layout.head.len() as u64;
    for ((_, content), placed) in parts.iter().zip(&layout.sections) {
        let pad = u64::from(placed.file_offset) - written;
        std::io::copy(&mut std::io::repeat(0).take(pad), &mut out).map_err(werr)?;
        let n = match content {
            Content::Bytes(b) => {
                out.write_all(b).map_err(werr)?;
                b.len() as u64
            }
            Content::File(p) => {
                let f = std::fs::File::open(p).map_err(io_err(p))?;
                let mut limited = f.take(u64::from(placed.virtual_size) + 1);
                let n = std::io::copy(&mut limited, &mut out).map_err(io_err(p))?;
                if n != u64::from(placed.virtual_size) {
                    return Err(UkiError::Changed {
                        path: p.display().to_string(),
                        expected: placed.virtual_size.into(),
                        actual: n,
                    });
                }
                n
            }
        };
        let tail = u64::from(placed.size_of_raw_data) - n;
        std::io::copy(&mut std::io::repeat(0).take(tail), &mut out).map_err(werr)?;
        written = u64::from(placed.file_offset) + u64::from(placed.size_of_raw_data);
    }
    let (inner, sha256, size) = out.finish();
    Ok((
        inner,
        UkiWritten {
            layout,
            sha256,
            size,
        },
    ))
}

/// The UKI's inputs.
#[derive(Clone, Copy, Debug)]
pub struct UkiInputs<'a> {
    /// The systemd-stub EFI binary.
    pub stub: &'a [u8],
    /// The `.osrel` text ([`os_release`]).
    pub os_release: &'a str,
    /// The kernel command line, exactly as the direct boot passes it. systemd-stub 252 copies
    /// `VirtualSize` bytes and adds the NUL itself, so none is stored (as ukify does).
    pub cmdline: &'a str,
    /// The kernel (bzImage).
    pub kernel: &'a Path,
    /// The initrd.
    pub initrd: &'a Path,
}

/// Writes the UKI to `path` (through a temporary file in the same folder and a rename).
pub fn write_file(inputs: &UkiInputs<'_>, path: &Path) -> Result<UkiWritten, UkiError> {
    let parts: [(&str, Content<'_>); 4] = [
        (
            SECTION_ORDER[0],
            Content::Bytes(inputs.os_release.as_bytes()),
        ),
        (SECTION_ORDER[1], Content::Bytes(inputs.cmdline.as_bytes())),
        (SECTION_ORDER[2], Content::File(inputs.initrd)),
        (SECTION_ORDER[3], Content::File(inputs.kernel)),
    ];
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    let buf = std::io::BufWriter::with_capacity(1 << 20, tmp);
    let (buf, written) = write(inputs.stub, &parts, buf, path)?;
    let tmp = buf.into_inner().map_err(|e| io_err(path)(e.into_error()))?;
    deb::persist(tmp, path)?;
    Ok(written)
}

/// Checks the stub package against its pinned SHA-256 (the `efi-stub` entry of
/// `images/inputs.lock`) and returns the stub's bytes.
pub fn extract_stub(stub_deb: &Path, sha256: &str, work: &Path) -> Result<Vec<u8>, UkiError> {
    deb::verify_sha256(stub_deb, sha256)?;
    let dest = work.join("stub");
    deb::extract(stub_deb, &dest)?;
    let path = dest.join(STUB_IN_DEB);
    Ok(std::fs::read(&path).map_err(io_err(&path))?)
}
