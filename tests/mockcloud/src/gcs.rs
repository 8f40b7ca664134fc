//! Cloud Storage emulation (JSON API), what `cdvm-image publish --cloud gcp` calls:
//!
//! - `POST   /upload/storage/v1/b/{bucket}/o?uploadType=resumable&name=…` (JSON body: the
//!   object's `name`, `contentType`, `crc32c`, `metadata`) → 200 with the session URL in
//!   `Location` (`…&upload_id=…`)
//! - `PUT    /upload/storage/v1/b/{bucket}/o?upload_id=…` with `Content-Range: bytes A-B/TOTAL`
//!   (or `/*` while the total is unknown): a chunk; 308 "Resume Incomplete" with
//!   `Range: bytes=0-N` until the last byte, then 200 with the object. `bytes */TOTAL` with no
//!   body asks where the upload stands (308, or 200 once complete). A chunk may repeat bytes
//!   already held (they are skipped) but not leave a gap.
//! - `GET    /storage/v1/b/{bucket}/o/{object}` → the object's metadata
//! - `DELETE /storage/v1/b/{bucket}/o/{object}` → 204
//!
//! Like Cloud Storage: every chunk but the last must be a multiple of 256 KiB, a declared
//! `crc32c` is checked when the last byte arrives (400 on a mismatch, and no object), sizes are
//! strings, a missing object is 404 `notFound` in the `{"error":{code,message,errors}}` shape.
//! Deviations: every bucket exists; an upload without `Content-Range` and non-resumable uploads
//! are refused (400); a misaligned intermediate chunk is refused (400) rather than partly kept;
//! no `md5Hash`, generations are counters, and there are no timestamps.
//!
//! Faults ([`crate::faults`]): named calls `objects.insert` (starting an upload), `objects.upload`
//! (a chunk with data), `objects.get` and `objects.delete` are answered 503 and not carried out.
//! Random throttling refuses a call; a random server error on a chunk or a delete is answered
//! after the work is done (the client must ask where the upload stands).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use crate::faults::Fault;
use crate::AppState;

/// All chunks but the last are multiples of this.
const QUANTUM: u64 = 256 * 1024;

/// Cloud Storage state.
#[derive(Debug, Default)]
pub struct GcsState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<(String, String), Object>,
    uploads: HashMap<String, Upload>,
    next_id: u64,
}

#[derive(Debug)]
struct Object {
    data: Arc<Vec<u8>>,
    crc32c: String,
    content_type: String,
    metadata: Value,
    generation: u64,
}

#[derive(Debug)]
struct Upload {
    bucket: String,
    name: String,
    data: Vec<u8>,
    content_type: String,
    metadata: Value,
    crc32c: Option<String>,
    total: Option<u64>,
    /// Set once the last byte arrived: the object's generation.
    done: Option<u64>,
}

impl GcsState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `bucket/name` of every object held.
    pub fn objects(&self) -> Vec<String> {
        self.lock()
            .objects
            .keys()
            .map(|(b, n)| format!("{b}/{n}"))
            .collect()
    }

    /// The bytes of an object.
    pub fn object(&self, bucket: &str, name: &str) -> Option<Arc<Vec<u8>>> {
        self.lock()
            .objects
            .get(&(bucket.into(), name.into()))
            .map(|o| Arc::clone(&o.data))
    }

    /// Stores an object directly (tests of what reads objects).
    pub fn put_object(&self, bucket: &str, name: &str, data: Vec<u8>) {
        let mut inner = self.lock();
        inner.next_id += 1;
        let generation = inner.next_id;
        inner.objects.insert(
            (bucket.into(), name.into()),
            Object::new(
                data,
                "application/octet-stream".into(),
                json!({}),
                generation,
            ),
        );
    }
}

impl Object {
    fn new(data: Vec<u8>, content_type: String, metadata: Value, generation: u64) -> Self {
        let crc = crc32c(&data);
        Self {
            data: Arc::new(data),
            crc32c: base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes()),
            content_type,
            metadata,
            generation,
        }
    }
}

/// The largest chunk accepted (axum's default limit, 2 MiB, is below a client's usual chunk).
const MAX_CHUNK: usize = 64 * 1024 * 1024;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/upload/storage/v1/b/{bucket}/o",
            post(start_upload)
                .put(put_chunk)
                .layer(DefaultBodyLimit::max(MAX_CHUNK)),
        )
        .route(
            "/storage/v1/b/{bucket}/o/{object}",
            get(get_object).delete(delete_object),
        )
}

type Params = Query<HashMap<String, String>>;

/// An error in the JSON API's shape.
fn error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}]}});
    (status, Json(body)).into_response()
}

