//! `TaskStore` for SQLite.

use super::starts::StartJournal;
use super::SqliteStore;
use crate::dependencies::{self, unresolved_edges_of};
use crate::limits::{self, LimitedClaim};
use crate::model::{LogLine, NewTask, Stats, Task};
use crate::rows::{task_from_row, TASK_COLUMNS};
use crate::task_filter::{self, filter_sql, FilterArg, FilterSql};
use crate::task_state::sql::{
    guard_sql, message, not_waiting, status_in, target, worker_not_paused,
};
use crate::task_state::{created_message, rule, Event, FINISHED, LEASED, STARTED};
use crate::{
    stats_from_counts, unique, CancelResult, Claim, ClaimRequest, ClaimedTask, ExpiredLease,
    Finish, Inserted, Lease, LimitUsage, ProgressWrite, RetryResult, StoreError, StoreResult,
    TablePrefix, TaskFilter, TaskStore,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};
use std::collections::BTreeMap;
use std::sync::LazyLock;

static SELECT_TASK_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {TASK_COLUMNS} FROM s_tasks WHERE id = ?1"));

fn load_task(conn: &Connection, p: &TablePrefix, id: i64) -> StoreResult<Option<Task>> {
    conn.prepare_cached(&p.statement(&SELECT_TASK_SQL))?
        .query_and_then([id], |r| task_from_row(r))?
        .next()
        .transpose()
}

/// A new task (`Event::Create`).
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO s_tasks (identifier, action, status, message, started_by, token_id, meta,
             start_at, run_at, max_attempts, priority, priority_rank, created_at, updated_at,
             unique_key, parent_id)
         VALUES (?1, ?2, {pending}, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14)",
        pending = target(Event::Create),
    )
});

/// One task, with its unique key's row (see `crate::unique`): a key another task holds makes
/// it a duplicate of that task, and nothing is inserted.
pub(super) fn insert_one(
    tx: &Transaction<'_>,
    p: &TablePrefix,
    task: &NewTask,
    now: i64,
) -> StoreResult<Inserted> {
    let Some(key) = &task.unique_key else {
        let id = insert_row(tx, p, task, now)?;
        link_parents(tx, p, id, task, now)?;
        return Ok(Inserted {
            id,
            duplicate: false,
        });
    };
    // One writer: nothing can take the key between these statements, so the key's row is
    // checked before the task is inserted (no id is used by a duplicate).
    tx.prepare_cached(&p.statement(&unique::FREE_STALE))?
        .execute(params![key, now])?;
    let holder: Option<i64> = tx
        .prepare_cached(&p.statement("SELECT task_id FROM s_unique_keys WHERE unique_key = ?1"))?
        .query_row(params![key], |r| r.get(0))
        .optional()?;
    if let Some(id) = holder {
        return Ok(Inserted {
            id,
            duplicate: true,
        });
    }
    let id = insert_row(tx, p, task, now)?;
    tx.prepare_cached(&p.statement(
        "INSERT INTO s_unique_keys (unique_key, task_id, held_until) VALUES (?1, ?2, ?3)",
    ))?
    .execute(params![key, id, unique::held_until(task, now)])?;
    link_parents(tx, p, id, task, now)?;
    Ok(Inserted {
        id,
        duplicate: false,
    })
}

/// The new task's edges to the tasks it depends on (see `crate::dependencies`).
fn link_parents(
    tx: &Transaction<'_>,
    p: &TablePrefix,
    id: i64,
    task: &NewTask,
    now: i64,
) -> StoreResult<()> {
    if task.depends_on.is_empty() {
        return Ok(());
    }
    let mut deps = super::dependencies::Tx {
        conn: tx,
        prefix: p,
    };
    let sql = dependencies::statements(dependencies::Dialect::Sqlite);
    dependencies::link(
        &mut deps,
        sql,
        id,
        &task.depends_on,
        task.on_parent_failure,
        now,
    )?;
    Ok(())
}

fn insert_row(tx: &Transaction<'_>, p: &TablePrefix, task: &NewTask, now: i64) -> StoreResult<i64> {
    let mut stmt = tx.prepare_cached(&p.statement(&INSERT_SQL))?;
    let message = created_message(task.start_at, now);
    stmt.execute(params![
        task.identifier,
        task.action,
        message,
        task.started_by,
        task.token_id,
        task.data.to_string(),
        task.start_at,
        task.start_at.unwrap_or(now).max(0),
        task.max_attempts,
        task.priority.name(),
        task.priority.rank(),
        now,
        task.unique_key,
        task.parent_id,
    ])?;
    Ok(tx.last_insert_rowid())
}

