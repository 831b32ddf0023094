//! Worker limits end to end (settings `concurrency`, `rate_limit`): judged from what the rows
//! recorded (each run's real start and its duration), not by timing the test.
//!
//! The first tests run on this run's database (`STASK_TEST_DATABASE`); the three-host tests
//! choose the local PostgreSQL and MariaDB themselves.

use serde_json::{json, Value};
use stask_tests::{Daemon, Home, MysqlDatabase, PgSchema, ServerDatabase};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

fn put_settings(d: &Daemon, worker: &str, settings: Value) {
    let r = d.request(
        "PUT",
        &format!("/stask/workers/{worker}/settings"),
        Some(&settings.to_string()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// Each finished run of `identifier` as `(start, end)` in UNIX ms, from the rows (`started_at`
/// is the run's real start on its pool thread, `duration_ms` its wall time).
fn runs(home: &Home, identifier: &str) -> Vec<(i64, i64)> {
    home.query_sql(&format!(
        "SELECT started_at, duration_ms FROM s_tasks WHERE identifier = '{identifier}'
          AND started_at IS NOT NULL AND duration_ms IS NOT NULL"
    ))
    .into_iter()
    .map(|row| {
        let int = |i: usize| -> i64 { row[i].as_deref().unwrap().parse().unwrap() };
        (int(0), int(0) + int(1))
    })
    .collect()
}

/// The most runs that overlapped at any moment.
fn most_at_once(runs: &[(i64, i64)]) -> usize {
    let mut edges: Vec<(i64, i32)> = runs
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end, -1)])
        .collect();
    // At equal times, ends before starts: a run that ended when another began did not overlap.
    edges.sort_by_key(|&(at, delta)| (at, delta));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

fn wait_all(d: &Daemon, ids: &[i64]) {
    for &id in ids {
        let t = d.wait_task(id, WAIT, |t| t["status"] == "completed");
        assert_eq!(t["status"], "completed", "{t}");
    }
}

/// Concurrency 2 on `demo`: 30 tasks never run more than 2 at once (from the recorded runs);
/// a pending one says why; another worker's task, created after them, is not held up behind
/// them.
#[test]
fn a_concurrency_cap_holds_and_other_workers_are_not_held_up() {
    let mut home = Home::with_workers(&["demo", "system"]);
    home.set_env("STASK_WORKERS", "6");
    let d = home.serve();
    put_settings(&d, "demo", json!({"concurrency": 2}));
    let worker = d.get("/stask/workers/demo").body["worker"].clone();
    assert_eq!(worker["limits"]["concurrency"], 2, "{worker}");

    let ids: Vec<i64> = (0..30)
        .map(|_| d.create("demo", "run", json!({"steps": 2, "sleep_ms": 50})))
        .collect();
    let other = d.create("system", "clean_cache", json!({}));
    assert_eq!(d.wait_finished(other)["status"], "completed");
    let last = *ids.last().unwrap();
    assert_ne!(
        d.task(last)["status"],
        "completed",
        "the other worker's task ran while demo's backlog waited"
    );
    let held = d.wait_task(last, WAIT, |t| {
        t["waiting_for"] == "concurrency_limit" || t["status"] != "pending"
    });
    assert_eq!(held["waiting_for"], "concurrency_limit", "{held}");
    assert_eq!(
        held["message"],
        "Waiting: 2 of 2 tasks of 'demo' running (concurrency limit)"
    );
    let running = d.get("/stask/workers/demo").body["worker"]["limits"]["running"].clone();
    assert!(running.as_u64().is_some_and(|n| n <= 2), "{running}");

    wait_all(&d, &ids);
    let runs = runs(&home, "demo");
    assert_eq!(runs.len(), 30);
    assert_eq!(most_at_once(&runs), 2, "{runs:?}");
}

/// A rate of 20/s: 60 tasks' recorded starts never put more than 20 + the burst (2) into any
/// one-second window, give or take one for the lag of a start behind its claim, and the run
/// takes as long as the rate makes it (58 intervals of 50 ms after the burst). A held task
/// says it waits for the rate limit.
///
/// The limit is on claims; a start is recorded when a pool thread takes the claimed task, a
/// little later (on a loaded machine with a debug build, tens of ms, seen up to ~50 ms on
/// MariaDB). GCRA allows at most `floor(L / 50 ms) + 2` claims in any span `L`; a second of
/// starts spans at most `1000 + lag` ms of claims, so with a lag under 100 ms: 23.
#[test]
fn a_rate_limit_spaces_the_starts() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "8");
    let d = home.serve();
    put_settings(&d, "demo", json!({"rate_limit": "20/s"}));
    let ids: Vec<i64> = (0..60)
        .map(|_| d.create("demo", "run", json!({"steps": 1, "sleep_ms": 1})))
        .collect();
    let last = *ids.last().unwrap();
    let held = d.wait_task(last, WAIT, |t| {
        t["waiting_for"] == "rate_limit" || t["status"] != "pending"
    });
    assert_eq!(held["waiting_for"], "rate_limit", "{held}");
    assert_eq!(held["message"], "Waiting: rate limit 20/s");
    wait_all(&d, &ids);

    let mut starts: Vec<i64> = runs(&home, "demo").iter().map(|r| r.0).collect();
    starts.sort();
    assert_eq!(starts.len(), 60);
    for (i, &from) in starts.iter().enumerate() {
        let in_window = starts[i..]
            .iter()
            .take_while(|&&s| s < from + 1_000)
            .count();
        assert!(
            in_window <= 23,
            "{in_window} starts in the second from {from}: {starts:?}"
        );
    }
    let span = starts[59] - starts[0];
    assert!(span >= 58 * 50 - 50, "60 starts in {span} ms at 20/s");
}

