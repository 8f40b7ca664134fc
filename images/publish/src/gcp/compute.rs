//! The Compute Engine calls of a publish (`images.*`, `globalOperations.wait`), each through
//! the retry policy (the SDK's own retry loop is off, as in providers/gcp).

use std::future::Future;
use std::time::{Duration, Instant};

use cdvm_provider_api::retry::RetryPolicy;
use google_cloud_auth::credentials::Credentials;
use google_cloud_compute_v1::client::{GlobalOperations, Images};
use google_cloud_compute_v1::model::{operation, Image, Operation};
use google_cloud_gax::retry_policy::NeverRetry;

use super::error::{classify_sdk, CallError, OperationError};
use crate::Progress;

/// How long an image creation may take (GCE copies and converts the archive: minutes for a
/// few hundred MiB).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Compute Engine clients for one project.
#[derive(Debug)]
pub struct Compute {
    images: Images,
    operations: GlobalOperations,
    project: String,
    retry: RetryPolicy,
}

impl Compute {
    /// Clients for `project` at `endpoint` (none: Google's).
    pub async fn new(
        project: &str,
        endpoint: Option<&str>,
        credentials: Credentials,
        retry: RetryPolicy,
    ) -> Result<Self, google_cloud_gax::client_builder::Error> {
        let mut images = Images::builder()
            .with_retry_policy(NeverRetry)
            .with_credentials(credentials.clone());
        let mut operations = GlobalOperations::builder()
            .with_retry_policy(NeverRetry)
            .with_credentials(credentials);
        if let Some(e) = endpoint {
            images = images.with_endpoint(e);
            operations = operations.with_endpoint(e);
        }
        Ok(Self {
            images: images.build().await?,
            operations: operations.build().await?,
            project: project.into(),
            retry,
        })
    }

    async fn call<T, F, Fut>(&self, call: &'static str, op: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = google_cloud_compute_v1::Result<T>>,
    {
        self.retry
            .run(call, op, classify_sdk)
            .await
            .map_err(|source| CallError::Api { call, source })
    }

    /// `images.get`; `None` when there is no such image.
    pub async fn get(&self, name: &str) -> Result<Option<Image>, CallError> {
        let got = self
            .call("images.get", || {
                self.images
                    .get()
                    .set_project(&self.project)
                    .set_image(name)
                    .send()
            })
            .await;
        match got {
            Ok(image) => Ok(Some(image)),
            Err(e) if e.http_status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `images.insert`; GCE carries out one insert per `request_id`, however often it is sent.
    pub async fn insert(&self, body: &Image, request_id: &str) -> Result<Operation, CallError> {
        self.call("images.insert", || {
            self.images
                .insert()
                .set_project(&self.project)
                .set_request_id(request_id)
                .set_body(body.clone())
                .send()
        })
        .await
    }

    /// `images.delete`, waited for; an image already gone counts as deleted.
    pub async fn delete(
        &self,
        name: &str,
        request_id: &str,
        progress: Progress<'_>,
    ) -> Result<(), CallError> {
        let deleted = self
            .call("images.delete", || {
                self.images
                    .delete()
                    .set_project(&self.project)
                    .set_image(name)
                    .set_request_id(request_id)
                    .send()
            })
            .await;
        match deleted {
            Ok(op) => self.wait("images.delete", op, progress).await.map(drop),
            Err(e) if e.http_status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits (`globalOperations.wait`, which blocks server-side up to 2 minutes) until `op` is
    /// DONE; `Err` if it ends with errors or takes longer than [`OPERATION_TIMEOUT`].
    pub async fn wait(
        &self,
        call: &'static str,
        mut op: Operation,
        progress: Progress<'_>,
    ) -> Result<Operation, CallError> {
        let name = op.name.clone().unwrap_or_default();
        let started = Instant::now();
        let mut first = true;
        while op.status != Some(operation::Status::Done) {
            if started.elapsed() > OPERATION_TIMEOUT {
                return Err(CallError::OperationTimeout {
                    call,
                    operation: name,
                    waited: started.elapsed(),
                });
            }
            // `wait` may return early; do not spin on it.
            if !first {
                tokio::time::sleep(self.retry.base).await;
            }
            first = false;
            progress(&format!(
                "waiting for {call} (operation {name}, {} s so far)",
                started.elapsed().as_secs()
            ));
            op = self
                .call("globalOperations.wait", || {
                    self.operations
                        .wait()
                        .set_project(&self.project)
                        .set_operation(&name)
                        .send()
                })
                .await?;
        }
        let errors: Vec<OperationError> = op
            .error
            .iter()
            .flat_map(|e| e.errors.iter())
            .map(|e| OperationError {
                code: e.code.clone().unwrap_or_default(),
                message: e.message.clone().unwrap_or_default(),
            })
            .collect();
        if errors.is_empty() {
            Ok(op)
        } else {
            Err(CallError::Operation {
                call,
                operation: name,
                errors,
            })
        }
    }
}
