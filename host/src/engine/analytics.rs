//! Performance analytics and health alerts, shaped for people from the store's aggregates
//! ([`crate::store::AnalyticsStore`]).
//!
//! Durations are seconds with two decimals, rates are percentages with two decimals, times
//! are RFC 3339. A figure that cannot be known is `null`, never a made-up 0 or 100: a window
//! in which nothing finished has no success rate, and a window without a run measured alone
//! has no memory figure (see [`crate::engine::resources`]).
//!
//! Windows select tasks by creation time: "the last hour" is the tasks created in the last
//! hour, with their status now.

use super::{Engine, EngineError, EngineResult};
use crate::clock::{now_ms, rfc3339};
use crate::model::{PluginFile, WorkerState};
use crate::store::{WindowSummary, WorkerFilter, WorkerSummary};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

const HOUR_MS: i64 = 3_600_000;

/// Longest window [`Engine::performance_summary`] and [`Engine::worker_performance`] accept:
/// a (leap) year, which bounds what one request can make the database aggregate.
pub const MAX_HOURS: u32 = 24 * 366;

/// When [`Engine::alerts`] raises an alert. Every comparison is strict (a figure exactly at
/// its threshold raises nothing) and uses the figure as the alert shows it (two decimals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct AlertThresholds {
    /// `low_success_rate` below this percentage of the last hour's finished tasks.
    pub min_success_rate: f64,
    /// ... but only once the last hour has at least this many finished tasks (a handful of
    /// tasks says nothing about a rate).
    pub min_finished_for_success_rate: i64,
    /// `high_execution_time` when the last hour's average duration exceeds this (seconds).
    pub max_average_duration_secs: f64,
    /// `high_memory_usage` when a run of the last hour grew the heap by more than this many
    /// bytes (runs measured alone only).
    pub max_memory_bytes: i64,
    /// `queue_backlog` when the oldest due pending task has waited longer than this (seconds).
    pub max_queue_wait_secs: i64,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            min_success_rate: 95.0,
            min_finished_for_success_rate: 20,
            max_average_duration_secs: 300.0,
            max_memory_bytes: 512 * 1024 * 1024,
            max_queue_wait_secs: 300,
        }
    }
}

/// The performance of all tasks created in the last `hours` hours.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PerformanceSummary {
    /// The window.
    pub period: PerformancePeriod,
    /// Task counts of the window.
    pub tasks: PerformanceTasks,
    /// Rates, durations and throughput of the window.
    pub performance: PerformanceFigures,
    /// The five most common failure messages of the window's failed tasks.
    pub common_errors: Vec<crate::views::ErrorCountView>,
}

/// The window a [`PerformanceSummary`] covers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PerformancePeriod {
    /// Its length.
    pub hours: u32,
    /// Its start (RFC 3339).
    pub from: String,
    /// Its end: the time of the request (RFC 3339).
    pub to: String,
}

/// Counts of the tasks created in the window, by their status now.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PerformanceTasks {
    /// All of them.
    pub total: i64,
    /// Completed.
    pub completed: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
    /// Preparing or running.
    pub running: i64,
    /// Pending (due or scheduled).
    pub queued: i64,
}

/// Rates and durations of the window. `null` means "no data", never zero.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PerformanceFigures {
    /// Completed / (completed + failed + cancelled) × 100; `null` when nothing finished.
    pub success_rate: Option<f64>,
    /// Mean duration of the finished tasks, seconds.
    pub average_duration: Option<f64>,
    /// Longest duration of the finished tasks, seconds.
    pub max_duration: Option<f64>,
    /// Median duration of completed and failed tasks (nearest rank), seconds.
    pub p50_duration: Option<f64>,
    /// 95th percentile duration of completed and failed tasks (nearest rank), seconds.
    pub p95_duration: Option<f64>,
    /// Mean time from due to start, seconds.
    pub average_wait: Option<f64>,
    /// Median time from due to start (nearest rank), seconds.
    pub p50_wait: Option<f64>,
    /// 95th percentile time from due to start (nearest rank), seconds.
    pub p95_wait: Option<f64>,
    /// Mean CPU time of a finished run's thread, seconds.
    pub average_cpu_time: Option<f64>,
    /// Finished tasks per minute of the window.
    pub throughput_per_minute: f64,
    /// Failed / (completed + failed + cancelled) × 100; `null` when nothing finished.
    pub error_rate: Option<f64>,
    /// Mean peak heap growth of the finished runs measured alone, bytes; `null` when none was.
    pub average_memory: Option<i64>,
    /// Largest peak heap growth of those runs, bytes.
    pub max_memory: Option<i64>,
}

