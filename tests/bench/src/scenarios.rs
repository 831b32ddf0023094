//! The pipeline scenarios, each run `report.runs` times.

use crate::daemon::{insert_pending, migrate, sync_disk, Binaries, Daemon, Home};
use crate::report::Report;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const POLL: Duration = Duration::from_millis(5);

/// Waits until `completed` reaches `n`; returns the seconds since the daemon was ready and the
/// peak RSS seen meanwhile (KiB).
pub(crate) fn drain_time(d: &Daemon, n: i64) -> (f64, u64) {
    let mut conn = d.connect();
    let mut peak = 0;
    loop {
        peak = peak.max(d.rss_kib());
        let stats = conn.get_json("/stask/stats");
        if stats["completed"].as_i64().unwrap_or(0) >= n {
            return (d.ready_at.elapsed().as_secs_f64(), peak);
        }
        std::thread::sleep(POLL);
    }
}

fn workers() -> String {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .to_string()
}

/// (a) and (f): `n` no-op tasks inserted as a batch, drained by the pool (default settings and
/// with claim prefetch), plus RSS idle and under load.
pub fn drain(bin: &Binaries, report: &mut Report, n: usize) {
    eprintln!("(a) drain {n} no-op tasks");
    let pool = workers();
    let configs: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "default (prefetch 32 while tasks are short)",
            vec![("STASK_WORKERS", pool.as_str())],
        ),
        (
            "STASK_PREFETCH=0 (claims only for free slots)",
            vec![("STASK_WORKERS", pool.as_str()), ("STASK_PREFETCH", "0")],
        ),
        (
            "default, synchronous=FULL",
            vec![
                ("STASK_WORKERS", pool.as_str()),
                ("STASK_SQLITE_SYNC", "full"),
            ],
        ),
    ];
    for (i, (label, env)) in configs.into_iter().enumerate() {
        let mut rates = Vec::new();
        let mut idle = Vec::new();
        let mut peak = Vec::new();
        for _ in 0..report.runs {
            let home = Home::new(bin);
            insert_pending(&home.db(), n, "noop");
            sync_disk();
            let d = home.serve(&env);
            idle.push(d.rss_kib() as f64 / 1024.0);
            let (secs, rss) = drain_time(&d, n as i64);
            rates.push(n as f64 / secs);
            peak.push(rss as f64 / 1024.0);
        }
        let config = format!("{n} tasks, pool {pool}, {label}");
        report.add("(a) end-to-end drain", "tasks/s", &config, rates);
        if i == 0 {
            report.add(
                "(f) RSS idle (after start, demo loaded)",
                "MiB",
                &config,
                idle,
            );
            report.add("(f) RSS peak while draining", "MiB", &config, peak);
        }
    }
}

