//! One job, from the guest's side: fetch and check the request, make the one-time key, attest,
//! take the input from the request's author only, run, publish the encrypted result.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use cdvm_attestation::Attester;
use cdvm_protocol::nostr::{Event, EventId, Filter, Keys, Kind, PublicKey, Timestamp};
use cdvm_protocol::{
    unwrap_input, AttestationEvent, AttestationPayload, Bootstrap, ErrorClass, FeedbackStatus,
    ImageIdentity, InputBody, JobFeedback, JobRequest, JobResult, Outcome, ProtocolError,
    PublicOutcome, ResultPayload,
};
use nostr_sdk::{Client, RelayPoolNotification};
use zeroize::Zeroizing;

use crate::executors::{self, ExecError};

const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// One try at fetching the request: what the relays answered by then counts.
const FETCH_TRY: Duration = Duration::from_secs(2);
/// How long the guest waits for its relays to connect before it asks the connected ones.
const RELAY_CONNECT_WAIT: Duration = Duration::from_secs(3);
/// How long the result waits for partial answers still being published.
const PARTIALS_DRAIN: Duration = Duration::from_secs(5);

/// Publishes the executor's output so far as encrypted `partial` feedback (docs/protocol.md
/// §5.9), numbered 1, 2, …; when the executor runs ahead of the relays, only the newest text
/// goes out. Text past [`cdvm_protocol::rag::MAX_PARTIAL_TEXT`] is not sent: the result has it.
async fn publish_partials(
    client: Client,
    guest: Keys,
    user: PublicKey,
    request_id: EventId,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut seq = 0u32;
    while let Some(mut text) = rx.recv().await {
        while let Ok(newer) = rx.try_recv() {
            text = newer;
        }
        if text.len() > cdvm_protocol::rag::MAX_PARTIAL_TEXT {
            continue;
        }
        seq = seq.saturating_add(1);
        let partial = cdvm_protocol::rag::PartialAnswer {
            v: 1,
            request_id: request_id.to_hex(),
            seq,
            text,
        };
        let event = match partial.build(&guest, &user) {
            Ok(b) => b.sign_with_keys(&guest).map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        match event {
            Ok(event) => {
                if let Err(e) = client.send_event(&event).await {
                    tracing::warn!(job = %request_id, error = %e, "could not publish a partial answer");
                }
            }
            Err(e) => {
                tracing::warn!(job = %request_id, error = %e, "could not build a partial answer")
            }
        }
    }
}

/// How the session runs, beyond the bootstrap.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Image name reported in the attestation.
    pub image_name: &'static str,
    /// Development only: allow plain http:// Blossom URLs on loopback. The image sets it only
    /// under the simulated TEE (fw_cfg `opt/cdvm/dev-blossom`), which no shipped policy accepts.
    pub dev_insecure_blossom: bool,
    /// Development only, with `dev_insecure_blossom`: where loopback URLs really go (the QEMU
    /// guest reaches the host's loopback at the user-network gateway).
    pub loopback_alias: Option<std::net::Ipv4Addr>,
    /// What the executors need (model directory, threads).
    pub exec: executors::ExecConfig,
}

/// The models the agent carries, as the attestation names them (empty without a model
/// directory, or in an agent built without the RAG job). The manifest is read and checked, not
/// the files hashed: it is part of the measured image, and the RAG executor checks each file's
/// hash before loading it.
fn image_models(exec: &executors::ExecConfig) -> anyhow::Result<Vec<cdvm_protocol::rag::ModelRef>> {
    #[cfg(feature = "rag")]
    if let Some(dir) = &exec.models_dir {
        return Ok(cdvm_rag::models::Manifest::load(dir)?.references());
    }
    let _ = exec;
    Ok(Vec::new())
}

