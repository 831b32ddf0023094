//! The engine's threads.
//!
//! - dispatcher: claims due tasks in batches up to the free capacity (pool + optional prefetch),
//!   woken by inserts, finished tasks and external writes; sleeps until the next due task;
//! - pool: `workers` plain threads running plugin code (never an async thread);
//! - finisher: applies outcomes in grouped transactions, then publishes them;
//! - ticker: flushes progress, logs and snapshots, heartbeats leases, recovers expired
//!   leases, enforces timeouts and removes old snapshots.

use super::progress::{live_snapshot, LiveTask, ProgressView, Snapshot};
use super::resources::RunCost;
use super::state::{self, RunEnd};
use super::Engine;
use crate::clock::{human_duration, now_ms, rfc3339};
use crate::events::Event;
use crate::model::{LogLine, TaskStatus};
use crate::plugins::isolation;
use crate::plugins::loader::LoadedWorker;
use crate::store::{ClaimRequest, ClaimedTask, Finish, ProgressWrite};
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use stask_plugin_api::protocol::{RunOutcome, RunRequest};
use stask_plugin_api::LogLevel;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How long an isolated run that was cancelled (or timed out) may take to stop before its
/// process is killed.
const ISOLATION_KILL_GRACE: Duration = Duration::from_secs(5);
const EXTERNAL_POLL_EVERY: Duration = Duration::from_millis(100);
const JANITOR_EVERY: Duration = Duration::from_secs(60);
const MAX_FINISH_BATCH: usize = 512;

struct Done {
    finish: Finish,
    live: Arc<LiveTask>,
}

/// Tasks shorter than this (moving average) are worth claiming ahead of free pool slots.
const PREFETCH_BELOW_MICROS: u64 = 20_000;
/// How often an idle finisher checks whether it was told to stop once its channel is empty.
const FINISHER_DRAIN_CHECK: Duration = Duration::from_millis(100);

/// The running threads; dropped or [`Runtime::shutdown`] to stop.
pub struct Runtime {
    engine: Arc<Engine>,
    threads: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Recovers tasks left running by a previous instance. With SQLite one host owns the
    /// database (the lock file enforces it), so any leased task at start belongs to a dead
    /// one. A database shared by several hosts (PostgreSQL) holds live leases of the others:
    /// only expired ones are taken, the rest expire first if their host is really gone.
    pub fn recover_at_start(&self) -> crate::store::StoreResult<usize> {
        let before = if self.store.shared_by_hosts() {
            now_ms()
        } else {
            i64::MAX
        };
        let leases = self.store.expired_leases(before)?;
        self.apply_recoveries(&leases, before)
    }

