//! EC2 proxy in front of moto server (to be written).

use std::sync::Arc;

use axum::Router;

use crate::AppState;

/// EC2 proxy state.
#[derive(Debug)]
pub struct AwsState {
    moto_url: Option<String>,
}

impl AwsState {
    /// A proxy forwarding to `moto_url`.
    pub fn new(moto_url: Option<String>) -> Self {
        Self { moto_url }
    }

    /// Instances booted through the proxy and not terminated.
    pub fn live(&self) -> Vec<String> {
        let _ = &self.moto_url;
        Vec::new()
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
