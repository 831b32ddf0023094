//! Unique tasks: a key is held while its task is pending, claimed or running (or, with
//! `unique_for`, until that many seconds after creation, whatever the status); a create with a
//! held key creates nothing and names the holder, also within one batch.

use super::{finish, task};
use crate::model::{NewTask, Priority, TaskStatus};
use crate::{ClaimRequest, Inserted, Store, TaskFilter};

fn keyed(key: &str, unique_for_secs: Option<i64>) -> NewTask {
    NewTask {
        unique_key: Some(key.into()),
        unique_for_secs,
        ..task("w", Priority::Normal, None)
    }
}

fn created(id: i64) -> Inserted {
    Inserted {
        id,
        duplicate: false,
    }
}

fn duplicate_of(id: i64) -> Inserted {
    Inserted {
        id,
        duplicate: true,
    }
}

fn count(store: &dyn Store) -> i64 {
    store
        .tasks(&TaskFilter {
            limit: 100,
            ..TaskFilter::default()
        })
        .unwrap()
        .1
}

fn claim_one(store: &dyn Store, now: i64) -> crate::ClaimedTask {
    store
        .claim(&ClaimRequest {
            owner: "h",
            limit: 1,
            now,
            lease_ms: 60_000,
            identifiers: &["w".to_owned()],
            ..Default::default()
        })
        .unwrap()
        .tasks
        .remove(0)
}

/// Without `unique_for` the key is held while its task is pending, claimed and running, and
/// free once it finished: the next create with it is a new task. Other keys and unkeyed
/// tasks are not affected; the task shows its key.
pub fn a_key_is_held_until_its_task_finishes(store: &dyn Store) {
    let first = store.insert_tasks(&[keyed("k", None)], 100).unwrap()[0];
    assert!(!first.duplicate);
    let t = store.task(first.id).unwrap().unwrap();
    assert_eq!(t.unique_key.as_deref(), Some("k"));
    assert_eq!(
        store.insert_tasks(&[keyed("k", None)], 110).unwrap(),
        vec![duplicate_of(first.id)],
        "held while pending"
    );
    let other = store
        .insert_tasks(&[keyed("other", None), task("w", Priority::Low, None)], 120)
        .unwrap();
    assert!(other.iter().all(|i| !i.duplicate), "{other:?}");
    assert_eq!(
        store.insert_task(&keyed("k", None), 125).unwrap(),
        first.id,
        "insert_task names the holder"
    );
    assert_eq!(count(store), 3, "duplicates create nothing");

    let run = claim_one(store, 200);
    assert_eq!(run.id, first.id);
    assert_eq!(
        store.insert_tasks(&[keyed("k", None)], 210).unwrap(),
        vec![duplicate_of(first.id)],
        "held while claimed"
    );
    store.start_runs(&[run.lease()], 220).unwrap();
    store.flush_starts(220).unwrap();
    assert_eq!(
        store.insert_tasks(&[keyed("k", None)], 230).unwrap(),
        vec![duplicate_of(first.id)],
        "held while running"
    );
    let end = finish(run.id, run.lease_token, TaskStatus::Completed, 300);
    assert_eq!(store.finish(&[end]).unwrap(), vec![true]);
    let again = store.insert_tasks(&[keyed("k", None)], 310).unwrap()[0];
    assert!(!again.duplicate && again.id != first.id, "{again:?}");
    // A cancelled holder frees it too.
    store.cancel(again.id, 320).unwrap();
    assert!(!store.insert_tasks(&[keyed("k", None)], 330).unwrap()[0].duplicate);
}

/// With `unique_for` the key is held for that long after creation even when the task has
/// finished, and free from then on.
pub fn unique_for_holds_after_the_finish_until_it_expires(store: &dyn Store) {
    let first = store.insert_tasks(&[keyed("k", Some(10))], 1_000).unwrap()[0];
    assert!(!first.duplicate);
    store.cancel(first.id, 1_100).unwrap();
    assert_eq!(
        store.insert_tasks(&[keyed("k", None)], 10_999).unwrap(),
        vec![duplicate_of(first.id)],
        "held 10 s after creation though cancelled"
    );
    let later = store.insert_tasks(&[keyed("k", None)], 11_000).unwrap()[0];
    assert!(!later.duplicate, "free once expired: {later:?}");
}

/// Two creates of one key in one batch: the first creates, the second is its duplicate; ids
/// of the batch's other tasks are unaffected and in order.
pub fn the_second_create_of_a_key_in_one_batch_is_the_duplicate(store: &dyn Store) {
    let batch = store
        .insert_tasks(
            &[
                keyed("k", None),
                task("w", Priority::Normal, None),
                keyed("k", None),
                keyed("j", Some(60)),
                keyed("j", None),
            ],
            100,
        )
        .unwrap();
    assert_eq!(batch.len(), 5);
    assert_eq!(batch[2], duplicate_of(batch[0].id));
    assert_eq!(batch[4], duplicate_of(batch[3].id));
    assert_eq!(batch[0], created(batch[0].id));
    assert!(
        batch[0].id < batch[1].id && batch[1].id < batch[3].id,
        "{batch:?}"
    );
    assert_eq!(count(store), 3);
    let pending = store.pending_tasks(10).unwrap().0;
    let ids: Vec<i64> = pending.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![batch[0].id, batch[1].id, batch[3].id]);
}

/// Retention drops the key rows of the tasks it deletes unless a `held_until` after its
/// cutoff keeps them: a key used once does not keep its row forever. (Seen through a create
/// "earlier" than the key's expiry: a row left behind would make it a duplicate of a task
/// that no longer exists.)
pub fn retention_drops_the_keys_of_deleted_tasks(store: &dyn Store) {
    let first = store.insert_tasks(&[keyed("k", Some(10))], 100).unwrap()[0];
    let kept = store
        .insert_tasks(&[keyed("kept", Some(100))], 100)
        .unwrap()[0];
    let run = claim_one(store, 200);
    assert_eq!(run.id, first.id);
    let end = finish(run.id, run.lease_token, TaskStatus::Completed, 300);
    assert_eq!(store.finish(&[end]).unwrap(), vec![true]);
    store.cancel(kept.id, 300).unwrap();
    let deleted = store.delete_finished_before(20_000).unwrap();
    assert_eq!(deleted, vec![first.id, kept.id]);
    let again = store.insert_tasks(&[keyed("k", None)], 400).unwrap()[0];
    assert!(
        !again.duplicate,
        "the deleted task's key row is gone: {again:?}"
    );
    // `kept` is held until 100_100, after the cutoff: its row stays and still holds.
    assert_eq!(
        store.insert_tasks(&[keyed("kept", None)], 400).unwrap(),
        vec![duplicate_of(kept.id)]
    );
}
