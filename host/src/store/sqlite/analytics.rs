//! `AnalyticsStore` for SQLite: aggregates on the reader connections.

use super::SqliteStore;
use crate::store::analytics::{nearest_rank, per_minute, COMMON_ERRORS};
use crate::store::rows::{error_count_from_row, window_from_row, worker_summary_from_row};
use crate::store::{
    AnalyticsStore, ErrorCount, StoreError, StoreResult, WindowSummary, WorkerSummary,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;

/// Counts, duration and wait aggregates of a window in one pass. The wait predicate skips
/// pending tasks and stale starts (a retried task keeps the `started_at` of an earlier
/// attempt while its `run_at` moved on), so no wait is ever negative.
const WINDOW_SQL: &str = "
SELECT COUNT(*),
       COALESCE(SUM(status = 10), 0), COALESCE(SUM(status = 15), 0),
       COALESCE(SUM(status = 20), 0), COALESCE(SUM(status = 30), 0),
       COALESCE(SUM(status = 40), 0), COALESCE(SUM(status = 50), 0),
       AVG(CASE WHEN status IN (30, 40, 50) THEN duration_ms END),
       MAX(CASE WHEN status IN (30, 40, 50) THEN duration_ms END),
       COALESCE(SUM(status IN (30, 40) AND duration_ms IS NOT NULL), 0),
       AVG(CASE WHEN status <> 10 AND attempts > 0 AND started_at >= run_at
                THEN started_at - run_at END),
       COALESCE(SUM(status <> 10 AND attempts > 0 AND started_at >= run_at), 0),
       AVG(CASE WHEN status IN (30, 40, 50) THEN cpu_ms END),
       AVG(CASE WHEN status IN (30, 40, 50) THEN memory_bytes END),
       MAX(CASE WHEN status IN (30, 40, 50) THEN memory_bytes END)
  FROM s_tasks
 WHERE created_at >= ?1";

/// The `?2`-th smallest wait (0-based) under the same predicate as the average wait.
const WAIT_AT_SQL: &str = "
SELECT started_at - run_at AS wait FROM s_tasks
 WHERE created_at >= ?1 AND status <> 10 AND attempts > 0 AND started_at >= run_at
 ORDER BY wait LIMIT 1 OFFSET ?2";

/// The `?2`-th smallest duration (0-based) of the window's completed and failed tasks.
const DURATION_AT_SQL: &str = "
SELECT duration_ms FROM s_tasks
 WHERE created_at >= ?1 AND status IN (30, 40) AND duration_ms IS NOT NULL
 ORDER BY duration_ms LIMIT 1 OFFSET ?2";

/// Failure messages of failed tasks; a failure without `last_error` shows its status message.
const COMMON_ERRORS_SQL: &str = "
SELECT COALESCE(NULLIF(last_error, ''), message) AS m, COUNT(*) AS n FROM s_tasks
 WHERE created_at >= ?1 AND status = 40
 GROUP BY m ORDER BY n DESC, m LIMIT ?2";

/// Per-identifier counts and aggregates.
const WORKERS_SQL: &str = "
SELECT identifier, COUNT(*),
       COALESCE(SUM(status = 30), 0), COALESCE(SUM(status = 40), 0),
       COALESCE(SUM(status = 50), 0),
       AVG(CASE WHEN status IN (30, 40, 50) THEN duration_ms END),
       MAX(started_at),
       AVG(CASE WHEN status IN (30, 40, 50) THEN cpu_ms END),
       AVG(CASE WHEN status IN (30, 40, 50) THEN memory_bytes END),
       MAX(CASE WHEN status IN (30, 40, 50) THEN memory_bytes END)
  FROM s_tasks
 WHERE created_at >= ?1
 GROUP BY identifier ORDER BY identifier";

/// Per-identifier nearest-rank percentile (`?2` percent) of completed and failed durations,
/// ranked inside SQL so only one row per identifier comes back. The rank is
/// [`nearest_rank`]'s formula.
const WORKER_PERCENTILE_SQL: &str = "
SELECT identifier, duration_ms FROM (
  SELECT identifier, duration_ms,
         ROW_NUMBER() OVER (PARTITION BY identifier ORDER BY duration_ms) AS rn,
         COUNT(*) OVER (PARTITION BY identifier) AS n
    FROM s_tasks
   WHERE created_at >= ?1 AND status IN (30, 40) AND duration_ms IS NOT NULL)
 WHERE rn = MAX(1, MIN(n, (?2 * n + 99) / 100))";

const WORKER_VERSIONS_SQL: &str = "
SELECT DISTINCT identifier, worker_version FROM s_tasks
 WHERE created_at >= ?1 AND worker_version IS NOT NULL
 ORDER BY identifier, worker_version";

/// Each priority is its own range of the partial claim index (as in the claim), so finding
/// the oldest due task reads three index entries instead of every pending row.
const OLDEST_DUE_SQL: &str = "
SELECT id, identifier, run_at FROM (
  SELECT * FROM (SELECT id, identifier, run_at FROM s_tasks
                  WHERE status = 10 AND priority_rank = 2 AND run_at <= ?1
                  ORDER BY run_at, id LIMIT 1)
  UNION ALL
  SELECT * FROM (SELECT id, identifier, run_at FROM s_tasks
                  WHERE status = 10 AND priority_rank = 1 AND run_at <= ?1
                  ORDER BY run_at, id LIMIT 1)
  UNION ALL
  SELECT * FROM (SELECT id, identifier, run_at FROM s_tasks
                  WHERE status = 10 AND priority_rank = 0 AND run_at <= ?1
                  ORDER BY run_at, id LIMIT 1))
 ORDER BY run_at, id LIMIT 1";

/// Same predicate as lease recovery, so it reads the `s_tasks_lease` index.
const STUCK_SQL: &str = "
SELECT id, identifier, lease_expires_at FROM s_tasks
 WHERE status IN (15, 20) AND lease_expires_at < ?1
 ORDER BY lease_expires_at, id";

const PENDING_COUNTS_SQL: &str = "
SELECT identifier, COUNT(*) FROM s_tasks WHERE status = 10
 GROUP BY identifier ORDER BY identifier";

/// The window's counts and aggregates, plus how many durations and waits the percentiles rank.
fn window_aggregates(
    conn: &Connection,
    since: i64,
    now: i64,
) -> StoreResult<(WindowSummary, i64, i64)> {
    let mut stmt = conn.prepare_cached(WINDOW_SQL)?;
    let mut rows = stmt.query([since])?;
    match rows.next()? {
        Some(row) => window_from_row(row, since, now),
        None => Err(StoreError::internal("the window query returned no row")),
    }
}

/// The nearest-rank `percent`th value among the `ranked` values `sql` orders (one of
/// [`DURATION_AT_SQL`], [`WAIT_AT_SQL`]).
fn percentile(
    conn: &Connection,
    sql: &str,
    since: i64,
    ranked: i64,
    percent: i64,
) -> StoreResult<Option<i64>> {
    let Some(rank) = nearest_rank(ranked, percent) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(sql)?;
    Ok(stmt
        .query_row(params![since, rank - 1], |r| r.get(0))
        .optional()?)
}

fn common_errors(conn: &Connection, since: i64) -> StoreResult<Vec<ErrorCount>> {
    let mut stmt = conn.prepare_cached(COMMON_ERRORS_SQL)?;
    let rows = stmt
        .query_and_then(params![since, COMMON_ERRORS as i64], |r| {
            error_count_from_row(r)
        })?
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(rows)
}

fn worker_rows(conn: &Connection, since: i64) -> StoreResult<Vec<WorkerSummary>> {
    let mut stmt = conn.prepare_cached(WORKERS_SQL)?;
    let rows = stmt
        .query_and_then([since], |r| worker_summary_from_row(r))?
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(rows)
}

/// The `(identifier, value)` rows of `sql`, grouped by identifier in row order.
fn per_identifier<T: rusqlite::types::FromSql>(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> StoreResult<BTreeMap<String, Vec<T>>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut grouped: BTreeMap<String, Vec<T>> = BTreeMap::new();
    let rows = stmt.query_map(args, |r| Ok((r.get::<_, String>(0)?, r.get::<_, T>(1)?)))?;
    for row in rows {
        let (identifier, value) = row?;
        grouped.entry(identifier).or_default().push(value);
    }
    Ok(grouped)
}

fn triples(conn: &Connection, sql: &str, now: i64) -> StoreResult<Vec<(i64, String, i64)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

impl AnalyticsStore for SqliteStore {
    fn window_summary(&self, since: i64, now: i64) -> StoreResult<WindowSummary> {
        self.read(|conn| {
            // One read transaction: every figure describes the same snapshot.
            let tx = conn.unchecked_transaction()?;
            let (mut summary, durations, waits) = window_aggregates(&tx, since, now)?;
            summary.p50_duration_ms = percentile(&tx, DURATION_AT_SQL, since, durations, 50)?;
            summary.p95_duration_ms = percentile(&tx, DURATION_AT_SQL, since, durations, 95)?;
            summary.p50_wait_ms = percentile(&tx, WAIT_AT_SQL, since, waits, 50)?;
            summary.p95_wait_ms = percentile(&tx, WAIT_AT_SQL, since, waits, 95)?;
            summary.throughput_per_minute = per_minute(summary.finished(), since, now);
            summary.common_errors = common_errors(&tx, since)?;
            tx.finish()?;
            Ok(summary)
        })
    }

    fn worker_summaries(&self, since: i64) -> StoreResult<Vec<WorkerSummary>> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let mut workers = worker_rows(&tx, since)?;
            let mut p95 = per_identifier::<i64>(&tx, WORKER_PERCENTILE_SQL, params![since, 95])?;
            let mut versions = per_identifier::<String>(&tx, WORKER_VERSIONS_SQL, [since])?;
            tx.finish()?;
            for w in &mut workers {
                w.p95_duration_ms = p95.remove(&w.identifier).and_then(|v| v.first().copied());
                w.versions = versions.remove(&w.identifier).unwrap_or_default();
            }
            Ok(workers)
        })
    }

    fn oldest_due_pending(&self, now: i64) -> StoreResult<Option<(i64, String, i64)>> {
        self.read(|conn| Ok(triples(conn, OLDEST_DUE_SQL, now)?.into_iter().next()))
    }

    fn stuck_tasks(&self, now: i64) -> StoreResult<Vec<(i64, String, i64)>> {
        self.read(|conn| triples(conn, STUCK_SQL, now))
    }

    fn pending_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(PENDING_COUNTS_SQL)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    fn finished_per_bucket(
        &self,
        since: i64,
        until: i64,
        bucket_ms: i64,
    ) -> StoreResult<Vec<(i64, i64, i64)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT (finished_at - ?1) / ?3 AS bucket,
                        SUM(status = 30), SUM(status = 40)
                   FROM s_tasks
                  WHERE finished_at IS NOT NULL AND finished_at >= ?1 AND finished_at < ?2
                    AND status IN (30, 40)
                  GROUP BY bucket ORDER BY bucket",
            )?;
            let rows = stmt
                .query_map(rusqlite::params![since, until, bucket_ms.max(1)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
