//! EC2: a proxy in front of moto server. Moto implements the EC2 query API faithfully but runs
//! nothing; the proxy injects faults, and boots what moto launched: the user data becomes the
//! instance's IMDSv2 user data and the agent starts with it. A guest that exits is terminated,
//! as `InstanceInitiatedShutdownBehavior=terminate` does on AWS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use cdvm_provider_api::metadata::MetadataService;
use cdvm_provider_api::VmId;

use crate::faults::Fault;
use crate::AppState;

/// EC2 proxy state.
#[derive(Debug)]
pub struct AwsState {
    moto_url: Option<String>,
    http: reqwest::Client,
    /// Instances launched through the proxy and not yet terminated through it, with their guest.
    instances: Mutex<HashMap<String, Option<VmId>>>,
    watcher: Mutex<bool>,
    /// Snapshots and AMIs made through the proxy.
    pub(crate) amis: crate::aws_images::AmiState,
}

impl AwsState {
    /// A proxy forwarding to `moto_url`.
    pub fn new(moto_url: Option<String>) -> Self {
        Self {
            moto_url,
            http: reqwest::Client::new(),
            instances: Mutex::new(HashMap::new()),
            watcher: Mutex::new(false),
            amis: crate::aws_images::AmiState::default(),
        }
    }

    /// Snapshots and AMIs made through the proxy (what moto does not keep).
    pub fn amis(&self) -> &crate::aws_images::AmiState {
        &self.amis
    }

    pub(crate) fn moto_url(&self) -> Option<&str> {
        self.moto_url.as_deref()
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Instances launched through the proxy and not terminated through it.
    pub fn live(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.lock().keys().cloned().collect();
        ids.sort();
        ids
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<VmId>>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/", post(ec2))
}

fn error_xml(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>mockcloud</RequestID></Response>"
    );
    (status, [("content-type", "text/xml;charset=UTF-8")], body).into_response()
}

fn params(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Instance ids named in an EC2 XML answer.
fn instance_ids(xml: &str) -> Vec<String> {
    xml.split("<instanceId>")
        .skip(1)
        .filter_map(|s| s.split_once("</instanceId>").map(|(id, _)| id.to_string()))
        .collect()
}

async fn ec2(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(moto) = state.aws.moto_url.clone() else {
        return error_xml(
            StatusCode::BAD_REQUEST,
            "UnsupportedOperation",
            "mockcloud: no moto_url configured",
        );
    };
    let form = params(&body);
    let action = param(&form, "Action").unwrap_or("").to_string();
    let mutating = matches!(action.as_str(), "RunInstances" | "TerminateInstances");
    if state.faults.fail_named(&action) {
        return error_xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "An internal error has occurred",
        );
    }
    let registering = if action == "RegisterImage" {
        match crate::aws_images::check_register(&state, &form) {
            Ok(attributes) => Some(attributes),
            Err((code, message)) => return error_xml(StatusCode::BAD_REQUEST, code, &message),
        }
    } else {
        None
    };
    let fault = state.faults.on_call(&action);
    match fault {
        Some(Fault::Throttle) => {
            return error_xml(
                StatusCode::SERVICE_UNAVAILABLE,
                "RequestLimitExceeded",
                "Request limit exceeded.",
            )
        }
        // Reads fail outright; writes are carried out and then the answer is lost, the harder case
        // for idempotency.
        Some(Fault::ServerError) if !mutating => {
            return error_xml(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "An internal error has occurred",
            )
        }
        _ => {}
    }
    if action == "TerminateInstances" && state.faults.lose_delete() {
        let ids: Vec<_> = form
            .iter()
            .filter(|(k, _)| k.starts_with("InstanceId."))
            .map(|(_, v)| v.clone())
            .collect();
        return lost_terminate(&ids);
    }
    let answer = match forward(&state, &moto, &headers, body.clone()).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("moto unreachable: {e}");
            return error_xml(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "moto server is unreachable",
            );
        }
    };
    if answer.0.is_success() {
        match action.as_str() {
            "RunInstances" => {
                tokio::time::sleep(state.faults.provisioning_delay()).await;
                launched(&state, &form, &answer.2).await;
            }
            "TerminateInstances" => {
                for (_, id) in form.iter().filter(|(k, _)| k.starts_with("InstanceId.")) {
                    terminated(&state, id).await;
                }
            }
            "RegisterImage" => {
                if let Some(attributes) = registering {
                    crate::aws_images::registered(&state, &answer.2, attributes);
                }
            }
            "DeregisterImage" => crate::aws_images::deregistered(&state, &form),
            _ => {}
        }
    }
    let answer = if action == "DescribeImages" && answer.0.is_success() {
        let patched = crate::aws_images::patch_describe(&state, &answer.2);
        (answer.0, answer.1, patched)
    } else {
        answer
    };
    if fault == Some(Fault::ServerError) {
        return error_xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "An internal error has occurred",
        );
    }
    (answer.0, [("content-type", answer.1)], answer.2).into_response()
}