/// The performance of one worker over the window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkerPerformance {
    /// Worker identifier.
    pub identifier: String,
    /// Its tasks created in the window.
    pub total_tasks: i64,
    /// Completed / finished × 100; `null` when none of its tasks finished.
    pub success_rate: Option<f64>,
    /// Mean duration of its finished tasks, seconds.
    pub average_duration: Option<f64>,
    /// 95th percentile duration of its completed and failed tasks, seconds.
    pub p95_duration: Option<f64>,
    /// Mean CPU time of its finished runs, seconds.
    pub average_cpu_time: Option<f64>,
    /// Mean peak heap growth of its finished runs measured alone, bytes.
    pub average_memory: Option<i64>,
    /// Largest peak heap growth of those runs, bytes.
    pub max_memory: Option<i64>,
    /// Latest start of one of its tasks (RFC 3339).
    pub last_execution: Option<String>,
    /// Its failed tasks.
    pub failures: i64,
    /// Worker versions its tasks ran on, sorted.
    pub versions: Vec<String>,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Too few of the last hour's finished tasks completed. Value: the success rate (%).
    LowSuccessRate,
    /// The last hour's tasks ran too long on average. Value: the average (seconds).
    HighExecutionTime,
    /// A run of the last hour grew the heap too much (runs measured alone only). Value: bytes.
    HighMemoryUsage,
    /// The oldest due task has waited too long to start. Value: its wait (seconds).
    QueueBacklog,
    /// A preparing or running task's lease expired (its host died or hangs; value: seconds
    /// since the lease expired, threshold 0), or a task on this host runs past its worker's
    /// timeout without stopping (value: seconds it has run, threshold: the timeout). Always
    /// critical; one per task.
    StuckTask,
    /// A library in plugins.d/ was refused; one per file. Value 1, threshold 0.
    PluginLoadError,
    /// A worker's library is gone but tasks wait for it; one per worker. Value: its pending
    /// tasks; threshold 0.
    OrphanedWorkerWithPendingTasks,
    /// The storage under the database refuses work while the alert lasts: full, read-only,
    /// failing, or its files removed or replaced under the daemon. Always critical. Value 1,
    /// threshold 0.
    StorageFault,
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Warning,
    /// Needs action now.
    Critical,
}

/// One health alert: `{"type","severity","message","value","threshold"}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Alert {
    /// What it is about.
    #[serde(rename = "type")]
    pub kind: AlertKind,
    /// How urgent it is.
    pub severity: Severity,
    /// One line for people.
    pub message: String,
    /// The measured figure (unit as the threshold's).
    pub value: f64,
    /// The limit it crossed.
    pub threshold: f64,
    /// What it concerns ("task 12", a file, a worker), empty for a queue-wide figure: with the
    /// type, it tells one alert from another while it lasts ([`Alert::key`]).
    #[serde(skip)]
    pub subject: String,
}

impl Alert {
    /// Stays the same while one condition lasts, though the message and value change.
    pub fn key(&self) -> String {
        let kind = serde_json::to_value(self.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        format!("{kind}:{}", self.subject)
    }

    fn about(mut self, subject: impl Into<String>) -> Alert {
        self.subject = subject.into();
        self
    }
}

impl Engine {
    /// The performance of the tasks created in the last `hours` hours (1 to [`MAX_HOURS`]).
    pub fn performance_summary(&self, hours: u32) -> EngineResult<PerformanceSummary> {
        self.performance_summary_at(hours, now_ms())
    }

    /// The performance of each worker over the tasks created in the last `hours` hours (1 to
    /// [`MAX_HOURS`]), ordered by identifier.
    pub fn worker_performance(&self, hours: u32) -> EngineResult<Vec<WorkerPerformance>> {
        let since = now_ms() - window_ms(hours)?;
        let workers = self.store.worker_summaries(since)?;
        Ok(workers.iter().map(worker_performance).collect())
    }

    /// The health alerts now, in a fixed order: success rate, execution time, memory, queue
    /// backlog, stuck tasks, plugin load errors, orphaned workers with pending tasks, a
    /// storage fault.
    pub fn alerts(&self, thresholds: &AlertThresholds) -> EngineResult<Vec<Alert>> {
        self.alerts_at(thresholds, now_ms())
    }

    /// Completed and failed tasks per interval over the last `hours`, in `buckets` equal
    /// intervals (1-500), every interval present (zeros included) so a chart needs no gaps
    /// logic.
    pub fn timeline(&self, hours: u32, buckets: u32) -> EngineResult<Timeline> {
        if hours == 0 || hours > MAX_HOURS {
            return Err(EngineError::Invalid(format!(
                "hours must be between 1 and {MAX_HOURS}, got {hours}"
            )));
        }
        if buckets == 0 || buckets > 500 {
            return Err(EngineError::Invalid(format!(
                "buckets must be between 1 and 500, got {buckets}"
            )));
        }
        let to = now_ms();
        let span = i64::from(hours) * 3_600_000;
        let bucket_ms = (span / i64::from(buckets)).max(1);
        let from = to - bucket_ms * i64::from(buckets);
        let mut points: Vec<TimelinePoint> = (0..i64::from(buckets))
            .map(|i| TimelinePoint {
                at: rfc3339(from + i * bucket_ms),
                completed: 0,
                failed: 0,
            })
            .collect();
        for (bucket, completed, failed) in self.store.finished_per_bucket(from, to, bucket_ms)? {
            if let Some(p) = usize::try_from(bucket).ok().and_then(|b| points.get_mut(b)) {
                p.completed = completed;
                p.failed = failed;
            }
        }
        Ok(Timeline {
            from: rfc3339(from),
            to: rfc3339(to),
            bucket_seconds: bucket_ms as f64 / 1000.0,
            points,
        })
    }