/// Claim: each priority is read as an index range (`priority_rank = r AND run_at <= now`), so
/// not-yet-due tasks are never scanned; the three ranges are concatenated high to low. With
/// `skip_actions`, tasks of the actions in the JSON array `?7` are left out (a limited worker's
/// full actions, see `crate::limits`).
fn claim_sql(skip_actions: bool) -> String {
    let skip = if skip_actions {
        "AND action NOT IN (SELECT value FROM json_each(?7))"
    } else {
        ""
    };
    let range = |rank: i64| {
        format!(
            "SELECT id FROM (SELECT id FROM s_tasks
                        WHERE {due} AND priority_rank = {rank} AND run_at <= ?1
                          AND identifier IN (SELECT value FROM json_each(?5))
                          AND {not_paused} {skip}
                        ORDER BY run_at, id LIMIT ?6)",
            due = guard_sql(Event::Claim),
            not_paused = worker_not_paused("s_tasks.identifier"),
        )
    };
    format!(
        "
UPDATE s_tasks
   SET status = {preparing}, started_at = ?1, updated_at = ?1,
       lease_owner = ?2, lease_token = ?3, lease_expires_at = ?4, cancel_requested = 0,
       message = {starting}, progress = 0, processed = NULL, total = NULL, eta_seconds = NULL
 WHERE id IN (
       {high}
       UNION ALL
       {normal}
       UNION ALL
       {low}
       LIMIT ?6)
RETURNING id, identifier, action, meta, attempts + 1, max_attempts, run_at, priority_rank",
        preparing = target(Event::Claim),
        starting = message(Event::Claim),
        high = range(2),
        normal = range(1),
        low = range(0),
    )
}

/// The claim statement (see [`claim_sql`]).
static CLAIM_SQL: LazyLock<String> = LazyLock::new(|| claim_sql(false));

/// The claim statement that leaves out some actions' tasks.
static CLAIM_SKIP_SQL: LazyLock<String> = LazyLock::new(|| claim_sql(true));

/// Leased tasks per worker and action, of the workers in the JSON array `?1` (reads the
/// partial index `s_tasks_lease`).
static LEASED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT identifier, action, COUNT(*) FROM s_tasks
          WHERE {leased} AND identifier IN (SELECT value FROM json_each(?1))
          GROUP BY identifier, action",
        leased = status_in("status", LEASED),
    )
});

/// The limit rows of the workers in the JSON array `?1`.
const LIMIT_ROWS_SQL: &str = "SELECT identifier, rate_tat FROM s_worker_limits
                               WHERE identifier IN (SELECT value FROM json_each(?1))";

/// One claim transaction of limited workers (see `crate::limits`): the IMMEDIATE transaction
/// of the single writer is the lock of the limit rows.
struct SqliteLimitedClaim<'t, 'c> {
    tx: &'t Transaction<'c>,
    p: &'t TablePrefix,
    req: &'t ClaimRequest<'t>,
    token: i64,
}

