//! The durable job store. Every transition is written here *before* its side
//! effect, so a crash at any point leaves enough to clean up: a job in `launching` may own a VM
//! (found by its job tag), and no VM exists for a job that was never recorded.
//!
//! Only public data is stored: request ids, user public keys, VM ids, states, reasons and the
//! signed final feedback events.
//!
//! [`JobStore`] is the seam: one implementation per engine ([`Store`], embedded SQLite, the
//! default; `PgStore`, PostgreSQL, with the `store-postgres` feature), every one checked by the
//! same [`conformance`] suite.

use async_trait::async_trait;

pub mod conformance;
#[cfg(feature = "store-postgres")]
mod postgres;
mod sqlite;

#[cfg(feature = "store-postgres")]
pub use postgres::PgStore;
pub use sqlite::Store;

/// A job's stage. Terminal stages are `Succeeded` and `Failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Validated and recorded; no VM yet.
    Accepted,
    /// A launch was requested (a VM may exist from here on).
    Launching,
    /// The VM exists; waiting for the guest's attestation.
    Booted,
    /// The guest attested; waiting for the user's input to reach it.
    Attested,
    /// The guest has the input and runs the job.
    Running,
    /// The result was published and the VM destroyed.
    Succeeded,
    /// The job ended with an error feedback.
    Failed,
}

impl JobState {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Accepted => "accepted",
            JobState::Launching => "launching",
            JobState::Booted => "booted",
            JobState::Attested => "attested",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }

    /// The stage a stored name denotes.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "accepted" => JobState::Accepted,
            "launching" => JobState::Launching,
            "booted" => JobState::Booted,
            "attested" => JobState::Attested,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            _ => return None,
        })
    }

    /// True for stages after which nothing more happens.
    pub fn is_terminal(&self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }
}

/// One stored job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    /// Request event id (hex).
    pub id: String,
    /// User public key (hex).
    pub user: String,
    /// Request kind.
    pub kind: u16,
    /// Stage.
    pub state: JobState,
    /// Provider VM id, once launched.
    pub vm_id: Option<String>,
    /// Whether the VM (if any) is known destroyed.
    pub vm_destroyed: bool,
    /// Failure reason or last detail.
    pub detail: Option<String>,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("job store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// PostgreSQL failed (or the connection to it).
    #[cfg(feature = "store-postgres")]
    #[error("job store (PostgreSQL)")]
    Postgres(#[from] tokio_postgres::Error),
    /// A row holds a value this version does not know.
    #[error("job store: corrupt row for job {0}")]
    Corrupt(String),
}

/// What the orchestrator needs of a job store. Every method is one durable step: it returns
/// after the change is committed, so the caller may then perform the side effect that follows.
#[async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Records a newly accepted job; false if it was already known (relays resend).
    async fn insert_accepted(&self, id: &str, user: &str, kind: u16) -> Result<bool, StoreError>;
    /// Moves a job to `state`, with an optional detail.
    async fn transition(
        &self,
        id: &str,
        state: JobState,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Ends a job (terminal `state`) and records its final feedback `event` as owed, atomically.
    async fn finish(
        &self,
        id: &str,
        state: JobState,
        detail: Option<&str>,
        event: &str,
    ) -> Result<(), StoreError>;
    /// Records that a job's final feedback reached a relay.
    async fn mark_sent(&self, id: &str) -> Result<(), StoreError>;
    /// Final feedback recorded but not confirmed sent: (job, event JSON), oldest first.
    async fn owed(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// A job's final feedback (JSON) and whether it was sent.
    async fn final_feedback(&self, id: &str) -> Result<Option<(String, bool)>, StoreError>;
    /// The guest key (hex) the job's attestation named, if it attested.
    async fn guest_of(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Records the VM a job got.
    async fn set_vm(&self, id: &str, vm_id: &str) -> Result<(), StoreError>;
    /// Records that the job's VM is destroyed.
    async fn mark_destroyed(&self, id: &str) -> Result<(), StoreError>;
    /// One job.
    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// Jobs not yet in a terminal stage, oldest first.
    async fn unfinished(&self) -> Result<Vec<JobRecord>, StoreError>;
    /// The ordered stage names a job went through.
    async fn history(&self, id: &str) -> Result<Vec<String>, StoreError>;
}
