//! `AnalyticsStore` for SQLite: aggregates on the reader connections.

use super::SqliteStore;
use crate::analytics::{nearest_rank, per_minute, COMMON_ERRORS};
use crate::model::TaskStatus;
use crate::model::TaskStatus::{Cancelled, Completed, Failed, Pending, Preparing, Running};
use crate::rows::{error_count_from_row, window_from_row, worker_summary_from_row};
use crate::task_state::sql::{guard_sql, status_in, status_not};
use crate::task_state::{Event, FINISHED};
use crate::TablePrefix;
use crate::{AnalyticsStore, ErrorCount, StoreError, StoreResult, WindowSummary, WorkerSummary};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Completed or failed: the tasks whose durations the percentiles rank and the buckets count.
const ENDED: &[TaskStatus] = &[Completed, Failed];

/// Counts, duration and wait aggregates of a window in one pass. The wait predicate skips
/// pending tasks and stale starts (a retried task keeps the `started_at` of an earlier
/// attempt while its `run_at` moved on), so no wait is ever negative.
static WINDOW_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT COUNT(*),
       COALESCE(SUM({pending}), 0), COALESCE(SUM({preparing}), 0),
       COALESCE(SUM({running}), 0), COALESCE(SUM({completed}), 0),
       COALESCE(SUM({failed}), 0), COALESCE(SUM({cancelled}), 0),
       AVG(CASE WHEN {finished} THEN duration_ms END),
       MAX(CASE WHEN {finished} THEN duration_ms END),
       COALESCE(SUM({ended} AND duration_ms IS NOT NULL), 0),
       AVG(CASE WHEN {claimed} AND attempts > 0 AND started_at >= run_at
                THEN started_at - run_at END),
       COALESCE(SUM({claimed} AND attempts > 0 AND started_at >= run_at), 0),
       AVG(CASE WHEN {finished} THEN cpu_ms END),
       AVG(CASE WHEN {finished} THEN memory_bytes END),
       MAX(CASE WHEN {finished} THEN memory_bytes END)
  FROM s_tasks
 WHERE created_at >= ?1",
        pending = status_in("status", &[Pending]),
        preparing = status_in("status", &[Preparing]),
        running = status_in("status", &[Running]),
        completed = status_in("status", &[Completed]),
        failed = status_in("status", &[Failed]),
        cancelled = status_in("status", &[Cancelled]),
        finished = status_in("status", FINISHED),
        ended = status_in("status", ENDED),
        claimed = status_not("status", Pending),
    )
});

/// The `?2`-th smallest wait (0-based) under the same predicate as the average wait.
static WAIT_AT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT started_at - run_at AS wait FROM s_tasks
 WHERE created_at >= ?1 AND {claimed} AND attempts > 0 AND started_at >= run_at
 ORDER BY wait LIMIT 1 OFFSET ?2",
        claimed = status_not("status", Pending),
    )
});

/// The `?2`-th smallest duration (0-based) of the window's completed and failed tasks.
static DURATION_AT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT duration_ms FROM s_tasks
 WHERE created_at >= ?1 AND {ended} AND duration_ms IS NOT NULL
 ORDER BY duration_ms LIMIT 1 OFFSET ?2",
        ended = status_in("status", ENDED),
    )
});

/// Failure messages of failed tasks; a failure without `last_error` shows its status message.
static COMMON_ERRORS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT COALESCE(NULLIF(last_error, ''), message) AS m, COUNT(*) AS n FROM s_tasks
 WHERE created_at >= ?1 AND {failed}
 GROUP BY m ORDER BY n DESC, m LIMIT ?2",
        failed = status_in("status", &[Failed]),
    )
});

/// Per-identifier counts and aggregates.
static WORKERS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT identifier, COUNT(*),
       COALESCE(SUM({completed}), 0), COALESCE(SUM({failed}), 0),
       COALESCE(SUM({cancelled}), 0),
       AVG(CASE WHEN {finished} THEN duration_ms END),
       MAX(started_at),
       AVG(CASE WHEN {finished} THEN cpu_ms END),
       AVG(CASE WHEN {finished} THEN memory_bytes END),
       MAX(CASE WHEN {finished} THEN memory_bytes END)
  FROM s_tasks
 WHERE created_at >= ?1
 GROUP BY identifier ORDER BY identifier",
        completed = status_in("status", &[Completed]),
        failed = status_in("status", &[Failed]),
        cancelled = status_in("status", &[Cancelled]),
        finished = status_in("status", FINISHED),
    )
});

