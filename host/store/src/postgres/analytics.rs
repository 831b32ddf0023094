//! `AnalyticsStore` for PostgreSQL: the SQLite driver's aggregates in PostgreSQL's dialect
//! (`COUNT(*) FILTER`, `float8` averages, byte-order text sorting), each summary read in one
//! snapshot (`REPEATABLE READ`).

use super::{PgStore, Statements};
use crate::analytics::{nearest_rank, per_minute, COMMON_ERRORS};
use crate::model::TaskStatus;
use crate::model::TaskStatus::{Cancelled, Completed, Failed, Pending, Preparing, Running};
use crate::rows::{error_count_from_row, window_from_row, worker_summary_from_row};
use crate::task_state::sql::{guard_sql, status_in, status_not};
use crate::task_state::{Event, FINISHED};
use crate::{AnalyticsStore, StoreResult, WindowSummary, WorkerSummary};
use postgres::{IsolationLevel, Transaction};
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
       COUNT(*) FILTER (WHERE {pending}), COUNT(*) FILTER (WHERE {preparing}),
       COUNT(*) FILTER (WHERE {running}), COUNT(*) FILTER (WHERE {completed}),
       COUNT(*) FILTER (WHERE {failed}), COUNT(*) FILTER (WHERE {cancelled}),
       AVG(duration_ms) FILTER (WHERE {finished})::float8,
       MAX(duration_ms) FILTER (WHERE {finished}),
       COUNT(*) FILTER (WHERE {ended} AND duration_ms IS NOT NULL),
       AVG(started_at - run_at) FILTER (WHERE {claimed} AND attempts > 0
                                         AND started_at >= run_at)::float8,
       COUNT(*) FILTER (WHERE {claimed} AND attempts > 0 AND started_at >= run_at),
       AVG(cpu_ms) FILTER (WHERE {finished})::float8,
       AVG(memory_bytes) FILTER (WHERE {finished})::float8,
       MAX(memory_bytes) FILTER (WHERE {finished})
  FROM s_tasks
 WHERE created_at >= $1",
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

/// The `$2`-th smallest wait (0-based) under the same predicate as the average wait.
static WAIT_AT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT started_at - run_at AS wait FROM s_tasks
 WHERE created_at >= $1 AND {claimed} AND attempts > 0 AND started_at >= run_at
 ORDER BY wait LIMIT 1 OFFSET $2",
        claimed = status_not("status", Pending),
    )
});

/// The `$2`-th smallest duration (0-based) of the window's completed and failed tasks.
static DURATION_AT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT duration_ms FROM s_tasks
 WHERE created_at >= $1 AND {ended} AND duration_ms IS NOT NULL
 ORDER BY duration_ms LIMIT 1 OFFSET $2",
        ended = status_in("status", ENDED),
    )
});

/// Failure messages of failed tasks; a failure without `last_error` shows its status message.
static COMMON_ERRORS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT m, n FROM (
  SELECT COALESCE(NULLIF(last_error, ''), message) AS m, COUNT(*) AS n FROM s_tasks
   WHERE created_at >= $1 AND {failed}
   GROUP BY m) AS errors
 ORDER BY n DESC, m COLLATE \"C\" LIMIT $2",
        failed = status_in("status", &[Failed]),
    )
});

/// Per-identifier counts and aggregates.
static WORKERS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT identifier, COUNT(*),
       COUNT(*) FILTER (WHERE {completed}), COUNT(*) FILTER (WHERE {failed}),
       COUNT(*) FILTER (WHERE {cancelled}),
       AVG(duration_ms) FILTER (WHERE {finished})::float8,
       MAX(started_at),
       AVG(cpu_ms) FILTER (WHERE {finished})::float8,
       AVG(memory_bytes) FILTER (WHERE {finished})::float8,
       MAX(memory_bytes) FILTER (WHERE {finished})
  FROM s_tasks
 WHERE created_at >= $1
 GROUP BY identifier ORDER BY identifier COLLATE \"C\"",
        completed = status_in("status", &[Completed]),
        failed = status_in("status", &[Failed]),
        cancelled = status_in("status", &[Cancelled]),
        finished = status_in("status", FINISHED),
    )
});

