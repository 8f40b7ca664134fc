//! The QEMU provider: each VM is one QEMU process booting the measured guest image (a Debian
//! kernel and an initramfs whose /init is the agent).
//!
//! Under [`TeeMode::Sim`] the VM is a plain q35 machine (TCG or KVM) and the provider hosts a
//! simulated secure processor, reached by the guest over virtio-serial, that signs reports
//! carrying the SEV-SNP launch digest of the kernel, initrd and command line it actually started
//! QEMU with: boot a different kernel or initrd and the policy check fails. Under
//! [`TeeMode::SevSnp`] / [`TeeMode::Tdx`] QEMU gets the confidential-guest objects and the
//! hardware signs (on hosts that have it; see `argv.rs` for the exact command lines).
//!
//! [`Boot::Direct`] loads the kernel, initrd and command line through QEMU; [`Boot::Disk`] boots
//! the image's `disk.raw` through UEFI firmware as a cloud does (simulated mode only; what the
//! simulator reports for it: [`disk`]).
#![deny(missing_docs)]

pub mod argv;
mod config;
mod console;
pub mod disk;
mod image;
mod sp_serial;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cdvm_attestation::sim::{self, SimSecureProcessor};
use cdvm_attestation::Measurement;
use cdvm_provider_api::host;
use cdvm_provider_api::host::process::{self, Marker};
use cdvm_provider_api::host::stamp_cache::StampCache;
use cdvm_provider_api::host::vm_dir::{self, VmDir};
use cdvm_provider_api::{
    Bootstrap, OwnerTag, Provider, ProviderError, VmHandle, VmId, VmSpec, VmState,
};
use tokio::task::JoinHandle;

pub use config::{Accel, Boot, CpuModel, QemuConfig, TeeMode, UefiFirmware};
pub use image::{built_image_dir, GuestImage, TdxBoot, IMAGE_GUEST_MEMORY_MIB};

const NAME: &str = "qemu";

