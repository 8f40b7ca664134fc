//! [`AzureProvider`]: the `Provider` calls as ARM requests.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{Method, Url};
use cdvm_provider_api::{
    JobTag, OwnerTag, Provider, ProviderError, VmHandle, VmId, VmSpec, VmState,
};
use tracing::{info, warn, Instrument};

use crate::client::{Arm, COMPUTE_API_VERSION, NETWORK_API_VERSION};
use crate::config::AzureProviderConfig;
use crate::error::ArmError;
use crate::models::{ResourceState, VirtualMachineList, VirtualMachineView};
use crate::names::{nic_name, vm_name};
use crate::sizes::{self, Tee, VmSize};
use crate::{auth, requests, state, JOB_TAG_KEY, NAME};

/// Delete calls made for one resource before giving up on a delete that keeps being lost.
const MAX_DELETE_ROUNDS: u32 = 10;
/// Pages of a VM list followed at most (a guard against a `nextLink` loop).
const MAX_LIST_PAGES: usize = 1000;

/// The Azure backend. See the crate docs.
#[derive(Debug)]
pub struct AzureProvider {
    cfg: AzureProviderConfig,
    allowed: Vec<&'static VmSize>,
    arm: Arm,
}

fn invalid(reason: impl Into<String>) -> ProviderError {
    ProviderError::InvalidSpec {
        provider: NAME.into(),
        reason: reason.into(),
    }
}

/// What kind of resource a delete is about, for call names and logs.
#[derive(Clone, Copy)]
enum Kind {
    Vm,
    Nic,
}

impl Kind {
    fn delete(self) -> &'static str {
        match self {
            Self::Vm => "delete virtual machine",
            Self::Nic => "delete network interface",
        }
    }

    fn read(self) -> &'static str {
        match self {
            Self::Vm => "read virtual machine",
            Self::Nic => "read network interface",
        }
    }
}

impl AzureProvider {
    /// The backend with the production credential: the managed identity `identity_client_id`,
    /// or the developer-tools chain without one (absent or empty). Checks the configuration;
    /// calls nothing.
    pub fn new(cfg: AzureProviderConfig) -> Result<Self, ProviderError> {
        let client_id = cfg
            .identity_client_id
            .as_deref()
            .filter(|id| !id.trim().is_empty());
        // An emulator on loopback gets a fixed token (as the GCP backend goes anonymous there);
        // anything else gets the real credential chain.
        let credential: Arc<dyn TokenCredential> = if auth::is_loopback_emulator(cfg.endpoint()) {
            Arc::new(auth::EmulatorToken)
        } else {
            auth::default_credential(client_id)
                .map_err(|e| ArmError::Transport(e).into_provider("set up credential"))?
        };
        Self::with_credential(cfg, credential)
    }

    /// The backend with any credential (tests use a static token against the mock cloud).
    pub fn with_credential(
        cfg: AzureProviderConfig,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, ProviderError> {
        let allowed = cfg.allowed_sizes().map_err(|e| invalid(e.to_string()))?;
        let arm = Arm::new(cfg.endpoint(), cfg.retry_policy(), credential)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self { cfg, allowed, arm })
    }

    fn group(&self) -> [&str; 4] {
        [
            "subscriptions",
            &self.cfg.subscription_id,
            "resourceGroups",
            &self.cfg.resource_group,
        ]
    }

    fn vms_url(&self) -> Url {
        let [a, b, c, d] = self.group();
        self.arm.url(
            &[
                a,
                b,
                c,
                d,
                "providers",
                "Microsoft.Compute",
                "virtualMachines",
            ],
            &[("api-version", COMPUTE_API_VERSION)],
        )
    }

    fn vm_url(&self, name: &str, instance_view: bool) -> Url {
        let [a, b, c, d] = self.group();
        let mut query = vec![("api-version", COMPUTE_API_VERSION)];
        if instance_view {
            query.push(("$expand", "instanceView"));
        }
        self.arm.url(
            &[
                a,
                b,
                c,
                d,
                "providers",
                "Microsoft.Compute",
                "virtualMachines",
                name,
            ],
            &query,
        )
    }

