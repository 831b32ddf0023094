//! `batch`: one `POST /stask/batches` of `n` tasks (with an `on_complete` task depending on
//! all of them) against `n` single creates over one keep-alive connection, in the same run
//! on the same daemon. The tasks are due tomorrow, so nothing runs while creates are timed.

use crate::daemon::{Binaries, Home};
use crate::report::Report;
use serde_json::{json, Value};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn tomorrow() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 86_400
}

/// Runs the scenario `report.runs` times.
pub fn batch(bin: &Binaries, report: &mut Report, n: usize) {
    eprintln!("batch: one batch of {n} tasks against {n} single creates");
    let start_at = tomorrow();
    let tasks: Vec<Value> = (0..n)
        .map(|i| json!({"identifier": "demo", "action": "noop", "start_at": start_at, "data": {"i": i}}))
        .collect();
    let body = json!({
        "name": "bench",
        "tasks": tasks,
        "on_complete": {"identifier": "demo", "action": "noop", "start_at": start_at},
    })
    .to_string();
    let single = format!(r#"{{"start_at": {start_at}, "i": 1}}"#);
    let mut batch_ms = Vec::new();
    let mut singles_ms = Vec::new();
    for _ in 0..report.runs {
        let home = Home::new(bin);
        // 10,000 tasks with data are about 900 KB: room above the 1 MiB default.
        let d = home.serve(&[("STASK_MAX_BODY_BYTES", "16777216")]);
        let mut conn = d.connect();
        let t0 = Instant::now();
        let (status, answer) = conn.request("POST", "/stask/batches", &body);
        batch_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
        let t0 = Instant::now();
        for _ in 0..n {
            let (status, answer) = conn.request("POST", "/stask/workers/demo/tasks/noop", &single);
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
        }
        singles_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let stats = conn.get_json("/stask/stats");
        assert_eq!(stats["pending"].as_u64(), Some(2 * n as u64 + 1), "{stats}");
    }
    let config = format!("{n} tasks + on_complete, SQLite, one keep-alive connection");
    report.add("batch: one POST /stask/batches", "ms", &config, batch_ms);
    report.add(
        "batch: the same tasks as single creates",
        "ms",
        &format!("{n} POST /stask/workers/demo/tasks/noop, one after another"),
        singles_ms,
    );
}
