//! Health alerts: what they are ([`Alert`]), when they are raised ([`AlertThresholds`]) and
//! the pure rules that turn figures into alerts.
//!
//! This module sits below the engine so that the configuration (which holds the thresholds)
//! and the event bus (which carries alerts) need nothing of the engine. The engine gathers the
//! figures from the store and this host's runs (`engine::analytics::alerts`) and calls the
//! rules here; `engine::monitor` watches the result and announces changes.
//!
//! Every comparison is strict (a figure exactly at its threshold raises nothing) and uses the
//! figure as the alert shows it (two decimals, see [`crate::figures`]).

use crate::figures::{percent, seconds};
use crate::model::PluginFile;
use serde::{Deserialize, Serialize};

/// When the engine raises an alert. Every comparison is strict (a figure exactly at its
/// threshold raises nothing) and uses the figure as the alert shows it (two decimals).
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

/// `low_success_rate` over the last hour's `completed` of `finished` tasks, only over enough
/// finished tasks: one failure among three is no trend.
pub(crate) fn success_rate_alert(
    completed: i64,
    finished: i64,
    t: &AlertThresholds,
) -> Option<Alert> {
    if finished < t.min_finished_for_success_rate {
        return None;
    }
    let rate = percent(completed, finished)?;
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

/// `high_execution_time` over the last hour's mean duration (ms); none without a duration.
pub(crate) fn execution_time_alert(
    average_duration_ms: Option<f64>,
    t: &AlertThresholds,
) -> Option<Alert> {
    let average = seconds(average_duration_ms?);
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
pub(crate) fn memory_alert(max_memory_bytes: Option<i64>, t: &AlertThresholds) -> Option<Alert> {
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

/// `queue_backlog` over the oldest due pending task `(id, identifier, run_at)`, if any.
pub(crate) fn backlog_alert(
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

/// One per task `(id, identifier, lease expired at)`: each needs its own look (which host
/// held it, what it was doing). The janitor recovers expired leases within a minute, so a
/// stuck task that persists means recovery itself is failing.
pub(crate) fn stuck_alerts(stuck: &[(i64, String, i64)], now: i64) -> Vec<Alert> {
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

/// A task of this host that has run `ran_secs`, past its timeout of `timeout_secs`, and does
/// not stop: its plugin ignores the cancel flag and holds a pool slot.
pub(crate) fn overdue_alert(id: i64, identifier: &str, ran_secs: u64, timeout_secs: u64) -> Alert {
    Alert {
        kind: AlertKind::StuckTask,
        severity: Severity::Critical,
        message: format!(
            "task {id} ({identifier}) has run {ran_secs} s, past its timeout of {timeout_secs} s, \
             and does not stop"
        ),
        value: ran_secs as f64,
        threshold: timeout_secs as f64,
        subject: format!("task {id}"),
    }
}

/// One per library of plugins.d/ that was refused.
pub(crate) fn plugin_alerts(files: &[PluginFile]) -> Vec<Alert> {
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

/// The storage fault the store reports, as it reports it.
pub(crate) fn storage_alert(fault: String) -> Alert {
    Alert {
        kind: AlertKind::StorageFault,
        severity: Severity::Critical,
        message: fault,
        value: 1.0,
        threshold: 0.0,
        subject: String::new(),
    }
}

/// An orphaned worker for which `pending` tasks wait.
pub(crate) fn orphan_alert(identifier: &str, pending: i64) -> Alert {
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
    use serde_json::json;

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
        let now = 1_737_021_600_000;
        let stuck = &stuck_alerts(&[(7, "w".into(), now - 1_500)], now)[0];
        assert_eq!(
            serde_json::to_value(stuck).unwrap()["severity"],
            json!("critical")
        );
    }

    #[test]
    fn the_key_names_kind_and_subject_not_the_figure() {
        let a = orphan_alert("gone", 3);
        let b = orphan_alert("gone", 4);
        assert_eq!(a.key(), "orphaned_worker_with_pending_tasks:worker gone");
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), orphan_alert("other", 3).key());
        let backlog = backlog_alert(
            Some((1, "w".into(), 0)),
            301_000,
            &AlertThresholds::default(),
        );
        assert_eq!(backlog.unwrap().key(), "queue_backlog:");
    }

    #[test]
    fn an_overdue_run_is_a_critical_stuck_task() {
        let alert = overdue_alert(12, "w", 95, 60);
        assert_eq!(
            (alert.kind, alert.severity, alert.value, alert.threshold),
            (AlertKind::StuckTask, Severity::Critical, 95.0, 60.0)
        );
        assert_eq!(
            alert.message,
            "task 12 (w) has run 95 s, past its timeout of 60 s, and does not stop"
        );
        assert_eq!(alert.key(), "stuck_task:task 12");
    }
}
