//! Tasks: creation and reading back, lists and their filters, the pending list, the next due
//! time, progress, logs, counts, cancel and retry, deletion, and the external change counter.

use super::{claim, finish, task};
use crate::model::{LogLine, NewTask, Priority, TaskStatus};
use crate::{CancelResult, ProgressWrite, RetryResult, Store, StoreError, TaskFilter};
use serde_json::json;

/// Cancel: pending at once; finished tasks unchanged; retry re-queues failed and cancelled.
pub fn cancel_and_retry(store: &dyn Store) {
    let id = store
        .insert_task(&task("w", Priority::Normal, Some(99_999)), 0)
        .unwrap();
    let CancelResult::Cancelled(t) = store.cancel(id, 5).unwrap() else {
        panic!("pending task not cancelled at once");
    };
    assert_eq!((t.status, t.finished_at), (TaskStatus::Cancelled, Some(5)));
    assert!(matches!(
        store.cancel(id, 6).unwrap(),
        CancelResult::AlreadyFinished(_)
    ));
    assert!(matches!(
        store.cancel(424242, 6).unwrap(),
        CancelResult::NotFound
    ));
    let RetryResult::Queued(t) = store.retry(id, 7).unwrap() else {
        panic!("cancelled task not retried");
    };
    assert_eq!(
        (t.status, t.attempts, t.run_at),
        (TaskStatus::Pending, 0, 7)
    );
    assert!(matches!(
        store.retry(id, 8).unwrap(),
        RetryResult::NotRetryable(_)
    ));
}

