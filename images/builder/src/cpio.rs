//! A deterministic writer (and a reader, for tests and checks) of the "newc" cpio format the
//! Linux kernel unpacks as its initramfs (`Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Determinism: entries are written sorted by path (a parent always sorts before its children),
//! every mtime is 0, every owner is 0:0, inode numbers are 1, 2, 3… in that order, the check
//! field is 0, and the archive ends with the `TRAILER!!!` entry. The same entries always give
//! the same bytes, whatever order they were added in.
//!
//! [`Archive`] holds its entries in memory; [`StreamWriter`] writes the same format to any
//! [`Write`] with file data copied from a [`Read`], for files too large to hold (the model files):
//! given the same entries in archive order, both write the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

/// The newc magic.
const MAGIC: &[u8; 6] = b"070701";
/// The name of the closing entry.
pub const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
const S_IFMT: u32 = 0o170000;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file with its contents.
    File(Vec<u8>),
    /// A character device node.
    CharDev {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

/// One archive entry: a path relative to the root (no leading `/`), permission bits and a kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the archive root, `/`-separated, e.g. `lib/modules/cdvm`.
    pub path: String,
    /// Permission bits only (e.g. `0o755`); the file type comes from `kind`.
    pub perm: u32,
    /// Directory, file or device.
    pub kind: EntryKind,
}

/// Errors of the writer and the reader.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// A path that is empty, absolute, or has an empty, `.` or `..` component.
    #[error("invalid archive path {0:?}")]
    InvalidPath(String),
    /// The same path added twice.
    #[error("duplicate archive path {0:?}")]
    Duplicate(String),
    /// An entry whose parent directory is not in the archive.
    #[error("archive path {path:?} has no parent directory entry {parent:?}")]
    MissingParent {
        /// The entry.
        path: String,
        /// Its missing parent.
        parent: String,
    },
    /// Permission bits outside 0o7777.
    #[error("invalid permission bits {perm:#o} for {path:?}")]
    InvalidPerm {
        /// The entry.
        path: String,
        /// The bits given.
        perm: u32,
    },
    /// A file too large for the format's 32-bit size field.
    #[error("{0:?} is too large for a newc archive (4 GiB limit)")]
    TooLarge(String),
    /// An entry given to a [`StreamWriter`] out of archive order (paths must increase).
    #[error(
        "archive path {path:?} comes after {previous:?}: entries must be added sorted by path"
    )]
    OutOfOrder {
        /// The entry.
        path: String,
        /// The entry written before it.
        previous: String,
    },
    /// A file's reader gave fewer bytes than its declared size.
    #[error("{path:?}: expected {expected} bytes, the reader gave {got}")]
    ShortData {
        /// The entry.
        path: String,
        /// The declared size.
        expected: u64,
        /// What was read.
        got: u64,
    },
    /// Reading file data or writing the archive failed.
    #[error("reading file data or writing the archive")]
    Io(#[from] std::io::Error),
    /// Bytes that are not a well-formed newc archive.
    #[error("malformed cpio archive at offset {offset}: {reason}")]
    Malformed {
        /// Byte offset of the problem.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A set of entries, written in a canonical order.
#[derive(Clone, Debug, Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory.
    pub fn add_dir(&mut self, path: &str, perm: u32) -> Result<(), CpioError> {
        self.add(Entry {
            path: path.to_string(),
            perm,
            kind: EntryKind::Dir,
        })
    }

    /// Adds a regular file.
    pub fn add_file(&mut self, path: &str, perm: u32, data: Vec<u8>) -> Result<(), CpioError> {
        self.add(Entry {
            path: path.to_string(),
            perm,
            kind: EntryKind::File(data),
        })
    }

    /// Adds a character device node.
    pub fn add_char_dev(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.add(Entry {
            path: path.to_string(),
            perm,
            kind: EntryKind::CharDev { major, minor },
        })
    }

    /// Adds an entry; its parent directory may be added before or after it.
    pub fn add(&mut self, entry: Entry) -> Result<(), CpioError> {
        validate_path(&entry.path)?;
        if entry.perm & !0o7777 != 0 {
            return Err(CpioError::InvalidPerm {
                path: entry.path,
                perm: entry.perm,
            });
        }
        if let EntryKind::File(data) = &entry.kind {
            if u32::try_from(data.len()).is_err() {
                return Err(CpioError::TooLarge(entry.path));
            }
        }
        if self.entries.contains_key(&entry.path) {
            return Err(CpioError::Duplicate(entry.path));
        }
        self.entries.insert(entry.path.clone(), entry);
        Ok(())
    }

    /// The entries in archive order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Writes the archive: entries sorted by path, then the trailer. Fails if an entry's parent
    /// directory is missing (the kernel would not create it).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CpioError> {
        for entry in self.entries.values() {
            if let Some((parent, _)) = entry.path.rsplit_once('/') {
                let ok = matches!(
                    self.entries.get(parent),
                    Some(Entry {
                        kind: EntryKind::Dir,
                        ..
                    })
                );
                if !ok {
                    return Err(CpioError::MissingParent {
                        path: entry.path.clone(),
                        parent: parent.to_string(),
                    });
                }
            }
        }
        let total: usize = self
            .entries
            .values()
            .map(|e| {
                HEADER_LEN
                    + e.path.len()
                    + 4
                    + match &e.kind {
                        EntryKind::File(d) => d.len() + 3,
                        _ => 0,
                    }
            })
            .sum();
        let mut out = Vec::with_capacity(total + 128);
        for (index, entry) in self.entries.values().enumerate() {
            // Inode 0 is avoided: some unpackers treat it specially.
            let ino =
                u32::try_from(index + 1).map_err(|_| CpioError::TooLarge(entry.path.clone()))?;
            let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match &entry.kind {
                EntryKind::Dir => (S_IFDIR | entry.perm, 2, &[], (0, 0)),
                EntryKind::File(d) => (S_IFREG | entry.perm, 1, d.as_slice(), (0, 0)),
                EntryKind::CharDev { major, minor } => {
                    (S_IFCHR | entry.perm, 1, &[], (*major, *minor))
                }
            };
            write_record(&mut out, &entry.path, ino, mode, nlink, data, rdev);
        }
        write_record(&mut out, TRAILER, 0, 0, 1, &[], (0, 0));
        Ok(out)
    }
}

