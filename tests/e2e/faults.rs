//! Faults around the daemon: the storage folder full or unwritable, the SQLite file locked by
//! another process, a plugin that blocks forever and ignores its cancel request. In each the
//! daemon keeps running, reports the fault, and every task it accepted finishes.
//!
//! A second daemon on the same home is refused: `cli.rs` (`one_daemon_per_home`) proves it.

use serde_json::{json, Value};
use stask_tests::{Daemon, Home};
use std::path::Path;
use std::time::{Duration, Instant};

/// Waits until the daemon's log has a line with every one of `parts`; returns it.
fn wait_log(d: &Daemon, parts: &[&str]) -> String {
    d.log
        .wait_for(Duration::from_secs(30), |l| {
            parts.iter().all(|p| l.contains(p))
        })
        .unwrap_or_else(|| panic!("no log line with {parts:?}; log:\n{}", d.log.text()))
}

fn ledger_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `storage/stask/` full: every snapshot write fails with ENOSPC (the snapshot's temp file is a
/// link to `/dev/full`, which refuses writes even to root). The task runs on and completes.
#[test]
fn a_full_disk_fails_snapshot_writes_but_not_the_task() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let first = d.create("demo", "noop", json!({}));
    d.wait_finished(first);
    // Ids are consecutive: the next task's temp snapshot file is known before it exists.
    let next = first + 1;
    let snapshots = home.storage().join("stask");
    std::fs::create_dir_all(&snapshots).unwrap();
    std::os::unix::fs::symlink("/dev/full", snapshots.join(format!(".{next}.json.tmp"))).unwrap();

    let id = d.create(
        "demo",
        "run",
        json!({"steps": 12, "sleep_ms": 50, "result": "fine"}),
    );
    assert_eq!(id, next);
    let line = wait_log(
        &d,
        &["cannot write the progress snapshot", &format!("task={id}")],
    );
    assert!(line.contains("No space left on device"), "{line}");
    let done = d.wait_finished(id);
    assert_eq!(
        (done["status"].as_str(), done["result"].as_str()),
        (Some("completed"), Some("fine")),
        "{done}"
    );
    assert_eq!(done["progress"], 100);
    assert!(!snapshots.join(format!("{id}.json")).exists());
    assert_eq!(d.get("/stask/health").status, 200);

    // With space again, snapshots come back.
    std::fs::remove_file(snapshots.join(format!(".{id}.json.tmp"))).unwrap();
    let after = d.create("demo", "run", json!({"steps": 4, "sleep_ms": 100}));
    assert_eq!(d.wait_finished(after)["status"], "completed");
    let snapshot: Value =
        serde_json::from_slice(&std::fs::read(snapshots.join(format!("{after}.json"))).unwrap())
            .unwrap();
    assert_eq!(snapshot["status"], "completed");
}

/// `storage/stask/` replaced by a plain file while a task runs (writes fail with ENOTDIR, for
/// root too): the fault is logged, the task completes, and nothing else breaks.
#[test]
fn an_unwritable_snapshot_folder_is_reported_and_the_task_completes() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let snapshots = home.storage().join("stask");
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 30, "sleep_ms": 50, "result": "fine"}),
    );
    let snapshot = snapshots.join(format!("{id}.json"));
    d.wait_task(id, Duration::from_secs(30), |t| {
        t["progress"].as_i64().unwrap_or(0) > 0 && snapshot.exists()
    });
    let moved = home.storage().join("stask.moved");
    std::fs::rename(&snapshots, &moved).unwrap();
    std::fs::write(&snapshots, b"not a folder").unwrap();

    let line = wait_log(
        &d,
        &["cannot write the progress snapshot", &format!("task={id}")],
    );
    assert!(line.contains("Not a directory"), "{line}");
    let done = d.wait_finished(id);
    assert_eq!(
        (done["status"].as_str(), done["result"].as_str()),
        (Some("completed"), Some("fine")),
        "{done}"
    );
    // The final snapshot could not be written either, and that was reported too.
    d.log.wait_count(Duration::from_secs(10), 2, |l| {
        l.contains("cannot write the progress snapshot") && l.contains(&format!("task={id}"))
    });
    let other = d.create("demo", "run", json!({"steps": 3, "sleep_ms": 100}));
    assert_eq!(d.wait_finished(other)["status"], "completed");
    assert_eq!(d.get("/stask/health").status, 200);
    assert_eq!(d.get("/stask/stats").body["completed"], 2);

    // Folder back: snapshots are written again.
    std::fs::remove_file(&snapshots).unwrap();
    std::fs::rename(&moved, &snapshots).unwrap();
    let after = d.create("demo", "run", json!({"steps": 4, "sleep_ms": 100}));
    assert_eq!(d.wait_finished(after)["status"], "completed");
    assert!(snapshots.join(format!("{after}.json")).is_file());
}

