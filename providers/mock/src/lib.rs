//! The local "process" provider: each VM is a separate `cdvm-agent` process, and the provider hosts
//! a simulated secure processor for it, the way a hypervisor host hosts the real one.
//!
//! This backend gives NO confidentiality: the agent is an ordinary process of the operator. It
//! exists so the whole protocol runs end to end on one machine; the evidence it produces chains to
//! a simulated root that no shipped policy trusts.
#![deny(missing_docs)]

mod sp_server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cdvm_attestation::sim::tdx::{self as sim_tdx, SimTdx};
use cdvm_attestation::sim::{self, SimSecureProcessor};
use cdvm_attestation::Measurement;
use cdvm_provider_api::host;
use cdvm_provider_api::host::process::{self, Marker};
use cdvm_provider_api::host::vm_dir::{self, VmDir};
use cdvm_provider_api::metadata::MetadataService;
use cdvm_provider_api::{OwnerTag, Provider, ProviderError, VmHandle, VmId, VmSpec, VmState};
use tokio::task::JoinHandle;

mod measure;
use cdvm_provider_api::host::stamp_cache::StampCache;
use measure::measure;

const NAME: &str = "process";
/// The prefix of this backend's VM ids (`proc-<16 hex>`).
const ID_PREFIX: &str = "proc";

/// Settings of the process provider.
#[derive(Clone, Debug)]
pub struct ProcessProviderConfig {
    /// Where VM folders, the simulated secure processor's keys and the dev policy live.
    pub state_dir: PathBuf,
    /// The agent executable each VM runs (its SHA-384 is the simulated launch measurement).
    pub agent_binary: PathBuf,
    /// Which platform the simulated SEV-SNP guests play.
    pub platform: SimPlatform,
    /// The RAG job's model directory (`models.json` + GGUF files, passed as `--models`); part of
    /// the measurement, as the models are part of the guest image's.
    pub models_dir: Option<PathBuf>,
    /// Inference threads for the agent (`--inference-threads`; default: the agent's, every CPU).
    pub inference_threads: Option<usize>,
}

/// The platform a simulated SEV-SNP guest plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SimPlatform {
    /// A bare-metal / KVM guest: configfs-tsm (emulated over FUSE), else the simulator's socket.
    #[default]
    Bare,
    /// An Azure confidential VM: a vTPM (swtpm) behind an emulated paravisor, and IMDS.
    AzureVtpm,
}

/// The process provider. See the crate docs.
#[derive(Debug)]
pub struct ProcessProvider {
    cfg: ProcessProviderConfig,
    sp: Arc<SimSecureProcessor>,
    tdx: Arc<SimTdx>,
    servers: Mutex<HashMap<VmId, Host>>,
    measurement: StampCache<Measurement>,
}

/// What the host runs for one VM: the socket server or the FUSE-mounted configfs-tsm.
#[derive(Debug)]
enum Host {
    /// The simulator's own socket protocol (`--tee sim`), when FUSE is unavailable.
    Socket(JoinHandle<()>),
    /// configfs-tsm emulated over FUSE: the agent runs its hardware code path.
    Tsm(cdvm_tsm_fuse::MountedTsm),
    /// An emulated Azure paravisor: swtpm, the vTPM proxy and IMDS (stopped when dropped).
    Paravisor(cdvm_attestation::azure::paravisor_sim::Paravisor),
}