fn validate_path(path: &str) -> Result<(), CpioError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path == TRAILER
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(CpioError::InvalidPath(path.to_string()))
    } else {
        Ok(())
    }
}

/// Zero bytes that pad `len` bytes to a multiple of 4.
fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// A record's header, name, NUL and the name's padding (a record starts 4-byte aligned, so the
/// padding depends only on the name). File data and its padding follow.
fn record_head(
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    filesize: u32,
    rdev: (u32, u32),
) -> Vec<u8> {
    // Names are short (checked paths).
    let namesize = name.len() as u32 + 1;
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 4);
    out.extend_from_slice(MAGIC);
    for field in [
        ino, mode, 0, // uid
        0, // gid
        nlink, 0, // mtime
        filesize, 0, // devmajor
        0, // devminor
        rdev.0, rdev.1, namesize, 0, // check
    ] {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len() + pad_len(out.len()), 0);
    out
}

fn write_record(
    out: &mut Vec<u8>,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    data: &[u8],
    rdev: (u32, u32),
) {
    // Sizes were checked in `add`.
    out.extend_from_slice(&record_head(
        name,
        ino,
        mode,
        nlink,
        data.len() as u32,
        rdev,
    ));
    out.extend_from_slice(data);
    out.resize(out.len() + pad_len(data.len()), 0);
}

/// Writes a newc archive entry by entry to `W`, file data streamed from readers, in the same
/// canonical form as [`Archive::to_bytes`]: the caller adds entries in archive order (paths
/// strictly increasing in byte order, which puts a directory before its contents), each parent
/// directory before its children; inodes are 1, 2, 3… in that order, mtime 0, owner 0:0, and
/// [`StreamWriter::finish`] writes the trailer. The archive's length is a multiple of 4, so
/// another archive can follow it directly.
#[derive(Debug)]
pub struct StreamWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
    last: Option<String>,
    dirs: BTreeSet<String>,
}