/// What a create sent while the database was locked got back.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    after: Duration,
}

/// Creates `n` tasks from `threads` client threads at once; returns every answer.
fn create_concurrently(d: &Daemon, threads: usize, n: usize, data: Value) -> Vec<Answer> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let data = data.clone();
                s.spawn(move || {
                    (0..n)
                        .map(|_| {
                            let started = Instant::now();
                            let r = ureq::post(&format!("{}/stask/workers/demo/tasks/run", d.base))
                                .set("Authorization", &format!("Bearer {}", d.token))
                                .timeout(Duration::from_secs(60))
                                .send_string(&data.to_string());
                            let (status, response) = match r {
                                Ok(r) => (r.status(), r),
                                Err(ureq::Error::Status(code, r)) => (code, r),
                                Err(e) => panic!("create failed: {e}"),
                            };
                            Answer {
                                status,
                                body: response.into_json().expect("a JSON answer"),
                                after: started.elapsed(),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Every answer is a 201 with an id or a clear 503; the ids of the 201s.
fn accepted_ids(answers: &[Answer]) -> Vec<i64> {
    answers
        .iter()
        .filter_map(|a| match a.status {
            201 => Some(a.body["id"].as_i64().expect("id")),
            503 => {
                assert_eq!(
                    (a.body["success"].as_bool(), a.body["code"].as_i64()),
                    (Some(false), Some(503)),
                    "{a:?}"
                );
                assert!(
                    a.body["message"].as_str().unwrap().contains("busy"),
                    "{a:?}"
                );
                None
            }
            _ => panic!("a create got neither 201 nor a clear 503: {a:?}"),
        })
        .collect()
}

/// The database file write-locked by another process for 3 s (under the 10 s busy timeout): the
/// host waits, every create answered during the lock is a success, and every task completes.
#[test]
fn a_database_locked_for_seconds_by_another_process_delays_but_loses_nothing() {
    if stask_tests::sqlite_only("locks the SQLite file") {
        return;
    }
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let ledger = home.path().join("ledger.txt");
    let running = d.create(
        "demo",
        "run",
        json!({"steps": 30, "sleep_ms": 50, "ledger": ledger}),
    );
    d.wait_task(running, Duration::from_secs(30), |t| {
        t["progress"].as_i64().unwrap_or(0) > 0
    });

    let hold = Duration::from_secs(3);
    let db = rusqlite::Connection::open(home.storage().join("stask.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked = Instant::now();
    let answers = std::thread::scope(|s| {
        let creates = s.spawn(|| {
            create_concurrently(
                &d,
                4,
                3,
                json!({"steps": 2, "sleep_ms": 10, "ledger": ledger}),
            )
        });
        // Reads go on meanwhile (WAL): the API answers.
        assert_eq!(d.get("/stask/stats").status, 200);
        // The fault lasts `hold`: its length is the point, not a wait for something.
        std::thread::sleep(hold.saturating_sub(locked.elapsed()));
        db.execute_batch("COMMIT").unwrap();
        creates.join().unwrap()
    });
    assert_eq!(answers.len(), 12);
    let ids = accepted_ids(&answers);
    assert_eq!(
        ids.len(),
        12,
        "a 3 s lock is within the busy timeout: {answers:?}"
    );
    // The creates waited for the lock rather than failing at once.
    assert!(
        answers
            .iter()
            .any(|a| a.after >= hold - Duration::from_millis(500)),
        "{answers:?}"
    );
    for id in ids.iter().chain([&running]) {
        assert_eq!(d.wait_finished(*id)["status"], "completed");
    }
    let starts = ledger_of(&ledger)
        .iter()
        .filter(|l| l.starts_with("start "))
        .count();
    assert_eq!(starts, 13, "every task ran once");
    assert_eq!(d.get("/stask/stats").body["completed"], 13);
    assert_eq!(
        d.log.count(|l| l.contains("internal error")),
        0,
        "{}",
        d.log.text()
    );
}

/// Waits up to `within` for the task that was running when a lock began, and checks that it
/// completed once: one attempt, its result, and one start and one end in the worker's ledger
/// (its own live host never took it for a dead host's).
fn ran_once_despite_the_lock(d: &Daemon, id: i64, ledger: &Path, within: Duration) {
    let done = d.wait_task(id, within, |t| {
        matches!(
            t["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
    });
    assert_eq!(
        (
            done["status"].as_str(),
            done["result"].as_str(),
            done["attempts"].as_i64()
        ),
        (Some("completed"), Some("once"), Some(1)),
        "{done}\n{}",
        d.log.text()
    );
    assert_eq!(
        ledger_of(ledger),
        vec![format!("start {id} 1"), format!("done {id} 1")],
        "the running task must not be recovered from its own live host"
    );
}

/// A lock that outlasts the busy timeout (10 s) and the lease (1.5 s): creates either wait and
/// succeed or get a clear 503, nothing accepted is lost, and the task that was running when the
/// lock began is not taken for a dead host's: it runs exactly once.
#[test]
fn a_database_locked_beyond_the_busy_timeout_gets_clear_503s_and_no_double_run() {
    if stask_tests::sqlite_only("locks the SQLite file") {
        return;
    }
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_LEASE_MS", "1500");
    let d = home.serve();
    let ledger = home.path().join("ledger.txt");
    let long = d.create(
        "demo",
        "run",
        json!({"steps": 60, "sleep_ms": 250, "ledger": ledger, "result": "once"}),
    );
    d.wait_task(long, Duration::from_secs(30), |t| t["status"] == "running");

    let hold = Duration::from_secs(11);
    let db = rusqlite::Connection::open(home.storage().join("stask.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked = Instant::now();
    let answers = std::thread::scope(|s| {
        let creates = s.spawn(|| create_concurrently(&d, 2, 1, json!({"steps": 1, "sleep_ms": 0})));
        std::thread::sleep(hold.saturating_sub(locked.elapsed()));
        db.execute_batch("COMMIT").unwrap();
        creates.join().unwrap()
    });
    drop(db);
    let ids = accepted_ids(&answers);
    println!(
        "creates during an 11 s lock: {:?}",
        answers
            .iter()
            .map(|a| (a.status, a.after.as_millis()))
            .collect::<Vec<_>>()
    );
    for id in &ids {
        assert_eq!(d.wait_finished(*id)["status"], "completed");
    }
    ran_once_despite_the_lock(&d, long, &ledger, Duration::from_secs(60));
    assert_eq!(d.get("/stask/health").status, 200);
    let stats = d.get("/stask/stats").body;
    assert_eq!(
        stats["total"].as_u64().unwrap() as usize,
        ids.len() + 1,
        "{stats}"
    );
}

/// Heartbeats that fail for longer than the lease (the database locked by another process for
/// 25 s, over two busy timeouts) must not make the host take its own running task for a dead
/// host's and queue it again: the task runs once. The log lines of the failed progress flushes
/// are kept and stored once the lock is gone, in order.
///
/// One pool slot and no other work make the ticker the only writer, so the order is fixed:
/// its progress write fails after the 10 s busy timeout, its lease renewal after 20 s, and its
/// recovery check comes while the lock is still held.
#[test]
fn heartbeats_failing_beyond_the_lease_do_not_rerun_the_hosts_own_task() {
    if stask_tests::sqlite_only("locks the SQLite file") {
        return;
    }
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "1");
    home.set_env("STASK_PREFETCH", "0");
    home.set_env("STASK_LEASE_MS", "1500");
    let d = home.serve();
    let ledger = home.path().join("ledger.txt");
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 120, "sleep_ms": 250, "ledger": ledger, "result": "once", "log_steps": true}),
    );
    d.wait_task(id, Duration::from_secs(30), |t| {
        t["status"] == "running" && t["progress"].as_i64().unwrap_or(0) > 0
    });

    let hold = Duration::from_secs(25);
    let db = rusqlite::Connection::open(home.storage().join("stask.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked = Instant::now();
    // The fault is the lock's length; the renewal failing within it is the proof it bit.
    let failed = d.log.wait_for(hold, |l| l.contains("heartbeat failed"));
    std::thread::sleep(hold.saturating_sub(locked.elapsed()));
    db.execute_batch("COMMIT").unwrap();
    drop(db);
    assert!(
        failed.is_some(),
        "the lease renewal never failed:\n{}",
        d.log.text()
    );

    ran_once_despite_the_lock(&d, id, &ledger, Duration::from_secs(90));
    assert_eq!(
        d.log.count(|l| l.contains("recovered an interrupted task")),
        0
    );
    // Log lines written while the lock made flushes fail were kept and stored afterwards.
    let detail = d.get(&format!("/stask/tasks/{id}")).body;
    let steps: Vec<String> = detail["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"].as_str())
        .filter(|l| l.starts_with("step "))
        .map(str::to_owned)
        .collect();
    let expected: Vec<String> = (1..=120).map(|n| format!("step {n} done")).collect();
    assert_eq!(steps, expected);
    // The outage is reported once, not at every failed flush.
    assert_eq!(d.log.count(|l| l.contains("cannot store progress")), 1);
    assert!(
        d.log
            .wait_for(Duration::from_secs(5), |l| l
                .contains("progress is stored again"))
            .is_some(),
        "{}",
        d.log.text()
    );
}

/// A worker that blocks and ignores the cancel request of its timeout: the attempt fails as
/// timed out, the pool slot is freed for the next task (one slot only), the stuck run shows as
/// a `stuck_task` alert, and the daemon still stops promptly.
#[test]
fn a_plugin_that_ignores_its_timeout_is_abandoned_and_frees_its_slot() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "1");
    home.set_env("STASK_SHUTDOWN_GRACE_SECS", "1");
    let d = home.serve();
    let r = d.request(
        "PUT",
        "/stask/workers/demo/settings",
        Some(&json!({"timeout": 1}).to_string()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    // About three hours of 100 ms steps, never looking at the cancel flag.
    let stuck = d.create(
        "demo",
        "run",
        json!({"steps": 100_000, "sleep_ms": 100, "ignore_cancel": true, "max_attempts": 1}),
    );
    let next = d.create("demo", "noop", json!({}));
    d.wait_task(stuck, Duration::from_secs(30), |t| t["status"] == "running");

    // While it is stuck, the alert names it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        let r = d.get("/stask/performance/alerts");
        assert_eq!(r.status, 200, "{:?}", r.body);
        let found = r.body["alerts"].as_array().and_then(|alerts| {
            alerts
                .iter()
                .find(|a| {
                    a["type"] == "stuck_task"
                        && a["message"]
                            .as_str()
                            .is_some_and(|m| m.contains(&format!("task {stuck} ")))
                })
                .cloned()
        });
        if let Some(alert) = found {
            break alert;
        }
        assert!(
            Instant::now() < deadline,
            "no stuck_task alert: {:?}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(alert["severity"], "critical", "{alert}");

    let failed = d.wait_finished(stuck);
    assert_eq!(failed["status"], "failed", "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("timed out after 1s"), "{message}");
    // The one slot runs the next task although the stuck code has not returned.
    assert_eq!(d.wait_finished(next)["status"], "completed");
    let again = d.create("demo", "run", json!({"steps": 2, "sleep_ms": 10}));
    assert_eq!(d.wait_finished(again)["status"], "completed");
    // The blocked thread is still reported.
    let alerts = d.get("/stask/performance/alerts").body;
    assert!(
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["type"] == "stuck_task"
                && a["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("task {stuck} "))),
        "{alerts}"
    );
    assert_eq!(d.get("/stask/health").status, 200);

    // SIGTERM does not wait for the blocked thread.
    let pid = d.pid();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(d.terminate());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(code) => assert_eq!(code, 0),
        Err(_) => {
            // SAFETY: killing the daemon child this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("the daemon did not stop within 30 s of SIGTERM");
        }
    }
}
