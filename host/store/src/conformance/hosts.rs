//! Several hosts on one database: the hosts registry, lease recovery that never takes a live
//! lease, and the notifications behind instant pickup and live events.

use super::{claim, finish, task};
use crate::model::{Priority, TaskStatus};
use crate::Store;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Recovery of an expired lease applies only while the lease is still expired: a host whose
/// heartbeat came in between keeps its task; once recovered, the old run is fenced out.
pub fn recovery_never_takes_a_live_lease(store: &dyn Store) {
    let id = store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    let run = claim(store, "slow-host", 1, 10).remove(0); // lease until 1 010
                                                          // The host's own view of what it holds, expired or not; nobody else's.
    let held = store.leases_of("slow-host").unwrap();
    assert_eq!(
        held.iter()
            .map(|l| (l.id, l.lease_token, l.started))
            .collect::<Vec<_>>(),
        vec![(id, run.lease_token, false)]
    );
    assert!(store.leases_of("another-host").unwrap().is_empty());
    let expired = store.expired_leases(2_000).unwrap();
    assert_eq!(expired.len(), 1);
    let mut back = finish(id, run.lease_token, TaskStatus::Pending, 2_000);
    back.run_at = Some(2_000);
    // The slow host's heartbeat lands between the read and the recovery.
    store.heartbeat("slow-host", 5_000).unwrap();
    assert_eq!(
        store.recover(std::slice::from_ref(&back), 2_000).unwrap(),
        vec![false],
        "a lease extended by its host is not taken"
    );
    assert_eq!(
        store.task(id).unwrap().unwrap().status,
        TaskStatus::Preparing
    );
    // The host really died: past its extended lease, recovery applies once.
    assert_eq!(
        store.recover(std::slice::from_ref(&back), 5_001).unwrap(),
        vec![true]
    );
    assert_eq!(
        store.recover(std::slice::from_ref(&back), 5_001).unwrap(),
        vec![false],
        "a second host recovering the same lease changes nothing"
    );
    let t = store.task(id).unwrap().unwrap();
    assert_eq!((t.status, t.lease_owner), (TaskStatus::Pending, None));
    let stale = finish(id, run.lease_token, TaskStatus::Completed, 5_100);
    assert_eq!(store.finish(&[stale]).unwrap(), vec![false]);
    assert!(store.heartbeat("slow-host", 9_000).unwrap().is_empty());
    assert_eq!(store.task(id).unwrap().unwrap().lease_expires_at, None);
}

/// A database several hosts share answers its own clock (this machine's servers: this host's
/// to within a second), and [`crate::clock::sync_to_database`] measures it within its round
/// trip; a database of this host has no clock of its own and leaves the offset alone.
pub fn a_shared_database_keeps_the_clock(store: &dyn Store) {
    use crate::clock::{host_clock_ms, sync_to_database};
    let before = host_clock_ms();
    let read = store.database_clock_ms().unwrap();
    let after = host_clock_ms();
    let reading = sync_to_database(store, 3).unwrap();
    if !store.shared_by_hosts() {
        assert_eq!((read, reading), (None, None));
        return;
    }
    let read = read.expect("a shared database has a clock");
    assert!(
        (before - 1_000..=after + 1_000).contains(&read),
        "the server's clock {read} is this machine's ({before}..{after})"
    );
    let reading = reading.expect("a reading");
    assert!(reading.round_trip_ms >= 0, "{reading:?}");
    assert!(reading.offset_ms.abs() <= 1_000, "{reading:?}");
}

