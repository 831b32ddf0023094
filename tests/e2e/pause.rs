//! Pausing a worker's queue, end to end: a paused worker accepts tasks, which wait as pending
//! and say why, while other workers' tasks run; running tasks finish; the pause survives a
//! restart; resume runs the held tasks in their order (priority, then id). On a database
//! server, a pause made on one host holds on another (the claim reads the worker row).
//!
//! The first tests run on this run's database (`STASK_TEST_DATABASE`); the two-host tests on
//! the local PostgreSQL and MariaDB.

use serde_json::{json, Value};
use stask_tests::{Daemon, Home, MysqlDatabase, PgSchema, ServerDatabase};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const PAUSED: &str = "Waiting: worker demo is paused";

fn worker(d: &Daemon, identifier: &str) -> Value {
    let r = d.get(&format!("/stask/workers/{identifier}"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["worker"].clone()
}

fn post_ok(d: &Daemon, path: &str) -> Value {
    let r = d.post(path, &json!({}));
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    r.body
}

/// A short `demo:run` that writes `start <id> <attempt>` to `ledger` when it starts.
fn ledgered(d: &Daemon, ledger: &Path, priority: &str) -> i64 {
    d.create(
        "demo",
        "run",
        json!({"steps": 1, "sleep_ms": 1, "ledger": ledger.to_str().unwrap(), "priority": priority}),
    )
}

/// The task ids in the order the ledger saw them start.
fn started_order(ledger: &Path) -> Vec<i64> {
    std::fs::read_to_string(ledger)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("start "))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect()
}

/// A task of another worker, created after the held ones, runs to the end: the claim skipped
/// the paused worker's tasks instead of waiting on them. Then each held task is still pending,
/// unattempted, flagged and saying why, in the detail, the list and the progress answer.
fn assert_held_while_others_run(d: &Daemon, held: &[i64]) {
    let other = d.create("system", "clean_cache", json!({}));
    assert_eq!(d.wait_finished(other)["status"], "completed");
    for &id in held {
        let t = d.task(id);
        assert_eq!(
            (&t["status"], &t["attempts"], &t["paused"], &t["message"]),
            (&json!("pending"), &json!(0), &json!(true), &json!(PAUSED)),
            "{t}"
        );
        let progress = d.get(&format!("/stask/tasks/{id}/progress")).body;
        assert_eq!(
            (&progress["paused"], &progress["message"]),
            (&json!(true), &json!(PAUSED))
        );
    }
    let listed = d.get("/stask/tasks?status=pending&identifier=demo").body;
    let flagged: Vec<i64> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["paused"] == true && t["message"] == PAUSED)
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(flagged.len(), held.len(), "{listed}");
}

