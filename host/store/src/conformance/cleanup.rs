//! Retention: finished tasks older than the cutoff go, with their logs; nothing else does.

use super::{claim, finish, task};
use crate::model::{LogLine, Priority, TaskStatus};
use crate::Store;

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

/// Retention takes every finished status (completed, failed, cancelled) and the logs of the
/// tasks it deletes; a task that finished at the cutoff, and the logs of kept tasks, stay.
pub fn retention_deletes_the_logs_of_deleted_tasks(store: &dyn Store) {
    let tasks: Vec<_> = (0..4).map(|_| task("w", Priority::Normal, None)).collect();
    let ids = store
        .insert_tasks(&tasks, 0)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    let claimed = claim(store, "h", 2, 1);
    let ends = [
        finish(
            claimed[0].id,
            claimed[0].lease_token,
            TaskStatus::Completed,
            100,
        ),
        finish(
            claimed[1].id,
            claimed[1].lease_token,
            TaskStatus::Failed,
            200,
        ),
    ];
    assert_eq!(store.finish(&ends).unwrap(), vec![true, true]);
    store.cancel(ids[2], 150).unwrap();
    let lines: Vec<LogLine> = ids
        .iter()
        .map(|&task_id| LogLine {
            task_id,
            attempt: 1,
            level: 0,
            at: 50,
            line: format!("log of {task_id}"),
        })
        .collect();
    store.append_logs(&lines).unwrap();
    let mut deleted = store.delete_finished_before(200).unwrap();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![ids[0], ids[2]],
        "finished before the cutoff, any outcome"
    );
    for gone in [ids[0], ids[2]] {
        assert!(store.task(gone).unwrap().is_none());
        assert!(
            store.task_logs(gone, 10).unwrap().is_empty(),
            "its logs went too"
        );
    }
    for kept in [ids[1], ids[3]] {
        assert_eq!(
            store.task_logs(kept, 10).unwrap().len(),
            1,
            "a kept task keeps its log"
        );
    }
    assert_eq!(store.delete_finished_before(201).unwrap(), vec![ids[1]]);
}
