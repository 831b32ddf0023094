//! Live state of running tasks: progress, ETA, log lines and the cancel flag.
//!
//! Workers may report progress thousands of times a second; those calls only update memory.
//! A flusher (see [`super::runtime`]) writes what changed to the database, the snapshot files
//! and the event bus a few times a second: one write each for the starts, the progress and the
//! log lines of all tasks.

use crate::clock::{human_duration, now_ms, rfc3339};
use crate::model::LogLine;
use crate::plugins::{HostServices, TaskHooks};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use stask_plugin_api::LogLevel;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Log lines kept per attempt; later lines are counted, not stored.
const MAX_LOG_LINES: usize = 10_000;
/// Longest stored log line (bytes).
const MAX_LINE_BYTES: usize = 4_096;
/// Longest progress message kept (characters).
const MAX_MESSAGE_CHARS: usize = 1_000;

/// A running task as the host sees it.
pub struct LiveTask {
    /// Task id.
    pub id: i64,
    /// Worker identifier.
    pub identifier: String,
    /// Action.
    pub action: String,
    /// Attempt number.
    pub attempt: u32,
    /// Lease of this run.
    pub lease_token: i64,
    /// Worker version running it.
    pub worker_version: String,
    started: Instant,
    /// The start on the coarse clock the progress calls read (see [`coarse_now`]).
    started_coarse: Duration,
    /// Cancel requested (by a user, another host, or the timeout).
    pub cancel: AtomicBool,
    /// The worker's timeout fired.
    pub timed_out: AtomicBool,
    /// The host is stopping (SIGTERM) and asked the run to stop: the worker sees it as a
    /// cancel, the outcome is "interrupted" (see `task_state::after_run`), not "cancelled".
    pub host_stopping: AtomicBool,
    timeout_secs: AtomicU64,
    max_attempts: AtomicU32,
    started_ms: i64,
    /// Set by whoever settles the run's outcome first: the run returning, or the host giving
    /// up on a run that ignored its timeout ([`LiveTask::claim_outcome`]).
    outcome_claimed: AtomicBool,
    state: Mutex<LiveState>,
    /// What serves the run's host-service calls (none in unit tests: every call unavailable).
    services: HostServices,
}

#[derive(Default)]
struct LiveState {
    percent: i64,
    processed: Option<i64>,
    total: Option<i64>,
    message: String,
    eta_seconds: Option<i64>,
    dirty: bool,
    logs: Vec<LogLine>,
    logged: usize,
    dropped: usize,
    snapshot_written: bool,
    snapshot_failures: u64,
}

/// A snapshot of a live task's progress.
#[derive(Debug, Clone, Serialize)]
pub struct ProgressView {
    /// 0-100.
    pub progress: i64,
    /// Items processed.
    pub processed: Option<i64>,
    /// Items in total.
    pub total: Option<i64>,
    /// Latest message.
    pub message: String,
    /// Seconds left.
    pub eta_seconds: Option<i64>,
}

/// What the flusher takes from a live task.
pub struct Flush {
    /// Progress to write, if it changed.
    pub progress: Option<ProgressView>,
    /// New log lines.
    pub logs: Vec<LogLine>,
}

impl LiveTask {
    /// A task that just started.
    pub fn new(
        id: i64,
        identifier: String,
        action: String,
        attempt: u32,
        lease_token: i64,
        worker_version: String,
    ) -> Self {
        LiveTask {
            id,
            identifier,
            action,
            attempt,
            lease_token,
            worker_version,
            started: Instant::now(),
            started_coarse: coarse_now(),
            cancel: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
            host_stopping: AtomicBool::new(false),
            timeout_secs: AtomicU64::new(0),
            max_attempts: AtomicU32::new(attempt),
            started_ms: now_ms(),
            outcome_claimed: AtomicBool::new(false),
            state: Mutex::new(LiveState {
                message: "Running".into(),
                ..LiveState::default()
            }),
            services: HostServices::default(),
        }
    }

    /// Serves this run's host-service calls with `services` (the engine's).
    pub fn with_services(mut self, services: HostServices) -> Self {
        self.services = services;
        self
    }

    /// Sets the worker's timeout for this run (0 = none).
    pub fn set_timeout(&self, secs: u64) {
        self.timeout_secs.store(secs, Ordering::Relaxed);
    }

