//! AMI publishing in front of moto: the EBS direct APIs are forwarded (with faults, and the
//! block checksums checked as EBS does), and what moto ignores of `RegisterImage` is kept
//! here: `BootMode`, `TpmSupport`, `ImdsSupport` and `EnaSupport` are validated as EC2 does and
//! shown again by `DescribeImages` (moto reports every image as `uefi` and never a TPM).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::Router;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::AppState;

/// The EBS direct APIs' only block size.
const EBS_BLOCK: usize = 512 * 1024;

/// What `RegisterImage` asked for and moto forgot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageAttributes {
    /// `uefi`, `legacy-bios`, `uefi-preferred`, or none.
    pub boot_mode: Option<String>,
    /// `v2.0` or none.
    pub tpm_support: Option<String>,
    /// `v2.0` or none.
    pub imds_support: Option<String>,
    /// ENA.
    pub ena_support: bool,
    /// The root snapshot.
    pub snapshot_id: Option<String>,
}

/// Snapshots seen through the EBS direct APIs, and AMI attributes.
#[derive(Debug, Default)]
pub struct AmiState {
    started: Mutex<HashSet<String>>,
    completed: Mutex<HashSet<String>>,
    images: Mutex<HashMap<String, ImageAttributes>>,
    blocks_written: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AmiState {
    /// Blocks written to `snapshot` through `PutSnapshotBlock`.
    pub fn blocks_written(&self, snapshot: &str) -> u64 {
        lock(&self.blocks_written)
            .get(snapshot)
            .copied()
            .unwrap_or(0)
    }

    /// The attributes recorded for `ami`.
    pub fn image(&self, ami: &str) -> Option<ImageAttributes> {
        lock(&self.images).get(ami).cloned()
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/snapshots", post(start_snapshot))
        .route(
            "/snapshots/{id}/blocks/{index}",
            put(put_block).get(forward_get),
        )
        .route("/snapshots/completion/{id}", post(complete_snapshot))
}

fn ebs_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("content-type", "application/json"),
            ("x-amzn-errortype", kind),
        ],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn injected(state: &AppState, call: &str) -> Option<Response> {
    state.faults.fail_named(call).then(|| {
        ebs_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            "An internal error has occurred",
        )
    })
}

async fn forward(
    state: &AppState,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(moto) = state.aws.moto_url() else {
        return ebs_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "mockcloud: no moto_url configured",
        );
    };
    let url = format!("{}{path}", moto.trim_end_matches('/'));
    let mut request = state.aws.http().request(method, url);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    match request.body(body).send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let body = answer.bytes().await.unwrap_or_default();
            (status, [("content-type", content_type)], body).into_response()
        }
        Err(e) => {
            tracing::warn!("moto unreachable: {e}");
            ebs_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                "moto server is unreachable",
            )
        }
    }
}

async fn start_snapshot(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = injected(&state, "StartSnapshot") {
        return r;
    }
    let answer = forward(&state, Method::POST, "/snapshots", &headers, body).await;
    let (parts, body) = answer.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    if parts.status.is_success() {
        if let Some(id) = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("SnapshotId")?.as_str().map(str::to_owned))
        {
            lock(&state.aws.amis.started).insert(id);
        }
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

async fn put_block(
    State(state): State<Arc<AppState>>,
    Path((id, index)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = injected(&state, "PutSnapshotBlock") {
        return r;
    }
    if lock(&state.aws.amis.completed).contains(&id) {
        return ebs_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "The snapshot is already completed",
        );
    }
    // EBS refuses a block whose length or SHA-256 is not what the headers say.
    if body.len() != EBS_BLOCK {
        return ebs_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "The data length must be 524288 bytes",
        );
    }
    let claimed = headers
        .get("x-amz-checksum")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let actual = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
    if claimed != actual {
        return ebs_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "The checksum does not match the data",
        );
    }
    let path = format!("/snapshots/{id}/blocks/{index}");
    let answer = forward(&state, Method::PUT, &path, &headers, body).await;
    if answer.status().is_success() {
        *lock(&state.aws.amis.blocks_written).entry(id).or_default() += 1;
    }
    answer
}

