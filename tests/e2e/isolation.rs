//! Process isolation: a worker set to `isolation: process` runs each task in a child process,
//! so a segfault, an abort, an `exit` or runaway memory fails that task with a clear message
//! and the host goes on.

use serde_json::{json, Value};
use stask_tests::{Daemon, Home};

fn isolate(d: &Daemon, settings: Value) {
    let r = d.request(
        "PUT",
        "/stask/workers/demo/settings",
        Some(&settings.to_string()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
}

fn failure(d: &Daemon, data: Value) -> String {
    let mut data = data;
    data["max_attempts"] = json!(1);
    let id = d.create("demo", "run", data);
    let task = d.wait_finished(id);
    assert_eq!(task["status"], "failed", "{task}");
    task["last_error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn crashes_in_an_isolated_worker_fail_only_their_own_task() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    isolate(&d, json!({"isolation": "process", "memory_limit_mb": 256}));

    let segfault = failure(&d, json!({"crash": "segfault"}));
    assert!(
        segfault.contains("segmentation fault (signal 11)"),
        "{segfault}"
    );
    let abort = failure(&d, json!({"crash": "abort"}));
    assert!(abort.contains("aborted (signal 6)"), "{abort}");
    let exit = failure(&d, json!({"crash": "exit"}));
    assert!(exit.contains("exited with code 3"), "{exit}");
    let leak = failure(&d, json!({"crash": "leak"}));
    assert!(
        leak.contains("ran out of its memory limit of 256 MiB"),
        "{leak}"
    );

    // The host is still up (the harness would see its exit) and still runs tasks, isolated
    // ones included: progress, logs and the result file come back through the child's pipe.
    assert_eq!(d.get("/stask/health").status, 200);
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 3, "sleep_ms": 20, "result_file": "out.txt", "content": "isolated"}),
    );
    let task = d.wait_finished(id);
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"], 100);
    assert_eq!(task["processed"], 3, "{task}");
    let download = d.get(&format!("/stask/tasks/{id}/download"));
    assert_eq!(download.raw, b"isolated");
    let detail = d.get(&format!("/stask/tasks/{id}"));
    let text = detail.body["log"].to_string();
    assert!(
        text.contains("attempt 1 of"),
        "the worker's log line: {text}"
    );
    // The child's own figures: its CPU time and its peak resident memory.
    assert!(task["cpu_ms"].as_i64().is_some(), "{task}");
    assert!(
        task["memory_bytes"].as_i64().unwrap_or(0) > 1 << 20,
        "a process holds at least a MiB: {task}"
    );
}

#[test]
fn an_isolated_run_that_ignores_its_timeout_is_killed_and_frees_its_slot() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "1");
    let d = home.serve();
    isolate(&d, json!({"isolation": "process", "timeout": 1}));
    let stuck = failure(
        &d,
        json!({"steps": 600, "sleep_ms": 100, "ignore_cancel": true}),
    );
    assert!(stuck.contains("timed out"), "{stuck}");
    let next = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 0}));
    assert_eq!(d.wait_finished(next)["status"], "completed");
}

#[test]
fn the_host_wide_default_isolates_every_worker() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_ISOLATION", "process");
    let d = home.serve();
    let segfault = failure(&d, json!({"crash": "segfault"}));
    assert!(segfault.contains("signal 11"), "{segfault}");
    assert_eq!(d.get("/stask/health").status, 200);
    // A worker can opt back in to in-process runs (speed) with its own setting.
    isolate(&d, json!({"isolation": "in_process"}));
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 1, "sleep_ms": 0, "hold_mb": 1}),
    );
    assert_eq!(d.wait_finished(id)["status"], "completed");
}