fn fault(f: Fault) -> Response {
    match f {
        Fault::Throttle => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rateLimitExceeded",
                "The rate of change requests to the object is too high.",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
            r
        }
        Fault::ServerError => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "backendError",
            "Backend Error",
        ),
    }
}

fn bad(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid", message)
}

fn not_found(bucket: &str, name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("No such object: {bucket}/{name}"),
    )
}

fn render(base: &str, bucket: &str, name: &str, o: &Object) -> Value {
    json!({
        "kind": "storage#object",
        "id": format!("{bucket}/{name}/{}", o.generation),
        "selfLink": format!("{base}/storage/v1/b/{bucket}/o/{name}"),
        "name": name,
        "bucket": bucket,
        "generation": o.generation.to_string(),
        "metageneration": "1",
        "contentType": o.content_type,
        "size": o.data.len().to_string(),
        "crc32c": o.crc32c,
        "metadata": o.metadata,
    })
}

async fn start_upload(
    State(state): State<Arc<AppState>>,
    Path(bucket): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if state.faults.fail_named("objects.insert") {
        return fault(Fault::ServerError);
    }
    if let Some(f) = state.faults.on_call("objects.insert") {
        return fault(f);
    }
    if q.get("uploadType").map(String::as_str) != Some("resumable") {
        return bad("only uploadType=resumable is emulated");
    }
    let meta: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return bad(&format!("Parse Error: {e}")),
        }
    };
    let Some(name) = q
        .get("name")
        .cloned()
        .or_else(|| meta["name"].as_str().map(str::to_string))
        .filter(|n| !n.is_empty())
    else {
        return error(StatusCode::BAD_REQUEST, "required", "Required");
    };
    let total = headers
        .get("x-upload-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut inner = state.gcs.lock();
    inner.next_id += 1;
    let id = format!("mock-upload-{}", inner.next_id);
    inner.uploads.insert(
        id.clone(),
        Upload {
            bucket: bucket.clone(),
            name,
            data: Vec::new(),
            content_type: meta["contentType"]
                .as_str()
                .unwrap_or("application/octet-stream")
                .into(),
            metadata: meta.get("metadata").cloned().unwrap_or(json!({})),
            crc32c: meta["crc32c"].as_str().map(str::to_string),
            total,
            done: None,
        },
    );
    let location = format!(
        "{}/upload/storage/v1/b/{bucket}/o?uploadType=resumable&upload_id={id}",
        state.base_url
    );
    let mut r = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The first and last byte of a chunk (none: a status query).
type Span = Option<(u64, u64)>;

/// `Content-Range`: `bytes A-B/T`, `bytes A-B/*`, `bytes */T`, `bytes */*`.
fn parse_range(s: &str) -> Option<(Span, Option<u64>)> {
    let (range, total) = s.strip_prefix("bytes ")?.split_once('/')?;
    let total = match total {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let range = match range {
        "*" => None,
        r => {
            let (a, b) = r.split_once('-')?;
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            if b < a {
                return None;
            }
            Some((a, b))
        }
    };
    Some((range, total))
}

async fn put_chunk(
    State(state): State<Arc<AppState>>,
    Path(_bucket): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut lose_answer = false;
    if !body.is_empty() {
        if state.faults.fail_named("objects.upload") {
            return fault(Fault::ServerError);
        }
        match state.faults.on_call("objects.upload") {
            Some(Fault::Throttle) => return fault(Fault::Throttle),
            Some(Fault::ServerError) => lose_answer = true,
            None => {}
        }
    }
    let Some(id) = q.get("upload_id") else {
        return bad("upload_id is required");
    };
    let Some((range, total)) = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range)
    else {
        return bad("a Content-Range of the form `bytes A-B/TOTAL` is required");
    };
    let answer = chunk(&state, id, range, total, &body);
    if lose_answer {
        return fault(Fault::ServerError);
    }
    answer
}

fn chunk(state: &AppState, id: &str, range: Span, total: Option<u64>, body: &[u8]) -> Response {
    let mut inner = state.gcs.lock();
    let Some(upload) = inner.uploads.get_mut(id) else {
        return error(StatusCode::NOT_FOUND, "notFound", "No such upload session");
    };
    if upload.done.is_some() {
        // Finished already (its answer was lost): the object, if it is still there.
        let key = (upload.bucket.clone(), upload.name.clone());
        return match inner.objects.get(&key) {
            Some(o) => Json(render(&state.base_url, &key.0, &key.1, o)).into_response(),
            None => not_found(&key.0, &key.1),
        };
    }
    if let (Some(t), Some(declared)) = (total, upload.total) {
        if t != declared {
            return bad(&format!("total {t} differs from the declared {declared}"));
        }
    }
    let held = upload.data.len() as u64;
    if let Some((a, b)) = range {
        let Some(end) = b.checked_add(1) else {
            return bad("the Content-Range overflows");
        };
        if body.len() as u64 != end - a {
            return bad("the body's length differs from the Content-Range");
        }
        if a > held {
            return bad(&format!(
                "chunk starts at {a}, but only {held} bytes are held"
            ));
        }
        if total.is_some_and(|t| end > t) {
            return bad("the chunk ends beyond the total");
        }
        let skip = usize::try_from(held - a).unwrap_or(usize::MAX);
        let new = body.get(skip..).unwrap_or_default();
        let last = total == Some(end);
        if !last && end % QUANTUM != 0 {
            return bad("a chunk that is not the last must be a multiple of 256 KiB");
        }
        upload.data.extend_from_slice(new);
    }
    let held = upload.data.len() as u64;
    if total == Some(held) {
        return finish(state, &mut inner, id);
    }
    let mut r = StatusCode::PERMANENT_REDIRECT.into_response();
    if held > 0 {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes=0-{}", held - 1)) {
            r.headers_mut().insert(header::RANGE, v);
        }
    }
    r
}

