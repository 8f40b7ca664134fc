//! The SSH provider: the QEMU provider's VMs, on a remote bare-metal host reached over SSH.
//!
//! Each VM is one QEMU process on the remote host, started detached under a hard deadline
//! (`setsid timeout -s KILL <lifetime> qemu … -name cdvm-<id>`), with its folder
//! `<remote_dir>/vms/<id>/` (record, bootstrap, console, QEMU log, simulated-SP socket) written
//! before QEMU starts. The guest image files are uploaded once into a content-addressed store
//! (`<remote_dir>/images/<sha256>/<name>`, verified with `sha256sum` on arrival) and reused by
//! every later VM. The QEMU command line is the QEMU provider's ([`cdvm_provider_qemu::argv`])
//! with remote paths.
//!
//! Under [`TeeMode::Sim`] the secure processor stays on this machine: QEMU serves the guest's
//! virtio-serial port as a Unix socket on the remote host, and the provider reaches it through an
//! SSH `direct-streamlocal` channel and signs reports over the launch digest of the image files it
//! uploaded. The host's key is pinned ([`SshConfig::known_host_key`]); any other key is refused
//! before anything is sent. See `docs/ssh-provider.md`.
#![deny(missing_docs)]

mod config;
mod console;
mod error;
mod hostkey;
mod image;
pub mod quote;
mod remote;
mod scripts;
mod sp_bridge;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cdvm_attestation::sim::{self, SimSecureProcessor};
use cdvm_provider_api::host::vm_dir::{self, Meta};
use cdvm_provider_api::{OwnerTag, Provider, ProviderError, VmHandle, VmId, VmSpec, VmState};
use cdvm_provider_qemu::{argv, GuestImage};

pub use config::{Accel, CpuModel, SshConfig, TeeMode};
pub use error::SshError;

use crate::error::tail;
use crate::hostkey::PinnedKey;
use crate::remote::{Remote, Target};
use crate::scripts::VmPaths;

const NAME: &str = "ssh";

/// The longest Unix socket path the remote kernel accepts (`sun_path` holds 108 bytes with NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The SSH provider. See the crate docs.
#[derive(Debug)]
pub struct SshProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: SshConfig,
    target: Target,
    image: GuestImage,
    sp: Arc<SimSecureProcessor>,
    uploads: AtomicU64,
    tasks: Mutex<HashMap<VmId, VmTasks>>,
}

/// The local threads serving one VM (simulated SP bridge, console follower).
#[derive(Debug)]
struct VmTasks {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn backend(call: &str, e: impl std::error::Error + Send + Sync + 'static) -> ProviderError {
    ProviderError::Backend {
        provider: NAME.into(),
        call: call.into(),
        source: Box::new(e),
    }
}

fn invalid(reason: impl Into<String>) -> ProviderError {
    ProviderError::InvalidSpec {
        provider: NAME.into(),
        reason: reason.into(),
    }
}

/// Runs a blocking remote step off the async runtime.
async fn blocking<T: Send + 'static>(
    call: &str,
    f: impl FnOnce() -> Result<T, SshError> + Send + 'static,
) -> Result<T, ProviderError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| backend(call, e)),
        Err(e) => Err(backend(call, e)),
    }
}

/// What the blocking part of a launch did.
enum Launched {
    /// The job already has a VM (a retried launch).
    Existing(VmHandle),
    /// A new VM: its supervisor pid and the launch digest of what it boots.
    New {
        handle: VmHandle,
        pid: u32,
        measurement: cdvm_attestation::Measurement,
    },
}