impl<W: Write> StreamWriter<W> {
    /// A writer at the start of an archive.
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            next_ino: 1,
            last: None,
            dirs: BTreeSet::new(),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn admit(&mut self, path: &str, perm: u32) -> Result<u32, CpioError> {
        validate_path(path)?;
        if perm & !0o7777 != 0 {
            return Err(CpioError::InvalidPerm {
                path: path.to_string(),
                perm,
            });
        }
        if let Some(previous) = &self.last {
            if path == previous {
                return Err(CpioError::Duplicate(path.to_string()));
            }
            if path < previous.as_str() {
                return Err(CpioError::OutOfOrder {
                    path: path.to_string(),
                    previous: previous.clone(),
                });
            }
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !self.dirs.contains(parent) {
                return Err(CpioError::MissingParent {
                    path: path.to_string(),
                    parent: parent.to_string(),
                });
            }
        }
        let ino = self.next_ino;
        self.next_ino = ino
            .checked_add(1)
            .ok_or_else(|| CpioError::TooLarge(path.to_string()))?;
        self.last = Some(path.to_string());
        Ok(ino)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), CpioError> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Adds a directory.
    pub fn add_dir(&mut self, path: &str, perm: u32) -> Result<(), CpioError> {
        let ino = self.admit(path, perm)?;
        self.put(&record_head(path, ino, S_IFDIR | perm, 2, 0, (0, 0)))?;
        self.dirs.insert(path.to_string());
        Ok(())
    }

    /// Adds a regular file of `size` bytes, copied from `data` (exactly `size` bytes are read;
    /// a reader that ends early is an error, one that has more is not read further).
    pub fn add_file_from(
        &mut self,
        path: &str,
        perm: u32,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), CpioError> {
        let filesize = u32::try_from(size).map_err(|_| CpioError::TooLarge(path.to_string()))?;
        let ino = self.admit(path, perm)?;
        self.put(&record_head(path, ino, S_IFREG | perm, 1, filesize, (0, 0)))?;
        let got = std::io::copy(&mut data.take(size), &mut self.out)?;
        self.written += got;
        if got != size {
            return Err(CpioError::ShortData {
                path: path.to_string(),
                expected: size,
                got,
            });
        }
        self.put(&[0u8; 3][..pad_len(filesize as usize)])
    }

    /// Writes the trailer and returns the output (not flushed).
    pub fn finish(mut self) -> Result<W, CpioError> {
        self.put(&record_head(TRAILER, 0, 0, 1, 0, (0, 0)))?;
        Ok(self.out)
    }
}

/// One entry read back from an archive, with every header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedEntry {
    /// The name as stored.
    pub name: String,
    /// Inode number.
    pub ino: u32,
    /// Full mode (type and permission bits).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time.
    pub mtime: u32,
    /// Device major/minor of a device node.
    pub rdev: (u32, u32),
    /// File contents (empty for non-files).
    pub data: Vec<u8>,
}

