//! The daemon's main loop: connect, recover, reconcile, announce, then route relay events to
//! intake and to the live jobs until shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdvm_protocol::nostr::{
    Event, EventId, Filter, JsonUtil, Keys, Kind, PublicKey, Timestamp, ToBech32,
};
use cdvm_protocol::{kinds, FeedbackStatus, HandlerInfo, JobFeedback, TeeKind};
use cdvm_provider_api::{OwnerTag, Provider};
use nostr_sdk::{Client, RelayPoolNotification};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::intake::{self, Action, RateLimiter};
use crate::refusals::Refusals;
use crate::store::{JobState, JobStore, Store};
use crate::{job, keyfile, provider, reconcile};

/// A failure that stops the daemon (per-job failures never do).
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The state folder or key file could not be set up.
    #[error("state: {0}")]
    State(#[source] std::io::Error),
    /// The job store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The provider could not be built.
    #[error(transparent)]
    Provider(#[from] cdvm_provider_api::ProviderError),
    /// The guest policy could not be loaded.
    #[error("guest policy: {0}")]
    GuestPolicy(#[source] cdvm_attestation::policy::PolicyError),
    /// A relay URL is invalid or no relay could be used.
    #[error("relays: {0}")]
    Relay(String),
    /// The model manifest named by the config cannot be read.
    #[error("model manifest {path}: {reason}")]
    Models {
        /// The manifest.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// What every job task shares.
pub(crate) struct Shared {
    pub cfg: Config,
    pub keys: Keys,
    pub client: Client,
    /// The job store (the seam: [`JobStore`]).
    pub store: Box<dyn JobStore>,
    pub provider: Arc<dyn Provider>,
    pub owner: OwnerTag,
    /// Which attestations the orchestrator believes when choosing the guest key to follow: the
    /// policy for the evidence's TEE (none: the first attestation is followed unverified).
    pub guest_policies: Vec<cdvm_attestation::Policy>,
    /// The guest image's models, as announced.
    pub models: Vec<cdvm_protocol::rag::AnnouncedModel>,
    routes: Mutex<HashMap<EventId, mpsc::Sender<Event>>>,
    /// The signed requests of live jobs whose guest has not attested yet: republished to the
    /// relays every [`REPUBLISH_EVERY`], so a relay that restarted with empty memory has the
    /// request again when the guest fetches it by id (issue 16, fault 9).
    pending: Mutex<HashMap<EventId, Event>>,
}

/// How often the requests of jobs waiting for their guest are published again.
pub const REPUBLISH_EVERY: Duration = Duration::from_secs(5);

/// The models to announce: `announce.models`, else the process provider's model directory's
/// manifest, else none.
fn announced_models(
    cfg: &Config,
) -> Result<Vec<cdvm_protocol::rag::AnnouncedModel>, OrchestratorError> {
    let path = match (&cfg.announce.models, &cfg.provider) {
        (Some(p), _) => p.clone(),
        (
            None,
            crate::config::ProviderConfig::Process {
                models_dir: Some(dir),
                ..
            },
        ) => dir.join(cdvm_rag::models::MANIFEST),
        _ => return Ok(Vec::new()),
    };
    cdvm_rag::models::Manifest::load_file(&path)
        .map(|m| m.announced())
        .map_err(|e| OrchestratorError::Models {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

impl Shared {
    /// Publishes a kind-7000 feedback signed by the DVM key. Failures are logged, not fatal:
    /// the job's state is already in the store.
    pub async fn feedback(
        &self,
        request: EventId,
        user: cdvm_protocol::nostr::PublicKey,
        status: FeedbackStatus,
        info: &str,
    ) {
        let event = match JobFeedback::build(request, user, status, Some(info))
            .sign_with_keys(&self.keys)
        {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(job = %request, error = %e, "cannot sign feedback");
                return;
            }
        };
        if let Err(e) = self.client.send_event(&event).await {
            tracing::warn!(job = %request, error = %e, "feedback not delivered to any relay");
        }
    }

    /// Publishes a job's final feedback (recorded as owed by [`end_job`]) and, once a relay
    /// accepted it, records it sent.
    pub(crate) async fn publish_final(&self, job: &str, event: &Event) {
        match self.client.send_event(event).await {
            Ok(out) if !out.success.is_empty() => {
                if let Err(e) = self.store.mark_sent(job).await {
                    tracing::error!(job, error = %e, "final feedback sent but not recorded");
                }
            }
            Ok(out) => tracing::warn!(
                job,
                failed = ?out.failed,
                "final feedback accepted by no relay; it stays owed"
            ),
            Err(e) => {
                tracing::warn!(job, error = %e, "final feedback not delivered; it stays owed")
            }
        }
    }

    /// Publishes every final feedback a previous run recorded but did not see a relay accept.
    pub(crate) async fn publish_owed(&self) {
        let owed = match self.store.owed().await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "cannot read owed feedback");
                return;
            }
        };
        for (job, json) in owed {
            match Event::from_json(&json) {
                Ok(event) => {
                    tracing::info!(job = %job, "publishing a final feedback a previous run owed");
                    self.publish_final(&job, &event).await;
                }
                Err(e) => tracing::error!(job = %job, error = %e, "unreadable owed feedback"),
            }
        }
    }

    pub fn live_jobs(&self) -> usize {
        self.routes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_live(&self, job: &str) -> bool {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .any(|id| id.to_hex() == job)
    }

    fn route(&self, event: &Event) {
        let Some(target) = event.tags.event_ids().next().copied() else {
            return;
        };
        let tx = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&target)
            .cloned();
        if let Some(tx) = tx {
            // A full queue means a flood of events for one job; dropping extras is safe.
            let _ = tx.try_send(event.clone());
        }
    }

    pub fn unroute(&self, id: &EventId) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.attested(id);
    }

    /// The job's guest attested (or the job ended): its request need not be republished.
    pub fn attested(&self, id: &EventId) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Publishes every pending request again, each in its own task (a dead relay must not hold up
    /// the event loop). The user signed them; relays keep one copy.
    fn republish_pending(&self) {
        let pending: Vec<Event> = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        self.republish(pending);
    }

    fn republish(&self, requests: Vec<Event>) {
        for request in requests {
            let client = self.client.clone();
            tokio::spawn(async move {
                if let Err(e) = client.send_event(&request).await {
                    tracing::debug!(job = %request.id, error = %e, "republishing the request failed");
                }
            });
        }
    }
}

/// Runs the orchestrator until `shutdown` resolves; then fails every live job with an error
/// feedback, destroys its VM, and returns.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), OrchestratorError> {
    std::fs::create_dir_all(&cfg.state_dir).map_err(OrchestratorError::State)?;
    let keys =
        keyfile::load_or_create(&cfg.identity.secret_key_file).map_err(OrchestratorError::State)?;
    let store: Box<dyn JobStore> = Box::new(Store::open(&cfg.state_dir.join("jobs.sqlite"))?);
    let (provider, provider_policies) = provider::build(&cfg).await?;
    let paths = match &cfg.guest_policy {
        Some(path) => vec![path.clone()],
        None => provider_policies,
    };
    let guest_policies = paths
        .iter()
        .map(|p| cdvm_attestation::Policy::load(p).map_err(OrchestratorError::GuestPolicy))
        .collect::<Result<Vec<_>, _>>()?;
    if guest_policies.is_empty() {
        tracing::warn!(
            "no guest policy: the first attestation event for a job is followed unverified"
        );
    }
    let models = announced_models(&cfg)?;
    let client = Client::builder()
        .signer(keys.clone())
        .opts(nostr_sdk::ClientOptions::new().relay_limits(relay_limits()))
        .build();
    for relay in &cfg.relays {
        client
            .add_relay(relay.as_str())
            .await
            .map_err(|e| OrchestratorError::Relay(format!("{relay}: {e}")))?;
    }
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(10)).await;

    let shared = Arc::new(Shared {
        owner: OwnerTag(cfg.owner_tag.clone()),
        cfg,
        keys,
        client,
        store,
        provider,
        guest_policies,
        models,
        routes: Mutex::new(HashMap::new()),
        pending: Mutex::new(HashMap::new()),
    });
    let dvm = shared.keys.public_key();
    tracing::info!(dvm = %dvm, provider = shared.provider.name(), "orchestrator starting");
    crate::failpoint::announce();

    shared.publish_owed().await;
    reconcile::recover_unfinished(&shared).await;
    reconcile::destroy_orphans(&shared).await;
    announce(&shared).await;

    let mut notifications = shared.client.notifications();
    let subscriptions = subscriptions(dvm, &shared.cfg, Timestamp::now());
    for filter in subscriptions {
        shared
            .client
            .subscribe(filter, None)
            .await
            .map_err(|e| OrchestratorError::Relay(format!("subscribe: {e}")))?;
    }
    println!(
        "cdvm-orchestrator ready: dvm {}",
        dvm.to_bech32().unwrap_or_else(|_| dvm.to_hex())
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut limiter = RateLimiter::default();
    let refusals = Refusals::start(Arc::clone(&shared));
    let mut republish_tick = tokio::time::interval(REPUBLISH_EVERY);
    let mut reconcile_tick = tokio::time::interval(Duration::from_secs(
        shared.cfg.reconcile_interval_secs.max(1),
    ));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = republish_tick.tick() => shared.republish_pending(),
            _ = reconcile_tick.tick() => {
                reconcile::destroy_orphans(&shared).await;
                shared.publish_owed().await;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            n = notifications.recv() => match n {
                Ok(RelayPoolNotification::Event { event, .. }) => {
                    on_event(&shared, *event, &mut limiter, &refusals, &mut tasks, &stop_rx).await;
                }
                Ok(RelayPoolNotification::Shutdown) => {
                    tracing::error!("relay pool shut down");
                    break;
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "event queue overflowed; some events were skipped");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    tracing::info!(live = tasks.len(), "shutting down: ending live jobs");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    reconcile::destroy_orphans(&shared).await;
    shared.client.shutdown().await;
    Ok(())
}

/// What the daemon accepts from relays. The SDK's default drops events with more than 2,000
/// tags before any of our code sees them, so such a request got no answer at all (issue 16,
/// fault 8); the intake refuses them itself ([`crate::intake::MAX_REQUEST_TAGS`]), with an
/// error feedback. Sizes stay bounded by the relays and by the intake's `max_request_bytes`.
pub(crate) fn relay_limits() -> nostr_sdk::pool::RelayLimits {
    let mut limits = nostr_sdk::pool::RelayLimits::default();
    limits.events.max_num_tags = None;
    limits.events.max_num_tags_per_kind.clear();
    limits
}

/// The orchestrator's relay subscriptions (docs/protocol.md §6, checked against it by a test):
/// 1. requests addressed to it dated within `max_request_age_secs` (catch-up after a restart);
/// 2. the same filter without a date, `limit: 0`: every request arriving from now on whatever its
///    `created_at`, so a stale request is answered (with an error) rather than dropped unseen;
/// 3. from now on, the guest and result kinds of the jobs it serves, routed to the live jobs by
///    their `e` tag.
///
/// Requests of kinds it does not serve also match 1 and 2 (a `#p` filter has no kind): intake
/// answers those with an error feedback.
pub fn subscriptions(dvm: PublicKey, cfg: &Config, now: Timestamp) -> Vec<Filter> {
    let since = Timestamp::from(
        now.as_secs()
            .saturating_sub(cfg.limits.max_request_age_secs),
    );
    let mut guest_kinds: Vec<Kind> = cfg
        .jobs
        .kinds
        .iter()
        .filter_map(|k| kinds::result_kind(*k))
        .map(Kind::from)
        .collect();
    guest_kinds.extend([
        Kind::from(kinds::JOB_FEEDBACK),
        Kind::from(kinds::ATTESTATION),
    ]);
    vec![
        Filter::new().pubkey(dvm).since(since),
        Filter::new().pubkey(dvm).limit(0),
        Filter::new().kinds(guest_kinds).since(now),
    ]
}

async fn on_event(
    shared: &Arc<Shared>,
    event: Event,
    limiter: &mut RateLimiter,
    refusals: &Refusals,
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) {
    let kind = event.kind.as_u16();
    if !(kinds::JOB_REQUEST_MIN..=kinds::JOB_REQUEST_MAX).contains(&kind) {
        shared.route(&event);
        return;
    }
    let dvm = shared.keys.public_key();
    match intake::classify(&event, &dvm, &shared.cfg, shared.live_jobs(), limiter) {
        Action::Drop { why } => tracing::debug!(event = %event.id, why, "request dropped"),
        Action::Reject { event, reason } => {
            tracing::info!(job = %event.id, user = %event.pubkey, %reason, "request refused");
            // Queued, not awaited: refusals must not hold up the routing of guest events.
            refusals.submit(*event, reason);
        }
        Action::Accept(request) => {
            let id = request.id;
            match shared
                .store
                .insert_accepted(&id.to_hex(), &request.author.to_hex(), request.kind)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(job = %id, "request already known");
                    return;
                }
                Err(e) => {
                    // Without a durable record we must not launch anything.
                    tracing::error!(job = %id, error = %e, "cannot record job; refusing it");
                    refusals.submit(event, "internal error: job store unavailable".into());
                    return;
                }
            }
            let (tx, rx) = mpsc::channel(64);
            shared
                .routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, tx);
            // Kept (public) and published to every relay of ours until the guest attests.
            shared
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, event.clone());
            shared.republish(vec![event.clone()]);
            tracing::info!(job = %id, user = %request.author, kind = request.kind, "job accepted");
            let shared = Arc::clone(shared);
            let stop = stop.clone();
            tasks.spawn(async move { job::run(shared, *request, rx, stop).await });
        }
    }
}