impl SshProvider {
    /// Checks the configuration, loads the local image, opens (or creates) the simulated secure
    /// processor, and — in sim mode — writes `dev-policy.yaml` (a development policy trusting
    /// this simulated root and the image's launch digest for `policy_vcpus` vCPUs). Does not
    /// connect: every call connects on its own, so a host that is down now can be up later.
    pub fn new(cfg: SshConfig) -> Result<Self, ProviderError> {
        match cfg.tee {
            TeeMode::Sim => {}
            TeeMode::SevSnp => {
                return Err(invalid(
                    "tee: sev-snp is off until an SEV-SNP launch of this image has been tested: \
                     the image has the attester (configfs-tsm, /dev/sev-guest), but this \
                     project's QEMU (7.2) has no sev-snp-guest object to try it with; \
                     use tee: sim",
                ))
            }
            TeeMode::Tdx => {
                return Err(invalid(
                    "tee: tdx is off: no TDX launch of this image has been tested (no TDX \
                     host here), and this provider does not copy the image's TDVF and shim \
                     (OVMF.inteltdx.fd, shimx64.efi) to the host yet; use tee: sim",
                ))
            }
        }
        let pinned =
            PinnedKey::parse(&cfg.known_host_key).map_err(|e| backend("read config", e))?;
        check_remote_dir(&cfg.remote_dir)?;
        let image = GuestImage::load(&cfg.image_dir).map_err(|e| backend("load guest image", e))?;
        std::fs::create_dir_all(&cfg.state_dir).map_err(|e| backend("create state folder", e))?;
        let sp = SimSecureProcessor::load_or_create(&cfg.state_dir)
            .map_err(|e| backend("load simulated secure processor", e))?;
        let target = Target {
            host: cfg.host.clone(),
            port: cfg.port,
            user: cfg.user.clone(),
            private_key: cfg.private_key.clone(),
            pinned,
        };
        let provider = Self {
            inner: Arc::new(Inner {
                target,
                image,
                sp: Arc::new(sp),
                uploads: AtomicU64::new(0),
                tasks: Mutex::new(HashMap::new()),
                cfg,
            }),
        };
        provider.write_dev_policy()?;
        Ok(provider)
    }

    /// How many image files this provider has uploaded since it was made (a VM whose image is
    /// already in the remote store adds none).
    pub fn uploads(&self) -> u64 {
        self.inner.uploads.load(Ordering::Relaxed)
    }

    /// Logs in once and checks that the remote host has what the provider runs there (QEMU and
    /// the shell tools); a wrong host key or a refused login fails here with its own error.
    pub async fn check(&self) -> Result<(), ProviderError> {
        let inner = Arc::clone(&self.inner);
        blocking("check remote host", move || {
            let remote = Remote::connect(&inner.target)?;
            let qemu = quote::quote_path(&inner.cfg.qemu)?;
            remote.run_ok(
                "check remote host",
                &format!(
                    "for t in {qemu} setsid timeout pgrep pkill sha256sum tail; do \
                     command -v -- \"$t\" >/dev/null 2>&1 || {{ echo \"$t is missing\" >&2; exit 1; }}; done"
                ),
                None,
            )?;
            Ok(())
        })
        .await
    }

    fn write_dev_policy(&self) -> Result<(), ProviderError> {
        let cfg = &self.inner.cfg;
        let image = &self.inner.image;
        let measurement = image::launch_digest(image, cfg.policy_vcpus, cfg.cpu)
            .map_err(|e| backend("write dev policy", e))?;
        let policy = sim::dev_policy(
            &self.inner.sp,
            &measurement,
            &format!(
                "SEV-SNP launch digest of {} + {} + cmdline {:?}, {} vCPU {:?}, OVMF {} \
                 (ssh provider, host {})",
                image.kernel.display(),
                image.initrd.display(),
                image.cmdline,
                cfg.policy_vcpus,
                cfg.cpu,
                image.ovmf.display(),
                cfg.host,
            ),
        );
        let yaml = serde_yaml_ng::to_string(&policy).map_err(|e| backend("write dev policy", e))?;
        let text = format!(
            "# DEVELOPMENT ONLY: trusts a SIMULATED secure processor. Gives no confidentiality.\n{yaml}"
        );
        std::fs::write(dev_policy_path(&cfg.state_dir), text)
            .map_err(|e| backend("write dev policy", e))
    }
}

