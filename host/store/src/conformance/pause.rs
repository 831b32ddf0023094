//! Pausing a worker's queue: the claim skips a paused worker's tasks without blocking the
//! tasks of other workers behind them, resume gives them back in their claim order, and the
//! pause is the row's (it survives the process).

use super::workers::registration;
use super::{task, Reopen};
use crate::model::{Priority, TaskStatus};
use crate::{ClaimRequest, Store};
use serde_json::json;
use std::sync::Arc;

/// Claims up to `limit` due tasks of the workers `p` and `w` (and `norow`, a worker without a
/// row) at `now`; returns their ids in claim order.
fn claim_ids(store: &dyn Store, limit: usize, now: i64) -> Vec<i64> {
    let identifiers = ["p".to_owned(), "w".to_owned(), "norow".to_owned()];
    store
        .claim(&ClaimRequest {
            owner: "h",
            limit,
            now,
            lease_ms: 1_000,
            identifiers: &identifiers,
            ..Default::default()
        })
        .unwrap()
        .tasks
        .iter()
        .map(|c| c.id)
        .collect()
}

fn register(store: &dyn Store, identifier: &str) {
    store
        .upsert_worker(&registration(identifier, "s", json!({})), 1)
        .unwrap();
}

/// A paused worker's tasks stay pending while the tasks of other workers behind them (lower
/// priority, later, or a worker without a row) are claimed; a pause of an unknown worker
/// changes nothing; after resume, the held tasks are claimed in their order (priority, then
/// due time and id). Pause and resume are plain flags on the row: activation is untouched.
pub fn a_paused_workers_tasks_are_skipped_not_waited_on(store: &dyn Store) {
    register(store, "p");
    register(store, "w");
    assert!(!store.set_worker_paused("nope", true, 5).unwrap());
    assert!(store.set_worker_paused("p", true, 10).unwrap());
    let p = store.worker("p").unwrap().unwrap();
    assert!(
        p.paused && p.active,
        "a pause keeps the worker active: {p:?}"
    );
    assert!(!store.worker("w").unwrap().unwrap().paused);
    let ids = store
        .insert_tasks(
            &[
                task("p", Priority::High, None),
                task("p", Priority::Normal, None),
                task("w", Priority::Low, None),
                task("p", Priority::High, None),
                task("w", Priority::Normal, None),
                task("norow", Priority::Low, None),
            ],
            100,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>();
    // Limit 2: had the paused worker's high-priority tasks counted against it, nothing of `w`
    // would come back.
    assert_eq!(claim_ids(store, 2, 200), vec![ids[4], ids[2]]);
    assert_eq!(claim_ids(store, 10, 200), vec![ids[5]]);
    for &held in &[ids[0], ids[1], ids[3]] {
        let t = store.task(held).unwrap().unwrap();
        assert_eq!((t.status, t.attempts), (TaskStatus::Pending, 0), "{t:?}");
    }
    assert!(
        claim_ids(store, 10, 300).is_empty(),
        "nothing of a paused worker"
    );
    assert!(store.set_worker_paused("p", false, 400).unwrap());
    assert!(!store.worker("p").unwrap().unwrap().paused);
    assert_eq!(claim_ids(store, 10, 500), vec![ids[0], ids[3], ids[1]]);
}

/// A pause is stored in the worker row: the next process (and every other host) sees it and
/// claims nothing of that worker until it is resumed.
pub fn a_pause_survives_the_process(store: Arc<dyn Store>, reopen: Reopen) {
    register(&*store, "p");
    let id = store
        .insert_task(&task("p", Priority::Normal, None), 10)
        .unwrap();
    assert!(store.set_worker_paused("p", true, 20).unwrap());
    let store = reopen(store);
    assert!(store.worker("p").unwrap().unwrap().paused);
    assert!(claim_ids(&*store, 10, 100).is_empty());
    // A reload of the library keeps the operator's pause, as it keeps a deactivation.
    register(&*store, "p");
    assert!(store.worker("p").unwrap().unwrap().paused);
    assert!(store.set_worker_paused("p", false, 200).unwrap());
    assert_eq!(claim_ids(&*store, 10, 300), vec![id]);
}
