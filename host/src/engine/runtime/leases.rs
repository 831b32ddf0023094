//! Leases: renewal of this host's leases (the heartbeat), cancel requests carried by it, and
//! recovery of leases that expired (at start, and on every heartbeat for any host).
//!
//! Invariants: this host never recovers its own leases while it runs (they belong to live
//! runs; renewal is retried instead); the recovery write re-checks the expiry, so a lease its
//! host extended in the meantime stays with that host.

use super::super::Engine;
use crate::clock::now_ms;
use crate::events::Event;
use crate::model::LogLine;
use crate::store::{ExpiredLease, Finish, StoreResult};
use crate::task_state as state;

impl Engine {
    /// Recovers tasks left running by a previous instance. With SQLite one host owns the
    /// database (the lock file enforces it), so any leased task at start belongs to a dead
    /// one. A database shared by several hosts (PostgreSQL) holds live leases of the others:
    /// only expired ones are taken, the rest expire first if their host is really gone.
    pub fn recover_at_start(&self) -> StoreResult<usize> {
        let before = if self.store.shared_by_hosts() {
            now_ms()
        } else {
            i64::MAX
        };
        let leases = self.store.expired_leases(before)?;
        self.apply_recoveries(&leases, before)
    }

    /// Re-queues (or fails) tasks whose lease expired before `before`.
    pub(super) fn apply_recoveries(
        &self,
        leases: &[ExpiredLease],
        before: i64,
    ) -> StoreResult<usize> {
        if leases.is_empty() {
            return Ok(0);
        }
        let finishes: Vec<Finish> = leases
            .iter()
            .map(|l| state::after_lost_lease(l, self.backoff()))
            .collect();
        let applied = self.store.recover(&finishes, before)?;
        let mut logs = Vec::new();
        for (f, ok) in finishes.iter().zip(applied.iter().copied()) {
            if ok {
                tracing::warn!(task = f.id, status = %f.status, "recovered an interrupted task: {}", f.message);
                logs.push(LogLine {
                    task_id: f.id,
                    attempt: 0,
                    level: 1,
                    at: f.at,
                    line: format!("host: {}", f.message),
                });
                self.events.publish(Event::TaskFinished {
                    id: f.id,
                    status: f.status.name().into(),
                    message: f.message.clone(),
                });
            }
        }
        self.store.append_logs(&logs)?;
        let failed: Vec<i64> = finishes
            .iter()
            .zip(&applied)
            .filter(|(f, ok)| **ok && f.status.is_finished())
            .map(|(f, _)| f.id)
            .collect();
        self.pass_on_ends(&failed);
        self.wake();
        Ok(logs.len())
    }
}

/// Extends this host's leases and applies cancel requests stored by other processes.
pub(super) fn renew_leases(engine: &Engine) {
    let began = std::time::Instant::now();
    let until = now_ms() + engine.config.lease_ms;
    match engine.store.heartbeat(&engine.owner, until) {
        Ok(cancelled) => {
            engine.runtime_state.contact.proved(began);
            for id in cancelled {
                // The heartbeat names only tasks leased by this host: one not running yet
                // waits in the ready queue, and its pool thread finds the flag at start.
                if !engine.hub.request_cancel(id) {
                    engine.runtime_state.early_cancels.lock().insert(id);
                }
            }
        }
        Err(e) => tracing::warn!("heartbeat failed: {e}"),
    }
}

/// Heartbeat (the clock, leases and the hosts registry), then recovery of leases that expired on any
/// host.
pub(super) fn heartbeat(engine: &Engine) {
    // First the clock: the lease this heartbeat writes is compared by the other hosts.
    match crate::clock::sync_to_database(&*engine.store, 1) {
        Ok(Some(reading)) => crate::clock::report(&reading),
        Ok(None) => {}
        Err(e) => tracing::warn!("cannot read the database's clock: {e}"),
    }
    renew_leases(engine);
    engine.refresh_host();
    if engine.store.shared_by_hosts() {
        super::orphans::recover_orphans(engine);
        match engine.store.hosts() {
            Ok(hosts) => {
                let now = now_ms();
                let others = hosts.iter().any(|h| h.name != engine.owner && h.live(now));
                engine.runtime_state.contact.set_others_live(others);
            }
            Err(e) => tracing::warn!("cannot read the hosts registry: {e}"),
        }
    }
    // A host lists a worker it loaded from its next heartbeat on: a lease is always longer.
    if let Err(e) = engine
        .registry
        .orphan_unserved_workers(engine.config.lease_ms)
    {
        tracing::warn!("cannot check for workers no host serves: {e}");
    }
    let now = now_ms();
    match engine.store.expired_leases(now) {
        Ok(mut leases) => {
            // This host's own leases belong to runs alive in this process: they expire only
            // when renewals fail (the database locked beyond the busy timeout), and taking them
            // back would run those tasks a second time. Renewal is retried instead.
            leases.retain(|l| l.owner.as_deref() != Some(engine.owner.as_str()));
            if let Err(e) = engine.apply_recoveries(&leases, now) {
                tracing::warn!("lease recovery failed: {e}");
            }
        }
        Err(e) => tracing::warn!("lease recovery failed: {e}"),
    }
}
