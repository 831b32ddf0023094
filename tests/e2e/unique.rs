//! Unique tasks, end to end: 50 creates of one key at once over real HTTP make exactly one
//! task, and the 49 others answer 200 with its id and `"duplicate": true`; the key is free
//! again once the task finished; `unique_for` holds it after the finish; bad keys are 422.
//! The concurrent creates also run across two hosts on PostgreSQL and MariaDB.
//!
//! The single-host tests run on this run's database (`STASK_TEST_DATABASE`).

use serde_json::{json, Value};
use stask_tests::{Daemon, Home, MysqlDatabase, PgSchema, Reply, ServerDatabase};
use std::sync::{Arc, Barrier};

const CREATES: usize = 50;

fn create_keyed(d: &Daemon, body: &Value) -> Reply {
    d.post("/stask/workers/demo/tasks/noop", body)
}

/// `CREATES` threads, released together, each creating one task with `key` on the daemon
/// `targets[i % len]`; returns every answer.
fn concurrent_creates(targets: &[&Daemon], key: &str) -> Vec<Reply> {
    let barrier = Arc::new(Barrier::new(CREATES));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..CREATES)
            .map(|i| {
                let d = targets[i % targets.len()];
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    create_keyed(d, &json!({"unique_key": key, "n": i}))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Exactly one answer created (201), all others are 200 duplicates naming that task, and the
/// database holds exactly one task with the key.
fn assert_one_task(answers: &[Reply], d: &Daemon, key: &str) -> i64 {
    let created: Vec<&Reply> = answers.iter().filter(|r| r.status == 201).collect();
    assert_eq!(
        created.len(),
        1,
        "{:?}",
        answers
            .iter()
            .map(|r| (r.status, &r.body))
            .collect::<Vec<_>>()
    );
    let id = created[0].body["id"].as_i64().unwrap();
    assert_eq!(created[0].body["duplicate"], false);
    for r in answers.iter().filter(|r| r.status != 201) {
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            (
                &r.body["success"],
                &r.body["duplicate"],
                r.body["id"].as_i64()
            ),
            (&json!(true), &json!(true), Some(id)),
            "{:?}",
            r.body
        );
    }
    let listed = d.get("/stask/tasks?identifier=demo&per_page=500").body;
    let with_key: Vec<i64> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["unique_key"] == key)
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(with_key, vec![id], "{listed}");
    id
}

#[test]
fn fifty_concurrent_creates_of_one_key_make_one_task() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    // Paused: the task stays pending (holding its key) however fast the creates are.
    assert_eq!(d.post("/stask/workers/demo/pause", &json!({})).status, 200);
    let answers = concurrent_creates(&[&d], "nightly-export");
    let id = assert_one_task(&answers, &d, "nightly-export");
    assert_eq!(d.task(id)["unique_key"], "nightly-export");

    // Free once it finished: the next create is a new task.
    assert_eq!(d.post("/stask/workers/demo/resume", &json!({})).status, 200);
    assert_eq!(d.wait_finished(id)["status"], "completed");
    let again = create_keyed(&d, &json!({"unique_key": "nightly-export"}));
    assert_eq!(
        (again.status, &again.body["duplicate"]),
        (201, &json!(false))
    );
    assert_ne!(again.body["id"].as_i64(), Some(id));
}

#[test]
fn unique_for_holds_the_key_after_the_finish_and_bad_keys_are_refused() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let first = create_keyed(&d, &json!({"unique_key": "hourly", "unique_for": 3600}));
    assert_eq!(first.status, 201, "{:?}", first.body);
    let id = first.body["id"].as_i64().unwrap();
    assert_eq!(d.wait_finished(id)["status"], "completed");
    let again = create_keyed(&d, &json!({"unique_key": "hourly"}));
    assert_eq!(
        (
            again.status,
            &again.body["duplicate"],
            again.body["id"].as_i64()
        ),
        (200, &json!(true), Some(id)),
        "{:?}",
        again.body
    );
    for (body, word) in [
        (json!({"unique_key": ""}), "empty"),
        (json!({"unique_key": "k".repeat(192)}), "191"),
        (json!({"unique_key": 5}), "string"),
        (json!({"unique_key": "k", "unique_for": 0}), "unique_for"),
        (
            json!({"unique_key": "k", "unique_for": "soon"}),
            "unique_for",
        ),
        (json!({"unique_for": 60}), "unique_key"),
    ] {
        let r = create_keyed(&d, &body);
        assert_eq!(r.status, 422, "{body}: {:?}", r.body);
        assert!(
            r.body["message"].as_str().unwrap().contains(word),
            "{body}: {:?}",
            r.body
        );
    }
}

/// `stask task create --unique-key`: the second create prints the holder's id and says it
/// created nothing.
#[test]
fn the_cli_creates_a_unique_task_once() {
    let home = Home::with_workers(&["demo"]);
    let first = home.cli(&["task", "create", "demo", "noop", "--unique-key", "cli-key"]);
    assert_eq!(first.code, 0, "{first:?}");
    let second = home.cli(&[
        "task",
        "create",
        "demo",
        "noop",
        "--unique-key",
        "cli-key",
        "--unique-for",
        "60",
    ]);
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(second.stdout.trim(), first.stdout.trim());
    assert!(second.stderr.contains("not created"), "{second:?}");
    let bad = home.cli(&["task", "create", "demo", "noop", "--unique-key", ""]);
    assert_ne!(bad.code, 0, "{bad:?}");
}

#[test]
fn concurrent_creates_on_two_hosts_make_one_task_on_postgres() {
    two_hosts(ServerDatabase::Postgres(PgSchema::create()));
}

#[test]
fn concurrent_creates_on_two_hosts_make_one_task_on_mariadb() {
    two_hosts(ServerDatabase::Mysql(MysqlDatabase::create()));
}

fn two_hosts(database: ServerDatabase) {
    let a_home = Home::on_server_database(&["demo"], database.clone());
    let b_home = Home::on_server_database(&["demo"], database);
    let a = a_home.serve();
    let b = b_home.serve();
    assert_eq!(a.post("/stask/workers/demo/pause", &json!({})).status, 200);
    let answers = concurrent_creates(&[&a, &b], "shared-key");
    assert_one_task(&answers, &b, "shared-key");
}
