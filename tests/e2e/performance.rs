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
    assert!(
        s["performance"]["average_cpu_time"].as_f64().unwrap() >= 0.0,
        "every finished run has a CPU time: {s}"
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
    // One rule for query parameters (issue 13): not a number is 422 naming the parameter.
    let r = d.get("/stask/performance/workers?hours=soon");
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(
        r.body["message"],
        "hours must be a whole number between 1 and 8784, got 'soon'"
    );
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
    // The row is tampered with straight in the database, whichever the run uses.
    for tampered in [
        "../../../../../../etc/hostname".to_owned(),
        "/etc/hostname".to_owned(),
        format!("{id}/link.txt"),
        format!("{id}/../../stask.db"),
        format!("{id}/missing.txt"),
    ] {
        home.execute_sql(&format!(
            "UPDATE s_tasks SET result_file = '{tampered}' WHERE id = {id}"
        ));
        let r = d.get(&format!("/stask/tasks/{id}/download"));
        assert_eq!(r.status, 404, "{tampered}: {:?}", r.body);
        assert_eq!(r.body["success"], false);
    }
}

const MIB: i64 = 1 << 20;

/// One pool thread, so each run has the process to itself and its memory is measured.
fn one_slot_home() -> Home {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "1");
    home
}

#[test]
fn each_run_records_its_wait_cpu_time_and_memory() {
    let home = one_slot_home();
    let d = home.serve();
    // Queued together on one slot: the second waits for the first.
    let burn = d.create(
        "demo",
        "run",
        json!({"steps": 1, "sleep_ms": 0, "burn_cpu_ms": 300}),
    );
    let hold = d.create(
        "demo",
        "run",
        json!({"steps": 3, "sleep_ms": 300, "hold_mb": 64}),
    );
    let sleep = d.create("demo", "run", json!({"steps": 2, "sleep_ms": 150}));
    let burn = d.wait_finished(burn);
    let hold = d.wait_finished(hold);
    let sleep = d.wait_finished(sleep);
    for t in [&burn, &hold, &sleep] {
        assert_eq!(t["status"], "completed", "{t}");
    }
    let int = |t: &Value, key: &str| {
        t[key]
            .as_i64()
            .unwrap_or_else(|| panic!("{key} missing: {t}"))
    };

    // CPU: the burner's thread used at least what it burned (plus a little set-up); sleeping
    // costs next to nothing, however long it lasts.
    let cpu = int(&burn, "cpu_ms");
    assert!(
        (300..400).contains(&cpu),
        "300 ms burned, {cpu} ms measured"
    );
    assert!(int(&burn, "duration_ms") >= cpu, "{burn}");
    assert!(int(&sleep, "cpu_ms") < 50, "a sleeping run: {sleep}");
    assert!(int(&sleep, "duration_ms") >= 300);

    // Memory: 64 MiB held across the ticker's samples, with the host's own noise on top.
    let held = int(&hold, "memory_bytes");
    assert!(
        (64 * MIB..72 * MIB).contains(&held),
        "64 MiB held, {held} bytes measured"
    );
    assert!(
        int(&sleep, "memory_bytes") < 4 * MIB,
        "a run that allocates nothing: {sleep}"
    );

    // Wait: the held run queued behind the burner on the single slot, from its due time (its
    // creation, a moment after the burner's) to its start (once the burner finished).
    let at = |t: &Value, key: &str| {
        chrono::DateTime::parse_from_rfc3339(t[key].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{key}: {e}: {t}"))
            .timestamp_millis()
    };
    assert!(
        at(&hold, "started_at") >= at(&burn, "finished_at"),
        "the held run started before the burner ended: {hold} {burn}"
    );
    let queued = at(&hold, "started_at") - at(&hold, "run_at");
    assert_eq!(
        int(&hold, "wait_ms"),
        queued,
        "wait_ms is not the time from due to start: {hold}"
    );
    let created_after = at(&hold, "run_at") - at(&burn, "run_at");
    assert!(
        int(&hold, "wait_ms") + created_after + 1 >= cpu,
        "it waited for the {cpu} ms burner: {hold}"
    );
    assert!(int(&burn, "wait_ms") >= 0);

    // The summary and per-worker figures aggregate exactly these.
    let s = d.get("/stask/performance/summary?hours=1").body;
    let p = &s["performance"];
    assert_eq!(p["max_memory"].as_i64(), Some(held), "{s}");
    let cpus = [cpu, int(&hold, "cpu_ms"), int(&sleep, "cpu_ms")];
    let average_cpu = cpus.iter().sum::<i64>() as f64 / 3.0 / 1000.0;
    assert!(
        (p["average_cpu_time"].as_f64().unwrap() - average_cpu).abs() <= 0.005,
        "{s}"
    );
    assert!(p["p95_wait"].as_f64().unwrap() >= p["p50_wait"].as_f64().unwrap());
    let w = d.get("/stask/performance/workers?hours=1").body;
    assert_eq!(
        w["workers"]["demo"]["max_memory"].as_i64(),
        Some(held),
        "{w}"
    );
}

/// A minimal HTTP endpoint that answers 200 to every POST and hands over the JSON bodies.
fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(json) = serde_json::from_slice(&body) {
                    let _ = tx.send(json);
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (url, rx)
}

/// The next webhook post about `kind`, skipping others.
fn next_post(rx: &std::sync::mpsc::Receiver<Value>, kind: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let post = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no webhook post about {kind}"));
        if post["alert"]["type"] == kind {
            return post;
        }
    }
}

