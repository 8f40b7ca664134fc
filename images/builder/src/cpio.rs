//! A deterministic writer (and a reader, for tests and checks) of the "newc" cpio format the
//! Linux kernel unpacks as its initramfs (`Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Determinism: entries are written sorted by path (a parent always sorts before its children),
//! every mtime is 0, every owner is 0:0, inode numbers are 1, 2, 3… in that order, the check
//! field is 0, and the archive ends with the `TRAILER!!!` entry. The same entries always give
//! the same bytes, whatever order they were added in.

use std::collections::BTreeMap;

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

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
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
    // Sizes were checked in `add`; names are short.
    let filesize = data.len() as u32;
    let namesize = name.len() as u32 + 1;
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
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
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
    if bytes
        .get(pos..)
        .is_some_and(|rest| rest.iter().any(|&b| b != 0))
    {
        return Err(malformed(pos, "data after the trailer"));
    }
    Ok(out)
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
