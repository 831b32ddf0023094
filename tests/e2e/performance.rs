//! Analytics, alerts, cache statistics and downloads that must stay inside the storage folder,
//! over real HTTP, from histories built by running real tasks.

use serde_json::{json, Value};
use stask_tests::{now_secs, Daemon, Home};
use std::time::Duration;

fn alert_types(d: &Daemon) -> Vec<String> {
    let r = d.get("/stask/performance/alerts");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_summary_and_worker_figures_come_from_the_tasks_that_ran() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let empty = d.get("/stask/performance/summary?hours=1").body;
    assert_eq!(empty["tasks"]["total"], 0);
    assert_eq!(
        empty["performance"]["success_rate"],
        Value::Null,
        "no fake rate on an empty window"
    );
    assert_eq!(empty["period"]["hours"], 1);
    assert!(alert_types(&d).is_empty(), "an empty hour raises no alert");

    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(d.create("demo", "run", json!({"steps": 2, "sleep_ms": 20})));
    }
    for _ in 0..2 {
        ids.push(d.create("demo", "run", json!({"fail_permanent": true})));
    }
    let later = d.create("demo", "noop", json!({"start_at": now_secs() + 3600}));
    assert_eq!(
        d.post(&format!("/stask/tasks/{later}/cancel"), &json!({}))
            .status,
        200
    );
    for id in &ids {
        d.wait_finished(*id);
    }
    let s = d.get("/stask/performance/summary").body;
    assert_eq!(s["success"], true);
    assert_eq!(s["period"]["hours"], 24);
    let t = &s["tasks"];
    assert_eq!(
        (
            t["total"].as_i64(),
            t["completed"].as_i64(),
            t["failed"].as_i64(),
            t["cancelled"].as_i64()
        ),
        (Some(6), Some(3), Some(2), Some(1))
    );
    assert_eq!(s["performance"]["success_rate"], 50.0);
    assert!(s["performance"]["average_duration"].as_f64().unwrap() > 0.0);
    assert!(
        s["performance"]["p95_duration"].as_f64().unwrap() >= 0.04,
        "two 20 ms steps: {s}"
    );
    assert_eq!(
        s["performance"]["average_memory"],
        Value::Null,
        "memory is not measured yet"
    );
    assert_eq!(
        s["common_errors"][0],
        json!({"message": "planned permanent failure", "count": 2})
    );

    let tl = d.get("/stask/performance/timeline?hours=1&buckets=6").body;
    let points = tl["points"].as_array().unwrap();
    assert_eq!(points.len(), 6, "{tl}");
    let sum = |key: &str| points.iter().map(|p| p[key].as_i64().unwrap()).sum::<i64>();
    assert_eq!((sum("completed"), sum("failed")), (3, 2), "{tl}");
    assert_eq!(tl["bucket_seconds"], 600.0);
    assert_eq!(d.get("/stask/performance/timeline?buckets=0").status, 422);

    let w = d.get("/stask/performance/workers?hours=24").body;
    let demo = &w["workers"]["demo"];
    assert_eq!(
        (demo["total_tasks"].as_i64(), demo["failures"].as_i64()),
        (Some(6), Some(2))
    );
    assert_eq!(demo["success_rate"], 50.0);
    assert!(demo["last_execution"].as_str().is_some());
    assert_eq!(demo["versions"].as_array().unwrap().len(), 1);

    for bad in ["hours=0", "hours=99999"] {
        assert_eq!(
            d.get(&format!("/stask/performance/summary?{bad}")).status,
            422,
            "{bad}"
        );
    }
    assert_eq!(d.get("/stask/performance/workers?hours=soon").status, 400);
}

#[test]
fn alerts_fire_for_failures_bad_plugins_and_orphaned_work_only_when_due() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    // 19 failures: below the minimum of finished tasks, no success-rate alert yet.
    let failing: Vec<i64> = (0..19)
        .map(|_| d.create("demo", "run", json!({"fail_permanent": true})))
        .collect();
    for id in &failing {
        d.wait_finished(*id);
    }
    assert!(!alert_types(&d).contains(&"low_success_rate".to_owned()));
    let one_more = d.create("demo", "run", json!({"fail_permanent": true}));
    d.wait_finished(one_more);
    let alerts = d.get("/stask/performance/alerts").body["alerts"].clone();
    let low = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "low_success_rate")
        .expect("low_success_rate");
    assert_eq!(
        (low["value"].as_f64(), low["threshold"].as_f64()),
        (Some(0.0), Some(95.0))
    );
    assert_eq!(low["severity"], "warning");

    home.write_plugin_bytes("broken.so", b"not a library");
    d.log
        .wait_for(Duration::from_secs(30), |l| {
            l.contains("plugin refused") && l.contains("broken.so")
        })
        .expect("refused");
    assert!(alert_types(&d).contains(&"plugin_load_error".to_owned()));

    let waiting = d.create("demo", "noop", json!({"start_at": now_secs() + 3600}));
    std::fs::remove_file(home.plugins_dir().join("demo.so")).unwrap();
    d.log
        .wait_for(Duration::from_secs(30), |l| l.contains("worker orphaned"))
        .expect("orphaned");
    let alerts = d.get("/stask/performance/alerts").body["alerts"].clone();
    let orphan = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "orphaned_worker_with_pending_tasks")
        .expect("orphan alert");
    assert_eq!(orphan["value"], 1.0);
    assert_eq!(d.task(waiting)["status"], "pending");
}

