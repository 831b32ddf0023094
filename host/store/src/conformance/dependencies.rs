//! Task dependencies (see `crate::dependencies`): a dependant waits, costs the claim nothing,
//! is released once when its last parent finished, or cancelled (in cascade) when a parent
//! failed or was cancelled, unless it runs anyway.

use super::{claim, finish, task};
use crate::dependencies::WAITING_RUN_AT;
use crate::model::{NewTask, OnParentFailure, Priority, TaskStatus};
use crate::{CancelResult, Store, StoreError};

const NOW: i64 = 1_700_000_000_000;
/// Long after every real due time of these properties (year 2055), still below the sentinel.
const LATER: i64 = NOW + 1_000_000_000_000;

/// A task of worker `w` that depends on `parents`.
fn dependant(parents: &[i64], rule: OnParentFailure) -> NewTask {
    NewTask {
        depends_on: parents.to_vec(),
        on_parent_failure: rule,
        ..task("w", Priority::Normal, None)
    }
}

fn insert(store: &dyn Store, task: NewTask, now: i64) -> i64 {
    store.insert_tasks(&[task], now).unwrap()[0].id
}

/// Claims every due task and ends the ones in `ends` as given (the others are released).
fn run_to_end(store: &dyn Store, ends: &[(i64, TaskStatus)], now: i64) {
    let claimed = claim(store, "h", 100, now);
    let mut finishes = Vec::new();
    let mut back = Vec::new();
    for c in &claimed {
        match ends.iter().find(|(id, _)| *id == c.id) {
            Some((_, status)) => finishes.push(finish(c.id, c.lease_token, *status, now)),
            None => back.push(c.lease()),
        }
    }
    assert_eq!(finishes.len(), ends.len(), "every task to end was due");
    assert!(store.finish(&finishes).unwrap().iter().all(|ok| *ok));
    store.release(&back, now).unwrap();
}

fn status(store: &dyn Store, id: i64) -> TaskStatus {
    store.task(id).unwrap().unwrap().status
}

fn claimable(store: &dyn Store, now: i64) -> Vec<i64> {
    let claimed = claim(store, "probe", 100, now);
    let leases: Vec<_> = claimed.iter().map(|c| c.lease()).collect();
    store.release(&leases, now).unwrap();
    let mut ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    ids
}

/// A dependant of two parents is not claimed while either runs, is released by the end of
/// the last one only, and is then claimed; the view lists both ways.
pub fn a_dependant_runs_after_all_its_parents_completed(store: &dyn Store) {
    let a = insert(store, task("w", Priority::Normal, None), NOW);
    let b = insert(store, task("w", Priority::Normal, None), NOW);
    let c = insert(store, dependant(&[a, b], OnParentFailure::Cancel), NOW);
    let waiting = store.task(c).unwrap().unwrap();
    assert_eq!(waiting.status, TaskStatus::Pending);
    assert_eq!(
        waiting.run_at, WAITING_RUN_AT,
        "waiting: the sentinel due time"
    );
    assert_eq!(claimable(store, NOW + 1), vec![a, b]);

    run_to_end(store, &[(a, TaskStatus::Completed)], NOW + 2);
    let first = store.resolve_dependencies(&[a], NOW + 3).unwrap();
    assert!(first.is_empty(), "{first:?}: b still runs");
    let view = store.task_dependencies(c).unwrap();
    assert_eq!((view.waiting_parents, view.first_waiting), (1, Some(b)));
    assert_eq!(claimable(store, NOW + 3), vec![b]);

    run_to_end(store, &[(b, TaskStatus::Completed)], NOW + 4);
    let last = store.resolve_dependencies(&[b], NOW + 5).unwrap();
    assert_eq!(last.released, vec![c]);
    let released = store.task(c).unwrap().unwrap();
    assert_eq!(released.run_at, NOW + 5, "due when released");
    assert_eq!(claimable(store, NOW + 5), vec![c]);

    let view = store.task_dependencies(c).unwrap();
    let parents: Vec<_> = view
        .parents
        .iter()
        .map(|r| (r.id, r.status, r.resolved))
        .collect();
    assert_eq!(
        parents,
        vec![
            (a, Some(TaskStatus::Completed), true),
            (b, Some(TaskStatus::Completed), true)
        ]
    );
    assert_eq!((view.parent_count, view.waiting_parents), (2, 0));
    let of_a = store.task_dependencies(a).unwrap();
    assert_eq!(of_a.dependant_count, 1);
    assert_eq!(of_a.dependants[0].id, c);
    assert_eq!(of_a.dependants[0].status, Some(TaskStatus::Pending));
}