/// Per-identifier nearest-rank percentile (`$2` percent) of completed and failed durations,
/// ranked inside SQL ([`nearest_rank`]'s formula).
static WORKER_PERCENTILE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT identifier, duration_ms FROM (
  SELECT identifier, duration_ms,
         ROW_NUMBER() OVER (PARTITION BY identifier ORDER BY duration_ms) AS rn,
         COUNT(*) OVER (PARTITION BY identifier) AS n
    FROM s_tasks
   WHERE created_at >= $1 AND {ended} AND duration_ms IS NOT NULL) AS ranked
 WHERE rn = GREATEST(1, LEAST(n, ($2::bigint * n + 99) / 100))",
        ended = status_in("status", ENDED),
    )
});

const WORKER_VERSIONS_SQL: &str = "
SELECT DISTINCT identifier COLLATE \"C\", worker_version COLLATE \"C\" FROM s_tasks
 WHERE created_at >= $1 AND worker_version IS NOT NULL
 ORDER BY 1, 2";

/// Each priority is its own range of the partial claim index (as in the claim).
static OLDEST_DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT id, identifier, run_at FROM (
  (SELECT id, identifier, run_at FROM s_tasks
    WHERE {due} AND priority_rank = 2 AND run_at <= $1 ORDER BY run_at, id LIMIT 1)
  UNION ALL
  (SELECT id, identifier, run_at FROM s_tasks
    WHERE {due} AND priority_rank = 1 AND run_at <= $1 ORDER BY run_at, id LIMIT 1)
  UNION ALL
  (SELECT id, identifier, run_at FROM s_tasks
    WHERE {due} AND priority_rank = 0 AND run_at <= $1 ORDER BY run_at, id LIMIT 1)
) AS due
 ORDER BY run_at, id LIMIT 1",
        due = guard_sql(Event::Claim),
    )
});

/// Same predicate as lease recovery, so it reads the `s_tasks_lease` index.
static STUCK_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT id, identifier, lease_expires_at FROM s_tasks
 WHERE {leased} AND lease_expires_at < $1
 ORDER BY lease_expires_at, id",
        leased = guard_sql(Event::Recover),
    )
});

static PENDING_COUNTS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT identifier, COUNT(*) FROM s_tasks WHERE {pending}
 GROUP BY identifier ORDER BY identifier COLLATE \"C\"",
        pending = status_in("status", &[Pending]),
    )
});

/// The window's counts and aggregates, plus how many durations and waits the percentiles rank.
fn window_aggregates(
    tx: &mut Transaction<'_>,
    st: &Statements,
    since: i64,
    now: i64,
) -> StoreResult<(WindowSummary, i64, i64)> {
    window_from_row(&tx.query_one(&*st.sql(&WINDOW_SQL), &[&since])?, since, now)
}

/// The nearest-rank `percent`th value among the `ranked` values `sql` orders (one of
/// [`DURATION_AT_SQL`], [`WAIT_AT_SQL`]).
fn percentile(
    tx: &mut Transaction<'_>,
    st: &Statements,
    sql: &'static str,
    since: i64,
    ranked: i64,
    percent: i64,
) -> StoreResult<Option<i64>> {
    let Some(rank) = nearest_rank(ranked, percent) else {
        return Ok(None);
    };
    Ok(tx
        .query_opt(&*st.sql(sql), &[&since, &(rank - 1)])?
        .map(|r| r.try_get(0))
        .transpose()?)
}

/// The `(identifier, value)` rows of a query, grouped by identifier in row order.
fn per_identifier<T: for<'a> postgres::types::FromSql<'a>>(
    rows: Vec<postgres::Row>,
) -> StoreResult<BTreeMap<String, Vec<T>>> {
    let mut grouped: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for row in rows {
        grouped
            .entry(row.try_get(0)?)
            .or_default()
            .push(row.try_get(1)?);
    }
    Ok(grouped)
}