async fn forward_get(
    State(state): State<Arc<AppState>>,
    Path((id, index)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/snapshots/{id}/blocks/{index}");
    forward(&state, Method::GET, &path, &headers, Bytes::new()).await
}

async fn complete_snapshot(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = injected(&state, "CompleteSnapshot") {
        return r;
    }
    let path = format!("/snapshots/completion/{id}");
    let answer = forward(&state, Method::POST, &path, &headers, body).await;
    if answer.status().is_success() {
        lock(&state.aws.amis.completed).insert(id);
    }
    answer
}

/// `RegisterImage` checked as EC2 checks what moto ignores; `Err` is the EC2 error to answer.
pub(crate) fn check_register(
    state: &AppState,
    form: &[(String, String)],
) -> Result<ImageAttributes, (&'static str, String)> {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let boot_mode = get("BootMode");
    if let Some(m) = &boot_mode {
        if !matches!(m.as_str(), "uefi" | "legacy-bios" | "uefi-preferred") {
            return Err((
                "InvalidParameterValue",
                format!("Value ({m}) for parameter bootMode is invalid."),
            ));
        }
    }
    let tpm_support = get("TpmSupport");
    if let Some(t) = &tpm_support {
        if t != "v2.0" {
            return Err((
                "InvalidParameterValue",
                format!("Value ({t}) for parameter tpmSupport is invalid."),
            ));
        }
        if !matches!(boot_mode.as_deref(), Some("uefi" | "uefi-preferred")) {
            return Err((
                "InvalidParameterCombination",
                "NitroTPM requires the UEFI boot mode.".to_owned(),
            ));
        }
    }
    let snapshot_id = get("BlockDeviceMapping.1.Ebs.SnapshotId");
    if let Some(s) = &snapshot_id {
        // A snapshot made through the EBS direct APIs must be completed before use.
        if lock(&state.aws.amis.started).contains(s) && !lock(&state.aws.amis.completed).contains(s)
        {
            return Err((
                "IncorrectState",
                format!("Snapshot '{s}' is not in the completed state."),
            ));
        }
    }
    Ok(ImageAttributes {
        boot_mode,
        tpm_support,
        imds_support: get("ImdsSupport"),
        ena_support: get("EnaSupport").as_deref() == Some("true"),
        snapshot_id,
    })
}

/// Records what was registered as `ami` (from moto's answer).
pub(crate) fn registered(state: &AppState, xml: &str, attributes: ImageAttributes) {
    if let Some(ami) = element(xml, "imageId") {
        lock(&state.aws.amis.images).insert(ami.to_owned(), attributes);
    }
}

/// Forgets a deregistered AMI.
pub(crate) fn deregistered(state: &AppState, form: &[(String, String)]) {
    if let Some((_, ami)) = form.iter().find(|(k, _)| k == "ImageId") {
        lock(&state.aws.amis.images).remove(ami);
    }
}

/// Rewrites a `DescribeImages` answer so each recorded image shows what was registered.
pub(crate) fn patch_describe(state: &AppState, xml: &str) -> String {
    let images = lock(&state.aws.amis.images).clone();
    let mut out = xml.to_owned();
    for (ami, a) in images {
        let Some((start, end)) = item_of(&out, &ami) else {
            continue;
        };
        let mut item = out[start..end].to_owned();
        item = drop_element(&item, "bootMode");
        item = drop_element(&item, "tpmSupport");
        item = drop_element(&item, "imdsSupport");
        item = drop_element(&item, "enaSupport");
        let mut extra = String::new();
        if let Some(m) = &a.boot_mode {
            extra.push_str(&format!("<bootMode>{m}</bootMode>"));
        }
        if let Some(t) = &a.tpm_support {
            extra.push_str(&format!("<tpmSupport>{t}</tpmSupport>"));
        }
        if let Some(i) = &a.imds_support {
            extra.push_str(&format!("<imdsSupport>{i}</imdsSupport>"));
        }
        extra.push_str(&format!("<enaSupport>{}</enaSupport>", a.ena_support));
        // Before the item's closing tag.
        let close = item.len() - "</item>".len();
        item.insert_str(close, &extra);
        out.replace_range(start..end, &item);
    }
    out
}

fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..start + len])
}

fn drop_element(xml: &str, name: &str) -> String {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    match xml.find(&open) {
        Some(s) => match xml[s..].find(&close) {
            Some(len) => format!("{}{}", &xml[..s], &xml[s + len + close.len()..]),
            None => xml.to_owned(),
        },
        None => xml.to_owned(),
    }
}

/// The byte range of the `<item>…</item>` directly holding `<imageId>ami</imageId>`: the
/// innermost item still open at the id, up to its matching close.
fn item_of(xml: &str, ami: &str) -> Option<(usize, usize)> {
    let at = xml.find(&format!("<imageId>{ami}</imageId>"))?;
    let mut open: Vec<usize> = Vec::new();
    let mut start = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < xml.len() {
        let next_open = xml[i..].find("<item>").map(|p| p + i);
        let next_close = xml[i..].find("</item>").map(|p| p + i);
        let (pos, is_open) = match (next_open, next_close) {
            (Some(o), Some(c)) if o < c => (o, true),
            (_, Some(c)) => (c, false),
            (Some(o), None) => (o, true),
            (None, None) => return None,
        };
        if start.is_none() && pos > at {
            start = Some(*open.last()?);
        }
        match (start, is_open) {
            (None, true) => open.push(pos),
            (None, false) => {
                open.pop();
            }
            (Some(_), true) => depth += 1,
            (Some(s), false) if depth == 0 => return Some((s, pos + "</item>".len())),
            (Some(_), false) => depth -= 1,
        }
        i = pos
            + if is_open {
                "<item>".len()
            } else {
                "</item>".len()
            };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_top_level_item_of_an_image() {
        let xml = "<imagesSet><item><blockDeviceMapping><item><x/></item></blockDeviceMapping><imageId>ami-1</imageId><tagSet><item><k/></item></tagSet><bootMode>uefi</bootMode></item><item><imageId>ami-2</imageId></item></imagesSet>";
        let (s, e) = item_of(xml, "ami-1").expect("ami-1 is there");
        assert!(xml[s..e].starts_with("<item><blockDeviceMapping>"));
        assert!(xml[s..e].ends_with("<bootMode>uefi</bootMode></item>"));
        let (s, e) = item_of(xml, "ami-2").expect("ami-2 is there");
        assert_eq!(&xml[s..e], "<item><imageId>ami-2</imageId></item>");
        assert!(item_of(xml, "ami-3").is_none());
    }

    #[test]
    fn drops_only_the_named_element() {
        assert_eq!(
            drop_element("<a><b>1</b><c>2</c></a>", "b"),
            "<a><c>2</c></a>"
        );
        assert_eq!(drop_element("<a/>", "b"), "<a/>");
    }
}