/// A failed parent cancels its dependant, and that one's own dependant, with messages naming
/// the parent; a user's cancel of a pending parent does the same ("was cancelled").
pub fn a_failed_or_cancelled_parent_cancels_its_dependants_in_cascade(store: &dyn Store) {
    let a = insert(store, task("w", Priority::Normal, None), NOW);
    let b = insert(store, dependant(&[a], OnParentFailure::Cancel), NOW);
    let c = insert(store, dependant(&[b], OnParentFailure::Cancel), NOW);
    run_to_end(store, &[(a, TaskStatus::Failed)], NOW + 1);
    let done = store.resolve_dependencies(&[a], NOW + 2).unwrap();
    assert_eq!(
        done.cancelled,
        vec![
            (b, format!("Cancelled: task {a} it depends on failed")),
            (
                c,
                format!("Cancelled: task {b} it depends on was cancelled")
            ),
        ]
    );
    let cancelled = store.task(c).unwrap().unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(cancelled.finished_at, Some(NOW + 2));
    assert_ne!(
        cancelled.run_at, WAITING_RUN_AT,
        "no sentinel on a finished task"
    );

    let d = insert(store, task("w", Priority::Low, Some(NOW + 60_000)), NOW);
    let e = insert(store, dependant(&[d], OnParentFailure::Cancel), NOW);
    assert!(matches!(
        store.cancel(d, NOW + 3).unwrap(),
        CancelResult::Cancelled(_)
    ));
    let done = store.resolve_dependencies(&[d], NOW + 4).unwrap();
    assert_eq!(
        done.cancelled,
        vec![(
            e,
            format!("Cancelled: task {d} it depends on was cancelled")
        )]
    );
    // A retry of the failed parent does not revive its cancelled dependant.
    store.retry(a, NOW + 5).unwrap();
    assert_eq!(status(store, b), TaskStatus::Cancelled);
}

/// With `on_parent_failure = run`, a failed parent counts as finished: the dependant runs once
/// the other parent completed too.
pub fn run_anyway_runs_once_every_parent_finished(store: &dyn Store) {
    let a = insert(store, task("w", Priority::Normal, None), NOW);
    let b = insert(store, task("w", Priority::Normal, Some(NOW + 10)), NOW);
    let c = insert(store, dependant(&[a, b], OnParentFailure::Run), NOW);
    run_to_end(store, &[(a, TaskStatus::Failed)], NOW + 1);
    assert!(store
        .resolve_dependencies(&[a], NOW + 2)
        .unwrap()
        .is_empty());
    assert_eq!(status(store, c), TaskStatus::Pending);
    run_to_end(store, &[(b, TaskStatus::Completed)], NOW + 20);
    let done = store.resolve_dependencies(&[b], NOW + 21).unwrap();
    assert_eq!(done.released, vec![c]);
    assert_eq!(
        store.task_dependencies(c).unwrap().on_parent_failure,
        OnParentFailure::Run
    );
    assert_eq!(claimable(store, NOW + 21), vec![c]);
}

/// Ids that name no task are told apart (a create on them is refused), among them the next id,
/// which is what a task's own id or a future one would be: no cycle can be made.
pub fn unknown_parents_are_named(store: &dyn Store) {
    let a = insert(store, task("w", Priority::Normal, None), NOW);
    let missing = store.missing_tasks(&[a, a + 1, a + 1_000, a]).unwrap();
    assert_eq!(missing, vec![a + 1, a + 1_000]);
    assert!(store.missing_tasks(&[a]).unwrap().is_empty());
    let b = insert(store, task("w", Priority::Normal, None), NOW);
    assert_eq!(b, a + 1, "the next id was refused before it existed");
}

