//! Batches (see `crate::batches`): created whole under one id, counted per status, their
//! `on_complete` released once after every task with the batch's figures in its data, and
//! cancelled as one.

use super::{claim, finish, task};
use crate::batches::{NewBatch, ASSIGN_CHUNK};
use crate::model::{NewTask, Priority, TaskStatus};
use crate::{CancelResult, Store, TaskFilter};
use serde_json::json;

const NOW: i64 = 1_700_000_000_000;

fn batch_of(n: usize, on_complete: bool) -> NewBatch {
    NewBatch {
        name: Some("nightly".into()),
        created_by: None,
        tasks: (0..n)
            .map(|i| NewTask {
                data: json!({ "i": i }),
                ..task("w", Priority::Normal, None)
            })
            .collect(),
        on_complete: on_complete.then(|| NewTask {
            data: json!({ "report": true }),
            ..task("w", Priority::Normal, None)
        }),
    }
}

/// A batch's row, its tasks' `batch_id`, the list filter and the batch list agree, and an
/// unknown batch reads as none.
pub fn a_batch_is_created_whole_and_counted(store: &dyn Store) {
    let created = store.insert_batch(&batch_of(3, false), NOW).unwrap();
    assert_eq!(created.tasks.len(), 3);
    assert!(created.tasks.iter().all(|t| !t.duplicate));
    assert_eq!(created.on_complete_task_id, None);
    let batch = store.batch(created.id).unwrap().expect("the batch");
    assert_eq!(batch.row.name.as_deref(), Some("nightly"));
    assert_eq!(batch.row.total, 3);
    assert_eq!(batch.row.created_at, NOW);
    assert_eq!(batch.row.cancelled_at, None);
    assert_eq!(batch.counts.pending, 3);
    assert_eq!(batch.counts.finished(), 0);
    for t in &created.tasks {
        assert_eq!(
            store.task(t.id).unwrap().unwrap().batch_id,
            Some(created.id)
        );
    }
    let (listed, total) = store
        .tasks(&TaskFilter {
            batch_id: Some(created.id),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(listed.len(), 3);
    let other = store.insert_batch(&batch_of(1, false), NOW + 1).unwrap();
    let (page, count) = store.batches(10, 0).unwrap();
    assert_eq!(count, 2);
    assert_eq!(
        page.iter().map(|b| b.row.id).collect::<Vec<_>>(),
        vec![other.id, created.id],
        "newest first"
    );
    let (page, _) = store.batches(1, 1).unwrap();
    assert_eq!(page[0].row.id, created.id);
    assert!(store.batch(created.id + 1_000).unwrap().is_none());
}

/// The `on_complete` task waits for every task of the batch (more than one assignment chunk:
/// the links are set-based), is released only by the last end, once, whether the tasks
/// completed, failed or were cancelled, and its data then holds the batch's figures.
pub fn on_complete_runs_once_after_every_task_with_the_counts(store: &dyn Store) {
    let n = ASSIGN_CHUNK + 2;
    let created = store.insert_batch(&batch_of(n, true), NOW).unwrap();
    let last = created.on_complete_task_id.expect("an on_complete task");
    let deps = store.task_dependencies(last).unwrap();
    assert_eq!(deps.parent_count, n as i64);
    assert_eq!(deps.waiting_parents, n as i64);
    assert_eq!(
        store.batch(created.id).unwrap().unwrap().row.total,
        n as i64
    );
    let ids: Vec<i64> = created.tasks.iter().map(|t| t.id).collect();
    // One is cancelled by a user, the rest run: one fails, the others complete.
    assert!(matches!(
        store.cancel(ids[0], NOW).unwrap(),
        CancelResult::Cancelled(_)
    ));
    store.resolve_dependencies(&[ids[0]], NOW).unwrap();
    let mut claimed = Vec::new();
    loop {
        let got = claim(store, "h", 200, NOW);
        if got.is_empty() {
            break;
        }
        assert!(got.iter().all(|c| c.id != last), "on_complete waits");
        claimed.extend(got);
    }
    assert_eq!(claimed.len(), n - 1);
    let (final_one, rest) = claimed.split_last().unwrap();
    let finishes: Vec<_> = rest
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let status = if i == 0 {
                TaskStatus::Failed
            } else {
                TaskStatus::Completed
            };
            finish(c.id, c.lease_token, status, NOW)
        })
        .collect();
    assert!(store.finish(&finishes).unwrap().iter().all(|ok| *ok));
    let ended: Vec<i64> = rest.iter().map(|c| c.id).collect();
    let done = store.resolve_dependencies(&ended, NOW).unwrap();
    assert!(done.released.is_empty(), "one task is still running");
    assert_eq!(
        store.task(last).unwrap().unwrap().status,
        TaskStatus::Pending
    );
    let f = finish(
        final_one.id,
        final_one.lease_token,
        TaskStatus::Completed,
        NOW,
    );
    assert!(store.finish(&[f]).unwrap()[0]);
    let done = store.resolve_dependencies(&[final_one.id], NOW).unwrap();
    assert_eq!(done.released, vec![last]);
    let again = store.resolve_dependencies(&ids, NOW).unwrap();
    assert!(again.is_empty(), "released once: {again:?}");
    assert!(store.sweep_dependencies(NOW, 1_000).unwrap().is_empty());
    let data = store.task(last).unwrap().unwrap().meta;
    assert_eq!(data["report"], json!(true), "its own data is kept");
    let b = &data["batch"];
    assert_eq!(b["id"], json!(created.id));
    assert_eq!(b["total"], json!(n));
    assert_eq!(b["completed"], json!(n - 2));
    assert_eq!(b["failed"], json!(1));
    assert_eq!(b["cancelled"], json!(1));
    assert_eq!(b["task_ids"], json!(ids));
    let claimed = claim(store, "h", 10, NOW);
    assert_eq!(claimed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![last]);
    let counts = store.batch(created.id).unwrap().unwrap().counts;
    assert_eq!(
        (counts.completed, counts.failed, counts.cancelled),
        (n as i64 - 2, 1, 1)
    );
    assert_eq!(counts.first_finished_at, Some(NOW));
}

