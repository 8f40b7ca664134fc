//! Builds the configured provider. One arm per provider feature.

use std::sync::Arc;

use cdvm_provider_api::{Provider, ProviderError};

use crate::config::{Config, ProviderConfig};

/// The provider, and the policy its own guests satisfy (used when the config names none).
pub(crate) type Built = (Arc<dyn Provider>, Option<std::path::PathBuf>);

pub(crate) fn build(cfg: &Config) -> Result<Built, ProviderError> {
    match &cfg.provider {
        #[cfg(feature = "provider-process")]
        ProviderConfig::Process { agent_binary } => {
            let agent_binary = match agent_binary {
                Some(p) => p.clone(),
                None => default_agent_binary()?,
            };
            let state_dir = cfg.state_dir.join("process-provider");
            let p = cdvm_provider_mock::ProcessProvider::new(
                cdvm_provider_mock::ProcessProviderConfig {
                    state_dir: state_dir.clone(),
                    agent_binary,
                },
            )?;
            let own_policy = cdvm_provider_mock::dev_policy_path(&state_dir);
            Ok((Arc::new(p), Some(own_policy)))
        }
        #[cfg(not(feature = "provider-process"))]
        ProviderConfig::Process { .. } => Err(ProviderError::InvalidSpec {
            provider: "process".into(),
            reason: "this build lacks the `provider-process` feature".into(),
        }),
    }
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
