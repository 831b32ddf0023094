//! Temporary `apalis` mode: apalis on the peer [`Workload`] next to ours on the same workload,
//! until the `peers` mode (another branch) takes the peer over.

use crate::daemon::{insert_pending, sync_disk, Binaries, Daemon, Home};
use crate::peers::{apalis, PeerRun, Workload};
use crate::report::Report;
use crate::scenarios::{hammer, now_micros};
use std::time::Duration;

/// How often ours is asked whether a phase is over.
const POLL: Duration = Duration::from_millis(5);

/// The workload of this comparison.
pub fn workload() -> Workload {
    Workload {
        drain_tasks: 10_000,
        sustained_secs: 5,
        producers: 8,
        latency_tasks: 500,
        latency_gap: Duration::from_millis(5),
        pool: std::thread::available_parallelism().map_or(2, |n| n.get()),
    }
}

/// Completed tasks of `d`.
fn completed(d: &Daemon) -> i64 {
    d.connect().get_json("/stask/stats")["completed"]
        .as_i64()
        .unwrap_or(0)
}

/// One run of ours on `w` at `STASK_SQLITE_SYNC=sync` (default settings otherwise).
fn ours(bin: &Binaries, w: &Workload, sync: &str) -> PeerRun {
    let pool = w.pool.to_string();
    let env = [
        ("STASK_WORKERS", pool.as_str()),
        ("STASK_SQLITE_SYNC", sync),
    ];
    let mut run = PeerRun::default();

    let home = Home::new(bin);
    insert_pending(&home.db(), w.drain_tasks, "noop");
    sync_disk();
    let d = home.serve(&env);
    while completed(&d) < w.drain_tasks as i64 {
        std::thread::sleep(POLL);
    }
    run.drain_per_s = w.drain_tasks as f64 / d.ready_at.elapsed().as_secs_f64();
    drop(d);

    let home = Home::new(bin);
    let d = home.serve(&env);
    let (created, window) = hammer(&d, w.producers, Duration::from_secs(w.sustained_secs), "{}");
    run.sustained_created_per_s = created as f64 / window;
    run.sustained_completed_per_s = completed(&d) as f64 / window;
    drop(d);

    let home = Home::new(bin);
    let d = home.serve(&env);
    let mut conn = d.connect();
    let mut sent = Vec::with_capacity(w.latency_tasks);
    for _ in 0..w.latency_tasks {
        let t0 = now_micros();
        let (status, body) = conn.request("POST", "/stask/workers/demo/tasks/stamp", "{}");
        assert_eq!(status, 201, "create failed");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        sent.push((v["id"].as_i64().expect("id"), t0));
        std::thread::sleep(w.latency_gap);
    }
    let mut lat = Vec::with_capacity(sent.len());
    for (id, t0) in sent {
        let task = loop {
            let t = conn.get_json(&format!("/stask/tasks/{id}"));
            if t["task"]["status"] == "completed" {
                break t;
            }
            std::thread::sleep(POLL);
        };
        let start: i128 = task["task"]["result"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("stamp result");
        lat.push((start - t0) as f64 / 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    run.latency_p50_ms = lat[lat.len() / 2];
    run.latency_p99_ms = lat[lat.len() * 99 / 100];
    run
}

/// Adds the five figures of `runs` under `who`.
fn add(report: &mut Report, who: &str, config: &str, runs: &[PeerRun]) {
    let pick = |f: fn(&PeerRun) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    report.add(
        &format!("{who}: drain"),
        "tasks/s",
        config,
        pick(|r| r.drain_per_s),
    );
    report.add(
        &format!("{who}: sustained created"),
        "tasks/s",
        config,
        pick(|r| r.sustained_created_per_s),
    );
    report.add(
        &format!("{who}: sustained completed"),
        "tasks/s",
        config,
        pick(|r| r.sustained_completed_per_s),
    );
    report.add(
        &format!("{who}: latency p50"),
        "ms",
        config,
        pick(|r| r.latency_p50_ms),
    );
    report.add(
        &format!("{who}: latency p99"),
        "ms",
        config,
        pick(|r| r.latency_p99_ms),
    );
}

/// apalis and ours (NORMAL, our default, and FULL) on [`workload`], `report.runs` times each.
pub fn compare(bin: &Binaries, report: &mut Report) {
    let w = workload();
    eprintln!("peer: {} on {w:?}", apalis::NAME);
    let config = format!(
        "drain {}, sustained {} s x {} producers, latency {} x {} ms, pool {}",
        w.drain_tasks,
        w.sustained_secs,
        w.producers,
        w.latency_tasks,
        w.latency_gap.as_millis(),
        w.pool
    );
    let mut peer = Vec::new();
    for i in 0..report.runs {
        match apalis::run(&w) {
            Ok(run) => peer.push(run),
            // A failed run is said, not counted; the others still are.
            Err(why) => report.note(format!("{} run {}: not run: {why}", apalis::NAME, i + 1)),
        }
    }
    if !peer.is_empty() {
        add(report, "apalis", &config, &peer);
    }
    for sync in ["normal", "full"] {
        let runs: Vec<PeerRun> = (0..report.runs).map(|_| ours(bin, &w, sync)).collect();
        add(report, &format!("ours ({sync})"), &config, &runs);
    }
    report.note(format!("{}: {}", apalis::NAME, apalis::DURABILITY));
}
