//! The streaming client.

use std::io::Read;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use nostr::{Keys, Timestamp};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{redirect, Response};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use url::{Host, Url};

use crate::auth::{auth_event, auth_header, AuthVerb};
use crate::error::{BlossomError, BoxError, FetchError};
use crate::hash::is_sha256_hex;
use crate::MAX_SMALL_BODY;

/// How long an upload token stays valid. Servers check it when the request starts; a short
/// window limits what a leaked token allows (it is also scoped to one `x`).
const UPLOAD_AUTH_TTL_SECS: u64 = 30 * 60;
/// Chunk size of [`body_from_reader`].
const READ_CHUNK: usize = 64 * 1024;
/// Chunks [`body_from_reader`] may hold ahead of the network: bounds its memory to ~256 KiB.
const READ_AHEAD: usize = 4;
/// Minimum interval between progress callbacks.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Longest `X-Reason` kept: it is shown to a user, not parsed.
const MAX_REASON: usize = 300;
/// Redirect hops followed on GET (BUD-01 allows 307/308 to a URL with the same sha256).
const MAX_REDIRECTS: usize = 5;

/// Which URLs the client may talk to, and its timeouts.
#[derive(Debug, Clone)]
pub struct TransportPolicy {
    /// Allow plain `http://` to 127.0.0.0/8, `::1` and `localhost` (tests, local dev). Shipped
    /// configurations keep it `false`: everything else must be `https://`.
    pub allow_insecure_loopback: bool,
    /// Further addresses plain `http://` may reach when `allow_insecure_loopback` is set: a QEMU
    /// test guest reaches its host's loopback through the user-network gateway. Empty in every
    /// shipped configuration.
    pub insecure_hosts: Vec<IpAddr>,
    /// Limit on establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit on waiting for any single read from the server, and on an upload body making no
    /// progress (a server that stops reading).
    pub idle_timeout: Duration,
}

impl Default for TransportPolicy {
    fn default() -> Self {
        TransportPolicy {
            allow_insecure_loopback: false,
            insecure_hosts: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl TransportPolicy {
    /// Whether `url` may be used under this policy.
    pub fn check(&self, url: &Url) -> Result<(), BlossomError> {
        if url_allowed(self.allow_insecure_loopback, &self.insecure_hosts, url) {
            Ok(())
        } else {
            Err(BlossomError::InsecureUrl {
                url: url.to_string(),
            })
        }
    }
}

fn url_allowed(allow_insecure_loopback: bool, extra: &[IpAddr], url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" if allow_insecure_loopback => match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback() || extra.contains(&IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST || extra.contains(&IpAddr::V6(ip)),
            Some(Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost")
                    // The url crate parses bracket-less IP literals into Host::Ipv4 already;
                    // this only guards odd spellings.
                    || d.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            None => false,
        },
        _ => false,
    }
}

/// Upload progress or download progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Bytes sent or received so far.
    pub done: u64,
    /// Bytes in the whole blob.
    pub total: u64,
    /// Time since the transfer started.
    pub elapsed: Duration,
}

impl Progress {
    /// Average throughput so far (0 before any time has passed).
    pub fn bytes_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        }
    }
}

/// An upload body: chunks of the blob, in order.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static>>;

/// Streams a blocking reader (a file, a pipe) as a [`BodyStream`]. A thread reads 64 KiB at a
/// time into a channel of 4 chunks, so memory stays bounded however large the blob.
pub fn body_from_reader<R: Read + Send + 'static>(mut reader: R) -> BodyStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
    let spawned = std::thread::Builder::new()
        .name("blossom-body".to_owned())
        .spawn(move || loop {
            let mut buf = vec![0u8; READ_CHUNK];
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    // A send error means the upload was dropped: stop reading.
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        return Box::pin(futures_util::stream::iter([Err(e)]));
    }
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A BUD-02 blob descriptor, as answered to `PUT /upload`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct BlobDescriptor {
    /// Where the server serves the blob.
    pub url: String,
    /// The blob's sha256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type, when the server says.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// When it was uploaded (unix seconds), when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<u64>,
}

/// What a download must turn out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// sha256 (lowercase hex) of the bytes.
    pub x: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Largest size the caller accepts at all (checked before any byte is read).
    pub max: u64,
}

