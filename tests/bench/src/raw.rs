//! The limit: the same lifecycle (insert, claim, complete) as a minimal single-threaded program
//! on the same schema and SQLite settings, without the daemon around it.

use crate::report::Report;
use rusqlite::{params, Connection};
use std::time::Instant;

const CLAIM_ONE: &str = "UPDATE s_tasks SET status = 15, attempts = attempts + 1, started_at = ?1,
       updated_at = ?1, lease_owner = 'raw', lease_token = 1, lease_expires_at = ?1 + 30000
 WHERE id IN (SELECT id FROM s_tasks WHERE status = 10 AND priority_rank = 1 AND run_at <= ?1
              ORDER BY run_at, id LIMIT ?2)
 RETURNING id";
const COMPLETE: &str = "UPDATE s_tasks SET status = 30, message = 'Completed', finished_at = ?2,
       updated_at = ?2, progress = 100, lease_owner = NULL, lease_expires_at = NULL
 WHERE id = ?1 AND lease_token = 1 AND status IN (15, 20)";
const INSERT: &str = "INSERT INTO s_tasks (identifier, action, status, message, meta, run_at,
       max_attempts, priority, priority_rank, created_at, updated_at)
 VALUES ('demo', 'noop', 10, 'Waiting to run', '{}', ?1, 3, 'normal', 1, ?1, ?1)";

fn open(sync: &str) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.db");
    crate::daemon::migrate(&path);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync};"
    ))
    .unwrap();
    (dir, conn)
}

fn now() -> i64 {
    stask_host::clock::now_ms()
}

/// One transaction per step: insert all, then claim one and complete it, n times.
fn per_step(n: usize, sync: &str) -> f64 {
    let (_dir, conn) = open(sync);
    let started = Instant::now();
    let mut insert = conn.prepare(INSERT).unwrap();
    for _ in 0..n {
        insert.execute([now()]).unwrap();
    }
    let mut claim = conn.prepare(CLAIM_ONE).unwrap();
    let mut complete = conn.prepare(COMPLETE).unwrap();
    for _ in 0..n {
        let id: i64 = claim.query_row(params![now(), 1], |r| r.get(0)).unwrap();
        complete.execute(params![id, now()]).unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Batched: inserts 100 per transaction, claims of up to 16, the 16 completions in one.
fn batched(n: usize, sync: &str) -> f64 {
    let (_dir, mut conn) = open(sync);
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx.prepare_cached(INSERT).unwrap();
            for _ in chunk {
                insert.execute([now()]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let mut done = 0;
    while done < n {
        let ids: Vec<i64> = {
            let tx = conn.transaction().unwrap();
            let ids = tx
                .prepare_cached(CLAIM_ONE)
                .unwrap()
                .query_map(params![now(), 16], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            tx.commit().unwrap();
            ids
        };
        let tx = conn.transaction().unwrap();
        {
            let mut complete = tx.prepare_cached(COMPLETE).unwrap();
            for id in &ids {
                complete.execute(params![id, now()]).unwrap();
            }
        }
        tx.commit().unwrap();
        done += ids.len();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Records the raw limits beside the pipeline's drain figure.
pub fn limits(report: &mut Report, n: usize) {
    eprintln!("raw SQLite lifecycle limits over {n} tasks");
    for sync in ["NORMAL", "FULL"] {
        let per: Vec<f64> = (0..report.runs)
            .map(|_| per_step(n.min(20_000), sync))
            .collect();
        report.add(
            "raw SQLite limit: 1 txn per step",
            "tasks/s",
            &format!(
                "{} tasks, our schema and claim SQL, synchronous={sync}",
                n.min(20_000)
            ),
            per,
        );
        let b: Vec<f64> = (0..report.runs).map(|_| batched(n, sync)).collect();
        report.add(
            "raw SQLite limit: batched",
            "tasks/s",
            &format!(
                "{n} tasks, inserts x100, claims <=16, grouped completions, synchronous={sync}"
            ),
            b,
        );
    }
}
