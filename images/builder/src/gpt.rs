//! GUID Partition Table (UEFI specification, chapter 5 "GUID Partition Table (GPT) Disk
//! Layout"): a protective MBR in LBA 0, the primary header in LBA 1 and its 128 entries of 128
//! bytes in LBAs 2–33, and the backup entries and header in the disk's last 33 sectors. Both
//! headers carry CRC32s of themselves and of the entry array. [`read`] checks all of that, so
//! tests can read back what [`Gpt::regions`] wrote and see a corruption refused.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};

/// Logical block size.
pub const SECTOR: u64 = 512;
/// Partition entries in each array (the minimum the specification allows: 16 KiB).
pub const ENTRY_COUNT: u32 = 128;
/// Size of one entry.
pub const ENTRY_SIZE: u32 = 128;
/// Sectors of one entry array.
pub const ENTRY_SECTORS: u64 = ENTRY_COUNT as u64 * ENTRY_SIZE as u64 / SECTOR;
/// Size of the header's meaningful part (the rest of its sector is zero).
pub const HEADER_SIZE: u32 = 92;
/// `EFI PART`.
pub const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Revision 1.0.
pub const REVISION: u32 = 0x0001_0000;
/// The EFI System Partition's type.
pub const ESP_TYPE: Guid = Guid::from_fields(
    0xC12A_7328,
    0xF81F,
    0x11D2,
    [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
);

/// A GUID, kept in its textual (big-endian) byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From the four fields of the textual form.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_be_bytes();
        let b = d2.to_be_bytes();
        let c = d3.to_be_bytes();
        Self([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// A version-4-style GUID from 16 pseudo-random bytes (a hash): the RFC 4122 version and
    /// variant bits are set, so tools see an ordinary random GUID, yet it is deterministic.
    pub fn v4_from(bytes: [u8; 16]) -> Self {
        let mut b = bytes;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Self(b)
    }

    /// The on-disk form: the first three fields little-endian, the last two as they are.
    pub fn to_disk(self) -> [u8; 16] {
        let mut d = self.0;
        d[0..4].reverse();
        d[4..6].reverse();
        d[6..8].reverse();
        d
    }

    /// From the on-disk form.
    pub fn from_disk(d: [u8; 16]) -> Self {
        // The byte swaps are their own inverse.
        Self(Guid(d).to_disk())
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode_upper(self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Its type ([`ESP_TYPE`]).
    pub type_guid: Guid,
    /// Its own GUID.
    pub unique_guid: Guid,
    /// First sector.
    pub first_lba: u64,
    /// Last sector (inclusive).
    pub last_lba: u64,
    /// Its name (at most 36 UTF-16 code units).
    pub name: String,
}

/// A whole table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpt {
    /// The disk's GUID.
    pub disk_guid: Guid,
    /// The disk's size in sectors.
    pub total_sectors: u64,
    /// The partitions, in entry order.
    pub partitions: Vec<Partition>,
}

/// Why a table could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    /// Reading the disk failed.
    #[error("reading the disk")]
    Io(#[source] std::io::Error),
    /// The disk is too small for the table and its partitions.
    #[error("a disk of {sectors} sectors cannot hold {what}")]
    TooSmall {
        /// The disk's size.
        sectors: u64,
        /// What does not fit.
        what: String,
    },
    /// A signature is wrong.
    #[error("{which}: bad signature")]
    Signature {
        /// Which structure.
        which: &'static str,
    },
    /// A CRC32 does not match.
    #[error("{which}: CRC32 {stored:#010x} stored, {computed:#010x} computed")]
    Crc {
        /// Which CRC.
        which: &'static str,
        /// What the header says.
        stored: u32,
        /// What the bytes give.
        computed: u32,
    },
    /// A field contradicts the layout.
    #[error("{which}: {reason}")]
    Field {
        /// Which structure.
        which: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The first usable sector: after the protective MBR, the primary header and its entries.
pub const FIRST_USABLE_LBA: u64 = 2 + ENTRY_SECTORS;

impl Gpt {
    /// The last sector.
    pub fn last_lba(&self) -> u64 {
        self.total_sectors.saturating_sub(1)
    }

    /// The last usable sector: before the backup entries and header.
    pub fn last_usable_lba(&self) -> u64 {
        self.total_sectors.saturating_sub(2 + ENTRY_SECTORS)
    }

    fn entries(&self) -> Result<Vec<u8>, GptError> {
        if self.partitions.len() > ENTRY_COUNT as usize {
            return Err(GptError::TooSmall {
                sectors: self.total_sectors,
                what: format!("{} partitions", self.partitions.len()),
            });
        }
        let mut out = vec![0u8; (ENTRY_COUNT * ENTRY_SIZE) as usize];
        for (p, e) in self
            .partitions
            .iter()
            .zip(out.chunks_exact_mut(ENTRY_SIZE as usize))
        {
            if p.first_lba < FIRST_USABLE_LBA
                || p.last_lba < p.first_lba
                || p.last_lba > self.last_usable_lba()
            {
                return Err(GptError::TooSmall {
                    sectors: self.total_sectors,
                    what: format!("partition {:?} at {}..={}", p.name, p.first_lba, p.last_lba),
                });
            }
            e[0..16].copy_from_slice(&p.type_guid.to_disk());
            e[16..32].copy_from_slice(&p.unique_guid.to_disk());
            e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
            let name: Vec<u16> = p.name.encode_utf16().collect();
            if name.len() > 36 {
                return Err(GptError::Field {
                    which: "partition entry",
                    reason: format!("name {:?} is longer than 36 UTF-16 units", p.name),
                });
            }
            for (i, unit) in name.iter().enumerate() {
                e[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
            }
        }
        Ok(out)
    }

    fn header(&self, primary: bool, entries_crc: u32) -> [u8; SECTOR as usize] {
        let (my, alternate, entries_lba) = if primary {
            (1, self.last_lba(), 2)
        } else {
            (self.last_lba(), 1, self.last_lba() - ENTRY_SECTORS)
        };
        let mut h = [0u8; SECTOR as usize];
        h[0..8].copy_from_slice(SIGNATURE);
        h[8..12].copy_from_slice(&REVISION.to_le_bytes());
        h[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
        h[24..32].copy_from_slice(&u64::to_le_bytes(my));
        h[32..40].copy_from_slice(&u64::to_le_bytes(alternate));
        h[40..48].copy_from_slice(&FIRST_USABLE_LBA.to_le_bytes());
        h[48..56].copy_from_slice(&self.last_usable_lba().to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid.to_disk());
        h[72..80].copy_from_slice(&u64::to_le_bytes(entries_lba));
        h[80..84].copy_from_slice(&ENTRY_COUNT.to_le_bytes());
        h[84..88].copy_from_slice(&ENTRY_SIZE.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..HEADER_SIZE as usize]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// The protective MBR: one partition of type 0xEE over the whole disk (capped at 2^32-1
    /// sectors), so that MBR-only tools see the disk as in use.
    fn protective_mbr(&self) -> [u8; SECTOR as usize] {
        let mut m = [0u8; SECTOR as usize];
        let e = &mut m[446..462];
        e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
        e[4] = 0xEE;
        e[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
        e[8..12].copy_from_slice(&1u32.to_le_bytes());
        let size = u32::try_from(self.total_sectors - 1).unwrap_or(u32::MAX);
        e[12..16].copy_from_slice(&size.to_le_bytes());
        m[510] = 0x55;
        m[511] = 0xAA;
        m
    }

    /// The table's bytes and their offsets on the disk: the protective MBR, the primary header
    /// and entries, the backup entries and header.
    pub fn regions(&self) -> Result<Vec<(u64, Vec<u8>)>, GptError> {
        if self.total_sectors < 2 * (1 + ENTRY_SECTORS) + 2 {
            return Err(GptError::TooSmall {
                sectors: self.total_sectors,
                what: "two tables".into(),
            });
        }
        let entries = self.entries()?;
        let crc = crc32fast::hash(&entries);
        let backup_entries = (self.last_lba() - ENTRY_SECTORS) * SECTOR;
        Ok(vec![
            (0, self.protective_mbr().to_vec()),
            (SECTOR, self.header(true, crc).to_vec()),
            (2 * SECTOR, entries.clone()),
            (backup_entries, entries),
            (self.last_lba() * SECTOR, self.header(false, crc).to_vec()),
        ])
    }
}

fn read_at<R: Read + Seek>(disk: &mut R, offset: u64, len: usize) -> Result<Vec<u8>, GptError> {
    let mut buf = vec![0u8; len];
    disk.seek(SeekFrom::Start(offset)).map_err(GptError::Io)?;
    disk.read_exact(&mut buf).map_err(GptError::Io)?;
    Ok(buf)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn guid_at(b: &[u8], at: usize) -> Guid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Guid::from_disk(a)
}

/// One header, checked, and its entries, checked against the header's CRC.
fn read_header<R: Read + Seek>(
    disk: &mut R,
    lba: u64,
    which: &'static str,
) -> Result<(Vec<u8>, Vec<u8>), GptError> {
    let h = read_at(disk, lba * SECTOR, SECTOR as usize)?;
    if &h[0..8] != SIGNATURE {
        return Err(GptError::Signature { which });
    }
    let size = le32(&h, 12);
    if size != HEADER_SIZE || le32(&h, 8) != REVISION {
        return Err(GptError::Field {
            which,
            reason: format!("revision {:#x}, header size {size}", le32(&h, 8)),
        });
    }
    let mut copy = h[..HEADER_SIZE as usize].to_vec();
    copy[16..20].fill(0);
    let (stored, computed) = (le32(&h, 16), crc32fast::hash(&copy));
    if stored != computed {
        return Err(GptError::Crc {
            which,
            stored,
            computed,
        });
    }
    if le64(&h, 24) != lba {
        return Err(GptError::Field {
            which,
            reason: format!("MyLBA {} at LBA {lba}", le64(&h, 24)),
        });
    }
    if le32(&h, 80) != ENTRY_COUNT || le32(&h, 84) != ENTRY_SIZE {
        return Err(GptError::Field {
            which,
            reason: format!("{} entries of {} bytes", le32(&h, 80), le32(&h, 84)),
        });
    }
    let entries = read_at(
        disk,
        le64(&h, 72) * SECTOR,
        (ENTRY_COUNT * ENTRY_SIZE) as usize,
    )?;
    let (stored, computed) = (le32(&h, 88), crc32fast::hash(&entries));
    if stored != computed {
        return Err(GptError::Crc {
            which: if lba == 1 {
                "primary partition entries"
            } else {
                "backup partition entries"
            },
            stored,
            computed,
        });
    }
    Ok((h, entries))
}

/// Reads and checks a disk's table: the protective MBR, both headers (signature, CRC32, where
/// they say they are, that each names the other) and both entry arrays (CRC32, equal).
pub fn read<R: Read + Seek>(disk: &mut R) -> Result<Gpt, GptError> {
    let len = disk.seek(SeekFrom::End(0)).map_err(GptError::Io)?;
    let total_sectors = len / SECTOR;
    let mbr = read_at(disk, 0, SECTOR as usize)?;
    if mbr[510..512] != [0x55, 0xAA] || mbr[446 + 4] != 0xEE {
        return Err(GptError::Signature {
            which: "protective MBR",
        });
    }
    let (primary, entries) = read_header(disk, 1, "primary GPT header")?;
    let last = total_sectors.saturating_sub(1);
    if le64(&primary, 32) != last {
        return Err(GptError::Field {
            which: "primary GPT header",
            reason: format!(
                "AlternateLBA {}, the disk's last LBA is {last}",
                le64(&primary, 32)
            ),
        });
    }
    let (backup, backup_entries) = read_header(disk, last, "backup GPT header")?;
    if le64(&backup, 32) != 1 || backup_entries != entries || backup[56..72] != primary[56..72] {
        return Err(GptError::Field {
            which: "backup GPT header",
            reason: "does not mirror the primary".into(),
        });
    }
    let mut partitions = Vec::new();
    for e in entries.chunks_exact(ENTRY_SIZE as usize) {
        let type_guid = guid_at(e, 0);
        if type_guid.0 == [0; 16] {
            continue;
        }
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        partitions.push(Partition {
            type_guid,
            unique_guid: guid_at(e, 16),
            first_lba: le64(e, 32),
            last_lba: le64(e, 40),
            name: String::from_utf16_lossy(&units),
        });
    }
    Ok(Gpt {
        disk_guid: guid_at(&primary, 56),
        total_sectors,
        partitions,
    })
}
