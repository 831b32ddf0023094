//! The engine's threads, one module each:
//!
//! - [`dispatcher`]: claims due tasks in batches up to the free capacity (pool + optional
//!   prefetch), woken by inserts, finished tasks and external writes; sleeps until the next
//!   due task;
//! - [`pool`]: `workers` plain threads running workers through [`WorkerRunner`] (never an
//!   async thread);
//! - [`finisher`]: turns each run's [`RunEnd`](crate::task_state::RunEnd) into the state
//!   machine's [`Finish`](crate::store::Finish), applies them in grouped transactions, then
//!   publishes them;
//! - [`ticker`]: flushes progress, logs and snapshots, heartbeats and recovers leases
//!   ([`leases`]), gives up on runs that ignore their timeout ([`abandon`]), removes old
//!   snapshots;
//! - [`shared`]: the state these threads share ([`RuntimeState`], owned by the engine).
//!
//! This module starts them ([`Engine::start`], [`Engine::run_pass`]) and stops them
//! ([`Runtime::shutdown`]). A stop waits on a condition variable ("nothing in flight and no
//! run in the hub") and on channels, never on a sleep loop.

mod abandon;
mod contact;
mod dispatcher;
mod finisher;
mod leases;
mod orphans;
mod pool;
mod shared;
mod ticker;
mod workers;

#[cfg(test)]
mod fault_store;
#[cfg(test)]
mod tests;

pub(crate) use shared::RuntimeState;
pub use workers::{InService, RegistryWorkers, WorkerRunner, WorkerVersion};

use super::progress::LiveTask;
use super::Engine;
use crate::task_state::RunEnd;
pub use contact::{ContactEpisode, ContactReport};
use crossbeam_channel::{unbounded, Receiver, Sender};
use stask_plugin_api::protocol::RunOutcome;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the pool (and abandonment) sends the finisher for one run: the facts of its end, the
/// worker's outcome, and the live handle (for its last logs, progress and snapshot).
type FinisherMail = (RunEnd, RunOutcome, Arc<LiveTask>);
/// The sending side of the finisher's channel.
type FinisherInbox = Sender<FinisherMail>;

/// The running threads; [`Runtime::shutdown`] stops them.
pub struct Runtime {
    engine: Arc<Engine>,
    threads: Vec<JoinHandle<()>>,
}

/// Starts the finisher; it ends when its channel closes, or once `drain` fires and the
/// channel is empty (see [`finisher::finisher`]).
fn start_finisher(engine: &Arc<Engine>, drain: Receiver<()>) -> (JoinHandle<()>, FinisherInbox) {
    let (done_tx, done_rx) = unbounded::<FinisherMail>();
    let engine = engine.clone();
    let thread = spawn("stask-finisher".into(), move || {
        finisher::finisher(&engine, done_rx, drain)
    });
    (thread, done_tx)
}

impl Engine {
    /// Starts the dispatcher, the pool, the finisher, the ticker, the alert monitor and the
    /// schedules' firing thread.
    pub fn start(self: &Arc<Self>) -> Runtime {
        // Tasks made pending by other processes (other hosts, the CLI) wake the dispatcher at
        // once when the driver can tell (PostgreSQL LISTEN); the sweep is the fallback.
        let waker = self.runtime_state.waker();
        self.store.on_new_work(Arc::new(move || {
            let _ = waker.try_send(());
        }));
        self.start_event_relay();
        self.refresh_host();
        // The daemon's finisher never drains: its channel closes when the pool threads and
        // the ticker (which sends the outcome of runs it gives up on) have ended.
        let (finisher, done) = start_finisher(self, crossbeam_channel::never());
        let mut threads = pool::spawn_pool(self, &done);
        threads.push(finisher);
        let engine = self.clone();
        threads.push(spawn("stask-ticker".into(), move || {
            ticker::ticker(&engine, Some(done))
        }));
        let engine = self.clone();
        threads.push(spawn("stask-lease-guard".into(), move || {
            contact::guard(&engine)
        }));
        let engine = self.clone();
        threads.push(spawn("stask-alerts".into(), move || {
            super::monitor::run(&engine)
        }));
        let engine = self.clone();
        threads.push(spawn("stask-dispatcher".into(), move || {
            dispatcher::dispatcher(&engine, None);
        }));
        let (engine, stop) = (self.clone(), self.runtime_state.stop_signal());
        threads.push(spawn("stask-schedules".into(), move || {
            super::schedules::run(&engine, stop)
        }));
        Runtime {
            engine: self.clone(),
            threads,
        }
    }

