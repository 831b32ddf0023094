//! Promises of the README that had no test of their own: the idle cleanup of old progress
//! snapshots (`STASK_SNAPSHOT_MAX_AGE_SECS`), `stask process --batch-size N`, and the worker
//! commands `activate`, `deactivate`, `rescan` and `clean-orphaned`, each with its effect and
//! its exit code on a bad argument.

use serde_json::Value;
use stask_tests::{wait_until, CliOutput, Home};
use std::time::{Duration, SystemTime};

#[track_caller]
fn ok(out: &CliOutput) -> &str {
    assert_eq!(out.code, 0, "{out:#?}");
    &out.stdout
}

#[track_caller]
fn create(home: &Home, args: &[&str]) -> i64 {
    let mut all = vec!["task", "create"];
    all.extend_from_slice(args);
    let out = home.cli(&all);
    ok(&out).trim().parse().expect("task create prints an id")
}

#[track_caller]
fn status(home: &Home, id: i64) -> String {
    let out = home.cli(&["task", "show", &id.to_string(), "--json"]);
    let task: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    task["status"].as_str().unwrap().to_owned()
}

fn worker(home: &Home, identifier: &str) -> Option<Value> {
    let out = home.cli(&["workers", "list", "--json"]);
    let list: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|w| w["identifier"] == identifier)
        .cloned()
}

/// The janitor of an idle host removes snapshot files (`storage/stask/{id}.json`) older than
/// `STASK_SNAPSHOT_MAX_AGE_SECS` and nothing else: younger snapshots (a finished run's own
/// among them) and other files are left.
#[test]
fn an_idle_host_removes_old_progress_snapshots_and_keeps_the_rest() {
    let mut home = Home::with_workers(&["demo"]);
    // Ten hours, not the default hour: a two-hour-old snapshot must stay.
    home.set_env("STASK_SNAPSHOT_MAX_AGE_SECS", "36000");
    let dir = home.storage().join("stask");
    std::fs::create_dir_all(&dir).unwrap();
    let hours_ago = |h: u64| SystemTime::now() - Duration::from_secs(h * 3_600);
    let plant = |name: &str, age_hours: u64| {
        let path = dir.join(name);
        std::fs::write(&path, b"{\"status\":\"completed\"}").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(hours_ago(age_hours)).unwrap();
        path
    };
    let old = [plant("900001.json", 20), plant("900002.json", 11)];
    let young = plant("900003.json", 2);
    let not_a_snapshot = plant("notes.json", 20);

    let daemon = home.serve();
    wait_until("the old snapshots to go", Duration::from_secs(30), || {
        old.iter().all(|p| !p.exists())
    });
    // A run's own snapshot, written while it runs, stays after it (younger than the age).
    let id = daemon.create(
        "demo",
        "run",
        serde_json::json!({"steps": 3, "sleep_ms": 100}),
    );
    let done = daemon.wait_finished(id);
    assert_eq!(done["status"], "completed", "{done}");
    let own = dir.join(format!("{id}.json"));
    // The daemon's stop joins its ticker: any cleanup pass has finished when it returns.
    assert_eq!(daemon.terminate(), 0);
    assert!(
        young.exists(),
        "a snapshot younger than the set age is kept"
    );
    assert!(
        not_a_snapshot.exists(),
        "a file that is no snapshot is kept"
    );
    assert!(
        own.exists(),
        "the finished run's snapshot is kept until it is old"
    );
    let snapshot: Value = serde_json::from_slice(&std::fs::read(&own).unwrap()).unwrap();
    assert_eq!(snapshot["status"], "completed", "{snapshot}");
}

/// `process --batch-size N` runs at most N due tasks, highest priority first, and the next
/// pass the rest.
#[test]
fn process_with_a_batch_size_runs_at_most_that_many_tasks() {
    let home = Home::with_workers(&["demo"]);
    let low: Vec<i64> = (0..3)
        .map(|_| create(&home, &["demo", "noop", "--priority", "low"]))
        .collect();
    let high = create(&home, &["demo", "noop", "--priority", "high"]);
    let out = home.cli(&["process", "--batch-size", "2"]);
    assert_eq!(ok(&out).trim(), "processed 2 tasks");
    assert_eq!(status(&home, high), "completed", "the high one goes first");
    let left = low
        .iter()
        .filter(|id| status(&home, **id) == "pending")
        .count();
    assert_eq!(left, 2);
    let out = home.cli(&["process", "--batch-size", "5"]);
    assert_eq!(ok(&out).trim(), "processed 2 tasks");
    for id in low {
        assert_eq!(status(&home, id), "completed");
    }
    let out = home.cli(&["process", "--batch-size", "x"]);
    assert_eq!(out.code, 2, "{out:#?}");
}

