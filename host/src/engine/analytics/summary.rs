//! The performance of a window: task counts, rates, durations and the most common errors
//! ([`PerformanceSummary`]), and the same figures per worker ([`WorkerPerformance`]).

use super::window_ms;
use crate::clock::{now_ms, rfc3339};
use crate::engine::{Engine, EngineResult};
use crate::figures::{percent, round2, seconds};
use crate::store::{ErrorCount, WindowSummary, WorkerSummary};
use serde::Serialize;

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
    pub common_errors: Vec<ErrorCountView>,
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

// The API's copy of `crate::store::ErrorCount`: the storage layer knows nothing of the
// OpenAPI document, so the schema is derived here, under the store type's name. The doc
// comment is the schema's description: it stays the store type's, word for word.
/// How often one failure message occurred in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ErrorCount)]
pub struct ErrorCountView {
    /// The failure message: the task's `last_error`, or its status message when it has none.
    pub message: String,
    /// Failed tasks that ended with it.
    pub count: i64,
}

impl From<ErrorCount> for ErrorCountView {
    fn from(e: ErrorCount) -> Self {
        ErrorCountView {
            message: e.message,
            count: e.count,
        }
    }
}

impl Engine {
    /// The performance of the tasks created in the last `hours` hours (1 to
    /// [`MAX_HOURS`](super::MAX_HOURS)).
    pub fn performance_summary(&self, hours: u32) -> EngineResult<PerformanceSummary> {
        self.performance_summary_at(hours, now_ms())
    }

    /// The performance of each worker over the tasks created in the last `hours` hours (1 to
    /// [`MAX_HOURS`](super::MAX_HOURS)), ordered by identifier.
    pub fn worker_performance(&self, hours: u32) -> EngineResult<Vec<WorkerPerformance>> {
        let since = now_ms() - window_ms(hours)?;
        let workers = self.store.worker_summaries(since)?;
        Ok(workers.iter().map(worker_performance).collect())
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
            performance: figures(&window),
            common_errors: window.common_errors.into_iter().map(Into::into).collect(),
        })
    }
}

fn figures(w: &WindowSummary) -> PerformanceFigures {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{engine, finished, known_hour, pending, store, MIN, NOW};
    use super::super::{HOUR_MS, MAX_HOURS};
    use super::*;
    use crate::engine::EngineError;
    use crate::model::TaskStatus::{Completed, Pending};
    use crate::store::ClaimRequest;
    use serde_json::json;

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
                ..Default::default()
            })
            .unwrap()
            .tasks
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