pub(crate) async fn run(
    bootstrap: Bootstrap,
    attester: Box<dyn Attester>,
    options: Options,
) -> anyhow::Result<()> {
    let image_name = options.image_name;
    bootstrap.check().context("bootstrap")?;
    let request_id = bootstrap.request_id().context("bootstrap request id")?;
    // The one-time key: generated here, kept in memory only, dropped at exit.
    let guest = Keys::generate();
    let client = Client::new(guest.clone());
    for relay in &bootstrap.relays {
        client
            .add_relay(relay.as_str())
            .await
            .with_context(|| format!("relay {relay}"))?;
    }
    client.connect().await;
    // A relay that is down must not hold the job up: the others are asked after this, and one
    // that comes up later joins (the client keeps reconnecting).
    client.wait_for_connection(RELAY_CONNECT_WAIT).await;

    let request = fetch_request(&client, request_id).await?;
    tracing::info!(job = %request_id, kind = request.kind, "request fetched and verified");
    let user = request.author;
    // The orchestrator checked the request's profile before launching; the guest checks it
    // again, since it trusts nothing the operator did.
    if let Err(e) = request.check_confidential() {
        publish_error(&client, &guest, &request, &format!("refused: {e}")).await;
        bail!("the request is not a confidential request this guest runs: {e}");
    }
    let Some(executor) = executors::for_kind(request.kind, &options.exec) else {
        publish_error(
            &client,
            &guest,
            &request,
            "this image has no executor for the job kind",
        )
        .await;
        bail!("no executor for kind {}", request.kind);
    };

    // Subscribe for input before attesting, so an input sent right after the attestation is seen.
    let mut notifications = client.notifications();
    client
        .subscribe(
            Filter::new()
                .kind(Kind::GiftWrap)
                .pubkey(guest.public_key()),
            None,
        )
        .await
        .context("subscribe for input")?;

    let report_data = cdvm_protocol::report_data(&request_id, &guest.public_key());
    let attester: Arc<dyn Attester> = Arc::from(attester);
    let evidence = {
        let attester = Arc::clone(&attester);
        tokio::task::spawn_blocking(move || attester.evidence(&report_data))
            .await
            .context("attester task")?
            .context("getting evidence")?
    };
    tracing::info!(job = %request_id, tee = %attester.tee(), interface = attester.interface(), "evidence obtained");
    let payload = AttestationPayload {
        v: 1,
        request_id: request_id.to_hex(),
        image: ImageIdentity {
            name: image_name.into(),
            measurement: evidence
                .claimed_measurement()
                .map(|m| m.to_string())
                .unwrap_or_default(),
        },
        evidence,
    };
    // The guest owns the input deadline: it is counted from now, announced on the attestation so
    // the user knows it, and enforced below.
    let input_timeout = Duration::from_secs(bootstrap.input_timeout_secs);
    let input_deadline = tokio::time::Instant::now() + input_timeout;
    let signed_at = Timestamp::now();
    let models = image_models(&options.exec)?;
    let event =
        AttestationEvent::build(request_id, user, &payload, after(signed_at, input_timeout))?
            .tag(cdvm_protocol::interface_tag(attester.interface()))
            .tags(models.iter().map(cdvm_protocol::model_tag))
            .custom_created_at(signed_at)
            .sign_with_keys(&guest)?;
    client
        .send_event(&event)
        .await
        .context("publishing attestation")?;
    tracing::info!(job = %request_id, guest = %guest.public_key(), "attestation published");

    let input = loop {
        let next = tokio::time::timeout_at(input_deadline, notifications.recv()).await;
        let Ok(Ok(notification)) = next else {
            publish_error(
                &client,
                &guest,
                &request,
                &format!(
                    "input deadline passed: no input from the user within {} s of the attestation",
                    bootstrap.input_timeout_secs
                ),
            )
            .await;
            bail!("input deadline passed");
        };
        let RelayPoolNotification::Event { event, .. } = notification else {
            continue;
        };
        match accept_input(&guest, &event, &user, &request_id).await {
            Some(input) => break input,
            None => continue,
        }
    };
    tracing::info!(job = %request_id, "input received from the requester");
    let run_limit = Duration::from_secs(bootstrap.run_timeout_secs);
    let signed_at = Timestamp::now();
    let running = JobFeedback::running(request_id, user, after(signed_at, run_limit))
        .custom_created_at(signed_at)
        .sign_with_keys(&guest)?;
    client
        .send_event(&running)
        .await
        .context("publishing running feedback")?;

    // Download (for a blob input), decryption and the executor share the run limit.
    let run_deadline = tokio::time::Instant::now() + run_limit;
    let executor: Arc<dyn executors::Executor> = Arc::from(executor);
    let blossom = crate::blob::client(options.dev_insecure_blossom, options.loopback_alias)?;
    let (partial_tx, partial_rx) = tokio::sync::mpsc::unbounded_channel();
    let publisher = tokio::spawn(publish_partials(
        client.clone(),
        guest.clone(),
        user,
        request_id,
        partial_rx,
    ));
    let outcome = tokio::time::timeout_at(
        run_deadline,
        execute(
            executor,
            input.body,
            bootstrap.max_input_bytes,
            &blossom,
            executors::Partial::to(partial_tx),
        ),
    )
    .await;
    // Partials go out before the result (a client shows them in order); a publisher still fed
    // by an executor past its time limit is not waited for.
    let _ = tokio::time::timeout(PARTIALS_DRAIN, publisher).await;
    let (payload, public) = match outcome {
        Ok(Ok(out)) => finish_output(&request_id, out, &input.blossom, &blossom, &guest).await,
        Ok(Err(e)) => (
            ResultPayload::error(&request_id, e.to_string()),
            PublicOutcome::Error(e.class()),
        ),
        Err(_) => (
            ResultPayload::error(
                &request_id,
                format!(
                    "the job ran past its time limit of {} s (download and execution)",
                    bootstrap.run_timeout_secs
                ),
            ),
            PublicOutcome::Error(ErrorClass::TimeLimit),
        ),
    };
    let (content, public) = match cdvm_protocol::encrypt_result(&guest, &user, &payload) {
        Ok(content) => (content, public),
        // An output too large for one event still gets an answer, never silence.
        Err(ProtocolError::ResultTooLarge { size, max }) => {
            let payload = ResultPayload::error(
                &request_id,
                format!(
                    "the output is {size} bytes; one result holds at most {max} and the input \
                     named no Blossom server for a larger one"
                ),
            );
            (
                cdvm_protocol::encrypt_result(&guest, &user, &payload)?,
                PublicOutcome::Error(ErrorClass::OutputTooLarge),
            )
        }
        Err(e) => return Err(e.into()),
    };
    // Read before publishing: the provider destroys the VM once the result is out.
    tracing::info!(job = %request_id, peak_rss_kib = peak_rss_kib(), "session over");
    let result = JobResult::build(&request, content, public).sign_with_keys(&guest)?;
    client
        .send_event(&result)
        .await
        .context("publishing result")?;
    tracing::info!(job = %request_id, "encrypted result published");
    client.shutdown().await;
    Ok(())
}

