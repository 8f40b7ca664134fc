//! The model files the image carries under `/models/` (for the RAG job, `crates/rag`): a
//! model directory's `models.json` and exactly the files it lists, each checked against the
//! SHA-256 the manifest gives, written as their own **uncompressed** newc archive that comes
//! first in `initrd.img` (see [`crate::initramfs::write_initrd`] and docs/image.md, "Models").
//!
//! The files are never held in memory: [`ModelSet::load`] hashes each one from disk, and
//! [`ModelSet::write_archive`] streams it into the archive, hashing it again on the way, so a
//! file that changed in between fails the build instead of entering the image unchecked.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cpio::{CpioError, StreamWriter};
use crate::deb::{self, Sha256Reader};
use crate::manifest::{ModelRecord, ModelsInput};

/// The directory in the guest (`/models`), as an archive path.
pub const GUEST_DIR: &str = "models";
/// The manifest's file name, in the model directory and in `/models/`.
pub const MANIFEST: &str = "models.json";
/// Mode of `/models`.
pub const DIR_PERM: u32 = 0o755;
/// Mode of every file in `/models/`: read-only, for everyone (the agent is root, but nothing
/// should rewrite a measured model).
pub const FILE_PERM: u32 = 0o444;
/// The manifest version this builder reads (`crates/rag`'s `models::Manifest`).
pub const MANIFEST_VERSION: u32 = 1;

