//! Worker limits (see `crate::limits`): a concurrency cap holds on all claimers, per action
//! too; an unlimited worker's tasks are not held up behind a capped worker's; a rate allows a
//! burst, then one task per interval; limited workers' tasks are never claimed ahead; a claim
//! names the workers it held.

use super::{finish, task};
use crate::model::{NewTask, Priority, TaskStatus};
use crate::{Claim, ClaimRequest, HeldReason, Store, WorkerLimit};
use serde_json::{json, Value};
use std::collections::HashSet;

fn limit(identifier: &str, settings: Value) -> WorkerLimit {
    WorkerLimit::from_settings(identifier, &settings).expect("a limit")
}

/// A claim at `now` of the workers `identifiers`, up to `limit` tasks, with `slots` free pool
/// slots and the limits `limits`.
fn claim_with(
    store: &dyn Store,
    identifiers: &[&str],
    limits: &[WorkerLimit],
    limit: usize,
    slots: usize,
    now: i64,
) -> Claim {
    let identifiers: Vec<String> = identifiers.iter().map(|s| s.to_string()).collect();
    store
        .claim(&ClaimRequest {
            owner: "h",
            limit,
            now,
            lease_ms: 60_000,
            identifiers: &identifiers,
            limits,
            slots,
        })
        .unwrap()
}

fn with_action(identifier: &str, action: &str, priority: Priority) -> NewTask {
    let mut t = task(identifier, priority, None);
    t.action = action.into();
    t
}

fn insert(store: &dyn Store, tasks: &[NewTask]) -> Vec<i64> {
    store
        .insert_tasks(tasks, 1)
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

fn complete(store: &dyn Store, claim: &Claim, at: i64) {
    let finishes: Vec<_> = claim
        .tasks
        .iter()
        .map(|t| finish(t.id, t.lease_token, TaskStatus::Completed, at))
        .collect();
    assert!(store.finish(&finishes).unwrap().iter().all(|ok| *ok));
}

fn leased(store: &dyn Store, identifier: &str) -> u64 {
    store
        .limit_usage(&[identifier.to_owned()])
        .unwrap()
        .into_iter()
        .find(|u| u.identifier == identifier)
        .map_or(0, |u| u.leased)
}

/// A worker with `concurrency` 2 never has more than 2 tasks leased: a claim takes 2 of 5 and
/// names the worker held, the next takes none, a finish frees one slot for one task.
pub fn a_concurrency_cap_holds_for_one_claimer(store: &dyn Store) {
    insert(store, &vec![task("c", Priority::Normal, None); 5]);
    let limits = [limit("c", json!({"concurrency": 2}))];
    let first = claim_with(store, &["c"], &limits, 10, 10, 100);
    assert_eq!(first.tasks.len(), 2, "{first:?}");
    assert_eq!(first.held.len(), 1, "{first:?}");
    assert_eq!(first.held[0].identifier, "c");
    assert_eq!(
        first.held[0].reason,
        HeldReason::Concurrency { running: 2, cap: 2 }
    );
    let second = claim_with(store, &["c"], &limits, 10, 10, 101);
    assert!(second.tasks.is_empty(), "{second:?}");
    assert_eq!(leased(store, "c"), 2);
    complete(
        store,
        &Claim {
            tasks: first.tasks[..1].to_vec(),
            held: vec![],
        },
        102,
    );
    let third = claim_with(store, &["c"], &limits, 10, 10, 103);
    assert_eq!(third.tasks.len(), 1, "{third:?}");
    assert_eq!(leased(store, "c"), 2);
    // Without its limit in the request, the same worker is claimed as before: the plain claim.
    let plain = claim_with(store, &["c"], &[], 10, 10, 104);
    assert_eq!(plain.tasks.len(), 2, "{plain:?}");
    assert!(plain.held.is_empty());
}

/// Two claimers racing (threads; on the servers each call takes its own connection) on a
/// worker with `concurrency` 3 never lease more than 3 of its tasks at once, and every task
/// is claimed exactly once.
pub fn a_cap_holds_for_two_racing_claimers(store: &dyn Store) {
    let ids = insert(store, &vec![task("c", Priority::Normal, None); 30]);
    let limits = [limit("c", json!({"concurrency": 3}))];
    let seen = parking_lot::Mutex::new(HashSet::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut idle = 0;
                while idle < 50 {
                    let claim = claim_with(store, &["c"], &limits, 3, 3, 100);
                    let now_leased = leased(store, "c");
                    assert!(now_leased <= 3, "{now_leased} leased with a cap of 3");
                    if claim.tasks.is_empty() {
                        idle += 1;
                        std::thread::yield_now();
                        continue;
                    }
                    idle = 0;
                    let mut seen = seen.lock();
                    for t in &claim.tasks {
                        assert!(seen.insert(t.id), "task {} claimed twice", t.id);
                    }
                    drop(seen);
                    complete(store, &claim, 101);
                }
            });
        }
    });
    assert_eq!(seen.lock().len(), ids.len(), "every task claimed");
}

/// A capped worker's higher-priority tasks do not hold up an unlimited worker's tasks behind
/// them: one claim takes the capped worker's allowance and the others in the same call.
pub fn unlimited_tasks_behind_a_capped_workers_are_claimed_in_the_same_call(store: &dyn Store) {
    insert(
        store,
        &[
            task("c", Priority::High, None),
            task("c", Priority::High, None),
            task("c", Priority::High, None),
            task("w", Priority::Low, None),
            task("w", Priority::Low, None),
        ],
    );
    let limits = [limit("c", json!({"concurrency": 1}))];
    let claim = claim_with(store, &["c", "w"], &limits, 10, 10, 100);
    let by = |id: &str| claim.tasks.iter().filter(|t| t.identifier == id).count();
    assert_eq!((by("c"), by("w")), (1, 2), "{claim:?}");
    // Claim order still: priority first.
    assert_eq!(claim.tasks[0].identifier, "c");
}