/// Runs the executor on the input: inline data directly; a blob's data streamed from each of its
/// URLs in turn until one delivers it whole (the executor restarts on the next server when a
/// download fails; what it read before was authenticated, so nothing wrong was ever used).
async fn execute(
    executor: Arc<dyn executors::Executor>,
    body: InputBody,
    max_input_bytes: u64,
    blossom: &crate::blob::Transport,
    partial: executors::Partial,
) -> Result<executors::Output, ExecError> {
    let body = Arc::new(body);
    let Some(blob) = body.blob().cloned() else {
        let run = {
            let body = Arc::clone(&body);
            move || executors::run_inline(executor.as_ref(), &body, &partial)
        };
        return tokio::task::spawn_blocking(run)
            .await
            .unwrap_or_else(|_| Err(ExecError::Internal("executor crashed".into())));
    };
    crate::blob::precheck(&blob, max_input_bytes).map_err(|e| match e {
        crate::blob::BlobInputError::TooLarge { .. } => ExecError::BadInput(e.to_string()),
        other => ExecError::BadInput(other.to_string()),
    })?;
    let mut failures = Vec::new();
    for url in blob.urls() {
        let (source, download) = match crate::blob::open(blossom, &blob, url) {
            Ok(opened) => opened,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let run = {
            let body = Arc::clone(&body);
            let executor = Arc::clone(&executor);
            let partial = partial.clone();
            move || executor.run(&body, source, &partial)
        };
        let result = tokio::task::spawn_blocking(run)
            .await
            .unwrap_or_else(|_| Err(ExecError::Internal("executor crashed".into())));
        match download.verdict().await {
            Ok(()) => return result,
            // The blob failed a check: the executor's result, whatever it is, does not count
            // (an error from it came from the download). Try the next server.
            Err(failure) => {
                // Not logged in detail: it names the user's servers and blob (host-readable console).
                tracing::warn!("a blob source failed; trying the next one");
                failures.push(failure.to_string());
            }
        }
    }
    Err(ExecError::BadInput(format!(
        "the input blob could not be fetched from any of its {} URL(s): {}",
        failures.len(),
        failures.join("; ")
    )))
}

/// The payload for a successful output: inline when it fits one event, else an encrypted blob on
/// the user's servers (docs/protocol.md §5.8).
async fn finish_output(
    request_id: &EventId,
    out: executors::Output,
    servers: &[String],
    blossom: &crate::blob::Transport,
    guest: &Keys,
) -> (ResultPayload, PublicOutcome) {
    let payload = ResultPayload::ok(request_id, out.media_type, out.body);
    let fits = serde_json::to_vec(&payload)
        .map(|j| j.len() <= cdvm_protocol::MAX_RESULT_PLAINTEXT)
        .unwrap_or(false);
    if fits || servers.is_empty() {
        // Too large with no server: encrypt_result refuses it and the caller answers
        // output-too-large.
        return (payload, PublicOutcome::Success);
    }
    let Outcome::Ok {
        media_type, output, ..
    } = payload.outcome
    else {
        return (payload, PublicOutcome::Success);
    };
    match crate::blob::upload_result(blossom, guest, servers, &media_type, Zeroizing::new(output))
        .await
    {
        Ok(blob) => (
            ResultPayload::ok_blob(request_id, &media_type, blob),
            PublicOutcome::Success,
        ),
        Err(e) => (
            ResultPayload::error(
                request_id,
                format!("the output is too large for one event and its upload failed: {e}"),
            ),
            PublicOutcome::Error(ErrorClass::OutputTooLarge),
        ),
    }
}

/// This process's peak resident set size (VmHWM) in KiB, 0 where /proc does not say
/// (logged for benches/blob_transfer.rs).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The Unix time `d` after `t`, as announced in deadline tags.
fn after(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_secs(t.as_secs().saturating_add(d.as_secs()))
}

/// Fetches the request by id and checks its id and signature here, in the guest: the user's key
/// is taken from this signed event, never from the operator.
/// The request may be missing for a while (a relay that restarted with empty memory): the
/// orchestrator publishes it again every few seconds until the guest attests, so the guest asks
/// again, each try bounded by [`FETCH_TRY`], until [`FETCH_TIMEOUT`].
async fn fetch_request(client: &Client, id: EventId) -> anyhow::Result<JobRequest> {
    let deadline = tokio::time::Instant::now() + FETCH_TIMEOUT;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let events = client
            .fetch_events(Filter::new().id(id), FETCH_TRY)
            .await
            .context("fetching the job request")?;
        if let Some(event) = events.into_iter().find(|e| e.id == id) {
            return JobRequest::from_event(&event).context("the job request is invalid");
        }
        if tokio::time::Instant::now() > deadline {
            let relays = client.relays().await;
            let connected = relays.values().filter(|r| r.is_connected()).count();
            bail!(
                "job request {id} not found on any relay: asked {tries} times over {} s, {connected} of {} relay(s) connected",
                FETCH_TIMEOUT.as_secs(),
                relays.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn accept_input(
    guest: &Keys,
    event: &Event,
    user: &PublicKey,
    request_id: &EventId,
) -> Option<cdvm_protocol::ConfidentialInput> {
    if event.kind != Kind::GiftWrap {
        return None;
    }
    match unwrap_input(guest, event).await {
        Ok((sender, input)) if &sender == user && input.request_id == request_id.to_hex() => {
            Some(input)
        }
        Ok((sender, _)) => {
            tracing::warn!(job = %request_id, sender = %sender, "ignored input not from the requester or for another job");
            None
        }
        Err(e) => {
            tracing::warn!(job = %request_id, error = %e, "ignored unreadable gift wrap");
            None
        }
    }
}

async fn publish_error(client: &Client, guest: &Keys, request: &JobRequest, info: &str) {
    let Ok(event) = JobFeedback::build(
        request.id,
        request.author,
        FeedbackStatus::Error,
        Some(info),
    )
    .sign_with_keys(guest) else {
        return;
    };
    if let Err(e) = client.send_event(&event).await {
        tracing::warn!(error = %e, "could not publish error feedback");
    }
}
