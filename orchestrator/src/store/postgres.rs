//! The PostgreSQL job store, for several orchestrator replicas sharing one database (issue 16).
//! The same tables as the SQLite store, with a sequence for order; every multi-row step is one
//! transaction. Intake is idempotent across replicas: the request id is the key, so two replicas
//! that see the same request record it once and only one of them launches (the one whose
//! `insert_accepted` returned true).
//!
//! Not here yet: leases and fenced writes, and the leader-elected rescuer (docs/ARCHITECTURE.md
//! names what a replica set still needs).

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::{JobRecord, JobState, JobStore, StoreError};

/// Creates the tables once, under an advisory lock so two replicas starting together do not race
/// on the catalog.
const SCHEMA: &str = "
    SELECT pg_advisory_xact_lock(7265676);
    CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        user_key TEXT NOT NULL,
        kind INTEGER NOT NULL,
        state TEXT NOT NULL,
        vm_id TEXT,
        vm_destroyed BOOLEAN NOT NULL DEFAULT FALSE,
        detail TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        seq BIGSERIAL
    );
    CREATE TABLE IF NOT EXISTS transitions (
        seq BIGSERIAL PRIMARY KEY,
        job TEXT NOT NULL,
        state TEXT NOT NULL,
        at BIGINT NOT NULL,
        detail TEXT
    );
    CREATE INDEX IF NOT EXISTS transitions_job ON transitions (job);
    CREATE TABLE IF NOT EXISTS outbox (
        job TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        sent BOOLEAN NOT NULL DEFAULT FALSE,
        seq BIGSERIAL
    );
";

const JOB_COLUMNS: &str = "id, user_key, kind, state, vm_id, vm_destroyed, detail";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A job store on a PostgreSQL database.
#[derive(Debug)]
pub struct PgStore {
    client: Mutex<Client>,
}

fn record(row: &tokio_postgres::Row) -> Result<JobRecord, StoreError> {
    let id: String = row.try_get(0)?;
    let state: String = row.try_get(3)?;
    let kind: i32 = row.try_get(2)?;
    Ok(JobRecord {
        state: JobState::parse(&state).ok_or_else(|| StoreError::Corrupt(id.clone()))?,
        kind: u16::try_from(kind).map_err(|_| StoreError::Corrupt(id.clone()))?,
        user: row.try_get(1)?,
        vm_id: row.try_get(4)?,
        vm_destroyed: row.try_get(5)?,
        detail: row.try_get(6)?,
        id,
    })
}

impl PgStore {
    /// Connects to `url` (a libpq connection string or URL; TLS is not used: run the database on
    /// the replicas' private network or a local socket) and creates the tables if missing.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (mut client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!(error = %e, "job store connection to PostgreSQL lost");
            }
        });
        let tx = client.transaction().await?;
        tx.batch_execute(SCHEMA).await?;
        tx.commit().await?;
        Ok(Self {
            client: Mutex::new(client),
        })
    }
}

impl PgStore {
    /// One transaction: the job's new state, its transition row, and (ending it) the owed
    /// feedback.
    async fn step(
        &self,
        id: &str,
        state: JobState,
        detail: Option<&str>,
        owed: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut c = self.client.lock().await;
        let tx = c.transaction().await?;
        let t = now();
        tx.execute(
            "UPDATE jobs SET state = $2, detail = COALESCE($3, detail), updated_at = $4 WHERE id = $1",
            &[&id, &state.as_str(), &detail, &t],
        )
        .await?;
        tx.execute(
            "INSERT INTO transitions (job, state, at, detail) VALUES ($1, $2, $3, $4)",
            &[&id, &state.as_str(), &t, &detail],
        )
        .await?;
        if let Some(event) = owed {
            tx.execute(
                "INSERT INTO outbox (job, event, sent) VALUES ($1, $2, FALSE)
                 ON CONFLICT (job) DO UPDATE SET event = EXCLUDED.event, sent = FALSE",
                &[&id, &event],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl JobStore for PgStore {
    async fn insert_accepted(&self, id: &str, user: &str, kind: u16) -> Result<bool, StoreError> {
        let mut c = self.client.lock().await;
        let tx = c.transaction().await?;
        let t = now();
        let n = tx
            .execute(
                "INSERT INTO jobs (id, user_key, kind, state, created_at, updated_at)
                 VALUES ($1, $2, $3, 'accepted', $4, $4) ON CONFLICT (id) DO NOTHING",
                &[&id, &user, &i32::from(kind), &t],
            )
            .await?;
        if n == 1 {
            tx.execute(
                "INSERT INTO transitions (job, state, at) VALUES ($1, 'accepted', $2)",
                &[&id, &t],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn transition(
        &self,
        id: &str,
        state: JobState,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.step(id, state, detail, None).await
    }

    async fn finish(
        &self,
        id: &str,
        state: JobState,
        detail: Option<&str>,
        event: &str,
    ) -> Result<(), StoreError> {
        self.step(id, state, detail, Some(event)).await
    }

    async fn mark_sent(&self, id: &str) -> Result<(), StoreError> {
        let c = self.client.lock().await;
        c.execute("UPDATE outbox SET sent = TRUE WHERE job = $1", &[&id])
            .await?;
        Ok(())
    }

    async fn owed(&self) -> Result<Vec<(String, String)>, StoreError> {
        let c = self.client.lock().await;
        let rows = c
            .query(
                "SELECT job, event FROM outbox WHERE NOT sent ORDER BY seq",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn final_feedback(&self, id: &str) -> Result<Option<(String, bool)>, StoreError> {
        let c = self.client.lock().await;
        let row = c
            .query_opt("SELECT event, sent FROM outbox WHERE job = $1", &[&id])
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    async fn guest_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        let c = self.client.lock().await;
        let row = c
            .query_opt(
                "SELECT detail FROM transitions WHERE job = $1 AND state = 'attested'
                 ORDER BY seq DESC LIMIT 1",
                &[&id],
            )
            .await?;
        let detail: Option<String> = match row {
            Some(r) => r.try_get(0)?,
            None => None,
        };
        Ok(detail.and_then(|d| d.strip_prefix("guest ").map(str::to_string)))
    }

    async fn set_vm(&self, id: &str, vm_id: &str) -> Result<(), StoreError> {
        let c = self.client.lock().await;
        c.execute(
            "UPDATE jobs SET vm_id = $2, updated_at = $3 WHERE id = $1",
            &[&id, &vm_id, &now()],
        )
        .await?;
        Ok(())
    }

    async fn mark_destroyed(&self, id: &str) -> Result<(), StoreError> {
        let c = self.client.lock().await;
        c.execute(
            "UPDATE jobs SET vm_destroyed = TRUE, updated_at = $2 WHERE id = $1",
            &[&id, &now()],
        )
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let c = self.client.lock().await;
        let row = c
            .query_opt(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
                &[&id],
            )
            .await?;
        row.as_ref().map(record).transpose()
    }

    async fn unfinished(&self) -> Result<Vec<JobRecord>, StoreError> {
        let c = self.client.lock().await;
        let rows = c
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE state NOT IN ('succeeded', 'failed')
                     ORDER BY created_at, seq"
                ),
                &[],
            )
            .await?;
        rows.iter().map(record).collect()
    }

    async fn history(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let c = self.client.lock().await;
        let rows = c
            .query(
                "SELECT state FROM transitions WHERE job = $1 ORDER BY seq",
                &[&id],
            )
            .await?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(StoreError::from))
            .collect()
    }
}
