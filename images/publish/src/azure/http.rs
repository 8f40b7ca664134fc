//! One azure_core pipeline for Resource Manager and the blob service: our bearer policy (a token
//! for the request's scope, over TLS or to a loopback emulator only), azure_core's own retries
//! off, and every idempotent call retried by [`RetryPolicy::run`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, Headers, AUTHORIZATION, RETRY_AFTER};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, PipelineSendOptions, Request, RetryOptions, Url,
};
use cdvm_provider_api::retry::{Retry, RetryPolicy};
use cdvm_provider_azure::auth::may_carry_token;
use serde::de::DeserializeOwned;

/// Why one Azure call failed.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// No answer (connection, TLS, credential).
    #[error("{call}: no answer from Azure")]
    Transport {
        /// The call.
        call: String,
        /// Why.
        #[source]
        source: azure_core::Error,
    },
    /// Azure answered with an error.
    #[error("{call}: HTTP {status} {code}: {message}")]
    Api {
        /// The call.
        call: String,
        /// HTTP status.
        status: u16,
        /// Azure's error code (ARM's `error.code`, the blob service's `x-ms-error-code`).
        code: String,
        /// Azure's message (shortened).
        message: String,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// An answer we cannot read.
    #[error("{call}: unexpected answer")]
    Json {
        /// The call.
        call: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A long-running operation did not end in time.
    #[error("{what} did not finish within {waited:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        waited: Duration,
    },
    /// A long-running operation ended badly.
    #[error("{what} ended {status}: {code}: {message}")]
    Operation {
        /// What it was.
        what: String,
        /// `Failed` or `Canceled`.
        status: String,
        /// Azure's error code.
        code: String,
        /// Azure's message.
        message: String,
    },
    /// Azure handed out a link outside the endpoint (the token is not sent there).
    #[error("Azure named {url}, which is not under the endpoint")]
    ForeignUrl {
        /// The link.
        url: String,
    },
    /// Reading the VHD failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// What Azure holds is not what was sent or asked for.
    #[error("{0}")]
    Check(String),
}

impl AzureError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Throttling waits for `Retry-After`, timeouts, 5xx and unanswered requests back off,
    /// everything else is final.
    fn retry(&self) -> Retry {
        match self {
            Self::Api {
                status: 429,
                retry_after,
                ..
            } => retry_after.map_or(Retry::Backoff, Retry::After),
            Self::Api { status, .. } if *status >= 500 || *status == 408 => Retry::Backoff,
            Self::Transport { source, .. } if !matches!(source.kind(), ErrorKind::Credential) => {
                Retry::Backoff
            }
            _ => Retry::No,
        }
    }
}

/// A 2xx answer.
#[derive(Debug)]
pub struct Reply {
    /// Headers.
    pub headers: Headers,
    body: Vec<u8>,
}

impl Reply {
    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self, call: &str) -> Result<T, AzureError> {
        serde_json::from_slice(&self.body).map_err(|source| AzureError::Json {
            call: call.into(),
            source,
        })
    }

    /// A header's value.
    pub fn header(&self, name: &'static str) -> Option<&str> {
        self.headers
            .get_optional_str(&HeaderName::from_static(name))
    }

    /// The server's `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }
}

/// A request to send: method, URL, token scope, extra headers, body.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// Names the call in logs and errors (`blobs.putPage`).
    pub name: &'a str,
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: &'a Url,
    /// The token scope (ARM's or storage's).
    pub scope: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body (`Content-Length: 0` when empty on a PUT).
    pub body: Option<&'a [u8]>,
}

/// The pipeline and the pace of retries and polls.
#[derive(Debug)]
pub struct Client {
    pipeline: Pipeline,
    retry: RetryPolicy,
    /// Poll pace when Azure gives no `Retry-After`.
    pub poll: Duration,
}