impl LimitedClaim for SqliteLimitedClaim<'_, '_> {
    fn lock_limits(
        &mut self,
        identifiers: &[String],
    ) -> StoreResult<BTreeMap<String, Option<i64>>> {
        let list = json_list(identifiers)?;
        self.tx
            .prepare_cached(&self.p.statement(
                "INSERT OR IGNORE INTO s_worker_limits (identifier)
                 SELECT value FROM json_each(?1)",
            ))?
            .execute([&list])?;
        let rows = self
            .tx
            .prepare_cached(&self.p.statement(LIMIT_ROWS_SQL))?
            .query_map([&list], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<BTreeMap<String, Option<i64>>>>()?;
        Ok(rows)
    }

    fn leased(&mut self, identifiers: &[String]) -> StoreResult<Vec<(String, String, u64)>> {
        leased_in(self.tx, self.p, identifiers)
    }

    fn claim_some(
        &mut self,
        identifiers: &[String],
        skip_actions: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ClaimedTask>> {
        claim_in(
            self.tx,
            self.p,
            self.req,
            self.token,
            identifiers,
            skip_actions,
            limit,
        )
    }

    fn set_rate_tat(&mut self, identifier: &str, tat_us: i64) -> StoreResult<()> {
        self.tx
            .prepare_cached(
                &self
                    .p
                    .statement("UPDATE s_worker_limits SET rate_tat = ?2 WHERE identifier = ?1"),
            )?
            .execute(params![identifier, tat_us])?;
        Ok(())
    }
}

fn json_list(items: &[String]) -> StoreResult<String> {
    serde_json::to_string(items).map_err(|e| StoreError::database("", e))
}

/// Leased tasks of `identifiers`: `(identifier, action, count)`.
fn leased_in(
    conn: &Connection,
    p: &TablePrefix,
    identifiers: &[String],
) -> StoreResult<Vec<(String, String, u64)>> {
    let rows = conn
        .prepare_cached(&p.statement(&LEASED_SQL))?
        .query_map([json_list(identifiers)?], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Runs the claim statement for `identifiers` (without the tasks of `skip_actions`), up to
/// `limit` tasks, under the lease `token`.
fn claim_in(
    tx: &Transaction<'_>,
    p: &TablePrefix,
    req: &ClaimRequest<'_>,
    token: i64,
    identifiers: &[String],
    skip_actions: &[String],
    limit: usize,
) -> StoreResult<Vec<ClaimedTask>> {
    if limit == 0 || identifiers.is_empty() {
        return Ok(Vec::new());
    }
    let list = json_list(identifiers)?;
    let mut values: Vec<SqlValue> = vec![
        req.now.into(),
        req.owner.to_owned().into(),
        token.into(),
        (req.now + req.lease_ms).into(),
        list.into(),
        (limit as i64).into(),
    ];
    let sql = if skip_actions.is_empty() {
        &*CLAIM_SQL
    } else {
        values.push(json_list(skip_actions)?.into());
        &*CLAIM_SKIP_SQL
    };
    let mut stmt = tx.prepare_cached(&p.statement(sql))?;
    let rows = stmt
        .query_map(params_from_iter(values), |r| {
            Ok(ClaimedTask {
                id: r.get(0)?,
                identifier: r.get(1)?,
                action: r.get(2)?,
                meta: r.get(3)?,
                attempt: r.get(4)?,
                max_attempts: r.get(5)?,
                lease_token: token,
                run_at: r.get(6)?,
                priority_rank: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// A run started (written by the start flush, see `starts`): the attempt counts from here (a
/// claim alone does not, see `TaskStore`).
static START_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
UPDATE s_tasks SET status = {running}, attempts = attempts + 1, started_at = ?3, message = {message},
       updated_at = ?3
 WHERE id = ?1 AND lease_token = ?2 AND {guard}",
        running = target(Event::Start),
        message = message(Event::Start),
        guard = guard_sql(Event::Start),
    )
});

/// A claimed task given back unstarted (`Event::GiveBack`).
static RELEASE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET status = {pending}, message = {message}, started_at = NULL, lease_owner = NULL,
                    lease_token = NULL, lease_expires_at = NULL, updated_at = ?3
              WHERE id = ?1 AND lease_token = ?2 AND {guard}",
        pending = target(Event::GiveBack),
        message = message(Event::GiveBack),
        guard = guard_sql(Event::GiveBack),
    )
});

/// Progress of a run (`Event::Progress`). A run reports progress only after it started: if
/// its start is not flushed yet (still `preparing`), its attempt counts here.
static PROGRESS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET status = {running}, attempts = attempts + ({unstarted}),
                            progress = ?3, processed = ?4, total = ?5,
                            eta_seconds = ?6, message = ?7, worker_version = ?8, updated_at = ?9
                      WHERE id = ?1 AND lease_token = ?2 AND {guard}",
        running = target(Event::Progress),
        unstarted = guard_sql(Event::Start),
        guard = guard_sql(Event::Progress),
    )
});

