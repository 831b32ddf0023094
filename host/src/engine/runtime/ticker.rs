//! The ticker: periodic work four times a second: progress and log flush, relayed events,
//! abandonment of runs that ignore their timeout, heartbeats with lease recovery, and removal
//! of old snapshot files.
//!
//! Invariants: a flush that fails keeps what it could not store (see `unflushed`) and the
//! next successful flush writes it, newest progress per task and log lines in order; the
//! ticker outlives every run: after the stop it keeps ticking until the hub is empty, then
//! flushes once more and ends.
//!
//! A flush is three store writes (`flush_starts`, `write_progress`, `append_logs`), each its
//! own transaction: the store trait has no call that writes all three at once.

use super::super::progress::{live_snapshot, LiveTask, ProgressView};
use super::super::Engine;
use super::abandon::abandon_overdue;
use super::leases::heartbeat;
use super::FinisherInbox;
use crate::clock::{human_duration, now_ms};
use crate::events::Event;
use crate::store::ProgressWrite;
use stask_plugin_api::LogLevel;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLUSH_EVERY: Duration = Duration::from_millis(250);
const JANITOR_EVERY: Duration = Duration::from_secs(60);
/// How often finished tasks whose end was not passed to their dependants are looked for
/// (what a kill between a finish and its resolution leaves; see `stask_store::dependencies`).
const DEPENDENCY_SWEEP_EVERY: Duration = Duration::from_secs(2);
/// Failed snapshot writes of one run in a row between two reminders (a minute of flushes).
const SNAPSHOT_FAILURE_REMINDER_EVERY: u64 = 240;

/// Runs until the runtime stops and no run is left. With `abandon` (the daemon, not a cron
/// pass), runs that ignore their timeout are given up.
pub(super) fn ticker(engine: &Arc<Engine>, abandon: Option<FinisherInbox>) {
    let rt = &engine.runtime_state;
    let heartbeat_every = Duration::from_millis((engine.config.lease_ms / 3).max(200) as u64);
    let mut last_heartbeat = Instant::now();
    let mut last_janitor = Instant::now() - JANITOR_EVERY;
    let mut last_audit_clean = Instant::now() - JANITOR_EVERY;
    let mut last_sweep = Instant::now() - DEPENDENCY_SWEEP_EVERY;
    let snapshot_dir = engine.config.snapshot_dir();
    if let Err(e) = std::fs::create_dir_all(&snapshot_dir) {
        tracing::warn!("cannot create {}: {e}", snapshot_dir.display());
    }
    loop {
        if rt.stopping() {
            // Ticks go on while runs finish; the last one leaving ends the wait early.
            rt.wait_idle(&engine.hub, Some(Instant::now() + FLUSH_EVERY));
        } else {
            rt.wait_for_stop(FLUSH_EVERY);
        }
        rt.meter.sample();
        flush_progress(engine);
        engine.send_relayed_events();
        if let Some(done) = &abandon {
            abandon_overdue(engine, done);
        }
        if last_heartbeat.elapsed() >= heartbeat_every {
            last_heartbeat = Instant::now();
            heartbeat(engine);
        }
        if last_sweep.elapsed() >= DEPENDENCY_SWEEP_EVERY && !rt.stopping() {
            last_sweep = Instant::now();
            if let Err(e) = engine.sweep_dependencies() {
                tracing::warn!("cannot look for dependants to release now: {e}");
            }
        }
        if last_janitor.elapsed() >= JANITOR_EVERY && engine.hub.is_empty() {
            last_janitor = Instant::now();
            clean_snapshots(engine);
        }
        // Apart from the snapshots' janitor, which waits for an idle pool: a busy host
        // keeps its audit log within its retention too.
        if last_audit_clean.elapsed() >= JANITOR_EVERY && !rt.stopping() {
            last_audit_clean = Instant::now();
            match engine.clean_audit() {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "old audit entries deleted"),
                Err(e) => tracing::warn!("cannot delete old audit entries now: {e}"),
            }
        }
        if rt.stopping() && engine.hub.is_empty() {
            flush_progress(engine);
            return;
        }
    }
}

/// Writes the progress and log lines of every running task, and what earlier failed flushes
/// kept; enforces timeouts (asks the task to stop).
pub(super) fn flush_progress(engine: &Engine) {
    let unflushed = &engine.runtime_state.unflushed;
    let live = engine.hub.all();
    if live.is_empty() && unflushed.lock().is_empty() {
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
    let mut pending = std::mem::take(&mut *unflushed.lock());
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
            publish_logs(engine, &pending.logs);
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
        Ok(()) => publish_logs(engine, &pending.logs),
        Err(e) => {
            // Reported when the outage starts, not on every tick; kept for the next flush.
            if !was_failing {
                tracing::warn!("cannot store progress (kept and tried again): {e}");
            }
            // The finisher may have kept lines meanwhile: they are newer, so they go after.
            let mut kept = unflushed.lock();
            let newer = std::mem::take(&mut *kept);
            pending.add(newer.writes, newer.logs);
            pending.dropped_logs += newer.dropped_logs;
            *kept = pending;
        }
    }
}

/// Tells the live listeners of the log lines just stored.
pub(super) fn publish_logs(engine: &Engine, lines: &[crate::model::LogLine]) {
    for line in lines {
        engine.events.publish(Event::task_log(line));
    }
}

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
