//! Several hosts on one queue on a database server (PostgreSQL, MariaDB): drain throughput with
//! 1, 2 and 3 hosts against SQLite with one, and the pickup latency of a task a producer writes
//! while two hosts wait.
//!
//! Drain procedure (identical for every configuration): the hosts start on an empty database;
//! the clock starts just before `n` no-op tasks are inserted in batches of 1,000 by a separate
//! producer (as a bulk client would, straight into the database); it stops when
//! `GET /stask/stats` on the first host counts them all completed. So the figure includes the
//! producer's inserts and the hosts' pickup (NOTIFY on PostgreSQL, the wake-up poll on MariaDB,
//! the change counter on SQLite), and every host shares the machine with the database server
//! and the others.
//!
//! Pickup procedure: two idle hosts; a producer process inserts one `demo/stamp` task at a time
//! (10 ms apart) through its own store; latency = the worker's start stamp minus the time just
//! before the insert. Neither host made the task, so each learns of it only from the database.

use crate::daemon::{Binaries, Daemon, Home};
use crate::report::{fmt, Report};
use mysql::prelude::Queryable;
use stask_host::model::{NewTask, Priority};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

/// A database server the hosts share.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Server {
    /// `STASK_BENCH_POSTGRES_URL`, else the local one.
    Postgres,
    /// `STASK_BENCH_MYSQL_URL`, else the local MariaDB.
    Mariadb,
}