/// The end of a run (`Event::Finish`): status and message as `after_run` decided, bound per
/// row; `?19` is the recovery guard of `Finish::if_started`.
static FINISH_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks
                        SET status = ?3, message = ?4,
                            result = COALESCE(?5, result), result_file = COALESCE(?6, result_file),
                            run_at = COALESCE(?7, run_at),
                            finished_at = CASE WHEN {finished} THEN ?8 ELSE NULL END,
                            last_error = COALESCE(?9, last_error),
                            duration_ms = COALESCE(?10, duration_ms),
                            progress = COALESCE(?11, progress),
                            worker_version = COALESCE(?12, worker_version),
                            processed = COALESCE(?13, processed), total = COALESCE(?14, total),
                            eta_seconds = NULL,
                            cpu_ms = COALESCE(?15, cpu_ms),
                            started_at = COALESCE(?17, started_at),
                            memory_bytes = CASE WHEN ?10 IS NULL THEN memory_bytes ELSE ?16 END,
                            attempts = ?18,
                            lease_owner = NULL, lease_expires_at = NULL, updated_at = ?8
                      WHERE id = ?1 AND lease_token = ?2 AND {guard}
                        AND (?19 IS NULL OR ({started}) = ?19)",
        finished = status_in("?3", FINISHED),
        guard = guard_sql(Event::Finish),
        started = status_in("status", STARTED),
    )
});

/// The heartbeat's lease renewal and its read of the cancel flags (`Event::Heartbeat`).
static HEARTBEAT_SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
    let guard = guard_sql(Event::Heartbeat);
    [
        format!(
            "UPDATE s_tasks SET lease_expires_at = ?2
                  WHERE lease_owner = ?1 AND {guard}"
        ),
        format!(
            "SELECT id FROM s_tasks
                      WHERE lease_owner = ?1 AND {guard} AND cancel_requested = 1"
        ),
    ]
});

/// Leases to recover (`Event::Recover`): the same predicate as the partial index
/// s_tasks_lease, so a heartbeat's recovery check reads only leased rows.
static EXPIRED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, lease_token, attempts, max_attempts, lease_owner, {started}
                   FROM s_tasks WHERE {guard} AND lease_expires_at < ?1",
        started = status_in("status", STARTED),
        guard = guard_sql(Event::Recover),
    )
});

/// Every lease of one owner (`TaskStore::leases_of`).
static LEASES_OF_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, lease_token, attempts, max_attempts, lease_owner, {started}
                   FROM s_tasks WHERE {guard} AND lease_owner = ?1 ORDER BY id",
        started = status_in("status", STARTED),
        guard = guard_sql(Event::Recover),
    )
});

/// The next not-yet-due claimable task, one index range per priority as in the claim.
static NEXT_DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT MIN(t) FROM (
                   SELECT (SELECT run_at FROM s_tasks WHERE {due} AND priority_rank = 2
                             AND run_at > ?1 AND {real}
                             AND identifier IN (SELECT value FROM json_each(?2))
                           ORDER BY run_at LIMIT 1) AS t
                   UNION ALL
                   SELECT (SELECT run_at FROM s_tasks WHERE {due} AND priority_rank = 1
                             AND run_at > ?1 AND {real}
                             AND identifier IN (SELECT value FROM json_each(?2))
                           ORDER BY run_at LIMIT 1)
                   UNION ALL
                   SELECT (SELECT run_at FROM s_tasks WHERE {due} AND priority_rank = 0
                             AND run_at > ?1 AND {real}
                             AND identifier IN (SELECT value FROM json_each(?2))
                           ORDER BY run_at LIMIT 1))",
        due = guard_sql(Event::Claim),
        real = not_waiting("run_at"),
    )
});

/// A user's cancel: a pending task is cancelled (`Event::CancelPending`), else a leased one
/// gets its flag (`Event::RequestCancel`).
static CANCEL_SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
    [
        format!(
            "UPDATE s_tasks SET status = {cancelled}, message = {message},
                        finished_at = ?2, updated_at = ?2
                  WHERE id = ?1 AND {guard}",
            cancelled = target(Event::CancelPending),
            message = message(Event::CancelPending),
            guard = guard_sql(Event::CancelPending),
        ),
        format!(
            "UPDATE s_tasks SET cancel_requested = 1, message = {message},
                            updated_at = ?2
                      WHERE id = ?1 AND {guard}",
            message = message(Event::RequestCancel),
            guard = guard_sql(Event::RequestCancel),
        ),
    ]
});

/// A user's retry (`Event::Retry`): pending again with fresh attempts.
static RETRY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET status = {pending}, message = {message}, run_at = ?2,
                        waiting_parents = 0, attempts = 0, finished_at = NULL, cancel_requested = 0, progress = 0,
                        processed = NULL, total = NULL, eta_seconds = NULL, updated_at = ?2
                  WHERE id = ?1 AND {guard}",
        pending = target(Event::Retry),
        message = message(Event::Retry),
        guard = guard_sql(Event::Retry),
    )
});

