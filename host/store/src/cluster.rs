//! What a driver offers for several hosts on one queue: the hosts registry (`s_hosts`), lease
//! recovery that never takes a live lease, and the hooks behind instant pickup.
//!
//! SQLite has one host per database (the home's lock file enforces it), so its answers are the
//! trivial ones; PostgreSQL is where these matter (see ARCHITECTURE.md, "Several hosts").

use super::{Finish, StoreResult};
use serde::Serialize;
use std::sync::Arc;

/// One host instance in `s_hosts`: registered at start, refreshed by its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRow {
    /// Instance name: the lease owner its tasks carry (`hostname:pid:random`).
    pub name: String,
    /// Host version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// When it started (UNIX ms).
    pub started_at: i64,
    /// Its latest heartbeat (UNIX ms).
    pub last_heartbeat: i64,
    /// Tasks claimed or running on it at the latest heartbeat.
    pub busy_slots: i64,
    /// Its pool size (tasks it runs at once).
    pub pool_size: i64,
    /// Workers loaded there (whether active or not: the flag is shared by all hosts), sorted.
    pub workers: Vec<String>,
    /// Its lease length: it is live while its latest heartbeat is younger than this.
    pub lease_ms: i64,
    /// When it stopped cleanly; `None` while it runs (or if it died).
    pub stopped_at: Option<i64>,
}

impl HostRow {
    /// Whether the host looks alive at `now`: not stopped, and its latest heartbeat is younger
    /// than its lease (a host that missed a whole lease is treated as dead: its tasks are
    /// recovered by the others).
    pub fn live(&self, now: i64) -> bool {
        self.stopped_at.is_none() && now - self.last_heartbeat <= self.lease_ms
    }
}

/// Hosts not seen for this long are dropped from the registry at the next registration.
pub const FORGET_HOSTS_AFTER_MS: i64 = 24 * 3_600_000;

/// Hosts that stopped cleanly this long ago are dropped sooner (a cron `stask process` pass is
/// a host while it runs: one row per pass would pile up).
pub const FORGET_STOPPED_AFTER_MS: i64 = 3_600_000;

/// A callback a driver calls when another process made work available (a pending task was
/// inserted or re-queued). It must be cheap and never block: it only wakes a thread.
pub type WakeHook = Arc<dyn Fn() + Send + Sync>;

/// A callback a driver calls with each batch of events another host sent (see
/// [`HostStore::send_events`]). It runs on the driver's listener thread: it must not block.
pub type EventsHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Several hosts on one database.
pub trait HostStore: Send + Sync {
    /// Whether several hosts may use this database at once. When false (SQLite: one daemon
    /// per home and database), every leased task found at start belongs to a dead instance;
    /// when true, only expired leases may be recovered, whatever the start.
    fn shared_by_hosts(&self) -> bool;

    /// The database server's clock now, in UNIX milliseconds, for a database several hosts
    /// share: their leases, due times and schedule slots are compared across hosts, so they
    /// keep the database's time, not each host's ([`crate::clock::sync_to_database`]).
    /// `None` where the database is a file of this host (SQLite: its clock is this host's).
    fn database_clock_ms(&self) -> StoreResult<Option<i64>> {
        Ok(None)
    }

    /// Registers a host or refreshes its row (name is the key; a refresh keeps the stored
    /// `started_at`); forgets hosts unseen for [`FORGET_HOSTS_AFTER_MS`] and hosts stopped
    /// more than [`FORGET_STOPPED_AFTER_MS`] ago.
    fn upsert_host(&self, host: &HostRow) -> StoreResult<()>;

    /// Marks a host as stopped cleanly.
    fn host_stopped(&self, name: &str, now: i64) -> StoreResult<()>;

    /// Every registered host, by start time then name.
    fn hosts(&self) -> StoreResult<Vec<HostRow>>;

    /// Applies recovery decisions for leases that expired: like [`super::TaskStore::finish`]
    /// (fenced by id, lease token and status 15/20), and also only while the lease is still
    /// expired before `before`. A host whose heartbeat extended its lease between the read of
    /// expired leases and this write keeps its task: a live lease is never taken.
    fn recover(&self, finishes: &[Finish], before: i64) -> StoreResult<Vec<bool>>;

    /// Asks the driver to call `hook` when another process makes work available, if it can
    /// tell (PostgreSQL: `LISTEN`); the default does nothing and the dispatcher's periodic
    /// sweep finds such work.
    fn on_new_work(&self, hook: WakeHook) {
        let _ = hook;
    }

    /// Sends batches of live events (JSON text, each under 8,000 bytes) to the other hosts on
    /// this database (PostgreSQL: `NOTIFY`); the default drops them (no other host).
    fn send_events(&self, batches: &[String]) -> StoreResult<()> {
        let _ = batches;
        Ok(())
    }

    /// Asks the driver to call `hook` with every batch of events sent by a host (this one's
    /// own included: the hook tells them apart); the default never calls it.
    fn on_events(&self, hook: EventsHook) {
        let _ = hook;
    }
}