#[test]
fn a_paused_worker_holds_its_tasks_across_a_restart_and_resume_runs_them_in_order() {
    let mut home = Home::with_workers(&["demo", "system"]);
    // One pool thread: the ledger's order is the order the tasks were started in.
    home.set_env("STASK_WORKERS", "1");
    let scratch = tempfile::tempdir().unwrap();
    let ledger = scratch.path().join("ledger.txt");
    let d = home.serve();

    // A running task finishes through a pause.
    let running = d.create("demo", "run", json!({"steps": 40, "sleep_ms": 25}));
    d.wait_task(running, WAIT, |t| t["status"] == "running");
    let paused = post_ok(&d, "/stask/workers/demo/pause");
    assert_eq!(paused["message"], "Worker paused");
    assert_eq!(
        (&paused["worker"]["paused"], &paused["worker"]["active"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(d.wait_finished(running)["status"], "completed");

    // A paused worker still accepts tasks (201, unlike a deactivated one's refusal).
    let held = vec![
        ledgered(&d, &ledger, "normal"),
        ledgered(&d, &ledger, "high"),
        ledgered(&d, &ledger, "low"),
        ledgered(&d, &ledger, "high"),
    ];
    assert_held_while_others_run(&d, &held);
    assert_eq!(worker(&d, "demo")["paused"], true);
    assert_eq!(worker(&d, "system")["paused"], false);

    // The pause is the worker row's: a restarted daemon still holds the tasks.
    assert_eq!(d.terminate(), 0);
    let d = home.serve();
    assert_eq!(worker(&d, "demo")["paused"], true);
    assert_held_while_others_run(&d, &held);

    let resumed = post_ok(&d, "/stask/workers/demo/resume");
    assert_eq!(
        (&resumed["message"], &resumed["worker"]["paused"]),
        (&json!("Worker resumed"), &json!(false))
    );
    for &id in &held {
        let t = d.wait_finished(id);
        assert_eq!(
            (&t["status"], &t["paused"]),
            (&json!("completed"), &json!(false))
        );
    }
    assert_eq!(
        started_order(&ledger),
        vec![held[1], held[3], held[0], held[2]],
        "priority first, then id"
    );
    assert_eq!(d.post("/stask/workers/nope/pause", &json!({})).status, 404);
}

/// `stask workers pause|resume` change the row a running daemon reads: the CLI's pause holds
/// the daemon's claims, the list shows it, and its resume lets the task run.
#[test]
fn the_cli_pauses_and_resumes_a_worker() {
    let home = Home::with_workers(&["demo", "system"]);
    assert_eq!(home.cli(&["workers", "discover"]).code, 0);
    let out = home.cli(&["workers", "pause", "demo"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("demo paused"), "{}", out.stdout);
    let list = home.cli(&["workers", "list"]);
    let row: Vec<&str> = list
        .stdout
        .lines()
        .find(|l| l.starts_with("demo "))
        .unwrap_or_else(|| panic!("{}", list.stdout))
        .split_whitespace()
        .collect();
    // IDENTIFIER SCOPE STATE ACTIVE PAUSED ...: paused, and still active.
    assert_eq!((row[3], row[4]), ("yes", "yes"), "{}", list.stdout);
    let json_list: Value =
        serde_json::from_str(&home.cli(&["workers", "list", "--json"]).stdout).unwrap();
    let demo = json_list
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["identifier"] == "demo")
        .unwrap();
    assert_eq!(demo["paused"], true);

    let d = home.serve();
    let id = d.create("demo", "noop", json!({}));
    assert_held_while_others_run(&d, &[id]);
    let shown = home.cli(&["task", "show", &id.to_string()]);
    assert!(shown.stdout.contains(PAUSED), "{}", shown.stdout);

    let out = home.cli(&["workers", "resume", "demo"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(d.wait_finished(id)["status"], "completed");
    assert_ne!(home.cli(&["workers", "pause", "nope"]).code, 0);
}

#[test]
fn a_pause_on_one_host_holds_on_another_on_postgres() {
    pause_holds_on_every_host(ServerDatabase::Postgres(PgSchema::create()));
}

#[test]
fn a_pause_on_one_host_holds_on_another_on_mariadb() {
    pause_holds_on_every_host(ServerDatabase::Mysql(MysqlDatabase::create()));
}

/// Host A pauses; host B, which had the worker's row cached as not paused, claims none of its
/// tasks (created on either host) while it runs other workers' tasks; B's resume runs them.
fn pause_holds_on_every_host(database: ServerDatabase) {
    let a_home = Home::on_server_database(&["demo", "system"], database.clone());
    let b_home = Home::on_server_database(&["demo", "system"], database);
    let a = a_home.serve();
    let b = b_home.serve();
    // B has run a demo task: its cached row says "not paused".
    let warm = b.create("demo", "noop", json!({}));
    assert_eq!(b.wait_finished(warm)["status"], "completed");

    post_ok(&a, "/stask/workers/demo/pause");
    let held = vec![
        b.create("demo", "noop", json!({})),
        a.create("demo", "noop", json!({})),
    ];
    assert_held_while_others_run(&b, &held);
    assert_held_while_others_run(&a, &held);
    assert_eq!(worker(&b, "demo")["paused"], true);

    post_ok(&b, "/stask/workers/demo/resume");
    for &id in &held {
        assert_eq!(a.wait_finished(id)["status"], "completed");
    }
}

/// Tasks this host claimed ahead (`preparing`, not started) when their worker is paused are
/// given back to pending, attempts uncounted, and the pool thread freed meanwhile does not
/// start them; resume runs them.
#[test]
fn tasks_claimed_ahead_are_given_back_when_their_worker_is_paused() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "1");
    home.set_env("STASK_PREFETCH", "8");
    let d = home.serve();
    // Short runs switch claiming ahead on.
    for _ in 0..3 {
        let id = d.create("demo", "noop", json!({}));
        assert_eq!(d.wait_finished(id)["status"], "completed");
    }
    let long = d.create("demo", "run", json!({"steps": 2000, "sleep_ms": 10}));
    d.wait_task(long, WAIT, |t| t["status"] == "running");
    let behind: Vec<i64> = (0..2)
        .map(|_| d.create("demo", "noop", json!({})))
        .collect();
    for &id in &behind {
        d.wait_task(id, WAIT, |t| t["status"] == "preparing");
    }
    post_ok(&d, "/stask/workers/demo/pause");
    for &id in &behind {
        let t = d.task(id);
        assert_eq!(
            (&t["status"], &t["attempts"], &t["paused"]),
            (&json!("pending"), &json!(0), &json!(true)),
            "{t}"
        );
    }
    // The running task is not stopped by a pause; cancel it to free the pool thread, which
    // must not start the given-back tasks.
    assert_eq!(
        d.post(&format!("/stask/tasks/{long}/cancel"), &json!({}))
            .status,
        200
    );
    assert_eq!(d.wait_finished(long)["status"], "cancelled");
    let other = d.create("demo", "noop", json!({}));
    assert_eq!(d.task(other)["paused"], true);
    for &id in &behind {
        assert_eq!(d.task(id)["status"], "pending");
    }
    post_ok(&d, "/stask/workers/demo/resume");
    for &id in behind.iter().chain([&other]) {
        assert_eq!(d.wait_finished(id)["status"], "completed");
    }
}
