//! One job from the user's side. The order is the security argument: nothing confidential leaves
//! this process until the attestation event verified against the policy and this job's request.

use std::time::{Duration, Instant, SystemTime};

use cdvm_attestation::{Claims, Policy};
use cdvm_protocol::nostr::{Event, EventId, Filter, Keys, PublicKey, Timestamp};
use cdvm_protocol::{
    kinds, wrap_input, ConfidentialInput, FeedbackStatus, InputBody, JobFeedback,
    JobRequestBuilder, JobResult, Outcome, ResultPayload, MAX_INPUT_PLAINTEXT,
};
use nostr_sdk::{Client, RelayPoolNotification};

use crate::blob::Transfer;
use crate::rag::PartialTracker;
use crate::{verify::verify_attestation_event_with, ClientError};

/// How long each stage may take.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From submission to a verified attestation.
    pub attest: Duration,
    /// From sending the input to the result.
    pub result: Duration,
    /// After the result, how long to wait for the DVM's "VM destroyed" feedback.
    pub destroyed: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            attest: Duration::from_secs(120),
            result: Duration::from_secs(300),
            destroyed: Duration::from_secs(15),
        }
    }
}

/// What to run, where, and under which policy.
#[derive(Debug)]
pub struct JobSpec {
    /// Relays (ws:// or wss://).
    pub relays: Vec<String>,
    /// The DVM's public key.
    pub dvm: PublicKey,
    /// NIP-90 request kind.
    pub kind: u16,
    /// The confidential input.
    pub input: InputBody,
    /// The attestation policy the guest must satisfy.
    pub policy: Policy,
    /// The user's key (a fresh one per job is fine).
    pub user: Keys,
    /// Stage deadlines.
    pub timeouts: Timeouts,
    /// Resolves the VCEK of SEV-SNP evidence that carries no chain (a host that supplies no
    /// certificates); `None` refuses such evidence with `MissingChain`.
    pub vcek: Option<cdvm_attestation::snp::vcek::VcekResolver>,
    /// Blossom servers the guest may put a result too large for one event on (§5.8); empty:
    /// such a result is an `output-too-large` error.
    pub result_servers: Vec<String>,
    /// Where a result that arrives as a blob is written (decrypted, hash checked). Without it,
    /// a blob result of at most [`MAX_RESULT_IN_MEMORY`] bytes is returned in memory.
    pub result_file: Option<std::path::PathBuf>,
    /// Called as a result blob downloads.
    pub transfer_progress: Option<crate::blob::TransferProgress>,
}

/// Largest blob result [`run_job`] returns in memory when no result file is given.
pub const MAX_RESULT_IN_MEMORY: u64 = 64 << 20;

/// A stage reached, for progress display.
#[derive(Debug)]
pub enum Stage {
    /// The request is on the relays.
    Submitted {
        /// Request id.
        request: EventId,
    },
    /// The DVM said something.
    Dvm {
        /// Status.
        status: FeedbackStatus,
        /// Its message.
        info: String,
    },
    /// The guest's attestation verified.
    Attested {
        /// The guest's one-time key.
        guest: PublicKey,
        /// What was verified.
        claims: Box<Claims>,
        /// When the guest stops waiting for the input (announced by the guest, which owns it).
        input_deadline: Timestamp,
        /// The evidence interface the guest named (unauthenticated, display only).
        interface: Option<String>,
        /// The models the guest's image carries (its `model` tags; checked against the
        /// policy's `models`, if any).
        models: Vec<cdvm_protocol::rag::ModelRef>,
    },
    /// An attestation event for this job failed verification and was skipped; its key gets
    /// nothing. The job goes on waiting for a valid one until the attestation deadline.
    Refused {
        /// The key that signed the refused event.
        guest: PublicKey,
        /// Why it was refused.
        reason: String,
    },
    /// The encrypted input is on the relays.
    InputSent,
    /// The guest reported it is running the job.
    Running {
        /// When the guest stops the executor, as it announced.
        run_deadline: Option<Timestamp>,
    },
    /// A RAG job's answer so far (kind 5050): from the attested guest key, decrypted, newer
    /// than any shown before. Each carries the whole text, not what was added.
    Partial {
        /// The guest's sequence number, 1, 2, 3, …
        seq: u32,
        /// The answer generated so far.
        text: String,
    },
    /// The encrypted result arrived and decrypted.
    ResultReceived,
    /// The result was a blob: downloaded, decrypted and its hash checked.
    ResultDownloaded {
        /// Ciphertext bytes downloaded.
        bytes: u64,
    },
    /// The DVM reported the VM destroyed.
    VmDestroyed,
}

