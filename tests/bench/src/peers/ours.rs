//! sTask itself on the [`Workload`]: the release daemon with the pool and SQLite sync level
//! given, pre-filled tasks inserted as a batch (phase 1), HTTP creates over keep-alive
//! connections (phases 2 and 3), as the `drain`, `sustained` and `latency` scenarios do.

use super::{PeerRun, Workload};
use crate::daemon::{insert_pending, sync_disk, Binaries, Home};
use crate::scenarios::{drain_time, hammer, pickup_latencies};
use std::time::Duration;

/// Our name in the table at `sync` (`normal` or `full`).
pub fn name(sync: &str) -> String {
    format!("sTask (SQLite, STASK_SQLITE_SYNC={sync})")
}

/// What a crash loses at `sync`.
pub fn durability(sync: &str) -> &'static str {
    if sync == "full" {
        "SQLite WAL with synchronous=FULL: every acknowledged create and completion is on disk"
    } else {
        "SQLite WAL with synchronous=NORMAL: a killed process loses nothing committed; a power \
         loss can lose the commits since the last WAL sync, never the file"
    }
}

/// One run of the workload at `sync`, each phase in a fresh home.
pub fn run(bin: &Binaries, w: &Workload, sync: &str) -> PeerRun {
    let pool = w.pool.to_string();
    let env = [
        ("STASK_WORKERS", pool.as_str()),
        ("STASK_SQLITE_SYNC", sync),
    ];

    let home = Home::new(bin);
    insert_pending(&home.db(), w.drain_tasks, "noop");
    sync_disk();
    let d = home.serve(&env);
    let (secs, _) = drain_time(&d, w.drain_tasks as i64);
    drop(d);

    let home = Home::new(bin);
    let d = home.serve(&env);
    let secs_window = Duration::from_secs(w.sustained_secs);
    let (created, window) = hammer(&d, w.producers, secs_window, "{}");
    let completed = d.connect().get_json("/stask/stats")["completed"]
        .as_i64()
        .unwrap_or(0);
    drop(d);

    let home = Home::new(bin);
    let d = home.serve(&env);
    let lat = pickup_latencies(&d, w.latency_tasks, w.latency_gap, "{}");
    let (p50, p99) = (lat[lat.len() / 2], lat[lat.len() * 99 / 100]);

    PeerRun {
        drain_per_s: w.drain_tasks as f64 / secs,
        sustained_created_per_s: created as f64 / window,
        sustained_completed_per_s: completed as f64 / window,
        latency_p50_ms: p50,
        latency_p99_ms: p99,
    }
}
