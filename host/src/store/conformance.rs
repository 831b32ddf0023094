//! The behaviour every storage driver must show, written once (in the spirit of River's
//! `riverdrivertest`). `driver_tests!(open)` expands to one `#[test]` per property for a driver;
//! `open` gives a fresh, migrated store.

use super::{ClaimRequest, Finish, Store};
use crate::model::{NewTask, Priority, TaskStatus, DEFAULT_MAX_ATTEMPTS};
use serde_json::json;

/// A plain new task.
pub fn task(identifier: &str, priority: Priority, start_at: Option<i64>) -> NewTask {
    NewTask {
        identifier: identifier.into(),
        action: "run".into(),
        data: json!({"n": 1}),
        priority,
        start_at,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        started_by: None,
    }
}

fn claim(store: &dyn Store, owner: &str, limit: usize, now: i64) -> Vec<super::ClaimedTask> {
    store
        .claim(&ClaimRequest {
            owner,
            limit,
            now,
            lease_ms: 1_000,
            identifiers: &["w".to_owned()],
        })
        .unwrap()
}

fn finish(id: i64, lease_token: i64, status: TaskStatus, at: i64) -> Finish {
    Finish {
        id,
        lease_token,
        status,
        message: status.name().into(),
        result: Some("r".into()),
        result_file: None,
        run_at: None,
        last_error: None,
        duration_ms: Some(1),
        started_at: None,
        cpu_ms: None,
        memory_bytes: None,
        progress: Some(100),
        processed: None,
        total: None,
        worker_version: Some("v".into()),
        at,
        // The first attempt: most properties claim once; the others set it.
        attempts: 1,
        if_started: None,
    }
}

/// Claims go by priority, then due time, then id; future tasks and other workers' tasks stay.
pub fn claims_in_priority_then_due_order(store: &dyn Store) {
    let now = 1_000_000;
    let ids = store
        .insert_tasks(
            &[
                task("w", Priority::Low, None),
                task("w", Priority::High, Some(now + 10)),
                task("w", Priority::Normal, None),
                task("w", Priority::High, None),
                task("other", Priority::High, None),
                task("w", Priority::High, Some(now - 1_500)),
            ],
            now - 1_000,
        )
        .unwrap();
    let claimed: Vec<i64> = claim(store, "h", 10, now).iter().map(|c| c.id).collect();
    assert_eq!(claimed, vec![ids[5], ids[3], ids[2], ids[0]]);
    assert!(
        claim(store, "h", 10, now).is_empty(),
        "nothing is claimed twice"
    );
    let later: Vec<i64> = claim(store, "h", 10, now + 10)
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(later, vec![ids[1]]);
    // A claim alone uses no attempt: only a started run counts.
    let t = store.task(ids[3]).unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Preparing, 0));
    assert_eq!(
        store.task(ids[4]).unwrap().unwrap().status,
        TaskStatus::Pending
    );
}

/// A claim honours its limit.
pub fn claim_respects_the_limit(store: &dyn Store) {
    let tasks: Vec<NewTask> = (0..5).map(|_| task("w", Priority::Normal, None)).collect();
    store.insert_tasks(&tasks, 0).unwrap();
    assert_eq!(claim(store, "h", 2, 10).len(), 2);
    assert_eq!(claim(store, "h", 0, 10).len(), 0);
    assert_eq!(claim(store, "h", 9, 10).len(), 3);
}

