//! Azure's disk format: a fixed VHD, which is the raw disk followed by a 512-byte footer
//! (Microsoft "Virtual Hard Disk Image Format Specification", "Hard Disk Footer Format").
//! Azure wants the virtual size a whole number of MiB, and reads the footer's current size.
//!
//! Deterministic: the time stamp is 0 (2000-01-01) and the unique id is derived from the disk's
//! SHA-256, so the same `disk.raw` always gives the same VHD.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// The footer's size, and the only thing a fixed VHD adds to the raw disk.
pub const FOOTER_LEN: usize = 512;
/// Azure's alignment for the virtual size.
pub const AZURE_ALIGN: u64 = 1 << 20;
const COOKIE: &[u8; 8] = b"conectix";
/// Disk type 2: fixed.
const FIXED: u32 = 2;
/// The largest CHS geometry (65535 cylinders, 16 heads, 255 sectors per track). The spec's CHS
/// of a disk rounds its size down; with this geometry readers (Hyper-V's, QEMU's) take the
/// footer's current size as is, which is what `qemu-img -o subformat=fixed,force_size` writes
/// for Azure.
const MAX_GEOMETRY: u32 = (0xffff << 16) | (16 << 8) | 255;

/// Why a VHD could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum VhdError {
    /// Azure refuses a virtual size that is not a whole number of MiB.
    #[error("the disk is {0} bytes, not a whole number of MiB (Azure's rule for a VHD)")]
    NotAligned(u64),
    /// A footer is not a fixed-VHD footer.
    #[error("not a fixed VHD footer: {0}")]
    BadFooter(&'static str),
    /// Reading or writing a file failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// The fields a footer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// The disk's size in bytes (original and current).
    pub size: u64,
    /// The disk's unique id.
    pub unique_id: [u8; 16],
}

fn checksum(footer: &[u8; FOOTER_LEN]) -> u32 {
    // One's complement of the byte sum, the checksum field (bytes 64..68) counted as zero.
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |acc, (_, b)| acc.wrapping_add(u32::from(*b)));
    !sum
}

impl Footer {
    /// The 512 bytes.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut f = [0u8; FOOTER_LEN];
        f[0..8].copy_from_slice(COOKIE);
        f[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: "reserved" bit, always set
        f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // format version 1.0
        f[16..24].copy_from_slice(&u64::MAX.to_be_bytes()); // data offset: none (fixed disk)
                                                            // 24..28 time stamp: 0 (deterministic).
        f[28..32].copy_from_slice(b"cdvm"); // creator application
        f[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // creator version
        f[36..40].copy_from_slice(b"Wi2k"); // creator host OS
        f[40..48].copy_from_slice(&self.size.to_be_bytes()); // original size
        f[48..56].copy_from_slice(&self.size.to_be_bytes()); // current size
        f[56..60].copy_from_slice(&MAX_GEOMETRY.to_be_bytes());
        f[60..64].copy_from_slice(&FIXED.to_be_bytes());
        f[68..84].copy_from_slice(&self.unique_id);
        // 84: saved state 0; 85..512 reserved, zero.
        let sum = checksum(&f);
        f[64..68].copy_from_slice(&sum.to_be_bytes());
        f
    }

    /// Reads a footer back, checking cookie, checksum, type and format version.
    pub fn decode(f: &[u8; FOOTER_LEN]) -> Result<Self, VhdError> {
        let be32 = |at: usize| u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]]);
        let be64 = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&f[at..at + 8]);
            u64::from_be_bytes(b)
        };
        if &f[0..8] != COOKIE {
            return Err(VhdError::BadFooter("no conectix cookie"));
        }
        if be32(64) != checksum(f) {
            return Err(VhdError::BadFooter("checksum mismatch"));
        }
        if be32(12) != 0x0001_0000 {
            return Err(VhdError::BadFooter("unknown format version"));
        }
        if be32(60) != FIXED || be64(16) != u64::MAX {
            return Err(VhdError::BadFooter("not a fixed disk"));
        }
        let mut unique_id = [0u8; 16];
        unique_id.copy_from_slice(&f[68..84]);
        Ok(Self {
            size: be64(48),
            unique_id,
        })
    }
}

/// A unique id derived from the disk's SHA-256, with RFC 4122 version 4 / variant bits so tools
/// that show it as a GUID see a well-formed one.
pub fn unique_id(disk_sha256: &[u8; 32]) -> [u8; 16] {
    let h = Sha256::new()
        .chain_update(b"cdvm vhd unique id\0")
        .chain_update(disk_sha256)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&h[..16]);
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VhdError + '_ {
    move |source| VhdError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `out` as the fixed VHD of the raw disk at `raw`: its bytes, then the footer. Returns
/// the footer written.
pub fn write_file(raw: &Path, out: &Path) -> Result<Footer, VhdError> {
    let size = std::fs::metadata(raw).map_err(io(raw))?.len();
    if size == 0 || !size.is_multiple_of(AZURE_ALIGN) {
        return Err(VhdError::NotAligned(size));
    }
    let mut input = std::fs::File::open(raw).map_err(io(raw))?;
    let mut output = std::io::BufWriter::new(std::fs::File::create(out).map_err(io(out))?);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).map_err(io(raw))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(io(out))?;
    }
    let footer = Footer {
        size,
        unique_id: unique_id(&hash.finalize().into()),
    };
    output.write_all(&footer.encode()).map_err(io(out))?;
    output.flush().map_err(io(out))?;
    Ok(footer)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_tamper_twins() {
        let f = Footer {
            size: 3 << 20,
            unique_id: unique_id(&[7; 32]),
        };
        let bytes = f.encode();
        assert_eq!(Footer::decode(&bytes).unwrap(), f);
        let mut bad = bytes;
        bad[50] ^= 1; // the size, without fixing the checksum
        assert!(matches!(
            Footer::decode(&bad),
            Err(VhdError::BadFooter("checksum mismatch"))
        ));
        let mut bad = bytes;
        bad[0] = b'C';
        assert!(Footer::decode(&bad).is_err());
    }

    #[test]
    fn the_id_is_a_v4_style_guid_and_follows_the_disk() {
        let a = unique_id(&[1; 32]);
        assert_eq!(a[6] >> 4, 4);
        assert_eq!(a[8] >> 6, 2);
        assert_ne!(a, unique_id(&[2; 32]));
    }
}
