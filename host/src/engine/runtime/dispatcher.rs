//! The dispatcher: claims due tasks in batches up to the free capacity (pool slots plus the
//! prefetch while tasks are short) and queues them for the pool; gives claimed tasks back
//! when they may not run here.
//!
//! Invariants: it never claims more than `workers + prefetch - in_flight`; every task it
//! claims is counted in `in_flight` until the pool hands its outcome to the finisher or it is
//! given back (released to pending without using an attempt).
//!
//! Batching: while a claim gets all it asked for (the backlog is deep), the prefetch grows
//! (see `RuntimeState::prefetch`), and the dispatcher claims again only once the ready queue
//! has run down to half the capacity (`RuntimeState::should_refill`), so a deep backlog is
//! claimed a few hundred tasks per transaction instead of one or two per finished run.

use super::super::Engine;
use super::leases::renew_leases;
use crate::clock::now_ms;
use crate::store::{ClaimRequest, ClaimedTask, Held, HeldReason, Lease, WorkerLimit};
use crossbeam_channel::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest the dispatcher sleeps without a wake-up before it checks whether another
/// process wrote to the database.
const EXTERNAL_POLL_EVERY: Duration = Duration::from_millis(100);

/// Claims and hands out tasks. With `limit` (one pass), stops when nothing is due and nothing
/// runs, and returns how many tasks it started.
///
/// Wake-ups come from inserts, finished runs and worker changes; without one, the dispatcher
/// sleeps until the next scheduled task is due, and at most [`EXTERNAL_POLL_EVERY`], after
/// which it checks whether another process wrote to the database.
pub(super) fn dispatcher(engine: &Arc<Engine>, limit: Option<usize>) -> usize {
    let rt = &engine.runtime_state;
    let mut started = 0usize;
    let mut external = engine.store.external_change_counter().ok().flatten();
    let mut last_external_check = Instant::now();
    loop {
        if rt.stopping() {
            return started;
        }
        let budget = limit.map_or(usize::MAX, |l| l.saturating_sub(started));
        let mut claimed = 0;
        let mut sleep = EXTERNAL_POLL_EVERY;
        let mut rate_held = false;
        if let Some(round) = claim_round(engine, budget) {
            claimed = round.claimed;
            started += claimed;
            if claimed == round.free {
                continue; // the backlog may hold more: claim again without sleeping
            }
            // Everything due is claimed, or held by a limit: sleep until the next scheduled
            // task of a worker that is not held, or the next start a rate limit allows, if
            // sooner. A held worker's due tasks never make the dispatcher spin: a local finish
            // wakes it (`run_left`), a slot freed on another host is seen at the next sweep.
            let now = now_ms();
            let (due_from, rate_release) = unheld(&round.runnable, &round.held);
            if let Ok(Some(at)) = engine.store.next_due(now, &due_from) {
                sleep = sleep.min(Duration::from_millis((at - now).max(0) as u64));
            }
            if let Some(at) = rate_release {
                rate_held = true;
                sleep = sleep.min(Duration::from_millis((at - now).max(0) as u64));
            }
        }
        if let Some(limit) = limit {
            let nothing_running = rt.in_flight() == 0;
            // A rate-limited worker's tasks are not done: they start when the rate allows.
            if nothing_running && ((claimed == 0 && !rate_held) || started >= limit) {
                return started;
            }
        }
        let deadline = now_ms().saturating_add(sleep.as_millis() as i64);
        rt.set_dispatcher_deadline(deadline);
        let woken = rt.wake_rx.recv_timeout(sleep);
        // Awake: every insert due before "never" may matter until the next sleep.
        rt.set_dispatcher_deadline(i64::MAX);
        if let Err(RecvTimeoutError::Disconnected) = woken {
            return started;
        }
        // Another process (the CLI, an operator's SQL) may have written: worker rows and cancel
        // requests are re-read.
        // Checked by time, not per wake-up, so that a busy queue does not pay for it per task.
        if last_external_check.elapsed() >= EXTERNAL_POLL_EVERY {
            last_external_check = Instant::now();
            let counter = engine.store.external_change_counter().ok().flatten();
            if counter != external {
                external = counter;
                match engine.registry.refresh_rows() {
                    Ok(()) => engine.release_unrunnable(),
                    Err(e) => tracing::warn!("cannot refresh worker rows: {e}"),
                }
                // e.g. `stask task cancel` on a task running here.
                renew_leases(engine);
            }
        }
    }
}

/// What one claim round did.
struct Round {
    /// How many tasks it asked for (the free capacity, within the budget).
    free: usize,
    /// How many it got.
    claimed: usize,
    /// The workers a limit held.
    held: Vec<Held>,
    /// The workers it claimed for.
    runnable: Vec<String>,
}