/// Once a lease is recovered and the task claimed again, the old run can no longer write.
pub fn a_stale_run_cannot_overwrite_a_newer_one(store: &dyn Store) {
    let id = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    let first = claim(store, "dead-host", 1, 10).remove(0);
    assert_eq!(
        store.start_runs(&[(id, first.lease_token)], 10).unwrap(),
        vec![true]
    );
    let expired = store.expired_leases(10 + 1_001).unwrap();
    assert_eq!(expired.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);
    let mut back = finish(id, first.lease_token, TaskStatus::Pending, 2_000);
    back.run_at = Some(2_000);
    back.attempts = first.attempt;
    assert_eq!(store.finish(&[back]).unwrap(), vec![true]);
    let second = claim(store, "live-host", 1, 2_000).remove(0);
    assert_eq!(second.attempt, 2);
    assert_ne!(first.lease_token, second.lease_token);
    // On a shared database another host may hold the lease: a stale run cannot start. On
    // SQLite one process owns the database and recovers only at start, so a stale run cannot
    // exist there and a start always applies; its flush is fenced by the lease all the same.
    let stale_start = store.start_runs(&[(id, first.lease_token)], 2_050).unwrap();
    if store.shared_by_hosts() {
        assert_eq!(stale_start, vec![false], "a stale run cannot start");
    }
    assert_eq!(
        store
            .start_runs(&[(id, second.lease_token)], 2_050)
            .unwrap(),
        vec![true]
    );
    store.flush_starts(2_060).unwrap();
    let t = store.task(id).unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Running, 2), "{t:?}");
    let stale = finish(id, first.lease_token, TaskStatus::Failed, 2_100);
    assert_eq!(
        store.finish(&[stale]).unwrap(),
        vec![false],
        "stale outcome refused"
    );
    let mut fresh = finish(id, second.lease_token, TaskStatus::Completed, 2_200);
    fresh.attempts = second.attempt;
    assert_eq!(
        store.finish(std::slice::from_ref(&fresh)).unwrap(),
        vec![true]
    );
    assert_eq!(
        store.finish(&[fresh]).unwrap(),
        vec![false],
        "no double completion"
    );
    let t = store.task(id).unwrap().unwrap();
    assert_eq!(
        (t.status, t.attempts, t.finished_at),
        (TaskStatus::Completed, 2, Some(2_200))
    );
}

/// Tasks claimed ahead and given back are pending again with the attempt not counted; a
/// release with a stale lease changes nothing.
pub fn released_tasks_are_pending_again_without_an_attempt(store: &dyn Store) {
    let id = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    let first = claim(store, "h", 1, 10).remove(0);
    store.release(&[(id, first.lease_token ^ 1)], 11).unwrap();
    assert_eq!(
        store.task(id).unwrap().unwrap().status,
        TaskStatus::Preparing
    );
    store.release(&[(id, first.lease_token)], 12).unwrap();
    let t = store.task(id).unwrap().unwrap();
    assert_eq!(
        (t.status, t.attempts, t.lease_owner),
        (TaskStatus::Pending, 0, None)
    );
    assert_eq!(claim(store, "h", 1, 20).remove(0).attempt, 1);
}

/// Heartbeats extend only the owner's leases and report cancel requests.
pub fn heartbeats_extend_leases_and_carry_cancels(store: &dyn Store) {
    let a = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    let b = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    claim(store, "h1", 1, 10);
    claim(store, "h2", 1, 10);
    assert!(store.heartbeat("h1", 50_000).unwrap().is_empty());
    let expired: Vec<i64> = store
        .expired_leases(5_000)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(expired, vec![b], "h1's lease was extended, h2's was not");
    assert!(matches!(
        store.cancel(a, 20).unwrap(),
        super::CancelResult::Requested(_)
    ));
    assert_eq!(store.heartbeat("h1", 60_000).unwrap(), vec![a]);
}

/// Cancel: pending at once; finished tasks unchanged; retry re-queues failed and cancelled.
pub fn cancel_and_retry(store: &dyn Store) {
    let id = store
        .insert_task(&task("w", Priority::Normal, Some(99_999)), 0)
        .unwrap();
    let super::CancelResult::Cancelled(t) = store.cancel(id, 5).unwrap() else {
        panic!("pending task not cancelled at once");
    };
    assert_eq!((t.status, t.finished_at), (TaskStatus::Cancelled, Some(5)));
    assert!(matches!(
        store.cancel(id, 6).unwrap(),
        super::CancelResult::AlreadyFinished(_)
    ));
    assert!(matches!(
        store.cancel(424242, 6).unwrap(),
        super::CancelResult::NotFound
    ));
    let super::RetryResult::Queued(t) = store.retry(id, 7).unwrap() else {
        panic!("cancelled task not retried");
    };
    assert_eq!(
        (t.status, t.attempts, t.run_at),
        (TaskStatus::Pending, 0, 7)
    );
    assert!(matches!(
        store.retry(id, 8).unwrap(),
        super::RetryResult::NotRetryable(_)
    ));
}

