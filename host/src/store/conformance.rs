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
        progress: Some(100),
        processed: None,
        total: None,
        worker_version: Some("v".into()),
        at,
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
    let t = store.task(ids[3]).unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Preparing, 1));
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
    let expired = store.expired_leases(10 + 1_001, None).unwrap();
    assert_eq!(expired.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);
    let mut back = finish(id, first.lease_token, TaskStatus::Pending, 2_000);
    back.run_at = Some(2_000);
    assert_eq!(store.finish(&[back]).unwrap(), vec![true]);
    let second = claim(store, "live-host", 1, 2_000).remove(0);
    assert_eq!(second.attempt, 2);
    assert_ne!(first.lease_token, second.lease_token);
    let stale = finish(id, first.lease_token, TaskStatus::Failed, 2_100);
    assert_eq!(
        store.finish(&[stale]).unwrap(),
        vec![false],
        "stale outcome refused"
    );
    let fresh = finish(id, second.lease_token, TaskStatus::Completed, 2_200);
    assert_eq!(store.finish(std::slice::from_ref(&fresh)).unwrap(), vec![true]);
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
        .expired_leases(5_000, None)
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
    };
}