    fn nic_url(&self, nic: &str) -> Url {
        let [a, b, c, d] = self.group();
        self.arm.url(
            &[
                a,
                b,
                c,
                d,
                "providers",
                "Microsoft.Network",
                "networkInterfaces",
                nic,
            ],
            &[("api-version", NETWORK_API_VERSION)],
        )
    }

    fn nic_id(&self, nic: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{nic}",
            self.cfg.subscription_id, self.cfg.resource_group
        )
    }

    fn url_of(&self, kind: Kind, vm: &str) -> Url {
        match kind {
            Kind::Vm => self.vm_url(vm, false),
            Kind::Nic => self.nic_url(&nic_name(vm)),
        }
    }

    /// The VM, or `None` if ARM does not know it.
    async fn get_vm(
        &self,
        name: &str,
        instance_view: bool,
    ) -> Result<Option<VirtualMachineView>, ArmError> {
        let url = self.vm_url(name, instance_view);
        match self
            .arm
            .call(Kind::Vm.read(), Method::Get, &url, None)
            .await
        {
            Ok(reply) => reply.json().map(Some),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn carries(&self, vm: &VirtualMachineView, spec: &VmSpec) -> bool {
        vm.tags.get(&self.cfg.owner_tag_key) == Some(&spec.owner.0)
            && vm.tags.get(JOB_TAG_KEY) == Some(&spec.job.0)
    }

    /// NIC, then VM, each PUT followed to the end of its operation. Says which call failed.
    async fn create(
        &self,
        spec: &VmSpec,
        size: &VmSize,
        name: &str,
    ) -> Result<(), (&'static str, ArmError)> {
        const NIC: &str = "create network interface";
        const VM: &str = "create virtual machine";
        let nic = nic_name(name);
        let body = serde_json::to_vec(&requests::nic(&self.cfg, spec))
            .map_err(|e| (NIC, ArmError::Json(e)))?;
        let reply = self
            .arm
            .call(NIC, Method::Put, &self.nic_url(&nic), Some(&body))
            .await
            .map_err(|e| (NIC, e))?;
        self.arm.wait(NIC, &reply).await.map_err(|e| (NIC, e))?;

        let vm = requests::vm(&self.cfg, spec, size, name, &self.nic_id(&nic))
            .and_then(|vm| serde_json::to_vec(&vm))
            .map_err(|e| (VM, ArmError::Json(e)))?;
        let reply = self
            .arm
            .call(VM, Method::Put, &self.vm_url(name, false), Some(&vm))
            .await
            .map_err(|e| (VM, e))?;
        self.arm.wait(VM, &reply).await.map_err(|e| (VM, e))
    }

    /// Deletes the VM and then its NIC, each until ARM no longer knows it.
    async fn remove(&self, vm: &str) -> Result<(), (&'static str, ArmError)> {
        for kind in [Kind::Vm, Kind::Nic] {
            self.delete_until_gone(kind, vm)
                .await
                .map_err(|e| (kind.delete(), e))?;
        }
        Ok(())
    }

    /// DELETE, follow the operation, then re-read: a delete can be acknowledged and not carried
    /// out, so one that left the resource in place (and not `Deleting`) is sent again.
    async fn delete_until_gone(&self, kind: Kind, vm: &str) -> Result<(), ArmError> {
        let url = self.url_of(kind, vm);
        let started = Instant::now();
        for round in 1..=MAX_DELETE_ROUNDS {
            match self
                .arm
                .call(kind.delete(), Method::Delete, &url, None)
                .await
            {
                Ok(reply) => self.arm.wait(kind.delete(), &reply).await?,
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e),
            }
            loop {
                let state = match self.arm.call(kind.read(), Method::Get, &url, None).await {
                    Ok(reply) => reply.json::<ResourceState>()?,
                    Err(e) if e.status() == Some(404) => return Ok(()),
                    Err(e) => return Err(e),
                };
                if state.properties.provisioning_state.as_deref() == Some("Deleting") {
                    self.arm.pause(started, None, kind.delete()).await?;
                } else {
                    warn!(
                        provider = NAME,
                        vm, round, "delete acknowledged but not done; deleting again"
                    );
                    break;
                }
            }
        }
        Err(ArmError::NotDeleted {
            what: url.path().to_string(),
            rounds: MAX_DELETE_ROUNDS,
        })
    }

    async fn launch_named(
        &self,
        spec: &VmSpec,
        size: &VmSize,
        name: &str,
    ) -> Result<(), ProviderError> {
        match self
            .get_vm(name, false)
            .await
            .map_err(|e| e.into_provider(Kind::Vm.read()))?
        {
            Some(vm) if !self.carries(&vm, spec) => {
                return Err(ArmError::NameTaken { name: name.into() }.into_provider("launch"))
            }
            Some(vm)
                if matches!(
                    vm.properties.provisioning_state.as_deref(),
                    Some("Failed" | "Deleting")
                ) =>
            {
                info!("an earlier launch left this VM failed or deleting; replacing it");
                self.remove(name)
                    .await
                    .map_err(|(call, e)| e.into_provider(call))?;
            }
            Some(_) => {
                info!("VM exists already: a retried launch");
                return Ok(());
            }
            None => {}
        }
        if let Err((call, e)) = self.create(spec, size, name).await {
            // Leave nothing behind: the VM a failed operation left, or the NIC of a refused VM.
            if let Err((cleanup, ce)) = self.remove(name).await {
                warn!(call = cleanup, error = %ce, "cleanup after a failed launch failed");
            }
            return Err(e.into_provider(call));
        }
        info!(size = size.name, "VM created");
        Ok(())
    }
}

