//! The rollback list: what a publish created, deleted in reverse order when a step fails.

use crate::error::{CleanupFailure, PublishError};

/// Resources created so far by one publish, each with how to name it in errors.
#[derive(Debug)]
pub struct Undo<R> {
    created: Vec<R>,
}

impl<R> Default for Undo<R> {
    fn default() -> Self {
        Self {
            created: Vec::new(),
        }
    }
}

impl<R: std::fmt::Display> Undo<R> {
    /// Records `resource` as created. Call it as soon as the cloud has answered with its id
    /// (or before the call, for a name chosen by us), so a failure right after still deletes it.
    pub fn created(&mut self, resource: R) {
        self.created.push(resource);
    }

    /// What is recorded, oldest first.
    pub fn resources(&self) -> &[R] {
        &self.created
    }

    /// The publish succeeded: keep everything.
    pub fn commit(self) -> Vec<R> {
        self.created
    }

    /// Step `step` failed with `source`: deletes everything recorded, newest first, with
    /// `delete`, and returns the error to report: [`PublishError::Step`] when every delete
    /// worked, [`PublishError::StepAndCleanup`] naming what is left behind otherwise.
    pub async fn roll_back<F, Fut>(
        self,
        step: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
        mut delete: F,
    ) -> PublishError
    where
        F: FnMut(&R) -> Fut,
        Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
    {
        let mut left = Vec::new();
        for resource in self.created.iter().rev() {
            tracing::info!(%resource, "publish failed at {step}: deleting what it created");
            if let Err(e) = delete(resource).await {
                tracing::warn!(%resource, error = %e, "could not delete");
                left.push(CleanupFailure {
                    resource: resource.to_string(),
                    reason: crate::error::chain(&*e),
                });
            }
        }
        if left.is_empty() {
            PublishError::Step { step, source }
        } else {
            PublishError::StepAndCleanup {
                step,
                source,
                left_behind: left,
            }
        }
    }
}
