//! Long-job figure 1: what a worker's `progress` and `log` calls cost, how many database writes
//! they cause, and whether a worker calling them in a tight loop slows the rest of the host.

use crate::daemon::{insert_pending, insert_pending_with, sync_disk, Binaries, Home};
use crate::report::Report;
use crate::scenarios::drain_time;
use rusqlite::Connection;
use std::time::Duration;

/// Log lines the hammer writes (the host keeps at most 10,000 per attempt).
const LOG_CALLS: u64 = 1_000_000;
/// Writes to a task's row that are not progress: its claim, its start and its finish.
const LIFECYCLE_WRITES: f64 = 3.0;
/// Pool slots in the interference runs: one for the busy task, two for the no-op drain.
const POOL: &str = "3";

/// Counts every write to the hammer's task row and every log line stored for it (bench-only
/// triggers in the bench's copy of the database; the daemon does not know about them).
fn install_write_counters(db: &std::path::Path) {
    let conn = Connection::open(db).expect("open db");
    conn.execute_batch(
        "CREATE TABLE bench_writes (kind TEXT PRIMARY KEY, n INTEGER NOT NULL);
         INSERT INTO bench_writes VALUES ('task_row', 0), ('log_row', 0);
         CREATE TRIGGER bench_task_writes AFTER UPDATE ON s_tasks WHEN NEW.action = 'hammer'
         BEGIN UPDATE bench_writes SET n = n + 1 WHERE kind = 'task_row'; END;
         CREATE TRIGGER bench_log_writes AFTER INSERT ON s_task_logs
         BEGIN UPDATE bench_writes SET n = n + 1 WHERE kind = 'log_row'; END;",
    )
    .expect("install write counters");
}

fn counted(db: &std::path::Path, kind: &str) -> f64 {
    let conn = Connection::open(db).expect("open db");
    conn.query_row("SELECT n FROM bench_writes WHERE kind = ?1", [kind], |r| {
        r.get::<_, i64>(0)
    })
    .expect("read write counters") as f64
}

/// The cost per call and the writes per second (also with the build `STASK_BENCH_BEFORE`
/// names, if any), then a drain of no-op tasks beside a busy task.
pub fn hammer(bin: &Binaries, report: &mut Report, progress_calls: u64, noops: usize) {
    if let Some(before) = crate::daemon::before() {
        cost(&before, report, progress_calls, "before: ");
    }
    cost(bin, report, progress_calls, "");
    interference(bin, report, noops);
}

