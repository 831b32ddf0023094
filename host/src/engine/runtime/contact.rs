//! Contact with the database: whether this host can still prove its leases, and what it does
//! when it cannot.
//!
//! A lease is this host's only right to a task. Each heartbeat that renews the leases proves
//! them until the heartbeat's start plus the lease; when no renewal succeeded for most of a
//! lease (the host is cut off from the database, or the database is down), the other hosts
//! take the tasks over once the leases expire. So this host stops its runs first: it asks each
//! one to stop the way a stopping host does (a run that stops early goes back to pending
//! without using an attempt), and the outcome it stores later is fenced by the lease token,
//! so a task another host took over keeps that host's run. When a renewal succeeds again the
//! episode ends: it is logged and kept for `GET /stask/hosts`.
//!
//! Only when another host was live at the latest heartbeat: alone on a database, nobody would
//! take the tasks over, and a stall of the database must not stop work.
//!
//! Invariants: the guard runs on its own thread and never calls the store (every store call
//! may hang on a cut-off link); an episode begins once and ends once.

use super::super::Engine;
use crate::clock::now_ms;
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// The share of a lease without a successful renewal after which the runs are stopped:
/// leaves a fifth of the lease for them to stop before another host may take them.
const STOP_AT_LEASE_SHARE: f64 = 0.8;

/// This host's contact with the database.
#[derive(Debug)]
pub(crate) struct Contact {
    state: Mutex<ContactState>,
}

#[derive(Debug)]
struct ContactState {
    /// When the latest successful renewal began.
    proved: Instant,
    /// The episode in progress: since when (UNIX ms), and how many runs it stopped.
    lost: Option<(i64, usize)>,
    episodes: u64,
    last: Option<ContactEpisode>,
    /// Whether another host was live at the latest heartbeat: only then may anyone take this
    /// host's tasks over, and only then are its runs stopped (alone on a database, a stall
    /// must not stop work that nobody else would do).
    others_live: bool,
}

/// One time this host could not prove its leases, as `GET /stask/hosts` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactEpisode {
    /// When the runs were stopped (UNIX ms).
    pub lost_at: i64,
    /// When a renewal succeeded again (UNIX ms); `None` while it lasts.
    pub regained_at: Option<i64>,
    /// Runs asked to stop.
    pub runs_stopped: usize,
}

/// What the hosts view shows of this host's contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactReport {
    /// Episodes since this host started (the one in progress included).
    pub episodes: u64,
    /// The latest episode (in progress when `regained_at` is `None`).
    pub last: Option<ContactEpisode>,
}

impl Default for Contact {
    fn default() -> Self {
        Contact {
            state: Mutex::new(ContactState {
                proved: Instant::now(),
                lost: None,
                episodes: 0,
                last: None,
                others_live: false,
            }),
        }
    }
}

impl Contact {
    /// A renewal that began at `began` succeeded: the leases hold until `began` plus the
    /// lease. Ends an episode in progress.
    pub(super) fn proved(&self, began: Instant) {
        let mut s = self.state.lock();
        s.proved = s.proved.max(began);
        if let Some((lost_at, runs_stopped)) = s.lost.take() {
            let regained_at = now_ms();
            s.last = Some(ContactEpisode {
                lost_at,
                regained_at: Some(regained_at),
                runs_stopped,
            });
            tracing::warn!(
                lost_for_ms = regained_at - lost_at,
                runs_stopped,
                "back in contact with the database after {:.1} s; the {runs_stopped} runs \
                 stopped meanwhile store nothing for tasks another host took over",
                (regained_at - lost_at) as f64 / 1000.0
            );
        }
    }

    /// Whether another host was live at the latest heartbeat (see `others_live`).
    pub(super) fn set_others_live(&self, others_live: bool) {
        self.state.lock().others_live = others_live;
    }

    /// Begins an episode if the latest proof is older than most of `lease` and another host
    /// could take the tasks over; returns whether one began now.
    fn lapsed(&self, lease: Duration) -> bool {
        let mut s = self.state.lock();
        if s.lost.is_some()
            || !s.others_live
            || s.proved.elapsed() < lease.mul_f64(STOP_AT_LEASE_SHARE)
        {
            return false;
        }
        s.lost = Some((now_ms(), 0));
        s.episodes += 1;
        true
    }

    fn count_stopped(&self, runs: usize) {
        let mut s = self.state.lock();
        if let Some((lost_at, stopped)) = s.lost.as_mut() {
            *stopped += runs;
            s.last = Some(ContactEpisode {
                lost_at: *lost_at,
                regained_at: None,
                runs_stopped: *stopped,
            });
        }
    }

    /// What `GET /stask/hosts` shows.
    pub fn report(&self) -> ContactReport {
        let s = self.state.lock();
        ContactReport {
            episodes: s.episodes,
            last: s.last,
        }
    }
}

/// The guard thread: checks the proof a few times per lease and stops the runs when it lapsed.
pub(super) fn guard(engine: &Engine) {
    // A database of this host alone (SQLite): no other host takes its tasks, and a slow disk
    // must not stop runs.
    if !engine.store.shared_by_hosts() {
        return;
    }
    let lease = Duration::from_millis(engine.config.lease_ms.max(1) as u64);
    let every = (lease / 20).clamp(Duration::from_millis(20), Duration::from_millis(500));
    let rt = &engine.runtime_state;
    while !rt.stopping() {
        rt.wait_for_stop(every);
        if rt.stopping() || !rt.contact.lapsed(lease) {
            continue;
        }
        let runs = engine.hub.all();
        tracing::warn!(
            runs = runs.len(),
            "no contact with the database for {:.1} s: this host can no longer prove its \
             leases, so it stops its {} runs (other hosts take the tasks over when the leases \
             expire)",
            lease.mul_f64(STOP_AT_LEASE_SHARE).as_secs_f64(),
            runs.len()
        );
        for run in &runs {
            tracing::warn!(
                task = run.id,
                attempt = run.attempt,
                "stopping the run: its lease cannot be proven"
            );
            run.lost_contact();
        }
        rt.contact.count_stopped(runs.len());
    }
}
