//! A strict in-process Blossom server for tests and local development.
//!
//! It binds 127.0.0.1 on a free port, keeps blobs in memory, follows BUD-01/02/06/11 to the
//! letter (401/409/413/416 with `X-Reason`), and has runtime [`Faults`] so tests can make it
//! misbehave the ways a real server might.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{
    ACCEPT_RANGES, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt as _;
use nostr::{Event, Timestamp};
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::auth::{decode_auth_header, AUTH_KIND};
use crate::hash::is_sha256_hex;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest blob accepted, in bytes (413 above it).
    pub max_blob: u64,
    /// Require a valid BUD-11 upload token on `PUT /upload` and `HEAD /upload`. A token that is
    /// present is always checked, even when this is off.
    pub require_auth: bool,
    /// Base of the `url` in blob descriptors; the bound address when `None`.
    pub public_url: Option<Url>,
    /// Hash uploads but keep no bytes (for memory tests with huge blobs): re-uploads still get
    /// 200, downloads get 404.
    pub discard_bodies: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_blob: 64 * 1024 * 1024,
            require_auth: true,
            public_url: None,
            discard_bodies: false,
        }
    }
}

/// Runtime switches that make the server misbehave, for tests.
#[derive(Debug)]
pub struct Faults {
    serve_wrong_bytes: AtomicBool,
    /// `u64::MAX` means off.
    truncate_at: AtomicU64,
    down: AtomicBool,
}

impl Faults {
    /// Serve GET bodies with one byte altered (same length).
    pub fn set_serve_wrong_bytes(&self, on: bool) {
        self.serve_wrong_bytes.store(on, Ordering::SeqCst);
    }
    /// End GET bodies after this many bytes, without a Content-Length, as a clean end of
    /// stream (so the client sees a short blob, not a broken connection).
    pub fn set_truncate_at(&self, at: Option<u64>) {
        self.truncate_at
            .store(at.unwrap_or(u64::MAX), Ordering::SeqCst);
    }
    /// Answer 503 to every request.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    fn wrong_bytes(&self) -> bool {
        self.serve_wrong_bytes.load(Ordering::SeqCst)
    }
    fn truncate(&self) -> Option<u64> {
        match self.truncate_at.load(Ordering::SeqCst) {
            u64::MAX => None,
            at => Some(at),
        }
    }
    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

/// What the server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Uploads accepted (200 or 201).
    pub uploads: u64,
    /// GET answers with a body (200 or 206).
    pub downloads: u64,
    /// Body bytes of accepted uploads.
    pub bytes_received: u64,
    /// Body bytes of GET answers.
    pub bytes_served: u64,
}

struct Entry {
    /// `None` when bodies are discarded.
    data: Option<Bytes>,
    size: u64,
    content_type: String,
    uploaded: u64,
}

struct Shared {
    cfg: ServerConfig,
    base: Url,
    /// Host name a `server` tag must name (BUD-11 scoping).
    host: String,
    blobs: Mutex<HashMap<String, Entry>>,
    faults: Faults,
    uploads: AtomicU64,
    downloads: AtomicU64,
    bytes_received: AtomicU64,
    bytes_served: AtomicU64,
}

impl Shared {
    fn blobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic elsewhere must not take the test server down with it.
        self.blobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running server. Dropping it stops it abruptly; [`BlossomServer::shutdown`] stops it
/// gracefully.
pub struct BlossomServer {
    url: Url,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for BlossomServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Blob bytes stay out of Debug output.
        f.debug_struct("BlossomServer")
            .field("url", &self.url.as_str())
            .field("blobs", &self.shared.blobs().len())
            .finish_non_exhaustive()
    }
}

