//! This host in the hosts registry (`s_hosts`): registered when its runtime starts, refreshed
//! on every heartbeat, marked stopped at a clean shutdown.

use super::Engine;
use crate::clock::now_ms;
use crate::store::HostRow;

impl Engine {
    /// This host's registry row as of now. `started_at` only counts at the first registration
    /// (a refresh keeps the stored one).
    pub fn host_row(&self) -> HostRow {
        let now = now_ms();
        HostRow {
            name: self.owner.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: now,
            last_heartbeat: now,
            busy_slots: self.runtime_state.in_flight() as i64,
            pool_size: self.config.workers as i64,
            workers: self.registry.loaded(),
            lease_ms: self.config.lease_ms,
            stopped_at: None,
        }
    }

    /// Registers this host or refreshes its row; a failure is logged (the registry is
    /// information, the queue works without it).
    pub(crate) fn refresh_host(&self) {
        if let Err(e) = self.store.upsert_host(&self.host_row()) {
            tracing::warn!("cannot refresh this host in the hosts registry: {e}");
        }
    }

    /// Whether this host lost contact with the database since it started, and when.
    pub fn contact_report(&self) -> super::runtime::ContactReport {
        self.runtime_state.contact.report()
    }

    /// Marks this host stopped in the registry.
    pub(crate) fn host_stopped(&self) {
        if let Err(e) = self.store.host_stopped(&self.owner, now_ms()) {
            tracing::warn!("cannot mark this host stopped in the hosts registry: {e}");
        }
    }
}
