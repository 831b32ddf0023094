//! `AnalyticsStore` for MySQL: the PostgreSQL driver's aggregates in MySQL's dialect
//! (`COUNT(CASE WHEN ... THEN 1 END)` for `FILTER`, `DOUBLE` averages, binary collation for
//! byte-order sorting), each summary read in one consistent snapshot (`REPEATABLE READ`).

use super::{clamp_ms, from_ms, params, to_ms, MysqlStore};
use crate::analytics::{nearest_rank, per_minute, COMMON_ERRORS};
use crate::model::TaskStatus;
use crate::model::TaskStatus::{Cancelled, Completed, Failed, Pending, Preparing, Running};
use crate::rows::{error_count_from_row, window_from_row, worker_summary_from_row, RowRead};
use crate::task_state::sql::{guard_sql, status_in, status_not};
use crate::task_state::{Event, FINISHED};
use crate::{AnalyticsStore, StoreResult, WindowSummary, WorkerSummary};
use mysql::prelude::Queryable;
use mysql::{AccessMode, IsolationLevel, Transaction, TxOpts};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Completed or failed: the tasks whose durations the percentiles rank and the buckets count.
const ENDED: &[TaskStatus] = &[Completed, Failed];

/// `COUNT(*) FILTER (WHERE cond)`.
fn count_if(cond: &str) -> String {
    format!("COUNT(CASE WHEN {cond} THEN 1 END)")
}

/// `AVG(col) FILTER (WHERE cond)::float8`.
fn avg_if(col: &str, cond: &str) -> String {
    format!("CAST(AVG(CASE WHEN {cond} THEN {col} END) AS DOUBLE)")
}

/// `MAX(col) FILTER (WHERE cond)`.
fn max_if(col: &str, cond: &str) -> String {
    format!("MAX(CASE WHEN {cond} THEN {col} END)")
}

/// The window's start, compared with the `DATETIME(3)` creation time.
static SINCE: LazyLock<String> = LazyLock::new(|| format!("created_at >= {}", from_ms("?")));

/// Counts, duration and wait aggregates of a window in one pass (see the PostgreSQL driver).
static WINDOW_SQL: LazyLock<String> = LazyLock::new(|| {
    let finished = status_in("status", FINISHED);
    let waited = format!(
        "{} AND attempts > 0 AND started_at >= run_at",
        status_not("status", Pending)
    );
    format!(
        "SELECT COUNT(*), {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}
           FROM s_tasks WHERE {since}",
        count_if(&status_in("status", &[Pending])),
        count_if(&status_in("status", &[Preparing])),
        count_if(&status_in("status", &[Running])),
        count_if(&status_in("status", &[Completed])),
        count_if(&status_in("status", &[Failed])),
        count_if(&status_in("status", &[Cancelled])),
        avg_if("duration_ms", &finished),
        max_if("duration_ms", &finished),
        count_if(&format!(
            "{} AND duration_ms IS NOT NULL",
            status_in("status", ENDED)
        )),
        avg_if("started_at - run_at", &waited),
        count_if(&waited),
        avg_if("cpu_ms", &finished),
        avg_if("memory_bytes", &finished),
        max_if("memory_bytes", &finished),
        since = *SINCE,
    )
});

/// The `?`-th smallest wait (0-based) under the same predicate as the average wait.
static WAIT_AT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT started_at - run_at AS wait FROM s_tasks
          WHERE {since} AND {claimed} AND attempts > 0 AND started_at >= run_at
          ORDER BY wait LIMIT 1 OFFSET ?",
        since = *SINCE,
        claimed = status_not("status", Pending),
    )
});

/// The `?`-th smallest duration (0-based) of the window's completed and failed tasks.
static DURATION_AT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT duration_ms FROM s_tasks
          WHERE {since} AND {ended} AND duration_ms IS NOT NULL
          ORDER BY duration_ms LIMIT 1 OFFSET ?",
        since = *SINCE,
        ended = status_in("status", ENDED),
    )
});

/// Failure messages of failed tasks; a failure without `last_error` shows its status message.
static COMMON_ERRORS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT m, n FROM (
           SELECT COALESCE(NULLIF(last_error, ''), message) COLLATE utf8mb4_bin AS m,
                  COUNT(*) AS n
             FROM s_tasks WHERE {since} AND {failed} GROUP BY m) AS errors
          ORDER BY n DESC, m LIMIT ?",
        since = *SINCE,
        failed = status_in("status", &[Failed]),
    )
});