/// A finished job.
#[derive(Debug)]
pub struct JobOutcome {
    /// Request id.
    pub request: EventId,
    /// The guest key the input went to.
    pub guest: PublicKey,
    /// What the attestation proved.
    pub claims: Claims,
    /// Media type of the output.
    pub media_type: String,
    /// The decrypted output (empty when it was written to [`JobSpec::result_file`]).
    pub output: String,
    /// The file a blob result was written to, and its size.
    pub output_file: Option<(std::path::PathBuf, u64)>,
    /// Whether the DVM confirmed the VM's destruction in time.
    pub vm_destroyed: bool,
}

/// Runs a job end to end. `progress` is called at each stage with the time since submission.
pub async fn run_job(
    spec: JobSpec,
    mut progress: impl FnMut(&Stage, Duration),
) -> Result<JobOutcome, ClientError> {
    let me = spec.user.public_key();
    let tee = spec.policy.tee;
    let request_event = JobRequestBuilder::new(spec.kind, spec.dvm, tee)
        .relays(spec.relays.clone())
        .policy(&spec.policy.name)
        .build()?
        .sign_with_keys(&spec.user)
        .map_err(|e| ClientError::Usage(format!("cannot sign the request: {e}")))?;
    let request = request_event.id;
    let input = ConfidentialInput {
        v: 1,
        request_id: request.to_hex(),
        body: spec.input,
        blossom: spec.result_servers.clone(),
    };
    input.check()?;
    // Refuse oversized input before publishing anything.
    let size = serde_json::to_vec(&input)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_INPUT_PLAINTEXT {
        return Err(ClientError::InputTooLarge {
            size,
            max: MAX_INPUT_PLAINTEXT,
        });
    }

    let client = Client::new(spec.user.clone());
    for relay in &spec.relays {
        client
            .add_relay(relay.as_str())
            .await
            .map_err(|e| ClientError::Relay(format!("{relay}: {e}")))?;
    }
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(10)).await;
    let mut notifications = client.notifications();
    client
        .subscribe(
            Filter::new().event(request).since(Timestamp::from(
                Timestamp::now().as_secs().saturating_sub(60),
            )),
            None,
        )
        .await
        .map_err(|e| ClientError::Relay(format!("subscribe: {e}")))?;
    let sent = client
        .send_event(&request_event)
        .await
        .map_err(|e| ClientError::Relay(format!("publish request: {e}")))?;
    if sent.success.is_empty() {
        return Err(ClientError::Relay(format!(
            "no relay accepted the request: {:?}",
            sent.failed
        )));
    }
    let start = Instant::now();
    progress(&Stage::Submitted { request }, start.elapsed());

    let ctx = Ctx {
        client: &client,
        kind: spec.kind,
        policy: &spec.policy,
        dvm: &spec.dvm,
        me: &me,
        user: &spec.user,
        request,
        timeouts: spec.timeouts,
        start,
        vcek: spec.vcek.as_ref(),
        result_file: spec.result_file.as_deref(),
        transfer_progress: spec.transfer_progress.clone(),
    };
    let result = drive(&ctx, &mut notifications, &input, &mut progress).await;
    client.shutdown().await;
    result
}