impl Server {
    fn base_url(self) -> String {
        match self {
            Server::Postgres => std::env::var("STASK_BENCH_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
            Server::Mariadb => std::env::var("STASK_BENCH_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into()),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Server::Postgres => "PostgreSQL",
            Server::Mariadb => "MariaDB",
        }
    }
}

/// A schema (PostgreSQL) or database (MariaDB) of its own for one run, dropped afterwards.
struct Database {
    server: Server,
    name: String,
}

impl Database {
    fn create(server: Server) -> Database {
        let name = format!(
            "stask_bench_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        match server {
            Server::Postgres => pg_admin()
                .batch_execute(&format!("CREATE SCHEMA {name}"))
                .expect("create schema"),
            Server::Mariadb => mysql_admin()
                .query_drop(format!("CREATE DATABASE {name}"))
                .expect("create database"),
        }
        Database { server, name }
    }

    /// The URL of this database. On PostgreSQL with `async_commit`, commits do not wait for
    /// the WAL flush (`synchronous_commit=off`: a server crash can lose the last commits, never
    /// corrupt; the durability class of SQLite's `synchronous=NORMAL`).
    fn url(&self, async_commit: bool) -> String {
        match self.server {
            Server::Postgres => {
                let extra = if async_commit {
                    "%20-c%20synchronous_commit%3Doff"
                } else {
                    ""
                };
                format!(
                    "{}?options=-c%20search_path%3D{}{extra}",
                    self.server.base_url(),
                    self.name
                )
            }
            Server::Mariadb => {
                let base = self.server.base_url();
                let server = base.rsplit_once('/').map_or(base.as_str(), |(s, _)| s);
                format!("{server}/{}", self.name)
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        match self.server {
            Server::Postgres => {
                let _ = pg_admin()
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
            }
            Server::Mariadb => {
                let _ = mysql_admin().query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
            }
        }
    }
}

fn pg_admin() -> postgres::Client {
    let url = Server::Postgres.base_url();
    postgres::Client::connect(&url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("the PostgreSQL bench needs a server at {url}: {e}"))
}

fn mysql_admin() -> mysql::Conn {
    let url = Server::Mariadb.base_url();
    mysql::Opts::from_url(&url)
        .map_err(mysql::Error::from)
        .and_then(mysql::Conn::new)
        .unwrap_or_else(|e| panic!("the MariaDB bench needs a server at {url}: {e}"))
}

fn task(action: &str) -> NewTask {
    NewTask {
        identifier: "demo".into(),
        action: action.into(),
        data: serde_json::json!({}),
        priority: Priority::Normal,
        start_at: None,
        max_attempts: 3,
        started_by: None,
        token_id: None,
        unique_key: None,
        unique_for_secs: None,
        parent_id: None,
        depends_on: Vec::new(),
        on_parent_failure: Default::default(),
    }
}

/// Inserts `n` `demo/noop` tasks in batches of 1,000 through the store of `url`.
fn produce(url: &str, n: usize) {
    let store = stask_host::store::open(url).expect("open the database");
    let batch = vec![task("noop"); 1_000];
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

fn now_micros() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i128)
}

/// Pickup latencies (ms, sorted) of `n` tasks a producer inserts one at a time while two idle
/// hosts wait on `url`.
fn pickup(first: &Daemon, url: &str, n: usize) -> Vec<f64> {
    let store = stask_host::store::open(url).expect("open the database");
    let mut sent = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = now_micros();
        let id = store
            .insert_task(&task("stamp"), stask_host::clock::now_ms())
            .expect("insert");
        sent.push((id, t0));
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut conn = first.connect();
    let mut latencies: Vec<f64> = sent
        .into_iter()
        .map(|(id, t0)| {
            let deadline = Instant::now() + Duration::from_secs(60);
            let task = loop {
                let t = conn.get_json(&format!("/stask/tasks/{id}"));
                if t["task"]["status"] == "completed" {
                    break t;
                }
                assert!(Instant::now() < deadline, "task {id} was not picked up");
                std::thread::sleep(POLL);
            };
            let start: i128 = task["task"]["result"].as_str().unwrap().parse().unwrap();
            (start - t0) as f64 / 1000.0
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// The figures: each server with 1, 2, 3 hosts, SQLite with one, the ratios, and the pickup
/// latency with two hosts.
pub fn scaling(bin: &Binaries, report: &mut Report, n: usize) {
    eprintln!(
        "(h) PostgreSQL and MariaDB drain of {n} no-op tasks with 1, 2 and 3 hosts, and SQLite"
    );
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
    let runs = [
        (Server::Postgres, 1, false),
        (Server::Postgres, 2, false),
        (Server::Postgres, 3, false),
        (Server::Postgres, 1, true),
        (Server::Postgres, 3, true),
        (Server::Mariadb, 1, false),
        (Server::Mariadb, 2, false),
        (Server::Mariadb, 3, false),
    ];
    let mut medians = Vec::new();
    for (server, hosts, async_commit) in runs {
        let mut rates = Vec::new();
        for _ in 0..report.runs {
            let database = Database::create(server);
            let url = database.url(async_commit);
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
            "(h) {}, {hosts} host{}{}",
            server.label(),
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
    report.note(format!(
        "(h) MariaDB 1 / 2 / 3 hosts against SQLite with one host: {} / {} / {} ({} / {} / {} tasks/s); against PostgreSQL with as many hosts: {} / {} / {}",
        ratio(medians[5], base),
        ratio(medians[6], base),
        ratio(medians[7], base),
        fmt(medians[5]),
        fmt(medians[6]),
        fmt(medians[7]),
        ratio(medians[5], medians[0]),
        ratio(medians[6], medians[1]),
        ratio(medians[7], medians[2]),
    ));

    const PICKUPS: usize = 200;
    for server in [Server::Postgres, Server::Mariadb] {
        let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
        for _ in 0..report.runs {
            let database = Database::create(server);
            let url = database.url(false);
            let env = [("STASK_DATABASE_URL", url.as_str())];
            let homes: Vec<Home> = (0..2).map(|_| Home::new_with_env(bin, &env)).collect();
            let daemons: Vec<Daemon> = homes.iter().map(|h| h.serve(&env)).collect();
            let latencies = pickup(&daemons[0], &url, PICKUPS);
            p50s.push(latencies[latencies.len() / 2]);
            p99s.push(latencies[latencies.len() * 99 / 100]);
        }
        let config = format!(
            "2 idle hosts, {PICKUPS} tasks inserted one at a time by another process, 10 ms apart"
        );
        let label = server.label();
        report.add(&format!("(h) {label} pickup p50"), "ms", &config, p50s);
        report.add(&format!("(h) {label} pickup p99"), "ms", &config, p99s);
    }
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}