    /// The timeout of this run (0 = none).
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs.load(Ordering::Relaxed)
    }

    /// Sets the attempts the task allows (what a failure of this run is weighed against).
    pub fn set_max_attempts(&self, max_attempts: u32) {
        self.max_attempts.store(max_attempts, Ordering::Relaxed);
    }

    /// The attempts the task allows.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.load(Ordering::Relaxed)
    }

    /// When the run started (UNIX ms).
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    /// True for the first caller only: the pool thread whose plugin call returned, or the
    /// ticker giving up on a run that ignores its timeout. The other one must leave the
    /// outcome alone.
    pub fn claim_outcome(&self) -> bool {
        !self.outcome_claimed.swap(true, Ordering::SeqCst)
    }

    /// Fires the timeout once it is due: sets the cancel flag and returns true the first time.
    pub fn check_timeout(&self) -> bool {
        let limit = self.timeout_secs();
        if limit == 0 || self.started.elapsed().as_secs() < limit {
            return false;
        }
        self.cancel.store(true, Ordering::Relaxed);
        !self.timed_out.swap(true, Ordering::Relaxed)
    }

    /// Asks the run to stop because the host is stopping (once; later calls do nothing).
    pub fn ask_to_stop(&self) {
        if !self.host_stopping.swap(true, Ordering::SeqCst) {
            self.push_log(
                LogLevel::Warning,
                "host: the host is stopping; asked the task to stop (it runs again later, \
                 without using an attempt, if it stops early)"
                    .into(),
            );
        }
    }

    /// Asks the task to stop because this host lost contact with the database and cannot
    /// prove its lease: as at a host's stop, a run that stops early goes back to pending
    /// without using an attempt (a write fenced by the lease, so a task another host took
    /// over is left to it).
    pub fn lost_contact(&self) {
        if !self.host_stopping.swap(true, Ordering::SeqCst) {
            self.push_log(
                LogLevel::Warning,
                "host: lost contact with the database, so the lease cannot be proven; asked the \
                 task to stop (another host takes it over)"
                    .into(),
            );
        }
    }

    /// Seconds since the run started.
    pub fn elapsed_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Current progress.
    pub fn view(&self) -> ProgressView {
        let s = self.state.lock();
        ProgressView {
            progress: s.percent,
            processed: s.processed,
            total: s.total,
            message: s.message.clone(),
            eta_seconds: s.eta_seconds,
        }
    }

    /// Takes what changed since the last flush.
    pub fn take_flush(&self) -> Flush {
        let mut s = self.state.lock();
        let progress = if s.dirty {
            s.dirty = false;
            Some(ProgressView {
                progress: s.percent,
                processed: s.processed,
                total: s.total,
                message: s.message.clone(),
                eta_seconds: s.eta_seconds,
            })
        } else {
            None
        };
        Flush {
            progress,
            logs: std::mem::take(&mut s.logs),
        }
    }

    /// Whether a snapshot file was written for this run (so the final state must be too).
    pub fn has_snapshot(&self) -> bool {
        self.state.lock().snapshot_written
    }

    /// Notes that a snapshot file exists; returns how many writes had failed in a row before.
    pub fn set_snapshot_written(&self) -> u64 {
        let mut s = self.state.lock();
        s.snapshot_written = true;
        std::mem::take(&mut s.snapshot_failures)
    }

    /// Counts a failed snapshot write; returns the failures in a row so far. A fault that
    /// lasts (a full disk) is reported when it starts, not on every flush.
    pub fn note_snapshot_failure(&self) -> u64 {
        let mut s = self.state.lock();
        s.snapshot_failures += 1;
        s.snapshot_failures
    }

    /// Log lines not yet flushed, plus a note of dropped lines (taken once, at the end).
    pub fn take_remaining_logs(&self) -> Vec<LogLine> {
        let mut s = self.state.lock();
        let mut lines = std::mem::take(&mut s.logs);
        if s.dropped > 0 {
            lines.push(LogLine {
                task_id: self.id,
                attempt: self.attempt,
                level: LogLevel::Warning.as_u8(),
                at: now_ms(),
                line: format!(
                    "{} more log lines were dropped (limit {MAX_LOG_LINES})",
                    s.dropped
                ),
            });
            s.dropped = 0;
        }
        lines
    }

    /// Adds a line written by the host about this run.
    pub fn host_log(&self, level: LogLevel, line: String) {
        self.push_log(level, line);
    }

    fn push_log(&self, level: LogLevel, mut line: String) {
        if line.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        let mut s = self.state.lock();
        if s.logged >= MAX_LOG_LINES {
            s.dropped += 1;
            return;
        }
        s.logged += 1;
        s.logs.push(LogLine {
            task_id: self.id,
            attempt: self.attempt,
            level: level.as_u8(),
            at: now_ms(),
            line,
        });
    }
}

