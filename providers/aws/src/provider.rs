//! The `Provider` implementation over EC2: RunInstances, DescribeInstances, TerminateInstances.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AmdSevSnpSpecification, CpuOptionsRequest, Filter, HttpTokensState, Instance,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceStateName, ResourceType,
    ShutdownBehavior, Tag, TagSpecification,
};
use base64::Engine as _;
use cdvm_provider_api::retry::RetryPolicy;
use cdvm_provider_api::{
    JobTag, OwnerTag, Provider, ProviderError, VmHandle, VmId, VmSpec, VmState,
};
use sha2::{Digest, Sha256};

use crate::catalog::{self, InstanceType};
use crate::config::AwsProviderConfig;
use crate::error::Ec2Error;
use crate::NAME;

/// Tag holding the job id on every instance and volume.
pub const JOB_TAG_KEY: &str = "cdvm-job";

/// States in which an instance still exists for us (shutting-down/terminated ones are on their way out).
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// The AWS provider. See the crate docs.
#[derive(Debug)]
pub struct AwsProvider {
    cfg: AwsProviderConfig,
    allowed: Vec<InstanceType>,
    client: aws_sdk_ec2::Client,
    retry: RetryPolicy,
}

fn invalid(reason: String) -> ProviderError {
    ProviderError::InvalidSpec {
        provider: NAME.into(),
        reason,
    }
}