    fn performance_summary_at(&self, hours: u32, now: i64) -> EngineResult<PerformanceSummary> {
        let since = now - window_ms(hours)?;
        let window = self.store.window_summary(since, now)?;
        Ok(PerformanceSummary {
            period: PerformancePeriod {
                hours,
                from: rfc3339(since),
                to: rfc3339(now),
            },
            tasks: PerformanceTasks {
                total: window.total,
                completed: window.completed,
                failed: window.failed,
                cancelled: window.cancelled,
                running: window.preparing + window.running,
                queued: window.pending,
            },
            performance: self.figures(&window),
            common_errors: window.common_errors.into_iter().map(Into::into).collect(),
        })
    }

    fn figures(&self, w: &WindowSummary) -> PerformanceFigures {
        PerformanceFigures {
            success_rate: percent(w.completed, w.finished()),
            average_duration: w.average_duration_ms.map(seconds),
            max_duration: w.max_duration_ms.map(|ms| seconds(ms as f64)),
            p50_duration: w.p50_duration_ms.map(|ms| seconds(ms as f64)),
            p95_duration: w.p95_duration_ms.map(|ms| seconds(ms as f64)),
            average_wait: w.average_wait_ms.map(seconds),
            p50_wait: w.p50_wait_ms.map(|ms| seconds(ms as f64)),
            p95_wait: w.p95_wait_ms.map(|ms| seconds(ms as f64)),
            average_cpu_time: w.average_cpu_ms.map(seconds),
            throughput_per_minute: round2(w.throughput_per_minute),
            error_rate: percent(w.failed, w.finished()),
            average_memory: w.average_memory_bytes.map(|b| b.round() as i64),
            max_memory: w.max_memory_bytes,
        }
    }

    fn alerts_at(&self, t: &AlertThresholds, now: i64) -> EngineResult<Vec<Alert>> {
        // The storage fault is known without a query, and the queries below may fail because
        // of it (a full disk can refuse even a read that needs to grow a file): the alert
        // must not depend on them.
        let storage = self.store.storage_fault().map(storage_alert);
        match self.figure_alerts(t, now) {
            Ok(mut alerts) => {
                alerts.extend(storage);
                Ok(alerts)
            }
            Err(e) => match storage {
                Some(alert) => {
                    tracing::debug!(
                        "alerts from stored figures unavailable during a storage fault: {e}"
                    );
                    Ok(vec![alert])
                }
                None => Err(e),
            },
        }
    }

    /// Every alert but the storage fault's: from stored figures, this host's runs and plugins.
    fn figure_alerts(&self, t: &AlertThresholds, now: i64) -> EngineResult<Vec<Alert>> {
        let hour = self.store.window_summary(now - HOUR_MS, now)?;
        let mut alerts: Vec<Alert> = [
            success_rate_alert(&hour, t),
            execution_time_alert(&hour, t),
            memory_alert(hour.max_memory_bytes, t),
            backlog_alert(self.store.oldest_due_pending(now)?, now, t),
        ]
        .into_iter()
        .flatten()
        .collect();
        alerts.extend(stuck_alerts(&self.store.stuck_tasks(now)?, now));
        alerts.extend(self.overdue_alerts());
        alerts.extend(plugin_alerts(&self.store.plugin_files()?));
        alerts.extend(self.orphan_alerts()?);
        Ok(alerts)
    }

    /// Tasks of this host whose timeout fired but whose plugin has not returned: the cancel
    /// flag is set, so a plugin that honours it stops within a step; one still running holds a
    /// pool slot and needs a look (or process isolation, which can kill it).
    fn overdue_alerts(&self) -> Vec<Alert> {
        // Abandoned runs too: the host gave their slot away, but their threads stay blocked.
        self.hub
            .all()
            .iter()
            .chain(self.hub.abandoned().iter())
            .filter(|task| task.timed_out.load(std::sync::atomic::Ordering::Relaxed))
            .map(|task| {
                let (ran, timeout) = (task.elapsed_secs(), task.timeout_secs());
                Alert {
                    kind: AlertKind::StuckTask,
                    severity: Severity::Critical,
                    message: format!(
                        "task {} ({}) has run {ran} s, past its timeout of {timeout} s, and does \
                         not stop",
                        task.id, task.identifier
                    ),
                    value: ran as f64,
                    threshold: timeout as f64,
                    subject: format!("task {}", task.id),
                }
            })
            .collect()
    }

