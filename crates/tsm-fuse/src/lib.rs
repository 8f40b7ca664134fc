//! A FUSE emulation of the Linux configfs-tsm report directory, for development and tests on
//! machines without SEV-SNP or TDX hardware (configfs itself cannot be faked here; `/dev/fuse`
//! can, as root).
//!
//! It keeps the kernel's semantics (drivers/virt/coco/tsm.c and
//! `Documentation/ABI/testing/configfs-tsm`): `mkdir` makes a report entry whose attribute set
//! depends on the provider (`privlevel`/`privlevel_floor`/`auxblob` only for `sev_guest`); every
//! write advances `generation`; `inblob` takes at most 64 bytes and is committed when the file is
//! closed; `outblob` is produced on read, once per generation; `provider` and `outblob` fail with
//! ENXIO when no provider is registered; `outblob` fails with EINVAL before `inblob` was written.
//! Reports come from a [`ReportBackend`] (the simulated secure processor), so the guest agent's
//! production configfs-tsm client runs unchanged against it. [`Faults`] injects what a real
//! system can do: another writer between our write and read, a busy firmware, no provider, an
//! empty certificate table.
//!
//! It gives NO confidentiality: it exists so the hardware code path is exercised end to end.
#![deny(missing_docs)]

mod backend;
mod fs;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use thiserror::Error;

pub use backend::{AuxBlob, BackendError, ReportBackend, SimSnpBackend, SimTdxBackend};

/// Fault injection, shared with a mounted filesystem (change it while mounted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Act as if no TSM provider were registered (ENXIO on `provider` and `outblob`).
    pub no_provider: bool,
    /// Answer this many `outblob` reads with EBUSY before producing a report.
    pub busy_reads: u32,
    /// After producing an `outblob`, advance `generation` once, as another process writing the
    /// entry's `inblob` at that moment would.
    pub interfere_after_outblob: bool,
}

/// Failure to mount the emulation.
#[derive(Debug, Error)]
pub enum MountError {
    /// `/dev/fuse` is missing: FUSE is unavailable on this machine.
    #[error("FUSE is unavailable: /dev/fuse does not exist")]
    NoFuse,
    /// Creating the mount point failed.
    #[error("creating the mount point {path}")]
    MountPoint {
        /// The directory.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The FUSE mount itself failed (not root, or no `fusermount3`).
    #[error("mounting the configfs-tsm emulation at {path}")]
    Mount {
        /// The mount point.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// A mounted emulation; unmounted when dropped.
pub struct MountedTsm {
    mountpoint: PathBuf,
    faults: Arc<Mutex<Faults>>,
    // Dropping the session unmounts the filesystem.
    _session: fuser::BackgroundSession,
}

impl std::fmt::Debug for MountedTsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountedTsm")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

impl MountedTsm {
    /// The mount point: it plays `/sys/kernel/config/tsm`.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The report directory the guest's client is pointed at (`<mountpoint>/report`).
    pub fn report_root(&self) -> PathBuf {
        self.mountpoint.join("report")
    }

    /// Changes the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }
}

/// Whether this machine can mount FUSE filesystems at all (`/dev/fuse` exists). Mounting may
/// still fail (not root, no `fusermount3`): [`mount`] says why.
pub fn fuse_available() -> bool {
    Path::new("/dev/fuse").exists()
}

/// Mounts the emulation at `mountpoint` (created if missing), reports produced by `backend`.
pub fn mount(
    mountpoint: impl Into<PathBuf>,
    backend: Arc<dyn ReportBackend>,
) -> Result<MountedTsm, MountError> {
    let mountpoint = mountpoint.into();
    if !fuse_available() {
        return Err(MountError::NoFuse);
    }
    std::fs::create_dir_all(&mountpoint).map_err(|source| MountError::MountPoint {
        path: mountpoint.display().to_string(),
        source,
    })?;
    let faults = Arc::new(Mutex::new(Faults::default()));
    let filesystem = fs::TsmFs::new(backend, Arc::clone(&faults));
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("cdvm-tsm".into()),
        fuser::MountOption::Subtype("configfs-tsm".into()),
    ];
    config.n_threads = Some(1);
    let session = fuser::spawn_mount(filesystem, &mountpoint, &config).map_err(|source| {
        MountError::Mount {
            path: mountpoint.display().to_string(),
            source,
        }
    })?;
    Ok(MountedTsm {
        mountpoint,
        faults,
        _session: session,
    })
}

/// Detaches a mount left behind by a crashed process (`umount2(MNT_DETACH)`); `Ok` when
/// nothing is mounted there. Destroy paths call it so that they stay idempotent.
pub fn detach_stale(mountpoint: &Path) -> std::io::Result<()> {
    use nix::errno::Errno;
    match nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point; ENOENT: no such directory.
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => Ok(()),
        Err(e) => Err(std::io::Error::from(e)),
    }
}
