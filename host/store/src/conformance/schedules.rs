//! Schedules: stored, listed, updated (names unique), enabled and disabled, upserted by name,
//! deleted with their slots; and the slot rule: each `(schedule, slot)` creates one task,
//! whoever takes it and however many take it at once.

use crate::model::{Priority, TaskStatus};
use crate::schedules::{ScheduleSource, ScheduleSpec, SlotTaken};
use crate::{Store, StoreError};
use serde_json::json;

/// An enabled every-minute schedule `name` of worker `w`, from the API.
pub fn spec(name: &str) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        identifier: "w".into(),
        action: "run".into(),
        cron: "* * * * *".into(),
        timezone: "Europe/Berlin".into(),
        data: json!({"n": 1, "s": "x"}),
        priority: Priority::High,
        max_attempts: 5,
        unique_key: Some("k-1".into()),
        enabled: true,
        catch_up: true,
        source: ScheduleSource::Api,
    }
}

/// A new schedule reads back as given (fire_after = created = updated = now, no run yet);
/// the list is by name; a second schedule of the same name is a conflict; an update rewrites
/// the spec (a name another schedule has is a conflict, an unknown id `None`); delete answers
/// whether it deleted.
pub fn schedules_are_stored_listed_updated_and_deleted(store: &dyn Store) {
    let b = store.insert_schedule(&spec("b"), 1_000).unwrap();
    assert_eq!(b.spec, spec("b"));
    assert_eq!(
        (b.fire_after, b.created_at, b.updated_at),
        (1_000, 1_000, 1_000)
    );
    assert_eq!((b.last_run_at, b.last_task_id), (None, None));
    let mut a_spec = spec("a");
    a_spec.unique_key = None;
    a_spec.catch_up = false;
    a_spec.priority = Priority::Low;
    let a = store.insert_schedule(&a_spec, 2_000).unwrap();
    assert_ne!(a.id, b.id);
    let names: Vec<String> = store
        .schedules()
        .unwrap()
        .into_iter()
        .map(|s| s.spec.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(matches!(
        store.insert_schedule(&spec("b"), 3_000),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.schedule(a.id).unwrap(), Some(a.clone()));

    let mut changed = spec("b2");
    changed.cron = "*/5 * * * * *".into();
    changed.data = json!({"other": [1, 2]});
    changed.timezone = "UTC".into();
    let updated = store
        .update_schedule(b.id, &changed, 4_000)
        .unwrap()
        .unwrap();
    assert_eq!(updated.spec, changed);
    assert_eq!((updated.created_at, updated.updated_at), (1_000, 4_000));
    assert_eq!(
        updated.fire_after, 1_000,
        "an enabled schedule keeps fire_after"
    );
    assert!(matches!(
        store.update_schedule(b.id, &spec("a"), 5_000),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store
            .update_schedule(b.id + a.id + 100, &spec("z"), 5_000)
            .unwrap(),
        None
    );

    assert!(store.delete_schedule(a.id).unwrap());
    assert!(!store.delete_schedule(a.id).unwrap());
    assert_eq!(store.schedule(a.id).unwrap(), None);
    assert_eq!(store.schedules().unwrap().len(), 1);
}

/// Disabling keeps `fire_after`; enabling a disabled schedule (by the flag or by an update)
/// moves it to now, so the time it was off is never caught up; unknown ids are `None`.
pub fn enabling_again_moves_fire_after(store: &dyn Store) {
    let s = store.insert_schedule(&spec("s"), 1_000).unwrap();
    let off = store
        .set_schedule_enabled(s.id, false, 2_000)
        .unwrap()
        .unwrap();
    assert!(!off.spec.enabled);
    assert_eq!(off.fire_after, 1_000);
    let on = store
        .set_schedule_enabled(s.id, true, 3_000)
        .unwrap()
        .unwrap();
    assert!(on.spec.enabled);
    assert_eq!((on.fire_after, on.updated_at), (3_000, 3_000));
    let again = store
        .set_schedule_enabled(s.id, true, 4_000)
        .unwrap()
        .unwrap();
    assert_eq!(
        again.fire_after, 3_000,
        "enabling an enabled schedule changes nothing"
    );

    let mut disabled = spec("s");
    disabled.enabled = false;
    store
        .update_schedule(s.id, &disabled, 5_000)
        .unwrap()
        .unwrap();
    let enabled = store
        .update_schedule(s.id, &spec("s"), 6_000)
        .unwrap()
        .unwrap();
    assert_eq!(enabled.fire_after, 6_000);
    assert_eq!(
        store.set_schedule_enabled(s.id + 100, true, 7_000).unwrap(),
        None
    );
}

/// `upsert_schedule` inserts a new name, and over an existing one rewrites the spec (source
/// included) but keeps its id, creation time and run times.
pub fn upsert_by_name_keeps_id_and_run_times(store: &dyn Store) {
    let mut config = spec("nightly");
    config.source = ScheduleSource::Config;
    let first = store.upsert_schedule(&config, 1_000).unwrap();
    assert_eq!(first.spec, config);
    assert_eq!(first.fire_after, 1_000);
    let task = super::task("w", Priority::Normal, Some(60_000));
    let taken = store.take_slot(first.id, 60_000, &task, 61_000).unwrap();
    assert_eq!(taken, SlotTaken::Created(task_id_of(store, first.id)));
    config.cron = "@daily".into();
    config.data = json!({"n": 2});
    let second = store.upsert_schedule(&config, 70_000).unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.spec, config);
    assert_eq!((second.created_at, second.updated_at), (1_000, 70_000));
    assert_eq!(second.last_run_at, Some(60_000));
    assert_eq!(second.fire_after, 1_000);
    assert_eq!(store.schedules().unwrap().len(), 1);
}

/// The task the schedule's latest run created.
fn task_id_of(store: &dyn Store, schedule: i64) -> i64 {
    store
        .schedule(schedule)
        .unwrap()
        .unwrap()
        .last_task_id
        .unwrap()
}

/// A free slot creates its task (pending, the given worker, action, data and due time) and
/// becomes the latest run; the same slot again creates nothing; an older slot creates its task
/// but leaves the latest run; a disabled or deleted schedule creates nothing.
pub fn a_slot_creates_one_task(store: &dyn Store) {
    let s = store.insert_schedule(&spec("s"), 1_000).unwrap();
    let mut task = super::task("w", Priority::High, Some(120_000));
    task.data = json!({"from": "schedule"});
    let SlotTaken::Created(id) = store.take_slot(s.id, 120_000, &task, 120_005).unwrap() else {
        panic!("a free slot creates a task");
    };
    let created = store.task(id).unwrap().unwrap();
    assert_eq!(created.status, TaskStatus::Pending);
    assert_eq!(
        (created.identifier.as_str(), created.action.as_str()),
        ("w", "run")
    );
    assert_eq!(created.meta, json!({"from": "schedule"}));
    assert_eq!(created.start_at, Some(120_000));
    let row = store.schedule(s.id).unwrap().unwrap();
    assert_eq!(
        (row.last_run_at, row.last_task_id),
        (Some(120_000), Some(id))
    );

    assert_eq!(
        store.take_slot(s.id, 120_000, &task, 120_010).unwrap(),
        SlotTaken::Taken
    );
    let SlotTaken::Created(older) = store.take_slot(s.id, 60_000, &task, 120_020).unwrap() else {
        panic!("an older free slot creates its task");
    };
    assert_ne!(older, id);
    let row = store.schedule(s.id).unwrap().unwrap();
    assert_eq!(
        (row.last_run_at, row.last_task_id),
        (Some(120_000), Some(id))
    );
    assert_eq!(store.stats().unwrap().pending, 2);

    store.set_schedule_enabled(s.id, false, 130_000).unwrap();
    assert_eq!(
        store.take_slot(s.id, 180_000, &task, 180_000).unwrap(),
        SlotTaken::Gone
    );
    store.set_schedule_enabled(s.id, true, 190_000).unwrap();
    assert!(store.delete_schedule(s.id).unwrap());
    assert_eq!(
        store.take_slot(s.id, 240_000, &task, 240_000).unwrap(),
        SlotTaken::Gone
    );
    assert_eq!(
        store.stats().unwrap().pending,
        2,
        "the tasks outlive their schedule"
    );
}

/// Two takers of the same slots at once (two threads, as two hosts would): every slot creates
/// exactly one task, and each slot is answered `Created` to one taker and `Taken` to the other.
pub fn a_slot_is_taken_once_under_two_concurrent_takers(store: &dyn Store) {
    let s = store.insert_schedule(&spec("race"), 1_000).unwrap();
    let slots: Vec<i64> = (1..=20).map(|i| i * 1_000).collect();
    let barrier = std::sync::Barrier::new(2);
    let take = || {
        let mut created = Vec::new();
        for &slot in &slots {
            barrier.wait();
            let task = super::task("w", Priority::Normal, Some(slot));
            match store.take_slot(s.id, slot, &task, slot).unwrap() {
                SlotTaken::Created(_) => created.push(slot),
                SlotTaken::Taken => {}
                SlotTaken::Gone => panic!("the schedule is there"),
            }
        }
        created
    };
    let (mut first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(take);
        let b = scope.spawn(take);
        (a.join().unwrap(), b.join().unwrap())
    });
    first.extend(second);
    first.sort_unstable();
    assert_eq!(first, slots, "each slot created by exactly one taker");
    assert_eq!(store.stats().unwrap().total, 20);
    let row = store.schedule(s.id).unwrap().unwrap();
    assert_eq!(row.last_run_at, Some(20_000));
}