/// Text from plugins may hold NUL (PostgreSQL's `text` cannot): progress, log lines, results
/// and errors with NUL are stored all the same (NUL kept, or shown as U+FFFD), and a search or
/// filter holding NUL is an ordinary query.
pub fn text_with_nul_is_stored(store: &dyn Store) {
    let id = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    let run = claim(store, "h", 1, 10).remove(0);
    store.start_runs(&[run.lease()], 11).unwrap();
    store
        .write_progress(
            &[ProgressWrite {
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
    let filter = TaskFilter {
        identifier: Some("w\0".into()),
        search: Some("\0".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.tasks(&filter).unwrap().1, 0);
    assert!(store.worker("w\0").unwrap().is_none());
    assert!(!store.set_worker_active("w\0", false, 21).unwrap());
}

/// A created task reads back as it was created: pending, due at its start time (or at once),
/// with its data, priority and attempts allowed, no attempt used; `insert_tasks` returns the
/// ids in order; an unknown id reads as nothing.
pub fn inserted_tasks_read_back_as_created(store: &dyn Store) {
    let mut first = task("w", Priority::High, None);
    first.action = "build".into();
    first.data = json!({"to": "x@example.org", "n": [1, 2]});
    first.max_attempts = 7;
    let id = store.insert_task(&first, 1_000).unwrap();
    let t = store.task(id).unwrap().expect("the task just created");
    assert_eq!(
        (t.identifier.as_str(), t.action.as_str(), t.status, &t.meta),
        ("w", "build", TaskStatus::Pending, &first.data)
    );
    assert_eq!(
        (t.priority, t.max_attempts, t.attempts, t.run_at, t.start_at),
        (Priority::High, 7, 0, 1_000, None)
    );
    assert_eq!(
        (t.created_at, t.finished_at, t.lease_owner),
        (1_000, None, None)
    );
    assert!(
        !t.message.is_empty(),
        "a pending task says what it waits for"
    );

    let batch = [
        task("w", Priority::Low, Some(5_000)),
        task("v", Priority::Normal, None),
    ];
    let ids = store
        .insert_tasks(&batch, 2_000)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    assert_eq!(ids.len(), 2);
    assert!(
        id < ids[0] && ids[0] < ids[1],
        "ids grow in insertion order"
    );
    let scheduled = store.task(ids[0]).unwrap().unwrap();
    assert_eq!(
        (scheduled.run_at, scheduled.start_at, scheduled.priority),
        (5_000, Some(5_000), Priority::Low)
    );
    assert_eq!(store.task(ids[1]).unwrap().unwrap().identifier, "v");
    assert!(store
        .insert_tasks(&[], 3_000)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>()
        .is_empty());
    assert!(store.task(ids[1] + 1_000).unwrap().is_none());
}

/// A task list filters by status, identifier, action, priority, creation time (from
/// inclusive, to exclusive) and text (case-insensitive, in message, data, identifier or
/// action); it pages newest first (or oldest first) and counts every match, not only the page.
pub fn task_lists_filter_page_and_count(store: &dyn Store) {
    let mut mail = task("mailer", Priority::High, None);
    mail.action = "send".into();
    mail.data = json!({"subject": "Quarterly REPORT"});
    let a = store
        .insert_task(&task("w", Priority::Normal, None), 100)
        .unwrap();
    let b = store.insert_task(&mail, 200).unwrap();
    let c = store
        .insert_task(&task("w", Priority::Low, None), 300)
        .unwrap();
    let d = store
        .insert_task(&task("w", Priority::Normal, None), 400)
        .unwrap();
    store.cancel(d, 500).unwrap();
    let ids = |filter: TaskFilter| {
        let (page, total) = store
            .tasks(&TaskFilter {
                limit: 10,
                ..filter
            })
            .unwrap();
        (page.iter().map(|t| t.id).collect::<Vec<_>>(), total)
    };
    assert_eq!(ids(TaskFilter::default()), (vec![d, c, b, a], 4));
    let oldest_first = TaskFilter {
        oldest_first: true,
        ..Default::default()
    };
    assert_eq!(ids(oldest_first), (vec![a, b, c, d], 4));
    let status = TaskFilter {
        statuses: vec![TaskStatus::Cancelled],
        ..Default::default()
    };
    assert_eq!(ids(status), (vec![d], 1));
    let identifier = TaskFilter {
        identifier: Some("mailer".into()),
        ..Default::default()
    };
    assert_eq!(ids(identifier), (vec![b], 1));
    let action = TaskFilter {
        action: Some("run".into()),
        ..Default::default()
    };
    assert_eq!(ids(action), (vec![d, c, a], 3));
    let priority = TaskFilter {
        priority: Some(Priority::Low),
        ..Default::default()
    };
    assert_eq!(ids(priority), (vec![c], 1));
    let created = TaskFilter {
        created_from: Some(200),
        created_to: Some(400),
        ..Default::default()
    };
    assert_eq!(ids(created), (vec![c, b], 2));
    let search = TaskFilter {
        search: Some("quarterly report".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(search),
        (vec![b], 1),
        "found in the data, whatever the case"
    );
    let page = TaskFilter {
        limit: 2,
        offset: 1,
        ..Default::default()
    };
    let (tasks, total) = store.tasks(&page).unwrap();
    let page: Vec<i64> = tasks.iter().map(|t| t.id).collect();
    assert_eq!(
        (page, total),
        (vec![c, b], 4),
        "the total counts beyond the page"
    );
}

/// A follow-up's `parent_id` is stored and read back as given, by `insert_task` and
/// `insert_tasks` alike (absent for other tasks), and the list filter `parent_id` gives a
/// task's follow-ups only, oldest first when asked, counted beyond the page.
pub fn parent_id_round_trips_and_filters_follow_ups(store: &dyn Store) {
    let child_of = |parent_id: Option<i64>| NewTask {
        parent_id,
        ..task("w", Priority::Normal, None)
    };
    let parent = store.insert_task(&child_of(None), 100).unwrap();
    let other = store.insert_task(&child_of(None), 100).unwrap();
    let first = store.insert_task(&child_of(Some(parent)), 200).unwrap();
    let ids: Vec<i64> = store
        .insert_tasks(
            &[
                child_of(Some(other)),
                child_of(Some(parent)),
                child_of(None),
            ],
            300,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    let (of_other, second, orphan) = (ids[0], ids[1], ids[2]);
    let parent_of = |id: i64| store.task(id).unwrap().expect("just created").parent_id;
    assert_eq!(parent_of(parent), None);
    assert_eq!(parent_of(first), Some(parent));
    assert_eq!(parent_of(of_other), Some(other), "not mixed up in a batch");
    assert_eq!(parent_of(second), Some(parent));
    assert_eq!(parent_of(orphan), None);
    let children = |parent_id: i64, limit: i64, oldest_first: bool| {
        let (page, total) = store
            .tasks(&TaskFilter {
                parent_id: Some(parent_id),
                limit,
                oldest_first,
                ..Default::default()
            })
            .unwrap();
        (page.iter().map(|t| t.id).collect::<Vec<_>>(), total)
    };
    assert_eq!(children(parent, 10, true), (vec![first, second], 2));
    assert_eq!(children(parent, 10, false), (vec![second, first], 2));
    assert_eq!(
        children(parent, 1, true),
        (vec![first], 2),
        "counted beyond the page"
    );
    assert_eq!(children(other, 10, true), (vec![of_other], 1));
    assert_eq!(children(orphan, 10, true), (vec![], 0));
    let combined = TaskFilter {
        parent_id: Some(parent),
        created_from: Some(250),
        limit: 10,
        ..Default::default()
    };
    let (page, total) = store.tasks(&combined).unwrap();
    assert_eq!(
        (page.iter().map(|t| t.id).collect::<Vec<_>>(), total),
        (vec![second], 1),
        "with the other filters, all apply"
    );
}

/// A task's CMS user (`started_by`) and API token (`token_id`) are two columns: each is
/// stored and read back as given, by `insert_task` and `insert_tasks` alike (either may be
/// absent), and the list filters by user alone, never matching a token id.
pub fn started_by_and_token_id_are_stored_apart_and_filtered(store: &dyn Store) {
    let with = |started_by: Option<i64>, token_id: Option<i64>| NewTask {
        started_by,
        token_id,
        ..task("w", Priority::Normal, None)
    };
    let user_7 = store.insert_task(&with(Some(7), Some(3)), 100).unwrap();
    let ids = store
        .insert_tasks(
            &[
                with(Some(3), Some(7)),
                with(None, Some(3)),
                with(Some(7), None),
            ],
            200,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    let (user_3, no_user, user_7_no_token) = (ids[0], ids[1], ids[2]);
    let who = |id: i64| {
        let t = store.task(id).unwrap().expect("the task just created");
        (t.started_by, t.token_id)
    };
    assert_eq!(who(user_7), (Some(7), Some(3)));
    assert_eq!(who(user_3), (Some(3), Some(7)), "not swapped in a batch");
    assert_eq!(who(no_user), (None, Some(3)));
    assert_eq!(who(user_7_no_token), (Some(7), None));
    let by_user = |user: i64| {
        let (page, total) = store
            .tasks(&TaskFilter {
                started_by: Some(user),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        (page.iter().map(|t| t.id).collect::<Vec<_>>(), total)
    };
    assert_eq!(by_user(7), (vec![user_7_no_token, user_7], 2));
    assert_eq!(by_user(3), (vec![user_3], 1), "a token id is not a user");
    assert_eq!(by_user(99), (vec![], 0));
    let combined = TaskFilter {
        started_by: Some(7),
        created_from: Some(150),
        limit: 10,
        ..Default::default()
    };
    let (page, total) = store.tasks(&combined).unwrap();
    assert_eq!(
        (page.iter().map(|t| t.id).collect::<Vec<_>>(), total),
        (vec![user_7_no_token], 1),
        "with the other filters, all apply"
    );
}

/// The pending list is in claim order (priority, then due time, then id), scheduled tasks
/// included, at most `limit` long, with the number pending in all; claimed and finished
/// tasks are not pending.
pub fn pending_tasks_in_claim_order(store: &dyn Store) {
    assert_eq!(store.pending_tasks(10).unwrap().1, 0);
    let ids = store
        .insert_tasks(
            &[
                task("w", Priority::Low, None),
                task("w", Priority::Normal, Some(900)),
                task("w", Priority::Normal, Some(50)),
                task("w", Priority::High, Some(10_000)),
                task("w", Priority::Normal, None),
            ],
            0,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    // Due at 60: ids[0] (low, 0), ids[2] (normal, 50), ids[4] (normal, 0): ids[4] goes first.
    let claimed = claim(store, "h", 1, 60).remove(0);
    assert_eq!(claimed.id, ids[4]);
    store.cancel(ids[0], 70).unwrap();
    let (pending, total) = store.pending_tasks(10).unwrap();
    let order: Vec<i64> = pending.iter().map(|t| t.id).collect();
    assert_eq!((order, total), (vec![ids[3], ids[2], ids[1]], 3));
    let (first, total) = store.pending_tasks(1).unwrap();
    assert_eq!((first.len(), first[0].id, total), (1, ids[3], 3));
    let (none, total) = store.pending_tasks(0).unwrap();
    assert_eq!((none.len(), total), (0, 3));
}

/// The next due time is the earliest `run_at` strictly after `now` among the pending tasks
/// of the given workers, any priority; due, claimed, cancelled and other workers' tasks do
/// not count, and no workers means no due time.
pub fn next_due_is_the_earliest_future_pending_task(store: &dyn Store) {
    let w = ["w".to_owned()];
    assert_eq!(store.next_due(0, &w).unwrap(), None);
    let ids = store
        .insert_tasks(
            &[
                task("w", Priority::High, Some(9_000)),
                task("w", Priority::Low, Some(3_000)),
                task("other", Priority::Normal, Some(1_500)),
                task("w", Priority::Normal, Some(2_000)),
                task("w", Priority::Normal, Some(500)),
            ],
            0,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    assert_eq!(store.next_due(1_000, &w).unwrap(), Some(2_000));
    assert_eq!(
        store.next_due(2_000, &w).unwrap(),
        Some(3_000),
        "a task due exactly now is due, not next"
    );
    assert_eq!(store.next_due(1_000, &[]).unwrap(), None);
    let both = ["w".to_owned(), "other".to_owned()];
    assert_eq!(store.next_due(1_000, &both).unwrap(), Some(1_500));
    store.cancel(ids[3], 1_100).unwrap();
    assert_eq!(store.next_due(1_000, &w).unwrap(), Some(3_000));
    assert_eq!(claim(store, "h", 1, 3_000)[0].id, ids[4]);
    assert_eq!(claim(store, "h", 1, 3_000)[0].id, ids[1]);
    assert_eq!(store.next_due(1_000, &w).unwrap(), Some(9_000));
    assert_eq!(store.next_due(9_000, &w).unwrap(), None);
}

/// Progress lands only while the writer holds the task's current lease: it sets progress,
/// items, ETA, message and worker version, and marks a started run running with its attempt
/// counted once; a write under another lease or for a finished task changes nothing.
pub fn progress_is_written_only_under_the_current_lease(store: &dyn Store) {
    let id = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    let run = claim(store, "h", 1, 10).remove(0);
    assert_eq!(store.start_runs(&[run.lease()], 11).unwrap(), vec![true]);
    let write = |lease_token: i64, progress: i64, at: i64| {
        store
            .write_progress(
                &[ProgressWrite {
                    id,
                    lease_token,
                    progress,
                    processed: Some(progress / 10),
                    total: Some(10),
                    eta_seconds: Some(5),
                    message: format!("at {progress}"),
                    worker_version: "1.2.3".into(),
                }],
                at,
            )
            .unwrap()
    };
    write(run.lease_token, 40, 20);
    let t = store.task(id).unwrap().unwrap();
    assert_eq!(
        (
            t.status,
            t.attempts,
            t.progress,
            t.processed,
            t.total,
            t.eta_seconds
        ),
        (TaskStatus::Running, 1, 40, Some(4), Some(10), Some(5))
    );
    assert_eq!(
        (t.message.as_str(), t.worker_version.as_deref()),
        ("at 40", Some("1.2.3"))
    );
    write(run.lease_token ^ 1, 90, 30);
    assert_eq!(
        store.task(id).unwrap().unwrap().progress,
        40,
        "another lease's write"
    );
    write(run.lease_token, 60, 40);
    store.flush_starts(41).unwrap();
    let t = store.task(id).unwrap().unwrap();
    assert_eq!((t.progress, t.attempts), (60, 1), "the attempt counts once");
    let mut end = finish(id, run.lease_token, TaskStatus::Completed, 50);
    end.progress = Some(100);
    assert_eq!(store.finish(&[end]).unwrap(), vec![true]);
    write(run.lease_token, 70, 60);
    let t = store.task(id).unwrap().unwrap();
    assert_eq!(
        (t.status, t.progress),
        (TaskStatus::Completed, 100),
        "after the finish"
    );
    store.write_progress(&[], 70).unwrap();
}

/// A task's log is its latest `limit` lines, oldest first, with attempt, level and time as
/// appended; other tasks' lines never show.
pub fn logs_are_the_latest_lines_oldest_first(store: &dyn Store) {
    let ids = store
        .insert_tasks(
            &[
                task("w", Priority::Normal, None),
                task("w", Priority::Normal, None),
            ],
            0,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    assert!(store.task_logs(ids[0], 10).unwrap().is_empty());
    let line = |task_id: i64, attempt: u32, level: u8, at: i64| LogLine {
        task_id,
        attempt,
        level,
        at,
        line: format!("line {at}"),
    };
    store
        .append_logs(&[
            line(ids[0], 1, 0, 10),
            line(ids[1], 1, 2, 11),
            line(ids[0], 1, 1, 12),
        ])
        .unwrap();
    store.append_logs(&[line(ids[0], 2, 2, 13)]).unwrap();
    store.append_logs(&[]).unwrap();
    let seen = |id: i64, limit: i64| -> Vec<(u32, u8, i64, String)> {
        store
            .task_logs(id, limit)
            .unwrap()
            .into_iter()
            .inspect(|l| assert_eq!(l.task_id, id))
            .map(|l| (l.attempt, l.level, l.at, l.line))
            .collect()
    };
    assert_eq!(
        seen(ids[0], 10),
        vec![
            (1, 0, 10, "line 10".to_owned()),
            (1, 1, 12, "line 12".to_owned()),
            (2, 2, 13, "line 13".to_owned()),
        ]
    );
    assert_eq!(
        seen(ids[0], 2),
        vec![
            (1, 1, 12, "line 12".to_owned()),
            (2, 2, 13, "line 13".to_owned())
        ],
        "the latest lines"
    );
    assert_eq!(seen(ids[1], 10), vec![(1, 2, 11, "line 11".to_owned())]);
}

/// The counts per status add up to the total.
pub fn stats_count_every_status(store: &dyn Store) {
    let empty = store.stats().unwrap();
    assert_eq!((empty.total, empty.pending), (0, 0));
    let tasks: Vec<_> = (0..7).map(|_| task("w", Priority::Normal, None)).collect();
    let ids = store
        .insert_tasks(&tasks, 0)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    let claimed = claim(store, "h", 4, 10);
    assert_eq!(
        store.start_runs(&[claimed[1].lease()], 11).unwrap(),
        vec![true]
    );
    store.flush_starts(11).unwrap();
    for (run, status) in [
        (&claimed[2], TaskStatus::Completed),
        (&claimed[3], TaskStatus::Failed),
    ] {
        assert_eq!(
            store
                .finish(&[finish(run.id, run.lease_token, status, 20)])
                .unwrap(),
            vec![true]
        );
    }
    store.cancel(ids[6], 30).unwrap();
    let s = store.stats().unwrap();
    assert_eq!(
        (
            s.pending,
            s.preparing,
            s.running,
            s.completed,
            s.failed,
            s.cancelled,
            s.total
        ),
        (2, 1, 1, 1, 1, 1, 7)
    );
}

/// Only a finished task can be deleted: it is returned (for its files) and gone with its
/// logs; an unfinished one is a conflict and stays; an unknown id deletes nothing.
pub fn only_finished_tasks_are_deleted(store: &dyn Store) {
    let ids = store
        .insert_tasks(
            &[
                task("w", Priority::Normal, None),
                task("w", Priority::Normal, None),
            ],
            0,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    store
        .append_logs(&[LogLine {
            task_id: ids[0],
            attempt: 0,
            level: 0,
            at: 1,
            line: "kept until the task goes".into(),
        }])
        .unwrap();
    assert!(matches!(
        store.delete_task(ids[1]),
        Err(StoreError::Conflict { .. })
    ));
    assert!(
        store.task(ids[1]).unwrap().is_some(),
        "a refused delete keeps the task"
    );
    store.cancel(ids[0], 5).unwrap();
    let deleted = store
        .delete_task(ids[0])
        .unwrap()
        .expect("the deleted task");
    assert_eq!(
        (deleted.id, deleted.status),
        (ids[0], TaskStatus::Cancelled)
    );
    assert!(store.task(ids[0]).unwrap().is_none());
    assert!(
        store.task_logs(ids[0], 10).unwrap().is_empty(),
        "its logs went with it"
    );
    assert!(store.delete_task(ids[0]).unwrap().is_none());
}

/// The external change counter, per driver contract. On a database of one host (SQLite) it is
/// always known and this store's own writes never change it (only another process's commit
/// does). On a shared database (PostgreSQL) it is unknown until a listener runs; then it
/// changes when a cancel request or a worker change is stored, by any host.
pub fn external_change_counter_follows_the_driver_contract(store: &dyn Store) {
    use std::sync::mpsc;
    use std::time::Duration;
    let id = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    if !store.shared_by_hosts() {
        let before = store.external_change_counter().unwrap();
        assert!(
            before.is_some(),
            "one host's database always knows its counter"
        );
        claim(store, "h", 1, 10);
        store.cancel(id, 20).unwrap();
        store.set_worker_active("w", false, 30).unwrap();
        assert_eq!(
            store.external_change_counter().unwrap(),
            before,
            "the store's own writes are not external changes"
        );
        return;
    }
    assert_eq!(
        store.external_change_counter().unwrap(),
        None,
        "no listener yet"
    );
    let (woken, wakes) = mpsc::channel();
    store.on_new_work(std::sync::Arc::new(move || {
        let _ = woken.send(());
    }));
    // The listener wakes once when it is connected: from then on notifications count.
    wakes
        .recv_timeout(Duration::from_secs(20))
        .expect("the listener connects");
    let before = store
        .external_change_counter()
        .unwrap()
        .expect("known while the listener runs");
    claim(store, "h", 1, 10);
    assert!(matches!(
        store.cancel(id, 20).unwrap(),
        CancelResult::Requested(_)
    ));
    // Every notification wakes the hook; the counter has moved once the cancel's has come.
    let changed = loop {
        if wakes.recv_timeout(Duration::from_secs(20)).is_err() {
            break false;
        }
        if store.external_change_counter().unwrap() != Some(before) {
            break true;
        }
    };
    assert!(changed, "a cancel request changes the counter");
}

/// A row inserted the original product's way — only `identifier`, `action`, `status` 10,
/// `priority` as text and `meta`, optionally `start_at` and `max_attempts` — gets every other
/// column from the schema (migration 0006: times now in ms, `run_at` from `start_at`, the rank
/// from the priority, the message) and is claimed in claim order beside sTask's own tasks.
/// The statements are plain SQL every backend accepts, sent through
/// [`Store::execute_foreign`] (which applies the table prefix), with `start_at` written as
/// the backend's column type takes it ([`Store::time_literal`]).
pub fn a_row_written_with_only_the_original_columns_is_claimed(store: &dyn Store) {
    let before = crate::clock::now_ms();
    let later = before + 3_600_000;
    let own = store
        .insert_task(&task("w", Priority::Normal, None), before - 1_000)
        .unwrap();
    store
        .execute_foreign(
            "INSERT INTO s_tasks (identifier, action, status, priority, meta)
             VALUES ('w', 'run', 10, 'high', '{\"seed\":1}')",
        )
        .unwrap();
    store
        .execute_foreign(&format!(
            "INSERT INTO s_tasks (identifier, action, status, priority, meta, start_at, max_attempts)
             VALUES ('w', 'run', 10, 'low', '{{}}', {}, 5)",
            store.time_literal(later)
        ))
        .unwrap();
    let after = crate::clock::now_ms();
    let (pending, total) = store.pending_tasks(10).unwrap();
    assert_eq!(total, 3);
    // Claim order: the high seed, then sTask's normal task, then the scheduled low seed.
    let (seed, scheduled) = (&pending[0], &pending[2]);
    assert_eq!(pending[1].id, own);
    assert_eq!(
        (seed.priority, seed.status),
        (Priority::High, TaskStatus::Pending)
    );
    assert_eq!(seed.meta, json!({"seed": 1}));
    assert_eq!((seed.attempts, seed.max_attempts), (0, 3));
    assert_eq!(seed.message, crate::task_state::WAITING_TO_RUN);
    // Milliseconds of the database's clock (the same machine's in the tests).
    for at in [seed.run_at, seed.created_at] {
        assert!((before - 2_000..=after + 2_000).contains(&at), "{at} in ms");
    }
    assert_eq!(scheduled.priority, Priority::Low);
    assert_eq!((scheduled.start_at, scheduled.run_at), (Some(later), later));
    assert_eq!(scheduled.max_attempts, 5);
    assert!(
        scheduled.message.starts_with("Scheduled for "),
        "{}",
        scheduled.message
    );
    let claimed: Vec<i64> = claim(store, "h", 10, after + 2_000)
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(claimed, vec![seed.id, own]);
}
