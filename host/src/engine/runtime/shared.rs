//! The runtime's private state, shared by its threads and owned by the engine as
//! `Engine::runtime_state` (the public service fields of [`super::super::Engine`] stay apart).
//!
//! Invariants:
//! - `in_flight` counts tasks claimed by this host whose outcome is not handed to the
//!   finisher yet (queued in the ready queue or running); it never exceeds what the
//!   dispatcher claimed, and every decrement goes through [`RuntimeState::run_left`] so that
//!   a waiting shutdown hears of it;
//! - the stop signal is sent once ([`RuntimeState::request_stop`]); every thread that waits
//!   on a timer waits on the stop channel instead, so a stop never waits out a sleep;
//! - `early_cancels` holds only tasks claimed by this host: an entry goes when its run
//!   starts, when the task is given back, or when its outcome is stored.

use super::super::progress::ProgressHub;
use super::super::queue::ReadyQueue;
use super::super::resources::RunMeter;
use super::super::unflushed::Unflushed;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Tasks shorter than this (moving average) are worth claiming ahead of free pool slots.
const PREFETCH_BELOW_MICROS: u64 = 20_000;

/// Most tasks claimed ahead of free pool slots while the backlog is deep: one claim
/// transaction (one fsync with `synchronous=FULL`) then serves this many runs.
pub(super) const DEEP_PREFETCH_MAX: usize = 1024;

/// How much pool time the tasks claimed ahead may stand for while the backlog is deep (µs of
/// the recent average run time, over all pool threads): bounded so that a higher-priority
/// task created meanwhile waits at most about this long, and other hosts of a shared queue
/// are not starved of short tasks.
const DEEP_PREFETCH_MICROS: u64 = 50_000;

/// What the dispatcher, the pool, the finisher and the ticker share.
pub(crate) struct RuntimeState {
    /// Wakes the dispatcher (capacity one: wake-ups merge).
    wake_tx: Sender<()>,
    pub(super) wake_rx: Receiver<()>,
    in_flight: AtomicUsize,
    /// When the sleeping dispatcher looks again by itself (UNIX ms): inserts due later need not
    /// wake it.
    dispatcher_deadline: AtomicI64,
    /// Claimed tasks waiting for a pool thread.
    pub(super) ready: ReadyQueue,
    /// Held for one claim round, from counting the free capacity to counting what it claimed
    /// (the stop takes it before giving back the ready queue).
    pub(super) claim_lock: Mutex<()>,
    /// Recent run time of tasks (µs, moving average): prefetch only pays for short tasks.
    recent_run_micros: AtomicU64,
    /// Whether the latest claim got all it asked for (more is due than the capacity): the
    /// prefetch then grows (see [`RuntimeState::prefetch`]).
    deep_backlog: AtomicBool,
    /// The dispatcher claims again once no more than this many claimed tasks wait in the
    /// ready queue (set by the dispatcher; see [`RuntimeState::should_refill`]).
    refill_at: AtomicUsize,
    stopping: AtomicBool,
    /// Dropped at the stop: receivers see the channel disconnect at once.
    stop_tx: Mutex<Option<Sender<()>>>,
    stop_rx: Receiver<()>,
    /// Cancels that arrived while a task claimed here waited for a pool thread.
    pub(crate) early_cancels: Mutex<HashSet<i64>>,
    /// Progress and log lines a failed flush could not store.
    pub(super) unflushed: Mutex<Unflushed>,
    /// CPU and memory cost of runs (see [`super::super::resources`]).
    pub(crate) meter: RunMeter,
    /// Whether this host can prove its leases (see [`super::contact`]).
    pub(crate) contact: super::contact::Contact,
    /// Leases of this host it did not know at the latest heartbeat (see [`super::orphans`]).
    pub(super) orphans: super::orphans::Orphans,
    /// Signalled whenever a run leaves (`in_flight` drops or the hub loses a task).
    idle_lock: Mutex<()>,
    idle: Condvar,
}

impl Default for RuntimeState {
    fn default() -> Self {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        RuntimeState {
            wake_tx,
            wake_rx,
            in_flight: AtomicUsize::new(0),
            dispatcher_deadline: AtomicI64::new(i64::MAX),
            ready: ReadyQueue::default(),
            claim_lock: Mutex::new(()),
            recent_run_micros: AtomicU64::new(u64::MAX),
            deep_backlog: AtomicBool::new(false),
            refill_at: AtomicUsize::new(usize::MAX),
            stopping: AtomicBool::new(false),
            stop_tx: Mutex::new(Some(stop_tx)),
            stop_rx,
            early_cancels: Mutex::new(HashSet::new()),
            unflushed: Mutex::new(Unflushed::default()),
            meter: RunMeter::default(),
            contact: super::contact::Contact::default(),
            orphans: super::orphans::Orphans::default(),
            idle_lock: Mutex::new(()),
            idle: Condvar::new(),
        }
    }
}

impl RuntimeState {
    /// Wakes the dispatcher.
    pub(crate) fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// A sender that wakes the dispatcher (for the store's new-work callback).
    pub(super) fn waker(&self) -> Sender<()> {
        self.wake_tx.clone()
    }

