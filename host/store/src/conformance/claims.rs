//! Claims and leases: claim order and limit, release, starts and their journal, heartbeats,
//! expired leases, and the lease fence on every write of a run.

use super::{claim, finish, task, Reopen};
use crate::model::{NewTask, Priority, TaskStatus};
use crate::{Finish, Lease, Store};
use std::sync::Arc;

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
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
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
    assert_eq!(store.start_runs(&[first.lease()], 10).unwrap(), vec![true]);
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
    let stale_start = store.start_runs(&[first.lease()], 2_050).unwrap();
    if store.shared_by_hosts() {
        assert_eq!(stale_start, vec![false], "a stale run cannot start");
    }
    assert_eq!(
        store.start_runs(&[second.lease()], 2_050).unwrap(),
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
    store
        .release(
            &[Lease {
                task_id: id,
                token: first.lease_token ^ 1,
            }],
            11,
        )
        .unwrap();
    assert_eq!(
        store.task(id).unwrap().unwrap().status,
        TaskStatus::Preparing
    );
    store.release(&[first.lease()], 12).unwrap();
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
        crate::CancelResult::Requested(_)
    ));
    assert_eq!(store.heartbeat("h1", 60_000).unwrap(), vec![a]);
}

/// Only a started run counts as an attempt. A claim that no pool thread started (claimed ahead
/// when its host died) is recovered without one, even with `max_attempts` 1; a started run
/// counts, and its recovery with no attempt left fails the task. A recovery decided on one
/// state does not apply to the other (the run started between the read and the write), and a
/// run that stopped because its host was stopping gives its attempt back.
pub fn only_started_runs_count_as_attempts(store: &dyn Store) {
    use crate::task_state::{after_lost_lease, Backoff};
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
        store.start_runs(&[started.lease()], 11).unwrap(),
        vec![true]
    );
    // A second start of the same run does not count twice. (On SQLite a start always applies:
    // see `a_stale_run_cannot_overwrite_a_newer_one`.)
    let again = store.start_runs(&[started.lease()], 12).unwrap();
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
        store.start_runs(&[raced.lease()], 4_000).unwrap(),
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
        store.start_runs(&[again.lease()], 5_001).unwrap(),
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
pub fn a_start_survives_the_process(store: Arc<dyn Store>, reopen: Reopen) {
    use crate::task_state::{after_lost_lease, Backoff};
    let mut one_attempt = task("w", Priority::Normal, None);
    one_attempt.max_attempts = 1;
    store
        .insert_tasks(&[one_attempt.clone(), one_attempt.clone(), one_attempt], 0)
        .unwrap();
    let claimed = claim(&*store, "dead-host", 3, 10);
    let (ahead, started, done) = (&claimed[0], &claimed[1], &claimed[2]);
    let starts = [started.lease(), done.lease()];
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

/// Expired leases are the preparing and running tasks whose lease ran out strictly before
/// `now`, whoever holds them, each with its owner, attempts used and allowed, and whether its
/// run started; pending and finished tasks never are.
pub fn expired_leases_name_their_owner_and_attempts(store: &dyn Store) {
    let mut three = task("w", Priority::Normal, None);
    three.max_attempts = 3;
    let ids = store
        .insert_tasks(&[three.clone(), three.clone(), three.clone(), three], 0)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    let ahead = claim(store, "host-a", 1, 10).remove(0); // lease until 1 010
    let started = claim(store, "host-b", 1, 20).remove(0); // lease until 1 020
    assert_eq!(
        store.start_runs(&[started.lease()], 30).unwrap(),
        vec![true]
    );
    store.flush_starts(30).unwrap();
    let done = claim(store, "host-a", 1, 40).remove(0);
    let mut end = finish(done.id, done.lease_token, TaskStatus::Completed, 50);
    end.attempts = done.attempt;
    assert_eq!(store.finish(&[end]).unwrap(), vec![true]);
    assert!(
        store.expired_leases(1_010).unwrap().is_empty(),
        "not before the lease ends"
    );
    let mut leases = store.expired_leases(1_021).unwrap();
    leases.sort_by_key(|l| l.id);
    let seen: Vec<_> = leases
        .iter()
        .map(|l| {
            (
                l.id,
                l.lease_token,
                l.owner.clone(),
                l.started,
                l.attempts,
                l.max_attempts,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                ahead.id,
                ahead.lease_token,
                Some("host-a".to_owned()),
                false,
                0,
                3
            ),
            (
                started.id,
                started.lease_token,
                Some("host-b".to_owned()),
                true,
                1,
                3
            ),
        ]
    );
    assert_eq!(
        store.task(ids[3]).unwrap().unwrap().status,
        TaskStatus::Pending,
        "the unclaimed task is untouched"
    );
}