/// Claims up to the free capacity (within `budget`) into the ready queue. `None` when it may
/// not claim now: no free capacity, or the ready queue still above the refill mark. One round
/// at a time (`claim_lock`): a stop waits for the round under way before it gives back the
/// ready queue, and no round starts after it.
fn claim_round(engine: &Engine, budget: usize) -> Option<Round> {
    let rt = &engine.runtime_state;
    let _one_round_at_a_time = rt.claim_lock.lock();
    // Checked under the lock: a stop that began waits for this round (see
    // `Runtime::shutdown`), and no round starts after it.
    if rt.stopping() {
        return None;
    }
    let workers = engine.config.workers;
    let capacity = workers + rt.prefetch(engine.config.prefetch, workers);
    rt.set_refill_at(capacity, workers);
    let free = capacity.saturating_sub(rt.in_flight()).min(budget);
    // While the ready queue still holds more than the refill mark the pool is fed: claim
    // later, in one larger batch, rather than one or two tasks per finished run.
    if free == 0 || !rt.should_refill() {
        return None;
    }
    let runnable = engine.workers.runnable();
    let mut round = Round {
        free,
        claimed: 0,
        held: Vec::new(),
        runnable,
    };
    if !round.runnable.is_empty() {
        // Limited workers' tasks only go into free pool slots, never ahead.
        let slots = workers.saturating_sub(rt.in_flight()).min(free);
        let limits = engine.workers.limits(&round.runnable);
        (round.claimed, round.held) = claim_into(engine, free, slots, &round.runnable, &limits);
    }
    rt.set_deep_backlog(round.claimed == free);
    Some(round)
}

/// The runnable workers a claim did not hold as a whole (their scheduled tasks may wake the
/// dispatcher), and the earliest time a rate limit allows its next start.
fn unheld(runnable: &[String], held: &[Held]) -> (Vec<String>, Option<i64>) {
    let whole: Vec<&str> = held
        .iter()
        .filter(|h| h.whole_worker())
        .map(|h| h.identifier.as_str())
        .collect();
    let due_from = runnable
        .iter()
        .filter(|id| !whole.contains(&id.as_str()))
        .cloned()
        .collect();
    let rate_release = held
        .iter()
        .filter_map(|h| match h.reason {
            HeldReason::Rate { next_at } => Some(next_at),
            _ => None,
        })
        .min();
    (due_from, rate_release)
}

/// Claims up to `free` due tasks (limited workers' only into the `slots` free pool slots) and
/// queues them for the pool; returns how many, and the workers a limit held.
fn claim_into(
    engine: &Engine,
    free: usize,
    slots: usize,
    runnable: &[String],
    limits: &[WorkerLimit],
) -> (usize, Vec<Held>) {
    let claimed = engine.store.claim(&ClaimRequest {
        owner: &engine.owner,
        limit: free,
        now: now_ms(),
        lease_ms: engine.config.lease_ms,
        identifiers: runnable,
        limits,
        slots,
    });
    match claimed {
        Ok(claim) => {
            let n = claim.tasks.len();
            engine.runtime_state.claimed(n);
            engine.runtime_state.ready.push_all(claim.tasks);
            (n, claim.held)
        }
        // A storage fault is logged by the store when it starts and ends; the dispatcher
        // retries every round, so logging it here too would repeat it many times a second.
        Err(e) if e.is_storage_fault() => {
            tracing::debug!("claim failed: {e}");
            (0, Vec::new())
        }
        Err(e) => {
            tracing::error!("claim failed: {e}");
            (0, Vec::new())
        }
    }
}

impl Engine {
    /// Gives back claimed tasks that no pool thread started (at shutdown).
    pub(super) fn release_waiting(&self) {
        let waiting = self.runtime_state.ready.drain();
        self.give_back(&waiting, "claimed ahead");
    }

    /// Gives back the waiting tasks of workers that may no longer run here (deactivated or
    /// unloaded since they were claimed ahead): they go back to pending, attempts uncounted,
    /// instead of starting on this host once a pool thread is free.
    pub(crate) fn release_unrunnable(&self) {
        let runnable = self.workers.runnable();
        let waiting = self
            .runtime_state
            .ready
            .take_where(|t| !runnable.contains(&t.identifier));
        if !waiting.is_empty() {
            self.give_back(&waiting, "of workers no longer runnable");
        }
    }

    /// Releases claimed tasks to pending without using an attempt; a failure leaves them to
    /// lease recovery.
    pub(super) fn give_back(&self, tasks: &[ClaimedTask], which: &str) {
        if tasks.is_empty() {
            return;
        }
        let leases: Vec<Lease> = tasks.iter().map(ClaimedTask::lease).collect();
        match self.store.release(&leases, now_ms()) {
            Ok(()) => tracing::info!(tasks = leases.len(), "gave back tasks {which}"),
            Err(e) => {
                tracing::warn!("cannot give back claimed tasks (recovered later): {e}")
            }
        }
        let mut early = self.runtime_state.early_cancels.lock();
        for task in tasks {
            early.remove(&task.id);
        }
        drop(early);
        self.runtime_state.run_left(tasks.len());
    }
}
