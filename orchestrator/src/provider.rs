//! Builds the configured provider. One arm per provider feature.

use std::sync::Arc;

use cdvm_provider_api::{Provider, ProviderError};

use crate::config::{Config, ProviderConfig};

/// The provider, and the policy its own guests satisfy (used when the config names none).
/// The provider, and its own guest policies (one per TEE it simulates; empty for hardware).
pub(crate) type Built = (Arc<dyn Provider>, Vec<std::path::PathBuf>);

pub(crate) async fn build(cfg: &Config) -> Result<Built, ProviderError> {
    match &cfg.provider {
        #[cfg(feature = "provider-process")]
        ProviderConfig::Process {
            agent_binary,
            platform,
            models_dir,
            inference_threads,
        } => {
            let agent_binary = match agent_binary {
                Some(p) => p.clone(),
                None => default_agent_binary()?,
            };
            let state_dir = cfg.state_dir.join("process-provider");
            let p = cdvm_provider_mock::ProcessProvider::new(
                cdvm_provider_mock::ProcessProviderConfig {
                    state_dir: state_dir.clone(),
                    agent_binary,
                    platform: match platform {
                        crate::config::ProcessPlatform::Bare => {
                            cdvm_provider_mock::SimPlatform::Bare
                        }
                        crate::config::ProcessPlatform::AzureVtpm => {
                            cdvm_provider_mock::SimPlatform::AzureVtpm
                        }
                    },
                    models_dir: models_dir.clone(),
                    inference_threads: *inference_threads,
                },
            )?;
            let own = vec![
                cdvm_provider_mock::dev_policy_path(&state_dir),
                cdvm_provider_mock::dev_tdx_policy_path(&state_dir),
            ];
            Ok((Arc::new(p), own.into_iter().collect()))
        }
        #[cfg(not(feature = "provider-process"))]
        ProviderConfig::Process { .. } => Err(missing_feature("process")),
        #[cfg(feature = "provider-qemu")]
        ProviderConfig::Qemu(q) => qemu(cfg, q),
        #[cfg(not(feature = "provider-qemu"))]
        ProviderConfig::Qemu(_) => Err(missing_feature("qemu")),
        #[cfg(feature = "provider-ssh")]
        ProviderConfig::Ssh(s) => ssh(cfg, s),
        #[cfg(not(feature = "provider-ssh"))]
        ProviderConfig::Ssh(_) => Err(missing_feature("ssh")),
        #[cfg(feature = "provider-aws")]
        ProviderConfig::Aws(a) => {
            check_owner("aws", &a.owner_tag, &cfg.owner_tag)?;
            let p = cdvm_provider_aws::AwsProvider::new(a.clone()).await?;
            Ok((Arc::new(p), Vec::new()))
        }
        #[cfg(not(feature = "provider-aws"))]
        ProviderConfig::Aws(_) => Err(missing_feature("aws")),
        #[cfg(feature = "provider-gcp")]
        ProviderConfig::Gcp(g) => {
            check_owner("gcp", &g.owner_label, &cfg.owner_tag)?;
            let p = cdvm_provider_gcp::GcpProvider::new(g.clone()).await?;
            Ok((Arc::new(p), Vec::new()))
        }
        #[cfg(not(feature = "provider-gcp"))]
        ProviderConfig::Gcp(_) => Err(missing_feature("gcp")),
        #[cfg(feature = "provider-azure")]
        ProviderConfig::Azure(a) => {
            check_owner("azure", &a.owner_tag, &cfg.owner_tag)?;
            let p = cdvm_provider_azure::AzureProvider::new(a.clone())?;
            Ok((Arc::new(p), Vec::new()))
        }
        #[cfg(not(feature = "provider-azure"))]
        ProviderConfig::Azure(_) => Err(missing_feature("azure")),
    }
}

/// The cloud's IAM conditions check the configured owner tag; the reconciler lists by the
/// orchestrator's. Two different values would launch VMs the orchestrator cannot see.
#[allow(dead_code)]
fn check_owner(provider: &str, cloud: &str, orchestrator: &str) -> Result<(), ProviderError> {
    if cloud == orchestrator {
        Ok(())
    } else {
        Err(ProviderError::InvalidSpec {
            provider: provider.into(),
            reason: format!(
                "the cloud section's owner tag {cloud:?} differs from owner_tag {orchestrator:?}"
            ),
        })
    }
}