/// Whether a task's end still has to be passed to its dependants (it is not deleted then).
static HAS_UNRESOLVED_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {}", unresolved_edges_of("?1")));

/// The pending tasks, in claim order, and their count.
static PENDING_SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
    let pending = status_in("status", &[crate::model::TaskStatus::Pending]);
    [
        format!("SELECT COUNT(*) FROM s_tasks WHERE {pending}"),
        format!(
            "SELECT {TASK_COLUMNS} FROM s_tasks WHERE {pending}
                  ORDER BY priority_rank DESC, run_at, id LIMIT ?1"
        ),
    ]
});

/// Retention (`Event::Delete` of tasks finished before `?1`).
static RETENTION_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "DELETE FROM s_tasks WHERE finished_at IS NOT NULL AND finished_at < ?1
                       AND {guard} AND NOT {unresolved} RETURNING id",
        guard = guard_sql(Event::Delete),
        unresolved = unresolved_edges_of("s_tasks.id"),
    )
});

/// A `preparing` row whose start is in the journal started (its start was not flushed before
/// the process died): started, with its attempt counted. The ring is read only if such a row
/// exists: at recovery at start (a live process's own leases expire only while their renewal
/// fails, and the engine leaves them alone).
impl SqliteStore {
    /// The leases one of the lease queries (`EXPIRED_SQL`, `LEASES_OF_SQL`) selects, with the
    /// starts the journal holds and the table not yet.
    fn leases_where(
        &self,
        sql: &'static str,
        params: &[&dyn rusqlite::ToSql],
    ) -> StoreResult<Vec<ExpiredLease>> {
        let rows = self.read(|conn| {
            let mut stmt = conn.prepare_cached(&self.sql(sql))?;
            let rows = stmt
                .query_and_then(params, |r| crate::rows::expired_lease_from_row(r))?
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(rows)
        })?;
        mark_journal_starts(&self.starts, rows)
    }
}

fn mark_journal_starts(
    journal: &StartJournal,
    mut leases: Vec<ExpiredLease>,
) -> StoreResult<Vec<ExpiredLease>> {
    if leases.iter().all(|l| l.started) {
        return Ok(leases);
    }
    let started = journal.read()?;
    for lease in leases.iter_mut().filter(|l| !l.started) {
        if started.contains(&lease.lease()) {
            lease.started = true;
            lease.attempts += 1;
        }
    }
    Ok(leases)
}

impl SqliteStore {
    /// Runs `sql` (parameters: id, lease token, now) for each lease in one transaction.
    fn update_leased(&self, sql: &'static str, leases: &[Lease], now: i64) -> StoreResult<()> {
        if leases.is_empty() {
            return Ok(());
        }
        self.write(|conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(&self.sql(sql))?;
                for lease in leases {
                    stmt.execute(params![lease.task_id, lease.token, now])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}

impl TaskStore for SqliteStore {
    fn insert_task(&self, task: &NewTask, now: i64) -> StoreResult<i64> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let inserted = insert_one(&tx, &self.prefix, task, now)?;
            tx.commit()?;
            Ok(inserted.id)
        })
    }