/// The monotonic clock at the kernel's tick resolution (a few ms). A worker may report
/// progress millions of times a second and each report needs the elapsed time for its ETA:
/// this clock is read in a few ns where `Instant::now` costs tens of ns on some virtual
/// machines, and an ETA in whole seconds does not need more precision.
#[cfg(target_os = "linux")]
fn coarse_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid, writable timespec and a clock id every Linux since 2.6.32 has.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Elsewhere, the precise monotonic clock (measured from the first reading).
#[cfg(not(target_os = "linux"))]
fn coarse_now() -> Duration {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

/// `message` cut to its first [`MAX_MESSAGE_CHARS`] characters (at a character boundary).
fn clipped(message: &str) -> &str {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => &message[..end],
        None => message,
    }
}

/// ETA from the observed rate: the remaining fraction at the speed seen so far.
pub fn estimate_eta(elapsed_secs: f64, fraction_done: f64) -> Option<i64> {
    if fraction_done <= 0.0 || fraction_done >= 1.0 || elapsed_secs <= 0.0 {
        return None;
    }
    Some((elapsed_secs * (1.0 - fraction_done) / fraction_done).round() as i64)
}

impl TaskHooks for LiveTask {
    fn progress(&self, percent: i32, processed: i64, total: i64, message: &str) {
        let elapsed = coarse_now()
            .saturating_sub(self.started_coarse)
            .as_secs_f64();
        let mut s = self.state.lock();
        if processed >= 0 {
            s.processed = Some(processed);
        }
        if total >= 0 {
            s.total = Some(total);
        }
        let fraction = if percent >= 0 {
            f64::from(percent.min(100)) / 100.0
        } else {
            match (s.processed, s.total) {
                (Some(p), Some(t)) if t > 0 => (p as f64 / t as f64).min(1.0),
                _ => s.percent as f64 / 100.0,
            }
        };
        s.percent = (fraction * 100.0).floor() as i64;
        s.eta_seconds = estimate_eta(elapsed, fraction);
        if !message.is_empty() {
            // Most calls repeat the last message: compared, not copied, and the buffer is
            // reused when it changes (no allocation per call).
            let message = clipped(message);
            if s.message != message {
                s.message.clear();
                s.message.push_str(message);
            }
        }
        s.dirty = true;
    }

    fn log(&self, level: LogLevel, line: &str) {
        // Past the limit a line is only counted: no copy of it is made.
        {
            let mut s = self.state.lock();
            if s.logged >= MAX_LOG_LINES {
                s.dropped += 1;
                return;
            }
        }
        self.push_log(level, line.to_owned());
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.host_stopping.load(Ordering::Relaxed)
    }

    /// Served for this run's task: a follow-up's parent is always `self.id`.
    fn call(&self, method: &str, args_json: &str) -> Result<String, String> {
        self.services.call(self.id, method, args_json)
    }
}

/// The running tasks of this host.
#[derive(Default)]
pub struct ProgressHub {
    tasks: RwLock<HashMap<i64, Arc<LiveTask>>>,
    /// Runs the host gave up on after their timeout whose plugin call has not returned yet,
    /// by lease token: their threads are still blocked in plugin code.
    abandoned: RwLock<HashMap<i64, Arc<LiveTask>>>,
}

impl ProgressHub {
    /// Registers a started task.
    pub fn insert(&self, task: Arc<LiveTask>) {
        self.tasks.write().insert(task.id, task);
    }

    /// Forgets a finished task.
    pub fn remove(&self, id: i64) -> Option<Arc<LiveTask>> {
        self.tasks.write().remove(&id)
    }

    /// A running task of this host.
    pub fn get(&self, id: i64) -> Option<Arc<LiveTask>> {
        self.tasks.read().get(&id).cloned()
    }

    /// Every running task of this host.
    pub fn all(&self) -> Vec<Arc<LiveTask>> {
        self.tasks.read().values().cloned().collect()
    }

    /// Number of running tasks.
    pub fn len(&self) -> usize {
        self.tasks.read().len()
    }

    /// Whether no task runs.
    pub fn is_empty(&self) -> bool {
        self.tasks.read().is_empty()
    }

    /// Moves a run that ignored its timeout from the running tasks to the abandoned ones.
    pub fn abandon(&self, task: &Arc<LiveTask>) {
        let mut tasks = self.tasks.write();
        if tasks.get(&task.id).is_some_and(|t| Arc::ptr_eq(t, task)) {
            tasks.remove(&task.id);
        }
        self.abandoned
            .write()
            .insert(task.lease_token, task.clone());
    }

