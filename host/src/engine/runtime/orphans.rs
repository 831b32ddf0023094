//! Leases this host holds without knowing: a claim or a start that the database committed on
//! a connection that broke before its answer came (a server restart, a cut link). The host
//! never runs such a task, and its heartbeat would renew the lease forever; so on every
//! heartbeat it compares the leases the database says it holds with the runs it knows, and a
//! lease unknown at two heartbeats in a row (never a claim on its way to the ready queue,
//! which takes microseconds) is recovered as if its host had died: a claim goes back to
//! pending without using an attempt, a started run counts as an interrupted attempt. The write
//! is fenced by the lease token, like every recovery.

use super::super::Engine;
use crate::store::ExpiredLease;
use parking_lot::Mutex;
use std::collections::HashSet;

/// The unknown leases seen at the previous check, as `(id, lease token)`.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    seen: Mutex<HashSet<(i64, i64)>>,
}

/// Finds this host's unknown leases and recovers those seen twice.
pub(super) fn recover_orphans(engine: &Engine) {
    let held = match engine.store.leases_of(&engine.owner) {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!("cannot list this host's leases: {e}");
            return;
        }
    };
    // Read after the store: a run that ends in between leaves the database first, then the
    // hub, and a claim that lands in between reaches the ready queue a moment after its
    // commit; either is unknown at one check at most, never at two.
    let mut known: HashSet<i64> = engine.hub.all().iter().map(|t| t.id).collect();
    known.extend(engine.hub.abandoned().iter().map(|t| t.id));
    known.extend(engine.runtime_state.ready.ids());
    let unknown: Vec<ExpiredLease> = held
        .into_iter()
        .filter(|l| !known.contains(&l.id))
        .collect();
    let keys: HashSet<(i64, i64)> = unknown.iter().map(|l| (l.id, l.lease_token)).collect();
    let orphans: Vec<ExpiredLease> = {
        let mut seen = engine.runtime_state.orphans.seen.lock();
        let twice = unknown
            .into_iter()
            .filter(|l| seen.contains(&(l.id, l.lease_token)))
            .collect();
        *seen = keys;
        twice
    };
    if orphans.is_empty() {
        return;
    }
    for l in &orphans {
        tracing::warn!(
            task = l.id,
            started = l.started,
            "this host holds a lease it does not know (committed on a connection that broke \
             before the answer); recovering the task"
        );
    }
    if let Err(e) = engine.apply_recoveries(&orphans, i64::MAX) {
        tracing::warn!("cannot recover the leases this host does not know: {e}");
    }
}
