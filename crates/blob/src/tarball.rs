//! Deterministic tarballs of folders (`--input docs/`), and a streaming unpacker that never
//! touches the disk.
//!
//! [`pack_dir`] writes a GNU-format tar archive of a folder's regular files and directories:
//!
//! * entries sorted by their relative path, compared as bytes (`a` < `a.txt` < `a/b`); a
//!   directory's entry is named with a trailing `/` and precedes its contents; the folder itself
//!   has no entry;
//! * paths relative to the folder, `/`-separated, UTF-8 (other names are refused); names longer
//!   than 100 bytes use GNU long-name entries (`././@LongLink`);
//! * mode 0644 for files and 0755 for directories, whatever they are on disk; uid, gid and mtime
//!   0; empty user and group names; no device numbers, no extended attributes;
//! * symbolic links, devices, FIFOs and sockets are refused with an error naming the path.
//!
//! So the same tree gives the same bytes wherever it lies and whoever packs it.
//!
//! [`for_each_file`] reads such an archive (or any tar archive) entry by entry and hands each
//! regular file's relative path and contents to a callback. It refuses absolute paths, `..`
//! components, links and special files and duplicate paths, and enforces [`Limits`]; it never
//! writes to disk.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Why packing or unpacking failed. `E` is the error type of the unpacking callback.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TarError<E = std::convert::Infallible> {
    /// Reading the folder, the archive or a file, or writing the archive, failed.
    #[error("{}", match path { Some(p) => format!("tar: {p}: {source}"), None => format!("tar: {source}") })]
    Io {
        /// The file concerned, when there is one (relative to the packed folder, or as named in
        /// the archive).
        path: Option<String>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file that is neither a regular file nor a directory.
    #[error("{path}: is a {kind}; only regular files and directories can be packed or unpacked")]
    Unsupported {
        /// The path (relative to the folder, or as named in the archive).
        path: String,
        /// What it is ("symbolic link", "hard link", "character device", "FIFO", ...).
        kind: &'static str,
    },
    /// A name that is not UTF-8 (paths travel as text).
    #[error("{path}: the file name is not valid UTF-8")]
    NotUtf8 {
        /// The path, lossily converted.
        path: String,
    },
    /// An archive path that is absolute, contains `..`, or is empty.
    #[error("{path}: unsafe path in the archive (absolute, empty, or with a `..` component)")]
    UnsafePath {
        /// The path as named in the archive (lossily converted to UTF-8).
        path: String,
    },
    /// The same path twice in an archive.
    #[error("{path}: appears twice in the archive")]
    Duplicate {
        /// The normalised relative path.
        path: String,
    },
    /// A file changed size while it was being packed.
    #[error("{path}: the file changed while it was being packed")]
    Changed {
        /// The path relative to the folder.
        path: String,
    },
    /// The archive exceeds a [`Limits`] bound.
    #[error("the archive exceeds the limit of {limit} {what}")]
    Limit {
        /// Which bound ("entries", "bytes of file contents", "bytes of archive").
        what: &'static str,
        /// The bound.
        limit: u64,
    },
    /// The callback failed.
    #[error("processing {path} failed")]
    Callback {
        /// The file being processed.
        path: String,
        /// The callback's error.
        #[source]
        source: E,
    },
}

/// What [`pack_dir`] packed or [`for_each_file`] unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackSummary {
    /// Regular files.
    pub files: u64,
    /// Directories (the packed folder itself not included).
    pub dirs: u64,
    /// Bytes of file contents.
    pub bytes: u64,
}

/// Bounds on what [`for_each_file`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most entries: regular files and directories together.
    pub max_files: u64,
    /// The most bytes of file contents, all files together.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    /// 10 000 entries, 1 GiB.
    fn default() -> Self {
        Limits {
            max_files: 10_000,
            max_total_bytes: 1 << 30,
        }
    }
}

enum Kind {
    File(u64),
    Dir,
}