#[async_trait]
impl Provider for AzureProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn guest_image(&self) -> &'static str {
        // Until a cloud guest image exists, the emulator's guests are the agent as a process.
        cdvm_protocol::image::PROCESS_AGENT_IMAGE
    }

    async fn launch(&self, spec: &VmSpec) -> Result<VmHandle, ProviderError> {
        let tee = Tee::from_wire(&spec.tee).ok_or_else(|| {
            invalid(format!(
                "TEE {:?} is not offered on Azure (sev-snp, tdx)",
                spec.tee
            ))
        })?;
        let size = sizes::pick(&self.allowed, tee, spec.class).map_err(invalid)?;
        let name = vm_name(&spec.owner, &spec.job);
        let span = tracing::info_span!("launch", provider = NAME, vm = %name, job = %spec.job);
        self.launch_named(spec, size, &name)
            .instrument(span)
            .await?;
        Ok(VmHandle {
            id: VmId(name),
            owner: spec.owner.clone(),
            job: spec.job.clone(),
        })
    }

    async fn status(&self, id: &VmId) -> Result<VmState, ProviderError> {
        match self.get_vm(&id.0, true).await {
            Ok(Some(vm)) => Ok(state::vm_state(&vm)),
            Ok(None) => Ok(VmState::Gone),
            Err(e) => Err(e.into_provider(Kind::Vm.read())),
        }
    }

    async fn destroy(&self, id: &VmId) -> Result<(), ProviderError> {
        let span = tracing::info_span!("destroy", provider = NAME, vm = %id);
        async {
            self.remove(&id.0)
                .await
                .map_err(|(call, e)| e.into_provider(call))?;
            info!("VM and NIC deleted");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Lists the VMs of the resource group and keeps the owner's: the Compute list API has no
    /// tag filter (only the resources API does, and the identity may not read it), and the
    /// group holds job VMs only, so the list is short anyway.
    async fn list(&self, owner: &OwnerTag) -> Result<Vec<VmHandle>, ProviderError> {
        const CALL: &str = "list virtual machines";
        let mut url = self.vms_url();
        let mut out = Vec::new();
        for _ in 0..MAX_LIST_PAGES {
            let page: VirtualMachineList = self
                .arm
                .call(CALL, Method::Get, &url, None)
                .await
                .and_then(|r| r.json())
                .map_err(|e| e.into_provider(CALL))?;
            for vm in page.value {
                if vm.tags.get(&self.cfg.owner_tag_key) != Some(&owner.0) {
                    continue;
                }
                if let Some(job) = vm.tags.get(JOB_TAG_KEY) {
                    out.push(VmHandle {
                        id: VmId(vm.name),
                        owner: owner.clone(),
                        job: JobTag(job.clone()),
                    });
                }
            }
            match page.next_link {
                Some(link) => url = self.arm.follow(&link).map_err(|e| e.into_provider(CALL))?,
                None => return Ok(out),
            }
        }
        Err(ArmError::TooManyPages {
            pages: MAX_LIST_PAGES,
        }
        .into_provider(CALL))
    }
}
