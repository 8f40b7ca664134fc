//! The image's input files checked against `images/inputs.lock` ([`crate::lock`]): where each
//! one is cached, whether it is the pinned file, and the check `build` runs before it reads
//! anything, so an input that differs from the lock stops the build with an error naming it.

use std::path::{Path, PathBuf};

use crate::deb;
use crate::lock::{InputId, Lock, LockError};
use crate::models::{ModelSet, MANIFEST};

/// Where the inputs live: the repository (committed ones), the package cache and the models.
#[derive(Clone, Debug)]
pub struct Places {
    /// The repository root (the lock's relative paths start here).
    pub repo: PathBuf,
    /// `target/image-cache/`: the Debian packages, as `apt-get download` names them. It is the
    /// cache of record: a rebuild reads it without the network.
    pub cache: PathBuf,
    /// `target/models/`: `models.json` and the files it lists (scripts/fetch-models).
    pub models: PathBuf,
}

impl Places {
    /// The defaults `scripts/build-image` uses, under `repo`.
    pub fn under(repo: &Path) -> Self {
        Places {
            repo: repo.to_path_buf(),
            cache: repo.join("target/image-cache"),
            models: repo.join("target/models"),
        }
    }

    /// A repository path, without a leading `./` when the repository is the current folder (so
    /// the manifest records what the script passes).
    fn in_repo(&self, rel: &str) -> PathBuf {
        if self.repo == Path::new(".") {
            PathBuf::from(rel)
        } else {
            self.repo.join(rel)
        }
    }

    /// Where the build reads input `id`: the cached `.deb`, the committed one, or the model
    /// directory.
    pub fn path(&self, lock: &Lock, id: InputId) -> PathBuf {
        match id {
            InputId::Kernel | InputId::EfiStub | InputId::Ovmf | InputId::Shim => {
                // debian() cannot fail for these ids.
                let file = lock.debian(id).map(|p| p.file.as_str()).unwrap_or_default();
                self.cache.join(file)
            }
            InputId::OvmfAmdsev => self.in_repo(&lock.ovmf_amdsev.path),
            InputId::OvmfInteltdx => self.in_repo(&lock.ovmf_inteltdx.path),
            InputId::Models => self.models.clone(),
        }
    }
}

/// Hashes `path` and compares it with the pin of `id`; returns the SHA-256.
pub fn verify_file(id: InputId, path: &Path, expected: &str) -> Result<String, LockError> {
    if !path.is_file() {
        return Err(LockError::Missing {
            id,
            path: path.display().to_string(),
        });
    }
    let actual = deb::sha256_file(path).map_err(|source| LockError::Deb { id, source })?;
    if actual != expected {
        return Err(LockError::Mismatch {
            id,
            path: path.display().to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(actual)
}

/// Checks a `.deb` for input `id` (a Debian entry or a committed one): its SHA-256, then the
/// package name and version its control file gives. Returns the SHA-256.
pub fn verify_deb(lock: &Lock, id: InputId, path: &Path) -> Result<String, LockError> {
    let (package, version) = match id {
        InputId::OvmfAmdsev | InputId::OvmfInteltdx => {
            let p = lock.committed(id)?;
            (&p.package, &p.version)
        }
        _ => {
            let p = lock.debian(id)?;
            (&p.package, &p.version)
        }
    };
    let sha256 = verify_file(id, path, lock.sha256(id))?;
    // The hash already pins the bytes; this catches a lock edited by hand with a hash that
    // belongs to another entry's package.
    let got = deb::package_id(path).map_err(|source| LockError::Deb { id, source })?;
    for (field, expected, actual) in [
        ("Package", package, &got.name),
        ("Version", version, &got.version),
    ] {
        if expected != actual {
            return Err(LockError::Package {
                id,
                path: path.display().to_string(),
                field,
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
    }
    Ok(sha256)
}

/// Debian's `ovmf` exactly as the lock pins it (the cached `.deb` in `places`), checked with
/// [`verify_deb`] and extracted into `dest`. Returns the folder holding `OVMF_CODE_4M.fd` and
/// `OVMF_VARS_4M.fd` (its `usr/share/OVMF`), for booting `disk.raw` with a firmware that does not
/// depend on which `ovmf` the machine's apt installed.
pub fn extract_ovmf(lock: &Lock, places: &Places, dest: &Path) -> Result<PathBuf, LockError> {
    let id = InputId::Ovmf;
    let deb = places.path(lock, id);
    verify_deb(lock, id, &deb)?;
    deb::extract(&deb, dest).map_err(|source| LockError::Deb { id, source })?;
    Ok(dest.join("usr/share/OVMF"))
}

/// Checks that a model directory's `models.json` is the pinned one (its files are checked
/// against it by [`ModelSet::load`]).
pub fn verify_models(lock: &Lock, dir: &Path) -> Result<(), LockError> {
    verify_file(InputId::Models, &dir.join(MANIFEST), &lock.models.sha256).map(drop)
}

/// One input's state in the cache.
#[derive(Debug)]
pub struct Checked {
    /// The input.
    pub id: InputId,
    /// Where it was looked for.
    pub path: PathBuf,
    /// `Ok` or why not.
    pub result: Result<(), String>,
    /// Missing (rather than different): fetching it fixes it.
    pub missing: bool,
}

/// Checks every input against the lock: each Debian package in the cache, the committed
/// firmware, the committed `models.json` and the model directory with the files it lists.
pub fn check_all(lock: &Lock, places: &Places) -> Vec<Checked> {
    InputId::ALL
        .into_iter()
        .map(|id| {
            let path = places.path(lock, id);
            let result = match id {
                InputId::Models => check_models(lock, places),
                _ => verify_deb(lock, id, &path).map(drop),
            };
            let missing = matches!(result, Err(LockError::Missing { .. }));
            Checked {
                id,
                path,
                result: result.map_err(|e| crate::error_chain(&e)),
                missing,
            }
        })
        .collect()
}

fn check_models(lock: &Lock, places: &Places) -> Result<(), LockError> {
    // The committed manifest first: the lock must agree with the repository itself.
    let committed = places.in_repo(&lock.models.path);
    verify_file(InputId::Models, &committed, &lock.models.sha256)?;
    verify_models(lock, &places.models)?;
    ModelSet::load(&places.models).map_err(|e| LockError::Content {
        id: InputId::Models,
        reason: crate::error_chain(&e),
    })?;
    Ok(())
}
