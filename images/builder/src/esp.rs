//! The EFI System Partition: a FAT32 file system (Microsoft's *FAT32 File System
//! Specification*, which the UEFI specification's section 13.3 adopts) holding one file,
//! `EFI/BOOT/BOOTX64.EFI`, the default boot path the firmware tries on a disk with no boot
//! entries. Written here rather than by `mkfs.fat` + `mcopy` so that no root, loop device or
//! clock is involved and every byte is fixed: the volume id and label are given, every date is
//! FAT's epoch (1980-01-01 00:00), the three directories take clusters 2–4 and the file the
//! clusters from 5 on, contiguous.
//!
//! Layout of the volume: 32 reserved sectors (boot sector in 0, FSInfo in 1, their backups in 6
//! and 7), two FATs, then the data clusters. The cluster size is the largest of 4, 2, 1 KiB and
//! 512 bytes that still gives at least 65525 clusters, the fewest a FAT32 volume may have (fewer
//! and a reader takes it for FAT16).

use std::io::{Read, Seek, SeekFrom, Write};

/// Bytes per sector.
pub const SECTOR: u32 = 512;
/// Reserved sectors before the first FAT (the usual FAT32 value).
pub const RESERVED_SECTORS: u32 = 32;
/// Number of FATs.
pub const NUM_FATS: u32 = 2;
/// The fewest clusters a FAT32 volume may have.
pub const MIN_FAT32_CLUSTERS: u32 = 65_525;
/// Free space left in the ESP beyond the UKI (room for a second UKI would be more; this is for
/// small additions such as a signed copy's certificate table).
pub const HEADROOM: u64 = 16 << 20;
/// The smallest ESP: enough for FAT32 clusters of 512 bytes.
pub const MIN_SIZE: u64 = 40 << 20;
/// The volume label (11 bytes, space-padded), in the boot sector and the root directory.
pub const LABEL: &[u8; 11] = b"CDVM-ESP   ";
/// FAT's date for 1980-01-01 (year 0 since 1980, month 1, day 1); times are 0 (00:00:00).
pub const FAT_DATE: u16 = (1 << 5) | 1;
/// The file's directories and 8.3 name.
pub const BOOT_PATH: [&[u8; 11]; 3] = [b"EFI        ", b"BOOT       ", b"BOOTX64 EFI"];
/// First cluster of the file (2: root, 3: `EFI`, 4: `EFI/BOOT`).
pub const FILE_CLUSTER: u32 = 5;
const END_OF_CHAIN: u32 = 0x0FFF_FFFF;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
const MIB: u64 = 1 << 20;

/// Why the ESP could not be laid out or written.
#[derive(Debug, thiserror::Error)]
pub enum EspError {
    /// FAT32 files are at most 4 GiB - 1.
    #[error("a {size}-byte file does not fit FAT32 (at most 4 GiB - 1)")]
    FileTooLarge {
        /// The file's size.
        size: u64,
    },
    /// Writing failed.
    #[error("writing the ESP")]
    Io(#[source] std::io::Error),
    /// The file was shorter or longer than laid out.
    #[error("the file gave {actual} bytes, {expected} were laid out")]
    Changed {
        /// Laid out.
        expected: u64,
        /// Read.
        actual: u64,
    },
}

/// Where everything goes in the ESP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspLayout {
    /// The volume's size in sectors (a whole number of MiB).
    pub total_sectors: u32,
    /// Sectors per cluster.
    pub sectors_per_cluster: u32,
    /// Sectors of each FAT.
    pub fat_sectors: u32,
    /// Data clusters (numbered from 2).
    pub clusters: u32,
    /// The file's size.
    pub file_size: u32,
    /// The file's clusters.
    pub file_clusters: u32,
}