fn triples(rows: Vec<postgres::Row>) -> StoreResult<Vec<(i64, String, i64)>> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Completed and failed tasks per time bucket.
static FINISHED_PER_BUCKET_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT (finished_at - $1) / $3 AS bucket,
                        COUNT(*) FILTER (WHERE {completed}), COUNT(*) FILTER (WHERE {failed})
                   FROM s_tasks
                  WHERE finished_at IS NOT NULL AND finished_at >= $1 AND finished_at < $2
                    AND {ended}
                  GROUP BY bucket ORDER BY bucket",
        completed = status_in("status", &[Completed]),
        failed = status_in("status", &[Failed]),
        ended = status_in("status", ENDED),
    )
});

impl PgStore {
    /// Runs `f` in a read-only snapshot: every figure of one answer describes the same state.
    fn snapshot<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>, &Statements) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.run(move |conn| {
            let (client, st) = conn.parts();
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let value = f(&mut tx, st)?;
            tx.commit()?;
            Ok(value)
        })
    }
}

impl AnalyticsStore for PgStore {
    fn window_summary(&self, since: i64, now: i64) -> StoreResult<WindowSummary> {
        self.snapshot(move |tx, st| {
            let (mut summary, durations, waits) = window_aggregates(tx, st, since, now)?;
            summary.p50_duration_ms =
                percentile(tx, st, DURATION_AT_SQL.as_str(), since, durations, 50)?;
            summary.p95_duration_ms =
                percentile(tx, st, DURATION_AT_SQL.as_str(), since, durations, 95)?;
            summary.p50_wait_ms = percentile(tx, st, WAIT_AT_SQL.as_str(), since, waits, 50)?;
            summary.p95_wait_ms = percentile(tx, st, WAIT_AT_SQL.as_str(), since, waits, 95)?;
            summary.throughput_per_minute = per_minute(summary.finished(), since, now);
            summary.common_errors = tx
                .query(
                    &*st.sql(&COMMON_ERRORS_SQL),
                    &[&since, &(COMMON_ERRORS as i64)],
                )?
                .iter()
                .map(error_count_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(summary)
        })
    }

    fn worker_summaries(&self, since: i64) -> StoreResult<Vec<WorkerSummary>> {
        self.snapshot(move |tx, st| {
            let mut workers = tx
                .query(&*st.sql(&WORKERS_SQL), &[&since])?
                .iter()
                .map(worker_summary_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            let mut p95 = per_identifier::<i64>(
                tx.query(&*st.sql(&WORKER_PERCENTILE_SQL), &[&since, &95i64])?,
            )?;
            let mut versions =
                per_identifier::<String>(tx.query(&*st.sql(WORKER_VERSIONS_SQL), &[&since])?)?;
            for w in &mut workers {
                w.p95_duration_ms = p95.remove(&w.identifier).and_then(|v| v.first().copied());
                w.versions = versions.remove(&w.identifier).unwrap_or_default();
            }
            Ok(workers)
        })
    }

    fn oldest_due_pending(&self, now: i64) -> StoreResult<Option<(i64, String, i64)>> {
        self.snapshot(move |tx, st| {
            Ok(triples(tx.query(&*st.sql(&OLDEST_DUE_SQL), &[&now])?)?
                .into_iter()
                .next())
        })
    }

    fn stuck_tasks(&self, now: i64) -> StoreResult<Vec<(i64, String, i64)>> {
        self.snapshot(move |tx, st| triples(tx.query(&*st.sql(&STUCK_SQL), &[&now])?))
    }

    fn pending_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        self.snapshot(|tx, st| {
            tx.query(&*st.sql(&PENDING_COUNTS_SQL), &[])?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
    }

    fn finished_per_bucket(
        &self,
        since: i64,
        until: i64,
        bucket_ms: i64,
    ) -> StoreResult<Vec<(i64, i64, i64)>> {
        let bucket_ms = bucket_ms.max(1);
        self.snapshot(move |tx, st| {
            tx.query(
                &*st.sql(&FINISHED_PER_BUCKET_SQL),
                &[&since, &until, &bucket_ms],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
        })
    }
}
