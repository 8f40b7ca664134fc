//! Reading Debian packages (through `dpkg-deb`) and hashing files.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// `dpkg-deb` could not be started or failed.
    #[error("`{command}` failed: {detail}")]
    Tool {
        /// The command line.
        command: String,
        /// Exit status and stderr, or the spawn error.
        detail: String,
    },
    /// A file whose SHA-256 is not the pinned one.
    #[error("{path}: SHA-256 {actual}, expected {expected}")]
    HashMismatch {
        /// The file.
        path: String,
        /// What it hashes to.
        actual: String,
        /// What was pinned.
        expected: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DebError + '_ {
    move |source| DebError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, DebError> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io_err(path))?;
    Ok(hex::encode(hasher.finalize()))
}

/// Passes written bytes on to `W` and hashes them (SHA-256) on the way, so that a large output
/// is hashed without being read back.
#[derive(Debug)]
pub struct Sha256Writer<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: std::io::Write> Sha256Writer<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer (not flushed), the hex SHA-256 and the number of bytes written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.len)
    }
}

impl<W: std::io::Write> std::io::Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes (SHA-256) the bytes read through it.
#[derive(Debug)]
pub struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: std::io::Read> Sha256Reader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// The hex SHA-256 and the number of bytes read.
    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.len)
    }
}

impl<R: std::io::Read> std::io::Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Fails unless `path` hashes to `expected` (hex, any case).
pub fn verify_sha256(path: &Path, expected: &str) -> Result<(), DebError> {
    let actual = sha256_file(path)?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(DebError::HashMismatch {
            path: path.display().to_string(),
            actual,
            expected: expected.to_ascii_lowercase(),
        })
    }
}

fn run(cmd: &mut Command) -> Result<Vec<u8>, DebError> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| DebError::Tool {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(DebError::Tool {
            command: shown,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out.stdout)
}

/// A package's identity from its control file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageId {
    /// `Package:`.
    pub name: String,
    /// `Version:`.
    pub version: String,
}

/// Reads `Package` and `Version` from a `.deb` (`dpkg-deb --field`).
pub fn package_id(deb: &Path) -> Result<PackageId, DebError> {
    let out = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(deb)
        .arg("Package")
        .arg("Version"))?;
    let text = String::from_utf8_lossy(&out);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .ok_or_else(|| DebError::Tool {
                command: format!("dpkg-deb --field {}", deb.display()),
                detail: format!("no {key} field"),
            })
    };
    Ok(PackageId {
        name: field("Package:")?,
        version: field("Version:")?,
    })
}

/// Unpacks a `.deb`'s file system into `dest` (`dpkg-deb --extract`).
pub fn extract(deb: &Path, dest: &Path) -> Result<(), DebError> {
    std::fs::create_dir_all(dest).map_err(io_err(dest))?;
    run(Command::new("dpkg-deb").arg("--extract").arg(deb).arg(dest))?;
    Ok(())
}

/// Decompresses a `.xz` or `.zst` file with the `xz` / `zstd` tool (`.gz` with flate2), so that
/// the guest kernel needs no module decompressor. Other names are returned as read.
pub fn read_decompressed(path: &Path) -> Result<Vec<u8>, DebError> {
    let name = path.to_string_lossy();
    if name.ends_with(".xz") {
        run(Command::new("xz")
            .arg("--decompress")
            .arg("--stdout")
            .arg(path))
    } else if name.ends_with(".zst") {
        run(Command::new("zstd")
            .arg("--decompress")
            .arg("--stdout")
            .arg("--quiet")
            .arg(path))
    } else if name.ends_with(".gz") {
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file), &mut out)
            .map_err(io_err(path))?;
        Ok(out)
    } else {
        std::fs::read(path).map_err(io_err(path))
    }
}

/// Every file under `dir` whose name ends with one of `suffixes`, as paths relative to `dir`,
/// sorted.
pub fn find_files(dir: &Path, suffixes: &[&str]) -> Result<Vec<PathBuf>, DebError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io_err(&d))? {
            let entry = entry.map_err(io_err(&d))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(io_err(&path))?;
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if suffixes.iter().any(|s| name.ends_with(s)) {
                    if let Ok(rel) = path.strip_prefix(dir) {
                        out.push(rel.to_path_buf());
                    }
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Makes a finished temporary file an ordinary readable output (`NamedTempFile` creates 0600)
/// and renames it to `path`.
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<(), DebError> {
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| DebError::Io {
        path: path.display().to_string(),
        source: e.error,
    })?;
    Ok(())
}