fn kind_name(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "symbolic link"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

fn io_err<E>(path: Option<&str>, source: io::Error) -> TarError<E> {
    TarError::Io {
        path: path.map(str::to_owned),
        source,
    }
}

/// Lists the tree under `dir`: relative `/`-separated paths and their kinds, unsorted.
fn walk(dir: &Path) -> Result<Vec<(String, Kind)>, TarError> {
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let shown = if rel.is_empty() { "." } else { rel.as_str() };
        let entries = fs::read_dir(&abs).map_err(|e| io_err(Some(shown), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err(Some(shown), e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(TarError::NotUtf8 {
                    path: format!("{}{}", prefix(&rel), name.to_string_lossy()),
                });
            };
            let child = format!("{}{name}", prefix(&rel));
            // `symlink_metadata`: a link is itself, never what it points to.
            let meta = fs::symlink_metadata(entry.path()).map_err(|e| io_err(Some(&child), e))?;
            let ft = meta.file_type();
            if ft.is_file() {
                found.push((child, Kind::File(meta.len())));
            } else if ft.is_dir() {
                found.push((child.clone(), Kind::Dir));
                stack.push((entry.path(), child));
            } else {
                return Err(TarError::Unsupported {
                    path: child,
                    kind: kind_name(&ft),
                });
            }
        }
    }
    Ok(found)
}

fn prefix(rel: &str) -> String {
    if rel.is_empty() {
        String::new()
    } else {
        format!("{rel}/")
    }
}

/// Counts what passes through, to check a file's length against its header.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Writes a deterministic tar archive of the tree under `dir` to `out` (see the module docs for
/// the exact format). `dir` itself may be reached through a symbolic link; nothing under it may
/// be one.
///
/// # Errors
///
/// [`TarError::Unsupported`] for a symbolic link, device, FIFO or socket in the tree,
/// [`TarError::NotUtf8`] for a name that is not UTF-8, [`TarError::Changed`] for a file whose size
/// changed while it was read, [`TarError::Io`] otherwise.
pub fn pack_dir(dir: &Path, out: impl Write) -> Result<PackSummary, TarError> {
    let meta = fs::metadata(dir).map_err(|e| io_err(Some(&dir.display().to_string()), e))?;
    if !meta.is_dir() {
        return Err(io_err(
            Some(&dir.display().to_string()),
            io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
        ));
    }
    let mut entries = walk(dir)?;
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

    let mut builder = tar::Builder::new(out);
    let mut summary = PackSummary::default();
    for (rel, kind) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match kind {
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{rel}/"), io::empty())
                    .map_err(|e| io_err(Some(&rel), e))?;
                summary.dirs += 1;
            }
            Kind::File(len) => {
                let file = fs::File::open(dir.join(&rel)).map_err(|e| io_err(Some(&rel), e))?;
                // Opened after the walk: check it is still a regular file of the same length.
                let now = file.metadata().map_err(|e| io_err(Some(&rel), e))?;
                if !now.is_file() || now.len() != len {
                    return Err(TarError::Changed { path: rel });
                }
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(len);
                let mut data = Counting {
                    inner: file.take(len),
                    count: 0,
                };
                builder
                    .append_data(&mut header, &rel, &mut data)
                    .map_err(|e| io_err(Some(&rel), e))?;
                if data.count != len {
                    return Err(TarError::Changed { path: rel });
                }
                summary.files += 1;
                summary.bytes += len;
            }
        }
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| io_err(None, e))?;
    Ok(summary)
}

/// Caps the bytes read from the archive as a whole (long-name and PAX entries are read into
/// memory by the `tar` crate, so they must be bounded too).
struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 && !buf.is_empty() {
            // Allow a clean end of file to show; anything more is over the limit.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(ArchiveTooLarge(self.limit))),
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[derive(Debug)]
struct ArchiveTooLarge(u64);

impl std::fmt::Display for ArchiveTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "archive larger than {} bytes", self.0)
    }
}

impl std::error::Error for ArchiveTooLarge {}

