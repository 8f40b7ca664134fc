//! The shared conformance suite every [`Provider`] backend runs against itself.
//!
//! A backend's test calls [`run`] with a provider and a factory for specs; each check panics with
//! a message naming the broken rule of the `Provider` contract.

use crate::{Bootstrap, JobTag, OwnerTag, Provider, VmClass, VmSpec, VmState};

/// Makes a spec for the given owner and job tag (the backend decides class, TEE and bootstrap).
pub type SpecFactory<'a> = &'a (dyn Fn(&OwnerTag, &JobTag) -> VmSpec + Sync);

/// A spec for suite runs: 1 vCPU, 256 MiB, `sev-snp`, and a bootstrap that names the job and an
/// unreachable relay (the suite checks the VM lifecycle, not the guest).
pub fn sample_spec(owner: &OwnerTag, job: &JobTag) -> VmSpec {
    VmSpec {
        owner: owner.clone(),
        job: job.clone(),
        class: VmClass {
            vcpus: 1,
            memory_mib: 256,
        },
        tee: "sev-snp".into(),
        bootstrap: Bootstrap {
            request_id: job.0.clone(),
            relays: vec!["ws://127.0.0.1:9".into()],
            input_timeout_secs: 5,
            run_timeout_secs: 5,
            max_input_bytes: 1 << 20,
        },
    }
}

/// Runs every conformance check. Uses owner tags derived from `prefix`, so runs do not collide.
pub async fn run(provider: &dyn Provider, prefix: &str, make_spec: SpecFactory<'_>) {
    launch_tags_and_lists(provider, prefix, make_spec).await;
    launch_is_idempotent_per_job(provider, prefix, make_spec).await;
    owners_are_isolated(provider, prefix, make_spec).await;
    destroy_is_final_and_idempotent(provider, prefix, make_spec).await;
    unknown_vm_is_gone(provider).await;
}

fn tags(prefix: &str, case: &str, job: &str) -> (OwnerTag, JobTag) {
    (
        OwnerTag(format!("{prefix}-{case}")),
        JobTag(format!("{job:0>64}")),
    )
}

async fn launch_tags_and_lists(p: &dyn Provider, prefix: &str, make: SpecFactory<'_>) {
    let (owner, job) = tags(prefix, "tags", "a1");
    let vm = p
        .launch(&make(&owner, &job))
        .await
        .expect("launch must succeed");
    assert_eq!(
        vm.owner,
        owner,
        "{}: handle must carry the owner tag",
        p.name()
    );
    assert_eq!(vm.job, job, "{}: handle must carry the job tag", p.name());
    let state = p.status(&vm.id).await.expect("status");
    assert_ne!(
        state,
        VmState::Gone,
        "{}: a launched VM must not be Gone",
        p.name()
    );
    let listed = p.list(&owner).await.expect("list");
    assert!(
        listed.iter().any(|h| h.id == vm.id && h.job == job),
        "{}: list(owner) must return the launched VM with its job tag",
        p.name()
    );
    p.destroy(&vm.id).await.expect("destroy");
}

async fn launch_is_idempotent_per_job(p: &dyn Provider, prefix: &str, make: SpecFactory<'_>) {
    let (owner, job) = tags(prefix, "idem", "b2");
    let spec = make(&owner, &job);
    let first = p.launch(&spec).await.expect("launch");
    let second = p.launch(&spec).await.expect("second launch");
    assert_eq!(
        first.id,
        second.id,
        "{}: a retried launch must not make a second VM",
        p.name()
    );
    let listed = p.list(&owner).await.expect("list");
    assert_eq!(listed.len(), 1, "{}: one job, one VM", p.name());
    p.destroy(&first.id).await.expect("destroy");
}

async fn owners_are_isolated(p: &dyn Provider, prefix: &str, make: SpecFactory<'_>) {
    let (owner_a, job_a) = tags(prefix, "iso-a", "c3");
    let (owner_b, job_b) = tags(prefix, "iso-b", "c4");
    let a = p.launch(&make(&owner_a, &job_a)).await.expect("launch a");
    let b = p.launch(&make(&owner_b, &job_b)).await.expect("launch b");
    assert_ne!(a.id, b.id, "{}: two jobs must get two VMs", p.name());
    let listed = p.list(&owner_a).await.expect("list");
    assert!(
        listed.iter().all(|h| h.owner == owner_a),
        "{}: list(owner) must return only that owner's VMs",
        p.name()
    );
    assert!(
        !listed.iter().any(|h| h.id == b.id),
        "{}: another owner's VM leaked into list",
        p.name()
    );
    p.destroy(&a.id).await.expect("destroy a");
    p.destroy(&b.id).await.expect("destroy b");
}

async fn destroy_is_final_and_idempotent(p: &dyn Provider, prefix: &str, make: SpecFactory<'_>) {
    let (owner, job) = tags(prefix, "destroy", "d5");
    let vm = p.launch(&make(&owner, &job)).await.expect("launch");
    p.destroy(&vm.id).await.expect("destroy");
    assert_eq!(
        p.status(&vm.id).await.expect("status"),
        VmState::Gone,
        "{}: a destroyed VM must be Gone",
        p.name()
    );
    assert!(
        p.list(&owner).await.expect("list").is_empty(),
        "{}: a destroyed VM must not be listed",
        p.name()
    );
    p.destroy(&vm.id)
        .await
        .expect("destroying twice must succeed");
}

async fn unknown_vm_is_gone(p: &dyn Provider) {
    let id = crate::VmId("cdvm-conformance-no-such-vm".into());
    assert_eq!(
        p.status(&id).await.expect("status"),
        VmState::Gone,
        "{}: unknown VM must be Gone",
        p.name()
    );
    p.destroy(&id)
        .await
        .expect("destroying an unknown VM must succeed");
}
