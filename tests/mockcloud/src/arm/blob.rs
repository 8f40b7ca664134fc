//! The blob service, page blobs only, path style under the mock:
//! `PUT|HEAD|DELETE /blob/{account}/{container}/{blob}` and `PUT …?comp=page` (the real service
//! is `https://{account}.blob.core.windows.net/{container}/{blob}`; accounts and containers are
//! not modelled: any name exists).
//!
//! Checks as the service makes them: a bearer token (401 `NoAuthenticationInformation`),
//! `x-ms-version` (400 `MissingRequiredHeader`); Put Blob only with `x-ms-blob-type: PageBlob`
//! and an `x-ms-blob-content-length` that is a multiple of 512 (400 `InvalidHeaderValue`);
//! Put Page with `x-ms-page-write: update|clear` and an `x-ms-range` (or `Range`) of whole
//! 512-byte pages inside the blob (416 `InvalidPageRange`), at most 4 MiB (413
//! `RequestBodyTooLarge`), the body as long as the range (400 `InvalidHeaderValue`). Errors come
//! in the service's XML shape with `x-ms-error-code`. Pages are stored sparsely.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::faults::Fault;
use crate::AppState;

/// Page size of a page blob.
pub const PAGE: u64 = 512;
/// The most one Put Page may write.
pub const MAX_PAGE_WRITE: u64 = 4 << 20;
/// The largest page blob (8 TiB).
pub const MAX_PAGE_BLOB: u64 = 8 << 40;

/// A page blob: its size and the pages written (index → 512 bytes); the rest reads as zeros.
#[derive(Debug, Default)]
pub struct Blob {
    /// Bytes.
    pub size: u64,
    /// Written pages.
    pub pages: BTreeMap<u64, Vec<u8>>,
}

impl Blob {
    /// The last 512 bytes (a VHD's footer).
    pub fn last_page(&self) -> Vec<u8> {
        let last = (self.size / PAGE).saturating_sub(1);
        self.pages
            .get(&last)
            .cloned()
            .unwrap_or_else(|| vec![0; PAGE as usize])
    }
}

/// Blobs by `account/container/blob`.
pub type Blobs = BTreeMap<String, Blob>;

/// The key of a blob.
pub fn key(account: &str, container: &str, blob: &str) -> String {
    format!("{account}/{container}/{blob}")
}

fn storage_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\n\
         RequestId:{}</Message></Error>",
        super::store::guid()
    );
    let mut r = (status, body).into_response();
    if let Ok(v) = HeaderValue::from_str(code) {
        r.headers_mut().insert("x-ms-error-code", v);
    }
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    r
}

/// A refusal at the front door, answered by [`storage_error`].
#[derive(Debug)]
struct Refused(StatusCode, &'static str, &'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        storage_error(self.0, self.1, self.2)
    }
}

/// The front door: bearer token, `x-ms-version`, then named and drawn faults.
fn gate(state: &AppState, headers: &HeaderMap, call: &str) -> Result<(), Refused> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !t.trim().is_empty());
    if !bearer {
        return Err(Refused(
            StatusCode::UNAUTHORIZED,
            "NoAuthenticationInformation",
            "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
        ));
    }
    if !headers.contains_key("x-ms-version") {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified.",
        ));
    }
    if state.faults.fail_named(call) {
        return Err(SERVER_ERROR);
    }
    match state.faults.on_call(call) {
        Some(Fault::Throttle) => Err(Refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServerBusy",
            "Operations per second is over the account limit.",
        )),
        Some(Fault::ServerError) => Err(SERVER_ERROR),
        None => Ok(()),
    }
}

const SERVER_ERROR: Refused = Refused(
    StatusCode::INTERNAL_SERVER_ERROR,
    "InternalError",
    "The server encountered an internal error. Please retry the request.",
);

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn bad_header(name: &str) -> Response {
    storage_error(
        StatusCode::BAD_REQUEST,
        "InvalidHeaderValue",
        &format!("The value for one of the HTTP headers is not in the correct format ({name})."),
    )
}

fn not_found() -> Response {
    storage_error(
        StatusCode::NOT_FOUND,
        "BlobNotFound",
        "The specified blob does not exist.",
    )
}