/// Bytes of archive allowed per entry beyond its contents: headers, padding, a long name.
const PER_ENTRY_OVERHEAD: u64 = 8 * 1024;

/// Turns a path from an archive into a safe relative `/`-separated path, or `None`.
fn safe_path(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    if text.starts_with('/') || text.contains('\\') {
        return None;
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => continue,
            ".." => return None,
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

fn archive_err<E>(e: io::Error, path: Option<&str>, limit_bytes: u64) -> TarError<E> {
    let over = e
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<ArchiveTooLarge>().is_some());
    if over {
        TarError::Limit {
            what: "bytes of archive",
            limit: limit_bytes,
        }
    } else {
        io_err(path, e)
    }
}

/// Reads the tar archive `archive` entry by entry and calls `f` with each regular file's relative
/// path (normalised: `/`-separated, no `.` components, no trailing `/`) and contents, in archive
/// order. Directory entries are checked and counted but not passed on. Nothing is written to disk.
///
/// The contents reader yields exactly the file's bytes; what `f` leaves unread is skipped.
///
/// # Errors
///
/// [`TarError::UnsafePath`] for an absolute path, a `..` component or an empty path,
/// [`TarError::Unsupported`] for links and special files, [`TarError::NotUtf8`],
/// [`TarError::Duplicate`], [`TarError::Limit`] when the archive has more than
/// `limits.max_files` entries, more than `limits.max_total_bytes` of contents, or more than
/// `max_total_bytes + (max_files + 2) × 8 KiB` bytes in all (headers, long names), checked before
/// `f` sees the offending file; [`TarError::Callback`] with `f`'s error; [`TarError::Io`] for a
/// malformed archive or a read error.
pub fn for_each_file<R: Read, E>(
    archive: R,
    limits: &Limits,
    mut f: impl FnMut(&str, &mut dyn Read) -> Result<(), E>,
) -> Result<PackSummary, TarError<E>> {
    let limit_bytes = limits.max_total_bytes.saturating_add(
        limits
            .max_files
            .saturating_add(2)
            .saturating_mul(PER_ENTRY_OVERHEAD),
    );
    let capped = Capped {
        inner: archive,
        left: limit_bytes,
        limit: limit_bytes,
    };
    let mut archive = tar::Archive::new(capped);
    let mut seen = HashSet::new();
    let mut summary = PackSummary::default();
    let entries = archive
        .entries()
        .map_err(|e| archive_err(e, None, limit_bytes))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(e, None, limit_bytes))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        if std::str::from_utf8(&raw).is_err() {
            return Err(TarError::NotUtf8 { path: shown });
        }
        let Some(path) = safe_path(&raw) else {
            return Err(TarError::UnsafePath { path: shown });
        };
        let kind = entry.header().entry_type();
        let is_file = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => true,
            tar::EntryType::Directory => false,
            other => {
                return Err(TarError::Unsupported {
                    path: shown,
                    kind: match other {
                        tar::EntryType::Symlink => "symbolic link",
                        tar::EntryType::Link => "hard link",
                        tar::EntryType::Char => "character device",
                        tar::EntryType::Block => "block device",
                        tar::EntryType::Fifo => "FIFO",
                        tar::EntryType::GNUSparse => "sparse file",
                        _ => "special entry",
                    },
                })
            }
        };
        if summary.files + summary.dirs >= limits.max_files {
            return Err(TarError::Limit {
                what: "entries",
                limit: limits.max_files,
            });
        }
        if !seen.insert(path.clone()) {
            return Err(TarError::Duplicate { path });
        }
        if !is_file {
            summary.dirs += 1;
            continue;
        }
        let size = entry.size();
        if summary.bytes.saturating_add(size) > limits.max_total_bytes {
            return Err(TarError::Limit {
                what: "bytes of file contents",
                limit: limits.max_total_bytes,
            });
        }
        summary.files += 1;
        summary.bytes += size;
        f(&path, &mut entry).map_err(|source| TarError::Callback {
            path: path.clone(),
            source,
        })?;
    }
    Ok(summary)
}
