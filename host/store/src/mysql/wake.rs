//! Wake-ups without `LISTEN/NOTIFY`: one poller thread per store reads one row of counters
//! every few milliseconds (`STASK_MYSQL_WAKE_POLL_MS`, default 10) and fires the hooks when
//! they moved.
//!
//! **What it reads.** `MAX(id)` of `s_tasks` (the last entry of the primary key: one index
//! dive) moves with every inserted task, whoever inserted it — the host, the CLI or the CMS's
//! own SQL — without any write to a shared row, so inserting transactions never serialise on a
//! counter. Rarer transitions are counted in `s_signals` by triggers (migration 0001): `due`
//! when an existing task becomes pending again (retry, release, a re-queued attempt), and
//! `changed` on a cancel request or any worker change; those are what
//! [`crate::TaskStore::external_change_counter`] follows. Events between hosts are rows of
//! `s_events`, read past the last id seen.
//!
//! **Limits.** A task inserted by a transaction that commits after another one with a higher
//! id does not move `MAX(id)`: that one is found by the dispatcher's periodic sweep, as any
//! missed wake-up is. The cost is one primary-key read per interval per host (100 per second
//! at 10 ms), answered from the buffer pool.

use super::MysqlStore;
use crate::{EventsHook, WakeHook};
use mysql::prelude::Queryable;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The poll interval unless `STASK_MYSQL_WAKE_POLL_MS` says otherwise.
pub(super) const DEFAULT_POLL: Duration = Duration::from_millis(10);
/// Pause after a failed poll (the server is away) before the next try.
const RETRY: Duration = Duration::from_secs(1);
/// Events younger than this may still be joined by a lower id from a transaction that
/// commits later: their ids are re-read until they are older.
const SETTLE_MS: i64 = 5_000;

/// The poller's state, shared by the store and its thread.
#[derive(Default)]
pub struct Wake {
    /// Bumped on every `changed` signal (and when the poller (re)connects).
    changed: AtomicI64,
    /// Set by [`crate::HostStore::on_new_work`].
    pub(super) hook: Mutex<Option<WakeHook>>,
    /// Set by [`crate::HostStore::on_events`].
    pub(super) events_hook: Mutex<Option<EventsHook>>,
    started: AtomicBool,
    stop: AtomicBool,
}

impl Wake {
    /// The change counter while the poller runs (`None` before: CLI commands never start it).
    pub fn counter(&self) -> Option<i64> {
        self.started
            .load(Ordering::SeqCst)
            .then(|| self.changed.load(Ordering::SeqCst))
    }

    /// Tells the poller to end (the store is dropped).
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn wake(&self) {
        if let Some(hook) = self.hook.lock().as_ref() {
            hook();
        }
    }
}

/// The statements of one poller, with the store's table prefix applied.
struct Statements {
    poll: String,
    event_ids: String,
    event: String,
}

impl MysqlStore {
    /// Starts the poller once (see the module doc).
    pub(super) fn start_poller(&self) {
        if self.wake.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let statements = Statements {
            poll: self.dynamic(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM s_tasks),
                        (SELECT n FROM s_signals WHERE kind = 'due'),
                        (SELECT n FROM s_signals WHERE kind = 'changed'),
                        (SELECT COALESCE(MAX(id), 0) FROM s_events)",
            ),
            event_ids: self.dynamic("SELECT id, at FROM s_events WHERE id > ? ORDER BY id"),
            event: self.dynamic("SELECT batch FROM s_events WHERE id = ?"),
        };
        let (pool, wake, interval) = (self.pool.clone(), self.wake.clone(), self.wake_poll);
        if let Err(e) = std::thread::Builder::new()
            .name("stask-mysql-wake".into())
            .spawn(move || poller(pool, statements, wake, interval))
        {
            tracing::warn!("cannot start the MySQL wake-up poller (the periodic sweep still picks tasks up): {e}");
        }
    }
}

/// What the previous poll saw.
#[derive(PartialEq, Clone, Copy)]
struct Seen {
    max_task: i64,
    due: i64,
    changed: i64,
    max_event: i64,
}

fn poller(pool: mysql::Pool, sql: Statements, wake: Arc<Wake>, interval: Duration) {
    let mut warned = false;
    while !wake.stop.load(Ordering::SeqCst) {
        let mut conn = match pool.get_conn() {
            Ok(c) => c,
            Err(e) => {
                if !warned {
                    tracing::warn!("cannot poll MySQL for new tasks (retrying; the periodic sweep still picks them up): {e}");
                    warned = true;
                }
                std::thread::sleep(RETRY);
                continue;
            }
        };
        let first = match read(&mut conn, &sql.poll) {
            Ok(seen) => seen,
            Err(e) => {
                tracing::debug!("MySQL wake-up poll failed: {e}");
                std::thread::sleep(RETRY);
                continue;
            }
        };
        warned = false;
        // Anything may have happened while no one polled (as PostgreSQL's listener does at
        // connect): wake once, count one change. Events sent before now are not delivered.
        wake.changed.fetch_add(1, Ordering::SeqCst);
        wake.wake();
        let mut last = first;
        // Ids of recent events already delivered, with their times; the floor below which
        // every id is settled.
        let mut recent: BTreeMap<i64, i64> = BTreeMap::new();
        let mut floor = first.max_event;
        while !wake.stop.load(Ordering::SeqCst) {
            std::thread::sleep(interval);
            let now = match read(&mut conn, &sql.poll) {
                Ok(seen) => seen,
                Err(e) => {
                    tracing::debug!("MySQL wake-up poll failed, reconnecting: {e}");
                    break;
                }
            };
            if now.changed != last.changed {
                wake.changed.fetch_add(1, Ordering::SeqCst);
            }
            if now.max_task != last.max_task || now.due != last.due || now.changed != last.changed {
                wake.wake();
            }
            if now.max_event != last.max_event || !recent.is_empty() {
                if let Err(e) = deliver(&mut conn, &sql, &wake, &mut recent, &mut floor) {
                    tracing::debug!("reading MySQL events failed, reconnecting: {e}");
                    break;
                }
            }
            last = now;
        }
    }
}

fn read(conn: &mut mysql::PooledConn, sql: &str) -> Result<Seen, mysql::Error> {
    let row: Option<(i64, Option<i64>, Option<i64>, i64)> = conn.query_first(sql)?;
    let (max_task, due, changed, max_event) = row.unwrap_or_default();
    Ok(Seen {
        max_task,
        due: due.unwrap_or(0),
        changed: changed.unwrap_or(0),
        max_event,
    })
}

/// Hands the events past `floor` not yet delivered to the hook, in id order, and moves the
/// floor past the ones old enough that no lower id can still appear.
fn deliver(
    conn: &mut mysql::PooledConn,
    sql: &Statements,
    wake: &Wake,
    recent: &mut BTreeMap<i64, i64>,
    floor: &mut i64,
) -> Result<(), mysql::Error> {
    let ids: Vec<(i64, i64)> = conn.exec(&sql.event_ids, (*floor,))?;
    for (id, at) in ids {
        if recent.contains_key(&id) {
            continue;
        }
        recent.insert(id, at);
        let batch: Option<String> = conn.exec_first(&sql.event, (id,))?;
        if let (Some(batch), Some(hook)) = (batch, wake.events_hook.lock().as_ref()) {
            hook(&batch);
        }
    }
    let settled = crate::clock::now_ms() - SETTLE_MS;
    while let Some((&id, &at)) = recent.first_key_value() {
        if at >= settled {
            break;
        }
        *floor = id;
        recent.remove(&id);
    }
    Ok(())
}
