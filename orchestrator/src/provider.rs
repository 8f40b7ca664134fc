//! Builds the configured provider. One arm per provider feature.

use std::sync::Arc;

use cdvm_provider_api::{Provider, ProviderError};

use crate::config::{Config, ProviderConfig};

pub(crate) fn build(cfg: &Config) -> Result<Arc<dyn Provider>, ProviderError> {
    match &cfg.provider {
        #[cfg(feature = "provider-process")]
        ProviderConfig::Process { agent_binary } => {
            let agent_binary = match agent_binary {
                Some(p) => p.clone(),
                None => default_agent_binary()?,
            };
            let p = cdvm_provider_mock::ProcessProvider::new(
                cdvm_provider_mock::ProcessProviderConfig {
                    state_dir: cfg.state_dir.join("process-provider"),
                    agent_binary,
                },
            )?;
            Ok(Arc::new(p))
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
