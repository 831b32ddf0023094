//! Analytics: the window summary, per-worker figures, percentiles, the oldest due task,
//! stuck tasks, pending counts and the finished tasks per time bucket, over histories recorded
//! through the store API ([`record`]).

use super::{claim, finish, task};
use crate::model::{Priority, TaskStatus};
use crate::{ClaimRequest, ClaimedTask, Store};

/// Lease of the runs [`record`] claims: long enough that a history's preparing and running
/// tasks never look stuck unless a property wants them to.
pub const RUN_LEASE_MS: i64 = 3_600_000;

/// One task's history for the analytics properties: created at `created`, claimed `wait` ms
/// later, then left preparing or running, or finished `duration_ms` after its start.
#[derive(Debug, Clone)]
pub struct Run {
    /// Worker identifier.
    pub identifier: &'static str,
    /// Creation time (also its due time).
    pub created: i64,
    /// Queue wait before the claim.
    pub wait: i64,
    /// Final status: preparing, running, completed, failed or cancelled.
    pub status: TaskStatus,
    /// Duration recorded by the finish.
    pub duration_ms: i64,
    /// `last_error` recorded by the finish.
    pub error: Option<&'static str>,
    /// `worker_version` recorded by the finish.
    pub version: Option<&'static str>,
    /// `cpu_ms` recorded by the finish.
    pub cpu_ms: Option<i64>,
    /// `memory_bytes` recorded by the finish.
    pub memory_bytes: Option<i64>,
}

impl Run {
    /// A run without error or version.
    pub fn new(
        identifier: &'static str,
        created: i64,
        wait: i64,
        status: TaskStatus,
        duration_ms: i64,
    ) -> Run {
        Run {
            identifier,
            created,
            wait,
            status,
            duration_ms,
            error: None,
            version: None,
            cpu_ms: None,
            memory_bytes: None,
        }
    }

    /// With this CPU time and (if measured) memory.
    pub fn cost(mut self, cpu_ms: i64, memory_bytes: Option<i64>) -> Run {
        self.cpu_ms = Some(cpu_ms);
        self.memory_bytes = memory_bytes;
        self
    }

    /// With this `last_error`.
    pub fn error(mut self, error: &'static str) -> Run {
        self.error = Some(error);
        self
    }

    /// With this `worker_version`.
    pub fn version(mut self, version: &'static str) -> Run {
        self.version = Some(version);
        self
    }

    /// When its attempt started.
    pub fn started(&self) -> i64 {
        self.created + self.wait
    }
}

/// Claims the due pending tasks of `identifier` (at most `limit`) at `now`.
fn claim_of(store: &dyn Store, identifier: &str, limit: usize, now: i64) -> Vec<ClaimedTask> {
    store
        .claim(&ClaimRequest {
            owner: "analytics",
            limit,
            now,
            lease_ms: RUN_LEASE_MS,
            identifiers: &[identifier.to_owned()],
            ..Default::default()
        })
        .unwrap()
        .tasks
}

/// Records `run` through the store API and returns its task id. The caller keeps no other
/// due pending task of the same identifier (the claim must take this one).
pub fn record(store: &dyn Store, run: &Run) -> i64 {
    let id = store
        .insert_task(&task(run.identifier, Priority::Normal, None), run.created)
        .unwrap();
    let claimed = claim_of(store, run.identifier, 1, run.started());
    assert_eq!(claimed.len(), 1, "the run's own task is claimed");
    assert_eq!(claimed[0].id, id, "the run's own task is claimed");
    let lease = claimed[0].lease();
    match run.status {
        TaskStatus::Preparing => {}
        TaskStatus::Running => {
            store.start_runs(&[lease], run.started()).unwrap();
            store.flush_starts(run.started()).unwrap();
        }
        status => {
            store.start_runs(&[lease], run.started()).unwrap();
            store.flush_starts(run.started()).unwrap();
            let mut end = finish(id, lease.token, status, run.started() + run.duration_ms);
            end.attempts = claimed[0].attempt;
            end.duration_ms = Some(run.duration_ms);
            end.last_error = run.error.map(str::to_owned);
            end.worker_version = run.version.map(str::to_owned);
            end.cpu_ms = run.cpu_ms;
            end.memory_bytes = run.memory_bytes;
            assert_eq!(store.finish(&[end]).unwrap(), vec![true]);
        }
    }
    id
}

