//! `rate`: how closely a worker's `rate_limit` is kept on the release daemon. `n` no-op tasks
//! of a worker with `rate_limit` set (SQLite, default pool) are drained; from the starts the
//! rows recorded: the achieved rate over the run, and the worst deviation of a 1 s and a 10 s
//! window from what the rate allows.

use crate::daemon::{insert_pending, Binaries, Home};
use crate::report::Report;
use std::time::{Duration, Instant};

/// Runs the scenario `report.runs` times with `rate` (e.g. `"100/s"`).
pub fn rate(bin: &Binaries, report: &mut Report, n: usize, rate: &str) {
    let limit: stask_host::store::RateLimit = rate.parse().expect("a rate such as 100/s");
    let per_s = limit.count as f64 * 1_000.0 / limit.per_ms as f64;
    eprintln!("rate: {n} no-op tasks at {rate}");
    let config = format!("{n} tasks, rate_limit {rate} (burst {})", limit.burst());
    let (mut achieved, mut worst_1s, mut worst_10s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..report.runs {
        let home = Home::new(bin);
        let d = home.serve(&[]);
        let mut conn = d.connect();
        let body = serde_json::json!({ "rate_limit": rate }).to_string();
        let (status, _) = conn.request("PUT", "/stask/workers/demo/settings", &body);
        assert_eq!(status, 200, "the settings were refused");
        insert_pending(&home.db(), n, "noop");
        let deadline = Instant::now() + Duration::from_secs(3_600);
        loop {
            let stats = conn.get_json("/stask/stats");
            if stats["completed"].as_u64().unwrap_or(0) >= n as u64 {
                break;
            }
            assert!(Instant::now() < deadline, "the run did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
        let starts = starts(&home);
        let span_s = (starts[starts.len() - 1] - starts[0]) as f64 / 1_000.0;
        achieved.push((starts.len() - 1) as f64 / span_s.max(0.001));
        worst_1s.push(worst_window(&starts, 1_000, per_s));
        worst_10s.push(worst_window(&starts, 10_000, per_s));
    }
    report.add("rate limit: achieved rate", "tasks/s", &config, achieved);
    report.add(
        "rate limit: worst 1 s window over the allowed rate",
        "tasks",
        &config,
        worst_1s,
    );
    report.add(
        "rate limit: worst 10 s window over the allowed rate",
        "tasks",
        &config,
        worst_10s,
    );
}

/// The recorded real starts of the run, sorted (UNIX ms).
fn starts(home: &Home) -> Vec<i64> {
    let db = rusqlite::Connection::open(home.db()).expect("open the database");
    let mut starts: Vec<i64> = db
        .prepare("SELECT started_at FROM s_tasks WHERE started_at IS NOT NULL")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("read the starts");
    starts.sort();
    starts
}

/// The most starts any window of `window_ms` beginning at a start holds, less what the rate
/// allows in it (`per_s` per second): positive means faster than the rate.
fn worst_window(starts: &[i64], window_ms: i64, per_s: f64) -> f64 {
    let allowed = per_s * window_ms as f64 / 1_000.0;
    let mut worst = f64::MIN;
    let mut end = 0;
    for (i, &from) in starts.iter().enumerate() {
        while end < starts.len() && starts[end] < from + window_ms {
            end += 1;
        }
        // Only whole windows: the last stretch of the run is shorter than the window.
        if from + window_ms > starts[starts.len() - 1] {
            break;
        }
        worst = worst.max((end - i) as f64 - allowed);
    }
    if worst == f64::MIN {
        0.0
    } else {
        worst
    }
}