/// Retention deletes only finished tasks older than the cutoff.
pub fn clean_deletes_only_old_finished_tasks(store: &dyn Store) {
    let old = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    let running = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    let c = claim(store, "h", 1, 1);
    assert_eq!(c[0].id, old);
    store
        .finish(&[finish(old, c[0].lease_token, TaskStatus::Completed, 100)])
        .unwrap();
    claim(store, "h", 1, 1);
    assert_eq!(store.delete_finished_before(50).unwrap(), Vec::<i64>::new());
    assert_eq!(store.delete_finished_before(101).unwrap(), vec![old]);
    assert!(store.task(running).unwrap().is_some());
    let stats = store.stats().unwrap();
    assert_eq!((stats.total, stats.preparing), (1, 1));
}

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
fn claim_of(
    store: &dyn Store,
    identifier: &str,
    limit: usize,
    now: i64,
) -> Vec<super::ClaimedTask> {
    store
        .claim(&ClaimRequest {
            owner: "analytics",
            limit,
            now,
            lease_ms: RUN_LEASE_MS,
            identifiers: &[identifier.to_owned()],
        })
        .unwrap()
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
    let token = claimed[0].lease_token;
    match run.status {
        TaskStatus::Preparing => {}
        TaskStatus::Running => {
            store.start_runs(&[(id, token)], run.started()).unwrap();
            store.flush_starts(run.started()).unwrap();
        }
        status => {
            store.start_runs(&[(id, token)], run.started()).unwrap();
            store.flush_starts(run.started()).unwrap();
            let mut end = finish(id, token, status, run.started() + run.duration_ms);
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
    let lease = claim_of(store, "a", 1, 76_000).remove(0).lease_token;
    store.start_runs(&[(a11, lease)], 76_000).unwrap();
    store.flush_starts(76_000).unwrap();
    let mut retry = finish(a11, lease, TaskStatus::Pending, 76_070);
    retry.run_at = Some(500_000);
    retry.duration_ms = Some(70);
    retry.last_error = Some("transient".into());
    retry.worker_version = Some("1.2".into());
    retry.cpu_ms = Some(20);
    assert_eq!(store.finish(&[retry]).unwrap(), vec![true]);
    assert!(matches!(
        store.cancel(a11, 78_000).unwrap(),
        super::CancelResult::Cancelled(_)
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
        super::CancelResult::Cancelled(_)
    ));
}

/// Every figure of a window summary over [`analytics_history`].
pub fn window_summary_figures(store: &dyn Store) {
    analytics_history(store);
    let summary = store.window_summary(10_000, 610_000).unwrap();
    let expected = super::WindowSummary {
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
            super::ErrorCount {
                message: "boom".into(),
                count: 2,
            },
            super::ErrorCount {
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
    let empty = super::WindowSummary {
        since: 1_000_000,
        now: 1_000_000 + 3_600_000,
        ..super::WindowSummary::default()
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
        super::WorkerSummary {
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
        super::WorkerSummary {
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
        .unwrap();
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
        .unwrap();
    let first = claim(store, "h", 1, 10).remove(0); // lease until 1 010
    let second = claim(store, "h", 1, 500).remove(0); // lease until 1 500
    store
        .start_runs(&[(second.id, second.lease_token)], 600)
        .unwrap();
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
        .unwrap();
    claim(store, "h", 1, 10);
    store.cancel(ids[5], 20).unwrap();
    assert_eq!(
        store.pending_counts().unwrap(),
        vec![("v".to_owned(), 1), ("w".to_owned(), 3)]
    );
}

/// Recovery of an expired lease applies only while the lease is still expired: a host whose
/// heartbeat came in between keeps its task; once recovered, the old run is fenced out.
pub fn recovery_never_takes_a_live_lease(store: &dyn Store) {
    let id = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    let run = claim(store, "slow-host", 1, 10).remove(0); // lease until 1 010
    let expired = store.expired_leases(2_000).unwrap();
    assert_eq!(expired.len(), 1);
    let mut back = finish(id, run.lease_token, TaskStatus::Pending, 2_000);
    back.run_at = Some(2_000);
    // The slow host's heartbeat lands between the read and the recovery.
    store.heartbeat("slow-host", 5_000).unwrap();
    assert_eq!(
        store.recover(std::slice::from_ref(&back), 2_000).unwrap(),
        vec![false],
        "a lease extended by its host is not taken"
    );
    assert_eq!(
        store.task(id).unwrap().unwrap().status,
        TaskStatus::Preparing
    );
    // The host really died: past its extended lease, recovery applies once.
    assert_eq!(
        store.recover(std::slice::from_ref(&back), 5_001).unwrap(),
        vec![true]
    );
    assert_eq!(
        store.recover(std::slice::from_ref(&back), 5_001).unwrap(),
        vec![false],
        "a second host recovering the same lease changes nothing"
    );
    let t = store.task(id).unwrap().unwrap();
    assert_eq!((t.status, t.lease_owner), (TaskStatus::Pending, None));
    let stale = finish(id, run.lease_token, TaskStatus::Completed, 5_100);
    assert_eq!(store.finish(&[stale]).unwrap(), vec![false]);
    assert!(store.heartbeat("slow-host", 9_000).unwrap().is_empty());
    assert_eq!(store.task(id).unwrap().unwrap().lease_expires_at, None);
}

/// The hosts registry: registration, refresh by heartbeat, clean stop, and forgetting hosts
/// unseen for a day.
pub fn hosts_register_refresh_and_stop(store: &dyn Store) {
    use super::cluster::{HostRow, FORGET_HOSTS_AFTER_MS, FORGET_STOPPED_AFTER_MS};
    assert!(store.hosts().unwrap().is_empty());
    let mut a = HostRow {
        name: "a:1:x".into(),
        version: "0.1.0".into(),
        started_at: 1_000,
        last_heartbeat: 1_000,
        busy_slots: 0,
        pool_size: 2,
        workers: vec!["demo".into(), "w".into()],
        lease_ms: 3_000,
        stopped_at: None,
    };
    let mut b = HostRow {
        name: "b:2:y".into(),
        started_at: 1_500,
        last_heartbeat: 1_500,
        workers: vec![],
        ..a.clone()
    };
    store.upsert_host(&a).unwrap();
    store.upsert_host(&b).unwrap();
    a.last_heartbeat = 2_000;
    a.busy_slots = 2;
    store.upsert_host(&a).unwrap();
    assert_eq!(store.hosts().unwrap(), vec![a.clone(), b.clone()]);
    assert!(
        a.live(5_000) && !a.live(5_001),
        "live while the lease lasts"
    );
    store.host_stopped(&b.name, 2_500).unwrap();
    let hosts = store.hosts().unwrap();
    assert_eq!(hosts[1].stopped_at, Some(2_500));
    assert!(!hosts[1].live(2_600), "a stopped host is not live");
    // A registration an hour later forgets the host that stopped (b); a day later, a host
    // never heard from again (a).
    let c = HostRow {
        name: "c:3:z".into(),
        started_at: 2_600 + FORGET_STOPPED_AFTER_MS,
        last_heartbeat: 2_600 + FORGET_STOPPED_AFTER_MS,
        ..a.clone()
    };
    store.upsert_host(&c).unwrap();
    assert_eq!(store.hosts().unwrap(), vec![a.clone(), c.clone()]);
    b.started_at = 3_000 + FORGET_HOSTS_AFTER_MS;
    b.last_heartbeat = b.started_at;
    b.stopped_at = None;
    store.upsert_host(&b).unwrap();
    assert_eq!(
        store.hosts().unwrap(),
        vec![c, b],
        "a host unseen for a day is forgotten"
    );
}

/// Text from plugins may hold NUL (PostgreSQL's `text` cannot): progress, log lines, results
/// and errors with NUL are stored all the same (NUL kept, or shown as U+FFFD), and a search or
/// filter holding NUL is an ordinary query.
pub fn text_with_nul_is_stored(store: &dyn Store) {
    use crate::model::LogLine;
    let id = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    let run = claim(store, "h", 1, 10).remove(0);
    store.start_runs(&[(id, run.lease_token)], 11).unwrap();
    store
        .write_progress(
            &[super::ProgressWrite {
                id,
                lease_token: run.lease_token,
                progress: 50,
                processed: None,
                total: None,
                eta_seconds: None,
                message: "half\0way".into(),
                worker_version: "v".into(),
            }],
            12,
        )
        .unwrap();
    let same = |stored: &str, sent: &str| stored.replace('\u{FFFD}', "\0") == sent;
    assert!(same(&store.task(id).unwrap().unwrap().message, "half\0way"));
    store
        .append_logs(&[LogLine {
            task_id: id,
            attempt: 1,
            level: 0,
            at: 13,
            line: "a\0b".into(),
        }])
        .unwrap();
    assert!(same(&store.task_logs(id, 10).unwrap()[0].line, "a\0b"));
    let mut end = finish(id, run.lease_token, TaskStatus::Failed, 20);
    end.message = "bad\0byte".into();
    end.result = Some("r\0".into());
    end.last_error = Some("e\0".into());
    assert_eq!(store.finish(&[end]).unwrap(), vec![true]);
    let t = store.task(id).unwrap().unwrap();
    assert!(same(&t.message, "bad\0byte"), "{}", t.message);
    assert!(same(t.result.as_deref().unwrap(), "r\0"));
    let filter = super::TaskFilter {
        identifier: Some("w\0".into()),
        search: Some("\0".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.tasks(&filter).unwrap().1, 0);
    assert!(store.worker("w\0").unwrap().is_none());
    assert!(!store.set_worker_active("w\0", false, 21).unwrap());
}

/// Only a started run counts as an attempt. A claim that no pool thread started (claimed ahead
/// when its host died) is recovered without one, even with `max_attempts` 1; a started run
/// counts, and its recovery with no attempt left fails the task. A recovery decided on one
/// state does not apply to the other (the run started between the read and the write), and a
/// run that stopped because its host was stopping gives its attempt back.
pub fn only_started_runs_count_as_attempts(store: &dyn Store) {
    use crate::engine::state::{after_lost_lease, Backoff};
    let backoff = Backoff {
        base_ms: 1_000,
        max_ms: 1_000,
    };
    let mut one_attempt = task("w", Priority::Normal, None);
    one_attempt.max_attempts = 1;
    let ids = store
        .insert_tasks(&[one_attempt.clone(), one_attempt.clone(), one_attempt], 0)
        .unwrap();
    let claimed = claim(store, "dead-host", 3, 10);
    assert!(claimed.iter().all(|c| c.attempt == 1), "{claimed:?}");
    let (ahead, started, raced) = (&claimed[0], &claimed[1], &claimed[2]);
    assert_eq!(
        store
            .start_runs(&[(started.id, started.lease_token)], 11)
            .unwrap(),
        vec![true]
    );
    // A second start of the same run does not count twice. (On SQLite a start always applies:
    // see `a_stale_run_cannot_overwrite_a_newer_one`.)
    let again = store
        .start_runs(&[(started.id, started.lease_token)], 12)
        .unwrap();
    if store.shared_by_hosts() {
        assert_eq!(again, vec![false], "a run starts once");
    }
    store.flush_starts(13).unwrap();
    assert_eq!(store.task(started.id).unwrap().unwrap().attempts, 1);
    let leases = store.expired_leases(5_000).unwrap();
    let lease = |id: i64| leases.iter().find(|l| l.id == id).unwrap().clone();
    assert_eq!(
        (lease(ahead.id).started, lease(ahead.id).attempts),
        (false, 0)
    );
    assert_eq!(
        (lease(started.id).started, lease(started.id).attempts),
        (true, 1)
    );
    // The decision for `raced` reads "not started"; its run starts before the write.
    let decisions: Vec<Finish> = [ahead.id, started.id, raced.id]
        .iter()
        .map(|id| after_lost_lease(&lease(*id), backoff))
        .collect();
    assert_eq!(
        store
            .start_runs(&[(raced.id, raced.lease_token)], 4_000)
            .unwrap(),
        vec![true]
    );
    assert_eq!(
        store.recover(&decisions, 5_000).unwrap(),
        vec![true, true, false],
        "a decision taken on a run not started does not apply to a started one"
    );
    let t = store.task(ahead.id).unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Pending, 0), "{t:?}");
    let t = store.task(started.id).unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Failed, 1), "{t:?}");
    assert!(t.message.contains("was interrupted"), "{}", t.message);
    store.flush_starts(5_000).unwrap();
    let t = store.task(raced.id).unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Running, 1), "{t:?}");
    // The claimed-ahead task runs as attempt 1 after all.
    let due = store.task(ahead.id).unwrap().unwrap().run_at;
    let again = claim(store, "live-host", 1, due).remove(0);
    assert_eq!((again.id, again.attempt), (ahead.id, 1));

    // A run stopped early by its stopping host: pending again, attempt given back (written as
    // an absolute value, so whether its start was flushed does not matter).
    assert_eq!(
        store
            .start_runs(&[(again.id, again.lease_token)], 5_001)
            .unwrap(),
        vec![true]
    );
    let mut stopped = finish(again.id, again.lease_token, TaskStatus::Pending, 5_100);
    stopped.run_at = Some(5_100);
    stopped.attempts = again.attempt - 1;
    assert_eq!(store.finish(&[stopped]).unwrap(), vec![true]);
    let t = store.task(again.id).unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Pending, 0), "{t:?}");
    assert_eq!(ids.len(), 3);
}

