//! The pool: `workers` plain threads (never async ones) that take claimed tasks from the ready
//! queue, record their start, run them through the [`super::WorkerRunner`], and send the
//! [`RunEnd`] facts with the outcome to the finisher.
//!
//! Invariants: a run's attempt counts from the stored start ([`record_start`]), written just
//! before the worker is called; a task that cannot start (worker no longer runnable, host
//! stopping, lease taken over) goes back without using an attempt; a run the ticker abandoned
//! sends nothing (its outcome was already sent), and its thread ends once the call returns.

use super::super::progress::LiveTask;
use super::super::Engine;
use super::FinisherInbox;
use crate::clock::now_ms;
use crate::store::ClaimedTask;
use crate::task_state::RunEnd;
use stask_plugin_api::protocol::{RunOutcome, RunRequest};
use stask_plugin_api::LogLevel;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Starts the `workers` pool threads.
pub(super) fn spawn_pool(engine: &Arc<Engine>, done: &FinisherInbox) -> Vec<JoinHandle<()>> {
    (0..engine.config.workers)
        .map(|i| spawn_pool_thread(engine, done, format!("stask-pool-{i}")))
        .collect()
}

/// Starts one pool thread (also a replacement for a thread blocked in an abandoned run).
pub(super) fn spawn_pool_thread(
    engine: &Arc<Engine>,
    done: &FinisherInbox,
    name: String,
) -> JoinHandle<()> {
    let (engine, done) = (engine.clone(), done.clone());
    super::spawn(name, move || pool_loop(&engine, &done))
}

/// A pool thread: runs claimed tasks until the queue closes, or until the host gave up on the
/// run this thread was blocked in (another thread has taken its place then).
fn pool_loop(engine: &Arc<Engine>, done: &FinisherInbox) {
    while let Some(job) = engine.runtime_state.ready.pop() {
        if run_job(engine, job, done) {
            return;
        }
    }
}

/// Runs one claimed task on this pool thread. Returns true when the run was abandoned while
/// the worker blocked this thread (its outcome was sent then, and the thread replaced).
fn run_job(engine: &Arc<Engine>, job: ClaimedTask, done: &FinisherInbox) -> bool {
    let rt = &engine.runtime_state;
    // A worker deactivated or unloaded between claim and start: not the task's fault, so it
    // goes back to pending without counting the attempt.
    let Some(worker) = engine.workers.in_service(&job.identifier) else {
        engine.give_back(std::slice::from_ref(&job), "of workers no longer runnable");
        return false;
    };
    // Stopping: a task no pool thread started yet goes back like those still in the queue.
    if rt.stopping() {
        engine.give_back(std::slice::from_ref(&job), "not started before the stop");
        return false;
    }
    let settings = worker.settings;
    let timeout_secs = settings
        .get("timeout")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let live = Arc::new(
        LiveTask::new(
            job.id,
            job.identifier.clone(),
            job.action.clone(),
            job.attempt,
            job.lease_token,
            worker.label.clone(),
        )
        .with_services(engine.services.clone()),
    );
    live.set_timeout(timeout_secs);
    live.set_max_attempts(job.max_attempts);
    if rt.early_cancels.lock().remove(&job.id) {
        live.cancel.store(true, Ordering::Relaxed);
    }
    engine.hub.insert(live.clone());
    // A stop that began after the check above has already asked the running tasks to stop,
    // maybe before this one was in the hub: ask it too.
    if rt.stopping() {
        live.ask_to_stop();
    }

    let output_dir = engine.config.results_dir().join(job.id.to_string());
    let request = RunRequest {
        task_id: job.id,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        action: job.action.clone(),
        data: serde_json::from_str(&job.meta).unwrap_or(serde_json::Value::Null),
        settings,
        output_dir: output_dir.to_string_lossy().into_owned(),
        data_dir: engine
            .config
            .worker_data_dir(&job.identifier)
            .to_string_lossy()
            .into_owned(),
        storage_dir: engine.config.storage_dir().to_string_lossy().into_owned(),
    };
    // Recorded last, just before the worker is called, so that the moment between the two
    // (where a kill counts an attempt nothing used) is as short as it can be.
    if !record_start(engine, &job) {
        engine.hub.remove(job.id);
        rt.early_cancels.lock().remove(&job.id);
        rt.run_left(1);
        return false;
    }
    let started_at = now_ms();
    engine
        .metrics
        .attempt_started(&job.identifier, started_at - job.run_at);
    let started = Instant::now();
    let (mut outcome, cost) = worker.version.run(&request, live.as_ref(), &rt.meter);
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
    rt.note_run_time(elapsed.as_micros() as u64);

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
        if let Some(problem) = super::super::output_dir_problem(&output_dir) {
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
        duration_ms: elapsed.as_millis() as i64,
        cpu_ms: cost.cpu_ms,
        memory_bytes: cost.memory_bytes,
        worker_version: worker.label,
        result_file,
    };
    rt.run_left(1);
    let _ = done.send((end, outcome, live));
    false
}

/// Records that this pool thread starts the claimed run, before the worker is called: the
/// attempt counts from here, so a kill at any later moment finds the run started, and a claim
/// that never got this far (waiting in the ready queue when the host died) uses no attempt.
/// Returns false when the run must not start: its lease was taken over (another host
/// recovered it), or the write keeps failing while the host stops (the task stays claimed and
/// is recovered later as not started).
fn record_start(engine: &Engine, job: &ClaimedTask) -> bool {
    let mut failing = false;
    loop {
        match engine.store.start_runs(&[job.lease()], now_ms()) {
            Ok(applied) if applied.first() == Some(&true) => {
                if failing {
                    tracing::info!(task = job.id, "the start of the task is stored; it runs");
                }
                return true;
            }
            Ok(_) if failing && started_by_an_earlier_try(engine, job) => {
                tracing::info!(
                    task = job.id,
                    "the start of the task was stored by a try whose answer was lost; it runs"
                );
                return true;
            }
            Ok(_) => {
                tracing::warn!(
                    task = job.id,
                    "not starting the task: its lease was taken over by another host"
                );
                return false;
            }
            Err(e) if engine.runtime_state.stopping() => {
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
                // Waits for the retry delay, or less if the host starts stopping meanwhile.
                engine
                    .runtime_state
                    .wait_for_stop(Duration::from_millis(200));
            }
        }
    }
}

/// Whether the store shows the run started under this claim's lease: a try that failed with a
/// broken connection may have committed before the answer was lost.
fn started_by_an_earlier_try(engine: &Engine, job: &ClaimedTask) -> bool {
    engine.store.leases_of(&engine.owner).is_ok_and(|held| {
        held.iter()
            .any(|l| l.id == job.id && l.lease_token == job.lease_token && l.started)
    })
}

/// The worker's result file as a path relative to the results folder, if it lies inside the
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
