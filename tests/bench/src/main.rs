//! `stask-bench`: reproducible figures for the sTask pipeline, its SQLite limit and its peers.
//!
//! `cargo run --release -p stask-bench -- all` builds what it needs (the release daemon and demo
//! plugin), runs every scenario `--runs` times and prints a table of median, min and max with the
//! machine and configuration. See BENCHMARKS.md for recorded figures.

mod batch;
mod client;
mod daemon;
mod hammer;
mod peers;
mod pending;
mod products;
mod rate;
mod raw;
mod report;
mod sampler;
mod scenarios;
mod servers;
mod sleepers;

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
    /// Tasks per throughput run (default 100,000; for `rate` and the `peers` drain, 10,000).
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
    /// Progress calls of the `demo/hammer` task in `longjob`.
    #[arg(long, default_value_t = 10_000_000)]
    progress_calls: u64,
    /// CSV rows imported and exported by `longjob`.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// No-op tasks drained beside the busy task in `longjob`.
    #[arg(long, default_value_t = 50_000)]
    noops: usize,
    /// Sleeping tasks run by the 256-slot pool in `longjob`.
    #[arg(long, default_value_t = 2_560)]
    sleepers: usize,
    /// Pending tasks in the table for `pending` (half of them a day ahead).
    #[arg(long, default_value_t = 1_000_000)]
    pending: usize,
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
    /// Every peer side by side (ours at NORMAL and FULL, huey, BullMQ, graphile-worker,
    /// apalis) on the same workload, with the ratio table. Installs the peers from PyPI and
    /// npm into `target/`; needs the local Redis and PostgreSQL for BullMQ and
    /// graphile-worker (a missing one is a "not run" row). `peer` is the old name.
    #[value(alias = "peer")]
    Peers,
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
    /// The long-job path (not part of `all`, it takes minutes): (L1) the cost of a worker's
    /// progress and log calls (`demo/hammer`, `--progress-calls`), the database writes they
    /// cause, and a drain of `--noops` no-op tasks beside such a task; (L2) a `product` import
    /// of `--rows` CSV rows against a raw rusqlite insert loop, with peak RSS; (L3) the export
    /// of those rows and its HTTP download, with peak RSS; (L4) `--sleepers` sleeping tasks in
    /// a pool of 256 slots against the ideal, with RSS and threads.
    Longjob,
    /// Growth of the pending queue (not part of `all`): drain (`--tasks`, default 100,000) and
    /// pickup latency with `--pending` pending tasks, half a day ahead, against an empty queue.
    Pending,
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
    if wants(What::Peers) {
        let w = peers::workload(args.tasks.unwrap_or(10_000), args.seconds);
        peers::compare(&bin, &mut report, &w);
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
    if args.what.contains(&What::Longjob) {
        hammer::hammer(&bin, &mut report, args.progress_calls, args.noops);
        products::products(&bin, &mut report, args.rows);
        sleepers::sleepers(&bin, &mut report, args.sleepers);
    }
    if args.what.contains(&What::Pending) {
        pending::pending(&bin, &mut report, args.pending, tasks);
    }
    report.print();
}
