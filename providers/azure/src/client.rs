//! The Resource Manager client: azure_core's pipeline (request id and user agent policies, our
//! bearer policy, the reqwest transport; azure_core's own retries off), each call wrapped in
//! [`RetryPolicy::run`], and polling of long-running operations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::{HeaderName, Headers, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use azure_core::http::response::ResponseBody;
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, PipelineSendOptions, Request, RetryOptions, Url,
};
use cdvm_provider_api::retry::RetryPolicy;
use serde::de::DeserializeOwned;

use crate::auth::BearerPolicy;
use crate::error::ArmError;
use crate::models::{AsyncOperation, ErrorResponse};

/// Microsoft.Compute API version of every VM call.
pub const COMPUTE_API_VERSION: &str = "2024-07-01";
/// Microsoft.Network API version of every NIC call.
pub const NETWORK_API_VERSION: &str = "2024-05-01";

const ASYNC_OPERATION: HeaderName = HeaderName::from_static("azure-asyncoperation");
const LOCATION: HeaderName = HeaderName::from_static("location");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_MS_RETRY_AFTER_MS: HeaderName = HeaderName::from_static("x-ms-retry-after-ms");

/// How long a long-running operation (creating or deleting a confidential VM) may take.
pub const OPERATION_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// Poll pace when ARM gives no `Retry-After` (capped by the retry policy's maximum wait).
const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status (2xx).
    pub status: u16,
    /// Headers.
    pub headers: Headers,
    body: ResponseBody,
}

impl Reply {
    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ArmError> {
        serde_json::from_slice(&self.body).map_err(ArmError::Json)
    }

    fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }
}

/// Resource Manager, reached through one endpoint with one credential.
#[derive(Debug)]
pub struct Arm {
    pipeline: Pipeline,
    endpoint: Url,
    retry: RetryPolicy,
}

impl Arm {
    /// A client for `endpoint` (`https://management.azure.com`).
    pub fn new(
        endpoint: &str,
        retry: RetryPolicy,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, ArmError> {
        let endpoint = Url::parse(endpoint).map_err(|source| ArmError::Url {
            url: endpoint.into(),
            source,
        })?;
        let options = ClientOptions {
            // Every call is retried by RetryPolicy::run, classified by ArmError::retry.
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        };
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            vec![Arc::new(BearerPolicy::new(credential))],
            None,
        );
        Ok(Self {
            pipeline,
            endpoint,
            retry,
        })
    }

    /// `endpoint/segment/…?query`, each segment escaped (a VM name cannot change the path).
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A link ARM handed out (operation status, next page), if it is under the endpoint: the
    /// bearer token goes nowhere else.
    pub fn follow(&self, link: &str) -> Result<Url, ArmError> {
        let foreign = || ArmError::ForeignUrl { url: link.into() };
        let url = Url::parse(link).map_err(|_| foreign())?;
        if url.origin() == self.endpoint.origin() {
            Ok(url)
        } else {
            Err(foreign())
        }
    }