impl Drop for SshProvider {
    /// Ends every local bridge and console thread; the remote VMs stay, for a restarted
    /// orchestrator's reconciler to find.
    fn drop(&mut self) {
        let tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for t in tasks.values() {
            t.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Where the SSH provider writes its development policy (sim mode): the same file name as the
/// QEMU provider's, in this provider's local state folder.
pub fn dev_policy_path(state_dir: &Path) -> PathBuf {
    cdvm_provider_qemu::dev_policy_path(state_dir)
}

fn check_remote_dir(dir: &Path) -> Result<(), ProviderError> {
    let Some(text) = dir.to_str() else {
        return Err(invalid("remote_dir must be UTF-8"));
    };
    if !dir.is_absolute() {
        return Err(invalid(format!("remote_dir {text:?} must be absolute")));
    }
    if text.contains(',') || text.contains('\0') {
        return Err(invalid(format!(
            "remote_dir {text:?} contains a comma or NUL, which QEMU options cannot carry"
        )));
    }
    // The longest path the provider makes: the simulated SP's socket.
    let sample = VmPaths::new(dir, "ssh-0000000000000000")
        .map(|p| p.sp_socket())
        .unwrap_or_default();
    if sample.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(invalid(format!(
            "remote_dir {text:?} is too long: {} would exceed the {MAX_SOCKET_PATH}-byte Unix \
             socket path limit",
            sample.display()
        )));
    }
    Ok(())
}

/// The guest reaches the remote host's loopback through QEMU's user network as 10.0.2.2, as with
/// the local QEMU provider.
pub use cdvm_provider_qemu::guest_bootstrap;

/// The argument that wires the simulated SP's chardev, as `argv::build` writes it (a client
/// socket that the local provider listens on).
const SIM_CHARDEV_PREFIX: &str = "socket,id=simsp,path=";

/// The QEMU arguments for a VM on the remote host: the QEMU provider's command line with remote
/// paths, except that the simulated SP's chardev is made a *server* socket (`server=on,wait=off`):
/// on the remote host QEMU listens and this provider connects to it through SSH.
pub fn remote_argv(
    image: &GuestImage,
    accel: Accel,
    tee: TeeMode,
    cpu: CpuModel,
    vm: &argv::VmArgs<'_>,
) -> Result<Vec<OsString>, SshError> {
    let mut args = argv::build(image, accel, tee, cpu, vm);
    if tee == TeeMode::Sim {
        let chardev = args
            .iter_mut()
            .find(|a| {
                a.to_str()
                    .is_some_and(|s| s.starts_with(SIM_CHARDEV_PREFIX))
            })
            .ok_or_else(|| SshError::Output {
                call: "build QEMU command line".into(),
                reason: format!("argv::build made no {SIM_CHARDEV_PREFIX}… chardev"),
            })?;
        chardev.push(",server=on,wait=off");
    }
    Ok(args)
}

impl Inner {
    fn paths(&self, id: &VmId) -> Option<VmPaths> {
        VmPaths::new(&self.cfg.remote_dir, &id.0)
    }

    /// Uploads every image file the remote store lacks.
    fn ensure_image(&self, remote: &Remote, snap: &image::Snapshot) -> Result<(), SshError> {
        let dests: Vec<PathBuf> = snap
            .files
            .iter()
            .map(|f| f.remote_path(&self.cfg.remote_dir))
            .collect();
        let out = remote.run_ok("look up image files", &scripts::missing(&dests)?, None)?;
        for line in String::from_utf8_lossy(&out).lines() {
            let i: usize = line.trim().parse().map_err(|_| SshError::Output {
                call: "look up image files".into(),
                reason: format!("not an index: {line:?}"),
            })?;
            let (Some(file), Some(dest)) = (snap.files.get(i), dests.get(i)) else {
                continue;
            };
            let upload_err = |reason: String| SshError::Upload {
                name: file.name.clone(),
                remote: dest.display().to_string(),
                reason,
            };
            let result = remote
                .run(
                    &format!("upload {}", file.name),
                    &scripts::upload(dest, &file.sha256)?,
                    Some(&file.bytes),
                )
                .map_err(|e| upload_err(e.to_string()))?;
            match result.status {
                0 => {}
                scripts::HASH_MISMATCH => {
                    return Err(upload_err(format!(
                        "expected SHA-256 {}; {}",
                        file.sha256,
                        tail(&result.stderr, 200)
                    )))
                }
                status => {
                    return Err(upload_err(format!(
                        "exit status {status}: {}",
                        tail(&result.stderr, 400)
                    )))
                }
            }
            self.uploads.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                provider = NAME,
                file = %file.local.display(),
                remote = %dest.display(),
                bytes = file.bytes.len(),
                "uploaded guest image file"
            );
        }
        Ok(())
    }

    /// The blocking part of a launch: record, image, bootstrap, QEMU.
    fn launch_blocking(&self, spec: &VmSpec, id: &VmId) -> Result<Launched, SshError> {
        let paths = self.paths(id).ok_or_else(|| SshError::Output {
            call: "launch".into(),
            reason: format!("unusable VM id {id}"),
        })?;
        let mut meta = Meta {
            id: id.clone(),
            owner: spec.owner.clone(),
            job: spec.job.clone(),
            pid: None,
        };
        // Measure before touching the host: a local problem leaves nothing behind there.
        let snap = image::snapshot(&self.image, spec.class.vcpus, self.cfg.cpu)?;
        let remote = Remote::connect(&self.target)?;

        // Write-ahead: the VM is listed (and destroyable) before its process exists.
        let record = serde_json::to_vec(&meta).map_err(|e| SshError::Output {
            call: "record VM".into(),
            reason: e.to_string(),
        })?;
        let created = remote.run(
            "create VM folder",
            &scripts::create_vm(&paths)?,
            Some(&record),
        )?;
        match created.status {
            0 => {}
            scripts::EXISTS => {
                let handle =
                    match remote.run_ok("read VM record", &scripts::read_meta(&paths)?, None) {
                        Ok(bytes) => serde_json::from_slice::<Meta>(&bytes)
                            .map(|m| m.handle())
                            .unwrap_or_else(|_| meta.handle()),
                        // The folder exists but its record does not (yet): same job, same id.
                        Err(_) => meta.handle(),
                    };
                return Ok(Launched::Existing(handle));
            }
            status => {
                return Err(SshError::Exec {
                    call: "create VM folder".into(),
                    status,
                    stderr_tail: tail(&created.stderr, 400),
                })
            }
        }

        let started =
            (|| {
                self.ensure_image(&remote, &snap)?;
                let bootstrap = serde_json::to_vec_pretty(&guest_bootstrap(&spec.bootstrap))
                    .map_err(|e| SshError::Output {
                        call: "write bootstrap".into(),
                        reason: e.to_string(),
                    })?;
                remote.run_ok(
                    "write bootstrap",
                    &scripts::write_file(&paths.bootstrap())?,
                    Some(&bootstrap),
                )?;
                let marker = paths.marker();
                let bootstrap_path = paths.bootstrap();
                let console_path = paths.console();
                let sp_socket = paths.sp_socket();
                let args = remote_argv(
                    &snap.remote_image(&self.image, &self.cfg.remote_dir),
                    self.cfg.accel,
                    self.cfg.tee,
                    self.cfg.cpu,
                    &argv::VmArgs {
                        name: &marker,
                        vcpus: spec.class.vcpus,
                        memory_mib: spec.class.memory_mib,
                        bootstrap: &bootstrap_path,
                        console: &console_path,
                        sp_socket: &sp_socket,
                        // The disk boot is the local QEMU provider's only (the remote store holds no firmware).
                        boot: argv::VmBoot::Direct,
                    },
                )?;
                let out = remote.run_ok(
                    "start QEMU",
                    &scripts::start(
                        &paths,
                        &self.cfg.qemu,
                        &args,
                        self.cfg.max_lifetime.as_secs(),
                    )?,
                    None,
                )?;
                let text = String::from_utf8_lossy(&out);
                let pid: u32 = text.trim().parse().map_err(|_| SshError::Output {
                    call: "start QEMU".into(),
                    reason: format!("expected a pid, got {:?}", tail(&text, 100)),
                })?;
                meta.pid = Some(pid);
                let record = serde_json::to_vec(&meta).map_err(|e| SshError::Output {
                    call: "record VM".into(),
                    reason: e.to_string(),
                })?;
                remote.run_ok(
                    "record VM",
                    &scripts::write_file(&paths.meta())?,
                    Some(&record),
                )?;
                Ok(pid)
            })();
        match started {
            Ok(pid) => Ok(Launched::New {
                handle: meta.handle(),
                pid,
                measurement: snap.measurement,
            }),
            Err(e) => {
                // Leave nothing behind; the error that matters is the first one.
                if let Err(cleanup) = destroy_remote(&remote, &paths) {
                    tracing::warn!(provider = NAME, vm = %id, error = %cleanup, "cleanup after a failed launch failed");
                }
                Err(e)
            }
        }
    }

    fn keep(&self, id: &VmId, tasks: VmTasks) {
        let old = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), tasks);
        if let Some(old) = old {
            old.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Tells the VM's local threads to end (they notice within half a second).
    fn stop_tasks(&self, id: &VmId) {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(tasks) = tasks {
            tasks.stop.store(true, Ordering::Relaxed);
            drop(tasks.threads);
        }
    }

    /// Why a launch's bridge failed, with the end of QEMU's own log when there is one.
    fn qemu_log_tail(&self, paths: &VmPaths) -> String {
        let read = || -> Result<String, SshError> {
            let remote = Remote::connect(&self.target)?;
            let log = quote::quote_path(&paths.qemu_log())?;
            let out = remote.run("read QEMU log", &format!("tail -c 600 -- {log}"), None)?;
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        read().map(|t| tail(&t, 600)).unwrap_or_default()
    }
}

/// Kills the VM's processes and removes its folder, over an open connection. True if the VM had
/// a folder.
fn destroy_remote(remote: &Remote, paths: &VmPaths) -> Result<bool, SshError> {
    let out = remote.run_ok("destroy VM", &scripts::destroy(paths)?, None)?;
    Ok(String::from_utf8_lossy(&out).contains("existed"))
}

#[async_trait]
impl Provider for SshProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn guest_image(&self) -> &'static str {
        cdvm_protocol::image::GUEST_IMAGE
    }