/// Why the QEMU provider could not start.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// The image folder is incomplete.
    #[error("guest image {dir}: {reason}")]
    Image {
        /// The image folder.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The QEMU provider. See the crate docs.
#[derive(Debug)]
pub struct QemuProvider {
    cfg: QemuConfig,
    image: GuestImage,
    /// The image's `disk.raw` (booted only with [`Boot::Disk`]).
    disk: PathBuf,
    sp: Arc<SimSecureProcessor>,
    tasks: Mutex<HashMap<VmId, Vec<JoinHandle<()>>>>,
    digests: StampCache<Measurement>,
}

fn launch_digest(
    image: &GuestImage,
    boot: &Boot,
    disk: &Path,
    cpu: CpuModel,
    vcpus: u32,
) -> Result<Measurement, ProviderError> {
    match boot {
        Boot::Direct => image
            .launch_digest(vcpus, cpu)
            .map_err(|e| backend("compute launch digest", e)),
        Boot::Disk(firmware) => disk::sim_measurement(firmware, disk, vcpus, cpu)
            .map_err(|e| backend("measure the UEFI disk launch", e)),
    }
}

fn backend(call: &str, e: impl std::error::Error + Send + Sync + 'static) -> ProviderError {
    ProviderError::Backend {
        provider: NAME.into(),
        call: call.into(),
        source: Box::new(e),
    }
}

impl QemuProvider {
    /// Loads the image, opens (or creates) the simulated secure processor, and — in sim mode —
    /// writes `dev-policy.yaml`: a development policy trusting this simulated root and the image's
    /// launch digest for `policy_vcpus` vCPUs.
    pub fn new(cfg: QemuConfig) -> Result<Self, ProviderError> {
        let refuse = |reason: &str| {
            Err(ProviderError::InvalidSpec {
                provider: NAME.into(),
                reason: reason.into(),
            })
        };
        // Fail closed at start rather than boot guests that can never attest.
        match cfg.tee {
            TeeMode::Sim => {}
            TeeMode::SevSnp => {
                return refuse(
                    "tee: sev-snp is off until an SEV-SNP launch of this image has been tested: \
                     the image has the attester (configfs-tsm, /dev/sev-guest), but this \
                     project's QEMU (7.2) has no sev-snp-guest object to try it with; \
                     use tee: sim",
                )
            }
            TeeMode::Tdx => {
                return refuse(
                    "tee: tdx is off until a TDX launch of this image has been tested: the image \
                     carries the TDVF and shim a TD boots (OVMF.inteltdx.fd, shimx64.efi) and \
                     policies/image-tdx.yaml pins what they measure, but this project's QEMU \
                     (7.2) has no tdx-guest object and no TDX host to try it on; use tee: sim",
                )
            }
        }
        let image = GuestImage::load(&cfg.image_dir).map_err(|e| backend("load guest image", e))?;
        let disk = cfg.image_dir.join(disk::DISK_FILE);
        let mut paths = vec![&cfg.state_dir, &image.kernel, &image.initrd, &image.ovmf];
        if let Boot::Disk(firmware) = &cfg.boot {
            for (path, what) in [
                (&disk, "the image's disk (run scripts/build-image)"),
                (
                    &firmware.code,
                    "the UEFI firmware code (Debian: apt install ovmf)",
                ),
                (
                    &firmware.vars_template,
                    "the UEFI variable store template (Debian: apt install ovmf)",
                ),
            ] {
                if !path.is_file() {
                    return refuse(&format!(
                        "boot: disk needs {what}: {} is missing",
                        path.display()
                    ));
                }
                paths.push(path);
            }
        }
        for path in paths {
            if !argv::usable_in_option(path) {
                return Err(ProviderError::InvalidSpec {
                    provider: NAME.into(),
                    reason: format!(
                        "{} contains a comma, which QEMU options cannot carry",
                        path.display()
                    ),
                });
            }
        }
        if cfg.tee == TeeMode::Sim {
            // Only the simulated secure processor listens on a socket in the VM's folder.
            if let Err(reason) = vm_dir::check_socket_path_fits(&cfg.state_dir, NAME) {
                return refuse(&reason);
            }
        }
        std::fs::create_dir_all(vm_dir::vms_root(&cfg.state_dir))
            .map_err(|e| backend("create state folder", e))?;
        // No launch is in progress yet: half-created folders of a crashed run can go too.
        vm_dir::sweep(&cfg.state_dir, true, &|_| {})
            .map_err(|e| backend("remove VM folders a crash left", e))?;
        let sp = SimSecureProcessor::load_or_create(&cfg.state_dir)
            .map_err(|e| backend("load simulated secure processor", e))?;
        let provider = Self {
            image,
            disk,
            sp: Arc::new(sp),
            tasks: Mutex::new(HashMap::new()),
            digests: StampCache::new(NAME),
            cfg,
        };
        if provider.cfg.tee == TeeMode::Sim {
            provider.write_dev_policy()?;
        }
        Ok(provider)
    }

    fn write_dev_policy(&self) -> Result<(), ProviderError> {
        let vcpus = self.cfg.policy_vcpus;
        let measurement = self.launch_digest(vcpus)?;
        let source = match &self.cfg.boot {
            Boot::Direct => format!(
                "SEV-SNP launch digest of {} + {} + cmdline {:?}, {} vCPU {:?}, OVMF {}",
                self.image.kernel.display(),
                self.image.initrd.display(),
                self.image.cmdline,
                vcpus,
                self.cfg.cpu,
                self.image.ovmf.display()
            ),
            Boot::Disk(firmware) => format!(
                "simulated UEFI disk launch (cdvm_provider_qemu::disk): firmware {} + disk {}, \
                 {} vCPU {:?}",
                firmware.code.display(),
                self.disk.display(),
                vcpus,
                self.cfg.cpu
            ),
        };
        let policy = sim::dev_policy(&self.sp, &measurement, &source);
        let yaml = serde_yaml_ng::to_string(&policy).map_err(|e| backend("write dev policy", e))?;
        let text = format!(
            "# DEVELOPMENT ONLY: trusts a SIMULATED secure processor. Gives no confidentiality.\n{yaml}"
        );
        std::fs::write(dev_policy_path(&self.cfg.state_dir), text)
            .map_err(|e| backend("write dev policy", e))
    }

    /// What the simulated secure processor reports for a launch of the files as they are on
    /// disk now: the SEV-SNP launch digest of a direct boot, or [`disk::sim_measurement`].
    fn launch_digest(&self, vcpus: u32) -> Result<Measurement, ProviderError> {
        launch_digest(&self.image, &self.cfg.boot, &self.disk, self.cfg.cpu, vcpus)
    }

    /// [`Self::launch_digest`] for a launch: hashed again only when one of the files changed,
    /// on a blocking thread (issue 16, fault 7: the initrd alone is about 150 MB).
    async fn launch_digest_cached(&self, vcpus: u32) -> Result<Measurement, ProviderError> {
        let files = match &self.cfg.boot {
            Boot::Direct => vec![
                self.image.ovmf.clone(),
                self.image.kernel.clone(),
                self.image.initrd.clone(),
            ],
            Boot::Disk(firmware) => vec![firmware.code.clone(), self.disk.clone()],
        };
        let (image, boot, disk, cpu) = (
            self.image.clone(),
            self.cfg.boot.clone(),
            self.disk.clone(),
            self.cfg.cpu,
        );
        self.digests
            .get(u64::from(vcpus), files, move || {
                launch_digest(&image, &boot, &disk, cpu, vcpus)
            })
            .await
    }

    fn vm(&self, id: &VmId) -> VmDir {
        VmDir::new(&self.cfg.state_dir, id)
    }

    fn stop_tasks(&self, id: &VmId) {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        for task in tasks.into_iter().flatten() {
            task.abort();
        }
    }

    fn keep_task(&self, id: &VmId, task: JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.clone())
            .or_default()
            .push(task);
    }

    async fn launch_new(
        &self,
        spec: &VmSpec,
        id: &VmId,
        dir: &VmDir,
    ) -> Result<u32, ProviderError> {
        if self.cfg.tee == TeeMode::Sim {
            // Measure what is booted, right before booting it: a swapped file changes the report.
            let measurement = self.launch_digest_cached(spec.class.vcpus).await?;
            let server = sp_serial::serve(dir.sp_socket(), Arc::clone(&self.sp), measurement)
                .map_err(|e| backend("start simulated secure processor", e))?;
            self.keep_task(id, server);
        }
        let name = marker(id).value;
        let vars;
        let boot = match &self.cfg.boot {
            Boot::Direct => argv::VmBoot::Direct,
            Boot::Disk(firmware) => {
                vars = disk::vars_copy(firmware, dir.path())
                    .map_err(|e| backend("copy the UEFI variable store", e))?;
                argv::VmBoot::Disk {
                    code: &firmware.code,
                    vars: &vars,
                    disk: &self.disk,
                }
            }
        };
        let args = argv::build(
            &self.image,
            self.cfg.accel,
            self.cfg.tee,
            self.cfg.cpu,
            &argv::VmArgs {
                name: &name,
                vcpus: spec.class.vcpus,
                memory_mib: spec.class.memory_mib,
                bootstrap: &dir.bootstrap(),
                console: &dir.console(),
                sp_socket: &dir.sp_socket(),
                boot,
            },
        );
        let mut command = tokio::process::Command::new(&self.cfg.qemu);
        command.args(args);
        let pid = process::spawn(
            command,
            &dir.path().join("qemu.log"),
            Some(self.cfg.max_lifetime),
        )
        .map_err(|e| backend(&format!("start {}", self.cfg.qemu.display()), e))?;
        self.keep_task(id, console::follow(dir.console(), id.0.clone()));
        Ok(pid)
    }
}