/// A task held by a concurrency of 1 shows why in its detail; once the cap is lifted it runs.
#[test]
fn a_held_task_says_which_limit_holds_it() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    put_settings(
        &d,
        "demo",
        json!({"concurrency": 5, "action_concurrency": {"run": 1}}),
    );
    let long = d.create("demo", "run", json!({"steps": 200, "sleep_ms": 25}));
    d.wait_task(long, WAIT, |t| t["status"] == "running");
    let held = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 1}));
    let other_action = d.create("demo", "noop", json!({}));
    assert_eq!(d.wait_finished(other_action)["status"], "completed");
    let t = d.task(held);
    assert_eq!(
        (&t["status"], &t["waiting_for"], &t["message"]),
        (
            &json!("pending"),
            &json!("concurrency_limit"),
            &json!("Waiting: 1 of 1 'run' tasks of 'demo' running (concurrency limit)")
        ),
        "{t}"
    );
    let listed = d.get("/stask/tasks?status=pending&identifier=demo").body;
    assert_eq!(
        listed["tasks"][0]["waiting_for"], "concurrency_limit",
        "{listed}"
    );
    let worker = d.get("/stask/workers/demo").body["worker"].clone();
    assert_eq!(worker["limits"]["action_concurrency"]["run"], 1, "{worker}");
    assert_eq!(worker["limits"]["running_by_action"]["run"], 1, "{worker}");
    put_settings(&d, "demo", json!({}));
    assert_eq!(d.wait_finished(held)["status"], "completed");
    assert!(
        d.post(&format!("/stask/tasks/{long}/cancel"), &json!({}))
            .status
            < 300
    );
    d.wait_finished(long);
}

#[test]
fn three_hosts_keep_a_concurrency_cap_on_postgres() {
    three_hosts_keep_a_cap(ServerDatabase::Postgres(PgSchema::create()));
}

#[test]
fn three_hosts_keep_a_concurrency_cap_on_mariadb() {
    three_hosts_keep_a_cap(ServerDatabase::Mysql(MysqlDatabase::create()));
}

/// Concurrency 3 across three hosts of 4 pool threads each: 60 tasks, never more than 3
/// running at once anywhere (from the recorded runs), and every task ran once.
fn three_hosts_keep_a_cap(database: ServerDatabase) {
    let homes: Vec<Home> = (0..3)
        .map(|_| {
            let mut home = Home::on_server_database(&["demo"], database.clone());
            home.set_env("STASK_WORKERS", "4");
            home
        })
        .collect();
    // The first host migrates the schema and sets the limit; the others start with the row.
    let a = homes[0].serve();
    put_settings(&a, "demo", json!({"concurrency": 3}));
    let (b, c) = std::thread::scope(|s| {
        let b = s.spawn(|| homes[1].serve());
        let c = s.spawn(|| homes[2].serve());
        (b.join().unwrap(), c.join().unwrap())
    });
    let daemons = [&a, &b, &c];
    let ids: Vec<i64> = (0..60)
        .map(|i| daemons[i % 3].create("demo", "run", json!({"steps": 2, "sleep_ms": 20})))
        .collect();
    wait_all(&a, &ids);
    let runs = runs(&homes[0], "demo");
    assert_eq!(runs.len(), 60);
    let most = most_at_once(&runs);
    assert!(most <= 3, "{most} ran at once with a cap of 3: {runs:?}");
    let attempts = homes[0].query_sql("SELECT MAX(attempts) FROM s_tasks");
    assert_eq!(attempts[0][0].as_deref(), Some("1"), "each task ran once");
}
