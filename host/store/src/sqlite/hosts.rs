//! `HostStore` for SQLite: one host per database (the home's lock file), so the registry
//! holds this host's row and recovery may take any leased task at start.

use super::SqliteStore;
use crate::cluster::{FORGET_HOSTS_AFTER_MS, FORGET_STOPPED_AFTER_MS};
use crate::rows::{host_from_row, HOST_COLUMNS};
use crate::task_state::sql::{guard_sql, status_in};
use crate::task_state::{Event, FINISHED, STARTED};
use crate::{Finish, HostRow, HostStore, StoreResult};
use rusqlite::params;
use std::sync::LazyLock;

/// The finish statement (see `tasks.rs`) with the recovery guards: the lease must still be
/// expired before `?15`, and the run still started or not as the decision read it (`?19`; a
/// `preparing` row whose start is in the start journal, `?20`, started).
static RECOVER_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
UPDATE s_tasks
   SET status = ?3, message = ?4, run_at = COALESCE(?5, run_at),
       finished_at = CASE WHEN {finished} THEN ?6 ELSE NULL END,
       last_error = COALESCE(?7, last_error), duration_ms = COALESCE(?8, duration_ms),
       progress = COALESCE(?9, progress), worker_version = COALESCE(?10, worker_version),
       result = COALESCE(?11, result), result_file = COALESCE(?12, result_file),
       processed = COALESCE(?13, processed), total = COALESCE(?14, total),
       cpu_ms = COALESCE(?16, cpu_ms),
       memory_bytes = CASE WHEN ?8 IS NULL THEN memory_bytes ELSE ?17 END,
       attempts = ?18,
       eta_seconds = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?6
 WHERE id = ?1 AND lease_token = ?2 AND {guard} AND lease_expires_at < ?15
   AND (?19 IS NULL OR ({started} OR ?20) = ?19)",
        finished = status_in("?3", FINISHED),
        guard = guard_sql(Event::Recover),
        started = status_in("status", STARTED),
    )
});

impl HostStore for SqliteStore {
    fn shared_by_hosts(&self) -> bool {
        false
    }

    fn upsert_host(&self, h: &HostRow) -> StoreResult<()> {
        let workers = serde_json::to_string(&h.workers).unwrap_or_else(|_| "[]".into());
        self.write(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                &self.sql(
                    "INSERT INTO s_hosts (name, version, started_at, last_heartbeat, busy_slots,
                        pool_size, workers, lease_ms, stopped_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                        last_heartbeat = excluded.last_heartbeat,
                        busy_slots = excluded.busy_slots, pool_size = excluded.pool_size,
                        workers = excluded.workers, lease_ms = excluded.lease_ms,
                        stopped_at = excluded.stopped_at",
                ),
                params![
                    h.name,
                    h.version,
                    h.started_at,
                    h.last_heartbeat,
                    h.busy_slots,
                    h.pool_size,
                    workers,
                    h.lease_ms,
                    h.stopped_at
                ],
            )?;
            tx.execute(
                &self.sql("DELETE FROM s_hosts WHERE last_heartbeat < ?1 OR stopped_at < ?2"),
                [
                    h.last_heartbeat - FORGET_HOSTS_AFTER_MS,
                    h.last_heartbeat - FORGET_STOPPED_AFTER_MS,
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn host_stopped(&self, name: &str, now: i64) -> StoreResult<()> {
        self.write(|conn| {
            conn.execute(
                &self.sql("UPDATE s_hosts SET stopped_at = ?2, busy_slots = 0 WHERE name = ?1"),
                params![name, now],
            )?;
            Ok(())
        })
    }

    fn hosts(&self) -> StoreResult<Vec<HostRow>> {
        self.read(|conn| {
            let sql = format!("SELECT {HOST_COLUMNS} FROM s_hosts ORDER BY started_at, name");
            conn.prepare_cached(&self.prefix.apply(&sql))?
                .query_and_then([], |r| host_from_row(r))?
                .collect()
        })
    }

    fn recover(&self, finishes: &[Finish], before: i64) -> StoreResult<Vec<bool>> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        // Read as `expired_leases` read it for the decisions (recovery runs at start, before
        // this process starts any run, so the ring is the same).
        let journal = if finishes.iter().any(|f| f.if_started.is_some()) {
            self.starts.read()?
        } else {
            Default::default()
        };
        self.write(|conn| {
            let tx = conn.transaction()?;
            let mut applied = Vec::with_capacity(finishes.len());
            {
                let mut stmt = tx.prepare_cached(&self.sql(&RECOVER_SQL))?;
                for f in finishes {
                    let n = stmt.execute(params![
                        f.id,
                        f.lease_token,
                        f.status.code(),
                        f.message,
                        f.run_at,
                        f.at,
                        f.last_error,
                        f.duration_ms,
                        f.progress,
                        f.worker_version,
                        f.result,
                        f.result_file,
                        f.processed,
                        f.total,
                        before,
                        f.cpu_ms,
                        f.memory_bytes,
                        f.attempts,
                        f.if_started,
                        journal.contains(&f.lease()),
                    ])?;
                    applied.push(n == 1);
                }
            }
            tx.commit()?;
            Ok(applied)
        })
    }
}