/// Per-identifier nearest-rank percentile (`?2` percent) of completed and failed durations,
/// ranked inside SQL so only one row per identifier comes back. The rank is
/// [`nearest_rank`]'s formula.
static WORKER_PERCENTILE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT identifier, duration_ms FROM (
  SELECT identifier, duration_ms,
         ROW_NUMBER() OVER (PARTITION BY identifier ORDER BY duration_ms) AS rn,
         COUNT(*) OVER (PARTITION BY identifier) AS n
    FROM s_tasks
   WHERE created_at >= ?1 AND {ended} AND duration_ms IS NOT NULL)
 WHERE rn = MAX(1, MIN(n, (?2 * n + 99) / 100))",
        ended = status_in("status", ENDED),
    )
});

const WORKER_VERSIONS_SQL: &str = "
SELECT DISTINCT identifier, worker_version FROM s_tasks
 WHERE created_at >= ?1 AND worker_version IS NOT NULL
 ORDER BY identifier, worker_version";

/// Each priority is its own range of the partial claim index (as in the claim), so finding
/// the oldest due task reads three index entries instead of every pending row.
static OLDEST_DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT id, identifier, run_at FROM (
  SELECT * FROM (SELECT id, identifier, run_at FROM s_tasks
                  WHERE {due} AND priority_rank = 2 AND run_at <= ?1
                  ORDER BY run_at, id LIMIT 1)
  UNION ALL
  SELECT * FROM (SELECT id, identifier, run_at FROM s_tasks
                  WHERE {due} AND priority_rank = 1 AND run_at <= ?1
                  ORDER BY run_at, id LIMIT 1)
  UNION ALL
  SELECT * FROM (SELECT id, identifier, run_at FROM s_tasks
                  WHERE {due} AND priority_rank = 0 AND run_at <= ?1
                  ORDER BY run_at, id LIMIT 1))
 ORDER BY run_at, id LIMIT 1",
        due = guard_sql(Event::Claim),
    )
});

/// Same predicate as lease recovery, so it reads the `s_tasks_lease` index.
static STUCK_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT id, identifier, lease_expires_at FROM s_tasks
 WHERE {leased} AND lease_expires_at < ?1
 ORDER BY lease_expires_at, id",
        leased = guard_sql(Event::Recover),
    )
});

static PENDING_COUNTS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT identifier, COUNT(*) FROM s_tasks WHERE {pending}
 GROUP BY identifier ORDER BY identifier",
        pending = status_in("status", &[Pending]),
    )
});

/// Completed and failed tasks per time bucket.
static FINISHED_PER_BUCKET_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT (finished_at - ?1) / ?3 AS bucket,
                        SUM({completed}), SUM({failed})
                   FROM s_tasks
                  WHERE finished_at IS NOT NULL AND finished_at >= ?1 AND finished_at < ?2
                    AND {ended}
                  GROUP BY bucket ORDER BY bucket",
        completed = status_in("status", &[Completed]),
        failed = status_in("status", &[Failed]),
        ended = status_in("status", ENDED),
    )
});

/// The window's counts and aggregates, plus how many durations and waits the percentiles rank.
fn window_aggregates(
    conn: &Connection,
    p: &TablePrefix,
    since: i64,
    now: i64,
) -> StoreResult<(WindowSummary, i64, i64)> {
    let mut stmt = conn.prepare_cached(&p.statement(&WINDOW_SQL))?;
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
    p: &TablePrefix,
    sql: &'static str,
    since: i64,
    ranked: i64,
    percent: i64,
) -> StoreResult<Option<i64>> {
    let Some(rank) = nearest_rank(ranked, percent) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&p.statement(sql))?;
    Ok(stmt
        .query_row(params![since, rank - 1], |r| r.get(0))
        .optional()?)
}