#[cfg(not(all(
    feature = "provider-process",
    feature = "provider-qemu",
    feature = "provider-ssh",
    feature = "provider-aws",
    feature = "provider-gcp",
    feature = "provider-azure"
)))]
fn missing_feature(provider: &str) -> ProviderError {
    ProviderError::InvalidSpec {
        provider: provider.into(),
        reason: format!("this build lacks the `provider-{provider}` feature"),
    }
}

#[cfg(any(feature = "provider-qemu", feature = "provider-ssh"))]
mod qemu_settings {
    use crate::config::{QemuAccel, QemuCpu, QemuTee};
    use cdvm_provider_qemu as qp;

    pub(super) fn accel(a: QemuAccel) -> qp::Accel {
        match a {
            QemuAccel::Tcg => qp::Accel::Tcg,
            QemuAccel::Kvm => qp::Accel::Kvm,
        }
    }

    pub(super) fn tee(t: QemuTee) -> qp::TeeMode {
        match t {
            QemuTee::Sim => qp::TeeMode::Sim,
            QemuTee::SevSnp => qp::TeeMode::SevSnp,
            QemuTee::Tdx => qp::TeeMode::Tdx,
        }
    }

    pub(super) fn cpu(c: QemuCpu) -> qp::CpuModel {
        match c {
            QemuCpu::Milan => qp::CpuModel::Milan,
            QemuCpu::Genoa => qp::CpuModel::Genoa,
        }
    }
}

#[cfg(feature = "provider-ssh")]
fn ssh(cfg: &Config, s: &crate::config::SshProviderConfig) -> Result<Built, ProviderError> {
    use cdvm_provider_ssh as sp;
    let state_dir = cfg.state_dir.join("ssh-provider");
    let p = sp::SshProvider::new(sp::SshConfig {
        host: s.host.clone(),
        port: s.port,
        user: s.user.clone(),
        private_key: s.private_key.clone(),
        known_host_key: s.known_host_key.clone(),
        remote_dir: s.remote_dir.clone(),
        qemu: s.qemu.clone(),
        accel: qemu_settings::accel(s.accel),
        tee: qemu_settings::tee(s.tee),
        cpu: qemu_settings::cpu(s.cpu),
        image_dir: s.image_dir.clone(),
        state_dir: state_dir.clone(),
        policy_vcpus: cfg.jobs.vm_class.vcpus,
        max_lifetime: std::time::Duration::from_secs(s.max_lifetime_secs),
    })?;
    let own = (s.tee == crate::config::QemuTee::Sim).then(|| sp::dev_policy_path(&state_dir));
    Ok((Arc::new(p), own.into_iter().collect()))
}

#[cfg(feature = "provider-qemu")]
fn qemu(cfg: &Config, q: &crate::config::QemuProviderConfig) -> Result<Built, ProviderError> {
    use cdvm_provider_qemu as qp;
    let state_dir = cfg.state_dir.join("qemu-provider");
    let p = qp::QemuProvider::new(qp::QemuConfig {
        state_dir: state_dir.clone(),
        image_dir: q.image_dir.clone(),
        qemu: q.qemu.clone(),
        accel: qemu_settings::accel(q.accel),
        tee: qemu_settings::tee(q.tee),
        cpu: qemu_settings::cpu(q.cpu),
        boot: match q.boot {
            crate::config::QemuBoot::Direct => qp::Boot::Direct,
            crate::config::QemuBoot::Disk => {
                qp::Boot::Disk(qp::UefiFirmware::in_dir(&q.uefi_firmware_dir))
            }
        },
        policy_vcpus: cfg.jobs.vm_class.vcpus,
        max_lifetime: std::time::Duration::from_secs(q.max_lifetime_secs),
    })?;
    // Only the simulated mode has a policy of the provider's own; hardware guests are checked
    // against the configured guest_policy.
    let own = (q.tee == crate::config::QemuTee::Sim).then(|| qp::dev_policy_path(&state_dir));
    Ok((Arc::new(p), own.into_iter().collect()))
}

#[cfg(feature = "provider-process")]
fn default_agent_binary() -> Result<std::path::PathBuf, ProviderError> {
    let exe = std::env::current_exe().map_err(|e| ProviderError::Backend {
        provider: "process".into(),
        call: "locate cdvm-agent".into(),
        source: Box::new(e),
    })?;
    Ok(exe.with_file_name("cdvm-agent"))
}