/// The hosts registry: registration, refresh by heartbeat, clean stop, and forgetting hosts
/// unseen for a day.
pub fn hosts_register_refresh_and_stop(store: &dyn Store) {
    use crate::cluster::{HostRow, FORGET_HOSTS_AFTER_MS, FORGET_STOPPED_AFTER_MS};
    assert!(store.hosts().unwrap().is_empty());
    let mut a = HostRow {
        name: "a:1:x".into(),
        version: "0.1.0".into(),
        started_at: 1_000,
        last_heartbeat: 1_000,
        busy_slots: 0,
        pool_size: 2,
        workers: vec!["demo".into(), "w".into()],
        lease_ms: 3_000,
        stopped_at: None,
    };
    let mut b = HostRow {
        name: "b:2:y".into(),
        started_at: 1_500,
        last_heartbeat: 1_500,
        workers: vec![],
        ..a.clone()
    };
    store.upsert_host(&a).unwrap();
    store.upsert_host(&b).unwrap();
    a.last_heartbeat = 2_000;
    a.busy_slots = 2;
    store.upsert_host(&a).unwrap();
    assert_eq!(store.hosts().unwrap(), vec![a.clone(), b.clone()]);
    assert!(
        a.live(5_000) && !a.live(5_001),
        "live while the lease lasts"
    );
    store.host_stopped(&b.name, 2_500).unwrap();
    let hosts = store.hosts().unwrap();
    assert_eq!(hosts[1].stopped_at, Some(2_500));
    assert!(!hosts[1].live(2_600), "a stopped host is not live");
    // A registration an hour later forgets the host that stopped (b); a day later, a host
    // never heard from again (a).
    let c = HostRow {
        name: "c:3:z".into(),
        started_at: 2_600 + FORGET_STOPPED_AFTER_MS,
        last_heartbeat: 2_600 + FORGET_STOPPED_AFTER_MS,
        ..a.clone()
    };
    store.upsert_host(&c).unwrap();
    assert_eq!(store.hosts().unwrap(), vec![a.clone(), c.clone()]);
    b.started_at = 3_000 + FORGET_HOSTS_AFTER_MS;
    b.last_heartbeat = b.started_at;
    b.stopped_at = None;
    store.upsert_host(&b).unwrap();
    assert_eq!(
        store.hosts().unwrap(),
        vec![c, b],
        "a host unseen for a day is forgotten"
    );
}

/// How long a property waits for a notification from the database before it fails.
const NOTIFIED_WITHIN: Duration = Duration::from_secs(20);

/// On a shared database (PostgreSQL) every host hears of new work and of the events other
/// hosts send: once the listener is connected, a new pending task wakes the new-work hook, and
/// event batches reach the events hook in the order sent. A database of one host (SQLite)
/// has no one to tell: sending events succeeds and does nothing, and the driver keeps no hook.
pub fn listening_hosts_hear_new_work_and_events(store: &dyn Store) {
    let (woken, wakes) = mpsc::channel();
    let wake_hook: crate::WakeHook = Arc::new(move || {
        let _ = woken.send(());
    });
    let (sent, events) = mpsc::channel();
    let events_hook: crate::EventsHook = Arc::new(move |batch: &str| {
        let _ = sent.send(batch.to_owned());
    });
    store.on_new_work(wake_hook.clone());
    store.on_events(events_hook.clone());
    if !store.shared_by_hosts() {
        store.send_events(&["{}".to_owned()]).unwrap();
        assert_eq!(Arc::strong_count(&wake_hook), 1, "no hook kept");
        assert_eq!(Arc::strong_count(&events_hook), 1, "no hook kept");
        return;
    }
    // The listener wakes once when it is connected: from then on notifications arrive.
    wakes
        .recv_timeout(NOTIFIED_WITHIN)
        .expect("the listener connects");
    store
        .insert_task(&task("w", Priority::Normal, None), 0)
        .unwrap();
    wakes
        .recv_timeout(NOTIFIED_WITHIN)
        .expect("a new pending task wakes the hosts");
    store.send_events(&[]).unwrap();
    store
        .send_events(&["[1]".to_owned(), "[2]".to_owned()])
        .unwrap();
    let first = events
        .recv_timeout(NOTIFIED_WITHIN)
        .expect("the first batch");
    let second = events
        .recv_timeout(NOTIFIED_WITHIN)
        .expect("the second batch");
    assert_eq!((first.as_str(), second.as_str()), ("[1]", "[2]"));
}