/// `PUT`: Put Blob, or Put Page with `comp=page`.
pub(super) async fn put(
    State(state): State<Arc<AppState>>,
    Path((account, container, blob)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match query.get("comp").map(String::as_str) {
        None => put_blob(&state, key(&account, &container, &blob), &headers, &body),
        Some("page") => put_page(&state, key(&account, &container, &blob), &headers, &body),
        Some(_) => storage_error(
            StatusCode::BAD_REQUEST,
            "UnsupportedQueryParameter",
            "One of the query parameters specified in the request URI is not supported.",
        ),
    }
}

fn put_blob(state: &AppState, key: String, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Err(r) = gate(state, headers, "blobs.put") {
        return r.into_response();
    }
    if header(headers, "x-ms-blob-type") != Some("PageBlob") {
        return bad_header("x-ms-blob-type: the mock holds page blobs only");
    }
    let Some(size) =
        header(headers, "x-ms-blob-content-length").and_then(|v| v.parse::<u64>().ok())
    else {
        return bad_header("x-ms-blob-content-length");
    };
    if size % PAGE != 0 || size > MAX_PAGE_BLOB {
        return bad_header("x-ms-blob-content-length: a multiple of 512, at most 8 TiB");
    }
    if !body.is_empty() {
        return bad_header("Content-Length: Put Blob of a page blob carries no content");
    }
    let mut blobs = state.arm.blobs();
    blobs.insert(
        key,
        Blob {
            size,
            pages: BTreeMap::new(),
        },
    );
    StatusCode::CREATED.into_response()
}

/// `bytes=a-b` as (a, b).
fn range(value: &str) -> Option<(u64, u64)> {
    let (a, b) = value.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

fn put_page(state: &AppState, key: String, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Err(r) = gate(state, headers, "blobs.putPage") {
        return r.into_response();
    }
    let clear = match header(headers, "x-ms-page-write") {
        Some("update") => false,
        Some("clear") => true,
        _ => return bad_header("x-ms-page-write"),
    };
    let Some((first, last)) = header(headers, "x-ms-range")
        .or_else(|| header(headers, "range"))
        .and_then(range)
    else {
        return bad_header("x-ms-range");
    };
    let invalid_range = || {
        storage_error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidPageRange",
            "The page range specified is invalid.",
        )
    };
    let Some(len) = last.checked_sub(first).and_then(|d| d.checked_add(1)) else {
        return invalid_range();
    };
    if first % PAGE != 0 || len % PAGE != 0 {
        return invalid_range();
    }
    if len > MAX_PAGE_WRITE {
        return storage_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            "The request body is too large and exceeds the maximum permissible limit.",
        );
    }
    let expected = if clear { 0 } else { len };
    if body.len() as u64 != expected {
        return bad_header("Content-Length: the body must be as long as the range");
    }
    let mut blobs = state.arm.blobs();
    let Some(blob) = blobs.get_mut(&key) else {
        return not_found();
    };
    if last >= blob.size {
        return invalid_range();
    }
    for i in 0..len / PAGE {
        let index = first / PAGE + i;
        if clear {
            blob.pages.remove(&index);
        } else {
            let at = (i * PAGE) as usize;
            blob.pages
                .insert(index, body[at..at + PAGE as usize].to_vec());
        }
    }
    if !clear {
        state.arm.page_writes.fetch_add(1, Ordering::SeqCst);
        state.arm.page_bytes.fetch_add(len, Ordering::SeqCst);
    }
    StatusCode::CREATED.into_response()
}

/// `HEAD`: Get Blob Properties.
pub(super) async fn head(
    State(state): State<Arc<AppState>>,
    Path((account, container, blob)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, "blobs.getProperties") {
        return r.into_response();
    }
    let blobs = state.arm.blobs();
    let Some(b) = blobs.get(&key(&account, &container, &blob)) else {
        return not_found();
    };
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert("x-ms-blob-type", HeaderValue::from_static("PageBlob"));
    h.insert("content-length", HeaderValue::from(b.size));
    h.insert("x-ms-blob-content-length", HeaderValue::from(b.size));
    r
}

/// `DELETE`: Delete Blob.
pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    Path((account, container, blob)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&state, &headers, "blobs.delete") {
        return r.into_response();
    }
    match state.arm.blobs().remove(&key(&account, &container, &blob)) {
        Some(_) => StatusCode::ACCEPTED.into_response(),
        None => not_found(),
    }
}