/// A cancel cancels the pending tasks, flags the leased ones and marks the batch; the
/// on_complete task is left to run; an unknown batch is `None`; a second cancel finds
/// nothing more to cancel.
pub fn cancelling_a_batch_cancels_pending_and_flags_leased(store: &dyn Store) {
    let created = store.insert_batch(&batch_of(3, true), NOW).unwrap();
    let last = created.on_complete_task_id.unwrap();
    let leased = claim(store, "h", 1, NOW);
    assert_eq!(leased.len(), 1);
    let done = store.cancel_batch(created.id, NOW + 5).unwrap().unwrap();
    assert_eq!(done.requested, vec![leased[0].id]);
    let mut pending: Vec<i64> = created
        .tasks
        .iter()
        .map(|t| t.id)
        .filter(|id| *id != leased[0].id)
        .collect();
    pending.sort_unstable();
    assert_eq!(done.cancelled, pending);
    for id in &pending {
        assert_eq!(
            store.task(*id).unwrap().unwrap().status,
            TaskStatus::Cancelled
        );
    }
    assert!(store.task(leased[0].id).unwrap().unwrap().cancel_requested);
    let batch = store.batch(created.id).unwrap().unwrap();
    assert_eq!(batch.row.cancelled_at, Some(NOW + 5));
    assert_eq!(batch.counts.cancelled, 2);
    store
        .resolve_dependencies(&done.cancelled, NOW + 5)
        .unwrap();
    assert_eq!(
        store.task(last).unwrap().unwrap().status,
        TaskStatus::Pending
    );
    let f = finish(
        leased[0].id,
        leased[0].lease_token,
        TaskStatus::Cancelled,
        NOW + 6,
    );
    assert!(store.finish(&[f]).unwrap()[0]);
    let released = store
        .resolve_dependencies(&[leased[0].id], NOW + 6)
        .unwrap();
    assert_eq!(
        released.released,
        vec![last],
        "on_complete runs after a cancel"
    );
    assert_eq!(
        store.task(last).unwrap().unwrap().meta["batch"]["cancelled"],
        json!(3)
    );
    let again = store.cancel_batch(created.id, NOW + 7).unwrap().unwrap();
    assert!(again.cancelled.is_empty() && again.requested.is_empty());
    assert_eq!(
        store.batch(created.id).unwrap().unwrap().row.cancelled_at,
        Some(NOW + 5),
        "the first cancel's time stays"
    );
    assert!(store
        .cancel_batch(created.id + 1_000, NOW)
        .unwrap()
        .is_none());
}

/// What a kill between the last task's finish and its resolution leaves is released by the
/// sweep, once, with the figures in the on_complete task's data (the sweep releases through
/// the same code).
pub fn the_sweep_releases_on_complete_with_its_figures_once(store: &dyn Store) {
    let created = store.insert_batch(&batch_of(2, true), NOW).unwrap();
    let last = created.on_complete_task_id.unwrap();
    let claimed = claim(store, "h", 10, NOW);
    assert_eq!(claimed.len(), 2);
    let finishes: Vec<_> = claimed
        .iter()
        .map(|c| finish(c.id, c.lease_token, TaskStatus::Completed, NOW))
        .collect();
    // Finished, never resolved: as after a kill right after the finisher's write.
    assert!(store.finish(&finishes).unwrap().iter().all(|ok| *ok));
    assert_eq!(store.task(last).unwrap().unwrap().meta.get("batch"), None);
    let swept = store.sweep_dependencies(NOW + 1, 1_000).unwrap();
    assert_eq!(swept.released, vec![last]);
    assert!(store.sweep_dependencies(NOW + 2, 1_000).unwrap().is_empty());
    let b = &store.task(last).unwrap().unwrap().meta["batch"];
    assert_eq!(
        (&b["completed"], &b["total"]),
        (&json!(2), &json!(2)),
        "{b}"
    );
}