/// The last byte arrived: checks the declared CRC32C and stores the object.
fn finish(state: &AppState, inner: &mut Inner, id: &str) -> Response {
    let Some(upload) = inner.uploads.get_mut(id) else {
        return error(StatusCode::NOT_FOUND, "notFound", "No such upload session");
    };
    let object = Object::new(
        std::mem::take(&mut upload.data),
        upload.content_type.clone(),
        upload.metadata.clone(),
        0,
    );
    let actual = object.crc32c.clone();
    if let Some(declared) = upload.crc32c.as_ref().filter(|d| **d != actual) {
        let message =
            format!("Provided CRC32C \"{declared}\" doesn't match calculated CRC32C \"{actual}\".");
        inner.uploads.remove(id);
        return bad(&message);
    }
    inner.next_id += 1;
    let generation = inner.next_id;
    let Some(upload) = inner.uploads.get_mut(id) else {
        return error(StatusCode::NOT_FOUND, "notFound", "No such upload session");
    };
    upload.done = Some(generation);
    let key = (upload.bucket.clone(), upload.name.clone());
    let object = Object {
        generation,
        ..object
    };
    tracing::info!(
        bucket = key.0,
        object = key.1,
        size = object.data.len(),
        "gcs: object stored"
    );
    let rendered = render(&state.base_url, &key.0, &key.1, &object);
    inner.objects.insert(key, object);
    Json(rendered).into_response()
}

async fn get_object(
    State(state): State<Arc<AppState>>,
    Path((bucket, name)): Path<(String, String)>,
) -> Response {
    if state.faults.fail_named("objects.get") {
        return fault(Fault::ServerError);
    }
    if let Some(f) = state.faults.on_call("objects.get") {
        return fault(f);
    }
    let inner = state.gcs.lock();
    match inner.objects.get(&(bucket.clone(), name.clone())) {
        Some(o) => Json(render(&state.base_url, &bucket, &name, o)).into_response(),
        None => not_found(&bucket, &name),
    }
}

async fn delete_object(
    State(state): State<Arc<AppState>>,
    Path((bucket, name)): Path<(String, String)>,
) -> Response {
    if state.faults.fail_named("objects.delete") {
        return fault(Fault::ServerError);
    }
    let lose_answer = match state.faults.on_call("objects.delete") {
        Some(Fault::Throttle) => return fault(Fault::Throttle),
        Some(Fault::ServerError) => true,
        None => false,
    };
    let removed = state
        .gcs
        .lock()
        .objects
        .remove(&(bucket.clone(), name.clone()));
    if removed.is_none() {
        return not_found(&bucket, &name);
    }
    tracing::info!(bucket, object = name, "gcs: object deleted");
    if lose_answer {
        return fault(Fault::ServerError);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// CRC32C (Castagnoli), as Cloud Storage computes it; table-driven (uploads are megabytes).
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |crc, b| {
        TABLE[((crc ^ u32::from(*b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_checksums() {
        assert_eq!(parse_range("bytes 0-9/10"), Some((Some((0, 9)), Some(10))));
        assert_eq!(parse_range("bytes 0-9/*"), Some((Some((0, 9)), None)));
        assert_eq!(parse_range("bytes */10"), Some((None, Some(10))));
        assert_eq!(parse_range("bytes 9-0/10"), None);
        assert_eq!(parse_range("0-9/10"), None);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
