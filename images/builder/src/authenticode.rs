//! The Authenticode digest of a PE/COFF image: what UEFI firmware measures into PCR 4 when it
//! starts an EFI application (`EV_EFI_BOOT_SERVICES_APPLICATION`), and what a Secure Boot
//! signature signs.
//!
//! Microsoft's "Windows Authenticode Portable Executable Signature Format": the headers without
//! the checksum field and the certificate-table directory entry, then every section's raw data in
//! file order, then whatever follows the last section except the attached certificates. edk2's
//! `MeasurePeImageAndExtend` (the code OVMF and Hyper-V's UEFI measure with) follows the same
//! steps.

use sha2::digest::Output;
use sha2::{Digest, Sha256, Sha384};

/// Why a file has no Authenticode digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthenticodeError {
    /// The file ends before a structure the format requires.
    #[error("not a PE image: it ends inside the {what}")]
    Truncated {
        /// The structure cut short.
        what: &'static str,
    },
    /// A magic number is wrong.
    #[error("not a PE image: bad {what} magic")]
    BadMagic {
        /// Which magic.
        what: &'static str,
    },
    /// A header field points outside the file or overlaps what it must not.
    #[error("malformed PE image: {0}")]
    Malformed(&'static str),
}

/// Where the parts of the headers that Authenticode skips are.
struct Layout {
    checksum: usize,
    cert_dir: usize,
    size_of_headers: usize,
    cert_table: Option<(usize, usize)>,
    /// `(PointerToRawData, SizeOfRawData)` of each section with raw data, in file order.
    sections: Vec<(usize, usize)>,
}

fn u16_at(b: &[u8], at: usize, what: &'static str) -> Result<u16, AuthenticodeError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(AuthenticodeError::Truncated { what })
}

fn u32_at(b: &[u8], at: usize, what: &'static str) -> Result<u32, AuthenticodeError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(AuthenticodeError::Truncated { what })
}

fn usize_of(v: u32) -> usize {
    // u32 always fits: the crate builds for 64-bit hosts only (x86-64 images).
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn layout(pe: &[u8]) -> Result<Layout, AuthenticodeError> {
    if u16_at(pe, 0, "DOS header")? != 0x5a4d {
        return Err(AuthenticodeError::BadMagic { what: "DOS (MZ)" });
    }
    let nt = usize_of(u32_at(pe, 0x3c, "DOS header")?);
    if pe.get(nt..nt + 4) != Some(b"PE\0\0".as_slice()) {
        return Err(AuthenticodeError::BadMagic {
            what: "PE signature",
        });
    }
    let coff = nt + 4;
    let sections = usize::from(u16_at(pe, coff + 2, "COFF header")?);
    let opt_size = usize::from(u16_at(pe, coff + 16, "COFF header")?);
    let opt = coff + 20;
    let (dirs, count_at) = match u16_at(pe, opt, "optional header")? {
        0x20b => (opt + 112, opt + 108),
        0x10b => (opt + 96, opt + 92),
        _ => {
            return Err(AuthenticodeError::BadMagic {
                what: "optional header",
            })
        }
    };
    let size_of_headers = usize_of(u32_at(pe, opt + 60, "optional header")?);
    let dir_count = u32_at(pe, count_at, "optional header")?;
    if dir_count < 5 {
        return Err(AuthenticodeError::Malformed(
            "no certificate-table directory entry",
        ));
    }
    let cert_dir = dirs + 4 * 8;
    let cert_at = usize_of(u32_at(pe, cert_dir, "data directories")?);
    let cert_len = usize_of(u32_at(pe, cert_dir + 4, "data directories")?);
    let table = opt + opt_size;
    if cert_dir + 8 > table || table > size_of_headers || size_of_headers > pe.len() {
        return Err(AuthenticodeError::Malformed(
            "headers overlap or run past the file",
        ));
    }
    let cert_table = if cert_len == 0 {
        None
    } else {
        match cert_at.checked_add(cert_len) {
            Some(end) if end == pe.len() && cert_at >= size_of_headers => Some((cert_at, cert_len)),
            _ => {
                return Err(AuthenticodeError::Malformed(
                    "the certificate table is not at the end of the file",
                ))
            }
        }
    };
    let mut raw = Vec::with_capacity(sections);
    for i in 0..sections {
        let at = table + i * 40;
        if at + 40 > size_of_headers {
            return Err(AuthenticodeError::Truncated {
                what: "section table",
            });
        }
        let size = usize_of(u32_at(pe, at + 16, "section table")?);
        let ptr = usize_of(u32_at(pe, at + 20, "section table")?);
        if size == 0 {
            continue;
        }
        match ptr.checked_add(size) {
            Some(end) if end <= pe.len() && ptr >= size_of_headers => raw.push((ptr, size)),
            _ => return Err(AuthenticodeError::Malformed("a section runs past the file")),
        }
    }
    raw.sort_unstable();
    Ok(Layout {
        checksum: opt + 64,
        cert_dir,
        size_of_headers,
        cert_table,
        sections: raw,
    })
}

/// The SHA-256 Authenticode digest of `pe` (a TPM's SHA-256 bank, Secure Boot signatures).
pub fn sha256(pe: &[u8]) -> Result<[u8; 32], AuthenticodeError> {
    digest::<Sha256>(pe).map(Into::into)
}

/// The SHA-384 Authenticode digest of `pe` (what TDX firmware logs and extends into an RTMR).
pub fn sha384(pe: &[u8]) -> Result<[u8; 48], AuthenticodeError> {
    digest::<Sha384>(pe).map(Into::into)
}

/// The Authenticode digest of `pe` with hash `D`.
pub fn digest<D: Digest>(pe: &[u8]) -> Result<Output<D>, AuthenticodeError> {
    let l = layout(pe)?;
    let mut h = D::new();
    h.update(&pe[..l.checksum]);
    h.update(&pe[l.checksum + 4..l.cert_dir]);
    h.update(&pe[l.cert_dir + 8..l.size_of_headers]);
    let mut hashed = l.size_of_headers;
    for (ptr, size) in &l.sections {
        h.update(&pe[*ptr..*ptr + *size]);
        hashed += size;
    }
    // Whatever follows the sections, up to the attached certificates (edk2: ImageSize -
    // CertSize - SumOfBytesHashed).
    let end = l.cert_table.map_or(pe.len(), |(at, _)| at);
    if end > hashed {
        h.update(&pe[hashed..end]);
    }
    Ok(h.finalize())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refuses_what_is_not_a_pe_image() {
        assert_eq!(
            sha256(b"MZ"),
            Err(AuthenticodeError::Truncated { what: "DOS header" })
        );
        assert_eq!(
            sha256(&[0u8; 128]),
            Err(AuthenticodeError::BadMagic { what: "DOS (MZ)" })
        );
        let mut dos = vec![0u8; 128];
        dos[..2].copy_from_slice(b"MZ");
        dos[0x3c] = 64;
        assert_eq!(
            sha256(&dos),
            Err(AuthenticodeError::BadMagic {
                what: "PE signature"
            })
        );
        // e_lfanew pointing far past the end.
        dos[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(sha256(&dos).is_err());
    }
}