impl EspLayout {
    /// The layout for a file of `file_size` bytes: the volume is the file plus the FATs and
    /// [`HEADROOM`], rounded up to a MiB, at least [`MIN_SIZE`].
    pub fn for_file(file_size: u64) -> Result<Self, EspError> {
        let too_large = || EspError::FileTooLarge { size: file_size };
        let file_size32 = u32::try_from(file_size).map_err(|_| too_large())?;
        // The FATs take at most 4 bytes per 512-byte cluster: 1/128 of the volume.
        let wanted = file_size
            .checked_add(HEADROOM)
            .and_then(|s| s.checked_add(s / 128 + MIB))
            .ok_or_else(too_large)?;
        let size = wanted
            .div_ceil(MIB)
            .checked_mul(MIB)
            .ok_or_else(too_large)?
            .max(MIN_SIZE);
        let total_sectors = u32::try_from(size / u64::from(SECTOR)).map_err(|_| too_large())?;
        for sectors_per_cluster in [8u32, 4, 2, 1] {
            let data = total_sectors
                .checked_sub(RESERVED_SECTORS)
                .ok_or_else(too_large)?;
            let entries = u64::from(data / sectors_per_cluster) + 2;
            let fat_sectors = u32::try_from((entries * 4).div_ceil(u64::from(SECTOR)))
                .map_err(|_| too_large())?;
            let Some(clusters) = NUM_FATS
                .checked_mul(fat_sectors)
                .and_then(|fats| data.checked_sub(fats))
                .map(|rest| rest / sectors_per_cluster)
            else {
                continue;
            };
            if clusters < MIN_FAT32_CLUSTERS {
                continue;
            }
            let cluster_bytes = u64::from(sectors_per_cluster * SECTOR);
            let file_clusters =
                u32::try_from(file_size.div_ceil(cluster_bytes).max(1)).map_err(|_| too_large())?;
            if u64::from(file_clusters) + 3 > u64::from(clusters) {
                return Err(too_large());
            }
            return Ok(Self {
                total_sectors,
                sectors_per_cluster,
                fat_sectors,
                clusters,
                file_size: file_size32,
                file_clusters,
            });
        }
        // MIN_SIZE guarantees 512-byte clusters fit.
        Err(too_large())
    }

    /// The volume's size in bytes.
    pub fn size(&self) -> u64 {
        u64::from(self.total_sectors) * u64::from(SECTOR)
    }

    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u64 {
        u64::from(self.sectors_per_cluster) * u64::from(SECTOR)
    }

    /// Offset of the first FAT in the volume.
    pub fn fat_offset(&self) -> u64 {
        u64::from(RESERVED_SECTORS) * u64::from(SECTOR)
    }

    /// Offset of cluster 2, the first data cluster, in the volume.
    pub fn data_offset(&self) -> u64 {
        u64::from(RESERVED_SECTORS + NUM_FATS * self.fat_sectors) * u64::from(SECTOR)
    }