struct Ctx<'a> {
    client: &'a Client,
    kind: u16,
    policy: &'a Policy,
    dvm: &'a PublicKey,
    me: &'a PublicKey,
    user: &'a Keys,
    request: EventId,
    timeouts: Timeouts,
    start: Instant,
    vcek: Option<&'a cdvm_attestation::snp::vcek::VcekResolver>,
    result_file: Option<&'a std::path::Path>,
    transfer_progress: Option<crate::blob::TransferProgress>,
}

async fn drive(
    ctx: &Ctx<'_>,
    notifications: &mut tokio::sync::broadcast::Receiver<RelayPoolNotification>,
    input: &ConfidentialInput,
    progress: &mut impl FnMut(&Stage, Duration),
) -> Result<JobOutcome, ClientError> {
    let Ctx {
        client,
        policy,
        dvm,
        me,
        user,
        request,
        timeouts,
        start,
        vcek,
        ..
    } = *ctx;
    // Stage 1: a verified attestation for this request. Anyone can publish an event tagged to
    // this job, so a refused attestation is reported and skipped, not fatal: nothing is sent to an
    // unverified key either way. If no attestation verifies before the deadline, the job ends with
    // the last refusal (or a timeout if none came).
    let deadline = tokio::time::Instant::now() + timeouts.attest;
    let mut last_refusal: Option<ClientError> = None;
    let (guest, claims) = loop {
        let event = match next_event(
            notifications,
            deadline,
            "waiting for the guest's attestation",
        )
        .await
        {
            Ok(event) => event,
            Err(ClientError::Timeout(stage)) => {
                return Err(last_refusal.unwrap_or(ClientError::Timeout(stage)))
            }
            Err(other) => return Err(other),
        };
        match dvm_feedback(&event, dvm, request) {
            Ok(Some(stage)) => {
                progress(&stage, start.elapsed());
                continue;
            }
            Ok(None) => {}
            // The DVM gave up on the job after we refused its guest: the refusal is the cause the
            // user needs; the DVM's message is shown as progress.
            Err(ClientError::DvmError(info)) if last_refusal.is_some() => {
                progress(
                    &Stage::Dvm {
                        status: FeedbackStatus::Error,
                        info,
                    },
                    start.elapsed(),
                );
                if let Some(refusal) = last_refusal {
                    return Err(refusal);
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        if event.kind.as_u16() != kinds::ATTESTATION {
            continue;
        }
        let verified = verify_attestation_event_with(&event, policy, SystemTime::now(), vcek)
            .and_then(|(attestation, claims)| {
                if attestation.request_id != request || &attestation.user != me {
                    // Verified evidence, but for another job or user.
                    return Err(ClientError::BadAttestationEvent(
                        cdvm_protocol::ProtocolError::RequestMismatch {
                            context: "attestation event (request or user)",
                            expected: request.to_hex(),
                            found: attestation.request_id.to_hex(),
                        },
                    ));
                }
                Ok((attestation, claims))
            });
        let (attestation, claims) = match verified {
            Ok(ok) => ok,
            Err(refusal) => {
                progress(
                    &Stage::Refused {
                        guest: event.pubkey,
                        reason: refusal.to_string(),
                    },
                    start.elapsed(),
                );
                last_refusal = Some(refusal);
                continue;
            }
        };
        let guest = attestation.guest;
        progress(
            &Stage::Attested {
                guest,
                claims: Box::new(claims.clone()),
                input_deadline: attestation.input_deadline,
                interface: attestation.interface.clone(),
                models: attestation.models.clone(),
            },
            start.elapsed(),
        );
        // A guest past its input deadline has given up: sending would only put ciphertext on the
        // relays for nobody.
        if Timestamp::now() >= attestation.input_deadline {
            return Err(ClientError::Timeout(
                "the guest's input deadline passed before its attestation was verified",
            ));
        }
        break (guest, claims);
    };

    // Stage 2: the input, encrypted to the attested key only.
    let wrapped = wrap_input(user, &guest, input).await.map_err(|e| match e {
        cdvm_protocol::ProtocolError::InputTooLarge { size, max } => {
            ClientError::InputTooLarge { size, max }
        }
        other => ClientError::Protocol(other),
    })?;
    client
        .send_event(&wrapped)
        .await
        .map_err(|e| ClientError::Relay(format!("publish input: {e}")))?;
    progress(&Stage::InputSent, start.elapsed());

    // Stage 3: the result, signed by the guest key. A RAG job's answer grows meanwhile in
    // encrypted `partial` feedback from the same key.
    let deadline = tokio::time::Instant::now() + timeouts.result;
    let mut partials =
        (ctx.kind == kinds::TEXT_GENERATION).then(|| PartialTracker::new(guest, request));
    let payload: ResultPayload = loop {
        let event = next_event(notifications, deadline, "waiting for the result").await?;
        if let Some(stage) = dvm_feedback(&event, dvm, request)? {
            progress(&stage, start.elapsed());
            continue;
        }
        if event.pubkey != guest {
            continue;
        }
        let kind = event.kind.as_u16();
        if kind == kinds::JOB_FEEDBACK {
            if let Ok(fb) = JobFeedback::from_event(&event) {
                match fb.status {
                    Some(FeedbackStatus::Processing) => progress(
                        &Stage::Running {
                            run_deadline: fb.run_deadline,
                        },
                        start.elapsed(),
                    ),
                    Some(FeedbackStatus::Error) => {
                        return Err(ClientError::JobFailed(fb.extra_info.unwrap_or_default()))
                    }
                    Some(FeedbackStatus::Partial) => {
                        if let Some(p) = partials.as_mut().and_then(|t| t.accept(user, &event)) {
                            progress(
                                &Stage::Partial {
                                    seq: p.seq,
                                    text: p.text,
                                },
                                start.elapsed(),
                            );
                        }
                    }
                    _ => {}
                }
            }
            continue;
        }
        if !(kinds::JOB_REQUEST_MAX + 1..=kinds::JOB_REQUEST_MAX + kinds::JOB_RESULT_OFFSET)
            .contains(&kind)
        {
            continue;
        }
        let Ok(result) = JobResult::from_event(&event) else {
            continue;
        };
        if result.request_id != request {
            continue;
        }
        let payload = cdvm_protocol::decrypt_result(user, &guest, &result.content)
            .map_err(ClientError::BadResult)?;
        check_public_outcome(result.outcome, &payload.outcome)?;
        break payload;
    };
    progress(&Stage::ResultReceived, start.elapsed());
    let (media_type, output, output_file) = match payload.outcome {
        Outcome::Ok {
            media_type, output, ..
        } => (media_type, output, None),
        Outcome::OkBlob { media_type, blob } => {
            let (output, file) = fetch_blob_result(ctx, &blob).await?;
            progress(
                &Stage::ResultDownloaded { bytes: blob.size },
                start.elapsed(),
            );
            (media_type, output, file)
        }
        Outcome::Error { message } => return Err(ClientError::JobFailed(message)),
    };

    // Stage 4: the DVM confirms the VM is gone.
    let deadline = tokio::time::Instant::now() + timeouts.destroyed;
    let mut vm_destroyed = false;
    while let Ok(event) = next_event(notifications, deadline, "waiting for VM destruction").await {
        if let Ok(Some(Stage::Dvm {
            status: FeedbackStatus::Success,
            ..
        })) = dvm_feedback(&event, dvm, request)
        {
            vm_destroyed = true;
            progress(&Stage::VmDestroyed, start.elapsed());
            break;
        }
    }
    Ok(JobOutcome {
        request,
        guest,
        claims,
        media_type,
        output,
        output_file,
        vm_destroyed,
    })
}

/// Fetches a blob result into the result file, or into memory when there is none (bounded).
async fn fetch_blob_result(
    ctx: &Ctx<'_>,
    blob: &cdvm_protocol::BlobRef,
) -> Result<(String, Option<(std::path::PathBuf, u64)>), ClientError> {
    let blossom = crate::blob::client()?;
    let noop = |_: &Transfer| {};
    let report: &(dyn Fn(&Transfer) + Sync) = match &ctx.transfer_progress {
        Some(f) => f.0.as_ref(),
        None => &noop,
    };
    match ctx.result_file {
        Some(path) => {
            let n = crate::blob::fetch_result(&blossom, blob, path, report).await?;
            Ok((String::new(), Some((path.to_owned(), n))))
        }
        None => {
            let plain = cdvm_blob::plaintext_len(blob.size).unwrap_or(u64::MAX);
            if plain > MAX_RESULT_IN_MEMORY {
                return Err(ClientError::Usage(format!(
                    "the result is a {plain}-byte blob; give an output file (--output) for it"
                )));
            }
            let dir = tempfile::tempdir().map_err(|source| ClientError::Io {
                path: "temporary folder".into(),
                source,
            })?;
            let path = dir.path().join("result");
            crate::blob::fetch_result(&blossom, blob, &path, report).await?;
            let output = std::fs::read_to_string(&path).map_err(|source| ClientError::Io {
                path: path.display().to_string(),
                source,
            })?;
            Ok((output, None))
        }
    }
}

/// The result's public `status` tag must tell the truth about the encrypted outcome: the operator
/// reports the job by it. A guest that says `success` in public and `error` inside (or the reverse)
/// is broken, and its result is refused. A result without the tag is accepted (other NIP-90 DVMs).
fn check_public_outcome(
    public: Option<cdvm_protocol::PublicOutcome>,
    inside: &Outcome,
) -> Result<(), ClientError> {
    use cdvm_protocol::PublicOutcome;
    let agrees = matches!(
        (public, inside),
        (None, _)
            | (
                Some(PublicOutcome::Success),
                Outcome::Ok { .. } | Outcome::OkBlob { .. }
            )
            | (Some(PublicOutcome::Error(_)), Outcome::Error { .. })
    );
    if agrees {
        Ok(())
    } else {
        Err(ClientError::BadResult(
            cdvm_protocol::ProtocolError::InvalidField {
                field: "status",
                reason: format!(
                    "the result's public status {public:?} contradicts its encrypted outcome"
                ),
            },
        ))
    }
}

/// Feedback from the DVM about this request: progress, or an error that ends the job.
fn dvm_feedback(
    event: &Event,
    dvm: &PublicKey,
    request: EventId,
) -> Result<Option<Stage>, ClientError> {
    if &event.pubkey != dvm || event.kind.as_u16() != kinds::JOB_FEEDBACK {
        return Ok(None);
    }
    let Ok(fb) = JobFeedback::from_event(event) else {
        return Ok(None);
    };
    if fb.request_id != request {
        return Ok(None);
    }
    let info = fb.extra_info.clone().unwrap_or_default();
    match fb.status {
        Some(FeedbackStatus::Error) => Err(ClientError::DvmError(info)),
        Some(status) => Ok(Some(Stage::Dvm { status, info })),
        None => Ok(None),
    }
}

async fn next_event(
    notifications: &mut tokio::sync::broadcast::Receiver<RelayPoolNotification>,
    deadline: tokio::time::Instant,
    stage: &'static str,
) -> Result<Event, ClientError> {
    loop {
        match tokio::time::timeout_at(deadline, notifications.recv()).await {
            Err(_) => return Err(ClientError::Timeout(stage)),
            Ok(Ok(RelayPoolNotification::Event { event, .. })) => return Ok(*event),
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                return Err(ClientError::Relay("relay connection closed".into()))
            }
        }
    }
}
