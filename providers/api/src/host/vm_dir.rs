//! One folder per VM under `<state>/vms/<id>/`: bootstrap, metadata, console log, SP socket and
//! whatever else the backend keeps there. The folder is the VM's whole footprint on the host;
//! destroy removes it.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Bootstrap, JobTag, OwnerTag, VmHandle, VmId};

/// What the provider remembers about a VM (survives an orchestrator restart).
#[derive(Debug, Serialize, Deserialize)]
pub struct Meta {
    /// The VM id.
    pub id: VmId,
    /// Owner tag.
    pub owner: OwnerTag,
    /// Job tag.
    pub job: JobTag,
    /// None between the write-ahead record and the spawn.
    pub pid: Option<u32>,
}

impl Meta {
    /// The handle callers see.
    pub fn handle(&self) -> VmHandle {
        VmHandle {
            id: self.id.clone(),
            owner: self.owner.clone(),
            job: self.job.clone(),
        }
    }
}

/// The folder holding every VM folder.
pub fn vms_root(state: &Path) -> PathBuf {
    state.join("vms")
}

/// Deterministic per (owner, job), so a retried launch finds the VM it already made. `prefix`
/// names the backend (`proc`, `qemu`).
pub fn vm_id_for(prefix: &str, owner: &OwnerTag, job: &JobTag) -> VmId {
    let digest = Sha256::new()
        .chain_update(owner.0.as_bytes())
        .chain_update([0u8])
        .chain_update(job.0.as_bytes())
        .finalize();
    VmId(format!("{prefix}-{}", hex::encode(&digest[..8])))
}

/// The longest path a Unix socket can be bound at: `sun_path` holds 108 bytes with the NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// Checks at start-up that every VM's SP socket under `state` (`<state>/vms/<prefix>-<16 hex>/
/// sp.sock`) fits [`MAX_SOCKET_PATH`]: past it, binding fails at each launch, so every job would
/// fail while the daemon looked ready. Returns the refusal to give, naming the length allowed.
pub fn check_socket_path_fits(state: &Path, prefix: &str) -> Result<(), String> {
    let sample = VmDir::new(state, &VmId(format!("{prefix}-{}", "0".repeat(16))));
    let len = sample.sp_socket().as_os_str().len();
    if len <= MAX_SOCKET_PATH {
        return Ok(());
    }
    let state_len = state.as_os_str().len();
    Err(format!(
        "state_dir {} is too long ({state_len} bytes): each VM's secure-processor socket, e.g. \
         {}, would be {len} bytes, past the {MAX_SOCKET_PATH} a Unix socket path may have; use a \
         state_dir of at most {} bytes",
        state.display(),
        sample.sp_socket().display(),
        state_len.saturating_sub(len - MAX_SOCKET_PATH)
    ))
}

/// One VM's folder.
#[derive(Debug)]
pub struct VmDir {
    path: PathBuf,
}

impl VmDir {
    /// The folder of VM `id` under the state folder.
    pub fn new(state: &Path, id: &VmId) -> Self {
        // Ids come from callers; keep them inside the state folder.
        let safe: String =
            id.0.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
        Self {
            path: vms_root(state).join(safe),
        }
    }

