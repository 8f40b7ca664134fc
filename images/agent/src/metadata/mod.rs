//! Reading the bootstrap from a cloud's instance metadata service (`--bootstrap-from`).
//!
//! The bootstrap is public, so the metadata service's lack of integrity costs nothing: a forged
//! bootstrap can only name another request id, and the attestation binds to the request id the
//! guest actually used, which the user checks.

mod http;

use std::time::Duration;

use cdvm_protocol::bootstrap::metadata::{
    MetadataService, AZURE_IMDS_API_VERSION, GCE_BOOTSTRAP_KEY,
};
use cdvm_protocol::Bootstrap;

pub use http::Url;

/// Attempts before giving up: the metadata service can lag behind the guest's network.
const ATTEMPTS: u32 = 8;

/// Why the bootstrap could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The endpoint could not be reached or answered garbage.
    #[error("{service} metadata service")]
    Http {
        /// Which service.
        service: MetadataService,
        /// The failure.
        #[source]
        source: http::HttpError,
    },
    /// The service answered with an error status.
    #[error("{service} metadata service answered HTTP {status} to {what}")]
    Status {
        /// Which service.
        service: MetadataService,
        /// What was asked.
        what: &'static str,
        /// The status.
        status: u16,
    },
    /// The user data is not base64 (Azure).
    #[error("{service} user data is not base64")]
    Base64 {
        /// Which service.
        service: MetadataService,
    },
    /// The value is not a bootstrap.
    #[error("{service} metadata does not hold a valid bootstrap")]
    Parse {
        /// Which service.
        service: MetadataService,
        /// The parse failure.
        #[source]
        source: cdvm_protocol::ProtocolError,
    },
}

/// Reads and parses the bootstrap, retrying while the service is unreachable or failing.
pub async fn read_bootstrap(
    service: MetadataService,
    endpoint: &Url,
) -> Result<Bootstrap, MetadataError> {
    let mut attempt = 1;
    let raw = loop {
        match fetch(service, endpoint).await {
            Ok(raw) => break raw,
            Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                tracing::warn!(cloud = %service, attempt, "metadata not available yet: {e}");
                tokio::time::sleep(Duration::from_millis(250 << attempt.min(5))).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    Bootstrap::from_json(&raw).map_err(|source| MetadataError::Parse { service, source })
}

fn retryable(e: &MetadataError) -> bool {
    match e {
        MetadataError::Http { .. } => true,
        MetadataError::Status { status, .. } => *status >= 500 || *status == 429,
        MetadataError::Base64 { .. } | MetadataError::Parse { .. } => false,
    }
}

async fn fetch(service: MetadataService, url: &Url) -> Result<Vec<u8>, MetadataError> {
    let http = |source| MetadataError::Http { service, source };
    let ok = |what, r: http::Response| {
        if r.status == 200 {
            Ok(r.body)
        } else {
            Err(MetadataError::Status {
                service,
                what,
                status: r.status,
            })
        }
    };
    match service {
        MetadataService::Aws => {
            // IMDSv2: a session token first; the launch requires it (HttpTokens=required).
            let token = http::request(
                url,
                "PUT",
                "/latest/api/token",
                &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
            )
            .await
            .map_err(http)?;
            let token = ok("the IMDSv2 token request", token)?;
            let token = String::from_utf8_lossy(&token).trim().to_string();
            let data = http::request(
                url,
                "GET",
                "/latest/user-data",
                &[("X-aws-ec2-metadata-token", &token)],
            )
            .await
            .map_err(http)?;
            ok("the user-data request", data)
        }
        MetadataService::Gcp => {
            let path = format!("/computeMetadata/v1/instance/attributes/{GCE_BOOTSTRAP_KEY}");
            let r = http::request(url, "GET", &path, &[("Metadata-Flavor", "Google")])
                .await
                .map_err(http)?;
            ok("the bootstrap attribute request", r)
        }
        MetadataService::Azure => {
            let path = format!(
                "/metadata/instance/compute/userData?api-version={AZURE_IMDS_API_VERSION}&format=text"
            );
            let r = http::request(url, "GET", &path, &[("Metadata", "true")])
                .await
                .map_err(http)?;
            let encoded = ok("the userData request", r)?;
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(String::from_utf8_lossy(&encoded).trim())
                .map_err(|_| MetadataError::Base64 { service })
        }
    }
}