impl ProcessProvider {
    /// Opens (or creates) the provider's state folder and its simulated secure processor, and
    /// writes `dev-policy.yaml` there: a development policy that trusts this simulated root and
    /// the current agent binary's measurement.
    pub fn new(cfg: ProcessProviderConfig) -> Result<Self, ProviderError> {
        let backend =
            |call: &str, e: Box<dyn std::error::Error + Send + Sync>| ProviderError::Backend {
                provider: NAME.into(),
                call: call.into(),
                source: e,
            };
        vm_dir::check_socket_path_fits(&cfg.state_dir, ID_PREFIX).map_err(|reason| {
            ProviderError::InvalidSpec {
                provider: NAME.into(),
                reason,
            }
        })?;
        std::fs::create_dir_all(vm_dir::vms_root(&cfg.state_dir))
            .map_err(|e| backend("create state folder", Box::new(e)))?;
        // No launch is in progress yet: half-created folders of a crashed run can go too.
        let state = cfg.state_dir.clone();
        vm_dir::sweep(&cfg.state_dir, true, &|id| {
            let _ = cdvm_tsm_fuse::detach_stale(&tsm_mountpoint(&VmDir::new(&state, id)));
        })
        .map_err(|e| backend("remove VM folders a crash left", Box::new(e)))?;
        let sp = SimSecureProcessor::load_or_create(&cfg.state_dir)
            .map_err(|e| backend("load simulated secure processor", Box::new(e)))?;
        let tdx = SimTdx::load_or_create(&cfg.state_dir)
            .map_err(|e| backend("load simulated TDX platform", Box::new(e)))?;
        let measurement = measure(&cfg.agent_binary, cfg.models_dir.as_deref())?;
        let mut policy = sim::dev_policy(
            &sp,
            &measurement,
            &format!(
                "SHA-384 of {} (process provider)",
                cfg.agent_binary.display()
            ),
        );
        if cfg.platform == SimPlatform::AzureVtpm {
            // The emulated vTPM's PCRs are not judged: it boots nothing measured.
            policy.azure_vtpm = Some(cdvm_attestation::azure::AzureVtpmPolicy::default());
        }
        let yaml = serde_yaml_ng::to_string(&policy)
            .map_err(|e| backend("write dev policy", Box::new(e)))?;
        let text = format!(
            "# DEVELOPMENT ONLY: trusts a SIMULATED secure processor. Gives no confidentiality.\n{yaml}"
        );
        std::fs::write(dev_policy_path(&cfg.state_dir), text)
            .map_err(|e| backend("write dev policy", Box::new(e)))?;
        // The TDX twin: collateral rewritten at each start (it is valid for 30 days).
        let collateral = tdx
            .write_collateral(&cfg.state_dir)
            .map_err(|e| backend("write simulated TDX collateral", Box::new(e)))?;
        let tdx_policy = sim_tdx::dev_tdx_policy(
            &tdx,
            &measurement,
            &format!(
                "SHA-384 of {} (process provider)",
                cfg.agent_binary.display()
            ),
            &collateral,
        );
        let yaml = serde_yaml_ng::to_string(&tdx_policy)
            .map_err(|e| backend("write dev TDX policy", Box::new(e)))?;
        let text = format!(
            "# DEVELOPMENT ONLY: trusts a SIMULATED TDX platform. Gives no confidentiality.\n{yaml}"
        );
        std::fs::write(dev_tdx_policy_path(&cfg.state_dir), text)
            .map_err(|e| backend("write dev TDX policy", Box::new(e)))?;
        Ok(Self {
            cfg,
            sp: Arc::new(sp),
            tdx: Arc::new(tdx),
            servers: Mutex::new(HashMap::new()),
            measurement: StampCache::new(NAME),
        })
    }

    fn vm(&self, id: &VmId) -> VmDir {
        VmDir::new(&self.cfg.state_dir, id)
    }

    fn stop_server(&self, id: &VmId) {
        let server = self
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        match server {
            Some(Host::Socket(server)) => server.abort(),
            // Dropping the mount unmounts it; dropping the paravisor stops swtpm.
            Some(Host::Tsm(mount)) => drop(mount),
            Some(Host::Paravisor(p)) => drop(p),
            None => {}
        }
        // A mount left by a crashed provider process: detach it so the folder can go.
        if let Err(e) = cdvm_tsm_fuse::detach_stale(&tsm_mountpoint(&self.vm(id))) {
            tracing::warn!(provider = NAME, vm = %id, "detaching a stale configfs-tsm mount: {e}");
        }
    }
}

/// The agent carries `--vm-id <id>` so a restarted orchestrator can find it.
fn marker(id: &VmId) -> Marker {
    Marker {
        flag: "--vm-id".into(),
        value: id.0.clone(),
    }
}

/// How a launched agent gets its bootstrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapDelivery {
    /// A file in the VM folder (`--bootstrap`), the process provider's own way.
    File,
    /// A cloud metadata service emulated at `endpoint` (`--bootstrap-from`), the way a cloud
    /// guest gets it; used by the mock cloud to "boot" instances.
    Metadata {
        /// Which cloud's metadata protocol.
        service: MetadataService,
        /// Base URL standing in for the link-local address.
        endpoint: String,
    },
}