impl BlossomServer {
    /// Binds 127.0.0.1 on a free port and serves in a tokio task.
    pub async fn start(cfg: ServerConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let url = Url::parse(&format!("http://{addr}")).map_err(std::io::Error::other)?;
        let base = cfg.public_url.clone().unwrap_or_else(|| url.clone());
        let host = base.host_str().unwrap_or("127.0.0.1").to_ascii_lowercase();
        let shared = Arc::new(Shared {
            cfg,
            base,
            host,
            blobs: Mutex::new(HashMap::new()),
            faults: Faults {
                serve_wrong_bytes: AtomicBool::new(false),
                truncate_at: AtomicU64::new(u64::MAX),
                down: AtomicBool::new(false),
            },
            uploads: AtomicU64::new(0),
            downloads: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            bytes_served: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/upload", put(upload).head(upload_preflight))
            .route("/{name}", get(get_blob).head(get_blob))
            .fallback(|| async { refuse(StatusCode::NOT_FOUND, "no such endpoint") })
            .layer(axum::middleware::map_response(cors))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(BlossomServer {
            url,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> Url {
        self.url.clone()
    }

    /// Every stored blob's sha256 and bytes (to prove what the server holds).
    pub fn stored(&self) -> Vec<(String, Vec<u8>)> {
        let blobs = self.shared.blobs();
        let mut out: Vec<(String, Vec<u8>)> = blobs
            .iter()
            .filter_map(|(x, e)| e.data.as_ref().map(|d| (x.clone(), d.to_vec())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        let s = &self.shared;
        Counters {
            uploads: s.uploads.load(Ordering::SeqCst),
            downloads: s.downloads.load(Ordering::SeqCst),
            bytes_received: s.bytes_received.load(Ordering::SeqCst),
            bytes_served: s.bytes_served.load(Ordering::SeqCst),
        }
    }

    /// Stops accepting, lets requests in flight finish (up to 5 s), then stops.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for BlossomServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// BUD-01 CORS headers on every answer.
async fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("Authorization, *"),
    );
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, HEAD, PUT, DELETE"),
    );
    response
}

/// An error answer: the status, `X-Reason` (BUD-01) and a JSON `message`.
fn refuse(status: StatusCode, reason: &str) -> Response {
    let mut response = (
        status,
        [(CONTENT_TYPE, "application/json")],
        serde_json::json!({ "message": reason }).to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(reason) {
        response.headers_mut().insert("x-reason", v);
    }
    response
}

fn now() -> u64 {
    Timestamp::now().as_secs()
}

fn tag_values<'a>(event: &'a Event, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    event.tags.iter().filter_map(move |t| match t.as_slice() {
        [n, v, ..] if n == name => Some(v.as_str()),
        _ => None,
    })
}

/// Checks a BUD-11 token for `verb` up to what can be known before the body: signature, kind,
/// times, `t`, `server` scoping, and (when the client declared the hash) the `x` tag.
fn check_auth(
    shared: &Shared,
    headers: &HeaderMap,
    verb: &str,
    declared_x: Option<&str>,
) -> Result<Option<Event>, String> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return if shared.cfg.require_auth {
            Err("missing Authorization header (BUD-11 token required)".to_owned())
        } else {
            Ok(None)
        };
    };
    let value = value
        .to_str()
        .map_err(|_| "Authorization header is not text".to_owned())?;
    let event = decode_auth_header(value)?;
    event
        .verify()
        .map_err(|_| "authorization event id or signature is invalid".to_owned())?;
    if event.kind.as_u16() != AUTH_KIND {
        return Err(format!(
            "authorization event kind is {}, not {AUTH_KIND}",
            event.kind.as_u16()
        ));
    }
    let now = now();
    if event.created_at.as_secs() > now {
        return Err("authorization event is dated in the future".to_owned());
    }
    let expiration = tag_values(&event, "expiration")
        .next()
        .ok_or_else(|| "authorization event has no expiration tag".to_owned())?;
    let expiration: u64 = expiration
        .parse()
        .map_err(|_| "authorization expiration is not a unix time".to_owned())?;
    if expiration <= now {
        return Err("authorization event has expired".to_owned());
    }
    let verbs: Vec<&str> = tag_values(&event, "t").collect();
    if verbs != [verb] {
        return Err(format!("authorization event is not for {verb:?} (t tag)"));
    }
    let scoped = tag_values(&event, "server").next().is_some();
    if scoped && !tag_values(&event, "server").any(|s| s.eq_ignore_ascii_case(&shared.host)) {
        return Err("authorization event is scoped to other servers".to_owned());
    }
    if let Some(x) = declared_x {
        if !tag_values(&event, "x").any(|t| t == x) {
            return Err(format!("authorization event has no x tag for {x}"));
        }
    }
    Ok(Some(event))
}

/// Errors are boxed answers: a `Response` is large.
fn declared_sha256(headers: &HeaderMap) -> Result<Option<String>, Box<Response>> {
    match headers.get("x-sha-256") {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(x) if is_sha256_hex(x) => Ok(Some(x.to_owned())),
            _ => Err(Box::new(refuse(
                StatusCode::BAD_REQUEST,
                "X-SHA-256 is not a lowercase hex sha256",
            ))),
        },
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, Box<Response>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                Box::new(refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("{name} is not a number"),
                ))
            }),
    }
}

fn too_large(max: u64) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("blob too large: at most {max} bytes accepted"),
    )
}

