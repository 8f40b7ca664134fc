//! Cleanup that does not trust memory: recovery of jobs a previous run left unfinished, and the
//! reconciler that destroys every VM carrying our owner tag that no live job owns.

use cdvm_protocol::nostr::{EventId, Filter, Kind, PublicKey};
use cdvm_protocol::{FeedbackStatus, PublicOutcome};
use cdvm_provider_api::VmId;

use crate::job::{progress_of, Progress};
use crate::runtime::{end_job, fail_job, Shared};
use crate::store::JobState;

/// Destroys a job's VM, retrying a few times, and records it. A VM that still cannot be destroyed
/// stays listed under our owner tag, so the periodic reconciler keeps trying.
pub(crate) async fn destroy_vm(shared: &Shared, job: &str, vm: &VmId) {
    for attempt in 1..=3u32 {
        match shared.provider.destroy(vm).await {
            Ok(()) => {
                if let Err(e) = shared.store.mark_destroyed(job).await {
                    tracing::error!(job, error = %e, "VM destroyed but not recorded");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(job, vm = %vm, attempt, error = %e, "destroy failed");
                tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                    .await;
            }
        }
    }
    tracing::error!(job, vm = %vm, "VM not destroyed after 3 attempts; the reconciler will retry");
}

/// How long recovery asks the relays for a guest's last word about a job.
const RECOVERY_FETCH: std::time::Duration = std::time::Duration::from_secs(5);

/// Jobs a previous run left unfinished are not resumed (their deadlines and event routes died with
/// that run): each is ended and its VM destroyed, so every accepted job ends. A job whose guest
/// attested may have finished while this daemon was down, or between the guest's result and the
/// store's `succeeded`: the relays are asked for the attested guest's result or error first, and
/// the job ends the way the user saw it end (issue 16, fault 3), never with a contradiction.
pub(crate) async fn recover_unfinished(shared: &Shared) {
    let jobs = match shared.store.unfinished().await {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "cannot read unfinished jobs");
            return;
        }
    };
    let vms = shared
        .provider
        .list(&shared.owner)
        .await
        .unwrap_or_default();
    for job in jobs {
        let (Ok(id), Ok(user)) = (EventId::from_hex(&job.id), PublicKey::from_hex(&job.user))
        else {
            tracing::error!(job = %job.id, "unreadable job record");
            continue;
        };
        let vm = vms.iter().find(|h| h.job.0 == job.id).map(|h| h.id.clone());
        tracing::info!(job = %job.id, state = job.state.as_str(), "ending job left unfinished by a previous run");
        let word = match shared.store.guest_of(&job.id).await {
            Ok(Some(guest)) => match PublicKey::from_hex(&guest) {
                Ok(guest) => guest_word(shared, &id, job.kind, &guest).await,
                Err(_) => None,
            },
            _ => None,
        };
        match word {
            Some(Progress::Result(outcome)) => {
                let (state, status, info) = match outcome {
                    Some(PublicOutcome::Error(class)) => (
                        JobState::Failed,
                        FeedbackStatus::Error,
                        format!("the job failed in the guest ({class}); VM destroyed"),
                    ),
                    _ => (
                        JobState::Succeeded,
                        FeedbackStatus::Success,
                        "result delivered to the user; VM destroyed".to_string(),
                    ),
                };
                tracing::info!(job = %job.id, "the guest's result was found on the relays");
                end_job(shared, id, user, state, status, &info, vm.as_ref()).await;
            }
            Some(Progress::Error(info)) => {
                fail_job(
                    shared,
                    id,
                    user,
                    vm.as_ref(),
                    &format!("the guest reported an error: {info}; VM destroyed"),
                )
                .await;
            }
            Some(Progress::Running(_)) | None => {
                fail_job(
                    shared,
                    id,
                    user,
                    vm.as_ref(),
                    "the orchestrator restarted before the job finished; VM destroyed",
                )
                .await;
            }
        }
    }
}

/// The attested guest's last word on the relays about job `id`: a result, else an error, else
/// that it was running (ignored: the job cannot be followed any more).
async fn guest_word(
    shared: &Shared,
    id: &EventId,
    kind: u16,
    guest: &PublicKey,
) -> Option<Progress> {
    let mut kinds = vec![Kind::from(cdvm_protocol::kinds::JOB_FEEDBACK)];
    if let Some(k) = cdvm_protocol::kinds::result_kind(kind) {
        kinds.push(Kind::from(k));
    }
    let filter = Filter::new().author(*guest).event(*id).kinds(kinds);
    let events = match shared.client.fetch_events(filter, RECOVERY_FETCH).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "cannot ask the relays for the guest's result");
            return None;
        }
    };
    let mut error = None;
    for e in events.iter() {
        match progress_of(e, guest, id, kind) {
            Some(p @ Progress::Result(_)) => return Some(p),
            Some(p @ Progress::Error(_)) => error = Some(p),
            _ => {}
        }
    }
    error
}

/// Destroys every VM with our owner tag whose job is not live in this process.
pub(crate) async fn destroy_orphans(shared: &Shared) {
    let vms = match shared.provider.list(&shared.owner).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "reconciler could not list VMs");
            return;
        }
    };
    for vm in vms {
        if !shared.is_live(&vm.job.0) {
            tracing::warn!(vm = %vm.id, job = %vm.job, "destroying orphan VM");
            destroy_vm(shared, &vm.job.0, &vm.id).await;
        }
    }
}