async fn announce(shared: &Shared) {
    let info = HandlerInfo {
        name: shared.cfg.announce.name.clone(),
        about: shared.cfg.announce.about.clone(),
        kinds: shared.cfg.jobs.kinds.clone(),
        tees: shared
            .cfg
            .jobs
            .tees
            .iter()
            .filter_map(|t| TeeKind::parse(t))
            .collect(),
        image: shared.provider.guest_image().to_owned(),
        measurements: announced_measurements(&shared.guest_policies),
        simulated: shared
            .guest_policies
            .iter()
            .any(cdvm_attestation::Policy::trusts_simulated),
        blossom: shared.cfg.announce.blossom.clone(),
        max_input_bytes: shared
            .cfg
            .jobs
            .kinds
            .iter()
            .map(|&k| (k, shared.cfg.jobs.max_input_for(k)))
            .collect(),
        models: shared.models.clone(),
    };
    let signed = info
        .build(&shared.cfg.owner_tag)
        .map_err(|e| e.to_string())
        .and_then(|b| b.sign_with_keys(&shared.keys).map_err(|e| e.to_string()));
    let event = match signed {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build NIP-89 announcement");
            return;
        }
    };
    match shared.client.send_event(&event).await {
        Ok(_) => tracing::info!(event = %event.id, "NIP-89 announcement published"),
        Err(e) => tracing::warn!(error = %e, "NIP-89 announcement not published"),
    }
}