    async fn launch(&self, spec: &VmSpec) -> Result<VmHandle, ProviderError> {
        let wanted = match self.inner.cfg.tee {
            TeeMode::Sim | TeeMode::SevSnp => "sev-snp",
            TeeMode::Tdx => "tdx",
        };
        if spec.tee != wanted {
            return Err(invalid(format!(
                "this host offers {wanted}, not {:?}",
                spec.tee
            )));
        }
        let id = vm_dir::vm_id_for(NAME, &spec.owner, &spec.job);
        let inner = Arc::clone(&self.inner);
        let (s, i) = (spec.clone(), id.clone());
        let launched = blocking("launch", move || inner.launch_blocking(&s, &i)).await?;
        let (handle, pid, measurement) = match launched {
            Launched::Existing(handle) => return Ok(handle),
            Launched::New {
                handle,
                pid,
                measurement,
            } => (handle, pid, measurement),
        };
        let Some(paths) = self.inner.paths(&id) else {
            return Err(invalid(format!("unusable VM id {id}")));
        };

        // The local side: the simulated SP bridge (sim mode) and the console follower.
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let bridge = if self.inner.cfg.tee == TeeMode::Sim {
            match sp_bridge::spawn(
                self.inner.target.clone(),
                paths.sp_socket(),
                Arc::clone(&self.inner.sp),
                measurement,
                Arc::clone(&stop),
                id.0.clone(),
            ) {
                Ok((thread, ready)) => {
                    threads.push(thread);
                    Some(ready)
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    let _ = self.destroy(&id).await;
                    return Err(backend("start simulated secure processor bridge", e));
                }
            }
        } else {
            None
        };
        if let Some(ready) = bridge {
            let wait = sp_bridge::FIRST_CONNECT + Duration::from_secs(15);
            let outcome = tokio::task::spawn_blocking(move || ready.recv_timeout(wait)).await;
            let failure = match outcome {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(e))) => Some(e.to_string()),
                Ok(Err(e)) => Some(format!("no answer from the bridge: {e}")),
                Err(e) => Some(e.to_string()),
            };
            if let Some(reason) = failure {
                stop.store(true, Ordering::Relaxed);
                let inner = Arc::clone(&self.inner);
                let p = paths.clone();
                let log = tokio::task::spawn_blocking(move || inner.qemu_log_tail(&p))
                    .await
                    .unwrap_or_default();
                let _ = self.destroy(&id).await;
                return Err(backend(
                    "connect to the simulated secure processor socket",
                    SshError::Output {
                        call: format!("direct-streamlocal to {}", paths.sp_socket().display()),
                        reason: if log.is_empty() {
                            reason
                        } else {
                            format!("{reason}; QEMU log: {log}")
                        },
                    },
                ));
            }
        }
        match scripts::console(&paths, pid).and_then(|cmd| {
            console::spawn(
                self.inner.target.clone(),
                cmd,
                Arc::clone(&stop),
                id.0.clone(),
            )
            .map_err(|e| SshError::Channel {
                call: "start console follower".into(),
                source: e,
            })
        }) {
            Ok(thread) => threads.push(thread),
            // The console is for the operator's eyes only; the VM is fine without it.
            Err(e) => tracing::warn!(provider = NAME, vm = %id, error = %e, "no guest console"),
        }
        self.inner.keep(&id, VmTasks { stop, threads });
        tracing::info!(provider = NAME, vm = %id, job = %spec.job, host = %self.inner.cfg.host, pid, "VM launched");
        Ok(handle)
    }

    async fn status(&self, id: &VmId) -> Result<VmState, ProviderError> {
        let Some(paths) = self.inner.paths(id) else {
            return Ok(VmState::Gone);
        };
        let inner = Arc::clone(&self.inner);
        let out = blocking("status", move || {
            let remote = Remote::connect(&inner.target)?;
            remote.run_ok("VM status", &scripts::status(&paths)?, None)
        })
        .await?;
        let text = String::from_utf8_lossy(&out);
        let mut lines = text.lines();
        let state = lines.next().unwrap_or("").trim();
        let meta = lines
            .next()
            .and_then(|l| serde_json::from_str::<Meta>(l).ok());
        let log: Vec<&str> = lines.collect();
        Ok(match (state, meta) {
            ("running", _) => VmState::Running,
            ("exited", Some(meta)) if meta.pid.is_none() => VmState::Pending,
            ("exited", Some(_)) => VmState::Exited {
                detail: match tail(&log.join("\n"), 300) {
                    t if t.is_empty() => "VM process ended".into(),
                    t => format!("VM process ended; QEMU log: {t}"),
                },
            },
            // No record (or it vanished while we looked): destroyed or never made.
            _ => VmState::Gone,
        })
    }

    async fn destroy(&self, id: &VmId) -> Result<(), ProviderError> {
        self.inner.stop_tasks(id);
        let Some(paths) = self.inner.paths(id) else {
            return Ok(());
        };
        let inner = Arc::clone(&self.inner);
        let existed = blocking("destroy", move || {
            let remote = Remote::connect(&inner.target)?;
            destroy_remote(&remote, &paths)
        })
        .await?;
        if existed {
            tracing::info!(provider = NAME, vm = %id, host = %self.inner.cfg.host, "VM destroyed");
        }
        Ok(())
    }

    async fn list(&self, owner: &OwnerTag) -> Result<Vec<VmHandle>, ProviderError> {
        let inner = Arc::clone(&self.inner);
        let out = blocking("list", move || {
            let remote = Remote::connect(&inner.target)?;
            remote.run_ok(
                "list VM records",
                &scripts::list(&inner.cfg.remote_dir)?,
                None,
            )
        })
        .await?;
        let mut handles = Vec::new();
        for line in String::from_utf8_lossy(&out).lines() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Meta>(line) {
                Ok(meta) if &meta.owner == owner => handles.push(meta.handle()),
                Ok(_) => {}
                // A record being replaced right now, or not ours: skip it, do not fail the list.
                Err(e) => tracing::warn!(provider = NAME, error = %e, "unreadable VM record"),
            }
        }
        Ok(handles)
    }
}

