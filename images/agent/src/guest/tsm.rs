//! configfs-tsm, the kernel's TEE report interface (Linux ≥ 6.7, `CONFIG_TSM_REPORTS`): the
//! `tsm` module registers `tsm/report` in configfs, and a provider driver (`sev_guest` on
//! SEV-SNP, `tdx_guest` on TDX) registers itself with it when its hardware is there.
//!
//! At boot the agent mounts configfs and looks at the report directory without creating anything
//! ([`probe`]); the configfs-tsm attester uses the same root (a path option, default
//! [`REPORT_ROOT`]) to make its report entries. Under TCG the directory is present and empty and no
//! provider is registered: `sev-guest` and `tdx-guest` refuse to load (ENODEV) without their
//! hardware.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

/// Where configfs is mounted.
pub(crate) const CONFIGFS: &str = "/sys/kernel/config";
/// The configfs-tsm report directory under the usual configfs mount.
pub(crate) const REPORT_ROOT: &str = "/sys/kernel/config/tsm/report";
/// Where the kernel lists loaded modules.
pub(crate) const SYS_MODULE: &str = "/sys/module";
/// The drivers that register a configfs-tsm provider, by module name. The `provider` attribute
/// of a report entry carries the same name.
pub(crate) const PROVIDERS: &[(&str, &str)] = &[
    ("sev_guest", "SEV-SNP"),
    ("tdx_guest", "TDX"),
    ("arm_cca_guest", "Arm CCA"),
];

/// What [`probe`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TsmState {
    /// The report directory does not exist (no configfs, no `tsm` module, or an older kernel).
    Absent { root: PathBuf },
    /// The report directory exists.
    Present {
        root: PathBuf,
        /// Loaded provider drivers (module names, as in [`PROVIDERS`]); a provider module stays
        /// loaded only when its hardware is there.
        providers: Vec<String>,
        /// Report entries already in the directory (made by someone else; we make none here).
        entries: Vec<String>,
    },
}

impl fmt::Display for TsmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TsmState::Absent { root } => write!(
                f,
                "configfs-tsm: {} absent (no configfs-tsm in this kernel, or configfs not mounted)",
                root.display()
            ),
            TsmState::Present {
                root,
                providers,
                entries,
            } => {
                write!(f, "configfs-tsm: {} present, ", root.display())?;
                if providers.is_empty() {
                    write!(f, "no TSM provider registered (no SEV-SNP/TDX hardware)")?;
                } else {
                    let named: Vec<String> = providers
                        .iter()
                        .map(|p| match PROVIDERS.iter().find(|(m, _)| m == p) {
                            Some((_, tee)) => format!("{p} ({tee})"),
                            None => p.clone(),
                        })
                        .collect();
                    write!(f, "TSM provider {}", named.join(", "))?;
                }
                if !entries.is_empty() {
                    write!(
                        f,
                        "; {} report entries already there: {}",
                        entries.len(),
                        entries.join(", ")
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// Mounts configfs on [`CONFIGFS`] (the `configfs` module must be loaded: the kernel makes the
/// mount point when it is). Already mounted is fine.
pub(crate) fn mount_configfs() -> anyhow::Result<()> {
    let none: Option<&str> = None;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    match mount(Some("configfs"), CONFIGFS, Some("configfs"), flags, none) {
        Ok(()) | Err(Errno::EBUSY) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("mounting configfs on {CONFIGFS}")),
    }
}

/// Looks at the configfs-tsm report directory `root` and at the loaded modules under
/// `sys_module` (normally [`REPORT_ROOT`] and [`SYS_MODULE`]). Reads only: creates no entry.
pub(crate) fn probe(root: &Path, sys_module: &Path) -> anyhow::Result<TsmState> {
    let listing = match std::fs::read_dir(root) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(TsmState::Absent {
                root: root.to_path_buf(),
            })
        }
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    let mut entries = Vec::new();
    for entry in listing {
        let entry = entry.with_context(|| format!("listing {}", root.display()))?;
        entries.push(entry.file_name().to_string_lossy().into_owned());
    }
    entries.sort();
    let providers = PROVIDERS
        .iter()
        .map(|(module, _)| *module)
        .filter(|module| sys_module.join(module).is_dir())
        .map(str::to_string)
        .collect();
    Ok(TsmState::Present {
        root: root.to_path_buf(),
        providers,
        entries,
    })
}

/// Boot step: mount configfs, probe [`REPORT_ROOT`], and log one line saying what is there.
/// Never fails the boot: the simulated secure processor needs none of this.
pub(crate) fn log_state() -> Option<TsmState> {
    if let Err(e) = mount_configfs() {
        tracing::warn!("configfs-tsm: {e:#}");
    }
    match probe(Path::new(REPORT_ROOT), Path::new(SYS_MODULE)) {
        Ok(state) => {
            tracing::info!("{state}");
            Some(state)
        }
        Err(e) => {
            tracing::warn!("configfs-tsm: {e:#}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "cdvm-agent-tsm-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn absent_report_directory() {
        let dir = TempDir::new("absent");
        let state = probe(&dir.0.join("tsm/report"), &dir.0).unwrap();
        assert!(matches!(state, TsmState::Absent { .. }));
        assert!(state.to_string().ends_with(
            "tsm/report absent (no configfs-tsm in this kernel, or configfs not mounted)"
        ));
    }

    #[test]
    fn present_and_empty_without_a_provider() {
        let dir = TempDir::new("empty");
        let root = dir.0.join("tsm/report");
        std::fs::create_dir_all(&root).unwrap();
        let modules = dir.0.join("module");
        std::fs::create_dir_all(modules.join("tsm")).unwrap();
        let state = probe(&root, &modules).unwrap();
        assert_eq!(
            state,
            TsmState::Present {
                root: root.clone(),
                providers: vec![],
                entries: vec![]
            }
        );
        assert_eq!(
            state.to_string(),
            format!(
                "configfs-tsm: {} present, no TSM provider registered (no SEV-SNP/TDX hardware)",
                root.display()
            )
        );
    }

    #[test]
    fn provider_and_entries_are_named() {
        let dir = TempDir::new("provider");
        let root = dir.0.join("report");
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        let modules = dir.0.join("module");
        std::fs::create_dir_all(modules.join("sev_guest")).unwrap();
        let state = probe(&root, &modules).unwrap();
        assert_eq!(
            state.to_string(),
            format!(
                "configfs-tsm: {} present, TSM provider sev_guest (SEV-SNP); 2 report entries \
                 already there: a, b",
                root.display()
            )
        );
    }
}