/// How an upload authorizes itself.
#[derive(Debug, Clone, Copy)]
pub enum UploadAuth<'a> {
    /// A BUD-11 token signed by these keys (what [`BlossomClient::upload`] sends).
    Bud11(&'a Keys),
    /// No `Authorization` header, for open servers whose auth is not BUD-11. blossom-rs 0.6 is
    /// one: it requires non-standard `server`/`u`/`method` tags and answers 401 to a plain
    /// BUD-11 token even in its open mode, while accepting unauthenticated uploads there.
    Anonymous,
}

/// Where [`BlossomClient::fetch_first`] writes a blob.
pub trait DownloadSink: Send {
    /// Discards everything written so far (a failed attempt's partial bytes).
    fn reset(&mut self) -> std::io::Result<()>;
    /// Appends a chunk.
    fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError>;
}

/// A Blossom client that streams in both directions.
#[derive(Debug, Clone)]
pub struct BlossomClient {
    http: reqwest::Client,
    policy: TransportPolicy,
}

impl BlossomClient {
    /// A client bound to `policy`: it refuses URLs the policy does not allow, including on
    /// redirects.
    pub fn new(policy: TransportPolicy) -> Result<Self, BlossomError> {
        let allow_loopback = policy.allow_insecure_loopback;
        let extra = policy.insecure_hosts.clone();
        let redirects = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            if !url_allowed(allow_loopback, &extra, attempt.url()) {
                return attempt.error("redirect to an insecure URL refused");
            }
            // BUD-01: a redirect must keep the blob's sha256 in the URL.
            let wanted = attempt.previous().first().and_then(sha256_of_url);
            match wanted {
                Some(x) if attempt.url().path().contains(x.as_str()) => attempt.follow(),
                _ => attempt.error("redirect to a URL without the blob's sha256 refused"),
            }
        });
        let http = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .read_timeout(policy.idle_timeout)
            .redirect(redirects)
            .build()
            .map_err(|e| BlossomError::Setup {
                source: Box::new(e),
            })?;
        Ok(BlossomClient { http, policy })
    }

    /// The policy this client enforces.
    pub fn policy(&self) -> &TransportPolicy {
        &self.policy
    }

    /// BUD-02 `PUT {server}/upload` with the body streamed (`Content-Length` = `size`,
    /// `Content-Type`, `X-SHA-256` = `x`) and a BUD-11 token signed by `keys` (`t=upload`, `x`,
    /// expiring in 30 minutes). A BUD-06 `HEAD /upload` preflight goes first, so refusals
    /// arrive with their reason instead of as a cut connection.
    ///
    /// Accepts 201 (new blob) and 200 (already there; some servers, e.g. blossom-rs 0.6, also
    /// answer 200 for new blobs). Refuses a descriptor whose sha256 or size differ from what
    /// was sent. Calls `progress` at most ~10 times a second while bytes go out.
    #[allow(clippy::too_many_arguments)] // the issue fixes this signature
    pub async fn upload(
        &self,
        server: &Url,
        keys: &Keys,
        x: &str,
        size: u64,
        content_type: &str,
        body: BodyStream,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<BlobDescriptor, BlossomError> {
        self.upload_with(
            server,
            UploadAuth::Bud11(keys),
            x,
            size,
            content_type,
            body,
            progress,
        )
        .await
    }

    /// [`Self::upload`], and once more without authorization when the server refuses the BUD-11
    /// token (401/403) or cuts the connection: servers in an open mode that check tokens their
    /// own way (blossom-rs 0.6 wants a 2-minute token with extra tags) take anonymous uploads.
    /// `body` is called once per attempt (a stream can be sent only once).
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_auto(
        &self,
        server: &Url,
        keys: &Keys,
        x: &str,
        size: u64,
        content_type: &str,
        body: &(dyn Fn() -> BodyStream + Sync),
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<BlobDescriptor, BlossomError> {
        let first = self
            .upload(server, keys, x, size, content_type, body(), progress)
            .await;
        match first {
            Err(
                token @ (BlossomError::Status {
                    status: 401 | 403, ..
                }
                | BlossomError::UploadInterrupted { .. }),
            ) => {
                let anonymous = || {
                    self.upload_with(
                        server,
                        UploadAuth::Anonymous,
                        x,
                        size,
                        content_type,
                        body(),
                        progress,
                    )
                };
                let mut second = anonymous().await;
                // A connection the server closed after refusing the token can still be
                // handed out once; a failure before any byte went out is retried once.
                if matches!(
                    second,
                    Err(BlossomError::Unreachable { .. })
                        | Err(BlossomError::UploadInterrupted { sent: 0, .. })
                ) {
                    second = anonymous().await;
                }
                second.map_err(|anonymous| BlossomError::TokenAndAnonymousFailed {
                    url: server.to_string(),
                    token: Box::new(token),
                    anonymous: Box::new(anonymous),
                })
            }
            other => other,
        }
    }

    /// [`Self::upload`] with the authorization chosen by the caller.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_with(
        &self,
        server: &Url,
        auth: UploadAuth<'_>,
        x: &str,
        size: u64,
        content_type: &str,
        body: BodyStream,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<BlobDescriptor, BlossomError> {
        self.policy.check(server)?;
        if !is_sha256_hex(x) {
            return Err(BlossomError::InvalidHash {
                value: x.to_owned(),
            });
        }
        let url = endpoint(server, "upload");
        let content_type = HeaderValue::from_str(content_type).map_err(|e| BlossomError::Body {
            url: url.to_string(),
            source: format!("invalid content type {content_type:?}: {e}").into(),
        })?;

        let sent = Arc::new(AtomicU64::new(0));
        let body_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let counted = CountedBody {
            inner: body,
            sent: sent.clone(),
            size,
            error: body_error.clone(),
        };
        // BUD-06 preflight, so a refusal (401, 413, ...) arrives as an answer: a server that
        // refuses a PUT mid-body usually just closes the connection, losing its reason.
        self.preflight(&url, auth, x, size, &content_type).await?;

        let mut request = self
            .http
            .put(url.clone())
            .header(CONTENT_LENGTH, size)
            .header(CONTENT_TYPE, content_type)
            .header("X-SHA-256", x)
            .body(reqwest::Body::wrap_stream(counted.into_stream()));
        if let Some(token) = upload_token(auth, x)? {
            request = request.header(AUTHORIZATION, token);
        }

        let start = Instant::now();
        let report = || Progress {
            done: sent.load(Ordering::Relaxed),
            total: size,
            elapsed: start.elapsed(),
        };
        let send = request.send();
        tokio::pin!(send);
        let mut ticker = tokio::time::interval(PROGRESS_EVERY);
        // The read timeout does not cover a server that stops reading our body, so watch for
        // the body standing still.
        let (mut last_sent, mut last_move) = (0u64, Instant::now());
        let answer = loop {
            tokio::select! {
                answer = &mut send => break answer,
                _ = ticker.tick() => {
                    let now = report();
                    progress(now);
                    if now.done != last_sent {
                        (last_sent, last_move) = (now.done, Instant::now());
                    } else if now.done < size && last_move.elapsed() > self.policy.idle_timeout {
                        return Err(BlossomError::UploadInterrupted {
                            url: url.to_string(),
                            sent: now.done,
                            size,
                            source: format!(
                                "no upload progress for {} s",
                                self.policy.idle_timeout.as_secs()
                            )
                            .into(),
                        });
                    }
                }
            }
        };
        progress(report());

        let response = match answer {
            Ok(r) => r,
            Err(e) => {
                let body_problem = body_error.lock().unwrap_or_else(|p| p.into_inner()).take();
                return Err(match body_problem {
                    Some(problem) => BlossomError::Body {
                        url: url.to_string(),
                        source: problem.into(),
                    },
                    None if e.is_connect() => BlossomError::Unreachable {
                        url: url.to_string(),
                        source: Box::new(e),
                    },
                    None => BlossomError::UploadInterrupted {
                        url: url.to_string(),
                        sent: sent.load(Ordering::Relaxed),
                        size,
                        source: Box::new(e),
                    },
                });
            }
        };
        let status = response.status().as_u16();
        if status != 200 && status != 201 {
            let reason = reason_of(response).await;
            return Err(BlossomError::Status {
                url: url.to_string(),
                status,
                reason,
            });
        }
        let raw = read_small(response)
            .await
            .map_err(|detail| BlossomError::BadDescriptor {
                url: url.to_string(),
                detail,
            })?;
        let descriptor: BlobDescriptor =
            serde_json::from_slice(&raw).map_err(|e| BlossomError::BadDescriptor {
                url: url.to_string(),
                detail: e.to_string(),
            })?;
        if descriptor.sha256 != x || descriptor.size != size {
            return Err(BlossomError::DescriptorMismatch {
                url: url.to_string(),
                expected_sha256: x.to_owned(),
                got_sha256: descriptor.sha256,
                expected_size: size,
                got_size: descriptor.size,
            });
        }
        Ok(descriptor)
    }

    /// `HEAD /upload` (BUD-06): refuses early what the server says it would refuse. Servers
    /// without the endpoint (404, 405, 501) are not held against the upload.
    async fn preflight(
        &self,
        url: &Url,
        auth: UploadAuth<'_>,
        x: &str,
        size: u64,
        content_type: &HeaderValue,
    ) -> Result<(), BlossomError> {
        let mut request = self
            .http
            .head(url.clone())
            .header("X-SHA-256", x)
            .header("X-Content-Length", size)
            .header("X-Content-Type", content_type.clone());
        // A token of its own: servers with replay protection may accept each token once.
        if let Some(token) = upload_token(auth, x)? {
            request = request.header(AUTHORIZATION, token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| BlossomError::Unreachable {
                url: url.to_string(),
                source: Box::new(e),
            })?;
        let status = response.status().as_u16();
        if response.status().is_success() || matches!(status, 404 | 405 | 501) {
            return Ok(());
        }
        Err(BlossomError::Status {
            url: url.to_string(),
            status,
            reason: reason_of(response).await,
        })
    }

    /// BUD-01 `GET`: opens the blob at `url`. Checks the status (200) and, when present, that
    /// `Content-Length` equals `expected.size` and does not exceed `expected.max`, before reading
    /// any of the body. The returned reader checks size and sha256 as the bytes arrive.
    pub async fn open(&self, url: &Url, expected: &Expected) -> Result<BlobReader, BlossomError> {
        self.policy.check(url)?;
        if !is_sha256_hex(&expected.x) {
            return Err(BlossomError::InvalidHash {
                value: expected.x.clone(),
            });
        }
        if expected.size > expected.max {
            return Err(BlossomError::TooLarge {
                url: url.to_string(),
                size: expected.size,
                max: expected.max,
            });
        }
        let response =
            self.http
                .get(url.clone())
                .send()
                .await
                .map_err(|e| BlossomError::Unreachable {
                    url: url.to_string(),
                    source: Box::new(e),
                })?;
        let status = response.status().as_u16();
        if status != 200 {
            let reason = reason_of(response).await;
            return Err(BlossomError::Status {
                url: url.to_string(),
                status,
                reason,
            });
        }
        if let Some(announced) = response.content_length() {
            if announced > expected.max {
                return Err(BlossomError::TooLarge {
                    url: url.to_string(),
                    size: announced,
                    max: expected.max,
                });
            }
            if announced > expected.size {
                return Err(BlossomError::TooLarge {
                    url: url.to_string(),
                    size: announced,
                    max: expected.size,
                });
            }
            if announced != expected.size {
                return Err(BlossomError::SizeMismatch {
                    url: url.to_string(),
                    announced,
                    expected: expected.size,
                });
            }
        }
        Ok(BlobReader {
            url: url.clone(),
            response,
            hasher: Sha256::new(),
            received: 0,
            expected: expected.clone(),
            state: ReaderState::Reading,
        })
    }

    /// Tries each URL in order until one yields the expected blob into `sink`. After any failure
    /// (unreachable, bad status, wrong size, hash mismatch, or the sink's own write error) it
    /// records the error, resets the sink and tries the next. Returns the URL that worked.
    pub async fn fetch_first(
        &self,
        urls: &[Url],
        expected: &Expected,
        sink: &mut dyn DownloadSink,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Url, FetchError> {
        let mut attempts = Vec::new();
        for url in urls {
            match self.fetch_one(url, expected, sink, progress).await {
                Ok(()) => return Ok(url.clone()),
                Err(e) => {
                    attempts.push((url.clone(), e));
                    if let Err(source) = sink.reset() {
                        return Err(FetchError::ResetFailed { attempts, source });
                    }
                }
            }
        }
        Err(FetchError::AllFailed(attempts))
    }

    async fn fetch_one(
        &self,
        url: &Url,
        expected: &Expected,
        sink: &mut dyn DownloadSink,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<(), BlossomError> {
        let start = Instant::now();
        let mut last = start;
        let mut reader = self.open(url, expected).await?;
        while let Some(chunk) = reader.next_chunk().await? {
            sink.write(&chunk).map_err(|source| BlossomError::Sink {
                url: url.to_string(),
                source,
            })?;
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                progress(Progress {
                    done: reader.received(),
                    total: expected.size,
                    elapsed: start.elapsed(),
                });
            }
        }
        progress(Progress {
            done: reader.received(),
            total: expected.size,
            elapsed: start.elapsed(),
        });
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReaderState {
    Reading,
    Verified,
    Failed,
}

/// A blob being downloaded: yields its bytes while checking them.
#[derive(Debug)]
pub struct BlobReader {
    url: Url,
    response: Response,
    hasher: Sha256,
    received: u64,
    expected: Expected,
    state: ReaderState,
}

impl BlobReader {
    /// The next chunk of bytes. Refuses more than the expected size (`TooLarge`) or fewer at
    /// the end (`Truncated`); at the end returns `HashMismatch` instead of `Ok(None)` if the
    /// sha256 differs. `Ok(None)` therefore means the whole blob arrived and is verified.
    /// Bytes already returned are unverified until then.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, BlossomError> {
        match self.state {
            ReaderState::Verified => return Ok(None),
            ReaderState::Failed => {
                return Err(BlossomError::ReaderFailed {
                    url: self.url.to_string(),
                })
            }
            ReaderState::Reading => {}
        }
        let result = self.step().await;
        if result.is_err() {
            self.state = ReaderState::Failed;
        }
        result
    }

    async fn step(&mut self) -> Result<Option<Bytes>, BlossomError> {
        match self.response.chunk().await {
            Ok(Some(chunk)) => {
                let total = self.received.saturating_add(chunk.len() as u64);
                let limit = self.expected.size.min(self.expected.max);
                if total > limit {
                    return Err(BlossomError::TooLarge {
                        url: self.url.to_string(),
                        size: total,
                        max: limit,
                    });
                }
                self.hasher.update(&chunk);
                self.received = total;
                Ok(Some(chunk))
            }
            Ok(None) => {
                if self.received < self.expected.size {
                    return Err(BlossomError::Truncated {
                        url: self.url.to_string(),
                        received: self.received,
                        expected: self.expected.size,
                    });
                }
                let actual = hex::encode(self.hasher.finalize_reset());
                if actual != self.expected.x {
                    return Err(BlossomError::HashMismatch {
                        url: self.url.to_string(),
                        expected: self.expected.x.clone(),
                        actual,
                    });
                }
                self.state = ReaderState::Verified;
                Ok(None)
            }
            Err(e) => Err(BlossomError::Interrupted {
                url: self.url.to_string(),
                received: self.received,
                source: Box::new(e),
            }),
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

/// The `Authorization` value for an upload of `x`, if `auth` asks for one.
fn upload_token(auth: UploadAuth<'_>, x: &str) -> Result<Option<String>, BlossomError> {
    let UploadAuth::Bud11(keys) = auth else {
        return Ok(None);
    };
    let expiration = Timestamp::from_secs(
        Timestamp::now()
            .as_secs()
            .saturating_add(UPLOAD_AUTH_TTL_SECS),
    );
    let event = auth_event(keys, AuthVerb::Upload, x, expiration, "Upload blob")?;
    Ok(Some(auth_header(&event)))
}

/// `{server}/{x}`: the BUD-01 URL of blob `x` on `server` (any path on `server` is kept, so a
/// server mounted under a prefix works too).
pub fn blob_url(server: &Url, x: &str) -> Url {
    endpoint(server, x)
}

fn endpoint(server: &Url, last: &str) -> Url {
    let mut url = server.clone();
    let path = format!("{}/{last}", server.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// The sha256 a BUD-01 URL names: its last path segment without extension.
fn sha256_of_url(url: &Url) -> Option<String> {
    let last = url.path_segments()?.next_back()?;
    let stem = last.split('.').next()?;
    is_sha256_hex(stem).then(|| stem.to_owned())
}

/// The upload body, counting what goes out and holding it to exactly `size` bytes.
struct CountedBody {
    inner: BodyStream,
    sent: Arc<AtomicU64>,
    size: u64,
    error: Arc<Mutex<Option<String>>>,
}

impl CountedBody {
    fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut this = state?;
            let fail = |this: &CountedBody, msg: String| {
                *this.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
                std::io::Error::other(msg)
            };
            match this.inner.next().await {
                Some(Ok(chunk)) => {
                    let sent = this.sent.load(Ordering::Relaxed);
                    let total = sent.saturating_add(chunk.len() as u64);
                    if total > this.size {
                        let e = fail(
                            &this,
                            format!("body is longer than the declared {} bytes", this.size),
                        );
                        return Some((Err(e), None));
                    }
                    this.sent.store(total, Ordering::Relaxed);
                    Some((Ok(chunk), Some(this)))
                }
                Some(Err(e)) => {
                    let e = fail(&this, format!("reading the body failed: {e}"));
                    Some((Err(e), None))
                }
                None => {
                    let sent = this.sent.load(Ordering::Relaxed);
                    if sent < this.size {
                        let e = fail(
                            &this,
                            format!(
                                "body ended after {sent} of the declared {} bytes",
                                this.size
                            ),
                        );
                        return Some((Err(e), None));
                    }
                    None
                }
            }
        })
    }
}

/// The human-readable reason of an error answer: `X-Reason` (BUD-01), else the `message` of a
/// JSON error body (read up to 64 KiB).
async fn reason_of(response: Response) -> Option<String> {
    if let Some(reason) = response
        .headers()
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
    {
        return Some(clean_reason(reason));
    }
    let body = read_small(response).await.ok()?;
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    value
        .get("message")
        .or_else(|| value.get("error"))
        .and_then(|m| m.as_str())
        .map(clean_reason)
}

/// Keeps a server-supplied reason printable and short: it ends up on a user's terminal.
fn clean_reason(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect()
}

/// Reads a small body (a descriptor, an error), refusing more than [`MAX_SMALL_BODY`].
async fn read_small(mut response: Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len().saturating_add(chunk.len()) > MAX_SMALL_BODY {
                    return Err(format!("answer longer than {MAX_SMALL_BODY} bytes"));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(format!("reading the answer failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let strict = TransportPolicy::default();
        let dev = TransportPolicy {
            allow_insecure_loopback: true,
            ..TransportPolicy::default()
        };
        let u = |s: &str| Url::parse(s).expect("url");
        assert!(strict.check(&u("https://cdn.example.com/")).is_ok());
        assert!(strict.check(&u("http://127.0.0.1:3000/")).is_err());
        for ok in [
            "http://127.0.0.1:1/",
            "http://127.9.9.9/",
            "http://[::1]:8/",
            "http://LOCALHOST/",
        ] {
            assert!(dev.check(&u(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/",
            "http://localhost.evil.com/",
            "http://[::2]/",
            "ftp://localhost/",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(dev.check(&u(bad)), Err(BlossomError::InsecureUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn urls() {
        let x = "a".repeat(64);
        let s = Url::parse("https://h.example/").expect("url");
        assert_eq!(blob_url(&s, &x).as_str(), format!("https://h.example/{x}"));
        let p = Url::parse("https://h.example/blossom/?q=1").expect("url");
        assert_eq!(
            endpoint(&p, "upload").as_str(),
            "https://h.example/blossom/upload"
        );
        assert_eq!(sha256_of_url(&blob_url(&p, &x)), Some(x.clone()));
        assert_eq!(
            sha256_of_url(&Url::parse(&format!("https://h/{x}.bin")).expect("url")),
            Some(x)
        );
    }

    #[test]
    fn progress_rate() {
        let p = Progress {
            done: 100,
            total: 200,
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(p.bytes_per_sec(), 50.0);
        let z = Progress {
            done: 1,
            total: 1,
            elapsed: Duration::ZERO,
        };
        assert_eq!(z.bytes_per_sec(), 0.0);
    }
}