/// Where the QEMU provider writes its development policy (sim mode).
pub fn dev_policy_path(state_dir: &Path) -> PathBuf {
    state_dir.join("dev-policy.yaml")
}

/// QEMU runs with `-name cdvm-<id>`, so a restarted orchestrator can find it.
fn marker(id: &VmId) -> Marker {
    Marker {
        flag: "-name".into(),
        value: format!("cdvm-{}", id.0),
    }
}

/// The guest reaches the host's loopback through QEMU's user network as 10.0.2.2: a relay on the
/// host's `127.0.0.1`/`localhost` is rewritten so; everything else is left alone.
pub fn guest_bootstrap(bootstrap: &Bootstrap) -> Bootstrap {
    let mut out = bootstrap.clone();
    for relay in &mut out.relays {
        for host in ["127.0.0.1", "localhost"] {
            for scheme in ["ws://", "wss://"] {
                let from = format!("{scheme}{host}");
                if let Some(rest) = relay.strip_prefix(&from) {
                    if rest.is_empty() || rest.starts_with(':') || rest.starts_with('/') {
                        *relay = format!("{scheme}10.0.2.2{rest}");
                    }
                }
            }
        }
    }
    out
}

#[async_trait]
impl Provider for QemuProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn guest_image(&self) -> &'static str {
        cdvm_protocol::image::GUEST_IMAGE
    }

    async fn launch(&self, spec: &VmSpec) -> Result<VmHandle, ProviderError> {
        let wanted = match self.cfg.tee {
            TeeMode::Sim | TeeMode::SevSnp => "sev-snp",
            TeeMode::Tdx => "tdx",
        };
        if spec.tee != wanted {
            return Err(ProviderError::InvalidSpec {
                provider: NAME.into(),
                reason: format!("this host offers {wanted}, not {:?}", spec.tee),
            });
        }
        let id = vm_dir::vm_id_for(NAME, &spec.owner, &spec.job);
        let dir = self.vm(&id);
        if let Some(meta) = dir.read_meta() {
            return Ok(meta.handle());
        }
        let mut meta = vm_dir::Meta {
            id: id.clone(),
            owner: spec.owner.clone(),
            job: spec.job.clone(),
            pid: None,
        };
        // Write-ahead: the VM is listed (and destroyable) before its process exists.
        dir.create(&guest_bootstrap(&spec.bootstrap), &meta)
            .map_err(|e| {
                dir.remove();
                backend("create VM folder", e)
            })?;
        match self.launch_new(spec, &id, &dir).await {
            Ok(pid) => {
                meta.pid = Some(pid);
                dir.write_meta(&meta).map_err(|e| backend("record VM", e))?;
                let boot = match self.cfg.boot {
                    Boot::Direct => "direct",
                    Boot::Disk(_) => "uefi-disk",
                };
                tracing::info!(provider = NAME, vm = %id, job = %spec.job, pid, boot, "VM launched");
                Ok(meta.handle())
            }
            Err(e) => {
                self.stop_tasks(&id);
                process::kill(None, &marker(&id)).await;
                dir.remove();
                Err(e)
            }
        }
    }

    async fn status(&self, id: &VmId) -> Result<VmState, ProviderError> {
        Ok(host::status(&self.cfg.state_dir, id, &marker(id)))
    }

    async fn destroy(&self, id: &VmId) -> Result<(), ProviderError> {
        host::destroy(&self.cfg.state_dir, id, &marker(id), NAME).await;
        self.stop_tasks(id);
        Ok(())
    }

    async fn list(&self, owner: &OwnerTag) -> Result<Vec<VmHandle>, ProviderError> {
        // Folders a crashed destroy left without a record go first (issue 16, fault 4).
        if let Err(e) = vm_dir::sweep(&self.cfg.state_dir, false, &|id| self.stop_tasks(id)) {
            tracing::warn!(provider = NAME, error = %e, "cannot sweep the VM folders");
        }
        host::owned_by(&self.cfg.state_dir, owner).map_err(|e| backend("list VM folders", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_relays_become_the_user_network_gateway() {
        let b = Bootstrap {
            max_input_bytes: 1,
            request_id: "00".repeat(32),
            relays: vec![
                "ws://127.0.0.1:7777".into(),
                "ws://localhost/".into(),
                "wss://relay.example.com".into(),
                "ws://127.0.0.10:1".into(),
            ],
            input_timeout_secs: 1,
            run_timeout_secs: 1,
        };
        assert_eq!(
            guest_bootstrap(&b).relays,
            [
                "ws://10.0.2.2:7777",
                "ws://10.0.2.2/",
                "wss://relay.example.com",
                "ws://127.0.0.10:1"
            ]
        );
    }
}