async fn forward(
    state: &AppState,
    moto: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, String, String), reqwest::Error> {
    let mut request = state.aws.http.post(moto);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let response = request.body(body).send().await?;
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/xml")
        .to_string();
    Ok((status, content_type, response.text().await?))
}

fn lost_terminate(ids: &[String]) -> Response {
    let items: String = ids
        .iter()
        .map(|id| format!("<item><instanceId>{id}</instanceId><currentState><code>32</code><name>shutting-down</name></currentState><previousState><code>16</code><name>running</name></previousState></item>"))
        .collect();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TerminateInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>mockcloud-lost</requestId><instancesSet>{items}</instancesSet></TerminateInstancesResponse>"
    );
    (
        StatusCode::OK,
        [("content-type", "text/xml;charset=UTF-8")],
        body,
    )
        .into_response()
}

async fn launched(state: &Arc<AppState>, form: &[(String, String)], xml: &str) {
    let user_data = param(form, "UserData").and_then(|b64| {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
    });
    for id in instance_ids(xml) {
        if state.aws.lock().contains_key(&id) {
            // A retried RunInstances answered with the instance of its client token.
            continue;
        }
        let mut guest = None;
        if let (Some(booter), Some(data)) = (&state.booter, &user_data) {
            state
                .metadata
                .register(MetadataService::Aws, &id, data.clone());
            match booter
                .boot(&state.base_url, MetadataService::Aws, &id, data)
                .await
            {
                Ok(vm) => guest = Some(vm),
                Err(e) => tracing::warn!(instance = %id, "not booted: {e}"),
            }
        }
        state.aws.lock().insert(id, guest);
    }
    if state.booter.is_some() {
        start_watcher(state);
    }
}

async fn terminated(state: &AppState, id: &str) {
    let entry = state.aws.lock().remove(id);
    if let Some(Some(vm)) = entry {
        if let Some(b) = &state.booter {
            b.halt(&vm).await;
        }
    }
    state.metadata.remove(MetadataService::Aws, id);
}

/// Terminates, in moto, instances whose guest powered off.
fn start_watcher(state: &Arc<AppState>) {
    let mut started = state.aws.watcher.lock().unwrap_or_else(|p| p.into_inner());
    if *started {
        return;
    }
    *started = true;
    let weak: Weak<AppState> = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let Some(state) = weak.upgrade() else { return };
            let Some(booter) = &state.booter else { return };
            let booted: Vec<(String, VmId)> = state
                .aws
                .lock()
                .iter()
                .filter_map(|(id, vm)| vm.clone().map(|vm| (id.clone(), vm)))
                .collect();
            for (id, vm) in booted {
                if !booter.running(&vm).await {
                    tracing::info!(instance = %id, "guest powered off: terminating the instance");
                    if let Some(moto) = &state.aws.moto_url {
                        let form = format!(
                            "Action=TerminateInstances&Version=2016-11-15&InstanceId.1={id}"
                        );
                        let sent = state
                            .aws
                            .http
                            .post(moto)
                            .header("content-type", "application/x-www-form-urlencoded")
                            // moto routes by the credential scope's service; without it, S3 answers.
                            .header(
                                "authorization",
                                crate::aws_setup::moto_authorization("us-east-1"),
                            )
                            .body(form)
                            .send()
                            .await;
                        if let Err(e) = sent {
                            tracing::warn!(instance = %id, "terminating in moto failed: {e}");
                            continue;
                        }
                    }
                    terminated(&state, &id).await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_instance_ids() {
        let xml = "<a><instanceId>i-1</instanceId><x/><instanceId>i-2</instanceId></a>";
        assert_eq!(instance_ids(xml), ["i-1", "i-2"]);
        assert!(instance_ids("<a/>").is_empty());
    }
}
