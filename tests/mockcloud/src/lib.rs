//! `mockcloud`: a localstack-style emulator of the cloud APIs ConfidentialDVM's backends call, for
//! tests and the demo on a machine without cloud accounts.
//!
//! - [`gce`]: Compute Engine instances and zone operations (REST, `/compute/v1/…`), images and
//!   global operations.
//! - [`gcs`]: Cloud Storage objects: resumable uploads, metadata, deletes (JSON API).
//! - [`arm`]: Azure Resource Manager virtual machines and async operations (`/subscriptions/…`).
//! - [`aws`]: a proxy in front of moto server (EC2 query API, `POST /`), which moto only records;
//!   the proxy injects faults and boots what moto launched.
//! - [`metadata`]: each cloud's instance metadata service, per instance.
//!
//! Requests are validated the way the real APIs do (unknown machine types, confidential settings on
//! the wrong family, …) and refused with the real error shapes. Faults are injected by
//! configuration ([`config::FaultConfig`]). With [`config::BootConfig`], a created instance boots:
//! the agent runs as a local process and reads its bootstrap from the emulated metadata service.
#![deny(missing_docs)]

#[cfg(feature = "arm")]
pub mod arm;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod aws_images;
#[cfg(feature = "aws")]
pub mod aws_setup;
pub mod boot;
pub mod config;
pub mod faults;
#[cfg(feature = "gce")]
pub mod gce;
#[cfg(feature = "gce")]
pub mod gcs;
pub mod metadata;
#[cfg(feature = "aws")]
pub mod moto;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::boot::Booter;
use crate::config::MockCloudConfig;
use crate::faults::Faults;
use crate::metadata::MetadataStore;

/// State shared by every emulated API.
#[derive(Debug)]
pub struct AppState {
    /// The fault injector.
    pub faults: Faults,
    /// Boots instances, when configured.
    pub booter: Option<Booter>,
    /// The metadata services.
    pub metadata: MetadataStore,
    /// This server's own base URL (`http://127.0.0.1:PORT`).
    pub base_url: String,
    /// Compute Engine state.
    #[cfg(feature = "gce")]
    pub gce: gce::GceState,
    /// Cloud Storage state (with Compute Engine: images are made from its objects).
    #[cfg(feature = "gce")]
    pub gcs: gcs::GcsState,
    /// Resource Manager state.
    #[cfg(feature = "arm")]
    pub arm: arm::ArmState,
    /// EC2 proxy state.
    #[cfg(feature = "aws")]
    pub aws: aws::AwsState,
}

/// What is still alive in the emulator (`GET /mockcloud/instances`).
#[derive(Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LiveInstances {
    /// GCE instances not deleted.
    pub gce: Vec<String>,
    /// ARM virtual machines not deleted.
    pub arm: Vec<String>,
    /// EC2 instances booted through the proxy and not terminated.
    pub aws: Vec<String>,
    /// Local guest processes still running, all clouds together.
    pub guests: usize,
}

impl AppState {
    /// Everything still alive.
    pub async fn live(&self) -> LiveInstances {
        let mut guests = 0;
        if let Some(b) = &self.booter {
            for s in cdvm_provider_api::metadata::MetadataService::ALL {
                guests += b.guests(s).await.len();
            }
        }
        // The update fills the clouds whose feature is off.
        #[allow(clippy::needless_update)]
        LiveInstances {
            #[cfg(feature = "gce")]
            gce: self.gce.live(),
            #[cfg(feature = "arm")]
            arm: self.arm.live(),
            #[cfg(feature = "aws")]
            aws: self.aws.live(),
            guests,
            ..LiveInstances::default()
        }
    }
}

/// A running mock cloud.
#[derive(Debug)]
pub struct MockCloud {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its base URL, to give backends as their endpoint.
    pub base_url: String,
    /// Its state (tests inspect faults and live instances).
    pub state: Arc<AppState>,
    server: JoinHandle<()>,
}

/// Why the mock cloud did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The booter could not open its state folder.
    #[error("cannot set up booting")]
    Boot(#[source] cdvm_provider_api::ProviderError),
}

impl MockCloud {
    /// Binds, then serves in the background until dropped.
    pub async fn start(config: MockCloudConfig) -> Result<Self, StartError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let base_url = format!("http://{addr}");
        let booter = match &config.boot {
            Some(b) => Some(Booter::new(b).map_err(StartError::Boot)?),
            None => None,
        };
        let state = Arc::new(AppState {
            faults: Faults::new(config.faults.clone()),
            booter,
            metadata: MetadataStore::default(),
            base_url: base_url.clone(),
            #[cfg(feature = "gce")]
            gce: gce::GceState::default(),
            #[cfg(feature = "gce")]
            gcs: gcs::GcsState::default(),
            #[cfg(feature = "arm")]
            arm: arm::ArmState::default(),
            #[cfg(feature = "aws")]
            aws: aws::AwsState::new(config.moto_url.clone()),
        });
        #[allow(unused_mut)]
        let mut router = Router::new()
            .route("/mockcloud/instances", get(live))
            .merge(metadata::routes());
        #[cfg(feature = "gce")]
        {
            router = router.merge(gce::routes()).merge(gcs::routes());
        }
        #[cfg(feature = "arm")]
        {
            router = router.merge(arm::routes());
        }
        #[cfg(feature = "aws")]
        {
            router = router.merge(aws::routes()).merge(aws_images::routes());
        }
        let app = router.with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("mock cloud server stopped: {e}");
            }
        });
        tracing::info!(%addr, "mock cloud listening");
        Ok(Self {
            addr,
            base_url,
            state,
            server,
        })
    }

    /// Stops every guest still running (a test's last line of defence; the test asserts on
    /// [`AppState::live`] before calling this).
    pub async fn halt_all_guests(&self) {
        if let Some(b) = &self.state.booter {
            for s in cdvm_provider_api::metadata::MetadataService::ALL {
                for vm in b.guests(s).await {
                    b.halt(&vm).await;
                }
            }
        }
    }
}

impl Drop for MockCloud {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn live(State(state): State<Arc<AppState>>) -> Json<LiveInstances> {
    Json(state.live().await)
}