/// Errors reading or checking a model directory.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// `models.json` is not a manifest this builder accepts.
    #[error("{path}: {reason}")]
    Manifest {
        /// The manifest.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A `file` that is not a plain file name (a path, `.`/`..`, hidden, or the manifest's own
    /// name): it could place a file outside `/models/` or over another one.
    #[error("model {name:?}: file {file:?} is not a plain file name")]
    BadFileName {
        /// The model.
        name: String,
        /// Its `file`.
        file: String,
    },
    /// A listed file that does not exist.
    #[error("model {name:?}: {path} is missing (run scripts/fetch-models)")]
    Missing {
        /// The model.
        name: String,
        /// Where it should be.
        path: String,
    },
    /// A listed file that is not a regular file.
    #[error("model {name:?}: {path} is not a regular file")]
    NotAFile {
        /// The model.
        name: String,
        /// The path.
        path: String,
    },
    /// A listed file whose SHA-256 is not the manifest's.
    #[error("model {name:?}: {path} has SHA-256 {actual}, models.json says {expected}")]
    HashMismatch {
        /// The model.
        name: String,
        /// The file.
        path: String,
        /// What it hashes to.
        actual: String,
        /// What the manifest gives.
        expected: String,
    },
    /// A file over the newc format's 4 GiB limit (multi-GB models take the disk path, see
    /// docs/image.md).
    #[error("model {name:?}: {path} is {size} bytes, over the initramfs limit of 4 GiB")]
    TooLarge {
        /// The model.
        name: String,
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// A file that changed between its check and its copy into the image.
    #[error("model {name:?}: {path} changed while the image was being written")]
    Changed {
        /// The model.
        name: String,
        /// The file.
        path: String,
    },
    /// The archive could not be written.
    #[error(transparent)]
    Cpio(#[from] CpioError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelsError + '_ {
    move |source| ModelsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Hex SHA-256 of a file, streamed.
fn hash_file(path: &Path) -> Result<String, ModelsError> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut reader = Sha256Reader::new(std::io::BufReader::with_capacity(1 << 20, file));
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(io_err(path))?;
    Ok(reader.finish().0)
}

/// The fields of `models.json` the builder needs; the rest (role, licence, context length, price
/// unit, source) are the agent's and pass through untouched in the manifest's own bytes.
#[derive(Debug, Deserialize)]
struct RawManifest {
    v: u32,
    models: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
struct RawEntry {
    name: String,
    file: String,
    sha256: String,
}

/// One checked model file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFile {
    /// The model's name in `models.json`.
    pub name: String,
    /// Its file name (in the model directory and in `/models/`).
    pub file: String,
    /// Hex SHA-256 (lowercase), as `models.json` gives it and the file hashed to.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Where it is read from.
    pub path: PathBuf,
}

/// A checked model directory: `models.json` (its bytes) and the files it lists, in its order.
#[derive(Clone, Debug)]
pub struct ModelSet {
    dir: PathBuf,
    manifest: Vec<u8>,
    manifest_sha256: String,
    models: Vec<ModelFile>,
}

/// True for a name that can only mean a file directly in `/models/`.
pub fn is_plain_file_name(file: &str) -> bool {
    !file.is_empty()
        && !file.starts_with('.')
        && !file.contains(['/', '\\', '\0'])
        && file != MANIFEST
}

impl ModelSet {
    /// Reads `dir/models.json` and checks every file it lists: a plain file name, present, a
    /// regular file under 4 GiB, with the SHA-256 the manifest gives (each file is hashed from
    /// disk, not loaded). Files in `dir` that the manifest does not list are ignored.
    pub fn load(dir: &Path) -> Result<Self, ModelsError> {
        let manifest_path = dir.join(MANIFEST);
        let bad = |reason: String| ModelsError::Manifest {
            path: manifest_path.display().to_string(),
            reason,
        };
        let manifest = std::fs::read(&manifest_path).map_err(io_err(&manifest_path))?;
        let raw: RawManifest =
            serde_json::from_slice(&manifest).map_err(|e| bad(format!("not a manifest: {e}")))?;
        if raw.v != MANIFEST_VERSION {
            return Err(bad(format!(
                "version {}; this builder reads {MANIFEST_VERSION}",
                raw.v
            )));
        }
        if raw.models.is_empty() {
            return Err(bad("lists no models".to_string()));
        }
        let mut names = BTreeSet::new();
        let mut files = BTreeSet::new();
        let mut models = Vec::with_capacity(raw.models.len());
        for e in raw.models {
            if e.name.is_empty() || !names.insert(e.name.clone()) {
                return Err(bad(format!(
                    "model name {:?} empty or listed twice",
                    e.name
                )));
            }
            if !is_plain_file_name(&e.file) {
                return Err(ModelsError::BadFileName {
                    name: e.name,
                    file: e.file,
                });
            }
            if !files.insert(e.file.clone()) {
                return Err(bad(format!("file {:?} listed twice", e.file)));
            }
            let hex_ok = e.sha256.len() == 64
                && e.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex_ok {
                return Err(bad(format!(
                    "model {:?}: sha256 must be 64 lowercase hex digits",
                    e.name
                )));
            }
            let path = dir.join(&e.file);
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ModelsError::Missing {
                        name: e.name,
                        path: path.display().to_string(),
                    })
                }
                Err(err) => return Err(io_err(&path)(err)),
            };
            if !meta.is_file() {
                return Err(ModelsError::NotAFile {
                    name: e.name,
                    path: path.display().to_string(),
                });
            }
            if u32::try_from(meta.len()).is_err() {
                return Err(ModelsError::TooLarge {
                    name: e.name,
                    path: path.display().to_string(),
                    size: meta.len(),
                });
            }
            let actual = hash_file(&path)?;
            if actual != e.sha256 {
                return Err(ModelsError::HashMismatch {
                    name: e.name,
                    path: path.display().to_string(),
                    actual,
                    expected: e.sha256,
                });
            }
            models.push(ModelFile {
                name: e.name,
                file: e.file,
                sha256: e.sha256,
                size: meta.len(),
                path,
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest_sha256: deb::sha256_hex(&manifest),
            manifest,
            models,
        })
    }

    /// The directory it was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bytes of `models.json`.
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// Hex SHA-256 of `models.json`.
    pub fn manifest_sha256(&self) -> &str {
        &self.manifest_sha256
    }

    /// The models, in the manifest's order.
    pub fn models(&self) -> &[ModelFile] {
        &self.models
    }

    /// Total size of the model files.
    pub fn total_size(&self) -> u64 {
        self.models.iter().map(|m| m.size).sum()
    }

    /// What the image manifest records.
    pub fn input(&self) -> ModelsInput {
        ModelsInput {
            path: self.dir.display().to_string(),
            manifest_sha256: self.manifest_sha256.clone(),
            models: self
                .models
                .iter()
                .map(|m| ModelRecord {
                    name: m.name.clone(),
                    file: m.file.clone(),
                    sha256: m.sha256.clone(),
                    size: m.size,
                })
                .collect(),
        }
    }

    /// Writes the models archive to `out`: `models/` (0755), then `models/models.json` and
    /// the model files (0444), sorted by path, then the trailer; uncompressed, in the canonical
    /// form of [`crate::cpio`] (mtime 0, owner 0:0, inodes 1..n). Each file is streamed from disk
    /// and hashed again on the way; one that no longer matches fails with
    /// [`ModelsError::Changed`].
    pub fn write_archive<W: Write>(&self, out: W) -> Result<W, ModelsError> {
        let mut w = StreamWriter::new(out);
        w.add_dir(GUEST_DIR, DIR_PERM)?;
        // Archive order: by path. `None` is models.json.
        let mut items: Vec<(String, Option<&ModelFile>)> = self
            .models
            .iter()
            .map(|m| (format!("{GUEST_DIR}/{}", m.file), Some(m)))
            .collect();
        items.push((format!("{GUEST_DIR}/{MANIFEST}"), None));
        items.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, model) in items {
            match model {
                None => w.add_file_from(
                    &path,
                    FILE_PERM,
                    self.manifest.len() as u64,
                    &mut self.manifest.as_slice(),
                )?,
                Some(m) => {
                    let file = std::fs::File::open(&m.path).map_err(io_err(&m.path))?;
                    let mut reader =
                        Sha256Reader::new(std::io::BufReader::with_capacity(1 << 20, file));
                    match w.add_file_from(&path, FILE_PERM, m.size, &mut reader) {
                        Ok(()) => {}
                        Err(CpioError::ShortData { .. }) => {
                            return Err(ModelsError::Changed {
                                name: m.name.clone(),
                                path: m.path.display().to_string(),
                            })
                        }
                        Err(e) => return Err(e.into()),
                    }
                    let (sha256, _) = reader.finish();
                    if sha256 != m.sha256 {
                        return Err(ModelsError::Changed {
                            name: m.name.clone(),
                            path: m.path.display().to_string(),
                        });
                    }
                }
            }
        }
        Ok(w.finish()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_file_names() {
        for ok in ["a.gguf", "model-q4_1.gguf", "x", "a..b"] {
            assert!(is_plain_file_name(ok), "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "../x.gguf",
            "a/b.gguf",
            "/etc/passwd",
            "a\\b",
            "a\0b",
            MANIFEST,
        ] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }
}