/// (b): clients create tasks over HTTP for `seconds` while the pool processes them.
pub fn sustained(bin: &Binaries, report: &mut Report, seconds: u64) {
    eprintln!("(b) sustained create + process for {seconds}s");
    let mut created_rates = Vec::new();
    let mut done_rates = Vec::new();
    for _ in 0..report.runs {
        let home = Home::new(bin);
        let d = home.serve(&[]);
        let (created, window) = hammer(&d, 8, Duration::from_secs(seconds), r#"{}"#);
        let mut conn = d.connect();
        let completed = conn.get_json("/stask/stats")["completed"]
            .as_i64()
            .unwrap_or(0);
        created_rates.push(created as f64 / window);
        done_rates.push(completed as f64 / window);
    }
    let config = format!(
        "8 HTTP clients, keep-alive, {seconds} s, pool {}",
        workers()
    );
    report.add(
        "(b) sustained: created over HTTP",
        "tasks/s",
        &config,
        created_rates,
    );
    report.add(
        "(b) sustained: completed meanwhile",
        "tasks/s",
        &config,
        done_rates,
    );
}

/// Runs `clients` keep-alive connections creating `demo/noop` tasks with `body` for `duration`;
/// returns tasks created and the seconds measured.
pub(crate) fn hammer(
    d: &Daemon,
    clients: usize,
    duration: Duration,
    body: &'static str,
) -> (u64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let mut conn = d.connect();
            let stop = stop.clone();
            let created = created.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (status, _) = conn.request("POST", "/stask/workers/demo/tasks/noop", body);
                    assert_eq!(status, 201, "create failed");
                    created.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    (
        created.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

/// Wall-clock microseconds since the epoch (the unit of the `stamp` task's result).
pub(crate) fn now_micros() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i128)
}

/// (c): one client creates `stamp` tasks one at a time (1 ms apart); latency = the worker's
/// start stamp minus the time just before the request was sent.
pub fn latency(bin: &Binaries, report: &mut Report, n: usize) {
    eprintln!("(c) create-to-start latency over {n} tasks");
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for _ in 0..report.runs {
        let home = Home::new(bin);
        let d = home.serve(&[]);
        let lat = pickup_latencies(&d, n, Duration::from_millis(1), "{}");
        p50s.push(lat[lat.len() / 2]);
        p99s.push(lat[lat.len() * 99 / 100]);
    }
    let config = format!("{n} tasks, 1 client, 1 ms apart, pool {}", workers());
    report.add("(c) create-to-start latency p50", "ms", &config, p50s);
    report.add("(c) create-to-start latency p99", "ms", &config, p99s);
}

/// Creates `n` `demo/stamp` tasks with `body` over one connection, one at a time `gap` apart;
/// returns each one's create-to-start latency (the worker's start stamp minus the time just
/// before the request was sent) in ms, sorted.
pub(crate) fn pickup_latencies(d: &Daemon, n: usize, gap: Duration, body: &str) -> Vec<f64> {
    let mut conn = d.connect();
    let mut sent = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = now_micros();
        let (status, answer) = conn.request("POST", "/stask/workers/demo/tasks/stamp", body);
        assert_eq!(status, 201);
        let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        sent.push((v["id"].as_i64().unwrap(), t0));
        std::thread::sleep(gap);
    }
    let mut lat: Vec<f64> = Vec::with_capacity(n);
    for (id, t0) in sent {
        let task = loop {
            let t = conn.get_json(&format!("/stask/tasks/{id}"));
            if t["task"]["status"] == "completed" {
                break t;
            }
            std::thread::sleep(POLL);
        };
        let start: i128 = task["task"]["result"].as_str().unwrap().parse().unwrap();
        lat.push((start - t0) as f64 / 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    lat
}

/// (d): HTTP create requests per second (tasks scheduled an hour ahead, so that only the API
/// and the insert are measured).
pub fn http_creates(bin: &Binaries, report: &mut Report, seconds: u64) {
    eprintln!("(d) HTTP creates for {seconds}s");
    let body: &'static str = Box::leak(
        format!(r#"{{"start_at": {}}}"#, now_micros() / 1_000_000 + 86_400).into_boxed_str(),
    );
    for clients in [2usize, 8] {
        let mut rates = Vec::new();
        for _ in 0..report.runs {
            let home = Home::new(bin);
            let d = home.serve(&[]);
            let (created, window) = hammer(&d, clients, Duration::from_secs(seconds), body);
            rates.push(created as f64 / window);
        }
        report.add(
            "(d) HTTP create requests",
            "req/s",
            &format!("{clients} keep-alive clients on the same 2 cores, {seconds} s"),
            rates,
        );
    }
}

/// (e): time from a library's rename into plugins.d/ until its worker row shows the new load.
pub fn reload(bin: &Binaries, report: &mut Report) {
    eprintln!("(e) drop-to-live and reload");
    let original = std::fs::read(&bin.demo).unwrap();
    let home = Home::new(bin);
    std::fs::remove_file(home.dir.path().join("plugins.d/demo.so")).unwrap();
    let d = home.serve(&[]);
    let mut conn = d.connect();
    let generation = |conn: &mut crate::client::Conn| {
        conn.get_json("/stask/workers/demo")["worker"]["generation"]
            .as_i64()
            .unwrap_or(0)
    };
    let mut drop_ms = Vec::new();
    let mut reload_ms = Vec::new();
    for run in 0..report.runs * 2 + 1 {
        // Each version differs by trailing bytes (a valid library with a new hash).
        let mut bytes = original.clone();
        bytes.extend(std::iter::repeat_n(0u8, run + 1));
        let tmp = home.dir.path().join("plugins.d/.demo.so.tmp");
        std::fs::write(&tmp, &bytes).unwrap();
        sync_disk();
        let before = generation(&mut conn);
        let t0 = Instant::now();
        std::fs::rename(&tmp, home.dir.path().join("plugins.d/demo.so")).unwrap();
        while generation(&mut conn) == before {
            std::thread::sleep(Duration::from_micros(500));
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if run == 0 {
            drop_ms.push(ms);
        } else {
            reload_ms.push(ms);
        }
        if run == 0 {
            // First drop of a new worker: repeat with fresh homes for the drop figure.
            for _ in 1..report.runs {
                let h = Home::new(bin);
                std::fs::remove_file(h.dir.path().join("plugins.d/demo.so")).unwrap();
                let d2 = h.serve(&[]);
                let mut c2 = d2.connect();
                let tmp = h.dir.path().join("plugins.d/.demo.so.tmp");
                std::fs::write(&tmp, &original).unwrap();
                sync_disk();
                let t0 = Instant::now();
                std::fs::rename(&tmp, h.dir.path().join("plugins.d/demo.so")).unwrap();
                while c2.get_json("/stask/workers/demo")["success"] != true {
                    std::thread::sleep(Duration::from_micros(500));
                }
                drop_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let size = format!(
        "release demo plugin ({} KiB), rename into place",
        original.len() / 1024
    );
    report.add("(e) drop-to-live (new worker)", "ms", &size, drop_ms);
    report.add("(e) reload (replaced library)", "ms", &size, reload_ms);
}

/// (g): the drain of (a) with 10^4, 10^5 and 10^6 finished tasks already in the table.
pub fn growth(bin: &Binaries, report: &mut Report, n: usize) {
    eprintln!("(g) throughput against table size");
    let template_dir = tempfile::tempdir().unwrap();
    let mut medians = Vec::new();
    for history in [10_000usize, 100_000, 1_000_000] {
        let template = template_dir.path().join(format!("history-{history}.db"));
        migrate(&template);
        fill_history(&template, history);
        let mut rates = Vec::new();
        for _ in 0..report.runs {
            let mut home = Home::from_template(bin, &template);
            insert_pending(&home.db(), n, "noop");
            sync_disk();
            let d = home.serve_with_fresh_token(&[]);
            let (secs, _) = drain_time(&d, (n + history) as i64);
            rates.push(n as f64 / secs);
        }
        medians.push(report.add(
            "(g) drain with history",
            "tasks/s",
            &format!("{history} finished tasks in the table, {n} drained, default settings"),
            rates,
        ));
    }
    report.note(format!(
        "(g) throughput at 10^6 history is {:.0} % of the figure at 10^4",
        medians[2] / medians[0] * 100.0
    ));
}

/// Inserts `n` completed tasks (one transaction) as history.
fn fill_history(db: &std::path::Path, n: usize) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; BEGIN")
        .unwrap();
    {
        let mut stmt = conn
            .prepare(
                "INSERT INTO s_tasks (identifier, action, status, message, meta, run_at, finished_at,
                   attempts, priority, priority_rank, progress, created_at, updated_at, started_at,
                   duration_ms, result)
                 VALUES ('demo', 'noop', 30, 'Completed', '{}', ?1, ?1, 1, 'normal', 1, 100, ?1, ?1, ?1, 1, NULL)",
            )
            .unwrap();
        let base = stask_host::clock::now_ms() - 3_600_000;
        for i in 0..n {
            stmt.execute([base + (i as i64 % 3_600_000)]).unwrap();
        }
    }
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
}

/// (i): `n` no-op tasks drained in the host and with each task in a child process
/// (`STASK_ISOLATION=process`); the difference is the price of isolation per task.
pub fn isolation(bin: &Binaries, report: &mut Report, n: usize) {
    eprintln!("(i) process isolation, {n} no-op tasks");
    let pool = workers();
    let mut medians = Vec::new();
    for (label, mode) in [
        ("in the host", "in_process"),
        ("each in a child process", "process"),
    ] {
        let env = vec![("STASK_WORKERS", pool.as_str()), ("STASK_ISOLATION", mode)];
        let mut rates = Vec::new();
        for _ in 0..report.runs {
            let home = Home::new(bin);
            insert_pending(&home.db(), n, "noop");
            sync_disk();
            let d = home.serve(&env);
            let (secs, _) = drain_time(&d, n as i64);
            rates.push(n as f64 / secs);
        }
        let config = format!("{n} no-op tasks, pool {pool}, {label}");
        medians.push(report.add("(i) drain, isolation", "tasks/s", &config, rates));
    }
    let threads: f64 = pool.parse().unwrap_or(2.0);
    let cost_ms = (1.0 / medians[1] - 1.0 / medians[0]) * 1000.0 * threads;
    report.note(format!(
        "(i) isolation costs {cost_ms:.2} ms of pool-thread time per task (child process \
         start, library load and check, pipes)"
    ));
}