fn spawn_agent(
    cfg: &ProcessProviderConfig,
    dir: &VmDir,
    id: &VmId,
    delivery: &BootstrapDelivery,
    tee_args: &[String],
) -> std::io::Result<u32> {
    let mut command = tokio::process::Command::new(&cfg.agent_binary);
    if let Some(models) = &cfg.models_dir {
        command.arg("--models").arg(models);
    }
    if let Some(n) = cfg.inference_threads {
        command.arg("--inference-threads").arg(n.to_string());
    }
    // Development provider: the agent may fetch blobs from a Blossom server on loopback over
    // plain http (docs/protocol.md §5.8).
    command.arg("--dev-insecure-blossom");
    match delivery {
        BootstrapDelivery::File => {
            command.arg("--bootstrap").arg(dir.bootstrap());
        }
        BootstrapDelivery::Metadata { service, endpoint } => {
            command
                .arg("--bootstrap-from")
                .arg(service.name())
                .arg("--metadata-endpoint")
                .arg(endpoint);
        }
    }
    command.args(tee_args).arg("--vm-id").arg(&id.0);
    process::spawn(command, &dir.console(), None)
}

/// Where the process provider writes its development policy.
pub fn dev_policy_path(state_dir: &Path) -> PathBuf {
    state_dir.join("dev-policy.yaml")
}

/// Where the process provider writes its development policy for simulated TDX guests.
pub fn dev_tdx_policy_path(state_dir: &Path) -> PathBuf {
    state_dir.join("dev-policy-tdx.yaml")
}

/// Where a VM's emulated configfs-tsm is mounted (it plays `/sys/kernel/config/tsm`).
fn tsm_mountpoint(dir: &VmDir) -> PathBuf {
    dir.path().join("tsm")
}

#[async_trait]
impl Provider for ProcessProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn guest_image(&self) -> &'static str {
        cdvm_protocol::image::PROCESS_AGENT_IMAGE
    }

    async fn launch(&self, spec: &VmSpec) -> Result<VmHandle, ProviderError> {
        self.launch_with(spec, &BootstrapDelivery::File).await
    }

    async fn status(&self, id: &VmId) -> Result<VmState, ProviderError> {
        Ok(host::status(&self.cfg.state_dir, id, &marker(id)))
    }

    async fn destroy(&self, id: &VmId) -> Result<(), ProviderError> {
        // Unmount first: a mounted configfs-tsm would keep the VM folder from being removed.
        self.stop_server(id);
        host::destroy(&self.cfg.state_dir, id, &marker(id), NAME).await;
        Ok(())
    }

    async fn list(&self, owner: &OwnerTag) -> Result<Vec<VmHandle>, ProviderError> {
        // Folders a crashed destroy left without a record go first (issue 16, fault 4).
        let swept = vm_dir::sweep(&self.cfg.state_dir, false, &|id| self.stop_server(id));
        if let Err(e) = swept {
            tracing::warn!(provider = NAME, error = %e, "cannot sweep the VM folders");
        }
        host::owned_by(&self.cfg.state_dir, owner).map_err(|e| ProviderError::Backend {
            provider: NAME.into(),
            call: "list VM folders".into(),
            source: Box::new(e),
        })
    }
}

impl ProcessProvider {
    /// Launches like [`Provider::launch`], with the bootstrap delivered as `delivery` says.
    pub async fn launch_with(
        &self,
        spec: &VmSpec,
        delivery: &BootstrapDelivery,
    ) -> Result<VmHandle, ProviderError> {
        let tdx = match spec.tee.as_str() {
            "sev-snp" => false,
            "tdx" => true,
            other => {
                return Err(ProviderError::InvalidSpec {
                    provider: NAME.into(),
                    reason: format!(
                        "TEE {other:?} is not simulated by this provider (sev-snp, tdx)"
                    ),
                })
            }
        };
        let id = vm_dir::vm_id_for(ID_PREFIX, &spec.owner, &spec.job);
        let dir = self.vm(&id);
        if let Some(meta) = dir.read_meta() {
            // Idempotent launch: the job already has its VM.
            return Ok(meta.handle());
        }
        // Measure what is actually launched, at launch time: a swapped binary changes the report
        // (hashed again only when a file changed, off the async threads).
        let measurement = measure::cached(
            &self.measurement,
            &self.cfg.agent_binary,
            self.cfg.models_dir.as_deref(),
        )
        .await?;
        let mut meta = vm_dir::Meta {
            id: id.clone(),
            owner: spec.owner.clone(),
            job: spec.job.clone(),
            pid: None,
        };
        // Write-ahead: the VM is listed (and destroyable) before its process exists.
        dir.create(&spec.bootstrap, &meta).map_err(|e| {
            dir.remove();
            ProviderError::Backend {
                provider: NAME.into(),
                call: "create VM folder".into(),
                source: Box::new(e),
            }
        })?;
        let (host, tee_args) = self
            .start_host(&dir, measurement, tdx)
            .inspect_err(|_| dir.remove())?;
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), host);
        match spawn_agent(&self.cfg, &dir, &id, delivery, &tee_args) {
            Ok(pid) => {
                meta.pid = Some(pid);
                dir.write_meta(&meta).map_err(|e| ProviderError::Backend {
                    provider: NAME.into(),
                    call: "record VM".into(),
                    source: Box::new(e),
                })?;
                tracing::info!(provider = NAME, vm = %id, job = %spec.job, pid, "VM launched");
                Ok(meta.handle())
            }
            Err(e) => {
                self.stop_server(&id);
                process::kill(None, &marker(&id)).await;
                dir.remove();
                Err(ProviderError::Backend {
                    provider: NAME.into(),
                    call: "spawn agent".into(),
                    source: Box::new(e),
                })
            }
        }
    }
}