/// BUD-02 `PUT /upload`: streams and hashes the body, never holding more than `max_blob`.
async fn upload(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    if shared.faults.is_down() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "server is down");
    }
    let max = shared.cfg.max_blob;
    let declared_len = match header_u64(&headers, CONTENT_LENGTH.as_str()) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    if declared_len.is_some_and(|l| l > max) {
        return too_large(max);
    }
    let declared_x = match declared_sha256(&headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let auth = match check_auth(&shared, &headers, "upload", declared_x.as_deref()) {
        Ok(a) => a,
        Err(reason) => return refuse(StatusCode::UNAUTHORIZED, &reason),
    };

    let mut data = (!shared.cfg.discard_bodies).then(|| {
        // Reserve what the client declared (already bounded by max_blob) to avoid the
        // doubling peaks of a growing Vec.
        Vec::with_capacity(
            declared_len
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(0),
        )
    });
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("reading the body failed: {e}"),
                )
            }
        };
        received = received.saturating_add(chunk.len() as u64);
        if received > max {
            return too_large(max);
        }
        hasher.update(&chunk);
        if let Some(d) = data.as_mut() {
            d.extend_from_slice(&chunk);
        }
    }
    if declared_len.is_some_and(|l| l != received) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "body length differs from Content-Length",
        );
    }
    let actual = hex::encode(hasher.finalize());
    if declared_x.as_deref().is_some_and(|x| x != actual) {
        return refuse(
            StatusCode::CONFLICT,
            &format!("X-SHA-256 does not match the body, whose sha256 is {actual}"),
        );
    }
    if let Some(event) = &auth {
        if !tag_values(event, "x").any(|t| t == actual) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                &format!("authorization event has no x tag for {actual}"),
            );
        }
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty() && t.len() <= 255)
        .unwrap_or("application/octet-stream")
        .to_owned();

    let (status, descriptor) = {
        let mut blobs = shared.blobs();
        let status = if blobs.contains_key(&actual) {
            StatusCode::OK
        } else {
            blobs.insert(
                actual.clone(),
                Entry {
                    data: data.map(Bytes::from),
                    size: received,
                    content_type,
                    uploaded: now(),
                },
            );
            StatusCode::CREATED
        };
        let entry = blobs.get(&actual);
        (status, entry.map(|e| descriptor(&shared, &actual, e)))
    };
    let Some(descriptor) = descriptor else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "blob vanished");
    };
    shared.uploads.fetch_add(1, Ordering::SeqCst);
    shared.bytes_received.fetch_add(received, Ordering::SeqCst);
    (status, [(CONTENT_TYPE, "application/json")], descriptor).into_response()
}

fn descriptor(shared: &Shared, x: &str, e: &Entry) -> String {
    let ext = match e.content_type.split(';').next().unwrap_or("").trim() {
        "application/json" => "json",
        "text/plain" => "txt",
        "application/pdf" => "pdf",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        _ => "bin",
    };
    let mut url = shared.base.clone();
    url.set_path(&format!(
        "{}/{x}.{ext}",
        shared.base.path().trim_end_matches('/')
    ));
    serde_json::json!({
        "url": url.as_str(),
        "sha256": x,
        "size": e.size,
        "type": e.content_type,
        "uploaded": e.uploaded,
    })
    .to_string()
}

/// BUD-06 `HEAD /upload`: would this upload be accepted?
async fn upload_preflight(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if shared.faults.is_down() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "server is down");
    }
    let x = match declared_sha256(&headers) {
        Ok(Some(x)) => x,
        Ok(None) => return refuse(StatusCode::BAD_REQUEST, "X-SHA-256 header missing"),
        Err(r) => return *r,
    };
    match header_u64(&headers, "x-content-length") {
        Ok(Some(l)) if l > shared.cfg.max_blob => return too_large(shared.cfg.max_blob),
        Ok(Some(_)) => {}
        Ok(None) => {
            return refuse(
                StatusCode::LENGTH_REQUIRED,
                "X-Content-Length header missing",
            )
        }
        Err(r) => return *r,
    }
    if let Err(reason) = check_auth(&shared, &headers, "upload", Some(&x)) {
        return refuse(StatusCode::UNAUTHORIZED, &reason);
    }
    StatusCode::OK.into_response()
}