    /// Forgets an abandoned run whose plugin call finally returned.
    pub fn returned(&self, task: &LiveTask) {
        self.abandoned.write().remove(&task.lease_token);
    }

    /// Abandoned runs whose threads are still blocked in plugin code.
    pub fn abandoned(&self) -> Vec<Arc<LiveTask>> {
        self.abandoned.read().values().cloned().collect()
    }

    /// Asks every running task to stop because the host is stopping; returns them.
    pub fn ask_all_to_stop(&self) -> Vec<Arc<LiveTask>> {
        let tasks = self.all();
        for task in &tasks {
            task.ask_to_stop();
        }
        tasks
    }

    /// Sets the cancel flag of a running task; false if it does not run here.
    pub fn request_cancel(&self, id: i64) -> bool {
        match self.get(id) {
            Some(task) => {
                task.cancel.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

/// The progress snapshot file `storage/stask/{id}.json` (the seed's file-based tracking).
#[derive(Debug, Serialize)]
pub struct Snapshot<'a> {
    /// Task id.
    pub id: i64,
    /// Worker.
    pub identifier: &'a str,
    /// Action.
    pub action: &'a str,
    /// Status name.
    pub status: &'a str,
    /// 0-100.
    pub progress: i64,
    /// Items processed.
    pub processed: Option<i64>,
    /// Items in total.
    pub total: Option<i64>,
    /// ETA text (`2m 30s`).
    pub eta: Option<String>,
    /// Latest message.
    pub message: &'a str,
    /// RFC 3339.
    pub updated_at: String,
}

impl Snapshot<'_> {
    /// Writes the snapshot atomically (temp file + rename): a reader never sees half a file.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(format!("{}.json", self.id));
        let tmp = dir.join(format!(".{}.json.tmp", self.id));
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

/// A snapshot of a running task.
pub fn live_snapshot<'a>(task: &'a LiveTask, view: &'a ProgressView) -> Snapshot<'a> {
    Snapshot {
        id: task.id,
        identifier: &task.identifier,
        action: &task.action,
        status: "running",
        progress: view.progress,
        processed: view.processed,
        total: view.total,
        eta: view.eta_seconds.map(human_duration),
        message: &view.message,
        updated_at: rfc3339(now_ms()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_follows_the_observed_rate() {
        assert_eq!(estimate_eta(10.0, 0.25), Some(30));
        assert_eq!(estimate_eta(10.0, 0.0), None);
        assert_eq!(estimate_eta(10.0, 1.0), None);
    }

    #[test]
    fn one_outcome_per_run_and_abandoned_runs_leave_the_running_set() {
        let hub = ProgressHub::default();
        let t = Arc::new(LiveTask::new(7, "w".into(), "a".into(), 1, 42, "v".into()));
        t.set_max_attempts(3);
        assert_eq!(t.max_attempts(), 3);
        hub.insert(t.clone());
        assert!(t.claim_outcome(), "the first claim wins");
        assert!(
            !t.claim_outcome(),
            "a second one must leave the outcome alone"
        );
        hub.abandon(&t);
        assert!(hub.get(7).is_none() && hub.is_empty());
        assert_eq!(hub.abandoned().len(), 1);
        hub.returned(&t);
        assert!(hub.abandoned().is_empty());
    }

    #[test]
    fn items_give_percent_and_logs_are_capped() {
        let t = LiveTask::new(1, "w".into(), "a".into(), 1, 5, "v".into());
        t.progress(-1, 30, 120, "rows");
        let v = t.view();
        assert_eq!(
            (v.progress, v.processed, v.total),
            (25, Some(30), Some(120))
        );
        assert_eq!(v.message, "rows");
        for i in 0..MAX_LOG_LINES + 5 {
            t.log(LogLevel::Info, &format!("line {i}"));
        }
        let flush = t.take_flush();
        assert!(flush.progress.is_some());
        assert_eq!(flush.logs.len(), MAX_LOG_LINES);
        let rest = t.take_remaining_logs();
        assert_eq!(rest.len(), 1);
        assert!(rest[0].line.starts_with("5 more log lines were dropped"));
    }

    #[test]
    fn progress_messages_are_clipped_replaced_and_kept_when_empty() {
        let t = LiveTask::new(1, "w".into(), "a".into(), 1, 5, "v".into());
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        t.progress(10, -1, -1, &long);
        assert_eq!(t.view().message.chars().count(), MAX_MESSAGE_CHARS);
        t.progress(20, -1, -1, "short");
        assert_eq!(t.view().message, "short");
        t.progress(30, -1, -1, "");
        let v = t.view();
        assert_eq!((v.progress, v.message.as_str()), (30, "short"));
    }
}