    /// One call, retried by the policy; `call` names it in logs and errors.
    pub async fn call(
        &self,
        call: &str,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
    ) -> Result<Reply, ArmError> {
        self.retry
            .run(call, || self.send(method, url, body), ArmError::retry)
            .await
    }

    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
    ) -> Result<Reply, ArmError> {
        let mut request = Request::new(url.clone(), method);
        request.insert_header(ACCEPT, "application/json");
        if let Some(body) = body {
            request.insert_header(CONTENT_TYPE, "application/json");
            request.set_body(body.to_vec());
        }
        let options = PipelineSendOptions {
            skip_checks: true,
            ..PipelineSendOptions::default()
        };
        let response = self
            .pipeline
            .send(&Context::new(), &mut request, Some(options))
            .await
            .map_err(ArmError::Transport)?;
        let (status, headers, body) = response.deconstruct();
        let status = u16::from(status);
        if (200..300).contains(&status) {
            Ok(Reply {
                status,
                headers,
                body,
            })
        } else {
            Err(api_error(status, &headers, &body))
        }
    }

    /// Waits for the long-running operation `reply` started, if any: polls its
    /// `Azure-AsyncOperation` URL (or, without one, the `Location` of a 202) until it ends.
    pub async fn wait(&self, call: &str, reply: &Reply) -> Result<(), ArmError> {
        let started = Instant::now();
        let mut pause = reply.retry_after();
        if let Some(link) = reply.headers.get_optional_str(&ASYNC_OPERATION) {
            let url = self.follow(link)?;
            loop {
                self.pause(started, pause, call).await?;
                let status = self.call(call, Method::Get, &url, None).await?;
                let op: AsyncOperation = status.json()?;
                match op.status.as_str() {
                    "Succeeded" => return Ok(()),
                    "Failed" | "Canceled" => {
                        return Err(ArmError::operation(op.status, op.error.unwrap_or_default()))
                    }
                    _ => pause = status.retry_after(),
                }
            }
        }
        if reply.status == 202 {
            if let Some(link) = reply.headers.get_optional_str(&LOCATION) {
                let url = self.follow(link)?;
                loop {
                    self.pause(started, pause, call).await?;
                    let result = self.call(call, Method::Get, &url, None).await?;
                    if result.status != 202 {
                        return Ok(());
                    }
                    pause = result.retry_after();
                }
            }
        }
        Ok(())
    }

    /// Sleeps before the next poll (ARM's `Retry-After`, capped by the policy's maximum wait),
    /// unless the operation deadline has passed.
    pub async fn pause(
        &self,
        started: Instant,
        retry_after: Option<Duration>,
        what: &str,
    ) -> Result<(), ArmError> {
        let waited = started.elapsed();
        if waited > OPERATION_DEADLINE {
            return Err(ArmError::Timeout {
                what: what.into(),
                waited,
            });
        }
        let wait = retry_after.unwrap_or(DEFAULT_POLL).min(self.retry.max);
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

fn retry_after(headers: &Headers) -> Option<Duration> {
    let ms = |name: &HeaderName| {
        headers
            .get_optional_str(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
    };
    ms(&RETRY_AFTER_MS)
        .or_else(|| ms(&X_MS_RETRY_AFTER_MS))
        .or_else(|| {
            headers
                .get_optional_str(&RETRY_AFTER)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        })
}

/// ARM's error body, or the status and the start of whatever came instead.
fn api_error(status: u16, headers: &Headers, body: &[u8]) -> ArmError {
    let detail = match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => e.error,
        Err(_) => crate::models::ErrorDetail {
            code: format!("Http{status}"),
            message: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            details: Vec::new(),
        },
    };
    ArmError::api(status, detail, retry_after(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::{AccessToken, TokenRequestOptions};

    #[derive(Debug)]
    struct NoToken;

    #[async_trait::async_trait]
    impl TokenCredential for NoToken {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "none",
            ))
        }
    }

    fn arm() -> Arm {
        Arm::new(
            "https://management.azure.com",
            RetryPolicy::default(),
            Arc::new(NoToken),
        )
        .expect("client")
    }

    #[test]
    fn urls_escape_segments_and_links_stay_on_the_endpoint() {
        let a = arm();
        let url = a.url(
            &["subscriptions", "s", "virtualMachines", "a/../b?x"],
            &[("api-version", COMPUTE_API_VERSION)],
        );
        assert_eq!(
            url.as_str(),
            "https://management.azure.com/subscriptions/s/virtualMachines/a%2F..%2Fb%3Fx?api-version=2024-07-01"
        );
        assert!(a
            .follow("https://management.azure.com/subscriptions/s/providers/Microsoft.Compute/locations/x/operations/1")
            .is_ok());
        assert!(matches!(
            a.follow("https://evil.example/operations/1"),
            Err(ArmError::ForeignUrl { .. })
        ));
        assert!(a.follow("http://management.azure.com/x").is_err());
    }

    #[test]
    fn retry_after_in_seconds_or_milliseconds() {
        let mut h = Headers::new();
        h.insert(RETRY_AFTER, "7");
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER_MS, "250");
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&Headers::new()), None);
    }

    #[test]
    fn error_bodies_are_parsed_or_summarised() {
        let e = api_error(
            400,
            &Headers::new(),
            br#"{"error":{"code":"InvalidParameter","message":"bad size"}}"#,
        );
        assert_eq!(e.code(), Some("InvalidParameter"));
        assert_eq!(e.status(), Some(400));
        let e = api_error(502, &Headers::new(), b"<html>bad gateway</html>");
        assert_eq!(e.code(), Some("Http502"));
    }
}
