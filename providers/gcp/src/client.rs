//! The Compute Engine calls this backend makes, each through [`RetryPolicy::run`] (the SDK's own
//! retry loop is off: one retry layer, with jitter and our classification), and the waiting for
//! zone operations.

use std::future::Future;
use std::time::{Duration, Instant};

use cdvm_provider_api::retry::RetryPolicy;
use google_cloud_auth::credentials::Credentials;
use google_cloud_compute_v1::client::{Instances, ZoneOperations};
use google_cloud_compute_v1::model::{operation, Instance, Operation};
use google_cloud_gax::retry_policy::NeverRetry;

use crate::error::{self, GcpError, OperationError};

/// How long an operation may take before the call is reported failed (instance creation takes
/// under a minute usually; confidential GPU types can take several).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A Compute Engine client for one project and zone.
#[derive(Debug, Clone)]
pub(crate) struct Gce {
    instances: Instances,
    operations: ZoneOperations,
    project: String,
    zone: String,
    retry: RetryPolicy,
}

/// Why the SDK clients could not be built.
pub(crate) type BuildError = google_cloud_gax::client_builder::Error;

impl Gce {
    /// Clients for `project`/`zone`, at `endpoint` (default: Google's), authenticating with
    /// `credentials` (default: Application Default Credentials).
    pub(crate) async fn new(
        project: &str,
        zone: &str,
        endpoint: Option<&str>,
        credentials: Option<Credentials>,
        retry: RetryPolicy,
    ) -> Result<Self, BuildError> {
        let mut instances = Instances::builder().with_retry_policy(NeverRetry);
        let mut operations = ZoneOperations::builder().with_retry_policy(NeverRetry);
        if let Some(e) = endpoint {
            instances = instances.with_endpoint(e);
            operations = operations.with_endpoint(e);
        }
        if let Some(c) = credentials {
            instances = instances.with_credentials(c.clone());
            operations = operations.with_credentials(c);
        }
        Ok(Self {
            instances: instances.build().await?,
            operations: operations.build().await?,
            project: project.into(),
            zone: zone.into(),
            retry,
        })
    }

    /// The retry policy (also paces polling).
    pub(crate) fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    async fn call<T, F, Fut>(&self, call: &'static str, op: F) -> Result<T, GcpError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = google_cloud_compute_v1::Result<T>>,
    {
        self.retry
            .run(call, op, error::classify)
            .await
            .map_err(|source| GcpError::Api { call, source })
    }

    /// `instances.insert`; GCE carries out one insert per `request_id`, however often it is sent.
    pub(crate) async fn insert(
        &self,
        body: &Instance,
        request_id: &str,
    ) -> Result<Operation, GcpError> {
        self.call("instances.insert", || {
            self.instances
                .insert()
                .set_project(&self.project)
                .set_zone(&self.zone)
                .set_request_id(request_id)
                .set_body(body.clone())
                .send()
        })
        .await
    }

    /// `instances.get`; `None` when there is no such instance.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<Instance>, GcpError> {
        let got = self
            .call("instances.get", || {
                self.instances
                    .get()
                    .set_project(&self.project)
                    .set_zone(&self.zone)
                    .set_instance(name)
                    .send()
            })
            .await;
        match got {
            Ok(vm) => Ok(Some(vm)),
            Err(e) if e.http_status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `instances.delete`; `None` when there is no such instance.
    pub(crate) async fn delete(
        &self,
        name: &str,
        request_id: &str,
    ) -> Result<Option<Operation>, GcpError> {
        let deleted = self
            .call("instances.delete", || {
                self.instances
                    .delete()
                    .set_project(&self.project)
                    .set_zone(&self.zone)
                    .set_instance(name)
                    .set_request_id(request_id)
                    .send()
            })
            .await;
        match deleted {
            Ok(op) => Ok(Some(op)),
            Err(e) if e.http_status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `instances.list` with `filter`, every page.
    pub(crate) async fn list(&self, filter: &str) -> Result<Vec<Instance>, GcpError> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .call("instances.list", || {
                    self.instances
                        .list()
                        .set_project(&self.project)
                        .set_zone(&self.zone)
                        .set_filter(filter)
                        .set_or_clear_page_token(token.clone())
                        .send()
                })
                .await?;
            all.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(all),
            }
        }
    }

    /// Waits (`zoneOperations.wait`, which blocks server-side up to 2 minutes a call) until `op`
    /// is DONE; `Err` if it ends with errors or takes too long. `call` names what started it.
    pub(crate) async fn wait(
        &self,
        call: &'static str,
        mut op: Operation,
    ) -> Result<Operation, GcpError> {
        let name = op.name.clone().unwrap_or_default();
        let started = Instant::now();
        let mut first = true;
        while op.status != Some(operation::Status::Done) {
            if started.elapsed() > OPERATION_TIMEOUT {
                return Err(GcpError::OperationTimeout {
                    call,
                    operation: name,
                    waited: started.elapsed(),
                });
            }
            // `wait` is best-effort and may return early; do not spin on it.
            if !first {
                tokio::time::sleep(self.retry.base).await;
            }
            first = false;
            op = self
                .call("zoneOperations.wait", || {
                    self.operations
                        .wait()
                        .set_project(&self.project)
                        .set_zone(&self.zone)
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
            Err(GcpError::Operation {
                call,
                operation: name,
                errors,
            })
        }
    }
}