/// The analytics history (times in ms; the window starts at 10 000):
///
/// | task | worker | created | wait | outcome | duration | error / version | cpu, memory |
/// |---|---|---|---|---|---|---|---|
/// | old | c | 5 000 | 1 000 | failed | 99 999 | "old error" (before the window) | |
/// | a1 | a | 20 000 | 1 000 | completed | 100 | 1.0 | 80, 1 000 |
/// | a2 | a | 30 000 | 3 000 | completed | 300 | 1.0 | 200, - |
/// | a3 | a | 40 000 | 0 | failed | 200 | boom, 1.1 | 100, 3 000 |
/// | a4 | a | 50 000 | 2 000 | failed | 400 | boom, 1.1 |
/// | a5 | a | 60 000 | 0 | failed | 1 000 | disk full, 1.1 |
/// | a6 | a | 70 000 | 1 000 | cancelled | 100 | 1.1 |
/// | a11 | a | 75 000 | 1 000 | retry due at 500 000, then cancelled while pending | 70 | transient, 1.2 | 20, - |
/// | a7 | a | 80 000 | (4 000) | preparing: claimed, not started | | |
/// | a8 | a | 90 000 | 0 | running | | |
/// | a9 | a | 100 000 | | pending | | |
/// | a10 | a | 110 000 | | cancelled while pending | | |
/// | b1 | b | 25 000 | 1 000 | completed | 500 | 2.0 | 400, 5 000 |
/// | b2 | b | 35 000 | 0 | completed | 705 | 2.0 |
pub fn analytics_history(store: &dyn Store) {
    use TaskStatus::{Cancelled, Completed, Failed, Preparing, Running};
    let runs = [
        Run::new("c", 5_000, 1_000, Failed, 99_999).error("old error"),
        Run::new("a", 20_000, 1_000, Completed, 100)
            .version("1.0")
            .cost(80, Some(1_000)),
        Run::new("a", 30_000, 3_000, Completed, 300)
            .version("1.0")
            .cost(200, None),
        Run::new("a", 40_000, 0, Failed, 200)
            .error("boom")
            .version("1.1")
            .cost(100, Some(3_000)),
        Run::new("a", 50_000, 2_000, Failed, 400)
            .error("boom")
            .version("1.1"),
        Run::new("a", 60_000, 0, Failed, 1_000)
            .error("disk full")
            .version("1.1"),
        Run::new("a", 70_000, 1_000, Cancelled, 100).version("1.1"),
        Run::new("b", 25_000, 1_000, Completed, 500)
            .version("2.0")
            .cost(400, Some(5_000)),
        Run::new("b", 35_000, 0, Completed, 705).version("2.0"),
    ];
    for run in &runs {
        record(store, run);
    }
    // a11: its attempt fails retryably (back to pending, due later), then it is cancelled while
    // pending: it keeps the stale started_at of the failed attempt, which must not count as a
    // (negative) queue wait.
    let a11 = store
        .insert_task(&task("a", Priority::Normal, None), 75_000)
        .unwrap();
    let lease = claim_of(store, "a", 1, 76_000).remove(0).lease();
    store.start_runs(&[lease], 76_000).unwrap();
    store.flush_starts(76_000).unwrap();
    let mut retry = finish(a11, lease.token, TaskStatus::Pending, 76_070);
    retry.run_at = Some(500_000);
    retry.duration_ms = Some(70);
    retry.last_error = Some("transient".into());
    retry.worker_version = Some("1.2".into());
    retry.cpu_ms = Some(20);
    assert_eq!(store.finish(&[retry]).unwrap(), vec![true]);
    assert!(matches!(
        store.cancel(a11, 78_000).unwrap(),
        crate::CancelResult::Cancelled(_)
    ));
    record(store, &Run::new("a", 80_000, 4_000, Preparing, 0));
    record(store, &Run::new("a", 90_000, 0, Running, 0));
    store
        .insert_task(&task("a", Priority::Normal, None), 100_000)
        .unwrap();
    let a10 = store
        .insert_task(&task("a", Priority::Normal, None), 110_000)
        .unwrap();
    assert!(matches!(
        store.cancel(a10, 111_000).unwrap(),
        crate::CancelResult::Cancelled(_)
    ));
}

