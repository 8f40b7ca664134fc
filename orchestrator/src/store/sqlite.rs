//! The embedded job store: one SQLite file (WAL, `synchronous=FULL`), for one orchestrator
//! replica. The default; see [`super`] for the contract every store keeps.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{JobRecord, JobState, JobStore, StoreError};

/// The SQLite-backed store.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the store file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // WAL + full sync: a transition is on disk before the side effect that follows it.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY,
                user TEXT NOT NULL,
                kind INTEGER NOT NULL,
                state TEXT NOT NULL,
                vm_id TEXT,
                vm_destroyed INTEGER NOT NULL DEFAULT 0,
                detail TEXT,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS transitions (
                job TEXT NOT NULL,
                state TEXT NOT NULL,
                at INTEGER NOT NULL,
                detail TEXT
            );
            CREATE TABLE IF NOT EXISTS outbox (
                job TEXT PRIMARY KEY,
                event TEXT NOT NULL,
                sent INTEGER NOT NULL DEFAULT 0
            );",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a newly accepted job. Returns false if the job was already known (relays resend).
    pub fn insert_accepted(&self, id: &str, user: &str, kind: u16) -> Result<bool, StoreError> {
        let conn = self.conn();
        let t = now();
        let n = conn.execute(
            "INSERT OR IGNORE INTO jobs (id, user, kind, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'accepted', ?4, ?4)",
            params![id, user, kind, t],
        )?;
        if n == 1 {
            conn.execute(
                "INSERT INTO transitions (job, state, at) VALUES (?1, 'accepted', ?2)",
                params![id, t],
            )?;
        }
        Ok(n == 1)
    }

    /// Moves a job to `state`, with an optional detail.
    pub fn transition(
        &self,
        id: &str,
        state: JobState,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.step(id, state, detail, None)
    }

    /// Ends a job: moves it to the terminal `state` and records the signed feedback event that
    /// tells the user (`event`, public JSON) as owed, in one transaction. The caller publishes it
    /// and then calls [`Store::mark_sent`]; a crash in between leaves it owed, and the next start
    /// publishes it again ([`Store::owed`]): every ended job gets its answer (issue 16, fault 2).
    pub fn finish(
        &self,
        id: &str,
        state: JobState,
        detail: Option<&str>,
        event: &str,
    ) -> Result<(), StoreError> {
        debug_assert!(state.is_terminal());
        self.step(id, state, detail, Some(event))
    }

    /// One transaction: the job's new state, its transition row, and (ending it) the owed
    /// feedback.
    fn step(
        &self,
        id: &str,
        state: JobState,
        detail: Option<&str>,
        owed: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let t = now();
        tx.execute(
            "UPDATE jobs SET state = ?2, detail = COALESCE(?3, detail), updated_at = ?4 WHERE id = ?1",
            params![id, state.as_str(), detail, t],
        )?;
        tx.execute(
            "INSERT INTO transitions (job, state, at, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id, state.as_str(), t, detail],
        )?;
        if let Some(event) = owed {
            tx.execute(
                "INSERT OR REPLACE INTO outbox (job, event, sent) VALUES (?1, ?2, 0)",
                params![id, event],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records that a job's final feedback reached a relay.
    pub fn mark_sent(&self, id: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("UPDATE outbox SET sent = 1 WHERE job = ?1", params![id])?;
        Ok(())
    }

    /// Final feedback events recorded but not yet confirmed sent: (job, event JSON).
    pub fn owed(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT job, event FROM outbox WHERE sent = 0 ORDER BY rowid")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The final feedback recorded for a job (JSON) and whether it was sent.
    pub fn final_feedback(&self, id: &str) -> Result<Option<(String, bool)>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT event, sent FROM outbox WHERE job = ?1",
                params![id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0)),
            )
            .optional()?)
    }

    /// The guest key a job's attestation named (hex), if it got that far: the `attested`
    /// transition records it.
    pub fn guest_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        let detail: Option<Option<String>> = self
            .conn()
            .query_row(
                "SELECT detail FROM transitions WHERE job = ?1 AND state = 'attested' ORDER BY rowid DESC LIMIT 1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(detail
            .flatten()
            .and_then(|d| d.strip_prefix("guest ").map(str::to_string)))
    }

    /// Records the VM a job got.
    pub fn set_vm(&self, id: &str, vm_id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET vm_id = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, vm_id, now()],
        )?;
        Ok(())
    }

    /// Records that the job's VM is destroyed.
    pub fn mark_destroyed(&self, id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET vm_destroyed = 1, updated_at = ?2 WHERE id = ?1",
            params![id, now()],
        )?;
        Ok(())
    }

    /// One job.
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT id, user, kind, state, vm_id, vm_destroyed, detail FROM jobs WHERE id = ?1",
                params![id],
                row_tuple,
            )
            .optional()?;
        row.map(to_record).transpose()
    }

    /// Jobs not yet in a terminal stage.
    pub fn unfinished(&self) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, user, kind, state, vm_id, vm_destroyed, detail FROM jobs
             WHERE state NOT IN ('succeeded', 'failed') ORDER BY created_at, rowid",
        )?;
        let rows = stmt
            .query_map([], row_tuple)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(to_record).collect()
    }

    /// The ordered stage names a job went through (for tests and audits).
    pub fn history(&self, id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT state FROM transitions WHERE job = ?1 ORDER BY rowid")?;
        let rows = stmt
            .query_map(params![id], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

type Row = (
    String,
    String,
    u16,
    String,
    Option<String>,
    bool,
    Option<String>,
);

fn row_tuple(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn to_record(row: Row) -> Result<JobRecord, StoreError> {
    let (id, user, kind, state, vm_id, vm_destroyed, detail) = row;
    let state = JobState::parse(&state).ok_or_else(|| StoreError::Corrupt(id.clone()))?;
    Ok(JobRecord {
        id,
        user,
        kind,
        state,
        vm_id,
        vm_destroyed,
        detail,
    })
}

#[async_trait::async_trait]
impl JobStore for Store {
    async fn insert_accepted(&self, id: &str, user: &str, kind: u16) -> Result<bool, StoreError> {
        Store::insert_accepted(self, id, user, kind)
    }
    async fn transition(
        &self,
        id: &str,
        state: JobState,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        Store::transition(self, id, state, detail)
    }
    async fn finish(
        &self,
        id: &str,
        state: JobState,
        detail: Option<&str>,
        event: &str,
    ) -> Result<(), StoreError> {
        Store::finish(self, id, state, detail, event)
    }
    async fn mark_sent(&self, id: &str) -> Result<(), StoreError> {
        Store::mark_sent(self, id)
    }
    async fn owed(&self) -> Result<Vec<(String, String)>, StoreError> {
        Store::owed(self)
    }
    async fn final_feedback(&self, id: &str) -> Result<Option<(String, bool)>, StoreError> {
        Store::final_feedback(self, id)
    }
    async fn guest_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        Store::guest_of(self, id)
    }
    async fn set_vm(&self, id: &str, vm_id: &str) -> Result<(), StoreError> {
        Store::set_vm(self, id, vm_id)
    }
    async fn mark_destroyed(&self, id: &str) -> Result<(), StoreError> {
        Store::mark_destroyed(self, id)
    }
    async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        Store::get(self, id)
    }
    async fn unfinished(&self) -> Result<Vec<JobRecord>, StoreError> {
        Store::unfinished(self)
    }
    async fn history(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Store::history(self, id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn transitions_survive_reopen_and_dedupe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.sqlite");
        {
            let s = Store::open(&path).unwrap();
            assert!(s.insert_accepted("aa", "u1", 5970).unwrap());
            assert!(
                !s.insert_accepted("aa", "u1", 5970).unwrap(),
                "a resent request is not a new job"
            );
            s.transition("aa", JobState::Launching, None).unwrap();
            s.set_vm("aa", "vm-1").unwrap();
            s.transition("aa", JobState::Booted, None).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let job = s.get("aa").unwrap().unwrap();
        assert_eq!(job.state, JobState::Booted);
        assert_eq!(job.vm_id.as_deref(), Some("vm-1"));
        assert!(!job.vm_destroyed);
        assert_eq!(s.unfinished().unwrap().len(), 1);
        s.transition("aa", JobState::Failed, Some("boom")).unwrap();
        s.mark_destroyed("aa").unwrap();
        assert!(s.unfinished().unwrap().is_empty());
        assert_eq!(
            s.history("aa").unwrap(),
            ["accepted", "launching", "booted", "failed"]
        );
        assert_eq!(
            s.get("aa").unwrap().unwrap().detail.as_deref(),
            Some("boom")
        );
    }
}
