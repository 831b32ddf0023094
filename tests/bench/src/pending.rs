//! Growth of the pending queue: the drain rate and the pickup latency with 10^6 pending tasks
//! in the table, half of them scheduled a day ahead, against an otherwise empty queue.

use crate::daemon::Daemon;
use crate::daemon::{insert_pending, insert_pending_with, migrate, sync_disk, Binaries, Home};
use crate::report::Report;
use crate::scenarios::{pickup_latencies, POLL};
use std::time::{Duration, Instant};

/// Stamp tasks per latency run.
const LATENCY_TASKS: usize = 500;
/// How far ahead the scheduled half is.
const DAY_MS: i64 = 86_400_000;
/// The latency probes jump the due backlog (a normal one would wait behind all of it).
const PROBE: &str = r#"{"priority": "high"}"#;

/// Seconds from the daemon's ready line until task `id` completed. The due tasks are claimed
/// in id order, so task `n` completes with the first `n` (give or take a claim batch).
/// `/stask/stats`, which the other drains poll, counts the whole table: at 10^6 rows its
/// cost would be part of the figure.
fn drain_until(d: &Daemon, id: usize) -> f64 {
    let mut conn = d.connect();
    loop {
        let task = conn.get_json(&format!("/stask/tasks/{id}"));
        if task["task"]["status"] == "completed" {
            return d.ready_at.elapsed().as_secs_f64();
        }
        std::thread::sleep(POLL);
    }
}

/// Milliseconds one `GET /stask/stats` takes (median of 21).
fn stats_ms(d: &Daemon) -> f64 {
    let mut conn = d.connect();
    let mut times: Vec<f64> = (0..21)
        .map(|_| {
            let t0 = Instant::now();
            conn.get_json("/stask/stats");
            t0.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// What the queue holds while the latency probes run.
enum Queue<'a> {
    /// Nothing.
    Empty,
    /// This many due no-op tasks (the pool drains them meanwhile); the label.
    Due(usize, String),
    /// A copy of this database; the label.
    Copy(&'a std::path::Path, String),
}

/// `pending` tasks in the queue (half due now, half a day ahead); `n` of the due ones drained.
pub fn pending(bin: &Binaries, report: &mut Report, pending: usize, n: usize) {
    let half = pending / 2;
    assert!(n <= half, "the drained tasks must be among the due half");
    eprintln!("(P) {pending} pending tasks, half a day ahead: building the database");
    let template_dir = tempfile::tempdir().unwrap();
    let template = template_dir.path().join("pending.db");
    migrate(&template);
    // The due half first: ids 1..=half, claimed in id order (see `drain_until`).
    insert_pending(&template, half, "noop");
    let ahead = stask_host::clock::now_ms() + DAY_MS;
    insert_pending_with(
        &template,
        pending - half,
        "noop",
        serde_json::json!({}),
        Some(ahead),
    );
    checkpoint(&template);
    // The same scheduled half alone: the table's size without due work beside the probes.
    let future_only = template_dir.path().join("future.db");
    migrate(&future_only);
    insert_pending_with(
        &future_only,
        pending - half,
        "noop",
        serde_json::json!({}),
        Some(ahead),
    );
    checkpoint(&future_only);
    let backlog = format!(
        "{pending} pending ({half} due, {} a day ahead)",
        pending - half
    );

    eprintln!("(P) drain of {n}");
    let mut empty = Vec::new();
    let mut full = Vec::new();
    let mut stats = Vec::new();
    for _ in 0..report.runs {
        let home = Home::new(bin);
        insert_pending(&home.db(), n, "noop");
        sync_disk();
        let d = home.serve(&[]);
        empty.push(n as f64 / drain_until(&d, n));
        drop(d);
        let mut home = Home::from_template(bin, &template);
        let d = home.serve_with_fresh_token(&[]);
        full.push(n as f64 / drain_until(&d, n));
        stats.push(stats_ms(&d));
    }
    let base = report.add(
        "(P) drain, empty queue",
        "tasks/s",
        &format!("{n} due no-op tasks and nothing else, pool 2"),
        empty,
    );
    let grown = report.add(
        "(P) drain with a large pending queue",
        "tasks/s",
        &format!("the first {n} of {backlog}, pool 2; goal: within 20 % of the empty queue"),
        full,
    );
    report.add(
        "(P) GET /stask/stats with the large queue",
        "ms",
        &format!("after the drain above ({pending} rows in the table), median of 21"),
        stats,
    );

    eprintln!("(P) pickup latency, {LATENCY_TASKS} high-priority stamp tasks");
    let configs = [
        ("empty queue", Queue::Empty),
        (
            "large pending queue",
            Queue::Copy(
                &template,
                format!("while the pool drains the due half of {backlog}"),
            ),
        ),
        (
            "small queue draining",
            Queue::Due(
                n,
                format!("while the pool drains {n} due tasks, nothing else"),
            ),
        ),
        (
            "scheduled half only",
            Queue::Copy(
                &future_only,
                format!("{} pending a day ahead, nothing due", pending - half),
            ),
        ),
    ];
    let probes = format!("{LATENCY_TASKS} high-priority demo/stamp, 1 ms apart, pool 2");
    let mut p50_medians = Vec::new();
    for (name, queue) in &configs {
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        for _ in 0..report.runs {
            let (_home, d) = match queue {
                Queue::Empty => {
                    let home = Home::new(bin);
                    let d = home.serve(&[]);
                    (home, d)
                }
                Queue::Due(due, _) => {
                    let home = Home::new(bin);
                    insert_pending(&home.db(), *due, "noop");
                    sync_disk();
                    let d = home.serve(&[]);
                    (home, d)
                }
                Queue::Copy(file, _) => {
                    let mut home = Home::from_template(bin, file);
                    let d = home.serve_with_fresh_token(&[]);
                    (home, d)
                }
            };
            let lat = pickup_latencies(&d, LATENCY_TASKS, Duration::from_millis(1), PROBE);
            p50.push(lat[lat.len() / 2]);
            p99.push(lat[lat.len() * 99 / 100]);
        }
        let config = match queue {
            Queue::Empty => probes.clone(),
            Queue::Due(_, what) | Queue::Copy(_, what) => format!("{probes}, {what}"),
        };
        p50_medians.push(report.add(
            &format!("(P) pickup latency p50, {name}"),
            "ms",
            &config,
            p50,
        ));
        report.add(
            &format!("(P) pickup latency p99, {name}"),
            "ms",
            "same runs",
            p99,
        );
    }
    report.note(format!(
        "(P) with {pending} pending the drain is {:.0} % of the empty queue's (goal: within \
         20 %); the p50 pickup latency with the scheduled half alone is {:.0} % of the empty \
         queue's, and while the due half drains {:.0} % of the latency while a small queue \
         drains (the same load on the pool)",
        grown / base * 100.0,
        p50_medians[3] / p50_medians[0] * 100.0,
        p50_medians[1] / p50_medians[2] * 100.0
    ));
}

/// Folds the WAL into the file, so that copies of it are complete.
fn checkpoint(db: &std::path::Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
}