#[cfg(test)]
mod test_sshd;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_simulated_sp_chardev_becomes_a_server_socket_on_the_remote_host() {
        let image = GuestImage {
            kernel: "/r/images/aa/vmlinuz".into(),
            initrd: "/r/images/bb/initrd.img".into(),
            cmdline: "console=ttyS0".into(),
            ovmf: "/r/images/cc/OVMF.amdsev.fd".into(),
            tdx: None,
        };
        let vm = argv::VmArgs {
            name: "cdvm-ssh-00",
            vcpus: 1,
            memory_mib: 256,
            bootstrap: Path::new("/r/vms/ssh-00/bootstrap.json"),
            console: Path::new("/r/vms/ssh-00/console.log"),
            sp_socket: Path::new("/r/vms/ssh-00/sp.sock"),
            boot: argv::VmBoot::Direct,
        };
        let local = argv::to_strings(&argv::build(
            &image,
            Accel::Tcg,
            TeeMode::Sim,
            CpuModel::Milan,
            &vm,
        ));
        let remote = argv::to_strings(
            &remote_argv(&image, Accel::Tcg, TeeMode::Sim, CpuModel::Milan, &vm).unwrap(),
        );
        assert_eq!(local.len(), remote.len());
        let changed: Vec<(&String, &String)> =
            local.iter().zip(&remote).filter(|(l, r)| l != r).collect();
        assert_eq!(
            changed,
            [(
                &"socket,id=simsp,path=/r/vms/ssh-00/sp.sock".to_string(),
                &"socket,id=simsp,path=/r/vms/ssh-00/sp.sock,server=on,wait=off".to_string()
            )],
            "only the SP chardev differs from the local QEMU provider's command line"
        );
    }

    #[test]
    fn remote_dirs_qemu_cannot_carry_are_refused() {
        for dir in ["relative/dir", "/srv/a,b", &format!("/{}", "x".repeat(90))] {
            assert!(check_remote_dir(Path::new(dir)).is_err(), "{dir}");
        }
        check_remote_dir(Path::new("/srv/cdvm")).unwrap();
    }
}
