//! `stask-bench`: reproducible figures for the sTask pipeline, its SQLite limit and a peer.
//!
//! `cargo run --release -p stask-bench -- all` builds what it needs (the release daemon and demo
//! plugin), runs every scenario `--runs` times and prints a table of median, min and max with the
//! machine and configuration. See BENCHMARKS.md for recorded figures.

mod batch;
mod client;
mod daemon;
mod peer;
mod rate;
mod raw;
mod report;
mod scenarios;
mod servers;

use clap::{Parser, ValueEnum};
use report::Report;

/// Benchmarks of the sTask pipeline.
#[derive(Debug, Parser)]
#[command(name = "stask-bench")]
struct Args {
    /// What to run.
    #[arg(value_enum, default_value = "all")]
    what: Vec<What>,
    /// Runs per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Tasks per throughput run (default 100,000; for `rate`, 10,000).
    #[arg(long)]
    tasks: Option<usize>,
    /// Seconds per timed HTTP load run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Tasks per server scaling run (`pg`; the servers: `STASK_BENCH_POSTGRES_URL` and
    /// `STASK_BENCH_MYSQL_URL`, default the local ones).
    #[arg(long, default_value_t = 20_000)]
    pg_tasks: usize,
    /// Tasks per process-isolation run (`isolation`).
    #[arg(long, default_value_t = 2_000)]
    isolation_tasks: usize,
    /// Tasks per batch in the `batch` scenario.
    #[arg(long, default_value_t = 10_000)]
    batch_tasks: usize,
    /// The worker's `rate_limit` in the `rate` scenario.
    #[arg(long, default_value = "100/s")]
    rate: String,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum What {
    All,
    /// (a) batch of no-op tasks drained by the pool, with the raw SQLite limit beside it.
    Drain,
    /// (b) HTTP creation and processing at the same time.
    Sustained,
    /// (c) REST create to worker start, at light load.
    Latency,
    /// (d) HTTP create requests per second.
    Http,
    /// (e) plugin drop-to-live and reload times.
    Reload,
    /// (g) throughput with 10^4, 10^5 and 10^6 finished tasks in the table.
    Growth,
    /// The peer (huey with SQLite) on the same workload.
    Peer,
    /// (h) PostgreSQL and MariaDB with 1, 2 and 3 hosts against SQLite with one (`--pg-tasks`),
    /// and the pickup latency with two hosts.
    Pg,
    /// (i) what running each task in a child process costs (`--isolation-tasks`).
    Isolation,
    /// One `POST /stask/batches` of `--batch-tasks` tasks (with on_complete) against as many
    /// single creates, over HTTP.
    Batch,
    /// How closely a worker's `rate_limit` is kept (`--rate`, `--tasks`): achieved rate
    /// and the worst 1 s and 10 s windows. Not part of `all` (it runs as long as the rate
    /// makes it).
    Rate,
}

fn main() {
    let args = Args::parse();
    let all = args.what.contains(&What::All);
    let wants = |w: What| all || args.what.contains(&w);
    let tasks = args.tasks.unwrap_or(100_000);
    let bin = daemon::build_release();
    let mut report = Report::new(args.runs);
    report.machine();
    if std::env::var_os(daemon::DAEMON_ENV).is_some() {
        report.note(format!(
            "daemon measured: {} ({})",
            bin.stask.display(),
            daemon::DAEMON_ENV
        ));
    }
    if wants(What::Drain) {
        scenarios::drain(&bin, &mut report, tasks);
        raw::limits(&mut report, tasks);
    }
    if wants(What::Peer) {
        peer::huey(&bin, &mut report, 10_000);
    }
    if wants(What::Sustained) {
        scenarios::sustained(&bin, &mut report, args.seconds);
    }
    if wants(What::Latency) {
        scenarios::latency(&bin, &mut report, 2_000);
    }
    if wants(What::Http) {
        scenarios::http_creates(&bin, &mut report, args.seconds);
    }
    if wants(What::Reload) {
        scenarios::reload(&bin, &mut report);
    }
    if wants(What::Growth) {
        scenarios::growth(&bin, &mut report, (tasks / 2).max(1_000));
    }
    if wants(What::Pg) {
        servers::scaling(&bin, &mut report, args.pg_tasks);
    }
    if args.what.contains(&What::Rate) {
        rate::rate(&bin, &mut report, args.tasks.unwrap_or(10_000), &args.rate);
    }
    if wants(What::Isolation) {
        scenarios::isolation(&bin, &mut report, args.isolation_tasks);
    }
    if wants(What::Batch) {
        batch::batch(&bin, &mut report, args.batch_tasks);
    }
    report.print();
}
