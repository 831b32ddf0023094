//! `HostStore` for MySQL: the hosts registry, guarded recovery, and the poller's hooks.

use super::tasks::apply_finishes;
use super::{params, MysqlStore};
use crate::cluster::{FORGET_HOSTS_AFTER_MS, FORGET_STOPPED_AFTER_MS};
use crate::rows::{host_from_row, HOST_COLUMNS};
use crate::{EventsHook, Finish, HostRow, HostStore, StoreResult, WakeHook};
use mysql::prelude::Queryable;

/// Events older than this are deleted when a host sends new ones: every poller has read them
/// long before (it polls every few milliseconds).
const KEEP_EVENTS_MS: i64 = 60_000;

impl HostStore for MysqlStore {
    fn shared_by_hosts(&self) -> bool {
        true
    }

    fn database_clock_ms(&self) -> StoreResult<Option<i64>> {
        // `SYSDATE(3)`, not `NOW(3)`: the time of this read, not of the statement's start.
        // The session's time zone is UTC (set at connect), so the epoch is the server's.
        let ms: Option<i64> = self
            .conn()?
            .query_first("SELECT CAST(ROUND(UNIX_TIMESTAMP(SYSDATE(3)) * 1000) AS SIGNED)")?;
        Ok(ms)
    }

    fn upsert_host(&self, h: &HostRow) -> StoreResult<()> {
        let workers = serde_json::to_string(&h.workers).unwrap_or_else(|_| "[]".into());
        // Retried: hosts starting together register at once, and the clean-up scan of one can
        // deadlock with the insert of another.
        self.retrying(|tx| {
            // `VALUES(col)`: understood by MariaDB and MySQL alike.
            tx.exec_drop(
                &*self.sql(
                    "INSERT INTO s_hosts (name, version, started_at, last_heartbeat, busy_slots,
                            pool_size, workers, lease_ms, stopped_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                     ON DUPLICATE KEY UPDATE version = VALUES(version),
                            last_heartbeat = VALUES(last_heartbeat),
                            busy_slots = VALUES(busy_slots), pool_size = VALUES(pool_size),
                            workers = VALUES(workers), lease_ms = VALUES(lease_ms),
                            stopped_at = VALUES(stopped_at)",
                ),
                params![
                    h.name.as_str(),
                    h.version.as_str(),
                    h.started_at,
                    h.last_heartbeat,
                    h.busy_slots,
                    h.pool_size,
                    workers.as_str(),
                    h.lease_ms,
                    h.stopped_at,
                ],
            )?;
            tx.exec_drop(
                &*self.sql("DELETE FROM s_hosts WHERE last_heartbeat < ? OR stopped_at < ?"),
                params![
                    h.last_heartbeat - FORGET_HOSTS_AFTER_MS,
                    h.last_heartbeat - FORGET_STOPPED_AFTER_MS
                ],
            )?;
            Ok(())
        })
    }

    fn host_stopped(&self, name: &str, now: i64) -> StoreResult<()> {
        self.conn()?.exec_drop(
            &*self.sql("UPDATE s_hosts SET stopped_at = ?, busy_slots = 0 WHERE name = ?"),
            params![now, name],
        )?;
        Ok(())
    }

    fn hosts(&self) -> StoreResult<Vec<HostRow>> {
        let rows: Vec<mysql::Row> = self.conn()?.query(self.dynamic(&format!(
            "SELECT {HOST_COLUMNS} FROM s_hosts ORDER BY started_at, name"
        )))?;
        rows.iter().map(host_from_row).collect()
    }

    fn recover(&self, finishes: &[Finish], before: i64) -> StoreResult<Vec<bool>> {
        apply_finishes(self, finishes, Some(before))
    }

    fn on_new_work(&self, hook: WakeHook) {
        *self.wake.hook.lock() = Some(hook);
        self.start_poller();
    }

    fn send_events(&self, batches: &[String]) -> StoreResult<()> {
        if batches.is_empty() {
            return Ok(());
        }
        let now = crate::clock::now_ms();
        // Retried: the clean-up of old events can deadlock with another host's insert.
        self.retrying(|tx| {
            // One transaction: the batches get consecutive ids, read in this order.
            tx.exec_batch(
                &*self.sql("INSERT INTO s_events (at, batch) VALUES (?, ?)"),
                batches.iter().map(|b| params![now, b.as_str()]),
            )?;
            tx.exec_drop(
                &*self.sql("DELETE FROM s_events WHERE at < ?"),
                params![now - KEEP_EVENTS_MS],
            )?;
            Ok(())
        })
    }

    fn on_events(&self, hook: EventsHook) {
        *self.wake.events_hook.lock() = Some(hook);
        self.start_poller();
    }
}