    /// Re-queues (or fails) tasks whose lease expired before `before`. The write re-checks the
    /// expiry, so a lease its host extended in the meantime stays with that host.
    fn apply_recoveries(
        &self,
        leases: &[crate::store::ExpiredLease],
        before: i64,
    ) -> crate::store::StoreResult<usize> {
        if leases.is_empty() {
            return Ok(0);
        }
        let finishes: Vec<Finish> = leases
            .iter()
            .map(|l| state::after_lost_lease(l, self.backoff))
            .collect();
        let applied = self.store.recover(&finishes, before)?;
        let mut logs = Vec::new();
        for (f, ok) in finishes.iter().zip(applied) {
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
        self.wake();
        Ok(logs.len())
    }

    fn spawn_pool(self: &Arc<Self>, done: &Sender<Done>) -> Vec<JoinHandle<()>> {
        (0..self.config.workers)
            .map(|i| {
                let engine = self.clone();
                let done = done.clone();
                spawn(format!("stask-pool-{i}"), move || pool_loop(&engine, &done))
            })
            .collect()
    }

    /// Starts the dispatcher, the pool, the finisher and the ticker.
    pub fn start(self: &Arc<Self>) -> Runtime {
        // Tasks made pending by other processes (other hosts, the CLI) wake the dispatcher at
        // once when the driver can tell (PostgreSQL LISTEN); the sweep is the fallback.
        let waker = self.wake_tx.clone();
        self.store.on_new_work(Arc::new(move || {
            let _ = waker.try_send(());
        }));
        self.start_event_relay();
        self.refresh_host();
        let (done_tx, done_rx) = unbounded::<Done>();
        let mut threads = self.spawn_pool(&done_tx);
        // The ticker stores the outcome of runs it gives up on, and replaces their threads.
        let abandon = Some(done_tx.clone());
        drop(done_tx);
        let engine = self.clone();
        threads.push(spawn("stask-finisher".into(), move || {
            finisher(&engine, done_rx)
        }));
        let engine = self.clone();
        threads.push(spawn("stask-ticker".into(), move || {
            ticker(&engine, abandon)
        }));
        let engine = self.clone();
        threads.push(spawn("stask-alerts".into(), move || {
            super::monitor::run(&engine)
        }));
        let engine = self.clone();
        threads.push(spawn("stask-dispatcher".into(), move || {
            dispatcher(&engine, None);
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
        let (done_tx, done_rx) = unbounded::<Done>();
        let pool = self.spawn_pool(&done_tx);
        let abandon = Some(done_tx.clone());
        drop(done_tx);
        let engine = self.clone();
        let finisher_thread = spawn("stask-finisher".into(), move || finisher(&engine, done_rx));
        let engine = self.clone();
        let ticker_thread = spawn("stask-ticker".into(), move || ticker(&engine, abandon));
        let started = dispatcher(self, Some(limit.unwrap_or(usize::MAX)));
        self.ready.close();
        // Nothing is in flight once the dispatcher returns; a task leaves the hub once the
        // finisher has stored its outcome.
        while !self.hub.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The ticker holds a sender of the finisher's channel: it goes first.
        self.stopping.store(true, Ordering::SeqCst);
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
            self.finisher_drain.store(true, Ordering::SeqCst);
            let _ = finisher_thread.join();
        } else {
            for t in pool {
                let _ = t.join();
            }
            let _ = finisher_thread.join();
        }
        self.host_stopped();
        started
    }

    /// Gives back claimed tasks that no pool thread started (at shutdown).
    fn release_waiting(&self) {
        let waiting = self.ready.drain();
        self.give_back(&waiting, "claimed ahead");
    }

    /// Gives back the waiting tasks of workers that may no longer run here (deactivated or
    /// unloaded since they were claimed ahead): they go back to pending, attempts uncounted,
    /// instead of starting on this host once a pool thread is free.
    pub(crate) fn release_unrunnable(&self) {
        let runnable = self.registry.runnable();
        let waiting = self.ready.take_where(|t| !runnable.contains(&t.identifier));
        if !waiting.is_empty() {
            self.give_back(&waiting, "of workers no longer runnable");
            self.wake();
        }
    }

    fn give_back(&self, tasks: &[ClaimedTask], which: &str) {
        if tasks.is_empty() {
            return;
        }
        let leases: Vec<(i64, i64)> = tasks.iter().map(|t| (t.id, t.lease_token)).collect();
        match self.store.release(&leases, now_ms()) {
            Ok(()) => tracing::info!(tasks = leases.len(), "gave back tasks {which}"),
            Err(e) => {
                tracing::warn!("cannot give back claimed tasks (recovered later): {e}")
            }
        }
        self.in_flight.fetch_sub(tasks.len(), Ordering::SeqCst);
    }

    /// Tasks to claim beyond the free pool slots: the configured prefetch while recent tasks
    /// are short, none for long tasks (they would wait here instead of on another host).
    fn prefetch(&self) -> usize {
        if self.recent_run_micros.load(Ordering::Relaxed) < PREFETCH_BELOW_MICROS {
            self.config.prefetch
        } else {
            0
        }
    }

    /// Folds one run's duration into the moving average.
    fn note_run_time(&self, micros: u64) {
        let old = self.recent_run_micros.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            micros
        } else {
            (old * 7 + micros) / 8
        };
        self.recent_run_micros.store(new, Ordering::Relaxed);
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
        engine.stopping.store(true, Ordering::SeqCst);
        engine.wake();
        engine.ready.close();
        engine.release_waiting();
        let asked = engine.hub.ask_all_to_stop();
        if !asked.is_empty() {
            tracing::info!(
                tasks = asked.len(),
                "stopping: asked the running tasks to stop; waiting up to {}s for them",
                grace.as_secs()
            );
        }
        let deadline = Instant::now() + grace;
        // A task leaves the hub only once the finisher has stored its outcome.
        while (engine.in_flight.load(Ordering::SeqCst) > 0 || !engine.hub.is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// Claims and hands out tasks. With `limit` (one pass), stops when nothing is due and nothing
/// runs, and returns how many tasks it started.
///
/// Wake-ups come from inserts, finished runs and worker changes; without one, the dispatcher
/// sleeps until the next scheduled task is due, and at most [`EXTERNAL_POLL_EVERY`], after
/// which it checks whether another process wrote to the database.
fn dispatcher(engine: &Arc<Engine>, limit: Option<usize>) -> usize {
    let mut started = 0usize;
    let mut external = engine.store.external_change_counter().ok().flatten();
    let mut last_external_check = Instant::now();
    loop {
        if engine.stopping.load(Ordering::SeqCst) {
            return started;
        }
        let in_flight = engine.in_flight.load(Ordering::SeqCst);
        let budget = limit.map_or(usize::MAX, |l| l.saturating_sub(started));
        let capacity = engine.config.workers + engine.prefetch();
        let free = capacity.saturating_sub(in_flight).min(budget);
        let mut claimed = 0;
        let mut sleep = EXTERNAL_POLL_EVERY;
        if free > 0 {
            let runnable = engine.registry.runnable();
            if !runnable.is_empty() {
                claimed = claim_into(engine, free, &runnable);
                started += claimed;
            }
            if claimed == free {
                continue; // the backlog may hold more: claim again without sleeping
            }
            // Everything due is claimed: sleep until the next scheduled task, if any is sooner.
            let now = now_ms();
            if let Ok(Some(at)) = engine.store.next_due(now, &runnable) {
                sleep = sleep.min(Duration::from_millis((at - now).max(0) as u64));
            }
        }
        if let Some(limit) = limit {
            let nothing_running = engine.in_flight.load(Ordering::SeqCst) == 0;
            if nothing_running && (claimed == 0 || started >= limit) {
                return started;
            }
        }
        let deadline = now_ms().saturating_add(sleep.as_millis() as i64);
        engine
            .dispatcher_deadline
            .store(deadline, Ordering::Relaxed);
        let woken = engine.wake_rx.recv_timeout(sleep);
        // Awake: every insert due before "never" may matter until the next sleep.
        engine
            .dispatcher_deadline
            .store(i64::MAX, Ordering::Relaxed);
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

/// Claims up to `free` due tasks and queues them for the pool; returns how many.
fn claim_into(engine: &Engine, free: usize, runnable: &[String]) -> usize {
    let claimed = engine.store.claim(&ClaimRequest {
        owner: &engine.owner,
        limit: free,
        now: now_ms(),
        lease_ms: engine.config.lease_ms,
        identifiers: runnable,
    });
    match claimed {
        Ok(tasks) => {
            let n = tasks.len();
            engine.in_flight.fetch_add(n, Ordering::SeqCst);
            engine.ready.push_all(tasks);
            n
        }
        // A storage fault is logged by the store when it starts and ends; the dispatcher
        // retries every round, so logging it here too would repeat it many times a second.
        Err(e) if e.is_storage_fault() => {
            tracing::debug!("claim failed: {e}");
            0
        }
        Err(e) => {
            tracing::error!("claim failed: {e}");
            0
        }
    }
}

/// A pool thread: runs claimed tasks until the queue closes, or until the host gave up on the
/// run this thread was blocked in (another thread has taken its place then).
fn pool_loop(engine: &Arc<Engine>, done: &Sender<Done>) {
    while let Some(job) = engine.ready.pop() {
        if run_job(engine, job, done) {
            return;
        }
    }
}

/// Runs one claimed task on this pool thread. Returns true when the run was abandoned while
/// the plugin blocked this thread (its outcome was stored then, and the thread replaced).
fn run_job(engine: &Arc<Engine>, job: ClaimedTask, done: &Sender<Done>) -> bool {
    // A worker deactivated or unloaded between claim and start: not the task's fault, so it
    // goes back to pending without counting the attempt.
    let runnable = engine
        .registry
        .get(&job.identifier)
        .zip(engine.registry.row(&job.identifier))
        .filter(|(_, row)| row.active);
    let Some((worker, row)) = runnable else {
        if let Err(e) = engine.store.release(&[(job.id, job.lease_token)], now_ms()) {
            tracing::warn!(
                task = job.id,
                "cannot give the task back (recovered later): {e}"
            );
        }
        engine.in_flight.fetch_sub(1, Ordering::SeqCst);
        engine.wake();
        return false;
    };
    // Stopping: a task no pool thread started yet goes back like those still in the queue.
    if engine.stopping.load(Ordering::SeqCst) {
        engine.give_back(std::slice::from_ref(&job), "not started before the stop");
        return false;
    }
    let settings = row.settings;
    let timeout_secs = settings
        .get("timeout")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let version = worker.version_label();
    let live = Arc::new(LiveTask::new(
        job.id,
        job.identifier.clone(),
        job.action.clone(),
        job.attempt,
        job.lease_token,
        version.clone(),
    ));
    live.set_timeout(timeout_secs);
    live.set_max_attempts(job.max_attempts);
    if engine.early_cancels.lock().remove(&job.id) {
        live.cancel.store(true, Ordering::Relaxed);
    }
    engine.hub.insert(live.clone());
    // A stop that began after the check above has already asked the running tasks to stop,
    // maybe before this one was in the hub: ask it too.
    if engine.stopping.load(Ordering::SeqCst) {
        live.ask_to_stop();
    }

    let output_dir = engine.config.results_dir().join(job.id.to_string());
    let data = serde_json::from_str(&job.meta).unwrap_or(serde_json::Value::Null);
    let request = RunRequest {
        task_id: job.id,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        action: job.action.clone(),
        data,
        settings,
        output_dir: output_dir.to_string_lossy().into_owned(),
        data_dir: engine
            .config
            .worker_data_dir(&job.identifier)
            .to_string_lossy()
            .into_owned(),
        storage_dir: engine.config.storage_dir().to_string_lossy().into_owned(),
    };
    let isolation = isolation_of(engine, &request.settings);
    // Recorded last, just before the plugin call, so that the moment between the two (where a
    // kill counts an attempt nothing used) is as short as it can be.
    if !record_start(engine, &job) {
        engine.hub.remove(job.id);
        engine.in_flight.fetch_sub(1, Ordering::SeqCst);
        engine.wake();
        return false;
    }
    let started_at = now_ms();
    engine
        .metrics
        .attempt_started(&job.identifier, started_at - job.run_at);
    let started = Instant::now();
    let (mut outcome, cost) = match isolation {
        Some(limits) => run_isolated(&worker, &request, live.as_ref(), limits),
        None => {
            let probe = engine.meter.begin();
            let outcome = worker.run(&request, live.as_ref());
            (outcome, engine.meter.end(probe))
        }
    };
    if !live.claim_outcome() {
        engine.hub.returned(&live);
        tracing::warn!(
            task = job.id,
            worker = %job.identifier,
            "an abandoned run returned after {} s; its outcome is discarded",
            live.elapsed_secs()
        );
        return true;
    }
    let elapsed = started.elapsed();
    engine.note_run_time(elapsed.as_micros() as u64);
    let duration_ms = elapsed.as_millis() as i64;

    let mut result_file = None;
    if let RunOutcome::Completed {
        file: Some(file), ..
    } = &outcome
    {
        match result_file_inside(&output_dir, file, job.id) {
            Ok(relative) => result_file = Some(relative),
            Err(message) => {
                outcome = RunOutcome::Failed {
                    message,
                    retryable: false,
                }
            }
        }
    }
    if let RunOutcome::Failed { message, .. } = &mut outcome {
        if let Some(problem) = super::output_dir_problem(&output_dir) {
            *message = format!("{message} ({problem})");
        }
    }
    match &outcome {
        RunOutcome::Panicked { message } => {
            tracing::warn!(task = job.id, worker = %job.identifier, "worker panicked: {message}");
            live.host_log(LogLevel::Error, format!("host: worker panicked: {message}"));
        }
        RunOutcome::Failed { message, .. } => {
            live.host_log(
                LogLevel::Error,
                format!("host: attempt {} failed: {message}", job.attempt),
            );
        }
        _ => {}
    }
    let end = RunEnd {
        id: job.id,
        lease_token: job.lease_token,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        cancel_requested: live.cancel.load(Ordering::Relaxed),
        host_stopping: live.host_stopping.load(Ordering::SeqCst),
        timed_out_after: live
            .timed_out
            .load(Ordering::Relaxed)
            .then_some(timeout_secs),
        started_at,
        duration_ms,
        cpu_ms: cost.cpu_ms,
        memory_bytes: cost.memory_bytes,
        worker_version: version,
        result_file,
    };
    let mut finish = state::after_run(&end, outcome, engine.backoff, now_ms());
    let view = live.view();
    finish.processed = view.processed;
    finish.total = view.total;
    engine.in_flight.fetch_sub(1, Ordering::SeqCst);
    engine.wake();
    let _ = done.send(Done { finish, live });
    false
}

/// Records that this pool thread starts the claimed run, before the plugin is called: the
/// attempt counts from here, so a kill at any later moment finds the run started, and a claim
/// that never got this far (waiting in the ready queue when the host died) uses no attempt.
/// Returns false when the run must not start: its lease was taken over (another host
/// recovered it), or the write keeps failing while the host stops (the task stays claimed and
/// is recovered later as not started).
fn record_start(engine: &Engine, job: &ClaimedTask) -> bool {
    let mut failing = false;
    loop {
        match engine
            .store
            .start_runs(&[(job.id, job.lease_token)], now_ms())
        {
            Ok(applied) if applied.first() == Some(&true) => {
                if failing {
                    tracing::info!(task = job.id, "the start of the task is stored; it runs");
                }
                return true;
            }
            Ok(_) => {
                tracing::warn!(
                    task = job.id,
                    "not starting the task: its lease was taken over by another host"
                );
                return false;
            }
            Err(e) if engine.stopping.load(Ordering::SeqCst) => {
                tracing::warn!(
                    task = job.id,
                    "not starting the task: cannot store its start while stopping ({e}); it is \
                     recovered later without using an attempt"
                );
                return false;
            }
            Err(e) => {
                // Reported once: the heartbeat keeps the lease meanwhile.
                if !failing {
                    tracing::warn!(
                        task = job.id,
                        "cannot store the start of the task, retrying before it runs: {e}"
                    );
                }
                failing = true;
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Gives up on runs whose worker ignored the cancel request of its timeout for the stop grace
/// period (`STASK_SHUTDOWN_GRACE_SECS`): the attempt fails as timed out, and a new pool thread
/// takes the slot. The plugin call cannot be stopped in-process, so its thread stays blocked
/// (reported by the `stuck_task` alert) until the call returns; its outcome is discarded then.
fn abandon_overdue(engine: &Arc<Engine>, done: &Sender<Done>) {
    let grace = engine.config.shutdown_grace_secs;
    for live in engine.hub.all() {
        let timeout = live.timeout_secs();
        if !live.timed_out.load(Ordering::Relaxed)
            || live.elapsed_secs() < timeout.saturating_add(grace)
            || !live.claim_outcome()
        {
            continue;
        }
        engine.hub.abandon(&live);
        tracing::error!(
            task = live.id,
            worker = %live.identifier,
            "the worker ignored the cancel request of its {timeout}s timeout for {grace}s: the run \
             is abandoned and its pool slot given to a new thread; the old thread stays blocked \
             in plugin code until the call returns"
        );
        live.host_log(
            LogLevel::Error,
            format!(
                "host: the worker did not stop within {grace}s of its {timeout}s timeout: the run \
                 is abandoned (its thread stays blocked in the plugin) and the attempt fails"
            ),
        );
        let now = now_ms();
        let end = RunEnd {
            id: live.id,
            lease_token: live.lease_token,
            attempt: live.attempt,
            max_attempts: live.max_attempts(),
            cancel_requested: true,
            host_stopping: false,
            timed_out_after: Some(timeout),
            started_at: live.started_ms(),
            duration_ms: now - live.started_ms(),
            cpu_ms: None,
            memory_bytes: None,
            worker_version: live.worker_version.clone(),
            result_file: None,
        };
        let outcome = RunOutcome::Failed {
            message: "abandoned after its timeout".into(),
            retryable: true,
        };
        let mut finish = state::after_run(&end, outcome, engine.backoff, now);
        let view = live.view();
        finish.processed = view.processed;
        finish.total = view.total;
        let (replacement, done_for_it) = (engine.clone(), done.clone());
        spawn(format!("stask-pool-r{}", live.id), move || {
            pool_loop(&replacement, &done_for_it)
        });
        engine.in_flight.fetch_sub(1, Ordering::SeqCst);
        engine.wake();
        let _ = done.send(Done { finish, live });
    }
}

/// The limits of a run in a child process, when the worker's `isolation` setting (or else the
/// host default) says `process`; `None` runs it in the host.
fn isolation_of(engine: &Engine, settings: &serde_json::Value) -> Option<isolation::Limits> {
    let isolated = match settings.get("isolation").and_then(|v| v.as_str()) {
        Some("process") => true,
        Some("in_process") => false,
        _ => engine.config.isolate_by_default,
    };
    let memory_mb = settings
        .get("memory_limit_mb")
        .and_then(|v| v.as_u64())
        .unwrap_or(engine.config.isolation_memory_mb);
    isolated.then_some(isolation::Limits {
        memory_bytes: (memory_mb > 0).then_some(memory_mb << 20),
        kill_grace: ISOLATION_KILL_GRACE,
    })
}

/// Runs a task in a child process; its cost is the child's own (exact, see `isolation`).
fn run_isolated(
    worker: &LoadedWorker,
    request: &RunRequest,
    hooks: &LiveTask,
    limits: isolation::Limits,
) -> (RunOutcome, RunCost) {
    // Looked up once: the binary does not move while it runs.
    static EXE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let exe = EXE.get_or_init(|| std::env::current_exe().ok());
    let (Some(exe), Some(library)) = (exe.as_deref(), worker.isolated_copy.as_deref()) else {
        let outcome = RunOutcome::Failed {
            message: "cannot run the task in a child process: the stask binary or the \
                      library copy is missing"
                .into(),
            retryable: true,
        };
        return (outcome, RunCost::default());
    };
    let run = isolation::run(exe, library, request, hooks, limits);
    let cost = RunCost {
        cpu_ms: run.cpu_ms,
        memory_bytes: run.max_rss_bytes,
    };
    (run.outcome, cost)
}

/// The plugin's result file as a path relative to the results folder, if it lies inside the
/// task's output folder.
fn result_file_inside(output_dir: &std::path::Path, file: &str, id: i64) -> Result<String, String> {
    let path = std::path::Path::new(file);
    let path = if path.is_absolute() {
        path.to_owned()
    } else {
        output_dir.join(path)
    };
    let outside = || format!("worker returned a result file outside its output folder: {file}");
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("result file {file}: {e}"))?;
    let root = output_dir.canonicalize().map_err(|_| outside())?;
    let inner = canonical.strip_prefix(&root).map_err(|_| outside())?;
    if !canonical.is_file() {
        return Err(format!("result file {file} is not a regular file"));
    }
    Ok(format!("{id}/{}", inner.to_string_lossy()))
}

/// Applies finished runs in grouped transactions.
fn finisher(engine: &Arc<Engine>, done: Receiver<Done>) {
    loop {
        let first = match done.recv_timeout(FINISHER_DRAIN_CHECK) {
            Ok(first) => first,
            Err(RecvTimeoutError::Timeout) if engine.finisher_drain.load(Ordering::SeqCst) => {
                return;
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_FINISH_BATCH {
            match done.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let logs: Vec<LogLine> = batch
            .iter()
            .flat_map(|d| d.live.take_remaining_logs())
            .collect();
        if let Err(e) = engine.store.append_logs(&logs) {
            // Kept for the ticker's next flush, like its own lines.
            tracing::warn!("cannot store task logs now (kept and tried again): {e}");
            engine.unflushed.lock().add(Vec::new(), logs);
        }
        let finishes: Vec<Finish> = batch.iter().map(|d| d.finish.clone()).collect();
        let applied = loop {
            match engine.store.finish(&finishes) {
                Ok(applied) => break applied,
                Err(e) => {
                    // Never drop an outcome: keep trying (the database may be locked for a while).
                    tracing::error!(
                        "cannot store {} task outcomes, retrying: {e}",
                        finishes.len()
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        for (d, ok) in batch.iter().zip(applied) {
            engine.hub.remove(d.finish.id);
            if !ok {
                tracing::warn!(
                    task = d.finish.id,
                    "outcome discarded: the task's lease was taken over by another run"
                );
                continue;
            }
            if d.live.has_snapshot() {
                write_final_snapshot(engine, &d.live, &d.finish);
            }
            engine.metrics.attempt_finished(
                &d.live.identifier,
                &d.live.action,
                match d.finish.status {
                    TaskStatus::Pending => "retried",
                    status => status.name(),
                },
                d.finish.duration_ms,
                d.finish.cpu_ms,
            );
            engine.events.publish(Event::TaskFinished {
                id: d.finish.id,
                status: d.finish.status.name().into(),
                message: d.finish.message.clone(),
            });
        }
        engine.wake();
    }
}

fn write_final_snapshot(engine: &Engine, live: &LiveTask, finish: &Finish) {
    let view = live.view();
    let snapshot = Snapshot {
        id: live.id,
        identifier: &live.identifier,
        action: &live.action,
        status: finish.status.name(),
        progress: finish.progress.unwrap_or(view.progress),
        processed: view.processed,
        total: view.total,
        eta: None,
        message: &finish.message,
        updated_at: rfc3339(finish.at),
    };
    if let Err(e) = snapshot.write(&engine.config.snapshot_dir()) {
        tracing::warn!(task = live.id, "cannot write the progress snapshot: {e}");
    }
}

/// Periodic work: progress flush, heartbeats, recovery, timeouts, snapshot cleanup. With
/// `abandon` (the daemon, not a cron pass), runs that ignore their timeout are given up.
fn ticker(engine: &Arc<Engine>, abandon: Option<Sender<Done>>) {
    let heartbeat_every = Duration::from_millis((engine.config.lease_ms / 3).max(200) as u64);
    let mut last_heartbeat = Instant::now();
    let mut last_janitor = Instant::now() - JANITOR_EVERY;
    let snapshot_dir = engine.config.snapshot_dir();
    if let Err(e) = std::fs::create_dir_all(&snapshot_dir) {
        tracing::warn!("cannot create {}: {e}", snapshot_dir.display());
    }
    loop {
        std::thread::sleep(FLUSH_EVERY);
        engine.meter.sample();
        flush_progress(engine);
        engine.send_relayed_events();
        if let Some(done) = &abandon {
            abandon_overdue(engine, done);
        }
        if last_heartbeat.elapsed() >= heartbeat_every {
            last_heartbeat = Instant::now();
            heartbeat(engine);
        }
        if last_janitor.elapsed() >= JANITOR_EVERY && engine.hub.is_empty() {
            last_janitor = Instant::now();
            clean_snapshots(engine);
        }
        if engine.stopping.load(Ordering::SeqCst) && engine.hub.is_empty() {
            flush_progress(engine);
            return;
        }
    }
}

fn flush_progress(engine: &Engine) {
    let live = engine.hub.all();
    if live.is_empty() && engine.unflushed.lock().is_empty() {
        return;
    }
    let mut writes = Vec::new();
    let mut logs = Vec::new();
    let snapshot_dir = engine.config.snapshot_dir();
    for task in &live {
        if task.check_timeout() {
            task.host_log(
                LogLevel::Warning,
                format!(
                    "host: timeout of {}s reached, asking the task to stop",
                    task.timeout_secs()
                ),
            );
        }
        let flush = task.take_flush();
        logs.extend(flush.logs);
        if let Some(view) = flush.progress {
            write_live_snapshot(task, &view, &snapshot_dir);
            engine.events.publish(Event::TaskProgress {
                id: task.id,
                status: "running".into(),
                progress: view.progress,
                message: view.message.clone(),
                eta: view.eta_seconds.map(human_duration),
            });
            writes.push(ProgressWrite {
                id: task.id,
                lease_token: task.lease_token,
                progress: view.progress,
                processed: view.processed,
                total: view.total,
                eta_seconds: view.eta_seconds,
                message: view.message,
                worker_version: task.worker_version.clone(),
            });
        }
    }
    let mut pending = std::mem::take(&mut *engine.unflushed.lock());
    let was_failing = !pending.is_empty();
    pending.add(writes, logs);
    let now = now_ms();
    // Starts first (SQLite keeps them in its start journal until this flush, see
    // `TaskStore::start_runs`): a run in the hub started before its progress was taken.
    // Nothing to flush once the hub is empty: a run leaves it after its finish is stored,
    // and a finish writes the attempt itself.
    let result = engine
        .store
        .flush_starts(now)
        .and_then(|()| engine.store.write_progress(&pending.writes, now))
        .and_then(|()| engine.store.append_logs(&pending.logs));
    match result {
        Ok(()) if was_failing => {
            let dropped = pending.dropped_logs;
            tracing::info!(
                "progress is stored again; {} log lines kept during the outage were stored{}",
                pending.logs.len(),
                if dropped > 0 {
                    format!(", {dropped} older ones were dropped for room")
                } else {
                    String::new()
                }
            );
        }
        Ok(()) => {}
        Err(e) => {
            // Reported when the outage starts, not on every tick; kept for the next flush.
            if !was_failing {
                tracing::warn!("cannot store progress (kept and tried again): {e}");
            }
            // The finisher may have kept lines meanwhile: they are newer, so they go after.
            let mut kept = engine.unflushed.lock();
            let newer = std::mem::take(&mut *kept);
            pending.add(newer.writes, newer.logs);
            pending.dropped_logs += newer.dropped_logs;
            *kept = pending;
        }
    }
}

/// Failed snapshot writes of one run in a row between two reminders (a minute of flushes).
const SNAPSHOT_FAILURE_REMINDER_EVERY: u64 = 240;

/// Writes a running task's snapshot. A lasting fault is logged when it starts, then once a
/// minute, and when it ends, not four times a second.
fn write_live_snapshot(task: &LiveTask, view: &ProgressView, snapshot_dir: &std::path::Path) {
    match live_snapshot(task, view).write(snapshot_dir) {
        Ok(_) => {
            let failed = task.set_snapshot_written();
            if failed > 0 {
                tracing::info!(
                    task = task.id,
                    "progress snapshots are written again after {failed} failed writes"
                );
            }
        }
        Err(e) => {
            let failures = task.note_snapshot_failure();
            if failures == 1 {
                tracing::warn!(task = task.id, "cannot write the progress snapshot: {e}");
            } else if failures % SNAPSHOT_FAILURE_REMINDER_EVERY == 0 {
                tracing::warn!(
                    task = task.id,
                    "cannot write the progress snapshot ({failures} failures in a row): {e}"
                );
            }
        }
    }
}

/// Extends this host's leases and applies cancel requests stored by other processes.
fn renew_leases(engine: &Engine) {
    let until = now_ms() + engine.config.lease_ms;
    match engine.store.heartbeat(&engine.owner, until) {
        Ok(cancelled) => {
            for id in cancelled {
                if !engine.hub.request_cancel(id) {
                    engine.early_cancels.lock().insert(id);
                }
            }
        }
        Err(e) => tracing::warn!("heartbeat failed: {e}"),
    }
}

/// Heartbeat (leases and the hosts registry), then recovery of leases that expired on any
/// host.
fn heartbeat(engine: &Engine) {
    renew_leases(engine);
    engine.refresh_host();
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

/// Removes snapshot files of tasks that are no longer running and older than the set age.
fn clean_snapshots(engine: &Engine) {
    let dir = engine.config.snapshot_dir();
    let max_age = Duration::from_secs(engine.config.snapshot_max_age_secs);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= max_age);
        if old && engine.hub.get(id).is_none() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