fn common_errors(conn: &Connection, p: &TablePrefix, since: i64) -> StoreResult<Vec<ErrorCount>> {
    let mut stmt = conn.prepare_cached(&p.statement(&COMMON_ERRORS_SQL))?;
    let rows = stmt
        .query_and_then(params![since, COMMON_ERRORS as i64], |r| {
            error_count_from_row(r)
        })?
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(rows)
}

fn worker_rows(conn: &Connection, p: &TablePrefix, since: i64) -> StoreResult<Vec<WorkerSummary>> {
    let mut stmt = conn.prepare_cached(&p.statement(&WORKERS_SQL))?;
    let rows = stmt
        .query_and_then([since], |r| worker_summary_from_row(r))?
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(rows)
}

/// The `(identifier, value)` rows of `sql`, grouped by identifier in row order.
fn per_identifier<T: rusqlite::types::FromSql>(
    conn: &Connection,
    p: &TablePrefix,
    sql: &'static str,
    args: impl rusqlite::Params,
) -> StoreResult<BTreeMap<String, Vec<T>>> {
    let mut stmt = conn.prepare_cached(&p.statement(sql))?;
    let mut grouped: BTreeMap<String, Vec<T>> = BTreeMap::new();
    let rows = stmt.query_map(args, |r| Ok((r.get::<_, String>(0)?, r.get::<_, T>(1)?)))?;
    for row in rows {
        let (identifier, value) = row?;
        grouped.entry(identifier).or_default().push(value);
    }
    Ok(grouped)
}

fn triples(
    conn: &Connection,
    p: &TablePrefix,
    sql: &'static str,
    now: i64,
) -> StoreResult<Vec<(i64, String, i64)>> {
    let mut stmt = conn.prepare_cached(&p.statement(sql))?;
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
            let (mut summary, durations, waits) = window_aggregates(&tx, &self.prefix, since, now)?;
            summary.p50_duration_ms = percentile(
                &tx,
                &self.prefix,
                DURATION_AT_SQL.as_str(),
                since,
                durations,
                50,
            )?;
            summary.p95_duration_ms = percentile(
                &tx,
                &self.prefix,
                DURATION_AT_SQL.as_str(),
                since,
                durations,
                95,
            )?;
            summary.p50_wait_ms =
                percentile(&tx, &self.prefix, WAIT_AT_SQL.as_str(), since, waits, 50)?;
            summary.p95_wait_ms =
                percentile(&tx, &self.prefix, WAIT_AT_SQL.as_str(), since, waits, 95)?;
            summary.throughput_per_minute = per_minute(summary.finished(), since, now);
            summary.common_errors = common_errors(&tx, &self.prefix, since)?;
            tx.finish()?;
            Ok(summary)
        })
    }

    fn worker_summaries(&self, since: i64) -> StoreResult<Vec<WorkerSummary>> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction()?;
            let mut workers = worker_rows(&tx, &self.prefix, since)?;
            let mut p95 = per_identifier::<i64>(
                &tx,
                &self.prefix,
                WORKER_PERCENTILE_SQL.as_str(),
                params![since, 95],
            )?;
            let mut versions =
                per_identifier::<String>(&tx, &self.prefix, WORKER_VERSIONS_SQL, [since])?;
            tx.finish()?;
            for w in &mut workers {
                w.p95_duration_ms = p95.remove(&w.identifier).and_then(|v| v.first().copied());
                w.versions = versions.remove(&w.identifier).unwrap_or_default();
            }
            Ok(workers)
        })
    }

    fn oldest_due_pending(&self, now: i64) -> StoreResult<Option<(i64, String, i64)>> {
        self.read(|conn| {
            Ok(triples(conn, &self.prefix, OLDEST_DUE_SQL.as_str(), now)?
                .into_iter()
                .next())
        })
    }

    fn stuck_tasks(&self, now: i64) -> StoreResult<Vec<(i64, String, i64)>> {
        self.read(|conn| triples(conn, &self.prefix, STUCK_SQL.as_str(), now))
    }

    fn pending_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&self.sql(&PENDING_COUNTS_SQL))?;
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
            let mut stmt = conn.prepare_cached(&self.sql(&FINISHED_PER_BUCKET_SQL))?;
            let rows = stmt
                .query_map(rusqlite::params![since, until, bucket_ms.max(1)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