impl ParsedEntry {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
    /// True for a character device.
    pub fn is_char_dev(&self) -> bool {
        self.mode & S_IFMT == S_IFCHR
    }
    /// Permission bits.
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// Reads a newc archive up to and including its trailer (returned as the last entry). Bytes after
/// the trailer must be zero padding.
pub fn parse(bytes: &[u8]) -> Result<Vec<ParsedEntry>, CpioError> {
    let (entries, pos) = parse_prefix(bytes)?;
    if bytes
        .get(pos..)
        .is_some_and(|rest| rest.iter().any(|&b| b != 0))
    {
        return Err(CpioError::Malformed {
            offset: pos,
            reason: "data after the trailer".to_string(),
        });
    }
    Ok(entries)
}

/// Reads the newc archive at the start of `bytes` up to and including its trailer (the last
/// entry) and the trailer's padding to 4 bytes (or to the end of `bytes`, if sooner); returns the
/// entries and the number of bytes read, where whatever follows (another archive, in a
/// concatenated initramfs) begins.
pub fn parse_prefix(bytes: &[u8]) -> Result<(Vec<ParsedEntry>, usize), CpioError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let malformed = |offset: usize, reason: &str| CpioError::Malformed {
        offset,
        reason: reason.to_string(),
    };
    loop {
        if !pos.is_multiple_of(4) {
            return Err(malformed(pos, "header not 4-byte aligned"));
        }
        let header = bytes
            .get(pos..pos + HEADER_LEN)
            .ok_or_else(|| malformed(pos, "truncated header (no trailer)"))?;
        if &header[..6] != MAGIC {
            return Err(malformed(pos, "bad magic (not newc 070701)"));
        }
        let mut fields = [0u32; 13];
        for (i, field) in fields.iter_mut().enumerate() {
            let text = std::str::from_utf8(&header[6 + i * 8..14 + i * 8])
                .map_err(|_| malformed(pos, "non-ASCII header field"))?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(malformed(pos, "non-hex header field"));
            }
            *field = u32::from_str_radix(text, 16)
                .map_err(|_| malformed(pos, "non-hex header field"))?;
        }
        let [ino, mode, uid, gid, nlink, mtime, filesize, _devmaj, _devmin, rmaj, rmin, namesize, check] =
            fields;
        if check != 0 {
            return Err(malformed(pos, "non-zero check field"));
        }
        let name_start = pos + HEADER_LEN;
        let name_end = name_start + namesize as usize;
        let name_bytes = bytes
            .get(name_start..name_end)
            .ok_or_else(|| malformed(name_start, "truncated name"))?;
        let Some((&0, name)) = name_bytes.split_last() else {
            return Err(malformed(name_start, "name not NUL-terminated"));
        };
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| malformed(name_start, "name not UTF-8"))?;
        let data_start = name_end.next_multiple_of(4);
        let data_end = data_start + filesize as usize;
        let data = bytes
            .get(data_start..data_end)
            .ok_or_else(|| malformed(data_start, "truncated file data"))?
            .to_vec();
        pos = data_end.next_multiple_of(4);
        let done = name == TRAILER;
        out.push(ParsedEntry {
            name,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            rdev: (rmaj, rmin),
            data,
        });
        if done {
            break;
        }
    }
    // An archive that ends the buffer may omit the trailer's padding.
    Ok((out, pos.min(bytes.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_only() {
        let bytes = Archive::new().to_bytes().expect("empty archive");
        assert_eq!(bytes.len(), 124); // 110 + "TRAILER!!!\0" (11) padded to 124
        let parsed = parse(&bytes).expect("parse");
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].name, TRAILER);
        assert_eq!(parsed[0].nlink, 1);
    }

    #[test]
    fn rejects_bad_paths() {
        let mut a = Archive::new();
        for p in ["", "/init", "a//b", "a/../b", "./a", "a/", TRAILER] {
            assert!(
                matches!(a.add_dir(p, 0o755), Err(CpioError::InvalidPath(_))),
                "{p:?}"
            );
        }
        a.add_dir("a", 0o755).expect("a");
        assert!(matches!(
            a.add_dir("a", 0o755),
            Err(CpioError::Duplicate(_))
        ));
        assert!(matches!(
            a.add_dir("b", 0o1_0000),
            Err(CpioError::InvalidPerm { .. })
        ));
    }

    #[test]
    fn missing_parent_is_an_error() {
        let mut a = Archive::new();
        a.add_file("lib/x", 0o644, vec![1]).expect("add");
        assert!(matches!(a.to_bytes(), Err(CpioError::MissingParent { .. })));
        a.add_file("lib", 0o644, vec![]).expect("add");
        // A parent that is a file, not a directory, is refused too.
        assert!(matches!(a.to_bytes(), Err(CpioError::MissingParent { .. })));
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(parse(b"").is_err());
        assert!(parse(&[b'x'; 200]).is_err());
        let mut bytes = Archive::new().to_bytes().expect("empty");
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        assert!(
            parse(&bytes).is_ok(),
            "zero padding after the trailer is fine"
        );
        bytes.push(1);
        assert!(parse(&bytes).is_err());
    }
}