impl AwsProvider {
    /// Checks the settings and builds a client from the SDK's standard credential chain
    /// (environment, profile, web identity, container or instance role), assuming `role_arn` if set.
    pub async fn new(cfg: AwsProviderConfig) -> Result<Self, ProviderError> {
        let allowed = allowed_types(&cfg)?;
        let retry = cfg.retry_policy();
        // One retry layer: ours, with jitter and typed classification, not the SDK's as well.
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(cfg.region.clone()))
            .retry_config(aws_config::retry::RetryConfig::disabled());
        if let Some(endpoint) = &cfg.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let mut shared = loader.load().await;
        if let Some(role) = &cfg.role_arn {
            let assumed = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("cdvm-orchestrator")
                .configure(&shared)
                .build()
                .await;
            shared = shared
                .into_builder()
                .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(assumed))
                .build();
        }
        Ok(Self {
            client: aws_sdk_ec2::Client::new(&shared),
            cfg,
            allowed,
            retry,
        })
    }

    /// The instance of this job, if one is alive (a retried launch finds it here).
    async fn find_job(&self, owner: &OwnerTag, job: &JobTag) -> Result<Option<Instance>, Ec2Error> {
        let found = self
            .describe(vec![
                tag_filter(&self.cfg.owner_tag_key, &owner.0),
                tag_filter(JOB_TAG_KEY, &job.0),
                live_filter(),
            ])
            .await?;
        Ok(found.into_iter().next())
    }

    async fn describe(&self, filters: Vec<Filter>) -> Result<Vec<Instance>, Ec2Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .retry
                .run(
                    "DescribeInstances",
                    || async {
                        self.client
                            .describe_instances()
                            .set_filters(Some(filters.clone()))
                            .set_next_token(token.clone())
                            .send()
                            .await
                            .map_err(|e| Ec2Error::new("DescribeInstances", e))
                    },
                    Ec2Error::retry,
                )
                .await?;
            out.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances().to_vec()),
            );
            token = page
                .next_token()
                .map(str::to_string)
                .filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn instance(&self, id: &VmId) -> Result<Option<Instance>, Ec2Error> {
        let out = self
            .retry
            .run(
                "DescribeInstances",
                || async {
                    self.client
                        .describe_instances()
                        .instance_ids(&id.0)
                        .send()
                        .await
                        .map_err(|e| Ec2Error::new("DescribeInstances", e))
                },
                Ec2Error::retry,
            )
            .await;
        match out {
            Ok(out) => Ok(out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(id.0.as_str()))
                .cloned()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn terminate(&self, id: &VmId) -> Result<(), Ec2Error> {
        let out = self
            .retry
            .run(
                "TerminateInstances",
                || async {
                    self.client
                        .terminate_instances()
                        .instance_ids(&id.0)
                        .send()
                        .await
                        .map_err(|e| Ec2Error::new("TerminateInstances", e))
                },
                Ec2Error::retry,
            )
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn handle(&self, instance: &Instance) -> Option<VmHandle> {
        let tag = |key: &str| {
            instance
                .tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
                .map(str::to_string)
        };
        Some(VmHandle {
            id: VmId(instance.instance_id()?.to_string()),
            owner: OwnerTag(tag(&self.cfg.owner_tag_key)?),
            job: JobTag(tag(JOB_TAG_KEY)?),
        })
    }
}

fn allowed_types(cfg: &AwsProviderConfig) -> Result<Vec<InstanceType>, ProviderError> {
    if cfg.allowed_instance_types.is_empty() {
        return Err(invalid("allowed_instance_types is empty".into()));
    }
    cfg.allowed_instance_types
        .iter()
        .map(|name| {
            catalog::lookup(name).ok_or_else(|| {
                invalid(format!(
                    "instance type {name:?} cannot run SEV-SNP guests (m6a, c6a or r6a, large to 16xlarge)"
                ))
            })
        })
        .collect()
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

fn live_filter() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
        .build()
}

/// The idempotency token of a job's launch: the same job always sends the same token, so EC2
/// returns the first instance instead of making a second (EC2 allows 64 ASCII characters).
pub fn client_token(owner: &OwnerTag, job: &JobTag) -> String {
    let digest = Sha256::new()
        .chain_update(owner.0.as_bytes())
        .chain_update([0])
        .chain_update(job.0.as_bytes())
        .finalize();
    format!("cdvm-{}", &hex::encode(digest)[..59])
}

fn state_of(instance: &Instance) -> VmState {
    match instance.state().and_then(|s| s.name()) {
        Some(InstanceStateName::Pending) => VmState::Pending,
        Some(InstanceStateName::Running) => VmState::Running,
        Some(InstanceStateName::Stopping | InstanceStateName::Stopped) => VmState::Exited {
            detail: instance
                .state_reason()
                .and_then(|r| r.message())
                .unwrap_or("stopped")
                .to_string(),
        },
        // Shutting down and terminated instances are going or gone: nothing is left to destroy.
        Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated) => VmState::Gone,
        _ => VmState::Pending,
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &str {
        NAME
    }

    fn guest_image(&self) -> &'static str {
        // Until a cloud guest image exists, the emulator's guests are the agent as a process.
        cdvm_protocol::image::PROCESS_AGENT_IMAGE
    }

    async fn launch(&self, spec: &VmSpec) -> Result<VmHandle, ProviderError> {
        if spec.tee != "sev-snp" {
            return Err(invalid(format!(
                "TEE {:?} is not offered on EC2 (only sev-snp)",
                spec.tee
            )));
        }
        let itype = catalog::pick(&self.allowed, &spec.class).ok_or_else(|| {
            invalid(format!(
                "no allowed instance type has {} vCPUs and {} MiB",
                spec.class.vcpus, spec.class.memory_mib
            ))
        })?;
        if let Some(existing) = self
            .find_job(&spec.owner, &spec.job)
            .await
            .map_err(Ec2Error::into_provider)?
        {
            if let Some(handle) = self.handle(&existing) {
                tracing::info!(provider = NAME, vm = %handle.id, job = %spec.job, "job already has an instance");
                return Ok(handle);
            }
        }
        let bootstrap =
            serde_json::to_vec(&spec.bootstrap).map_err(|e| ProviderError::Backend {
                provider: NAME.into(),
                call: "encode bootstrap".into(),
                source: Box::new(e),
            })?;
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(
                Tag::builder()
                    .key(&self.cfg.owner_tag_key)
                    .value(&spec.owner.0)
                    .build(),
            )
            .tags(Tag::builder().key(JOB_TAG_KEY).value(&spec.job.0).build())
            .build();
        let volume_tags = TagSpecification::builder()
            .resource_type(ResourceType::Volume)
            .tags(
                Tag::builder()
                    .key(&self.cfg.owner_tag_key)
                    .value(&spec.owner.0)
                    .build(),
            )
            .tags(Tag::builder().key(JOB_TAG_KEY).value(&spec.job.0).build())
            .build();
        let token = client_token(&spec.owner, &spec.job);
        let user_data = base64::engine::general_purpose::STANDARD.encode(bootstrap);
        let attempt = std::sync::atomic::AtomicU32::new(0);
        let out = self
            .retry
            .run(
                "RunInstances",
                || async {
                    // A failed attempt may have launched the instance and lost the answer. EC2
                    // dedupes by client token; we also look, so an endpoint that ignores the
                    // token (moto does) still never gets a second VM.
                    if attempt.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                        if let Some(id) = self
                            .find_job(&spec.owner, &spec.job)
                            .await?
                            .and_then(|i| i.instance_id().map(str::to_string))
                        {
                            return Ok(id);
                        }
                    }
                    let out = self
                        .client
                        .run_instances()
                        .image_id(&self.cfg.ami_id)
                        .instance_type(itype.name.into())
                        .min_count(1)
                        .max_count(1)
                        .subnet_id(&self.cfg.subnet_id)
                        .security_group_ids(&self.cfg.security_group_id)
                        .client_token(&token)
                        .user_data(&user_data)
                        .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
                        .cpu_options(
                            CpuOptionsRequest::builder()
                                .amd_sev_snp(AmdSevSnpSpecification::Enabled)
                                .build(),
                        )
                        .metadata_options(
                            InstanceMetadataOptionsRequest::builder()
                                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                                .http_tokens(HttpTokensState::Required)
                                .http_put_response_hop_limit(1)
                                .build(),
                        )
                        .tag_specifications(tags.clone())
                        .tag_specifications(volume_tags.clone())
                        .send()
                        .await
                        .map_err(|e| Ec2Error::new("RunInstances", e))?;
                    out.instances()
                        .first()
                        .and_then(|i| i.instance_id())
                        .map(str::to_string)
                        .ok_or_else(|| Ec2Error {
                            call: "RunInstances",
                            code: None,
                            message: Some("the answer names no instance".into()),
                            status: Some(200),
                            source: "empty instance list".into(),
                        })
                },
                Ec2Error::retry,
            )
            .await
            .map_err(Ec2Error::into_provider)?;
        let id = out;
        tracing::info!(provider = NAME, vm = %id, job = %spec.job, instance_type = itype.name, "VM launched");
        Ok(VmHandle {
            id: VmId(id),
            owner: spec.owner.clone(),
            job: spec.job.clone(),
        })
    }

    async fn status(&self, id: &VmId) -> Result<VmState, ProviderError> {
        Ok(
            match self.instance(id).await.map_err(Ec2Error::into_provider)? {
                Some(instance) => state_of(&instance),
                None => VmState::Gone,
            },
        )
    }

    async fn destroy(&self, id: &VmId) -> Result<(), ProviderError> {
        // A terminate can be acknowledged and still not happen (or its answer be lost): check,
        // and ask again, until EC2 reports the instance shutting down or gone.
        for round in 0..self.retry.attempts.max(1) {
            self.terminate(id).await.map_err(Ec2Error::into_provider)?;
            let gone = match self.instance(id).await.map_err(Ec2Error::into_provider)? {
                None => true,
                Some(i) => state_of(&i) == VmState::Gone,
            };
            if gone {
                tracing::info!(provider = NAME, vm = %id, "VM destroyed");
                return Ok(());
            }
            tracing::warn!(provider = NAME, vm = %id, round, "instance still alive after TerminateInstances; asking again");
            tokio::time::sleep(
                self.retry
                    .wait(round + 1, None)
                    .max(Duration::from_millis(50)),
            )
            .await;
        }
        Err(ProviderError::Backend {
            provider: NAME.into(),
            call: "TerminateInstances".into(),
            source: format!(
                "instance {id} still alive after {} terminate calls",
                self.retry.attempts
            )
            .into(),
        })
    }

    async fn list(&self, owner: &OwnerTag) -> Result<Vec<VmHandle>, ProviderError> {
        let found = self
            .describe(vec![
                tag_filter(&self.cfg.owner_tag_key, &owner.0),
                live_filter(),
            ])
            .await
            .map_err(Ec2Error::into_provider)?;
        // The filter is EC2's; check again here so a misbehaving endpoint cannot hand us
        // another owner's VM.
        Ok(found
            .iter()
            .filter_map(|i| self.handle(i))
            .filter(|h| &h.owner == owner)
            .collect())
    }
}