/// `action_concurrency` caps each named action (the worker's other actions are claimed), and
/// the worker-wide cap applies on top.
pub fn per_action_caps_hold(store: &dyn Store) {
    insert(
        store,
        &[
            with_action("a", "import", Priority::High),
            with_action("a", "import", Priority::High),
            with_action("a", "export", Priority::Normal),
            with_action("a", "export", Priority::Normal),
            with_action("a", "export", Priority::Normal),
        ],
    );
    let limits = [limit(
        "a",
        json!({"concurrency": 3, "action_concurrency": {"import": 1}}),
    )];
    let claim = claim_with(store, &["a"], &limits, 10, 10, 100);
    let of = |action: &str| claim.tasks.iter().filter(|t| t.action == action).count();
    assert_eq!((of("import"), of("export")), (1, 2), "{claim:?}");
    assert!(claim.held.iter().any(|h| matches!(
        &h.reason,
        HeldReason::ActionConcurrency { action, running: 1, cap: 1 } if action == "import"
    )));
    assert!(claim
        .held
        .iter()
        .any(|h| h.reason == HeldReason::Concurrency { running: 3, cap: 3 }));
    let usage = store.limit_usage(&["a".to_owned()]).unwrap();
    assert_eq!(usage[0].leased, 3);
    assert_eq!(usage[0].leased_by_action.get("import"), Some(&1));
    assert_eq!(usage[0].leased_by_action.get("export"), Some(&2));
    // Action caps alone (no worker-wide cap): the full action is skipped, the rest claimed.
    insert(
        store,
        &[
            with_action("b", "import", Priority::High),
            with_action("b", "import", Priority::High),
            with_action("b", "export", Priority::Low),
        ],
    );
    let limits = [limit("b", json!({"action_concurrency": {"import": 1}}))];
    let claim = claim_with(store, &["b"], &limits, 10, 10, 100);
    let actions: Vec<&str> = claim.tasks.iter().map(|t| t.action.as_str()).collect();
    assert_eq!(actions, ["import", "export"], "{claim:?}");
}

/// A rate of 20/s (an interval of 50 ms, a burst of 2): a burst from idle, then one task per
/// interval, with the held worker's next start named; the state is shared (stored).
pub fn a_rate_allows_a_burst_then_one_per_interval(store: &dyn Store) {
    insert(store, &vec![task("r", Priority::Normal, None); 10]);
    let limits = [limit("r", json!({"rate_limit": "20/s"}))];
    let t = 1_000_000;
    let n = |now: i64| claim_with(store, &["r"], &limits, 10, 10, now).tasks.len();
    assert_eq!(n(t), 2, "the burst");
    let held = claim_with(store, &["r"], &limits, 10, 10, t);
    assert!(held.tasks.is_empty());
    assert_eq!(
        held.held[0].reason,
        HeldReason::Rate { next_at: t + 50 },
        "{held:?}"
    );
    assert_eq!(n(t + 49), 0);
    assert_eq!(n(t + 50), 1);
    assert_eq!(n(t + 60), 0);
    assert_eq!(n(t + 100), 1);
    assert_eq!(n(t + 150), 1);
    // Idle for long: one burst again, not the starts it missed.
    assert_eq!(n(t + 10_000), 2);
    let usage = store.limit_usage(&["r".to_owned()]).unwrap();
    assert_eq!(usage[0].rate_tat_us, Some((t + 10_000 + 100) * 1_000));
}

/// Limited workers' tasks are claimed only into free pool slots, never ahead; the unlimited
/// workers fill the rest of the request.
pub fn limited_tasks_are_not_claimed_ahead(store: &dyn Store) {
    insert(store, &vec![task("c", Priority::High, None); 4]);
    insert(store, &vec![task("w", Priority::Low, None); 4]);
    let limits = [limit("c", json!({"concurrency": 3}))];
    let claim = claim_with(store, &["c", "w"], &limits, 5, 1, 100);
    let by = |id: &str| claim.tasks.iter().filter(|t| t.identifier == id).count();
    assert_eq!((by("c"), by("w")), (1, 4), "{claim:?}");
    assert!(claim.held.is_empty(), "a full pool is no limit: {claim:?}");
}

/// `limit_usage` counts the leased (preparing and running) tasks of each worker asked for,
/// zero for one with none, and no rate state before a rate-limited claim.
pub fn limit_usage_counts_leased_tasks(store: &dyn Store) {
    insert(store, &vec![task("u", Priority::Normal, None); 3]);
    let limits = [limit("u", json!({"concurrency": 5}))];
    let claim = claim_with(store, &["u"], &limits, 2, 2, 100);
    assert_eq!(claim.tasks.len(), 2);
    let leases: Vec<_> = claim.tasks.iter().map(|t| t.lease()).collect();
    assert!(store.start_runs(&leases[..1], 101).unwrap()[0]);
    store.flush_starts(102).unwrap();
    let usage = store
        .limit_usage(&["u".to_owned(), "none".to_owned()])
        .unwrap();
    let of = |id: &str| usage.iter().find(|u| u.identifier == id).unwrap().clone();
    assert_eq!(of("u").leased, 2, "{usage:?}");
    assert_eq!(of("u").leased_by_action.get("run"), Some(&2));
    assert_eq!(of("u").rate_tat_us, None);
    assert_eq!(of("none").leased, 0);
    assert!(store.limit_usage(&[]).unwrap().is_empty());
}
