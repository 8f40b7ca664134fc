//! One job's life: launch → attested → running → result → destroy, each stage under a deadline.
//! Every transition is stored before the side effect that follows it.

use std::sync::Arc;
use std::time::Duration;

use cdvm_protocol::nostr::{Event, EventId, PublicKey, Timestamp};
use cdvm_protocol::{
    kinds, AttestationEvent, FeedbackStatus, JobFeedback, JobRequest, JobResult, PublicOutcome,
};
use cdvm_provider_api::{Bootstrap, JobTag, VmClass, VmId, VmSpec, VmState};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::runtime::{end_job, fail_job, Shared};
use crate::store::JobState;

/// How long after a deadline the guest owns the orchestrator waits for the guest's own word
/// (its error feedback or result) before it calls the guest silent. Long enough that the guest's
/// report always wins, so one failure is reported one way.
pub(crate) const GUEST_DEADLINE_GRACE: Duration = Duration::from_secs(30);

/// Why a stage did not complete.
enum Stop {
    /// A deadline the orchestrator owns (the attestation's) passed.
    Timeout(&'static str),
    /// A deadline the guest owns passed long ago and the guest said nothing.
    GuestSilent(&'static str),
    VmEnded(String),
    GuestError(String),
    /// The guest delivered a result whose public status is `error`.
    JobFailed(cdvm_protocol::ErrorClass),
    Shutdown,
}

impl Stop {
    fn reason(&self) -> String {
        match self {
            Stop::Timeout(stage) => format!("deadline passed while {stage}; VM destroyed"),
            Stop::GuestSilent(deadline) => format!(
                "the guest fell silent: no word from it {} s after its {deadline} deadline; VM destroyed",
                GUEST_DEADLINE_GRACE.as_secs()
            ),
            Stop::JobFailed(class) => {
                format!("the job failed in the guest ({class}); VM destroyed")
            }
            Stop::VmEnded(detail) => {
                format!("the VM stopped before finishing ({detail}); VM destroyed")
            }
            Stop::GuestError(info) => format!("the guest reported an error: {info}; VM destroyed"),
            Stop::Shutdown => {
                "the orchestrator shut down before the job finished; VM destroyed".into()
            }
        }
    }
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    request: JobRequest,
    mut events: mpsc::Receiver<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let id = request.id;
    let hex = id.to_hex();
    let user = request.author;
    shared
        .feedback(
            id,
            user,
            FeedbackStatus::Processing,
            "accepted; launching a fresh confidential VM",
        )
        .await;
    if let Err(e) = shared
        .store
        .transition(&hex, JobState::Launching, None)
        .await
    {
        tracing::error!(job = %hex, error = %e, "cannot record launch; not launching");
        fail_job(
            &shared,
            id,
            user,
            None,
            "internal error: job store unavailable",
        )
        .await;
        shared.unroute(&id);
        return;
    }
    let spec = VmSpec {
        owner: shared.owner.clone(),
        job: JobTag(hex.clone()),
        class: VmClass {
            vcpus: shared.cfg.jobs.vm_class.vcpus,
            memory_mib: shared.cfg.jobs.vm_class.memory_mib,
        },
        tee: request
            .tee()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        bootstrap: Bootstrap {
            request_id: hex.clone(),
            relays: shared.cfg.relays.clone(),
            input_timeout_secs: shared.cfg.deadlines.input_secs,
            run_timeout_secs: run_secs(&shared.cfg, request.kind),
            max_input_bytes: shared.cfg.jobs.max_input_for(request.kind),
        },
    };
    // The config was checked at load; this only guards the contract with the guest.
    if let Err(e) = spec.bootstrap.check() {
        tracing::error!(job = %hex, error = %e, "the bootstrap would be refused by the guest");
        fail_job(
            &shared,
            id,
            user,
            None,
            &format!("internal error: bad bootstrap: {e}"),
        )
        .await;
        shared.unroute(&id);
        return;
    }
    let vm = match shared.provider.launch(&spec).await {
        Ok(vm) => vm.id,
        Err(e) => {
            tracing::warn!(job = %hex, error = %e, "launch failed");
            fail_job(
                &shared,
                id,
                user,
                None,
                &format!("could not launch a VM: {e}"),
            )
            .await;
            shared.unroute(&id);
            return;
        }
    };
    let _ = shared.store.set_vm(&hex, &vm.0).await;
    let _ = shared.store.transition(&hex, JobState::Booted, None).await;
    tracing::info!(job = %hex, vm = %vm, "VM launched; waiting for attestation");

    let outcome = drive(&shared, &request, &vm, &mut events, &mut stop).await;
    if matches!(outcome, Ok(_) | Err(Stop::JobFailed(_))) {
        crate::failpoint::hit(crate::failpoint::points::AFTER_GUEST_RESULT);
    }
    match outcome {
        Ok(stated) => {
            let info = if stated {
                "result delivered to the user; VM destroyed"
            } else {
                "result delivered to the user (its outcome is not stated); VM destroyed"
            };
            end_job(
                &shared,
                id,
                user,
                JobState::Succeeded,
                FeedbackStatus::Success,
                info,
                Some(&vm),
            )
            .await;
            tracing::info!(job = %hex, "result delivered; VM destroyed");
        }
        Err(stop) => fail_job(&shared, id, user, Some(&vm), &stop.reason()).await,
    }
    shared.unroute(&id);
}

async fn drive(
    shared: &Shared,
    request: &JobRequest,
    vm: &VmId,
    events: &mut mpsc::Receiver<Event>,
    stop: &mut watch::Receiver<bool>,
) -> Result<bool, Stop> {
    let hex = request.id.to_hex();
    let d = shared.cfg.deadlines;

    // Stage 1: the guest publishes its attestation. The user judges it for confidentiality; the
    // orchestrator checks it against its guest policy only to choose which key to follow, since
    // anyone can publish an event tagged to this job.
    let deadline = Instant::now() + Duration::from_secs(d.attest_secs);
    let attestation = wait(
        shared,
        vm,
        events,
        stop,
        deadline,
        Stop::Timeout("waiting for attestation"),
        |e| {
            if e.kind.as_u16() != kinds::ATTESTATION {
                return None;
            }
            AttestationEvent::from_event(e)
                .ok()
                .filter(|a| a.request_id == request.id && a.user == request.author)
                .filter(|a| believable(shared, a))
        },
    )
    .await?;
    let guest = attestation.guest;
    shared.attested(&request.id);
    let _ = shared
        .store
        .transition(
            &hex,
            JobState::Attested,
            Some(&format!("guest {}", guest.to_hex())),
        )
        .await;
    tracing::info!(job = %hex, guest = %guest, "guest attested; waiting for the user's input");

    // Stage 2: the guest says it has the input and is running. The guest owns this deadline
    // (announced on its attestation, capped by the one this orchestrator gave it); the
    // orchestrator only keeps a backstop for a guest that falls silent.
    let deadline = backstop(attestation.input_deadline, d.input_secs);
    let first = wait(
        shared,
        vm,
        events,
        stop,
        deadline,
        Stop::GuestSilent("input"),
        |e| guest_progress(e, &guest, request),
    )
    .await?;
    let result_event = match first {
        Progress::Running(run_deadline) => {
            let _ = shared.store.transition(&hex, JobState::Running, None).await;
            tracing::info!(job = %hex, "guest running");
            let run_secs = run_secs(&shared.cfg, request.kind);
            let run_deadline = run_deadline.unwrap_or_else(|| after(run_secs));
            let deadline = backstop(run_deadline, run_secs);
            match wait(
                shared,
                vm,
                events,
                stop,
                deadline,
                Stop::GuestSilent("run"),
                |e| match guest_progress(e, &guest, request) {
                    Some(Progress::Running(_)) => None,
                    other => other,
                },
            )
            .await?
            {
                Progress::Error(info) => return Err(Stop::GuestError(info)),
                p => p,
            }
        }
        Progress::Error(info) => return Err(Stop::GuestError(info)),
        p => p,
    };
    match result_event {
        Progress::Result(Some(PublicOutcome::Success)) => Ok(true),
        Progress::Result(None) => Ok(false),
        Progress::Result(Some(PublicOutcome::Error(class))) => Err(Stop::JobFailed(class)),
        Progress::Error(info) => Err(Stop::GuestError(info)),
        Progress::Running(_) => Err(Stop::GuestError("no result".into())),
    }
}

/// The run limit given to the guest for a job of `kind`: it covers the download of an input up
/// to the kind's cap (docs/protocol.md §6.1).
fn run_secs(cfg: &crate::config::Config, kind: u16) -> u64 {
    cfg.deadlines.run_secs_for(cfg.jobs.max_input_for(kind))
}

/// The Unix time `secs` from now.
fn after(secs: u64) -> Timestamp {
    Timestamp::from_secs(Timestamp::now().as_secs().saturating_add(secs))
}

/// When to stop waiting for a guest-owned deadline: the guest's announced deadline plus
/// [`GUEST_DEADLINE_GRACE`], but never later than the limit this orchestrator gave (`secs` from
/// now) plus the grace: the guest's word cannot keep a VM alive longer than the operator allows.
fn backstop(announced: Timestamp, secs: u64) -> Instant {
    let now = Timestamp::now().as_secs();
    let until = announced.as_secs().min(now.saturating_add(secs));
    Instant::now() + Duration::from_secs(until.saturating_sub(now)) + GUEST_DEADLINE_GRACE
}

/// Whether the attestation passes the orchestrator's guest policy (always, if it has none).
fn believable(shared: &Shared, a: &AttestationEvent) -> bool {
    use cdvm_attestation::Verifier;
    if shared.guest_policies.is_empty() {
        return true;
    }
    let tee = a.payload.evidence.tee();
    let Some(policy) = shared.guest_policies.iter().find(|p| p.tee == tee) else {
        tracing::warn!(job = %a.request_id, key = %a.guest, %tee, "ignored an attestation: no guest policy for this TEE");
        return false;
    };
    let expected = cdvm_protocol::report_data(&a.request_id, &a.guest);
    match cdvm_attestation::AnyVerifier.verify(
        &a.payload.evidence,
        &expected,
        policy,
        std::time::SystemTime::now(),
    ) {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(job = %a.request_id, key = %a.guest, reason = %e, "ignored an attestation that fails the guest policy");
            false
        }
    }
}

pub(crate) enum Progress {
    /// The guest runs the job; its announced run deadline, if any.
    Running(Option<Timestamp>),
    /// The result is out; its public outcome, if stated.
    Result(Option<PublicOutcome>),
    Error(String),
}

/// Events signed by the attested guest key about this job.
fn guest_progress(e: &Event, guest: &PublicKey, request: &JobRequest) -> Option<Progress> {
    progress_of(e, guest, &request.id, request.kind)
}

/// What an event says about job `id` (of request kind `request_kind`), if the guest `guest`
/// signed it: running, its result, or its error.
pub(crate) fn progress_of(
    e: &Event,
    guest: &PublicKey,
    id: &EventId,
    request_kind: u16,
) -> Option<Progress> {
    if &e.pubkey != guest {
        return None;
    }
    let kind = e.kind.as_u16();
    if Some(kind) == kinds::result_kind(request_kind) {
        return JobResult::from_event(e)
            .ok()
            .filter(|r| &r.request_id == id)
            .map(|r| Progress::Result(r.outcome));
    }
    if kind == kinds::JOB_FEEDBACK {
        let fb = JobFeedback::from_event(e)
            .ok()
            .filter(|f| &f.request_id == id)?;
        return match fb.status {
            Some(FeedbackStatus::Processing) => Some(Progress::Running(fb.run_deadline)),
            Some(FeedbackStatus::Error) => Some(Progress::Error(
                fb.extra_info.unwrap_or_else(|| "unspecified".into()),
            )),
            _ => None,
        };
    }
    None
}

/// Waits for the first routed event `pick` accepts, watching the deadline, the VM and shutdown.
async fn wait<T>(
    shared: &Shared,
    vm: &VmId,
    events: &mut mpsc::Receiver<Event>,
    stop: &mut watch::Receiver<bool>,
    deadline: Instant,
    on_deadline: Stop,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Result<T, Stop> {
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => if let Some(t) = pick(&ev) { return Ok(t) },
                None => return Err(Stop::Shutdown),
            },
            () = tokio::time::sleep_until(deadline) => return Err(on_deadline),
            _ = stop.changed() => return Err(Stop::Shutdown),
            _ = poll.tick() => match shared.provider.status(vm).await {
                Ok(VmState::Exited { detail }) => {
                    // The guest exits right after publishing; let its last events arrive.
                    let grace = Instant::now() + Duration::from_secs(3);
                    while let Ok(Some(ev)) = tokio::time::timeout_at(grace, events.recv()).await {
                        if let Some(t) = pick(&ev) { return Ok(t) }
                    }
                    return Err(Stop::VmEnded(detail));
                }
                Ok(VmState::Gone) => return Err(Stop::VmEnded("VM disappeared".into())),
                Ok(_) => {}
                Err(e) => tracing::warn!(vm = %vm, error = %e, "status check failed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs_until(i: Instant) -> u64 {
        i.saturating_duration_since(Instant::now())
            .as_secs_f64()
            .round() as u64
    }

    #[test]
    fn the_backstop_follows_the_guest_but_never_past_the_operator_limit() {
        let grace = GUEST_DEADLINE_GRACE.as_secs();
        // The guest announced 100 s; the operator allows 120: 100 s + grace.
        assert_eq!(secs_until(backstop(after(100), 120)), 100 + grace);
        // A guest claiming a day gets the operator's 120 s + grace.
        assert_eq!(secs_until(backstop(after(86_400), 120)), 120 + grace);
        // A deadline already past: only the grace is left.
        let past = Timestamp::from_secs(Timestamp::now().as_secs() - 50);
        assert_eq!(secs_until(backstop(past, 120)), grace);
    }
}
