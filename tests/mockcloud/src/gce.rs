//! Compute Engine emulation (to be written: instances + zone operations).

use std::sync::Arc;

use axum::Router;

use crate::AppState;

/// Compute Engine state.
#[derive(Debug, Default)]
pub struct GceState {}

impl GceState {
    /// Names of instances not deleted.
    pub fn live(&self) -> Vec<String> {
        Vec::new()
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
