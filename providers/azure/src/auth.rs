//! Credentials and the policy that puts the bearer token on each request.
//!
//! azure_core's own `BearerTokenAuthorizationPolicy` refuses any non-`https` URL, which rules
//! out the in-process emulator; this policy allows plain `http` to loopback addresses only, so a
//! token never crosses a network unencrypted.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::headers::AUTHORIZATION;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

/// The token scope of Resource Manager.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// The production credential: the user-assigned managed identity with this client id, or, with
/// none, the developer-tools chain (Azure CLI, Azure Developer CLI) for runs outside Azure.
pub fn default_credential(
    identity_client_id: Option<&str>,
) -> azure_core::Result<Arc<dyn TokenCredential>> {
    Ok(match identity_client_id {
        Some(id) => ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: Some(UserAssignedId::ClientId(id.to_string())),
            ..Default::default()
        }))?,
        None => DeveloperToolsCredential::new(None)?,
    })
}

/// The credential for an emulator on a loopback address: a fixed token naming itself. No real
/// credential is ever looked up, so none can leak to an emulator.
#[derive(Debug)]
pub struct EmulatorToken;

#[async_trait]
impl TokenCredential for EmulatorToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Ok(azure_core::credentials::AccessToken::new(
            "loopback-emulator",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

/// Whether `endpoint` is plain http on a loopback address: an emulator, never Azure.
pub fn is_loopback_emulator(endpoint: &str) -> bool {
    Url::parse(endpoint).is_ok_and(|u| u.scheme() == "http" && may_carry_token(&u))
}

/// Whether a bearer token may be sent to `url`: TLS, or a loopback address (the emulator).
pub fn may_carry_token(url: &Url) -> bool {
    match (url.scheme(), url.host_str()) {
        ("https", _) => true,
        ("http", Some(host)) => {
            host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

/// Adds `Authorization: Bearer …` (the credential caches and refreshes tokens itself).
#[derive(Debug)]
pub struct BearerPolicy {
    credential: Arc<dyn TokenCredential>,
}

impl BearerPolicy {
    /// A policy asking `credential` for ARM tokens.
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        Self { credential }
    }
}

#[async_trait]
impl Policy for BearerPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if !may_carry_token(request.url()) {
            return Err(azure_core::Error::with_message(
                ErrorKind::Other,
                "a bearer token is sent over https, or plain http to a loopback address only",
            ));
        }
        let token = self.credential.get_token(&[ARM_SCOPE], None).await?;
        request.insert_header(AUTHORIZATION, format!("Bearer {}", token.token.secret()));
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_over_tls_or_loopback_only() {
        let ok = |u: &str| may_carry_token(&Url::parse(u).expect("url"));
        assert!(ok("https://management.azure.com/subscriptions"));
        assert!(ok("http://127.0.0.1:8080/x"));
        assert!(ok("http://[::1]:8080/x"));
        assert!(ok("http://localhost/x"));
        assert!(!ok("http://management.azure.com/x"));
        assert!(!ok("http://10.0.0.1/x"));
        assert!(!ok("ftp://127.0.0.1/x"));
    }
}
