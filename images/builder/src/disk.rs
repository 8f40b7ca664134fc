//! The raw UEFI disk: a GPT ([`crate::gpt`]) with one EFI System Partition from 1 MiB on, a
//! FAT32 volume ([`crate::esp`]) holding the UKI as `EFI/BOOT/BOOTX64.EFI`, and the backup GPT in
//! the disk's last MiB. The disk is a whole number of MiB (Azure wants that of a fixed VHD's
//! data), and every identifier on it is derived from the UKI's SHA-256, so the same UKI gives the
//! same disk, byte for byte.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::deb::{self, io_err, DebError};
use crate::esp::{self, EspError, EspLayout};
use crate::gpt::{self, Gpt, GptError, Guid, Partition};

/// The ESP's first sector: 1 MiB in, the usual alignment.
pub const ESP_FIRST_LBA: u64 = 2048;
/// The disk's size is a multiple of this.
pub const DISK_ALIGN: u64 = 1 << 20;
/// The ESP's partition name.
pub const ESP_NAME: &str = "EFI System Partition";

/// Why the disk could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The partition table.
    #[error(transparent)]
    Gpt(#[from] GptError),
    /// The file system.
    #[error(transparent)]
    Esp(#[from] EspError),
    /// Reading the UKI or writing the disk.
    #[error(transparent)]
    Io(#[from] DebError),
}

/// Where everything is on the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskLayout {
    /// The ESP's file system.
    pub esp: EspLayout,
    /// The table.
    pub gpt: Gpt,
    /// The FAT volume id.
    pub volume_id: u32,
}

/// 32 bytes derived from the UKI's hash for one purpose.
fn derive(purpose: &str, uki_sha256: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cdvm-image disk ");
    h.update(purpose.as_bytes());
    h.update(b"\0");
    h.update(uki_sha256);
    h.finalize().into()
}

fn guid(purpose: &str, uki_sha256: &[u8; 32]) -> Guid {
    let d = derive(purpose, uki_sha256);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    Guid::v4_from(b)
}

impl DiskLayout {
    /// The layout for a UKI of `uki_size` bytes whose SHA-256 is `uki_sha256`.
    pub fn new(uki_size: u64, uki_sha256: &[u8; 32]) -> Result<Self, DiskError> {
        let esp = EspLayout::for_file(uki_size)?;
        let esp_sectors = u64::from(esp.total_sectors);
        let backup = 1 + gpt::ENTRY_SECTORS;
        let sectors_per_mib = DISK_ALIGN / gpt::SECTOR;
        let total_sectors =
            (ESP_FIRST_LBA + esp_sectors + backup).div_ceil(sectors_per_mib) * sectors_per_mib;
        let d = derive("fat volume id", uki_sha256);
        Ok(Self {
            gpt: Gpt {
                disk_guid: guid("disk guid", uki_sha256),
                total_sectors,
                partitions: vec![Partition {
                    type_guid: gpt::ESP_TYPE,
                    unique_guid: guid("esp guid", uki_sha256),
                    first_lba: ESP_FIRST_LBA,
                    last_lba: ESP_FIRST_LBA + esp_sectors - 1,
                    name: ESP_NAME.to_string(),
                }],
            },
            esp,
            volume_id: u32::from_le_bytes([d[0], d[1], d[2], d[3]]),
        })
    }

    /// The disk's size in bytes.
    pub fn size(&self) -> u64 {
        self.gpt.total_sectors * gpt::SECTOR
    }

    /// The ESP's offset on the disk.
    pub fn esp_offset(&self) -> u64 {
        ESP_FIRST_LBA * gpt::SECTOR
    }

    /// The UKI's offset on the disk (its first cluster).
    pub fn uki_offset(&self) -> u64 {
        self.esp_offset() + self.esp.file_offset()
    }
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskWritten {
    /// The layout.
    pub layout: DiskLayout,
    /// Hex SHA-256 of the disk.
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

/// Writes the disk for the UKI at `uki` to `path` (a sparse file, through a temporary file and
/// a rename), and hashes it.
pub fn write_file(uki: &Path, path: &Path) -> Result<DiskWritten, DiskError> {
    let uki_hex = deb::sha256_file(uki)?;
    let mut uki_sha = [0u8; 32];
    hex::decode_to_slice(&uki_hex, &mut uki_sha).map_err(|e| DebError::Io {
        path: uki.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    let uki_size = std::fs::metadata(uki).map_err(io_err(uki))?.len();
    let layout = DiskLayout::new(uki_size, &uki_sha)?;

    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    let werr = |e| DebError::Io {
        path: path.display().to_string(),
        source: e,
    };
    // Zero-filled without writing zeros: everything not written below reads as zero.
    tmp.as_file().set_len(layout.size()).map_err(werr)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp);
    for (offset, bytes) in layout.gpt.regions()? {
        out.seek(SeekFrom::Start(offset)).map_err(werr)?;
        out.write_all(&bytes).map_err(werr)?;
    }
    let mut file = std::fs::File::open(uki).map_err(io_err(uki))?;
    esp::write(
        &mut out,
        layout.esp_offset(),
        &layout.esp,
        layout.volume_id,
        &mut file,
    )?;
    let tmp = out.into_inner().map_err(|e| werr(e.into_error()))?;
    let sha256 = deb::sha256_file(tmp.path())?;
    deb::persist(tmp, path)?;
    Ok(DiskWritten {
        size: layout.size(),
        layout,
        sha256,
    })
}