/// A start survives the process: claim, start, and the store is dropped without any flush (as
/// by `kill -9`); `reopen` gives the store the next process opens on the same database (on
/// SQLite the start is only in its start journal until the ticker's flush). Recovery then finds
/// the run started with its attempt counted, and the claim that never started not. Meanwhile a
/// run that finished before its start was flushed counts its attempt too.
pub fn a_start_survives_the_process(
    store: std::sync::Arc<dyn Store>,
    reopen: impl FnOnce(std::sync::Arc<dyn Store>) -> std::sync::Arc<dyn Store>,
) {
    use crate::engine::state::{after_lost_lease, Backoff};
    let mut one_attempt = task("w", Priority::Normal, None);
    one_attempt.max_attempts = 1;
    store
        .insert_tasks(&[one_attempt.clone(), one_attempt.clone(), one_attempt], 0)
        .unwrap();
    let claimed = claim(&*store, "dead-host", 3, 10);
    let (ahead, started, done) = (&claimed[0], &claimed[1], &claimed[2]);
    let starts = [
        (started.id, started.lease_token),
        (done.id, done.lease_token),
    ];
    assert_eq!(store.start_runs(&starts, 11).unwrap(), vec![true, true]);
    let mut end = finish(done.id, done.lease_token, TaskStatus::Completed, 20);
    end.attempts = done.attempt;
    assert_eq!(store.finish(&[end]).unwrap(), vec![true]);
    let t = store.task(done.id).unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Completed, 1), "{t:?}");

    let store = reopen(store);
    let leases = store.expired_leases(i64::MAX).unwrap();
    let lease = |id: i64| leases.iter().find(|l| l.id == id).unwrap().clone();
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert_eq!(
        (lease(started.id).started, lease(started.id).attempts),
        (true, 1)
    );
    assert_eq!(
        (lease(ahead.id).started, lease(ahead.id).attempts),
        (false, 0)
    );
    let backoff = Backoff {
        base_ms: 1_000,
        max_ms: 1_000,
    };
    let decisions: Vec<Finish> = leases
        .iter()
        .map(|l| after_lost_lease(l, backoff))
        .collect();
    assert_eq!(
        store.recover(&decisions, i64::MAX).unwrap(),
        vec![true, true]
    );
    let t = store.task(started.id).unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Failed, 1), "{t:?}");
    let t = store.task(ahead.id).unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Pending, 0), "{t:?}");
}