    /// Offset of a cluster in the volume.
    pub fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_offset() + u64::from(cluster - 2) * self.cluster_bytes()
    }

    /// Offset of the file's first byte in the volume.
    pub fn file_offset(&self) -> u64 {
        self.cluster_offset(FILE_CLUSTER)
    }

    fn boot_sector(&self, volume_id: u32) -> [u8; SECTOR as usize] {
        let mut b = [0u8; SECTOR as usize];
        b[0..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
        b[3..11].copy_from_slice(b"MSWIN4.1");
        b[11..13].copy_from_slice(&(SECTOR as u16).to_le_bytes());
        b[13] = self.sectors_per_cluster as u8;
        b[14..16].copy_from_slice(&(RESERVED_SECTORS as u16).to_le_bytes());
        b[16] = NUM_FATS as u8;
        b[21] = 0xF8; // fixed disk
        b[24..26].copy_from_slice(&63u16.to_le_bytes()); // sectors per track (unused)
        b[26..28].copy_from_slice(&255u16.to_le_bytes()); // heads (unused)
                                                          // BPB_HiddSec: the partition's first sector, 1 MiB into the disk.
        b[28..32].copy_from_slice(&2048u32.to_le_bytes());
        b[32..36].copy_from_slice(&self.total_sectors.to_le_bytes());
        b[36..40].copy_from_slice(&self.fat_sectors.to_le_bytes());
        b[44..48].copy_from_slice(&2u32.to_le_bytes()); // root directory cluster
        b[48..50].copy_from_slice(&1u16.to_le_bytes()); // FSInfo sector
        b[50..52].copy_from_slice(&6u16.to_le_bytes()); // backup boot sector
        b[64] = 0x80; // drive number
        b[66] = 0x29; // extended boot signature: the next three fields are valid
        b[67..71].copy_from_slice(&volume_id.to_le_bytes());
        b[71..82].copy_from_slice(LABEL);
        b[82..90].copy_from_slice(b"FAT32   ");
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    fn fs_info(&self) -> [u8; SECTOR as usize] {
        let mut b = [0u8; SECTOR as usize];
        b[0..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
        b[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
        let free = self.clusters - 3 - self.file_clusters;
        b[488..492].copy_from_slice(&free.to_le_bytes());
        b[492..496].copy_from_slice(&(FILE_CLUSTER + self.file_clusters).to_le_bytes());
        b[508..512].copy_from_slice(&0xAA55_0000u32.to_le_bytes());
        b
    }

    fn fat(&self) -> Vec<u8> {
        let mut fat = vec![0u8; self.fat_sectors as usize * SECTOR as usize];
        let mut set = |cluster: u32, value: u32| {
            let at = cluster as usize * 4;
            fat[at..at + 4].copy_from_slice(&value.to_le_bytes());
        };
        set(0, 0x0FFF_FFF8); // media byte
        set(1, END_OF_CHAIN); // clean, no errors
        for dir in 2..FILE_CLUSTER {
            set(dir, END_OF_CHAIN);
        }
        let last = FILE_CLUSTER + self.file_clusters - 1;
        for c in FILE_CLUSTER..last {
            set(c, c + 1);
        }
        set(last, END_OF_CHAIN);
        fat
    }

    fn directories(&self) -> [(u32, Vec<u8>); 3] {
        let cluster = self.cluster_bytes() as usize;
        let mut root = vec![0u8; cluster];
        root[0..32].copy_from_slice(&dir_entry(LABEL, ATTR_VOLUME_ID, 0, 0));
        root[32..64].copy_from_slice(&dir_entry(BOOT_PATH[0], ATTR_DIRECTORY, 3, 0));
        let mut efi = vec![0u8; cluster];
        efi[0..32].copy_from_slice(&dir_entry(b".          ", ATTR_DIRECTORY, 3, 0));
        // `..` of a directory in the root names cluster 0.
        efi[32..64].copy_from_slice(&dir_entry(b"..         ", ATTR_DIRECTORY, 0, 0));
        efi[64..96].copy_from_slice(&dir_entry(BOOT_PATH[1], ATTR_DIRECTORY, 4, 0));
        let mut boot = vec![0u8; cluster];
        boot[0..32].copy_from_slice(&dir_entry(b".          ", ATTR_DIRECTORY, 4, 0));
        boot[32..64].copy_from_slice(&dir_entry(b"..         ", ATTR_DIRECTORY, 3, 0));
        boot[64..96].copy_from_slice(&dir_entry(
            BOOT_PATH[2],
            ATTR_ARCHIVE,
            FILE_CLUSTER,
            self.file_size,
        ));
        [(2, root), (3, efi), (4, boot)]
    }
}

fn dir_entry(name: &[u8; 11], attr: u8, cluster: u32, size: u32) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[0..11].copy_from_slice(name);
    e[11] = attr;
    if attr != ATTR_VOLUME_ID {
        // Creation, last access and write dates; all times 00:00:00.
        e[16..18].copy_from_slice(&FAT_DATE.to_le_bytes());
        e[18..20].copy_from_slice(&FAT_DATE.to_le_bytes());
        e[24..26].copy_from_slice(&FAT_DATE.to_le_bytes());
    } else {
        e[24..26].copy_from_slice(&FAT_DATE.to_le_bytes());
    }
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// Writes the volume at `base` in `out`, which must read as zeros there (a fresh, sparse file):
/// only the non-zero structures and the file are written. `file` gives exactly
/// `layout.file_size` bytes.
pub fn write<W: Write + Seek, R: Read>(
    out: &mut W,
    base: u64,
    layout: &EspLayout,
    volume_id: u32,
    file: &mut R,
) -> Result<(), EspError> {
    let mut at = |offset: u64, data: &[u8]| -> Result<(), EspError> {
        out.seek(SeekFrom::Start(base + offset))
            .map_err(EspError::Io)?;
        out.write_all(data).map_err(EspError::Io)
    };
    let boot = layout.boot_sector(volume_id);
    let info = layout.fs_info();
    at(0, &boot)?;
    at(u64::from(SECTOR), &info)?;
    at(6 * u64::from(SECTOR), &boot)?;
    at(7 * u64::from(SECTOR), &info)?;
    let fat = layout.fat();
    for i in 0..u64::from(NUM_FATS) {
        at(layout.fat_offset() + i * fat.len() as u64, &fat)?;
    }
    for (cluster, dir) in layout.directories() {
        at(layout.cluster_offset(cluster), &dir)?;
    }
    out.seek(SeekFrom::Start(base + layout.file_offset()))
        .map_err(EspError::Io)?;
    let expected = u64::from(layout.file_size);
    let n = std::io::copy(&mut file.take(expected + 1), out).map_err(EspError::Io)?;
    if n != expected {
        return Err(EspError::Changed {
            expected,
            actual: n,
        });
    }
    Ok(())
}
