//! "Booting" an emulated instance: the local process provider starts the agent, which reads its
//! bootstrap from the emulated metadata service exactly as it would in the cloud, and attests
//! through the provider's simulated secure processor.

use cdvm_provider_api::metadata::MetadataService;
use cdvm_provider_api::{Bootstrap, JobTag, OwnerTag, Provider, VmClass, VmId, VmSpec, VmState};
use cdvm_provider_mock::{BootstrapDelivery, ProcessProvider, ProcessProviderConfig};

use crate::config::BootConfig;
use crate::metadata;

/// Why an instance could not boot.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The bootstrap in the instance's metadata is not valid bootstrap JSON.
    #[error("instance {instance}: bootstrap in metadata is not valid")]
    BadBootstrap {
        /// The instance.
        instance: String,
        /// The parse failure.
        #[source]
        source: serde_json::Error,
    },
    /// The process provider failed.
    #[error("instance {instance}: could not start the agent")]
    Provider {
        /// The instance.
        instance: String,
        /// The provider failure.
        #[source]
        source: cdvm_provider_api::ProviderError,
    },
}

/// Boots instances as local agent processes.
#[derive(Debug)]
pub struct Booter {
    provider: ProcessProvider,
}

fn owner(service: MetadataService) -> OwnerTag {
    OwnerTag(format!("mockcloud-{}", service.name()))
}

impl Booter {
    /// Opens the process provider's state folder.
    pub fn new(cfg: &BootConfig) -> Result<Self, cdvm_provider_api::ProviderError> {
        Ok(Self {
            provider: ProcessProvider::new(ProcessProviderConfig {
                state_dir: cfg.state_dir.clone(),
                agent_binary: cfg.agent_binary.clone(),
                platform: Default::default(),
                models_dir: None,
                inference_threads: None,
            })?,
        })
    }

    /// Starts the agent for `instance`; `bootstrap_json` is what its metadata holds (the agent
    /// reads it from the metadata service itself; it is parsed here only to name the job).
    pub async fn boot(
        &self,
        base_url: &str,
        service: MetadataService,
        instance: &str,
        bootstrap_json: &str,
    ) -> Result<VmId, BootError> {
        let bootstrap: Bootstrap =
            serde_json::from_str(bootstrap_json).map_err(|source| BootError::BadBootstrap {
                instance: instance.into(),
                source,
            })?;
        let spec = VmSpec {
            owner: owner(service),
            job: JobTag(instance.to_string()),
            class: VmClass {
                vcpus: 1,
                memory_mib: 256,
            },
            tee: "sev-snp".into(),
            bootstrap,
        };
        let delivery = BootstrapDelivery::Metadata {
            service,
            endpoint: metadata::endpoint(base_url, service, instance),
        };
        let handle = self
            .provider
            .launch_with(&spec, &delivery)
            .await
            .map_err(|source| BootError::Provider {
                instance: instance.into(),
                source,
            })?;
        tracing::info!(cloud = %service, instance, vm = %handle.id, "instance booted");
        Ok(handle.id)
    }

    /// Whether the guest is still running (`false` once the agent has exited: the guest powered off).
    pub async fn running(&self, vm: &VmId) -> bool {
        matches!(
            self.provider.status(vm).await,
            Ok(VmState::Running | VmState::Pending)
        )
    }

    /// Stops the guest and removes it. Idempotent.
    pub async fn halt(&self, vm: &VmId) {
        let _ = self.provider.destroy(vm).await;
    }

    /// Guests still present for a cloud (tests assert none are left).
    pub async fn guests(&self, service: MetadataService) -> Vec<VmId> {
        self.provider
            .list(&owner(service))
            .await
            .map(|l| l.into_iter().map(|h| h.id).collect())
            .unwrap_or_default()
    }
}
