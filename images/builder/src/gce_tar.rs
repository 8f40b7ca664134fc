//! Google Compute Engine's image format: the raw disk, named `disk.raw`, alone in a gzip-compressed
//! GNU tar archive ("oldgnu" format, as GCE's import documentation asks for).
//!
//! Deterministic: mode 0644, owner 0:0, time 0, and a gzip header without name or time, so the
//! same `disk.raw` always gives the same archive.

use std::io::{Read, Write};

use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

/// The member name GCE requires.
pub const MEMBER: &str = "disk.raw";
const BLOCK: usize = 512;
/// GNU tar's default record (blocking factor 20): the archive is padded to a whole record.
const RECORD: u64 = 20 * BLOCK as u64;
/// The largest size an 11-digit octal field holds (8 GiB - 1).
pub const MAX_SIZE: u64 = 0o77_777_777_777;

/// Why the archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GceTarError {
    /// The disk is larger than a plain oldgnu header can describe.
    #[error("the disk is {0} bytes; this writer stops at {MAX_SIZE} (8 GiB - 1)")]
    TooLarge(u64),
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

/// The oldgnu header of a regular file `name` of `size` bytes, owned by root, time 0.
pub fn header(name: &str, size: u64) -> Result<[u8; BLOCK], GceTarError> {
    if size > MAX_SIZE {
        return Err(GceTarError::TooLarge(size));
    }
    let mut h = [0u8; BLOCK];
    let field = |h: &mut [u8; BLOCK], at: usize, text: &[u8]| {
        h[at..at + text.len()].copy_from_slice(text);
    };
    field(&mut h, 0, name.as_bytes());
    field(&mut h, 100, b"0000644\0");
    field(&mut h, 108, b"0000000\0");
    field(&mut h, 116, b"0000000\0");
    field(&mut h, 124, format!("{size:011o}\0").as_bytes());
    field(&mut h, 136, b"00000000000\0");
    field(&mut h, 148, b"        "); // checksum counted as spaces
    h[156] = b'0'; // regular file
    field(&mut h, 257, b"ustar  \0"); // oldgnu magic and version
    field(&mut h, 265, b"root");
    field(&mut h, 297, b"root");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    field(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    Ok(h)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GceTarError + '_ {
    move |source| GceTarError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `out` (`….tar.gz`) holding the raw disk at `raw` as `disk.raw`.
pub fn write_file(raw: &Path, out: &Path) -> Result<(), GceTarError> {
    let size = std::fs::metadata(raw).map_err(io(raw))?.len();
    let head = header(MEMBER, size)?;
    let file = std::fs::File::create(out).map_err(io(out))?;
    // flate2's GzBuilder default header: no file name, mtime 0, OS "unknown": deterministic.
    let mut gz = GzEncoder::new(std::io::BufWriter::new(file), Compression::new(6));
    gz.write_all(&head).map_err(io(out))?;
    let input = std::fs::File::open(raw).map_err(io(raw))?;
    let copied = std::io::copy(&mut input.take(size), &mut gz).map_err(io(raw))?;
    if copied != size {
        return Err(GceTarError::Io {
            path: raw.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "disk changed"),
        });
    }
    // Pad the member to a block, add the two zero blocks that end an archive, then pad to a
    // whole record as GNU tar does.
    let member_end = BLOCK as u64 + size.div_ceil(BLOCK as u64) * BLOCK as u64;
    let end = (member_end + 2 * BLOCK as u64).div_ceil(RECORD) * RECORD;
    let zeros = vec![0u8; usize::try_from(end - BLOCK as u64 - size).unwrap_or(0)];
    gz.write_all(&zeros).map_err(io(out))?;
    gz.finish().and_then(|mut w| w.flush()).map_err(io(out))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn header_checksum_and_limits() {
        let h = header("disk.raw", 1024).unwrap();
        let stored = std::str::from_utf8(&h[148..154]).unwrap();
        let mut blank = h;
        blank[148..156].copy_from_slice(b"        ");
        let sum: u32 = blank.iter().map(|b| u32::from(*b)).sum();
        assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
        assert_eq!(&h[124..136], b"00000002000\0");
        assert!(matches!(
            header("disk.raw", MAX_SIZE + 1),
            Err(GceTarError::TooLarge(_))
        ));
    }
}
