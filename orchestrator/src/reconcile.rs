//! Cleanup that does not trust memory: recovery of jobs a previous run left unfinished, and the
//! reconciler that destroys every VM carrying our owner tag that no live job owns.

use cdvm_protocol::nostr::{EventId, PublicKey};
use cdvm_provider_api::VmId;

use crate::runtime::{fail_job, Shared};

/// Destroys a job's VM, retrying a few times, and records it. A VM that still cannot be destroyed
/// stays listed under our owner tag, so the periodic reconciler keeps trying.
pub(crate) async fn destroy_vm(shared: &Shared, job: &str, vm: &VmId) {
    for attempt in 1..=3u32 {
        match shared.provider.destroy(vm).await {
            Ok(()) => {
                if let Err(e) = shared.store.mark_destroyed(job) {
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

/// Jobs a previous run left unfinished are not resumed (their deadlines and event routes died with
/// that run): end each with an error feedback and destroy its VM, so every accepted job ends.
pub(crate) async fn recover_unfinished(shared: &Shared) {
    let jobs = match shared.store.unfinished() {
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