/// Every figure of a window summary over [`analytics_history`].
pub fn window_summary_figures(store: &dyn Store) {
    analytics_history(store);
    let summary = store.window_summary(10_000, 610_000).unwrap();
    let expected = crate::WindowSummary {
        since: 10_000,
        now: 610_000,
        total: 13,
        pending: 1,
        preparing: 1,
        running: 1,
        completed: 4,
        failed: 3,
        cancelled: 3,
        // a1..a6, a11, b1, b2: 3 375 / 9 (a10 was cancelled before any attempt: no duration).
        average_duration_ms: Some(375.0),
        max_duration_ms: Some(1_000),
        // Completed and failed: 100 200 300 400 500 705 1000; nearest ranks 4 and 7.
        p50_duration_ms: Some(400),
        p95_duration_ms: Some(1_000),
        // a1..a6, a8, b1, b2 (a11's stale start, a7 claimed but not started yet, and
        // never-started a9, a10 excluded): 8 000 / 9.
        average_wait_ms: Some(8_000.0 / 9.0),
        // Waits 0 0 0 0 1000 1000 1000 2000 3000: nearest ranks 5 and 9.
        p50_wait_ms: Some(1_000),
        p95_wait_ms: Some(3_000),
        // a1 a2 a3 a11 b1: 800 / 5.
        average_cpu_ms: Some(160.0),
        // a1 a3 b1: 9 000 / 3.
        average_memory_bytes: Some(3_000.0),
        max_memory_bytes: Some(5_000),
        // 10 finished tasks in 10 minutes.
        throughput_per_minute: 1.0,
        common_errors: vec![
            crate::ErrorCount {
                message: "boom".into(),
                count: 2,
            },
            crate::ErrorCount {
                message: "disk full".into(),
                count: 1,
            },
        ],
    };
    assert_eq!(summary, expected);
    assert_eq!(summary.finished(), 10);
}

/// A window without tasks (an empty store, or one whose tasks are all older) has zero counts,
/// no averages or percentiles (not zeros), no throughput and no errors.
pub fn window_summary_of_an_empty_window(store: &dyn Store) {
    let empty = crate::WindowSummary {
        since: 1_000_000,
        now: 1_000_000 + 3_600_000,
        ..crate::WindowSummary::default()
    };
    assert_eq!(
        store
            .window_summary(1_000_000, 1_000_000 + 3_600_000)
            .unwrap(),
        empty
    );
    analytics_history(store);
    assert_eq!(
        store
            .window_summary(1_000_000, 1_000_000 + 3_600_000)
            .unwrap(),
        empty
    );
    let zero_length = store.window_summary(10_000, 10_000).unwrap();
    assert_eq!(
        (zero_length.total, zero_length.throughput_per_minute),
        (13, 0.0),
        "a zero-length window has no throughput, not a division by zero"
    );
}

/// The five most common failure messages of failed tasks, most frequent first, ties by
/// message; a failure without `last_error` counts under its status message; other statuses
/// never count.
pub fn common_errors_keep_the_five_most_frequent(store: &dyn Store) {
    use TaskStatus::{Completed, Failed};
    let mut at = 1_000;
    let mut run = |status: TaskStatus, error: Option<&'static str>| {
        let mut r = Run::new("w", at, 0, status, 10);
        r.error = error;
        record(store, &r);
        at += 1_000;
    };
    for (error, times) in [
        ("e6", 1),
        ("e1", 3),
        ("e3", 2),
        ("e2", 2),
        ("e5", 1),
        ("e4", 1),
    ] {
        for _ in 0..times {
            run(Failed, Some(error));
        }
    }
    run(Failed, None);
    run(Failed, Some(""));
    for _ in 0..4 {
        run(Completed, Some("recovered"));
    }
    let errors: Vec<(String, i64)> = store
        .window_summary(0, 60_000)
        .unwrap()
        .common_errors
        .into_iter()
        .map(|e| (e.message, e.count))
        .collect();
    let expected = [("e1", 3), ("e2", 2), ("e3", 2), ("failed", 2), ("e4", 1)];
    let expected: Vec<(String, i64)> = expected.iter().map(|(m, n)| (m.to_string(), *n)).collect();
    assert_eq!(errors, expected);
}