/// Scope carried from the call to the bearer policy.
#[derive(Debug, Clone, Copy)]
struct Scope(&'static str);

impl Client {
    /// A client with `credential`; `emulator` makes waits milliseconds (the mock cloud).
    pub fn new(credential: Arc<dyn TokenCredential>, emulator: bool) -> Self {
        let options = ClientOptions {
            // Every call is retried by RetryPolicy::run, classified by AzureError::retry.
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        };
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            vec![Arc::new(ScopedBearer { credential })],
            None,
        );
        let (retry, poll) = if emulator {
            (
                RetryPolicy {
                    attempts: 8,
                    base: Duration::from_millis(2),
                    max: Duration::from_millis(20),
                },
                Duration::from_millis(20),
            )
        } else {
            (
                RetryPolicy {
                    attempts: 6,
                    base: Duration::from_millis(500),
                    max: Duration::from_secs(30),
                },
                Duration::from_secs(10),
            )
        };
        Self {
            pipeline,
            retry,
            poll,
        }
    }

    /// Sends `call`, retrying it while [`AzureError::retry`] allows (every call we make is
    /// idempotent: PUT by name, page writes to fixed ranges, GET, HEAD, DELETE).
    pub async fn send(&self, call: &Call<'_>) -> Result<Reply, AzureError> {
        self.retry
            .run(call.name, || self.send_once(call), AzureError::retry)
            .await
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<Reply, AzureError> {
        let mut request = Request::new(call.url.clone(), call.method);
        for (name, value) in &call.headers {
            request.insert_header(HeaderName::from_static(name), value.clone());
        }
        match call.body {
            Some(body) => request.set_body(body.to_vec()),
            // Azure answers 411 to a PUT without Content-Length.
            None if call.method == Method::Put => request.set_body(Vec::new()),
            None => {}
        }
        let mut ctx = Context::new();
        ctx.insert(Scope(call.scope));
        let options = PipelineSendOptions {
            skip_checks: true,
            ..PipelineSendOptions::default()
        };
        let response = self
            .pipeline
            .send(&ctx, &mut request, Some(options))
            .await
            .map_err(|source| AzureError::Transport {
                call: call.name.into(),
                source,
            })?;
        let (status, headers, body) = response.deconstruct();
        let status = u16::from(status);
        let body = body.to_vec();
        if (200..300).contains(&status) {
            Ok(Reply { headers, body })
        } else {
            Err(api_error(call.name, status, &headers, &body))
        }
    }
}

/// ARM's `{"error": {"code", "message"}}`, the blob service's `x-ms-error-code` and XML
/// `<Message>`, or the start of whatever came.
fn api_error(call: &str, status: u16, headers: &Headers, body: &[u8]) -> AzureError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    let (code, message) = match serde_json::from_slice::<Body>(body) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => {
            let code = headers
                .get_optional_str(&HeaderName::from_static("x-ms-error-code"))
                .map_or_else(|| format!("Http{status}"), str::to_string);
            let message = xml_element(&text, "Message").unwrap_or(text.clone());
            (code, message)
        }
    };
    AzureError::Api {
        call: call.into(),
        status,
        code,
        message,
        retry_after: retry_after(headers),
    }
}

fn xml_element(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let end = text[start..].find(&format!("</{name}>"))?;
    Some(text[start..start + end].to_string())
}

fn retry_after(headers: &Headers) -> Option<Duration> {
    let value = |name: &'static str| {
        headers
            .get_optional_str(&HeaderName::from_static(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    value("retry-after-ms")
        .or_else(|| value("x-ms-retry-after-ms"))
        .map(Duration::from_millis)
        .or_else(|| {
            headers
                .get_optional_str(&RETRY_AFTER)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        })
}

/// Adds `Authorization: Bearer …` for the call's scope (the credential caches tokens per scope).
/// azure_core's own policy refuses plain http, which rules out the emulator; this one allows it
/// to loopback addresses only, so a token never crosses a network unencrypted.
#[derive(Debug)]
struct ScopedBearer {
    credential: Arc<dyn TokenCredential>,
}

#[async_trait]
impl Policy for ScopedBearer {
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
        let Some(Scope(scope)) = ctx.value::<Scope>().copied() else {
            return Err(azure_core::Error::with_message(
                ErrorKind::Other,
                "no token scope for this request",
            ));
        };
        let token = self.credential.get_token(&[scope], None).await?;
        request.insert_header(AUTHORIZATION, format!("Bearer {}", token.token.secret()));
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_from_arm_json_or_storage_xml() {
        let e = api_error(
            "x",
            409,
            &Headers::new(),
            br#"{"error":{"code":"Conflict","message":"busy"}}"#,
        );
        assert!(matches!(e, AzureError::Api { ref code, .. } if code == "Conflict"));
        assert_eq!(e.retry(), Retry::No);
        let mut h = Headers::new();
        h.insert(
            HeaderName::from_static("x-ms-error-code"),
            "InvalidPageRange",
        );
        let e = api_error(
            "x",
            416,
            &h,
            b"<?xml version=\"1.0\"?><Error><Code>InvalidPageRange</Code><Message>bad range</Message></Error>",
        );
        match e {
            AzureError::Api { code, message, .. } => {
                assert_eq!(
                    (code.as_str(), message.as_str()),
                    ("InvalidPageRange", "bad range")
                );
            }
            other => panic!("{other}"),
        }
        let e = api_error("x", 503, &Headers::new(), b"");
        assert_eq!(e.retry(), Retry::Backoff);
    }
}
