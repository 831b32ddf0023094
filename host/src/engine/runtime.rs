//! The engine's threads.
//!
//! - dispatcher: claims due tasks in batches up to the free capacity (pool + optional prefetch),
//!   woken by inserts, finished tasks and external writes; sleeps until the next due task;
//! - pool: `workers` plain threads running plugin code (never an async thread);
//! - finisher: applies outcomes in grouped transactions, then publishes them;
//! - ticker: flushes progress, logs and snapshots, heartbeats leases, recovers expired
//!   leases, enforces timeouts and removes old snapshots.

use super::progress::{live_snapshot, LiveTask, Snapshot};
use super::state::{self, RunEnd};
use super::Engine;
use crate::clock::{human_duration, now_ms, rfc3339};
use crate::events::Event;
use crate::model::LogLine;
use crate::store::{ClaimRequest, ClaimedTask, Finish, ProgressWrite};
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use stask_plugin_api::protocol::{RunOutcome, RunRequest};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const FLUSH_EVERY: Duration = Duration::from_millis(250);
const EXTERNAL_POLL_EVERY: Duration = Duration::from_millis(100);
const JANITOR_EVERY: Duration = Duration::from_secs(60);
const MAX_FINISH_BATCH: usize = 512;

struct Done {
    finish: Finish,
    live: Arc<LiveTask>,
}

/// Tasks shorter than this (moving average) are worth claiming ahead of free pool slots.
const PREFETCH_BELOW_MICROS: u64 = 20_000;

/// The running threads; dropped or [`Runtime::shutdown`] to stop.
pub struct Runtime {
    engine: Arc<Engine>,
    threads: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Recovers every task left running by a previous instance: with SQLite one host owns the
    /// database (the lock file enforces it), so any leased task at start belongs to a dead one.
    pub fn recover_at_start(&self) -> crate::store::StoreResult<usize> {
        let leases = self.store.expired_leases(i64::MAX)?;
        self.apply_recoveries(&leases)
    }

