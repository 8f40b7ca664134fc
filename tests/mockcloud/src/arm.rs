//! Azure Resource Manager emulation (to be written: virtualMachines + async operations).

use std::sync::Arc;

use axum::Router;

use crate::AppState;

/// Resource Manager state.
#[derive(Debug, Default)]
pub struct ArmState {}

impl ArmState {
    /// Names of instances not deleted.
    pub fn live(&self) -> Vec<String> {
        Vec::new()
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
