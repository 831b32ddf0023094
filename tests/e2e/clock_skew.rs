//! Hosts whose clocks are wrong: three `stask serve` hosts share one database, one with its
//! clock 5 minutes ahead and one 5 minutes behind (Debian's `faketime`, preloaded into the
//! daemon), under a lease of 3 s. Every host keeps the database's time, so none takes a live
//! lease of another (each task runs once, on its first attempt), a task due in a minute does
//! not run early on the host that is ahead, and its schedule fires on the database's slots.
//!
//! Needs `libfaketime` (`tests/setup.sh` installs it) and the local PostgreSQL and MariaDB;
//! chooses its databases itself (CI runs it once, in the workspace step).

use serde_json::{json, Value};
use stask_tests::{wait_until, Daemon, Home, MysqlDatabase, PgSchema, ServerDatabase};
use std::collections::BTreeMap;
use std::time::Duration;

/// Where Debian's `libfaketime` package puts the library.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// The skew of the wrong hosts: 100 leases.
const SKEW_MS: i64 = 5 * 60 * 1000;

#[test]
fn hosts_five_minutes_off_keep_the_database_time_on_postgres() {
    hosts_off_by_minutes(ServerDatabase::Postgres(PgSchema::create()));
}

#[test]
fn hosts_five_minutes_off_keep_the_database_time_on_mariadb() {
    hosts_off_by_minutes(ServerDatabase::Mysql(MysqlDatabase::create()));
}

/// A home whose daemon sees its clock moved by `faketime` (e.g. `+5m`); `None`: the true one.
fn home(database: &ServerDatabase, faketime: Option<&str>) -> Home {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: run tests/setup.sh (it installs Debian's faketime)"
    );
    let mut home = Home::on_server_database(&["demo"], database.clone());
    home.set_env("STASK_LEASE_MS", "3000");
    home.set_env("STASK_WORKERS", "2");
    if let Some(offset) = faketime {
        home.set_env("LD_PRELOAD", LIBFAKETIME);
        home.set_env("FAKETIME", offset);
        // Only the wall clock is wrong, as on a host without NTP: the monotonic clock is
        // never set (and thread timeouts are absolute times on it: moved, they would sleep
        // 5 minutes or not at all).
        home.set_env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    home
}

fn clock_offset(d: &Daemon) -> i64 {
    let r = d.get("/stask/hosts");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["clock_offset_ms"].as_i64().expect("clock_offset_ms")
}

fn true_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn hosts_off_by_minutes(database: ServerDatabase) {
    let scratch = tempfile::tempdir().unwrap();
    let ledger = scratch.path().join("ledger.txt");
    let homes = [
        home(&database, None),
        home(&database, Some("+5m")),
        home(&database, Some("-5m")),
    ];
    // The true host migrates; the wrong ones start on the schema.
    let exact = homes[0].serve();
    let ahead = homes[1].serve();
    let behind = homes[2].serve();

    // Each host measured its clock against the server's (to within the 1 s of a loaded
    // machine's round trips and faketime's start).
    let near = |offset: i64, expected: i64| (offset - expected).abs() < 2_000;
    assert!(near(clock_offset(&exact), 0), "{}", clock_offset(&exact));
    assert!(
        near(clock_offset(&ahead), -SKEW_MS),
        "{}",
        clock_offset(&ahead)
    );
    assert!(
        near(clock_offset(&behind), SKEW_MS),
        "{}",
        clock_offset(&behind)
    );
    assert!(
        ahead.log.count(|l| l.contains("s ahead of the database's")) >= 1,
        "the host ahead says so:\n{}",
        ahead.log.text()
    );

    // Tasks longer than two leases on every host. A host that trusted its own clock would
    // see the others' leases expired (ahead) or write leases already expired (behind), and
    // tasks would be taken over and run again.
    let data = json!({"steps": 4, "sleep_ms": 1500, "ledger": ledger.to_str().unwrap()});
    let daemons = [&exact, &ahead, &behind];
    let ids: Vec<i64> = (0..12)
        .map(|i| daemons[i % 3].create("demo", "run", data.clone()))
        .collect();
    for &id in &ids {
        let t = exact.wait_task(id, Duration::from_secs(120), |t| {
            t["status"] == "completed" || t["status"] == "failed"
        });
        assert_eq!(t["status"], "completed", "{t}");
        assert_eq!(
            t["attempts"],
            1,
            "ran on its first attempt only: {t}\nlogs:\n{}\n---\n{}\n---\n{}",
            exact.log.text(),
            ahead.log.text(),
            behind.log.text()
        );
    }
    let mut starts: BTreeMap<i64, usize> = BTreeMap::new();
    for line in std::fs::read_to_string(&ledger).unwrap().lines() {
        let mut parts = line.split_whitespace();
        if parts.next() == Some("start") {
            let id: i64 = parts.next().unwrap().parse().unwrap();
            *starts.entry(id).or_default() += 1;
        }
    }
    for &id in &ids {
        assert_eq!(
            starts.get(&id),
            Some(&1),
            "task {id} started once: {starts:?}"
        );
    }
    for d in daemons {
        assert_eq!(
            d.log.count(|l| l.contains("recovered an interrupted task")),
            0,
            "no live lease was taken:\n{}",
            d.log.text()
        );
    }

    // The host ahead alone: a task due in a minute waits, though its clock says it is due.
    drop(exact);
    drop(behind);
    let due = true_now_ms() + 60_000;
    let r = ahead.post(
        "/stask/workers/demo/tasks/run",
        &json!({"data": {"steps": 1}, "start_at": due / 1000}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let later = r.body["id"].as_i64().expect("id");
    // A task due now, created after it, runs: the claims that took it saw the later one.
    let now_id = ahead.create("demo", "run", json!({"steps": 1}));
    ahead.wait_finished(now_id);
    let t = ahead.task(later);
    assert_eq!(
        t["status"], "pending",
        "a task due in a minute ran early: {t}"
    );
    assert_eq!(t["attempts"], 0, "{t}");

    // Its schedule fires on the database's seconds, not on slots 5 minutes ahead.
    let r = ahead.post(
        "/stask/schedules",
        &json!({"name": "skewed", "identifier": "demo", "action": "noop",
                "cron": "* * * * * *"}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let from_schedule = || -> Vec<Value> {
        let r = ahead.get("/stask/tasks?per_page=500");
        assert_eq!(r.status, 200, "{:?}", r.body);
        let tasks = r.body["tasks"].as_array().cloned().unwrap_or_default();
        tasks
            .into_iter()
            .filter(|t| t["action"] == "noop")
            .collect()
    };
    wait_until("two slots of the schedule", Duration::from_secs(30), || {
        from_schedule().len() >= 2
    });
    let fired = from_schedule();
    let checked_at = true_now_ms();
    for t in fired {
        let slot = chrono::DateTime::parse_from_rfc3339(t["start_at"].as_str().expect("start_at"))
            .unwrap()
            .timestamp_millis();
        assert!(
            slot <= checked_at + 1_000,
            "a slot {} s ahead of the database's time: {t}",
            (slot - checked_at) / 1000
        );
    }
}