    fn apply_recoveries(
        &self,
        leases: &[crate::store::ExpiredLease],
    ) -> crate::store::StoreResult<usize> {
        if leases.is_empty() {
            return Ok(0);
        }
        let finishes: Vec<Finish> = leases
            .iter()
            .map(|l| state::after_lost_lease(l, self.backoff))
            .collect();
        let applied = self.store.finish(&finishes)?;
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
                spawn(format!("stask-pool-{i}"), move || {
                    while let Some(job) = engine.ready.pop() {
                        run_job(&engine, job, &done);
                    }
                })
            })
            .collect()
    }

    /// Starts the dispatcher, the pool, the finisher and the ticker.
    pub fn start(self: &Arc<Self>) -> Runtime {
        let (done_tx, done_rx) = unbounded::<Done>();
        let mut threads = self.spawn_pool(&done_tx);
        drop(done_tx);
        let engine = self.clone();
        threads.push(spawn("stask-finisher".into(), move || {
            finisher(&engine, done_rx)
        }));
        let engine = self.clone();
        threads.push(spawn("stask-ticker".into(), move || ticker(&engine)));
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
    /// started, waits for them, and returns how many ran.
    pub fn run_pass(self: &Arc<Self>, limit: Option<usize>) -> usize {
        let (done_tx, done_rx) = unbounded::<Done>();
        let pool = self.spawn_pool(&done_tx);
        drop(done_tx);
        let engine = self.clone();
        let finisher_thread = spawn("stask-finisher".into(), move || finisher(&engine, done_rx));
        let engine = self.clone();
        let ticker_thread = spawn("stask-ticker".into(), move || ticker(&engine));
        let started = dispatcher(self, Some(limit.unwrap_or(usize::MAX)));
        self.ready.close();
        for t in pool {
            let _ = t.join();
        }
        let _ = finisher_thread.join();
        self.stopping.store(true, Ordering::SeqCst);
        let _ = ticker_thread.join();
        started
    }

    /// Gives back claimed tasks that no pool thread started (at shutdown).
    fn release_waiting(&self) {
        let waiting = self.ready.drain();
        if waiting.is_empty() {
            return;
        }
        let leases: Vec<(i64, i64)> = waiting.iter().map(|t| (t.id, t.lease_token)).collect();
        match self.store.release(&leases, now_ms()) {
            Ok(()) => tracing::info!(tasks = leases.len(), "gave back tasks claimed ahead"),
            Err(e) => {
                tracing::warn!("cannot give back claimed tasks (recovered at next start): {e}")
            }
        }
        self.in_flight.fetch_sub(waiting.len(), Ordering::SeqCst);
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
    /// Stops claiming, gives running tasks `grace` to finish, then stops the threads. Tasks
    /// still running after the grace period keep their lease and are recovered at next start.
    pub fn shutdown(mut self, grace: Duration) {
        let engine = self.engine.clone();
        engine.stopping.store(true, Ordering::SeqCst);
        engine.wake();
        engine.ready.close();
        engine.release_waiting();
        let deadline = Instant::now() + grace;
        // A task leaves the hub only once the finisher has stored its outcome.
        while (engine.in_flight.load(Ordering::SeqCst) > 0 || !engine.hub.is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let still_running = engine.hub.len();
        if still_running > 0 {
            tracing::warn!(
                tasks = still_running,
                "grace period over; running tasks are left for recovery at the next start"
            );
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
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
                if let Err(e) = engine.registry.refresh_rows() {
                    tracing::warn!("cannot refresh worker rows: {e}");
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
        Err(e) => {
            tracing::error!("claim failed: {e}");
            0
        }
    }
}

/// Runs one claimed task on this pool thread.
fn run_job(engine: &Arc<Engine>, job: ClaimedTask, done: &Sender<Done>) {
    let Some(worker) = engine.registry.get(&job.identifier) else {
        // Unloaded between claim and start: not the task's fault, so it goes back to pending
        // without counting the attempt.
        if let Err(e) = engine.store.release(&[(job.id, job.lease_token)], now_ms()) {
            tracing::warn!(
                task = job.id,
                "cannot give the task back (recovered later): {e}"
            );
        }
        engine.in_flight.fetch_sub(1, Ordering::SeqCst);
        engine.wake();
        return;
    };
    let settings = engine
        .registry
        .row(&job.identifier)
        .map(|r| r.settings)
        .unwrap_or_default();
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
    if engine.early_cancels.lock().remove(&job.id) {
        live.cancel.store(true, Ordering::Relaxed);
    }
    engine.hub.insert(live.clone());

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
    let started = Instant::now();
    let mut outcome = worker.run(&request, live.as_ref());
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
    match &outcome {
        RunOutcome::Panicked { message } => {
            tracing::warn!(task = job.id, worker = %job.identifier, "worker panicked: {message}");
            live.host_log(2, format!("host: worker panicked: {message}"));
        }
        RunOutcome::Failed { message, .. } => {
            live.host_log(
                2,
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
        timed_out_after: live
            .timed_out
            .load(Ordering::Relaxed)
            .then_some(timeout_secs),
        duration_ms,
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
    while let Ok(first) = done.recv() {
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
            tracing::error!("cannot store task logs: {e}");
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

/// Periodic work: progress flush, heartbeats, recovery, timeouts, snapshot cleanup.
fn ticker(engine: &Arc<Engine>) {
    let heartbeat_every = Duration::from_millis((engine.config.lease_ms / 3).max(200) as u64);
    let mut last_heartbeat = Instant::now();
    let mut last_janitor = Instant::now() - JANITOR_EVERY;
    let snapshot_dir = engine.config.snapshot_dir();
    if let Err(e) = std::fs::create_dir_all(&snapshot_dir) {
        tracing::warn!("cannot create {}: {e}", snapshot_dir.display());
    }
    loop {
        std::thread::sleep(FLUSH_EVERY);
        flush_progress(engine);
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
    if live.is_empty() {
        return;
    }
    let mut writes = Vec::new();
    let mut running = Vec::new();
    let mut logs = Vec::new();
    let snapshot_dir = engine.config.snapshot_dir();
    for task in &live {
        if task.check_timeout() {
            task.host_log(
                1,
                format!(
                    "host: timeout of {}s reached, asking the task to stop",
                    task.timeout_secs()
                ),
            );
        }
        let flush = task.take_flush();
        if flush.mark_running {
            running.push((task.id, task.lease_token));
        }
        logs.extend(flush.logs);
        if let Some(view) = flush.progress {
            match live_snapshot(task, &view).write(&snapshot_dir) {
                Ok(_) => task.set_snapshot_written(),
                Err(e) => tracing::warn!(task = task.id, "cannot write the progress snapshot: {e}"),
            }
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
    let now = now_ms();
    let result = engine
        .store
        .mark_running(&running, now)
        .and_then(|()| engine.store.write_progress(&writes, now))
        .and_then(|()| engine.store.append_logs(&logs));
    if let Err(e) = result {
        tracing::warn!("cannot store progress: {e}");
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

/// Heartbeat, then recovery of leases that expired on any host.
fn heartbeat(engine: &Engine) {
    renew_leases(engine);
    match engine.store.expired_leases(now_ms()) {
        Ok(leases) => {
            if let Err(e) = engine.apply_recoveries(&leases) {
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