    fn orphan_alerts(&self) -> EngineResult<Vec<Alert>> {
        let pending: HashMap<String, i64> = self.store.pending_counts()?.into_iter().collect();
        let orphans = self.store.workers(&WorkerFilter::default())?;
        Ok(orphans
            .iter()
            .filter(|w| w.state == WorkerState::Orphaned)
            .filter_map(|w| {
                let waiting = pending.get(&w.identifier).copied().unwrap_or(0);
                (waiting > 0).then(|| orphan_alert(&w.identifier, waiting))
            })
            .collect())
    }
}

/// The window length of `hours`, refused outside 1..=[`MAX_HOURS`].
fn window_ms(hours: u32) -> EngineResult<i64> {
    if hours == 0 || hours > MAX_HOURS {
        return Err(EngineError::Invalid(format!(
            "hours must be between 1 and {MAX_HOURS}, got {hours}"
        )));
    }
    Ok(i64::from(hours) * HOUR_MS)
}

fn worker_performance(w: &WorkerSummary) -> WorkerPerformance {
    WorkerPerformance {
        identifier: w.identifier.clone(),
        total_tasks: w.total_tasks,
        success_rate: percent(w.completed, w.completed + w.failed + w.cancelled),
        average_duration: w.average_duration_ms.map(seconds),
        p95_duration: w.p95_duration_ms.map(|ms| seconds(ms as f64)),
        average_cpu_time: w.average_cpu_ms.map(seconds),
        average_memory: w.average_memory_bytes.map(|b| b.round() as i64),
        max_memory: w.max_memory_bytes,
        last_execution: w.last_execution.map(rfc3339),
        failures: w.failed,
        versions: w.versions.clone(),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn seconds(ms: f64) -> f64 {
    round2(ms / 1000.0)
}

/// `part / whole × 100`, or `None` when `whole` is 0 (no fake 0 % or 100 %).
fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| round2(part as f64 * 100.0 / whole as f64))
}

fn warning(kind: AlertKind, message: String, value: f64, threshold: f64) -> Alert {
    Alert {
        kind,
        severity: Severity::Warning,
        message,
        value,
        threshold,
        subject: String::new(),
    }
}

/// Only over enough finished tasks: one failure among three is no trend.
fn success_rate_alert(hour: &WindowSummary, t: &AlertThresholds) -> Option<Alert> {
    let finished = hour.finished();
    if finished < t.min_finished_for_success_rate {
        return None;
    }
    let rate = percent(hour.completed, finished)?;
    (rate < t.min_success_rate).then(|| {
        warning(
            AlertKind::LowSuccessRate,
            format!(
                "{rate}% of the {finished} tasks finished in the last hour completed (minimum {}%)",
                t.min_success_rate
            ),
            rate,
            t.min_success_rate,
        )
    })
}

fn execution_time_alert(hour: &WindowSummary, t: &AlertThresholds) -> Option<Alert> {
    let average = seconds(hour.average_duration_ms?);
    (average > t.max_average_duration_secs).then(|| {
        warning(
            AlertKind::HighExecutionTime,
            format!(
                "tasks of the last hour ran {average} s on average (maximum {} s)",
                t.max_average_duration_secs
            ),
            average,
            t.max_average_duration_secs,
        )
    })
}

/// Over the largest figure measured in the last hour: one run that needs too much is worth a
/// look even when the average is fine. Without a measured run there is nothing to compare.
fn memory_alert(max_memory_bytes: Option<i64>, t: &AlertThresholds) -> Option<Alert> {
    let bytes = max_memory_bytes?;
    (bytes > t.max_memory_bytes).then(|| {
        warning(
            AlertKind::HighMemoryUsage,
            format!(
                "a run of the last hour grew the heap by {bytes} bytes (maximum {})",
                t.max_memory_bytes
            ),
            bytes as f64,
            t.max_memory_bytes as f64,
        )
    })
}

fn backlog_alert(
    oldest: Option<(i64, String, i64)>,
    now: i64,
    t: &AlertThresholds,
) -> Option<Alert> {
    let (id, identifier, run_at) = oldest?;
    let waited_ms = now - run_at;
    (waited_ms > t.max_queue_wait_secs * 1000).then(|| {
        let waited = seconds(waited_ms as f64);
        warning(
            AlertKind::QueueBacklog,
            format!(
                "task {id} ({identifier}) has waited {waited} s since it was due (maximum {} s)",
                t.max_queue_wait_secs
            ),
            waited,
            t.max_queue_wait_secs as f64,
        )
    })
}

/// One per task: each needs its own look (which host held it, what it was doing). The janitor
/// recovers expired leases within a minute, so a stuck task that persists means recovery
/// itself is failing.
fn stuck_alerts(stuck: &[(i64, String, i64)], now: i64) -> Vec<Alert> {
    stuck
        .iter()
        .map(|(id, identifier, expired_at)| {
            let overdue = seconds((now - expired_at) as f64);
            Alert {
                kind: AlertKind::StuckTask,
                severity: Severity::Critical,
                message: format!(
                    "task {id} ({identifier}) lost its lease {overdue} s ago: its host died or hangs"
                ),
                value: overdue,
                threshold: 0.0,
                subject: format!("task {id}"),
            }
        })
        .collect()
}

fn plugin_alerts(files: &[PluginFile]) -> Vec<Alert> {
    files
        .iter()
        .filter(|f| f.state == "error")
        .map(|f| {
            warning(
                AlertKind::PluginLoadError,
                format!(
                    "plugins.d/{} was refused: {}",
                    f.file,
                    f.error.as_deref().unwrap_or("unknown error")
                ),
                1.0,
                0.0,
            )
            .about(format!("plugins.d/{}", f.file))
        })
        .collect()
}

fn storage_alert(fault: String) -> Alert {
    Alert {
        kind: AlertKind::StorageFault,
        severity: Severity::Critical,
        message: fault,
        value: 1.0,
        threshold: 0.0,
        subject: String::new(),
    }
}

fn orphan_alert(identifier: &str, pending: i64) -> Alert {
    warning(
        AlertKind::OrphanedWorkerWithPendingTasks,
        format!(
            "worker '{identifier}' is orphaned (its library was removed) and {pending} pending \
             tasks wait for it"
        ),
        pending as f64,
        0.0,
    )
    .about(format!("worker {identifier}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::events::EventBus;
    use crate::model::{Priority, TaskStatus};
    use crate::store::conformance::{record, task, Run};
    use crate::store::sqlite::SqliteStore;
    use crate::store::{ClaimRequest, Store, WorkerRegistration};
    use serde_json::json;
    use std::sync::Arc;
    use TaskStatus::{Cancelled, Completed, Failed, Pending, Running};

    /// A fixed "now" (2025-01-16T10:00:00Z) so every figure is exact.
    const NOW: i64 = 1_737_021_600_000;
    const MIN: i64 = 60_000;

    /// An engine over a migrated store in a fresh temporary home.
    fn engine() -> Arc<Engine> {
        let home = std::env::temp_dir().join(format!("stask-analytics-{}", uuid::Uuid::new_v4()));
        let store = SqliteStore::open(&home.join("storage").join("stask.db")).expect("open");
        store.migrate().expect("migrate");
        let config = Config::load(Some(home)).expect("config");
        Engine::new(config, Arc::new(store), EventBus::new(16))
    }

    fn store(engine: &Engine) -> &dyn Store {
        &*engine.store
    }

    /// `n` finished runs of worker `w` in the last hour, `duration_ms` each.
    fn finished(engine: &Engine, n: usize, status: TaskStatus, duration_ms: i64) {
        for i in 0..n {
            let created = NOW - 30 * MIN + i as i64;
            record(
                store(engine),
                &Run::new("w", created, 0, status, duration_ms),
            );
        }
    }

    fn alerts(engine: &Engine) -> Vec<Alert> {
        engine.alerts_at(&AlertThresholds::default(), NOW).unwrap()
    }

    fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
        alerts.iter().map(|a| a.kind).collect()
    }

    /// A pending task of `identifier` due at `due`.
    fn pending(engine: &Engine, identifier: &str, due: i64) -> i64 {
        let new = task(identifier, Priority::Normal, Some(due));
        store(engine).insert_task(&new, due).unwrap()
    }

    fn register(engine: &Engine, identifier: &str, state: WorkerState) {
        let registration = WorkerRegistration {
            identifier: identifier.into(),
            scope: "default".into(),
            class: format!("{identifier}.so:W"),
            title: identifier.into(),
            description: String::new(),
            actions: json!([{"name": "run"}]),
            default_settings: json!({}),
            file: format!("{identifier}.so"),
            file_sha256: "0".repeat(64),
            version: "1.0.0".into(),
            active_when_new: true,
            new_load: true,
        };
        store(engine).upsert_worker(&registration, NOW).unwrap();
        store(engine)
            .set_worker_state(identifier, state, None, NOW)
            .unwrap();
    }

    /// Last hour: 3 completed (1 s, 2 s, 4.5 s), 1 failed (0.5 s, "boom"), 1 cancelled
    /// (0.25 s), 1 running, 1 pending; waits 1, 2, 0, 0, 0.5, 1.5 s; CPU 1 234, 10 and 8 ms;
    /// memory 2 000 000 and 1 000 001 bytes. Two hours ago: one more failure, outside the
    /// window.
    fn known_hour(engine: &Engine) {
        let runs = [
            Run::new("w", NOW - 2 * HOUR_MS, 0, Failed, 9_000).error("old"),
            Run::new("w", NOW - 50 * MIN, 1_000, Completed, 1_000)
                .version("1.0")
                .cost(1_234, Some(2_000_000)),
            Run::new("w", NOW - 40 * MIN, 2_000, Completed, 2_000)
                .version("1.1")
                .cost(10, None),
            Run::new("w", NOW - 30 * MIN, 0, Completed, 4_500).version("1.1"),
            Run::new("w", NOW - 20 * MIN, 0, Failed, 500)
                .error("boom")
                .version("1.1"),
            Run::new("v", NOW - 15 * MIN, 500, Cancelled, 250).cost(8, Some(1_000_001)),
            Run::new("v", NOW - 10 * MIN, 1_500, Running, 0),
        ];
        for run in &runs {
            record(store(engine), run);
        }
        pending(engine, "v", NOW - 5 * MIN);
    }

    #[test]
    fn summary_of_a_known_hour() {
        let engine = engine();
        known_hour(&engine);
        let summary = engine.performance_summary_at(1, NOW).unwrap();
        assert_eq!(
            serde_json::to_value(&summary).unwrap(),
            json!({
                "period": {
                    "hours": 1,
                    "from": "2025-01-16T09:00:00.000Z",
                    "to": "2025-01-16T10:00:00.000Z"
                },
                "tasks": {
                    "total": 7, "completed": 3, "failed": 1, "cancelled": 1,
                    "running": 1, "queued": 1
                },
                "performance": {
                    "success_rate": 60.0,
                    "average_duration": 1.65,
                    "max_duration": 4.5,
                    "p50_duration": 1.0,
                    "p95_duration": 4.5,
                    "average_wait": 0.83,
                    "p50_wait": 0.5,
                    "p95_wait": 2.0,
                    // (1 234 + 10 + 8) / 3 ms
                    "average_cpu_time": 0.42,
                    "throughput_per_minute": 0.08,
                    "error_rate": 20.0,
                    // (2 000 000 + 1 000 001) / 2, rounded half away from zero
                    "average_memory": 1_500_001,
                    "max_memory": 2_000_000
                },
                "common_errors": [{"message": "boom", "count": 1}]
            })
        );
    }

    #[test]
    fn an_empty_window_has_nulls_not_zeros() {
        let engine = engine();
        let summary = engine.performance_summary_at(24, NOW).unwrap();
        assert_eq!(
            serde_json::to_value(&summary.performance).unwrap(),
            json!({
                "success_rate": null, "average_duration": null, "max_duration": null,
                "p50_duration": null, "p95_duration": null, "average_wait": null,
                "p50_wait": null, "p95_wait": null, "average_cpu_time": null,
                "throughput_per_minute": 0.0, "error_rate": null, "average_memory": null,
                "max_memory": null
            })
        );
        assert_eq!(summary.tasks.total, 0);
        assert!(summary.common_errors.is_empty());
        assert!(engine.worker_performance(24).unwrap().is_empty());
    }

    #[test]
    fn hours_outside_the_range_are_refused() {
        let engine = engine();
        for hours in [0, MAX_HOURS + 1] {
            assert!(matches!(
                engine.performance_summary(hours),
                Err(EngineError::Invalid(_))
            ));
            assert!(matches!(
                engine.worker_performance(hours),
                Err(EngineError::Invalid(_))
            ));
        }
        assert!(engine.performance_summary(MAX_HOURS).is_ok());
    }

    #[test]
    fn worker_performance_per_identifier() {
        let engine = engine();
        known_hour(&engine);
        pending(&engine, "u", NOW - MIN);
        let workers: Vec<WorkerPerformance> = store(&engine)
            .worker_summaries(NOW - HOUR_MS)
            .unwrap()
            .iter()
            .map(worker_performance)
            .collect();
        assert_eq!(
            serde_json::to_value(&workers).unwrap(),
            json!([
                {
                    "identifier": "u", "total_tasks": 1, "success_rate": null,
                    "average_duration": null, "p95_duration": null, "last_execution": null,
                    "average_cpu_time": null, "average_memory": null, "max_memory": null,
                    "failures": 0, "versions": []
                },
                {
                    "identifier": "v", "total_tasks": 3, "success_rate": 0.0,
                    "average_duration": 0.25, "p95_duration": null,
                    "average_cpu_time": 0.01, "average_memory": 1_000_001,
                    "max_memory": 1_000_001,
                    "last_execution": "2025-01-16T09:50:01.500Z",
                    "failures": 0, "versions": []
                },
                {
                    "identifier": "w", "total_tasks": 4, "success_rate": 75.0,
                    "average_duration": 2.0, "p95_duration": 4.5,
                    "average_cpu_time": 0.62, "average_memory": 2_000_000,
                    "max_memory": 2_000_000,
                    "last_execution": "2025-01-16T09:40:00.000Z",
                    "failures": 1, "versions": ["1.0", "1.1"]
                }
            ])
        );
    }

    #[test]
    fn a_quiet_system_raises_nothing() {
        let engine = engine();
        assert!(alerts(&engine).is_empty(), "the empty hour raises no alert");
        finished(&engine, 3, Completed, 1_000);
        assert!(alerts(&engine).is_empty());
    }

    #[test]
    fn low_success_rate_needs_enough_finished_tasks() {
        let engine = engine();
        finished(&engine, 10, Completed, 1_000);
        finished(&engine, 9, Failed, 1_000);
        assert!(alerts(&engine).is_empty(), "19 finished: too few to judge");
        finished(&engine, 1, Cancelled, 1_000);
        let alerts = alerts(&engine);
        assert_eq!(kinds(&alerts), vec![AlertKind::LowSuccessRate]);
        assert_eq!(
            (alerts[0].severity, alerts[0].value, alerts[0].threshold),
            (Severity::Warning, 50.0, 95.0),
            "cancelled tasks count as finished, not completed"
        );
    }

    #[test]
    fn a_success_rate_exactly_at_the_minimum_is_fine() {
        let engine = engine();
        finished(&engine, 19, Completed, 1_000);
        finished(&engine, 1, Failed, 1_000);
        assert!(alerts(&engine).is_empty(), "95 % is not below 95 %");
        finished(&engine, 1, Failed, 1_000);
        assert_eq!(kinds(&alerts(&engine)), vec![AlertKind::LowSuccessRate]);
    }

    #[test]
    fn high_execution_time_only_above_the_maximum() {
        let engine = engine();
        finished(&engine, 2, Completed, 300_000);
        assert!(alerts(&engine).is_empty(), "an average of exactly 300 s");
        finished(&engine, 1, Completed, 300_030);
        let alerts = alerts(&engine);
        assert_eq!(kinds(&alerts), vec![AlertKind::HighExecutionTime]);
        assert_eq!((alerts[0].value, alerts[0].threshold), (300.01, 300.0));
    }

    #[test]
    fn executions_older_than_an_hour_do_not_count() {
        let engine = engine();
        let old = NOW - HOUR_MS - 1;
        record(store(&engine), &Run::new("w", old, 0, Completed, 900_000));
        for i in 0..20 {
            record(store(&engine), &Run::new("w", old - i - 1, 0, Failed, 1));
        }
        assert!(alerts(&engine).is_empty());
    }

    #[test]
    fn queue_backlog_after_the_maximum_wait() {
        let engine = engine();
        pending(&engine, "w", NOW - 300_000);
        pending(&engine, "w", NOW + MIN);
        assert!(alerts(&engine).is_empty(), "waited exactly 300 s");
        let id = pending(&engine, "x", NOW - 301_000);
        let alerts = alerts(&engine);
        assert_eq!(kinds(&alerts), vec![AlertKind::QueueBacklog]);
        assert_eq!((alerts[0].value, alerts[0].threshold), (301.0, 300.0));
        assert!(alerts[0].message.contains(&format!("task {id} (x)")));
    }

    #[test]
    fn one_critical_alert_per_stuck_task() {
        let engine = engine();
        let ids: Vec<i64> = (0..3).map(|_| pending(&engine, "w", NOW - MIN)).collect();
        let claim = |now: i64, lease_ms: i64| {
            store(&engine)
                .claim(&ClaimRequest {
                    owner: "dead",
                    limit: 1,
                    now,
                    lease_ms,
                    identifiers: &["w".to_owned()],
                })
                .unwrap()
        };
        claim(NOW - 50_000, 10_000); // expired 40 s ago
        let running = claim(NOW - 50_000, 20_000).remove(0); // expired 30 s ago
        store(&engine)
            .start_runs(&[running.lease()], NOW - 45_000)
            .unwrap();
        store(&engine).flush_starts(NOW - 45_000).unwrap();
        claim(NOW - 50_000, 50_000); // expires exactly now: not stuck yet
        let alerts = alerts(&engine);
        assert_eq!(kinds(&alerts), vec![AlertKind::StuckTask; 2]);
        assert!(alerts.iter().all(|a| a.severity == Severity::Critical));
        assert_eq!((alerts[0].value, alerts[1].value), (40.0, 30.0));
        assert!(alerts[0].message.contains(&format!("task {}", ids[0])));
    }

    #[test]
    fn plugin_load_errors_alert_per_refused_file() {
        let engine = engine();
        let file = |name: &str, state: &str| PluginFile {
            file: name.into(),
            file_sha256: None,
            state: state.into(),
            identifier: None,
            error: (state == "error").then(|| "not an ELF shared object".into()),
            error_detail: None,
            updated_at: NOW,
        };
        for (name, state) in [("good.so", "loaded"), ("gone.so", "removed")] {
            store(&engine)
                .record_plugin_file(&file(name, state))
                .unwrap();
        }
        assert!(alerts(&engine).is_empty());
        store(&engine)
            .record_plugin_file(&file("bad.so", "error"))
            .unwrap();
        let alerts = alerts(&engine);
        assert_eq!(kinds(&alerts), vec![AlertKind::PluginLoadError]);
        assert_eq!(
            alerts[0].message,
            "plugins.d/bad.so was refused: not an ELF shared object"
        );
    }

    #[test]
    fn orphaned_workers_alert_only_with_pending_tasks() {
        let engine = engine();
        register(&engine, "gone", WorkerState::Orphaned);
        register(&engine, "idle", WorkerState::Orphaned);
        register(&engine, "live", WorkerState::Loaded);
        pending(&engine, "live", NOW);
        assert!(alerts(&engine).is_empty());
        pending(&engine, "gone", NOW);
        pending(&engine, "gone", NOW + HOUR_MS);
        let alerts = alerts(&engine);
        assert_eq!(
            kinds(&alerts),
            vec![AlertKind::OrphanedWorkerWithPendingTasks]
        );
        assert_eq!((alerts[0].value, alerts[0].threshold), (2.0, 0.0));
        assert!(alerts[0].message.contains("'gone'"));
    }

    #[test]
    fn memory_alerts_need_a_measured_figure() {
        let t = AlertThresholds::default();
        assert_eq!(memory_alert(None, &t), None);
        assert_eq!(memory_alert(Some(t.max_memory_bytes), &t), None);
        let alert = memory_alert(Some(t.max_memory_bytes + 1), &t).unwrap();
        assert_eq!(
            (alert.kind, alert.value, alert.threshold),
            (AlertKind::HighMemoryUsage, 536_870_913.0, 536_870_912.0)
        );
    }

    #[test]
    fn high_memory_usage_follows_the_largest_measured_run_of_the_hour() {
        let engine = engine();
        known_hour(&engine);
        let at = |max_memory_bytes| AlertThresholds {
            max_memory_bytes,
            ..AlertThresholds::default()
        };
        let fired = engine.alerts_at(&at(1_999_999), NOW).unwrap();
        assert_eq!(kinds(&fired), vec![AlertKind::HighMemoryUsage]);
        assert_eq!(
            (fired[0].value, fired[0].threshold),
            (2_000_000.0, 1_999_999.0)
        );
        assert!(engine.alerts_at(&at(2_000_000), NOW).unwrap().is_empty());
        // An hour later the run is outside the window.
        assert!(engine
            .alerts_at(&at(1), NOW + HOUR_MS)
            .unwrap()
            .iter()
            .all(|a| a.kind != AlertKind::HighMemoryUsage));
    }

    #[test]
    fn alerts_serialize_with_a_type_field() {
        let alert = orphan_alert("gone", 3);
        assert_eq!(
            serde_json::to_value(&alert).unwrap(),
            json!({
                "type": "orphaned_worker_with_pending_tasks",
                "severity": "warning",
                "message": "worker 'gone' is orphaned (its library was removed) and 3 pending \
                            tasks wait for it",
                "value": 3.0,
                "threshold": 0.0
            })
        );
        let stuck = &stuck_alerts(&[(7, "w".into(), NOW - 1_500)], NOW)[0];
        assert_eq!(
            serde_json::to_value(stuck).unwrap()["severity"],
            json!("critical")
        );
    }

    #[test]
    fn pending_retries_are_queued_not_finished() {
        // A task back to pending after a failed attempt is queued: it counts neither as
        // finished nor in the success rate.
        let engine = engine();
        finished(&engine, 1, Completed, 1_000);
        let id = pending(&engine, "r", NOW - 20 * MIN);
        let claimed = store(&engine)
            .claim(&ClaimRequest {
                owner: "h",
                limit: 1,
                now: NOW - 19 * MIN,
                lease_ms: 1_000,
                identifiers: &["r".to_owned()],
            })
            .unwrap()
            .remove(0);
        let back = crate::store::Finish {
            id,
            lease_token: claimed.lease_token,
            status: Pending,
            message: "attempt 1 failed".into(),
            result: None,
            result_file: None,
            run_at: Some(NOW + MIN),
            last_error: Some("flaky".into()),
            duration_ms: Some(10),
            started_at: None,
            cpu_ms: None,
            memory_bytes: None,
            progress: None,
            processed: None,
            total: None,
            worker_version: None,
            at: NOW - 19 * MIN,
            attempts: claimed.attempt,
            if_started: None,
        };
        assert_eq!(store(&engine).finish(&[back]).unwrap(), vec![true]);
        let summary = engine.performance_summary_at(1, NOW).unwrap();
        assert_eq!(
            (
                summary.tasks.queued,
                summary.performance.success_rate,
                summary.common_errors.len()
            ),
            (1, Some(100.0), 0)
        );
    }
}

/// Completed and failed tasks per interval.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    /// Start of the first interval (RFC 3339).
    pub from: String,
    /// End of the last interval (RFC 3339).
    pub to: String,
    /// Length of an interval.
    pub bucket_seconds: f64,
    /// One point per interval, oldest first.
    pub points: Vec<TimelinePoint>,
}

/// One interval of a [`Timeline`].
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TimelinePoint {
    /// Start of the interval (RFC 3339).
    pub at: String,
    /// Tasks completed in it.
    pub completed: i64,
    /// Tasks failed in it.
    pub failed: i64,
}