/// A repeat resolution does nothing; a parent already finished at creation counts at once
/// (completed: not waited for; failed: the rule applies in the insert).
pub fn resolution_is_idempotent_and_finished_parents_count_at_once(store: &dyn Store) {
    let a = insert(store, task("w", Priority::Normal, None), NOW);
    let f = insert(store, task("w", Priority::Normal, None), NOW);
    run_to_end(
        store,
        &[(a, TaskStatus::Completed), (f, TaskStatus::Failed)],
        NOW + 1,
    );
    let c = insert(store, dependant(&[a], OnParentFailure::Cancel), NOW + 2);
    let d = insert(store, dependant(&[f], OnParentFailure::Cancel), NOW + 2);
    let r = insert(store, dependant(&[a, f], OnParentFailure::Run), NOW + 2);
    assert_eq!(claimable(store, NOW + 3), vec![c, r]);
    let cancelled = store.task(d).unwrap().unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(
        cancelled.message,
        format!("Cancelled: task {f} it depends on failed")
    );

    let p = insert(store, task("w", Priority::Normal, None), NOW + 4);
    let q = insert(store, dependant(&[p, p], OnParentFailure::Cancel), NOW + 4);
    assert_eq!(
        store.task_dependencies(q).unwrap().parent_count,
        1,
        "one edge per parent"
    );
    run_to_end(store, &[(p, TaskStatus::Completed)], NOW + 5);
    assert_eq!(
        store
            .resolve_dependencies(&[p, p], NOW + 6)
            .unwrap()
            .released,
        vec![q]
    );
    assert!(store
        .resolve_dependencies(&[p], NOW + 7)
        .unwrap()
        .is_empty());
    assert!(store.sweep_dependencies(NOW + 7, 100).unwrap().is_empty());
    // A parent that has not finished resolves nothing.
    let s = insert(store, task("w", Priority::Normal, None), NOW + 8);
    let t = insert(store, dependant(&[s], OnParentFailure::Cancel), NOW + 8);
    assert!(store
        .resolve_dependencies(&[s], NOW + 9)
        .unwrap()
        .is_empty());
    assert_eq!(store.task_dependencies(t).unwrap().waiting_parents, 1);
}

/// A waiting task is pending but never claimed, and `next_due` does not wake for it.
pub fn a_waiting_task_is_not_claimed_and_not_next_due(store: &dyn Store) {
    let a = insert(store, task("w", Priority::High, Some(NOW + 60_000)), NOW);
    let c = insert(store, dependant(&[a], OnParentFailure::Cancel), NOW);
    let w = ["w".to_owned()];
    assert_eq!(store.next_due(NOW, &w).unwrap(), Some(NOW + 60_000));
    assert!(claimable(store, LATER).contains(&a));
    assert!(!claimable(store, LATER).contains(&c));
    assert_eq!(
        store.next_due(NOW + 60_000, &w).unwrap(),
        None,
        "only the waiting task is later"
    );
    let (pending, count) = store.pending_tasks(10).unwrap();
    assert_eq!(count, 2);
    assert!(pending.iter().any(|t| t.id == c));
}

/// The sweep finds finished parents whose end was not passed on (a kill between the finish
/// and its resolution) and resolves them; such a parent is not deleted before.
pub fn the_sweep_resolves_what_a_kill_left(store: &dyn Store) {
    let a = insert(store, task("w", Priority::Normal, None), NOW);
    let b = insert(store, task("w", Priority::Normal, None), NOW);
    let c = insert(store, dependant(&[a], OnParentFailure::Cancel), NOW);
    let d = insert(store, dependant(&[b], OnParentFailure::Cancel), NOW);
    run_to_end(
        store,
        &[(a, TaskStatus::Completed), (b, TaskStatus::Completed)],
        NOW + 1,
    );
    assert!(matches!(
        store.delete_task(a),
        Err(StoreError::Conflict { .. })
    ));
    assert!(store.delete_finished_before(i64::MAX).unwrap().is_empty());
    let one = store.sweep_dependencies(NOW + 2, 1).unwrap();
    assert_eq!(
        one.released,
        vec![c],
        "up to the limit, lowest parent first"
    );
    let rest = store.sweep_dependencies(NOW + 2, 100).unwrap();
    assert_eq!(rest.released, vec![d]);
    assert!(store.delete_task(a).unwrap().is_some());
    assert_eq!(
        store.task_dependencies(c).unwrap().parents[0].status,
        None,
        "deleted"
    );
}

/// Eight resolvers at once (threads; connections of their own on the servers, as hosts
/// would), each passing on the ends of a share of a dependant's 40 parents, some twice: the
/// dependant is released exactly once, when the last edge was resolved.
pub fn concurrent_resolutions_release_a_dependant_once(store: &dyn Store) {
    let parents: Vec<i64> = (0..40)
        .map(|_| insert(store, task("w", Priority::Normal, None), NOW))
        .collect();
    let child = insert(store, dependant(&parents, OnParentFailure::Cancel), NOW);
    let ends: Vec<(i64, TaskStatus)> = parents
        .iter()
        .map(|&p| (p, TaskStatus::Completed))
        .collect();
    run_to_end(store, &ends, NOW + 1);
    let released: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let share: Vec<i64> = parents.iter().copied().skip(i % 4).step_by(4).collect();
                s.spawn(move || {
                    store
                        .resolve_dependencies(&share, NOW + 2)
                        .unwrap()
                        .released
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(released, vec![child]);
    assert_eq!(store.task_dependencies(child).unwrap().waiting_parents, 0);
    assert_eq!(claimable(store, NOW + 3), vec![child]);
}
