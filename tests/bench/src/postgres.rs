//! Several hosts on one PostgreSQL queue: drain throughput with 1, 2 and 3 hosts, and the same
//! procedure on SQLite with one host for the ratio.
//!
//! Procedure (identical for every configuration): the hosts start on an empty database; the
//! clock starts just before `n` no-op tasks are inserted in batches of 1,000 by a separate
//! producer (as a bulk client would, straight into the database); it stops when
//! `GET /stask/stats` on the first host counts them all completed. So the figure includes the
//! producer's inserts and the hosts' pickup (NOTIFY on PostgreSQL, the change counter on
//! SQLite), and every host shares the machine with the database server and the others.

use crate::daemon::{Binaries, Daemon, Home};
use crate::report::{fmt, Report};
use stask_host::model::{NewTask, Priority};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

/// The server: `STASK_BENCH_POSTGRES_URL`, else the local one.
fn base_url() -> String {
    std::env::var("STASK_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema of its own for one run, dropped afterwards.
struct Schema {
    name: String,
}

impl Schema {
    fn create() -> Schema {
        let name = format!(
            "stask_bench_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        admin()
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("create schema");
        Schema { name }
    }

    /// The URL with this schema first in the search path; with `async_commit`, commits do not
    /// wait for the WAL flush (`synchronous_commit=off`: a server crash can lose the last
    /// commits, never corrupt; the durability class of SQLite's `synchronous=NORMAL`).
    fn url(&self, async_commit: bool) -> String {
        let extra = if async_commit {
            "%20-c%20synchronous_commit%3Doff"
        } else {
            ""
        };
        format!(
            "{}?options=-c%20search_path%3D{}{extra}",
            base_url(),
            self.name
        )
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = admin().batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

fn admin() -> postgres::Client {
    let url = base_url();
    postgres::Client::connect(&url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("the PostgreSQL bench needs a server at {url}: {e}"))
}

/// Inserts `n` `demo/noop` tasks in batches of 1,000 through the store of `url`.
fn produce(url: &str, n: usize) {
    let store = stask_host::store::open(url).expect("open the database");
    let task = NewTask {
        identifier: "demo".into(),
        action: "noop".into(),
        data: serde_json::json!({}),
        priority: Priority::Normal,
        start_at: None,
        max_attempts: 3,
        started_by: None,
        token_id: None,
    };
    let batch = vec![task; 1_000];
    let mut left = n;
    while left > 0 {
        let k = left.min(batch.len());
        store
            .insert_tasks(&batch[..k], stask_host::clock::now_ms())
            .expect("insert");
        left -= k;
    }
}

/// Seconds from the start of the inserts until `first` counts `n` completed tasks.
fn drain(first: &Daemon, url: &str, n: usize) -> f64 {
    let started = Instant::now();
    let producer = {
        let url = url.to_owned();
        std::thread::spawn(move || produce(&url, n))
    };
    let mut conn = first.connect();
    loop {
        let stats = conn.get_json("/stask/stats");
        if stats["completed"].as_i64().unwrap_or(0) >= n as i64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the drain stalled: {stats}"
        );
        std::thread::sleep(POLL);
    }
    let secs = started.elapsed().as_secs_f64();
    producer.join().expect("producer");
    secs
}

/// The figures: PostgreSQL with 1, 2, 3 hosts, SQLite with one, and the ratios.
pub fn scaling(bin: &Binaries, report: &mut Report, n: usize) {
    eprintln!("(h) PostgreSQL drain of {n} no-op tasks with 1, 2 and 3 hosts, and SQLite");
    let pool = std::thread::available_parallelism()
        .map_or(2, |c| c.get())
        .to_string();
    let mut sqlite = Vec::new();
    for _ in 0..report.runs {
        let home = Home::new(bin);
        let d = home.serve(&[("STASK_WORKERS", pool.as_str())]);
        sqlite.push(n as f64 / drain(&d, &format!("sqlite://{}", home.db().display()), n));
    }
    let config = format!("{n} tasks inserted while the host runs, pool {pool} per host");
    let base = report.add(
        "(h) SQLite, 1 host, same procedure",
        "tasks/s",
        &config,
        sqlite,
    );
    let mut medians = Vec::new();
    for (hosts, async_commit) in [(1, false), (2, false), (3, false), (1, true), (3, true)] {
        let mut rates = Vec::new();
        for _ in 0..report.runs {
            let schema = Schema::create();
            let url = schema.url(async_commit);
            let env = [
                ("STASK_DATABASE_URL", url.as_str()),
                ("STASK_WORKERS", pool.as_str()),
            ];
            let homes: Vec<Home> = (0..hosts).map(|_| Home::new_with_env(bin, &env)).collect();
            let daemons: Vec<Daemon> = homes.iter().map(|h| h.serve(&env)).collect();
            rates.push(n as f64 / drain(&daemons[0], &url, n));
            drop(daemons);
        }
        let name = format!(
            "(h) PostgreSQL, {hosts} host{}{}",
            if hosts > 1 { "s" } else { "" },
            if async_commit {
                ", synchronous_commit=off"
            } else {
                ""
            }
        );
        medians.push(report.add(&name, "tasks/s", &config, rates));
    }
    report.note(format!(
        "(h) PostgreSQL 1 / 2 / 3 hosts against SQLite with one host: {} / {} / {} ({} / {} / {} tasks/s against {}); with synchronous_commit=off, 1 / 3 hosts: {} / {}",
        ratio(medians[0], base),
        ratio(medians[1], base),
        ratio(medians[2], base),
        fmt(medians[0]),
        fmt(medians[1]),
        fmt(medians[2]),
        fmt(base),
        ratio(medians[3], base),
        ratio(medians[4], base),
    ));
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}
