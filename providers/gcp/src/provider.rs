//! [`GcpProvider`]: the [`Provider`] contract on Compute Engine instances.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use cdvm_provider_api::{OwnerTag, Provider, ProviderError, VmHandle, VmId, VmSpec, VmState};
use google_cloud_auth::credentials::{anonymous, Credentials};
use google_cloud_compute_v1::model::instance::Status;
use google_cloud_compute_v1::model::Instance;
use tracing::Instrument;

use crate::catalog::{self, MachineType};
use crate::client::Gce;
use crate::config::GcpProviderConfig;
use crate::error::GcpError;
use crate::{names, request, NAME};

/// Delete rounds before giving up on an instance that keeps coming back (lost deletes).
const DELETE_ROUNDS: u32 = 8;
/// How long a deleted instance may stay STOPPING before the delete counts as lost.
const STOPPING_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The Compute Engine backend. See the crate docs.
#[derive(Debug)]
pub struct GcpProvider {
    cfg: GcpProviderConfig,
    allowed: Vec<MachineType>,
    gce: Gce,
}

fn invalid(reason: String) -> ProviderError {
    ProviderError::InvalidSpec {
        provider: NAME.into(),
        reason,
    }
}

impl GcpProvider {
    /// Checks the configuration and builds the clients. Credentials: none for a plain-http
    /// loopback `endpoint` (the emulator), else Application Default Credentials (the attached
    /// service account on GCE, `GOOGLE_APPLICATION_CREDENTIALS`, or gcloud's ADC file).
    pub async fn new(cfg: GcpProviderConfig) -> Result<Self, ProviderError> {
        let credentials = cfg.plain_http().then(|| anonymous::Builder::new().build());
        Self::build(cfg, credentials).await
    }

    /// As [`GcpProvider::new`], with the given credentials (impersonation, a key file, …).
    pub async fn with_credentials(
        cfg: GcpProviderConfig,
        credentials: Credentials,
    ) -> Result<Self, ProviderError> {
        Self::build(cfg, Some(credentials)).await
    }

    async fn build(
        cfg: GcpProviderConfig,
        credentials: Option<Credentials>,
    ) -> Result<Self, ProviderError> {
        let allowed = cfg.allowed_types().map_err(|e| invalid(e.to_string()))?;
        let gce = Gce::new(
            &cfg.project,
            &cfg.zone,
            cfg.endpoint.as_deref(),
            credentials,
            cfg.retry_policy(),
        )
        .await
        .map_err(|e| ProviderError::Backend {
            provider: NAME.into(),
            call: "build Compute Engine client".into(),
            source: Box::new(e),
        })?;
        tracing::info!(
            provider = NAME,
            project = cfg.project,
            zone = cfg.zone,
            identity = cfg.service_account_email,
            "Compute Engine backend ready"
        );
        Ok(Self { cfg, allowed, gce })
    }

    /// The owner tag this deployment was made for (`owner_label`); the orchestrator's
    /// `owner_tag` must equal it.
    pub fn owner_tag(&self) -> OwnerTag {
        OwnerTag(self.cfg.owner_label.clone())
    }