    fn insert_tasks(&self, tasks: &[NewTask], now: i64) -> StoreResult<Vec<Inserted>> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let ids = tasks
                .iter()
                .map(|t| insert_one(&tx, &self.prefix, t, now))
                .collect::<StoreResult<Vec<_>>>()?;
            tx.commit()?;
            Ok(ids)
        })
    }

    fn claim(&self, req: &ClaimRequest<'_>) -> StoreResult<Claim> {
        if req.limit == 0 || req.identifiers.is_empty() {
            return Ok(Claim::default());
        }
        let token: i64 = rand::random::<i64>() & i64::MAX;
        let limited = !limits::limited_in(req).is_empty();
        let mut claim = self.write(|conn| {
            let tx = conn.transaction()?;
            let claim = if limited {
                let mut limited = SqliteLimitedClaim {
                    tx: &tx,
                    p: &self.prefix,
                    req,
                    token,
                };
                limits::claim_with_limits(&mut limited, req)?
            } else {
                Claim {
                    tasks: claim_in(
                        &tx,
                        &self.prefix,
                        req,
                        token,
                        req.identifiers,
                        &[],
                        req.limit,
                    )?,
                    held: Vec::new(),
                }
            };
            tx.commit()?;
            Ok(claim)
        })?;
        // RETURNING gives no order guarantee: restore claim order for the pool.
        claim
            .tasks
            .sort_by_key(|t| (-t.priority_rank, t.run_at, t.id));
        Ok(claim)
    }

    fn limit_usage(&self, identifiers: &[String]) -> StoreResult<Vec<LimitUsage>> {
        if identifiers.is_empty() {
            return Ok(Vec::new());
        }
        self.read(|conn| {
            let leased = leased_in(conn, &self.prefix, identifiers)?;
            let tats = conn
                .prepare_cached(&self.prefix.statement(LIMIT_ROWS_SQL))?
                .query_map([json_list(identifiers)?], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<BTreeMap<String, Option<i64>>>>()?;
            Ok(limits::usage_of(identifiers, leased, &tats)
                .into_values()
                .collect())
        })
    }

    fn release(&self, leases: &[Lease], now: i64) -> StoreResult<()> {
        self.update_leased(&RELEASE_SQL, leases, now)
    }

    fn start_runs(&self, leases: &[Lease], now: i64) -> StoreResult<Vec<bool>> {
        // Into the start journal, not the database (see `starts`): one `pwrite` per start
        // instead of a write transaction on the single writer connection. It always applies:
        // only this process uses the database (the home lock) and it recovers leases only at
        // start, before its pool runs, so no other host or recovery can have taken the lease.
        for &lease in leases {
            self.starts.record(lease)?;
            self.unflushed_starts.lock().insert(lease, now);
        }
        Ok(vec![true; leases.len()])
    }

    fn flush_starts(&self, _now: i64) -> StoreResult<()> {
        let starts = std::mem::take(&mut *self.unflushed_starts.lock());
        if starts.is_empty() {
            return Ok(());
        }
        let written = self.write(|conn| {
            let tx = conn.transaction()?;
            {
                // Guarded by `preparing`: applies once, and not to a run finished meanwhile.
                let mut stmt = tx.prepare_cached(&self.sql(&START_SQL))?;
                for (lease, at) in &starts {
                    stmt.execute(params![lease.task_id, lease.token, at])?;
                }
            }
            tx.commit()?;
            Ok(())
        });
        if written.is_err() {
            // Kept for the next flush (the journal still has them meanwhile).
            let mut kept = self.unflushed_starts.lock();
            for (run, at) in starts {
                kept.entry(run).or_insert(at);
            }
        }
        written
    }

    fn write_progress(&self, updates: &[ProgressWrite], now: i64) -> StoreResult<()> {
        if updates.is_empty() {
            return Ok(());
        }
        self.write(|conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(&self.sql(&PROGRESS_SQL))?;
                for u in updates {
                    stmt.execute(params![
                        u.id,
                        u.lease_token,
                        u.progress,
                        u.processed,
                        u.total,
                        u.eta_seconds,
                        u.message,
                        u.worker_version,
                        now
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn append_logs(&self, lines: &[LogLine]) -> StoreResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        self.write(|conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(&self.sql(
                    "INSERT INTO s_task_logs (task_id, attempt, level, at, line)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                ))?;
                for l in lines {
                    stmt.execute(params![l.task_id, l.attempt, l.level, l.at, l.line])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn finish(&self, finishes: &[Finish]) -> StoreResult<Vec<bool>> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        {
            // The finish writes the attempt itself (`Finish::attempts`), so its start needs no
            // flush. Taken out even if the finish then fails: the finisher retries it, and the
            // journal keeps the start for recovery meanwhile.
            let mut starts = self.unflushed_starts.lock();
            for f in finishes {
                starts.remove(&f.lease());
            }
        }
        self.write(|conn| {
            let tx = conn.transaction()?;
            let mut applied = Vec::with_capacity(finishes.len());
            {
                let mut stmt = tx.prepare_cached(&self.sql(&FINISH_SQL))?;
                for f in finishes {
                    let n = stmt.execute(params![
                        f.id,
                        f.lease_token,
                        f.status.code(),
                        f.message,
                        f.result,
                        f.result_file,
                        f.run_at,
                        f.at,
                        f.last_error,
                        f.duration_ms,
                        f.progress,
                        f.worker_version,
                        f.processed,
                        f.total,
                        f.cpu_ms,
                        f.memory_bytes,
                        f.started_at,
                        f.attempts,
                        f.if_started,
                    ])?;
                    applied.push(n == 1);
                }
            }
            tx.commit()?;
            Ok(applied)
        })
    }

    fn heartbeat(&self, owner: &str, lease_until: i64) -> StoreResult<Vec<i64>> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            tx.prepare_cached(&self.sql(&HEARTBEAT_SQL[0]))?
                .execute(params![owner, lease_until])?;
            let cancelled = tx
                .prepare_cached(&self.sql(&HEARTBEAT_SQL[1]))?
                .query_map([owner], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            tx.commit()?;
            Ok(cancelled)
        })
    }

    fn expired_leases(&self, now: i64) -> StoreResult<Vec<ExpiredLease>> {
        self.leases_where(&EXPIRED_SQL, params![now])
    }

    fn leases_of(&self, owner: &str) -> StoreResult<Vec<ExpiredLease>> {
        self.leases_where(&LEASES_OF_SQL, params![owner])
    }

    fn next_due(&self, now: i64, identifiers: &[String]) -> StoreResult<Option<i64>> {
        if identifiers.is_empty() {
            return Ok(None);
        }
        let identifiers =
            serde_json::to_string(identifiers).map_err(|e| StoreError::database("", e))?;
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&self.sql(&NEXT_DUE_SQL))?;
            Ok(stmt.query_row(params![now, identifiers], |r| r.get(0))?)
        })
    }

    fn cancel(&self, id: i64, now: i64) -> StoreResult<CancelResult> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let cancelled = tx.execute(&self.sql(&CANCEL_SQL[0]), params![id, now])?;
            let requested = if cancelled == 0 {
                tx.execute(&self.sql(&CANCEL_SQL[1]), params![id, now])?
            } else {
                0
            };
            let task = load_task(&tx, &self.prefix, id)?;
            tx.commit()?;
            Ok(match task {
                None => CancelResult::NotFound,
                Some(t) if cancelled == 1 => CancelResult::Cancelled(t),
                Some(t) if requested == 1 => CancelResult::Requested(t),
                Some(t) => CancelResult::AlreadyFinished(t),
            })
        })
    }

    fn retry(&self, id: i64, now: i64) -> StoreResult<RetryResult> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(&self.sql(&RETRY_SQL), params![id, now])?;
            let task = load_task(&tx, &self.prefix, id)?;
            tx.commit()?;
            Ok(match task {
                None => RetryResult::NotFound,
                Some(t) if n == 1 => RetryResult::Queued(t),
                Some(t) => RetryResult::NotRetryable(t),
            })
        })
    }

    fn delete_task(&self, id: i64) -> StoreResult<Option<Task>> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let Some(task) = load_task(&tx, &self.prefix, id)? else {
                return Ok(None);
            };
            if !rule(Event::Delete).allows(task.status) {
                return Err(StoreError::conflict(format!(
                    "task {id} is {}; cancel it before deleting",
                    task.status
                )));
            }
            if tx.query_row(&self.sql(&HAS_UNRESOLVED_SQL), [id], |r| {
                r.get::<_, bool>(0)
            })? {
                return Err(StoreError::conflict(dependencies::delete_refused(id)));
            }
            tx.execute(
                &self.sql("DELETE FROM s_task_logs WHERE task_id = ?1"),
                [id],
            )?;
            tx.execute(
                &self.sql("DELETE FROM s_task_dependencies WHERE task_id = ?1"),
                [id],
            )?;
            tx.execute(&self.sql("DELETE FROM s_tasks WHERE id = ?1"), [id])?;
            tx.commit()?;
            Ok(Some(task))
        })
    }

    fn task(&self, id: i64) -> StoreResult<Option<Task>> {
        self.read(|conn| load_task(conn, &self.prefix, id))
    }

    fn tasks(&self, filter: &TaskFilter) -> StoreResult<(Vec<Task>, i64)> {
        let FilterSql {
            where_sql,
            args,
            page_sql,
        } = filter_sql(filter, &task_filter::SQLITE);
        let args: Vec<SqlValue> = args
            .into_iter()
            .map(|a| match a {
                FilterArg::Text(v) => SqlValue::Text(v),
                FilterArg::Int(v) | FilterArg::Time(v) => SqlValue::Integer(v),
            })
            .collect();
        self.read(|conn| {
            let total: i64 = conn.query_row(
                &self
                    .prefix
                    .apply(&format!("SELECT COUNT(*) FROM s_tasks {where_sql}")),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )?;
            let sql = format!("SELECT {TASK_COLUMNS} FROM s_tasks {where_sql} {page_sql}");
            let mut stmt = conn.prepare(&self.prefix.apply(&sql))?;
            let tasks = stmt
                .query_and_then(params_from_iter(args.iter()), |r| task_from_row(r))?
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((tasks, total))
        })
    }

    fn pending_tasks(&self, limit: i64) -> StoreResult<(Vec<Task>, i64)> {
        self.read(|conn| {
            let total: i64 = conn.query_row(&self.sql(&PENDING_SQL[0]), [], |r| r.get(0))?;
            let tasks = conn
                .prepare_cached(&self.sql(&PENDING_SQL[1]))?
                .query_and_then([limit.max(0)], |r| task_from_row(r))?
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((tasks, total))
        })
    }

    fn task_logs(&self, id: i64, limit: i64) -> StoreResult<Vec<LogLine>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&self.sql(
                "SELECT task_id, attempt, level, at, line FROM (
                   SELECT id, task_id, attempt, level, at, line FROM s_task_logs
                    WHERE task_id = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
            ))?;
            let lines = stmt
                .query_map(params![id, limit.max(0)], |r| {
                    Ok(LogLine {
                        task_id: r.get(0)?,
                        attempt: r.get(1)?,
                        level: r.get(2)?,
                        at: r.get(3)?,
                        line: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(lines)
        })
    }

    fn stats(&self) -> StoreResult<Stats> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                &self.sql("SELECT status, COUNT(*) FROM s_tasks GROUP BY status"),
            )?;
            let counts = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(stats_from_counts(counts))
        })
    }

    fn delete_finished_before(&self, cutoff: i64) -> StoreResult<Vec<i64>> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let ids = tx
                .prepare(&self.sql(&RETENTION_SQL))?
                .query_map([cutoff], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            {
                let mut stmt =
                    tx.prepare(&self.sql("DELETE FROM s_task_logs WHERE task_id = ?1"))?;
                let mut edges =
                    tx.prepare(&self.sql("DELETE FROM s_task_dependencies WHERE task_id = ?1"))?;
                for id in &ids {
                    stmt.execute([id])?;
                    edges.execute([id])?;
                }
            }
            tx.prepare(&self.sql(&unique::ORPHANED_KEYS))?
                .execute([cutoff])?;
            tx.commit()?;
            Ok(ids)
        })
    }

    fn external_change_counter(&self) -> StoreResult<Option<i64>> {
        // data_version of the writer connection changes only when another connection commits:
        // our readers never write, so a change means another process wrote.
        self.on_writer(|conn| {
            Ok(Some(
                conn.query_row("PRAGMA data_version", [], |r| r.get(0))?,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SQLITE_MIGRATIONS;
    use rusqlite::types::Null;

    /// SQLite's plan for `sql`, with every parameter bound to `NULL`.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![Null; stmt.parameter_count()];
        let rows = stmt
            .query_map(params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("\n")
    }

    /// The status codes are formatted into the statements as literals so that SQLite matches
    /// them with the claim index's predicate; bound or written differently, it would scan.
    /// (The lease scan is left out: on an empty database without statistics SQLite prefers
    /// `s_tasks_status` for it, whatever its text.)
    #[test]
    fn claims_read_the_partial_claim_index() {
        let conn = Connection::open_in_memory().unwrap();
        for migration in SQLITE_MIGRATIONS {
            conn.execute_batch(migration.sql).unwrap();
        }
        for (sql, index) in [
            (CLAIM_SQL.as_str(), "s_tasks_claim"),
            (CLAIM_SKIP_SQL.as_str(), "s_tasks_claim"),
            (NEXT_DUE_SQL.as_str(), "s_tasks_claim"),
            // Either index on the status (the lease index or `s_tasks_status`): no scan.
            (LEASED_SQL.as_str(), "USING INDEX s_tasks_"),
        ] {
            let plan = plan(&conn, sql);
            assert!(plan.contains(index), "{index} not used:\n{plan}");
        }
    }
}