/// Per-identifier figures over [`analytics_history`]; identifiers with only older tasks are
/// absent, and a later window is empty.
pub fn worker_summaries_per_identifier(store: &dyn Store) {
    analytics_history(store);
    let expected = vec![
        crate::WorkerSummary {
            identifier: "a".into(),
            total_tasks: 11,
            completed: 2,
            failed: 3,
            cancelled: 3,
            // a1..a6 and a11: 2 170 / 7.
            average_duration_ms: Some(310.0),
            // 100 200 300 400 1000: nearest rank 5.
            p95_duration_ms: Some(1_000),
            // a1 a2 a3 a11: 400 / 4; memory a1 a3.
            average_cpu_ms: Some(100.0),
            average_memory_bytes: Some(2_000.0),
            max_memory_bytes: Some(3_000),
            last_execution: Some(90_000),
            versions: vec!["1.0".into(), "1.1".into(), "1.2".into()],
        },
        crate::WorkerSummary {
            identifier: "b".into(),
            total_tasks: 2,
            completed: 2,
            failed: 0,
            cancelled: 0,
            average_duration_ms: Some(602.5),
            p95_duration_ms: Some(705),
            average_cpu_ms: Some(400.0),
            average_memory_bytes: Some(5_000.0),
            max_memory_bytes: Some(5_000),
            last_execution: Some(35_000),
            versions: vec!["2.0".into()],
        },
    ];
    assert_eq!(store.worker_summaries(10_000).unwrap(), expected);
    assert!(store.worker_summaries(1_000_000).unwrap().is_empty());
    let all = store.worker_summaries(0).unwrap();
    let c = all
        .iter()
        .find(|w| w.identifier == "c")
        .expect("c counted from 0");
    assert_eq!(
        (c.total_tasks, c.failed, c.p95_duration_ms, c.last_execution),
        (1, 1, Some(99_999), Some(6_000))
    );
    assert!(c.versions.is_empty(), "a task without a version adds none");
}

/// Percentiles are nearest ranks (`ceil(p * n / 100)`), also when `p * n / 100` is a whole
/// number: among the durations 1..=20 the median is the 10th and the 95th percentile the
/// 19th, both in the window summary and per worker.
pub fn percentiles_are_nearest_ranks(store: &dyn Store) {
    for (i, duration) in (1..=20).rev().enumerate() {
        let status = if i % 2 == 0 {
            TaskStatus::Completed
        } else {
            TaskStatus::Failed
        };
        record(
            store,
            &Run::new("d", 1_000 * (i as i64 + 1), 0, status, duration),
        );
    }
    let summary = store.window_summary(0, 60_000).unwrap();
    assert_eq!(
        (summary.p50_duration_ms, summary.p95_duration_ms),
        (Some(10), Some(19))
    );
    let workers = store.worker_summaries(0).unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].p95_duration_ms, Some(19));
}