/// Per-identifier counts and aggregates.
static WORKERS_SQL: LazyLock<String> = LazyLock::new(|| {
    let finished = status_in("status", FINISHED);
    format!(
        "SELECT identifier COLLATE utf8mb4_bin AS i, COUNT(*), {}, {}, {}, {}, MAX(started_at),
                {}, {}, {}
           FROM s_tasks WHERE {since}
          GROUP BY i ORDER BY i",
        count_if(&status_in("status", &[Completed])),
        count_if(&status_in("status", &[Failed])),
        count_if(&status_in("status", &[Cancelled])),
        avg_if("duration_ms", &finished),
        avg_if("cpu_ms", &finished),
        avg_if("memory_bytes", &finished),
        max_if("memory_bytes", &finished),
        since = *SINCE,
    )
});

/// Per-identifier nearest-rank percentile (`?` percent) of completed and failed durations.
static WORKER_PERCENTILE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT identifier, duration_ms FROM (
           SELECT identifier, duration_ms,
                  ROW_NUMBER() OVER (PARTITION BY identifier ORDER BY duration_ms) AS rn,
                  COUNT(*) OVER (PARTITION BY identifier) AS n
             FROM s_tasks
            WHERE {since} AND {ended} AND duration_ms IS NOT NULL) AS ranked
          WHERE rn = GREATEST(1, LEAST(n, (? * n + 99) DIV 100))",
        since = *SINCE,
        ended = status_in("status", ENDED),
    )
});

static WORKER_VERSIONS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT DISTINCT identifier COLLATE utf8mb4_bin AS i, worker_version COLLATE utf8mb4_bin AS v
           FROM s_tasks WHERE {since} AND worker_version IS NOT NULL
          ORDER BY i, v",
        since = *SINCE,
    )
});

/// Each priority is its own range of the claim index (as in the claim).
static OLDEST_DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    let one = |rank: i64| {
        format!(
            "(SELECT id, identifier, run_at FROM s_tasks
               WHERE {due} AND priority_rank = {rank} AND run_at <= ? ORDER BY run_at, id LIMIT 1)",
            due = guard_sql(Event::Claim),
        )
    };
    format!(
        "SELECT id, identifier, run_at FROM ({} UNION ALL {} UNION ALL {}) AS due
          ORDER BY run_at, id LIMIT 1",
        one(2),
        one(1),
        one(0)
    )
});

/// Same predicate as lease recovery, so it reads the `s_tasks_lease` index.
static STUCK_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, identifier, lease_expires_at FROM s_tasks
          WHERE {leased} AND lease_expires_at < ? ORDER BY lease_expires_at, id",
        leased = guard_sql(Event::Recover),
    )
});

static PENDING_COUNTS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT identifier COLLATE utf8mb4_bin AS i, COUNT(*) FROM s_tasks WHERE {pending}
          GROUP BY i ORDER BY i",
        pending = status_in("status", &[Pending]),
    )
});

/// Completed and failed tasks per time bucket.
static FINISHED_PER_BUCKET_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT ({finished_ms} - ?) DIV ? AS bucket, {}, {}
           FROM s_tasks
          WHERE finished_at IS NOT NULL AND finished_at >= {since} AND finished_at < {until}
            AND {ended}
          GROUP BY bucket ORDER BY bucket",
        count_if(&status_in("status", &[Completed])),
        count_if(&status_in("status", &[Failed])),
        finished_ms = to_ms("finished_at"),
        since = from_ms("?"),
        until = from_ms("?"),
        ended = status_in("status", ENDED),
    )
});

fn triples(rows: Vec<mysql::Row>) -> StoreResult<Vec<(i64, String, i64)>> {
    rows.iter()
        .map(|r| Ok((r.col(0)?, r.col(1)?, r.col(2)?)))
        .collect()
}

/// The `(identifier, value)` rows of a query, grouped by identifier in row order.
fn per_identifier<T: crate::rows::ColumnValue>(
    rows: Vec<mysql::Row>,
) -> StoreResult<BTreeMap<String, Vec<T>>> {
    let mut grouped: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for row in rows {
        grouped.entry(row.col(0)?).or_default().push(row.col(1)?);
    }
    Ok(grouped)
}