    /// Whether `id` can name one of our instances at all. Others are not looked up: the IAM
    /// condition grants `get`/`delete` only under the prefix, and the id goes into a URL path.
    fn ours(&self, id: &VmId) -> bool {
        id.0.starts_with(&self.cfg.instance_name_prefix)
            && id.0.len() <= 63
            && id
                .0
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    async fn insert_and_wait(&self, body: &Instance, request_id: &str) -> Result<(), GcpError> {
        match self.gce.insert(body, request_id).await {
            Ok(op) => self.gce.wait("instances.insert", op).await.map(drop),
            // Created earlier (by a launch whose request id GCE no longer remembers): the tag
            // check that follows decides whether it is this job's.
            Err(e) if e.http_status() == Some(409) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn launch_named(
        &self,
        spec: &VmSpec,
        machine: &MachineType,
        name: &str,
        bootstrap: String,
    ) -> Result<VmHandle, GcpError> {
        let body = request::instance(&self.cfg, spec, machine, name, bootstrap);
        self.insert_and_wait(&body, &names::insert_request_id(&spec.owner, &spec.job))
            .await?;
        let mut vm = self.gce.get(name).await?;
        if vm.is_none() {
            // GCE replayed an old insert of this job (same request id) whose instance has since
            // been deleted: insert once more under a fresh id.
            tracing::info!(
                provider = NAME,
                vm = name,
                "replayed insert left no instance; inserting again"
            );
            self.insert_and_wait(&body, &names::fresh_request_id("insert", name, 1))
                .await?;
            vm = self.gce.get(name).await?;
        }
        let vm = vm.ok_or_else(|| GcpError::Vanished { name: name.into() })?;
        match request::tags(&vm) {
            Some((owner, job)) if owner == spec.owner && job == spec.job => Ok(VmHandle {
                id: VmId(name.into()),
                owner,
                job,
            }),
            found => Err(GcpError::NameTaken {
                name: name.into(),
                owner: found.as_ref().map(|(o, _)| o.0.clone()),
                job: found.map(|(_, j)| j.0),
            }),
        }
    }

    /// One delete round: delete, wait for the operation, then re-read. `Ok(None)`: gone.
    /// `Ok(Some(status))`: still there and not being deleted (the delete was lost).
    async fn delete_round(&self, name: &str, round: u32) -> Result<Option<String>, GcpError> {
        let request_id = names::fresh_request_id("delete", name, round);
        let Some(op) = self.gce.delete(name, &request_id).await? else {
            return Ok(None);
        };
        self.gce.wait("instances.delete", op).await?;
        let started = Instant::now();
        let mut poll = self.gce.retry().base;
        loop {
            let Some(vm) = self.gce.get(name).await? else {
                return Ok(None);
            };
            let status = status_name(&vm);
            // STOPPING / DEPROVISIONING: the delete is under way; anything else: it was lost.
            if !matches!(status.as_str(), "STOPPING" | "DEPROVISIONING")
                || started.elapsed() > STOPPING_TIMEOUT
            {
                return Ok(Some(status));
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(self.gce.retry().max);
        }
    }
}

fn status_name(vm: &Instance) -> String {
    vm.status
        .as_ref()
        .and_then(|s| s.name())
        .unwrap_or("UNKNOWN")
        .to_string()
}

/// GCE's instance status as a [`VmState`].
fn state(vm: &Instance) -> VmState {
    match &vm.status {
        Some(Status::Provisioning | Status::Staging | Status::Pending | Status::Repairing) => {
            VmState::Pending
        }
        Some(Status::Running) => VmState::Running,
        _ => {
            let status = status_name(vm);
            VmState::Exited {
                detail: match &vm.status_message {
                    Some(m) if !m.is_empty() => format!("{status}: {m}"),
                    _ => status,
                },
            }
        }
    }
}

#[async_trait]
impl Provider for GcpProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn guest_image(&self) -> &'static str {
        // Until a cloud guest image exists, the emulator's guests are the agent as a process.
        cdvm_protocol::image::PROCESS_AGENT_IMAGE
    }

    async fn launch(&self, spec: &VmSpec) -> Result<VmHandle, ProviderError> {
        let machine = catalog::choose(&self.allowed, &spec.tee, &spec.class).map_err(invalid)?;
        let name = names::instance_name(&self.cfg.instance_name_prefix, &spec.owner, &spec.job);
        let bootstrap =
            serde_json::to_string(&spec.bootstrap).map_err(|e| ProviderError::Backend {
                provider: NAME.into(),
                call: "encode bootstrap".into(),
                source: Box::new(e),
            })?;
        let span = tracing::info_span!("launch", provider = NAME, vm = %name, job = %spec.job);
        async {
            tracing::info!(
                machine_type = machine.name,
                tee = machine.tee.wire(),
                "launching"
            );
            let handle = self
                .launch_named(spec, machine, &name, bootstrap)
                .await
                .map_err(GcpError::into_provider)?;
            tracing::info!("launched");
            Ok(handle)
        }
        .instrument(span)
        .await
    }

    async fn status(&self, id: &VmId) -> Result<VmState, ProviderError> {
        if !self.ours(id) {
            return Ok(VmState::Gone);
        }
        Ok(
            match self.gce.get(&id.0).await.map_err(GcpError::into_provider)? {
                Some(vm) => state(&vm),
                None => VmState::Gone,
            },
        )
    }

    async fn destroy(&self, id: &VmId) -> Result<(), ProviderError> {
        if !self.ours(id) {
            return Ok(());
        }
        let span = tracing::info_span!("destroy", provider = NAME, vm = %id);
        async {
            let mut last = String::new();
            for round in 0..DELETE_ROUNDS {
                match self
                    .delete_round(&id.0, round)
                    .await
                    .map_err(GcpError::into_provider)?
                {
                    None => {
                        tracing::info!(round, "destroyed");
                        return Ok(());
                    }
                    Some(status) => {
                        tracing::warn!(
                            round,
                            status,
                            "instance survived its delete; deleting again"
                        );
                        last = status;
                    }
                }
            }
            Err(GcpError::Undeletable {
                name: id.0.clone(),
                status: last,
                rounds: DELETE_ROUNDS,
            }
            .into_provider())
        }
        .instrument(span)
        .await
    }

    async fn list(&self, owner: &OwnerTag) -> Result<Vec<VmHandle>, ProviderError> {
        // Labels narrow the listing server-side; the exact tags in metadata decide.
        let filter = format!(
            "labels.{} = \"{}\"",
            self.cfg.owner_label_key,
            names::label_value(&owner.0)
        );
        let vms = self
            .gce
            .list(&filter)
            .await
            .map_err(GcpError::into_provider)?;
        Ok(vms
            .iter()
            .filter_map(|vm| {
                let id = VmId(vm.name.clone()?);
                let (o, job) = request::tags(vm)?;
                (o == *owner && self.ours(&id)).then_some(VmHandle { id, owner: o, job })
            })
            .collect())
    }
}