impl ProcessProvider {
    /// Starts the host side of a VM's secure processor and says how the agent reaches it:
    /// configfs-tsm emulated over FUSE when this machine can mount it, else (SNP only) the
    /// simulator's socket.
    fn start_host(
        &self,
        dir: &VmDir,
        measurement: Measurement,
        tdx: bool,
    ) -> Result<(Host, Vec<String>), ProviderError> {
        let backend_err =
            |call: &str, e: Box<dyn std::error::Error + Send + Sync>| ProviderError::Backend {
                provider: NAME.into(),
                call: call.into(),
                source: e,
            };
        if !tdx && self.cfg.platform == SimPlatform::AzureVtpm {
            let paravisor = cdvm_attestation::azure::paravisor_sim::Paravisor::start(
                Arc::clone(&self.sp),
                cdvm_attestation::azure::paravisor_sim::ParavisorOptions {
                    dir: dir.path().join("paravisor"),
                    measurement,
                    report: sim::SimReportOptions::default(),
                    tdx_quoter: None,
                },
            )
            .map_err(|e| backend_err("start the emulated Azure paravisor (swtpm)", Box::new(e)))?;
            let args = vec![
                "--tee".into(),
                "azure-snp-vtpm".into(),
                "--tpm".into(),
                format!("unix:{}", paravisor.tpm_socket().display()),
                "--imds".into(),
                paravisor.imds_addr().to_string(),
            ];
            tracing::info!(
                provider = NAME,
                transport = "Azure vTPM (swtpm + emulated paravisor)",
                "simulated secure processor ready"
            );
            return Ok((Host::Paravisor(paravisor), args));
        }
        let report_backend: Arc<dyn cdvm_tsm_fuse::ReportBackend> = if tdx {
            Arc::new(cdvm_tsm_fuse::SimTdxBackend::new(
                Arc::clone(&self.tdx),
                measurement,
            ))
        } else {
            Arc::new(cdvm_tsm_fuse::SimSnpBackend::new(
                Arc::clone(&self.sp),
                measurement,
                cdvm_tsm_fuse::AuxBlob::CertTable,
            ))
        };
        match cdvm_tsm_fuse::mount(tsm_mountpoint(dir), report_backend) {
            Ok(mount) => {
                let args = vec![
                    "--tee".into(),
                    if tdx { "tdx" } else { "sev-snp" }.into(),
                    "--tsm-root".into(),
                    mount.report_root().display().to_string(),
                ];
                tracing::info!(
                    provider = NAME,
                    tee = if tdx { "tdx" } else { "sev-snp" },
                    transport = "configfs-tsm (FUSE emulation)",
                    "simulated secure processor ready"
                );
                Ok((Host::Tsm(mount), args))
            }
            Err(e) if tdx => Err(backend_err(
                "mount the emulated configfs-tsm (a simulated TDX guest has no other way; needs root and /dev/fuse)",
                Box::new(e),
            )),
            Err(e) => {
                tracing::warn!(
                    provider = NAME,
                    "configfs-tsm emulation unavailable ({e}); the simulated guest uses the simulator's socket instead"
                );
                let server = sp_server::serve(dir.sp_socket(), Arc::clone(&self.sp), measurement)
                    .map_err(|e| backend_err("start simulated secure processor", Box::new(e)))?;
                let args = vec![
                    "--tee".into(),
                    "sim".into(),
                    "--sim-socket".into(),
                    dir.sp_socket().display().to_string(),
                ];
                Ok((Host::Socket(server), args))
            }
        }
    }
}