/// A parsed single `Range: bytes=…`.
enum RangeReq {
    /// Absent, multi-range or malformed: RFC 9110 lets the server answer with the whole blob.
    Whole,
    /// Inclusive byte range within the blob.
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(value: Option<&HeaderValue>, len: u64) -> RangeReq {
    let Some(spec) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return RangeReq::Whole;
    };
    if spec.contains(',') {
        return RangeReq::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeReq::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        // bytes=-N: the last N bytes.
        (None, Some(n)) if a.is_empty() => {
            if n == 0 || len == 0 {
                RangeReq::Unsatisfiable
            } else {
                RangeReq::Part(len.saturating_sub(n), len - 1)
            }
        }
        (Some(start), None) if b.is_empty() => {
            if start >= len {
                RangeReq::Unsatisfiable
            } else {
                RangeReq::Part(start, len - 1)
            }
        }
        (Some(start), Some(end)) if start <= end => {
            if start >= len {
                RangeReq::Unsatisfiable
            } else {
                RangeReq::Part(start, end.min(len - 1))
            }
        }
        _ => RangeReq::Whole,
    }
}

/// BUD-01 `GET`/`HEAD /<sha256>[.ext]`, with single-range support.
async fn get_blob(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if shared.faults.is_down() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "server is down");
    }
    let (x, ext) = match name.split_once('.') {
        Some((x, ext)) => (x, Some(ext)),
        None => (name.as_str(), None),
    };
    let ext_ok = ext.is_none_or(|e| {
        !e.is_empty() && e.len() <= 16 && e.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !is_sha256_hex(x) || !ext_ok {
        return refuse(
            StatusCode::BAD_REQUEST,
            "path is not /<sha256>[.ext] (sha256 in lowercase hex)",
        );
    }
    let found = {
        let blobs = shared.blobs();
        blobs
            .get(x)
            .and_then(|e| e.data.clone().map(|d| (d, e.content_type.clone())))
    };
    let Some((mut data, content_type)) = found else {
        return refuse(StatusCode::NOT_FOUND, "blob not found");
    };
    if shared.faults.wrong_bytes() && !data.is_empty() {
        // A copy only under this test fault.
        let mut altered = data.to_vec();
        let mid = altered.len() / 2;
        altered[mid] ^= 0x01;
        data = Bytes::from(altered);
    }
    let len = data.len() as u64;
    let (status, body, content_range) = match parse_range(headers.get(RANGE), len) {
        RangeReq::Whole => (StatusCode::OK, data, None),
        RangeReq::Part(a, b) => {
            // a <= b < len, which fits usize since `data` is in memory.
            let (start, end) = (a as usize, b as usize);
            (
                StatusCode::PARTIAL_CONTENT,
                data.slice(start..=end),
                Some(format!("bytes {a}-{b}/{len}")),
            )
        }
        RangeReq::Unsatisfiable => {
            let mut r = refuse(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(CONTENT_TYPE, v);
    }
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(CONTENT_RANGE, cr);
    }
    let truncate = shared.faults.truncate();
    if method == Method::HEAD {
        h.insert(CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
        return response;
    }
    shared.downloads.fetch_add(1, Ordering::SeqCst);
    match truncate {
        Some(at) if at < body.len() as u64 => {
            let short = body.slice(..at as usize);
            shared
                .bytes_served
                .fetch_add(short.len() as u64, Ordering::SeqCst);
            // A stream body has no Content-Length, so ending it early is a clean, short EOF.
            *response.body_mut() =
                Body::from_stream(futures_util::stream::iter([Ok::<Bytes, Infallible>(short)]));
        }
        _ => {
            shared
                .bytes_served
                .fetch_add(body.len() as u64, Ordering::SeqCst);
            *response.body_mut() = Body::from(body);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let v = |s: &str| HeaderValue::from_str(s).expect("header");
        let p = |s: &str, len| match parse_range(Some(&v(s)), len) {
            RangeReq::Whole => "whole".to_owned(),
            RangeReq::Part(a, b) => format!("{a}-{b}"),
            RangeReq::Unsatisfiable => "416".to_owned(),
        };
        assert_eq!(p("bytes=0-9", 100), "0-9");
        assert_eq!(p("bytes=90-", 100), "90-99");
        assert_eq!(p("bytes=90-500", 100), "90-99");
        assert_eq!(p("bytes=-10", 100), "90-99");
        assert_eq!(p("bytes=-500", 100), "0-99");
        assert_eq!(p("bytes=100-", 100), "416");
        assert_eq!(p("bytes=-0", 100), "416");
        assert_eq!(p("bytes=0-", 0), "416");
        assert_eq!(p("bytes=5-1", 100), "whole");
        assert_eq!(p("bytes=0-1,5-6", 100), "whole");
        assert_eq!(p("items=0-1", 100), "whole");
        assert_eq!(p("bytes=x-1", 100), "whole");
        assert!(matches!(parse_range(None, 5), RangeReq::Whole));
    }
}