    /// When the sleeping dispatcher looks again by itself (UNIX ms; `i64::MAX` while awake).
    pub(crate) fn dispatcher_deadline(&self) -> i64 {
        self.dispatcher_deadline.load(Ordering::Relaxed)
    }

    /// Notes when the dispatcher looks again by itself.
    pub(super) fn set_dispatcher_deadline(&self, at: i64) {
        self.dispatcher_deadline.store(at, Ordering::Relaxed);
    }

    /// Whether the runtime was told to stop.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Tells every thread to stop: the flag for loops that check it, the closed stop channel
    /// for threads waiting on a timer.
    pub(crate) fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop_tx.lock().take();
        self.wake();
    }

    /// Waits up to `timeout` for the stop; true once stopping.
    pub(crate) fn wait_for_stop(&self, timeout: Duration) -> bool {
        match self.stop_rx.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => self.stopping(),
        }
    }

    /// A receiver that disconnects at the stop (for threads that wait on several channels).
    pub(crate) fn stop_signal(&self) -> Receiver<()> {
        self.stop_rx.clone()
    }

    /// Tasks claimed here whose outcome is not with the finisher yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Counts `n` newly claimed tasks.
    pub(super) fn claimed(&self, n: usize) {
        self.in_flight.fetch_add(n, Ordering::SeqCst);
    }

    /// `n` claimed tasks left this host's hands (given back, or their outcome sent to the
    /// finisher): wakes a waiting shutdown, and the dispatcher once it would claim (see
    /// [`RuntimeState::should_refill`]): a wake-up per run while the ready queue is well
    /// stocked would only cost a futex call and a context switch per task.
    pub(super) fn run_left(&self, n: usize) {
        self.in_flight.fetch_sub(n, Ordering::SeqCst);
        self.notify_idle();
        if self.should_refill() {
            self.wake();
        }
    }

    /// Whether the ready queue has run low enough for the dispatcher to claim again: claims
    /// then come in batches of about half the capacity instead of one per finished run (one
    /// write transaction, and with `synchronous=FULL` one fsync, per claim).
    pub(super) fn should_refill(&self) -> bool {
        self.ready.waiting() <= self.refill_at.load(Ordering::Relaxed)
    }

    /// Notes the dispatcher's refill mark for a capacity of `capacity` claimed tasks.
    pub(super) fn set_refill_at(&self, capacity: usize, workers: usize) {
        // Half the capacity waits at most, and never fewer than the pool threads could take
        // at once, so a pool thread does not go idle while a claim could have fed it.
        let mark = (capacity / 2).max(workers);
        self.refill_at.store(mark, Ordering::Relaxed);
    }

    /// Notes whether the latest claim got everything it asked for.
    pub(super) fn set_deep_backlog(&self, deep: bool) {
        self.deep_backlog.store(deep, Ordering::Relaxed);
    }

    /// Tells a waiting shutdown that a run left (after the finisher removed it from the hub).
    pub(super) fn notify_idle(&self) {
        let _guard = self.idle_lock.lock();
        self.idle.notify_all();
    }

    /// Waits until nothing is in flight and `hub` is empty, or `deadline` passed; returns
    /// whether it is idle.
    pub(super) fn wait_idle(&self, hub: &ProgressHub, deadline: Option<Instant>) -> bool {
        let is_idle = || self.in_flight() == 0 && hub.is_empty();
        let mut guard = self.idle_lock.lock();
        loop {
            if is_idle() {
                return true;
            }
            match deadline {
                Some(deadline) => {
                    if self.idle.wait_until(&mut guard, deadline).timed_out() {
                        return is_idle();
                    }
                }
                None => self.idle.wait(&mut guard),
            }
        }
    }

    /// Tasks to claim beyond the free pool slots: `configured` while recent tasks are short,
    /// none for long tasks (they would wait here instead of on another host). While the
    /// backlog is deep (the latest claim was filled), up to [`DEEP_PREFETCH_MAX`], as many as
    /// the `workers` pool threads run in [`DEEP_PREFETCH_MICROS`] at the recent run time: fewer
    /// and larger claim transactions. `configured = 0` (claims only for free slots) stays 0.
    pub(super) fn prefetch(&self, configured: usize, workers: usize) -> usize {
        let run_micros = self.recent_run_micros.load(Ordering::Relaxed);
        if run_micros >= PREFETCH_BELOW_MICROS {
            return 0;
        }
        if configured == 0 || !self.deep_backlog.load(Ordering::Relaxed) {
            return configured;
        }
        let in_window = (workers as u64).saturating_mul(DEEP_PREFETCH_MICROS) / run_micros.max(1);
        (in_window as usize).clamp(configured, DEEP_PREFETCH_MAX.max(configured))
    }

    /// Folds one run's duration into the moving average.
    pub(super) fn note_run_time(&self, micros: u64) {
        let old = self.recent_run_micros.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            micros
        } else {
            (old * 7 + micros) / 8
        };
        self.recent_run_micros.store(new, Ordering::Relaxed);
    }
}