/// Expands to one test per property for a driver.
#[macro_export]
macro_rules! driver_tests {
    ($open:expr) => {
        #[test]
        fn claims_in_priority_then_due_order() {
            $crate::store::conformance::claims_in_priority_then_due_order(&*$open());
        }
        #[test]
        fn claim_respects_the_limit() {
            $crate::store::conformance::claim_respects_the_limit(&*$open());
        }
        #[test]
        fn a_stale_run_cannot_overwrite_a_newer_one() {
            $crate::store::conformance::a_stale_run_cannot_overwrite_a_newer_one(&*$open());
        }
        #[test]
        fn released_tasks_are_pending_again_without_an_attempt() {
            $crate::store::conformance::released_tasks_are_pending_again_without_an_attempt(
                &*$open(),
            );
        }
        #[test]
        fn only_started_runs_count_as_attempts() {
            $crate::store::conformance::only_started_runs_count_as_attempts(&*$open());
        }
        #[test]
        fn heartbeats_extend_leases_and_carry_cancels() {
            $crate::store::conformance::heartbeats_extend_leases_and_carry_cancels(&*$open());
        }
        #[test]
        fn cancel_and_retry() {
            $crate::store::conformance::cancel_and_retry(&*$open());
        }
        #[test]
        fn clean_deletes_only_old_finished_tasks() {
            $crate::store::conformance::clean_deletes_only_old_finished_tasks(&*$open());
        }
        #[test]
        fn window_summary_figures() {
            $crate::store::conformance::window_summary_figures(&*$open());
        }
        #[test]
        fn window_summary_of_an_empty_window() {
            $crate::store::conformance::window_summary_of_an_empty_window(&*$open());
        }
        #[test]
        fn common_errors_keep_the_five_most_frequent() {
            $crate::store::conformance::common_errors_keep_the_five_most_frequent(&*$open());
        }
        #[test]
        fn worker_summaries_per_identifier() {
            $crate::store::conformance::worker_summaries_per_identifier(&*$open());
        }
        #[test]
        fn percentiles_are_nearest_ranks() {
            $crate::store::conformance::percentiles_are_nearest_ranks(&*$open());
        }
        #[test]
        fn oldest_due_pending_task() {
            $crate::store::conformance::oldest_due_pending_task(&*$open());
        }
        #[test]
        fn stuck_tasks_are_expired_leases() {
            $crate::store::conformance::stuck_tasks_are_expired_leases(&*$open());
        }
        #[test]
        fn pending_counts_per_identifier() {
            $crate::store::conformance::pending_counts_per_identifier(&*$open());
        }
        #[test]
        fn recovery_never_takes_a_live_lease() {
            $crate::store::conformance::recovery_never_takes_a_live_lease(&*$open());
        }
        #[test]
        fn text_with_nul_is_stored() {
            $crate::store::conformance::text_with_nul_is_stored(&*$open());
        }
        #[test]
        fn hosts_register_refresh_and_stop() {
            $crate::store::conformance::hosts_register_refresh_and_stop(&*$open());
        }
    };
}
