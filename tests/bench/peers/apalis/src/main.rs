//! The apalis peer of `stask-bench`: apalis with its SQLite storage (`apalis-sqlite`) on the
//! bench's no-op workload. Built and run by the bench only, never part of the product.
//!
//! Usage (one phase per process, each on a fresh database file):
//!
//! - `drain N POOL`: pre-fill N no-op jobs, then start the worker; prints
//!   `drain N SECS RATE` (from the worker's start until it has stopped after the last job,
//!   its final acknowledgements written).
//! - `sustained SECS PRODUCERS POOL`: PRODUCERS tasks push jobs while the worker runs; prints
//!   `sustained CREATED_PER_S COMPLETED_PER_S` over the same window (completed = rows the
//!   storage marked done by the window's end).
//! - `latency N GAP_MS POOL`: one job pushed every GAP_MS; each job stamps its wall-clock
//!   start; prints `latency P50_MS P99_MS` of (start − the time just before the push).
//!
//! The storage is set up the way apalis-sqlite's README shows for its event-driven worker:
//! `SqliteStorage::connect_with_callback` (an SQLite update hook signals every insert made
//! through the pool), `SqliteStorage::setup` (migrations and its pragmas), and a poll
//! `Strategy` of that hook's events in chunks of the batch size plus a 500 ms interval, with
//! the storage's default `Config` (batches of 10, heartbeat 30 s, tasks locked, results kept).
//! Why not plainer: the storage without a strategy re-polls an empty queue only on its 30 s
//! heartbeat, and the hook stream alone can miss a wake-up (a consumed event leaves no waker
//! on the stream), which stalls a fed worker until that heartbeat; the interval bounds that.
//! A push that fails (SQLite busy past sqlx's 5 s timeout) is retried and counted on stderr.
//! After each phase one `info` line on stderr gives the `synchronous` level of every
//! connection of the pool (setup's `PRAGMA synchronous = OFF` reaches only the connection it
//! ran on; the others keep SQLite's default, FULL).

use apalis::prelude::*;
use apalis_sqlite::{Config, SqlitePool, SqliteStorage};
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The one queue of every phase.
const QUEUE: &str = "bench";

/// What the jobs of a phase share with the phase that pushed them.
#[derive(Debug, Default)]
struct Shared {
    /// Jobs whose handler has run.
    done: AtomicU64,
    /// Stop the worker once `done` reaches this (0: never).
    stop_at: u64,
    /// Wall-clock start (µs since the epoch) of each job, by its argument (latency phase).
    starts: Mutex<Vec<(u64, i128)>>,
    /// Whether jobs record their start.
    stamp: bool,
}

fn now_micros() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i128)
}

/// The no-op job: counts itself (and stamps its start in the latency phase).
async fn job(
    arg: u64,
    shared: Data<Arc<Shared>>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    if shared.stamp {
        let start = now_micros();
        shared.starts.lock().unwrap().push((arg, start));
    }
    let done = shared.done.fetch_add(1, Ordering::SeqCst) + 1;
    if shared.stop_at != 0 && done == shared.stop_at {
        worker.stop()?;
    }
    Ok(())
}

/// A fresh database file in a new temporary directory (removed when the process exits).
fn fresh_url() -> (tempdir::Dir, String) {
    let dir = tempdir::Dir::new();
    let url = format!("sqlite://{}/apalis.db?mode=rwc", dir.path);
    (dir, url)
}