/// `deactivate` keeps a worker's tasks pending (a pass runs none), `activate` lets them run;
/// an unknown worker is exit 3, a missing argument a usage error (2).
#[test]
fn activate_and_deactivate_decide_whether_a_workers_tasks_run() {
    let home = Home::with_workers(&["demo"]);
    ok(&home.cli(&["workers", "discover"]));
    let id = create(&home, &["demo", "noop"]);
    let out = home.cli(&["workers", "deactivate", "demo"]);
    assert!(ok(&out).contains("demo deactivated"), "{out:?}");
    assert_eq!(worker(&home, "demo").unwrap()["active"], false);
    // An inactive worker takes no new task (exit 4, a conflict).
    let refused = home.cli(&["task", "create", "demo", "noop"]);
    assert_eq!(refused.code, 4, "{refused:#?}");
    assert!(refused.stderr.contains("inactive"), "{refused:#?}");
    let out = home.cli(&["process"]);
    assert_eq!(ok(&out).trim(), "processed 0 tasks");
    assert_eq!(status(&home, id), "pending");

    let out = home.cli(&["workers", "activate", "demo"]);
    assert!(ok(&out).contains("demo activated"), "{out:?}");
    assert_eq!(worker(&home, "demo").unwrap()["active"], true);
    let out = home.cli(&["process"]);
    assert_eq!(ok(&out).trim(), "processed 1 tasks");
    assert_eq!(status(&home, id), "completed");

    for command in ["activate", "deactivate"] {
        let out = home.cli(&["workers", command, "nope"]);
        assert_eq!(out.code, 3, "{command} nope: {out:#?}");
        assert!(out.stderr.contains("nope"), "{out:#?}");
        let out = home.cli(&["workers", command]);
        assert_eq!(out.code, 2, "{command} without a worker: {out:#?}");
    }
}

/// `rescan` rewrites a loaded worker's row from its library (a hand edit goes);
/// `clean-orphaned` deletes the rows of workers whose library went and
/// keeps their tasks. Extra arguments are usage errors.
#[test]
fn rescan_rewrites_worker_rows_and_clean_orphaned_removes_only_orphans() {
    let home = Home::with_workers(&["demo", "system"]);
    ok(&home.cli(&["workers", "discover"]));
    let title = worker(&home, "demo").unwrap()["title"].clone();
    home.execute_sql("UPDATE s_workers SET title = 'edited by hand' WHERE identifier = 'demo'");
    assert_eq!(worker(&home, "demo").unwrap()["title"], "edited by hand");

    let out = home.cli(&["workers", "rescan"]);
    assert!(ok(&out).contains("demo.so: loaded demo "), "{out:?}");
    assert_eq!(worker(&home, "demo").unwrap()["title"], title);

    // The system worker's library goes: its row is orphaned, then cleaned; its task stays.
    let task = create(&home, &["system", "clean_cache"]);
    std::fs::remove_file(home.plugins_dir().join("system.so")).unwrap();
    ok(&home.cli(&["workers", "discover"]));
    assert_eq!(worker(&home, "system").unwrap()["state"], "orphaned");
    let out = home.cli(&["workers", "clean-orphaned"]);
    assert_eq!(ok(&out).trim(), "removed 1 orphaned workers: system");
    assert!(worker(&home, "system").is_none());
    assert!(worker(&home, "demo").is_some(), "a loaded worker stays");
    assert_eq!(status(&home, task), "pending", "its task history stays");
    let out = home.cli(&["workers", "clean-orphaned"]);
    assert_eq!(ok(&out).trim(), "removed 0 orphaned workers");

    for command in ["rescan", "clean-orphaned"] {
        let out = home.cli(&["workers", command, "demo"]);
        assert_eq!(out.code, 2, "{command} demo: {out:#?}");
    }
}
