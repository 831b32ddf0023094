//! The peer: huey (Python, PyPI) with its SQLite storage, on the same no-op workload, in the
//! same run. It lives only here: nothing of it is part of the product.

use crate::daemon::{insert_pending, sync_disk, Binaries, Home};
use crate::report::Report;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const HUEY_VERSION: &str = "3.5.4";

/// Enqueues N no-op tasks, then drains them with a thread consumer; prints the drain rate.
const SCRIPT: &str = r#"
import os, sys, tempfile, threading, time
from huey import SqliteHuey
from huey.consumer import Consumer
n, workers, fsync = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
path = os.path.join(tempfile.mkdtemp(prefix="huey-bench-"), "huey.db")
huey = SqliteHuey("bench", filename=path, fsync=(None if fsync == "default" else False))
done = [0]
lock = threading.Lock()
@huey.task()
def noop():
    with lock:
        done[0] += 1
for _ in range(n):
    noop()
consumer = Consumer(huey, workers=workers, worker_type="thread", periodic=False,
                    initial_delay=0.001, max_delay=0.01)
started = time.perf_counter()
threading.Thread(target=consumer.run, daemon=True).start()
while True:
    with lock:
        if done[0] >= n:
            break
    time.sleep(0.002)
print("RATE", n / (time.perf_counter() - started))
os._exit(0)
"#;

fn venv() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-venv");
    let python = dir.join("bin/python");
    if !python.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .ok()?
            .success()
            && Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", &format!("huey=={HUEY_VERSION}")])
                .status()
                .ok()?
                .success();
        if !ok {
            return None;
        }
    }
    Some(python)
}

fn huey_rate(python: &PathBuf, n: usize, fsync: &str) -> Option<f64> {
    let out = Command::new(python)
        .args(["-c", SCRIPT, &n.to_string(), "2", fsync])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("RATE ").and_then(|r| r.trim().parse().ok()))
}

/// Our drain of `n` tasks vs huey's, both with 2 workers, at both durability settings.
pub fn huey(bin: &Binaries, report: &mut Report, n: usize) {
    eprintln!("peer: huey {HUEY_VERSION} SqliteHuey, {n} no-op tasks");
    let Some(python) = venv() else {
        report.note("peer: huey could not be installed (no PyPI?); skipped".into());
        return;
    };
    for (ours_sync, huey_fsync, label) in [
        ("normal", "off", "ours NORMAL / huey OFF"),
        ("full", "default", "ours FULL / huey default (FULL)"),
    ] {
        let mut peer = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..report.runs {
            if let Some(rate) = huey_rate(&python, n, huey_fsync) {
                peer.push(rate);
            }
            let home = Home::new(bin);
            insert_pending(&home.db(), n, "noop");
            sync_disk();
            let d = home.serve(&[("STASK_WORKERS", "2"), ("STASK_SQLITE_SYNC", ours_sync)]);
            let mut conn = d.connect();
            while conn.get_json("/stask/stats")["completed"]
                .as_i64()
                .unwrap_or(0)
                < n as i64
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            ours.push(n as f64 / d.ready_at.elapsed().as_secs_f64());
        }
        let p = report.add(
            "peer: huey drain",
            "tasks/s",
            &format!("{n} tasks, 2 thread workers, fsync={huey_fsync}"),
            peer,
        );
        let o = report.add(
            "ours on the peer's workload",
            "tasks/s",
            &format!("{n} tasks, pool 2, default settings, synchronous={ours_sync}"),
            ours,
        );
        report.note(format!("ours/peer ({label}): {:.1}x", o / p));
    }
}