    /// Creates the folder with the bootstrap the guest will read and the VM's record, atomically:
    /// both are written into `vms/.new-<id>` and the folder is renamed into place, so a VM folder
    /// never exists without its record (a crash leaves only a `.new-` folder, which
    /// [`sweep`] removes when the provider starts).
    pub fn create(&self, bootstrap: &Bootstrap, meta: &Meta) -> io::Result<()> {
        let name = self
            .path
            .file_name()
            .ok_or_else(|| io::Error::other("VM folder without a name"))?;
        let parent = self
            .path
            .parent()
            .ok_or_else(|| io::Error::other("VM folder without a parent"))?;
        let staging = parent.join(format!("{NEW_PREFIX}{}", name.to_string_lossy()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)?;
        let staged = VmDir {
            path: staging.clone(),
        };
        let bootstrap = serde_json::to_vec_pretty(bootstrap).map_err(io::Error::other)?;
        std::fs::write(staged.bootstrap(), bootstrap)?;
        staged.write_meta(meta)?;
        std::fs::rename(&staging, &self.path)
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bootstrap JSON.
    pub fn bootstrap(&self) -> PathBuf {
        self.path.join("bootstrap.json")
    }

    /// The host side of the simulated secure processor.
    pub fn sp_socket(&self) -> PathBuf {
        self.path.join("sp.sock")
    }

    /// Everything the VM printed.
    pub fn console(&self) -> PathBuf {
        self.path.join("console.log")
    }

    fn meta_path(&self) -> PathBuf {
        self.path.join("meta.json")
    }

    /// Records the VM (atomically: a crash leaves the old record or the new one).
    pub fn write_meta(&self, meta: &Meta) -> io::Result<()> {
        let tmp = self.path.join("meta.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(meta).map_err(io::Error::other)?)?;
        std::fs::rename(tmp, self.meta_path())
    }

    /// The VM's record, if the folder holds one.
    pub fn read_meta(&self) -> Option<Meta> {
        let bytes = std::fs::read(self.meta_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Removes the folder and everything in it, the record last: a crash part-way leaves the
    /// record, so the VM is still listed and its destroy is retried (by the reconciler); a crash
    /// after the record went leaves a folder without one, which [`sweep`] removes.
    pub fn remove(&self) {
        if let Err(e) = self.try_remove() {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove VM folder");
            }
        }
    }

    fn try_remove(&self) -> io::Result<()> {
        for entry in std::fs::read_dir(&self.path)? {
            let path = entry?.path();
            if path == self.meta_path() {
                continue;
            }
            if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        match std::fs::remove_file(self.meta_path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::remove_dir(&self.path)
    }
}

/// Prefix of a VM folder being created ([`VmDir::create`]).
const NEW_PREFIX: &str = ".new-";

/// Removes what crashes leave under `vms/` besides recorded VMs: folders without a record (a
/// destroy that had removed the record) and, when `staging` is true, `.new-` folders of creates
/// that never finished. No VM process runs for either: a VM's process is spawned only after its
/// folder, record included, is in place, and killed before the record goes. `release` is called
/// with each folder's VM id first, for what the backend holds there (a FUSE mount). Call with
/// `staging` only when no launch can be in progress (the provider starting). A folder that cannot
/// be removed is logged and left for the next pass; returns how many were removed.
pub fn sweep(state: &Path, staging: bool, release: &dyn Fn(&VmId)) -> io::Result<usize> {
    let entries = match std::fs::read_dir(vms_root(state)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (is_staging, id) = match name.strip_prefix(NEW_PREFIX) {
            Some(id) => (true, id.to_string()),
            None => (false, name.clone()),
        };
        let dir = VmDir { path };
        let leftover = if is_staging {
            staging
        } else {
            dir.path.is_dir() && !dir.meta_path().exists()
        };
        if !leftover {
            continue;
        }
        release(&VmId(id));
        match std::fs::remove_dir_all(&dir.path) {
            Ok(()) => {
                tracing::info!(path = %dir.path.display(), "removed a VM folder a crash left behind");
                removed += 1;
            }
            Err(e) => {
                tracing::warn!(path = %dir.path.display(), error = %e, "cannot remove a VM folder a crash left behind; retrying on the next pass");
            }
        }
    }
    Ok(removed)
}

/// Every recorded VM (metadata is written before the agent is spawned, so none is missed).
pub fn list(state: &Path) -> io::Result<Vec<Meta>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(vms_root(state)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(NEW_PREFIX) {
            continue;
        }
        let dir = VmDir { path: entry.path() };
        if let Some(meta) = dir.read_meta() {
            out.push(meta);
        }
    }
    Ok(out)
}