/// The launch measurements the guests will report: those the guest policy in force allows
/// (the provider's own development policy, or the configured one). Without a policy there is
/// nothing the operator vouches for, and the list is empty.
fn announced_measurements(policies: &[cdvm_attestation::Policy]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for policy in policies {
        for m in policy
            .measurements
            .iter()
            .map(|m| m.measurement.to_ascii_lowercase())
            .chain(
                policy
                    .tdx
                    .iter()
                    .flat_map(|t| t.mrtd.iter().map(|m| m.measurement.to_ascii_lowercase())),
            )
        {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// Marks a job failed, destroys its VM (if any) and tells the user why. Used by jobs, recovery and
/// shutdown alike, so every failure path ends the same way ([`end_job`]).
pub(crate) async fn fail_job(
    shared: &Shared,
    id: EventId,
    user: cdvm_protocol::nostr::PublicKey,
    vm: Option<&cdvm_provider_api::VmId>,
    reason: &str,
) {
    tracing::warn!(job = %id, %reason, "job failed");
    end_job(
        shared,
        id,
        user,
        JobState::Failed,
        FeedbackStatus::Error,
        reason,
        vm,
    )
    .await;
}

/// Ends a job the one way every path ends one: the terminal state and the signed feedback that
/// tells the user are stored together (the feedback as owed), the VM (if any) is destroyed, then
/// the feedback is published and marked sent. A crash anywhere leaves either the job unfinished
/// (recovery ends it) or its feedback owed (the next start publishes the same event).
pub(crate) async fn end_job(
    shared: &Shared,
    id: EventId,
    user: cdvm_protocol::nostr::PublicKey,
    state: JobState,
    status: FeedbackStatus,
    info: &str,
    vm: Option<&cdvm_provider_api::VmId>,
) {
    let hex = id.to_hex();
    let detail = (state == JobState::Failed).then_some(info);
    let event = JobFeedback::build(id, user, status, Some(info)).sign_with_keys(&shared.keys);
    let recorded = match &event {
        Ok(e) => shared.store.finish(&hex, state, detail, &e.as_json()).await,
        Err(e) => {
            tracing::error!(job = %id, error = %e, "cannot sign the final feedback");
            shared.store.transition(&hex, state, detail).await
        }
    };
    if let Err(e) = recorded {
        tracing::error!(job = %id, error = %e, "cannot record the job's end");
    }
    crate::failpoint::hit(crate::failpoint::points::AFTER_END_RECORDED);
    if let Some(vm) = vm {
        reconcile::destroy_vm(shared, &hex, vm).await;
    } else {
        let _ = shared.store.mark_destroyed(&hex).await;
    }
    if let Ok(event) = event {
        shared.publish_final(&hex, &event).await;
    }
}