/// The pending task due longest, across priorities, ties by id; scheduled, claimed and
/// finished tasks never count.
pub fn oldest_due_pending_task(store: &dyn Store) {
    assert_eq!(store.oldest_due_pending(i64::MAX).unwrap(), None);
    let ids = store
        .insert_tasks(
            &[
                task("y", Priority::Normal, Some(100)),
                task("x", Priority::High, Some(800)),
                task("x", Priority::Normal, Some(500)),
                task("x", Priority::Low, Some(200)),
                task("z", Priority::High, Some(200)),
                task("x", Priority::Normal, Some(5_000)),
            ],
            0,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    assert_eq!(claim_of(store, "y", 1, 1_000)[0].id, ids[0]);
    assert_eq!(store.oldest_due_pending(150).unwrap(), None);
    assert_eq!(
        store.oldest_due_pending(200).unwrap(),
        Some((ids[3], "x".to_owned(), 200)),
        "due exactly now counts; a tie goes to the smaller id, whatever its priority"
    );
    assert_eq!(
        store.oldest_due_pending(10_000).unwrap(),
        Some((ids[3], "x".to_owned(), 200))
    );
    store.cancel(ids[3], 300).unwrap();
    assert_eq!(
        store.oldest_due_pending(10_000).unwrap(),
        Some((ids[4], "z".to_owned(), 200))
    );
}

/// Stuck tasks: preparing or running with a lease that expired strictly before now.
pub fn stuck_tasks_are_expired_leases(store: &dyn Store) {
    assert!(store.stuck_tasks(i64::MAX).unwrap().is_empty());
    let ids = store
        .insert_tasks(
            &(0..5)
                .map(|_| task("w", Priority::Normal, None))
                .collect::<Vec<_>>(),
            0,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    let first = claim(store, "h", 1, 10).remove(0); // lease until 1 010
    let second = claim(store, "h", 1, 500).remove(0); // lease until 1 500
    store.start_runs(&[second.lease()], 600).unwrap();
    claim(store, "h", 1, 2_000); // lease until 3 000
    let done = claim(store, "h", 1, 20).remove(0);
    store
        .finish(&[finish(done.id, done.lease_token, TaskStatus::Completed, 30)])
        .unwrap();
    assert_eq!(
        store.stuck_tasks(1_500).unwrap(),
        vec![(ids[0], "w".to_owned(), 1_010)],
        "a lease expiring exactly now is not stuck yet"
    );
    assert_eq!(
        store.stuck_tasks(1_501).unwrap(),
        vec![
            (first.id, "w".to_owned(), 1_010),
            (second.id, "w".to_owned(), 1_500)
        ]
    );
    assert_eq!(store.stuck_tasks(5_000).unwrap().len(), 3);
}

/// Pending tasks per identifier, scheduled ones included; other statuses never count.
pub fn pending_counts_per_identifier(store: &dyn Store) {
    assert!(store.pending_counts().unwrap().is_empty());
    let ids = store
        .insert_tasks(
            &[
                task("w", Priority::Normal, None),
                task("w", Priority::Normal, None),
                task("w", Priority::Low, None),
                task("w", Priority::High, Some(99_999)),
                task("v", Priority::Normal, None),
                task("v", Priority::Normal, None),
            ],
            0,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    claim(store, "h", 1, 10);
    store.cancel(ids[5], 20).unwrap();
    assert_eq!(
        store.pending_counts().unwrap(),
        vec![("v".to_owned(), 1), ("w".to_owned(), 3)]
    );
}

/// Completed and failed tasks are counted in the bucket of their finish, `(finished_at -
/// since) / bucket_ms`, for finishes in `[since, until)`; cancelled tasks, unfinished ones and
/// finishes outside the range are not, and empty buckets are absent.
pub fn finished_per_bucket_counts_completed_and_failed(store: &dyn Store) {
    use TaskStatus::{Cancelled, Completed, Failed, Running};
    assert!(store
        .finished_per_bucket(0, 10_000, 1_000)
        .unwrap()
        .is_empty());
    // Finish times (created + wait + duration): 900, 1 000, 1 500, 1 999, 3 200, 4 000, 6 000.
    for (created, status, duration) in [
        (800, Completed, 100),
        (900, Failed, 100),
        (1_400, Completed, 100),
        (1_899, Failed, 100),
        (3_100, Completed, 100),
        (3_900, Cancelled, 100),
        (5_900, Completed, 100),
        (6_500, Running, 0),
    ] {
        record(store, &Run::new("w", created, 0, status, duration));
    }
    assert_eq!(
        store.finished_per_bucket(1_000, 6_000, 1_000).unwrap(),
        vec![(0, 1, 2), (2, 1, 0)],
        "buckets 0 and 2; 900 is before the range, 6 000 at its exclusive end"
    );
    assert_eq!(
        store.finished_per_bucket(0, 7_000, 3_000).unwrap(),
        vec![(0, 2, 2), (1, 1, 0), (2, 1, 0)]
    );
}