#[test]
fn alerts_are_logged_and_posted_when_they_start_and_when_they_end() {
    let (url, posts) = webhook_receiver();
    let mut home = one_slot_home();
    home.set_env("STASK_ALERT_CHECK_SECS", "1");
    home.set_env("STASK_ALERT_WEBHOOK_URL", &url);
    // Configured thresholds: a run holding 16 MiB is too much here.
    home.set_env("STASK_ALERT_MAX_MEMORY_BYTES", &(8 * MIB).to_string());
    let d = home.serve();

    home.write_plugin_bytes("broken.so", b"not a library");
    let started = next_post(&posts, "plugin_load_error");
    assert_eq!(started["event"], "alert_started", "{started}");
    assert!(started["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(started["alert"]["message"]
        .as_str()
        .unwrap()
        .contains("broken.so"));
    assert!(d
        .log
        .wait_for(Duration::from_secs(5), |l| l.contains("alert started")
            && l.contains("broken.so"))
        .is_some());
    std::fs::remove_file(home.plugins_dir().join("broken.so")).unwrap();
    let ended = next_post(&posts, "plugin_load_error");
    assert_eq!(ended["event"], "alert_ended", "{ended}");
    assert!(d
        .log
        .wait_for(Duration::from_secs(5), |l| l.contains("alert ended")
            && l.contains("broken.so"))
        .is_some());

    let id = d.create(
        "demo",
        "run",
        json!({"steps": 2, "sleep_ms": 300, "hold_mb": 16}),
    );
    assert_eq!(d.wait_finished(id)["status"], "completed");
    let memory = next_post(&posts, "high_memory_usage");
    assert_eq!(memory["event"], "alert_started");
    assert_eq!(
        memory["alert"]["threshold"].as_f64(),
        Some((8 * MIB) as f64)
    );
    assert!(memory["alert"]["value"].as_f64().unwrap() >= (16 * MIB) as f64);
    assert!(alert_types(&d).contains(&"high_memory_usage".to_owned()));
}

#[test]
fn a_task_past_its_timeout_that_ignores_cancel_is_a_stuck_task_until_it_stops() {
    let home = one_slot_home();
    let d = home.serve();
    let r = d.request(
        "PUT",
        "/stask/workers/demo/settings",
        Some(r#"{"timeout": 1}"#),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 25, "sleep_ms": 100, "ignore_cancel": true}),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stuck = loop {
        let alerts = d.get("/stask/performance/alerts").body;
        if let Some(a) = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["type"] == "stuck_task")
        {
            break a.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no stuck_task alert");
        d.log
            .wait_for(Duration::from_millis(200), |l| l.contains("timeout of 1s"));
    };
    assert_eq!(stuck["severity"], "critical");
    assert_eq!(stuck["threshold"].as_f64(), Some(1.0));
    assert!(stuck["message"]
        .as_str()
        .unwrap()
        .contains(&format!("task {id}")));
    // It did all its work in the end (the state machine keeps a finished result), and with
    // its slot free again the alert is over.
    let done = d.wait_finished(id);
    assert_eq!(done["status"], "completed", "{done}");
    assert!(!alert_types(&d).contains(&"stuck_task".to_owned()));
}

/// The value of the sample line that starts with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_count_what_ran_in_prometheus_text() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "3");
    let d = home.serve();
    let anonymous = d.request_as(None, "GET", "/metrics", None);
    assert_eq!(anonymous.status, 401, "metrics need the token too");

    let ids = [
        d.create("demo", "run", json!({"steps": 1, "sleep_ms": 10})),
        d.create("demo", "run", json!({"steps": 1, "sleep_ms": 10})),
        d.create("demo", "run", json!({"fail_permanent": true})),
        d.create(
            "demo",
            "run",
            json!({"steps": 1, "sleep_ms": 0, "fail_attempts": 1, "max_attempts": 2}),
        ),
    ];
    for id in ids {
        d.wait_finished(id);
    }
    let r = d.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("application/openmetrics-text"),
        "{}",
        r.content_type
    );
    let text = String::from_utf8(r.raw).unwrap();
    let attempts = |outcome: &str| {
        sample(
            &text,
            &format!(
                r#"stask_task_attempts_total{{worker="demo",action="run",outcome="{outcome}"}}"#
            ),
        )
    };
    assert_eq!(attempts("completed"), Some(3.0), "{text}");
    assert_eq!(attempts("failed"), Some(1.0));
    assert_eq!(attempts("retried"), Some(1.0));
    assert_eq!(
        sample(&text, r#"stask_task_duration_seconds_count{worker="demo"}"#),
        Some(5.0)
    );
    assert_eq!(
        sample(&text, r#"stask_tasks{status="completed"}"#),
        Some(3.0)
    );
    assert_eq!(sample(&text, r#"stask_tasks{status="failed"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"stask_tasks{status="pending"}"#), Some(0.0));
    assert_eq!(sample(&text, "stask_pool_threads "), Some(3.0));
    assert_eq!(sample(&text, "stask_running_tasks "), Some(0.0));
    assert_eq!(sample(&text, "stask_plugin_loads_total "), Some(1.0));
    assert_eq!(sample(&text, "stask_plugin_load_errors_total "), Some(0.0));
    assert_eq!(sample(&text, "stask_workers_loaded "), Some(1.0));
    let creates = sample(
        &text,
        r#"stask_http_requests_total{method="POST",route="/stask/workers/{identifier}/tasks/{action}",status="201"}"#,
    );
    assert_eq!(creates, Some(4.0), "{text}");
    assert!(text.contains("# TYPE stask_task_duration_seconds histogram"));
    assert!(text.ends_with("# EOF\n"));
}