#[test]
fn the_cache_counts_lookups_and_clears_on_request() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let stats = |d: &Daemon| d.get("/stask/cache/stats").body["cache_stats"].clone();
    let before = stats(&d);
    for key in [
        "hits",
        "misses",
        "evictions",
        "hit_rate",
        "cache_size",
        "memory_usage",
    ] {
        assert!(before.get(key).is_some(), "{key} missing: {before}");
    }
    assert_eq!(before["cache_size"], 1);
    assert!(before["memory_usage"].as_i64().unwrap() > 0);
    for _ in 0..3 {
        let id = d.create("demo", "noop", json!({}));
        d.wait_finished(id);
    }
    let after = stats(&d);
    assert!(
        after["hits"].as_i64().unwrap() >= before["hits"].as_i64().unwrap() + 3,
        "{after}"
    );

    let r = d.post("/stask/cache/clear", &json!({"identifier": "demo"}));
    assert_eq!(
        (r.status, r.body["cleared"].as_i64()),
        (200, Some(1)),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["message"], "Cache cleared successfully");
    let cleared = stats(&d);
    assert_eq!(cleared["cache_size"], 0);
    assert_eq!(
        cleared["evictions"].as_i64(),
        Some(after["evictions"].as_i64().unwrap() + 1)
    );
    // The next task re-reads the row (a miss) and runs.
    let id = d.create("demo", "noop", json!({}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
    let refilled = stats(&d);
    assert_eq!(refilled["cache_size"], 1);
    assert!(refilled["misses"].as_i64().unwrap() > cleared["misses"].as_i64().unwrap());

    assert_eq!(
        d.request("POST", "/stask/cache/clear", None).status,
        200,
        "no body clears everything"
    );
    assert_eq!(
        d.request("POST", "/stask/cache/clear", Some("{oops"))
            .status,
        400
    );
    assert_eq!(
        d.post("/stask/cache/clear", &json!({"identifier": 5}))
            .status,
        422
    );
}

#[test]
fn downloads_never_leave_the_results_folder_whatever_the_row_or_the_worker_says() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    // A worker that returns a file outside its output folder fails the task.
    let escape = d.create(
        "demo",
        "run",
        json!({"steps": 1, "sleep_ms": 0, "escape_file": "/etc/hostname", "max_attempts": 1}),
    );
    let t = d.wait_finished(escape);
    assert_eq!(t["status"], "failed");
    assert!(
        t["message"]
            .as_str()
            .unwrap()
            .contains("outside its output folder"),
        "{t}"
    );

    // A completed task whose row is tampered with serves nothing outside storage/stask/results.
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 1, "sleep_ms": 0, "result_file": "out.txt", "content": "mine"}),
    );
    assert_eq!(d.wait_finished(id)["status"], "completed");
    assert_eq!(d.get(&format!("/stask/tasks/{id}/download")).raw, b"mine");
    let results = home.storage().join("stask/results");
    std::os::unix::fs::symlink("/etc/hostname", results.join(format!("{id}/link.txt"))).unwrap();
    let db = rusqlite::Connection::open(home.storage().join("stask.db")).unwrap();
    for tampered in [
        "../../../../../../etc/hostname".to_owned(),
        "/etc/hostname".to_owned(),
        format!("{id}/link.txt"),
        format!("{id}/../../stask.db"),
        format!("{id}/missing.txt"),
    ] {
        db.execute(
            "UPDATE s_tasks SET result_file = ?1 WHERE id = ?2",
            rusqlite::params![tampered, id],
        )
        .unwrap();
        let r = d.get(&format!("/stask/tasks/{id}/download"));
        assert_eq!(r.status, 404, "{tampered}: {:?}", r.body);
        assert_eq!(r.body["success"], false);
    }
}