/// The cost per call and the writes it caused, `report.runs` times; `label` prefixes the
/// configurations.
fn cost(bin: &Binaries, report: &mut Report, progress_calls: u64, label: &str) {
    eprintln!("(L1) {label}{progress_calls} progress and {LOG_CALLS} log calls in one task");
    let mut progress_ns = Vec::new();
    let mut log_ns = Vec::new();
    let mut log_first_ns = Vec::new();
    let mut log_rest_ns = Vec::new();
    let mut task_writes_per_s = Vec::new();
    let mut task_writes = Vec::new();
    let mut log_rows = Vec::new();
    let mut run_secs = Vec::new();
    for _ in 0..report.runs {
        let home = Home::new(bin);
        install_write_counters(&home.db());
        let d = home.serve(&[]);
        let mut conn = d.connect();
        let body = format!(r#"{{"progress_calls": {progress_calls}, "log_calls": {LOG_CALLS}}}"#);
        let id = conn.create("demo", "hammer", &body);
        let task = conn.wait_completed(id, Duration::from_millis(20));
        let result: serde_json::Value =
            serde_json::from_str(task["result"].as_str().expect("hammer result")).unwrap();
        progress_ns.push(result["progress_ns"].as_f64().unwrap());
        log_ns.push(result["log_ns"].as_f64().unwrap());
        log_first_ns.push(result["log_first_ns"].as_f64().unwrap());
        log_rest_ns.push(result["log_rest_ns"].as_f64().unwrap());
        let secs = task["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        run_secs.push(secs);
        drop(d);
        let writes = counted(&home.db(), "task_row");
        task_writes.push(writes);
        // The claim, the start and the finish write the row once each; the rest are flushes.
        task_writes_per_s.push((writes - LIFECYCLE_WRITES).max(0.0) / secs.max(0.001));
        log_rows.push(counted(&home.db(), "log_row"));
    }
    let config =
        format!("{label}demo/hammer, {progress_calls} progress_items calls, one task, pool 2");
    report.add(
        "(L1) progress call in a worker",
        "ns/call",
        &format!("{config}; limit ~100 ns"),
        progress_ns,
    );
    report.add(
        "(L1) log call in a worker",
        "ns/call",
        &format!("{label}{LOG_CALLS} log calls after the progress loop; limit ~100 ns"),
        log_ns,
    );
    report.add(
        "(L1) log call, the first 10,000 (stored)",
        "ns/call",
        &format!("{label}same runs; limit ~100 ns"),
        log_first_ns,
    );
    report.add(
        "(L1) log call, past 10,000 (counted, not stored)",
        "ns/call",
        &format!("{label}same runs; limit ~100 ns"),
        log_rest_ns,
    );
    report.add("(L1) hammer task run time", "s", &config, run_secs);
    report.add(
        "(L1) writes to the task's row",
        "writes",
        &format!("{label}claim, start, progress flushes, finish (trigger count)"),
        task_writes,
    );
    report.add(
        "(L1) progress writes per second of the run",
        "writes/s",
        &format!(
            "{label}row writes less claim, start and finish; goal: ~4/s (the 250 ms ticker), not one per call"
        ),
        task_writes_per_s,
    );
    report.add(
        "(L1) log rows stored",
        "rows",
        &format!(
            "{label}{LOG_CALLS} log calls + the worker's own lines; the host keeps 10,000 per attempt"
        ),
        log_rows,
    );
}

/// A drain of `noops` no-op tasks alone, beside a task spinning on the CPU without host calls,
/// and beside the hammer: the last two differ only by the progress calls.
fn interference(bin: &Binaries, report: &mut Report, noops: usize) {
    eprintln!("(L1) drain of {noops} no-op tasks beside a busy task");
    let busy: [(&str, Option<(&str, serde_json::Value)>); 3] = [
        ("nothing else running", None),
        (
            "beside a task spinning on the CPU (demo/run burn_cpu_ms, no host calls)",
            Some((
                "run",
                serde_json::json!({"steps": 0, "burn_cpu_ms": 600_000}),
            )),
        ),
        (
            "beside demo/hammer (progress calls in a tight loop)",
            Some((
                "hammer",
                serde_json::json!({"progress_calls": 1_000_000_000_000u64}),
            )),
        ),
    ];
    let mut medians = Vec::new();
    for (label, task) in busy {
        let mut rates = Vec::new();
        for _ in 0..report.runs {
            let home = Home::new(bin);
            let extra = i64::from(task.is_some());
            if let Some((action, data)) = &task {
                // Due a second earlier than the no-ops: it takes its slot first.
                let earlier = stask_host::clock::now_ms() - 1_000;
                insert_pending_with(&home.db(), 1, action, data.clone(), Some(earlier));
            }
            insert_pending(&home.db(), noops, "noop");
            sync_disk();
            let d = home.serve(&[("STASK_WORKERS", POOL)]);
            let (secs, _) = drain_time(&d, noops as i64);
            if extra == 1 {
                let mut conn = d.connect();
                let status = conn.get_json("/stask/tasks/1")["task"]["status"].clone();
                assert_eq!(
                    status, "running",
                    "the busy task ended before the drain did"
                );
            }
            rates.push(noops as f64 / secs);
        }
        medians.push(report.add(
            "(L1) no-op drain",
            "tasks/s",
            &format!("{noops} no-op tasks, pool {POOL}, {label}"),
            rates,
        ));
    }
    report.note(format!(
        "(L1) the hammer's progress calls change the drain beside a CPU-bound task by {:+.1} % \
         (goal: within noise); beside nothing else it is {:.0} % of the idle-host figure",
        (medians[2] / medians[1] - 1.0) * 100.0,
        medians[2] / medians[0] * 100.0
    ));
}