    /// One pass for cron (`stask process`): runs due tasks until none is left or `limit` were
    /// started, waits for them, and returns how many ran. A run that ignores its timeout is
    /// abandoned as in the daemon, so a pass always ends; its blocked thread is left behind
    /// (the process exits after the pass).
    pub fn run_pass(self: &Arc<Self>, limit: Option<usize>) -> usize {
        self.refresh_host();
        let rt = &self.runtime_state;
        let (drain, drain_rx) = crossbeam_channel::bounded(1);
        let (finisher, done) = start_finisher(self, drain_rx);
        let pool = pool::spawn_pool(self, &done);
        let engine = self.clone();
        let ticker_thread = spawn("stask-ticker".into(), move || {
            ticker::ticker(&engine, Some(done))
        });
        let started = dispatcher::dispatcher(self, Some(limit.unwrap_or(usize::MAX)));
        rt.ready.close();
        // Nothing is in flight once the dispatcher returns; a task leaves the hub once the
        // finisher has stored its outcome.
        rt.wait_idle(&self.hub, None);
        // The ticker holds a sender of the finisher's channel: it goes first.
        rt.request_stop();
        let _ = ticker_thread.join();
        let blocked = self.hub.abandoned().len();
        if blocked > 0 {
            // A blocked pool thread keeps its sender too, so the channel never closes: the
            // finisher stores what was sent (nothing else can be: the runs left are blocked,
            // and their outcomes would be discarded) and stops when it is empty.
            tracing::warn!(
                runs = blocked,
                "runs abandoned after their timeout are still blocked in plugin code; the pass ends without them"
            );
            let _ = drain.send(());
        } else {
            for t in pool {
                let _ = t.join();
            }
        }
        let _ = finisher.join();
        self.host_stopped();
        started
    }
}

impl Runtime {
    /// Stops claiming, gives back the tasks claimed ahead, asks every running task to stop
    /// (cooperative workers end early, stored as interrupted without using an attempt), gives
    /// them `grace` to end, then stops the threads. Runs still going after the grace period
    /// keep their lease, are named in the log, and are recovered at the next start (they
    /// started, so that counts an attempt).
    pub fn shutdown(mut self, grace: Duration) {
        let engine = self.engine.clone();
        let rt = &engine.runtime_state;
        rt.request_stop();
        rt.ready.close();
        // A claim round under way ends before the queue is given back, so nothing it claims is
        // left behind in it; later rounds see the stop.
        drop(rt.claim_lock.lock());
        engine.release_waiting();
        let asked = engine.hub.ask_all_to_stop();
        if !asked.is_empty() {
            tracing::info!(
                tasks = asked.len(),
                "stopping: asked the running tasks to stop; waiting up to {}s for them",
                grace.as_secs()
            );
        }
        // A task leaves the hub only once the finisher has stored its outcome.
        rt.wait_idle(&engine.hub, Some(Instant::now() + grace));
        let left = engine.hub.all();
        if !left.is_empty() {
            for task in &left {
                tracing::warn!(
                    task = task.id,
                    worker = %task.identifier,
                    action = %task.action,
                    attempt = task.attempt,
                    "still running when the grace period ended: left for recovery at the next start"
                );
            }
            let names: Vec<String> = left
                .iter()
                .map(|t| format!("{} ({}/{})", t.id, t.identifier, t.action))
                .collect();
            tracing::warn!(
                tasks = left.len(),
                "grace period over; running tasks are left for recovery at the next start: {}",
                names.join(", ")
            );
            engine.host_stopped();
            return;
        }
        let blocked = engine.hub.abandoned().len();
        if blocked > 0 {
            // Their outcomes are stored, but their threads may never return: joining would hang.
            tracing::warn!(
                runs = blocked,
                "runs abandoned after their timeout are still blocked in plugin code; stopping without them"
            );
            engine.host_stopped();
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        engine.host_stopped();
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("spawning an engine thread")
}