impl MysqlStore {
    /// Runs `f` in a read-only consistent snapshot: every figure of one answer describes the
    /// same state.
    fn snapshot<T>(
        &self,
        f: impl FnOnce(&Self, &mut Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.conn()?;
        let mut tx = conn.start_transaction(
            TxOpts::default()
                .set_isolation_level(Some(IsolationLevel::RepeatableRead))
                .set_with_consistent_snapshot(true)
                .set_access_mode(Some(AccessMode::ReadOnly)),
        )?;
        let value = f(self, &mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// The nearest-rank `percent`th value among the `ranked` values `sql` orders.
    fn percentile(
        &self,
        tx: &mut Transaction<'_>,
        sql: &'static str,
        since: i64,
        ranked: i64,
        percent: i64,
    ) -> StoreResult<Option<i64>> {
        let Some(rank) = nearest_rank(ranked, percent) else {
            return Ok(None);
        };
        Ok(tx.exec_first(&*self.sql(sql), params![since, rank - 1])?)
    }
}

impl AnalyticsStore for MysqlStore {
    fn window_summary(&self, since: i64, now: i64) -> StoreResult<WindowSummary> {
        let since_dt = clamp_ms(since);
        self.snapshot(|s, tx| {
            let row: Option<mysql::Row> =
                tx.exec_first(&*s.sql(WINDOW_SQL.as_str()), params![since_dt])?;
            let row = row.ok_or_else(|| crate::StoreError::internal("no aggregate row"))?;
            let (mut summary, durations, waits) = window_from_row(&row, since, now)?;
            let d = DURATION_AT_SQL.as_str();
            let w = WAIT_AT_SQL.as_str();
            summary.p50_duration_ms = s.percentile(tx, d, since_dt, durations, 50)?;
            summary.p95_duration_ms = s.percentile(tx, d, since_dt, durations, 95)?;
            summary.p50_wait_ms = s.percentile(tx, w, since_dt, waits, 50)?;
            summary.p95_wait_ms = s.percentile(tx, w, since_dt, waits, 95)?;
            summary.throughput_per_minute = per_minute(summary.finished(), since, now);
            let rows: Vec<mysql::Row> = tx.exec(
                &*s.sql(COMMON_ERRORS_SQL.as_str()),
                params![since_dt, COMMON_ERRORS as i64],
            )?;
            summary.common_errors = rows
                .iter()
                .map(error_count_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(summary)
        })
    }

    fn worker_summaries(&self, since: i64) -> StoreResult<Vec<WorkerSummary>> {
        let since = clamp_ms(since);
        self.snapshot(|s, tx| {
            let rows: Vec<mysql::Row> = tx.exec(&*s.sql(WORKERS_SQL.as_str()), params![since])?;
            let mut workers = rows
                .iter()
                .map(worker_summary_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            let mut p95 = per_identifier::<i64>(tx.exec(
                &*s.sql(WORKER_PERCENTILE_SQL.as_str()),
                params![since, 95i64],
            )?)?;
            let mut versions = per_identifier::<String>(
                tx.exec(&*s.sql(WORKER_VERSIONS_SQL.as_str()), params![since])?,
            )?;
            for w in &mut workers {
                w.p95_duration_ms = p95.remove(&w.identifier).and_then(|v| v.first().copied());
                w.versions = versions.remove(&w.identifier).unwrap_or_default();
            }
            Ok(workers)
        })
    }

    fn oldest_due_pending(&self, now: i64) -> StoreResult<Option<(i64, String, i64)>> {
        self.snapshot(|s, tx| {
            Ok(
                triples(tx.exec(&*s.sql(OLDEST_DUE_SQL.as_str()), params![now, now, now])?)?
                    .into_iter()
                    .next(),
            )
        })
    }

    fn stuck_tasks(&self, now: i64) -> StoreResult<Vec<(i64, String, i64)>> {
        self.snapshot(|s, tx| triples(tx.exec(&*s.sql(STUCK_SQL.as_str()), params![now])?))
    }

    fn pending_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        self.snapshot(|s, tx| Ok(tx.query(&*s.sql(PENDING_COUNTS_SQL.as_str()))?))
    }

    fn finished_per_bucket(
        &self,
        since: i64,
        until: i64,
        bucket_ms: i64,
    ) -> StoreResult<Vec<(i64, i64, i64)>> {
        let bucket_ms = bucket_ms.max(1);
        self.snapshot(|s, tx| {
            Ok(tx.exec(
                &*s.sql(FINISHED_PER_BUCKET_SQL.as_str()),
                params![since, bucket_ms, clamp_ms(since), clamp_ms(until)],
            )?)
        })
    }
}
