//! The analytics a driver computes for the performance API and the health alerts.
//!
//! Every figure is an SQL aggregate over `s_tasks`: a driver never loads a window's rows to
//! count them. Figures are raw (milliseconds, unrounded); [`crate::engine::analytics`] shapes
//! them for people. The shared helpers below ([`nearest_rank`], [`per_minute`]) keep every
//! driver's definitions identical, so the conformance properties can check exact values.

use super::StoreResult;
use serde::Serialize;

/// How often one failure message occurred in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    /// The failure message: the task's `last_error`, or its status message when it has none.
    pub message: String,
    /// Failed tasks that ended with it.
    pub count: i64,
}

/// Figures over the tasks created in a window (`created_at >= since`).
///
/// "Finished" means completed, failed or cancelled (status 30, 40, 50).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowSummary {
    /// Start of the window (UNIX ms, inclusive).
    pub since: i64,
    /// End of the window (UNIX ms): only sets the window's length for the throughput.
    pub now: i64,
    /// Tasks created in the window.
    pub total: i64,
    /// Of those, pending now.
    pub pending: i64,
    /// Preparing now (claimed, not yet reported running).
    pub preparing: i64,
    /// Running now.
    pub running: i64,
    /// Completed.
    pub completed: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
    /// Mean `duration_ms` of the finished tasks that have one; `None` when none has.
    pub average_duration_ms: Option<f64>,
    /// Longest `duration_ms` of the finished tasks; `None` when none has one.
    pub max_duration_ms: Option<i64>,
    /// Median `duration_ms` of completed and failed tasks (nearest rank, see [`nearest_rank`]).
    pub p50_duration_ms: Option<i64>,
    /// 95th percentile `duration_ms` of completed and failed tasks (nearest rank).
    pub p95_duration_ms: Option<i64>,
    /// Mean `started_at - run_at` of the tasks whose current attempt started (see the driver
    /// docs of [`AnalyticsStore::window_summary`]).
    pub average_wait_ms: Option<f64>,
    /// Median of those waits (nearest rank).
    pub p50_wait_ms: Option<i64>,
    /// 95th percentile of those waits (nearest rank).
    pub p95_wait_ms: Option<i64>,
    /// Mean `cpu_ms` of the finished tasks that have one.
    pub average_cpu_ms: Option<f64>,
    /// Mean `memory_bytes` of the finished tasks that have one (runs that were measured).
    pub average_memory_bytes: Option<f64>,
    /// Largest `memory_bytes` of the finished tasks.
    pub max_memory_bytes: Option<i64>,
    /// Finished tasks per minute of the window ([`per_minute`]).
    pub throughput_per_minute: f64,
    /// The five most common failure messages of failed tasks, most frequent first (ties by
    /// message).
    pub common_errors: Vec<ErrorCount>,
}

impl WindowSummary {
    /// Completed + failed + cancelled.
    pub fn finished(&self) -> i64 {
        self.completed + self.failed + self.cancelled
    }
}

/// Figures of one worker identifier over the tasks created in a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkerSummary {
    /// Worker identifier.
    pub identifier: String,
    /// Its tasks created in the window.
    pub total_tasks: i64,
    /// Completed.
    pub completed: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
    /// Mean `duration_ms` of its finished tasks that have one.
    pub average_duration_ms: Option<f64>,
    /// 95th percentile `duration_ms` of its completed and failed tasks (nearest rank).
    pub p95_duration_ms: Option<i64>,
    /// Mean `cpu_ms` of its finished tasks that have one.
    pub average_cpu_ms: Option<f64>,
    /// Mean `memory_bytes` of its finished tasks that have one.
    pub average_memory_bytes: Option<f64>,
    /// Largest `memory_bytes` of its finished tasks.
    pub max_memory_bytes: Option<i64>,
    /// Latest `started_at` of its tasks (UNIX ms).
    pub last_execution: Option<i64>,
    /// Distinct `worker_version`s its tasks ran on, sorted.
    pub versions: Vec<String>,
}

/// How many failure messages [`AnalyticsStore::window_summary`] lists in `common_errors`.
pub const COMMON_ERRORS: usize = 5;

/// The 1-based nearest rank of the `percent`th percentile among `count` sorted values:
/// `ceil(percent * count / 100)`, at least 1; `None` when there are no values.
///
/// Nearest rank always names a value that occurred (no interpolation), which is what a
/// `LIMIT 1 OFFSET rank - 1` query can return.
pub fn nearest_rank(count: i64, percent: i64) -> Option<i64> {
    (count > 0).then(|| ((percent * count + 99) / 100).clamp(1, count))
}

/// `count` events per minute of the window `[since, now]`; 0 for an empty or reversed window
/// (never a division by zero).
pub fn per_minute(count: i64, since: i64, now: i64) -> f64 {
    let minutes = (now - since) as f64 / 60_000.0;
    if minutes > 0.0 {
        count as f64 / minutes
    } else {
        0.0
    }
}

/// Aggregates over the task table for the performance API and the health alerts.
///
/// All methods are read-only and answer from SQL aggregates or index ranges.
pub trait AnalyticsStore: Send + Sync {
    /// Figures over the tasks created at or after `since`; `now` is the window's end for the
    /// throughput. The queue wait counts only tasks whose current attempt really started (not
    /// pending, at least one attempt, `started_at >= run_at`), so a retried task's stale
    /// `started_at` never yields a negative wait.
    fn window_summary(&self, since: i64, now: i64) -> StoreResult<WindowSummary>;

    /// One [`WorkerSummary`] per identifier having tasks created at or after `since`, ordered
    /// by identifier.
    fn worker_summaries(&self, since: i64) -> StoreResult<Vec<WorkerSummary>>;

    /// The pending task that has been due longest: `(id, identifier, run_at)` of the pending
    /// task with `run_at <= now` and the smallest `run_at` (then id); `None` if none is due.
    fn oldest_due_pending(&self, now: i64) -> StoreResult<Option<(i64, String, i64)>>;

    /// Preparing or running tasks whose lease expired before `now`:
    /// `(id, identifier, lease_expires_at)`, oldest expiry first.
    fn stuck_tasks(&self, now: i64) -> StoreResult<Vec<(i64, String, i64)>>;

    /// Pending tasks (due or scheduled) per identifier, ordered by identifier; identifiers
    /// without pending tasks are absent.
    fn pending_counts(&self) -> StoreResult<Vec<(String, i64)>>;

    /// Completed and failed tasks per time bucket: `(bucket index, completed, failed)` for tasks
    /// that finished in `[since, until)`, bucket = `(finished_at - since) / bucket_ms`; empty
    /// buckets are absent.
    fn finished_per_bucket(
        &self,
        since: i64,
        until: i64,
        bucket_ms: i64,
    ) -> StoreResult<Vec<(i64, i64, i64)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_is_the_ceiling_and_stays_in_range() {
        assert_eq!(nearest_rank(0, 50), None);
        assert_eq!(nearest_rank(1, 95), Some(1));
        assert_eq!(nearest_rank(5, 50), Some(3));
        assert_eq!(nearest_rank(4, 50), Some(2));
        assert_eq!(nearest_rank(20, 95), Some(19));
        assert_eq!(nearest_rank(21, 95), Some(20));
        assert_eq!(nearest_rank(3, 0), Some(1));
    }

    #[test]
    fn per_minute_never_divides_by_zero() {
        assert_eq!(per_minute(8, 0, 600_000), 0.8);
        assert_eq!(per_minute(8, 10, 10), 0.0);
        assert_eq!(per_minute(8, 10, 5), 0.0);
    }
}