/// Small self-removing temporary directory (keeps the dependencies to apalis' own).
mod tempdir {
    /// A directory removed on drop.
    pub struct Dir {
        /// Its path.
        pub path: String,
    }
    impl Dir {
        pub fn new() -> Dir {
            let path = std::env::temp_dir().join(format!(
                "apalis-bench-{}-{}",
                std::process::id(),
                super::now_micros()
            ));
            std::fs::create_dir_all(&path).expect("temporary directory");
            Dir {
                path: path.to_string_lossy().into_owned(),
            }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The pool (hooked) and a storage on `QUEUE` with its default configuration.
async fn open(
    url: &str,
) -> (
    SqlitePool,
    SqliteStorage<u64>,
    apalis_sqlite::callback::HookCallbackListener,
) {
    let (pool, listener) = SqliteStorage::connect_with_callback(url).expect("pool");
    SqliteStorage::setup(&pool).await.expect("setup");
    let storage = SqliteStorage::new(&pool).with_config(Config::default().queue(QUEUE));
    (pool, storage, listener)
}

/// Runs the worker (concurrency `pool`) on `storage` until it stops.
async fn work(
    storage: SqliteStorage<u64>,
    listener: apalis_sqlite::callback::HookCallbackListener,
    shared: Arc<Shared>,
    pool: usize,
) {
    let strategy = Strategy::new()
        .stream(listener.ready_chunks(Config::default().batch_size))
        .interval(Duration::from_millis(500));
    let worker = WorkerBuilder::new("bench-worker")
        .backend(storage.poll_with_strategy(strategy))
        .data(shared)
        .concurrency(pool)
        .build(job);
    worker.run().await.expect("worker");
}

/// The `synchronous` level of every idle connection of the pool, for the durability note.
async fn report_sync(pool: &SqlitePool) {
    let mut conns = Vec::new();
    let mut levels = Vec::new();
    // Idle ones only: an aborted worker may still hold one until it is dropped.
    while let Some(mut c) = pool.try_acquire() {
        let level = sqlx_scalar(&mut c, "PRAGMA synchronous").await;
        levels.push(match level {
            0 => "OFF",
            1 => "NORMAL",
            2 => "FULL",
            _ => "EXTRA",
        });
        conns.push(c);
    }
    let journal = match conns.first_mut() {
        Some(c) => sqlx_text(c, "PRAGMA journal_mode").await,
        None => "unknown".into(),
    };
    eprintln!("info journal_mode={journal} synchronous per connection={levels:?}");
}

async fn sqlx_scalar(c: &mut apalis_sqlite::SqliteConnection, sql: &'static str) -> i64 {
    use sqlx::Row;
    let row = sqlx::query(sql).fetch_one(c).await.expect("pragma");
    row.get::<i64, _>(0)
}

async fn sqlx_text(c: &mut apalis_sqlite::SqliteConnection, sql: &'static str) -> String {
    use sqlx::Row;
    let row = sqlx::query(sql).fetch_one(c).await.expect("pragma");
    row.get::<String, _>(0)
}

/// Phase 1: pre-fill `n` jobs, then time the worker from its start to its stop.
async fn drain(n: u64, pool_size: usize) {
    let (_dir, url) = fresh_url();
    let (pool, mut storage, listener) = open(&url).await;
    storage
        .push_stream(futures::stream::iter(0..n))
        .await
        .expect("pre-fill");
    let shared = Arc::new(Shared {
        stop_at: n,
        ..Shared::default()
    });
    let started = Instant::now();
    work(storage, listener, shared.clone(), pool_size).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(shared.done.load(Ordering::SeqCst), n, "every job ran once");
    report_sync(&pool).await;
    println!("drain {n} {secs:.6} {:.1}", n as f64 / secs);
}

/// Phase 2: `producers` push jobs for `secs` while the worker runs.
async fn sustained(secs: u64, producers: usize, pool_size: usize) {
    let (_dir, url) = fresh_url();
    let (pool, storage, listener) = open(&url).await;
    let shared = Arc::new(Shared::default());
    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let worker = tokio::spawn(work(storage.clone(), listener, shared.clone(), pool_size));
    let started = Instant::now();
    let pushers: Vec<_> = (0..producers)
        .map(|_| {
            let mut storage = storage.clone();
            let stop = stop.clone();
            let created = created.clone();
            let failed = failed.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    // A producer retries a failed push (counted): the job is created once.
                    match storage.push(n).await {
                        Ok(()) => {
                            created.fetch_add(1, Ordering::Relaxed);
                            n += 1;
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for p in pushers {
        p.await.expect("producer");
    }
    let window = started.elapsed().as_secs_f64();
    // Completed = acknowledged in the storage by the window's end, as ours counts.
    let completed = {
        let mut c = pool.acquire().await.expect("connection");
        sqlx_scalar(
            &mut c,
            "SELECT count(*) FROM Jobs WHERE done_at IS NOT NULL",
        )
        .await
    };
    let created = created.load(Ordering::Relaxed);
    worker.abort();
    eprintln!(
        "info failed pushes (retried) = {}",
        failed.load(Ordering::Relaxed)
    );
    report_sync(&pool).await;
    println!(
        "sustained {:.1} {:.1}",
        created as f64 / window,
        completed as f64 / window
    );
}

/// Phase 3: one job every `gap`, create-to-start latency percentiles.
async fn latency(n: u64, gap: Duration, pool_size: usize) {
    let (_dir, url) = fresh_url();
    let (pool, mut storage, listener) = open(&url).await;
    let shared = Arc::new(Shared {
        stamp: true,
        stop_at: n,
        ..Shared::default()
    });
    let worker = tokio::spawn(work(storage.clone(), listener, shared.clone(), pool_size));
    let mut sent = Vec::with_capacity(n as usize);
    for i in 0..n {
        let t0 = now_micros();
        while storage.push(i).await.is_err() {
            eprintln!("info a push failed (retried)");
        }
        sent.push(t0);
        tokio::time::sleep(gap).await;
    }
    worker.await.expect("worker");
    let starts = std::mem::take(&mut *shared.starts.lock().unwrap());
    assert_eq!(starts.len() as u64, n, "every job ran once");
    let mut lat: Vec<f64> = starts
        .into_iter()
        .map(|(i, start)| (start - sent[i as usize]) as f64 / 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    report_sync(&pool).await;
    println!(
        "latency {:.3} {:.3}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i} ({what}) missing or invalid"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("drain") => drain(arg(&args, 2, "N"), arg(&args, 3, "POOL")).await,
        Some("sustained") => {
            sustained(
                arg(&args, 2, "SECS"),
                arg(&args, 3, "PRODUCERS"),
                arg(&args, 4, "POOL"),
            )
            .await
        }
        Some("latency") => {
            latency(
                arg(&args, 2, "N"),
                Duration::from_millis(arg(&args, 3, "GAP_MS")),
                arg(&args, 4, "POOL"),
            )
            .await
        }
        _ => {
            eprintln!(
                "usage: drain N POOL | sustained SECS PRODUCERS POOL | latency N GAP_MS POOL"
            );
            std::process::exit(2);
        }
    }
}
