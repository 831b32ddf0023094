//! `HostStore` for PostgreSQL: the hosts registry, guarded recovery and the listener hook.

use super::channel_start;
use super::tasks::apply_finishes;
use super::PgStore;
use crate::cluster::{FORGET_HOSTS_AFTER_MS, FORGET_STOPPED_AFTER_MS};
use crate::rows::{host_from_row, HOST_COLUMNS};
use crate::{EventsHook, Finish, HostRow, HostStore, StoreResult, WakeHook};

impl HostStore for PgStore {
    fn shared_by_hosts(&self) -> bool {
        true
    }

    fn database_clock_ms(&self) -> StoreResult<Option<i64>> {
        self.run(|conn| {
            let (client, _) = conn.parts();
            // `clock_timestamp()`, not `now()`: the time of this read, not of a transaction's
            // start.
            let row = client.query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT",
                &[],
            )?;
            Ok(Some(row.get::<_, i64>(0)))
        })
    }

    fn upsert_host(&self, host: &HostRow) -> StoreResult<()> {
        let h = host.clone();
        let workers = serde_json::to_string(&h.workers).unwrap_or_else(|_| "[]".into());
        self.transaction(move |tx, st| {
            tx.execute(
                &*st.sql(
                    "INSERT INTO s_hosts (name, version, started_at, last_heartbeat, busy_slots,
                        pool_size, workers, lease_ms, stopped_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version,
                        last_heartbeat = excluded.last_heartbeat,
                        busy_slots = excluded.busy_slots, pool_size = excluded.pool_size,
                        workers = excluded.workers, lease_ms = excluded.lease_ms,
                        stopped_at = excluded.stopped_at",
                ),
                &[
                    &h.name,
                    &h.version,
                    &h.started_at,
                    &h.last_heartbeat,
                    &h.busy_slots,
                    &h.pool_size,
                    &workers,
                    &h.lease_ms,
                    &h.stopped_at,
                ],
            )?;
            tx.execute(
                &*st.sql("DELETE FROM s_hosts WHERE last_heartbeat < $1 OR stopped_at < $2"),
                &[
                    &(h.last_heartbeat - FORGET_HOSTS_AFTER_MS),
                    &(h.last_heartbeat - FORGET_STOPPED_AFTER_MS),
                ],
            )?;
            Ok(())
        })
    }

    fn host_stopped(&self, name: &str, now: i64) -> StoreResult<()> {
        let name = name.to_owned();
        self.run(move |conn| {
            let (client, st) = conn.parts();
            client.execute(
                &*st.sql("UPDATE s_hosts SET stopped_at = $2, busy_slots = 0 WHERE name = $1"),
                &[&name, &now],
            )?;
            Ok(())
        })
    }

    fn hosts(&self) -> StoreResult<Vec<HostRow>> {
        self.run(|conn| {
            let (client, st) = conn.parts();
            client
                .query(
                    &*st.apply(&format!(
                        "SELECT {HOST_COLUMNS} FROM s_hosts ORDER BY started_at, name COLLATE \"C\""
                    )),
                    &[],
                )?
                .iter()
                .map(host_from_row)
                .collect()
        })
    }

    fn recover(&self, finishes: &[Finish], before: i64) -> StoreResult<Vec<bool>> {
        apply_finishes(self, finishes, Some(before))
    }

    fn on_new_work(&self, hook: WakeHook) {
        *self.notices.hook.lock() = Some(hook);
        self.start_listener();
    }

    fn send_events(&self, batches: &[String]) -> StoreResult<()> {
        if batches.is_empty() {
            return Ok(());
        }
        let batches = batches.to_vec();
        self.run(move |conn| {
            // One round trip for all batches; in one transaction they arrive in this order.
            let (client, st) = conn.parts();
            let channel = channel_start("events", &st.prefix);
            client.execute(
                "SELECT pg_notify($1 || current_schema(), batch) FROM unnest($2::text[]) AS batch",
                &[&channel, &batches],
            )?;
            Ok(())
        })
    }

    fn on_events(&self, hook: EventsHook) {
        *self.notices.events_hook.lock() = Some(hook);
        self.start_listener();
    }
}
