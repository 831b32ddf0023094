//! `TaskStore` for MySQL. The PostgreSQL driver is the model: claims lock with `FOR UPDATE SKIP
//! LOCKED`, every write of a run is fenced by its lease token, and the rows of a batch are
//! written in ascending id order (the lock order that keeps hosts from deadlocking). MySQL has
//! no arrays and no `UPDATE ... RETURNING`: a batch is one prepared statement run per row in
//! one transaction, and what a statement changed is read from its matched-row count.

use super::{clamp_ms, from_ms, marks, params, to_ms, MysqlStore};
use crate::dependencies::{self, unresolved_edges_of};
use crate::limits::{self, LimitedClaim};
use crate::model::{LogLine, NewTask, Stats, Task};
use crate::rows::{narrow, task_from_row};
use crate::task_filter::{self, filter_sql, FilterArg, FilterSql};
use crate::task_state::sql::{
    guard_sql, message, not_waiting, status_in, target, worker_not_paused,
};
use crate::task_state::{created_message, rule, Event, LEASED, STARTED};
use crate::{
    stats_from_counts, unique, CancelResult, Claim, ClaimRequest, ClaimedTask, ExpiredLease,
    Finish, Inserted, Lease, LimitUsage, ProgressWrite, RetryResult, StoreError, StoreResult,
    TaskFilter, TaskStore,
};
use mysql::prelude::Queryable;
use mysql::Value;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The columns `task_from_row` reads, with the `DATETIME(3)` ones as UNIX milliseconds.
pub(super) static TASK_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "id, identifier, action, status, message, started_by, meta, result, result_file, \
         {start_at}, run_at, {finished_at}, attempts, max_attempts, priority, progress, \
         processed, total, eta_seconds, {created_at}, {updated_at}, started_at, lease_owner, \
         lease_expires_at, cancel_requested, worker_version, last_error, duration_ms, cpu_ms, \
         memory_bytes, token_id, unique_key, parent_id, batch_id",
        start_at = to_ms("start_at"),
        finished_at = to_ms("finished_at"),
        created_at = to_ms("created_at"),
        updated_at = to_ms("updated_at"),
    )
});

static SELECT_TASK: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {} FROM s_tasks WHERE id = ?", *TASK_COLUMNS));

static SELECT_TASK_LOCKED: LazyLock<String> =
    LazyLock::new(|| format!("{} FOR UPDATE", *SELECT_TASK));

fn load_task(
    store: &MysqlStore,
    q: &mut impl Queryable,
    sql: &'static str,
    id: i64,
) -> StoreResult<Option<Task>> {
    q.exec_first::<mysql::Row, _, _>(&*store.sql(sql), params![id])?
        .map(|r| task_from_row(&r))
        .transpose()
}

/// One task; the id comes from the auto-increment (one row per statement: ids in order).
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO s_tasks (identifier, action, status, message, started_by, token_id, meta,
                              start_at, run_at, max_attempts, priority, priority_rank,
                              created_at, updated_at, unique_key, parent_id)
         VALUES (?, ?, {pending}, ?, ?, ?, ?, {start_at}, ?, ?, ?, ?, {now}, {now}, ?, ?)",
        pending = target(Event::Create),
        start_at = from_ms("?"),
        now = from_ms("?"),
    )
});

/// Takes a key for a new task; a duplicate-key error means another row holds it.
const TAKE_KEY_SQL: &str =
    "INSERT INTO s_unique_keys (unique_key, task_id, held_until) VALUES (?, ?, ?)";

/// The task holding a key.
const KEY_HOLDER_SQL: &str = "SELECT task_id FROM s_unique_keys WHERE unique_key = ?";

/// The row of a task that turned out a duplicate, inserted in the same transaction.
const DELETE_DUPLICATE_SQL: &str = "DELETE FROM s_tasks WHERE id = ?";

/// The due rows of one priority, locked without waiting for other hosts' claims.
/// Placeholders: rank, now, the identifiers, the actions to leave out (a limited worker's full
/// actions, see `crate::limits`; none: no such term), limit.
fn claim_select(identifiers: usize, skip_actions: usize) -> String {
    let skip = if skip_actions > 0 {
        format!("AND action NOT IN ({})", marks(skip_actions))
    } else {
        String::new()
    };
    format!(
        "SELECT id FROM s_tasks
          WHERE {due} AND priority_rank = ? AND run_at <= ? AND identifier IN ({list})
            AND {not_paused} {skip}
          ORDER BY run_at, id LIMIT ? FOR UPDATE SKIP LOCKED",
        due = guard_sql(Event::Claim),
        not_paused = worker_not_paused("s_tasks.identifier"),
        list = marks(identifiers),
    )
}

/// Leased tasks per worker and action of the workers named (placeholders: the identifiers).
fn leased_select(identifiers: usize) -> String {
    format!(
        "SELECT identifier, action, COUNT(*) FROM s_tasks
          WHERE {leased} AND identifier IN ({list})
          GROUP BY identifier, action",
        leased = status_in("status", LEASED),
        list = marks(identifiers),
    )
}

/// The limit rows of the workers named; `lock`: locked in identifier order (every claim
/// locks them in that order, so two claims never wait on each other in a cycle).
fn limit_rows_select(identifiers: usize, lock: bool) -> String {
    format!(
        "SELECT identifier, rate_tat FROM s_worker_limits WHERE identifier IN ({list}){lock}",
        list = marks(identifiers),
        lock = if lock {
            " ORDER BY identifier FOR UPDATE"
        } else {
            ""
        },
    )
}

fn strings(items: &[String]) -> Vec<Value> {
    items.iter().map(|i| Value::from(i.as_str())).collect()
}

/// Runs the claim statements for `identifiers` (without the tasks of `skip_actions`), up to
/// `limit` tasks, under the lease `token`, in the open transaction `tx`.
fn claim_in(
    store: &MysqlStore,
    tx: &mut mysql::Transaction<'_>,
    req: &ClaimRequest<'_>,
    token: i64,
    identifiers: &[String],
    skip_actions: &[String],
    limit: usize,
) -> StoreResult<Vec<ClaimedTask>> {
    if limit == 0 || identifiers.is_empty() {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let until = req.now + req.lease_ms;
    let select = store.dynamic(&claim_select(identifiers.len(), skip_actions.len()));
    let mut ids: Vec<i64> = Vec::new();
    for rank in [2i64, 1, 0] {
        let left = limit - ids.len() as i64;
        if left <= 0 {
            break;
        }
        let mut values: Vec<Value> = vec![rank.into(), req.now.into()];
        values.extend(strings(identifiers));
        values.extend(strings(skip_actions));
        values.push(left.into());
        ids.extend(tx.exec::<i64, _, _>(&select, mysql::Params::Positional(values))?);
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut values: Vec<Value> = vec![
        req.now.into(),
        clamp_ms(req.now).into(),
        req.owner.into(),
        token.into(),
        until.into(),
    ];
    values.extend(ids.iter().map(|&id| Value::from(id)));
    tx.exec_drop(
        store.dynamic(&claim_update(ids.len())),
        mysql::Params::Positional(values),
    )?;
    let rows: Vec<mysql::Row> = tx.exec(
        store.dynamic(&claimed_select(ids.len())),
        mysql::Params::Positional(ids.iter().map(|&id| Value::from(id)).collect()),
    )?;
    rows.iter()
        .map(|r| crate::rows::claimed_from_row(r, token))
        .collect()
}

fn leased_in(
    store: &MysqlStore,
    conn: &mut impl Queryable,
    identifiers: &[String],
) -> StoreResult<Vec<(String, String, u64)>> {
    let rows: Vec<(String, String, i64)> = conn.exec(
        store.dynamic(&leased_select(identifiers.len())),
        mysql::Params::Positional(strings(identifiers)),
    )?;
    Ok(rows
        .into_iter()
        .map(|(id, action, n)| (id, action, n.max(0) as u64))
        .collect())
}

fn limit_rows(
    store: &MysqlStore,
    conn: &mut impl Queryable,
    identifiers: &[String],
    lock: bool,
) -> StoreResult<BTreeMap<String, Option<i64>>> {
    let rows: Vec<(String, Option<i64>)> = conn.exec(
        store.dynamic(&limit_rows_select(identifiers.len(), lock)),
        mysql::Params::Positional(strings(identifiers)),
    )?;
    Ok(rows.into_iter().collect())
}

/// One claim transaction of limited workers (see `crate::limits`).
struct MysqlLimitedClaim<'t, 'c, 'r> {
    store: &'t MysqlStore,
    tx: &'t mut mysql::Transaction<'c>,
    req: &'t ClaimRequest<'r>,
    token: i64,
}

impl LimitedClaim for MysqlLimitedClaim<'_, '_, '_> {
    fn lock_limits(
        &mut self,
        identifiers: &[String],
    ) -> StoreResult<BTreeMap<String, Option<i64>>> {
        let rows = limit_rows(self.store, self.tx, identifiers, true)?;
        if rows.len() == identifiers.len() {
            return Ok(rows);
        }
        // The first claim of a newly limited worker: its row is created, then locked. (Not
        // `INSERT IGNORE` on every claim: on an existing row it takes a shared lock, and two
        // claims that both hold it and then ask for the exclusive one deadlock.)
        let mut sorted = identifiers.to_vec();
        sorted.sort();
        let values = vec!["(?)"; sorted.len()].join(", ");
        self.tx.exec_drop(
            self.store.dynamic(&format!(
                "INSERT IGNORE INTO s_worker_limits (identifier) VALUES {values}"
            )),
            mysql::Params::Positional(strings(&sorted)),
        )?;
        limit_rows(self.store, self.tx, identifiers, true)
    }

    fn leased(&mut self, identifiers: &[String]) -> StoreResult<Vec<(String, String, u64)>> {
        leased_in(self.store, self.tx, identifiers)
    }

    fn claim_some(
        &mut self,
        identifiers: &[String],
        skip_actions: &[String],
        limit: usize,
    ) -> StoreResult<Vec<ClaimedTask>> {
        claim_in(
            self.store,
            self.tx,
            self.req,
            self.token,
            identifiers,
            skip_actions,
            limit,
        )
    }

    fn set_rate_tat(&mut self, identifier: &str, tat_us: i64) -> StoreResult<()> {
        self.tx.exec_drop(
            &*self
                .store
                .sql("UPDATE s_worker_limits SET rate_tat = ? WHERE identifier = ?"),
            (tat_us, identifier),
        )?;
        Ok(())
    }
}

fn claim_update(ids: usize) -> String {
    format!(
        "UPDATE s_tasks
            SET status = {preparing}, started_at = ?, updated_at = {now},
                lease_owner = ?, lease_token = ?, lease_expires_at = ?, cancel_requested = FALSE,
                message = {starting}, progress = 0, processed = NULL, total = NULL,
                eta_seconds = NULL
          WHERE id IN ({list})",
        preparing = target(Event::Claim),
        starting = message(Event::Claim),
        now = from_ms("?"),
        list = marks(ids),
    )
}

fn claimed_select(ids: usize) -> String {
    format!(
        "SELECT id, identifier, action, meta, attempts + 1, max_attempts, run_at, priority_rank
           FROM s_tasks WHERE id IN ({})",
        marks(ids)
    )
}

/// A run starts: the attempt counts from here.
static START_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET status = {running}, attempts = attempts + 1, started_at = ?,
                message = {message}, updated_at = {now}
          WHERE id = ? AND lease_token = ? AND {guard}",
        running = target(Event::Start),
        message = message(Event::Start),
        now = from_ms("?"),
        guard = guard_sql(Event::Start),
    )
});

/// One finish (or recovery). `COALESCE` keeps a column the finish leaves `NULL`; memory
/// follows the duration. MySQL assigns left to right: no assignment reads a column assigned
/// before it. The last four placeholders are the recovery guard (`before`, twice) and the
/// started guard (`if_started`, twice); `NULL` skips each.
static FINISH_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks
            SET status = ?, message = ?, result = COALESCE(?, result),
                result_file = COALESCE(?, result_file), run_at = COALESCE(?, run_at),
                finished_at = {finished_at}, last_error = COALESCE(?, last_error),
                memory_bytes = CASE WHEN ? IS NULL THEN memory_bytes ELSE ? END,
                duration_ms = COALESCE(?, duration_ms), progress = COALESCE(?, progress),
                worker_version = COALESCE(?, worker_version),
                processed = COALESCE(?, processed), total = COALESCE(?, total),
                eta_seconds = NULL, cpu_ms = COALESCE(?, cpu_ms), attempts = ?,
                lease_owner = NULL, lease_expires_at = NULL, updated_at = {at}
          WHERE id = ? AND lease_token = ? AND {guard}
            AND (? IS NULL OR lease_expires_at < ?)
            AND (? IS NULL OR ({started}) = ?)",
        finished_at = from_ms("?"),
        at = from_ms("?"),
        // One guard for finishes and recoveries: both apply to leased rows.
        guard = guard_sql(Event::Finish),
        started = status_in("status", STARTED),
    )
});

/// A claimed task given back unstarted (`Event::GiveBack`).
static RELEASE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET status = {pending}, message = {message}, started_at = NULL,
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
                updated_at = {now}
          WHERE id = ? AND lease_token = ? AND {guard}",
        pending = target(Event::GiveBack),
        message = message(Event::GiveBack),
        now = from_ms("?"),
        guard = guard_sql(Event::GiveBack),
    )
});

/// Progress of a run (`Event::Progress`).
static PROGRESS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET status = {running}, progress = ?, processed = ?, total = ?,
                eta_seconds = ?, message = ?, worker_version = ?, updated_at = {now}
          WHERE id = ? AND lease_token = ? AND {guard}",
        running = target(Event::Progress),
        now = from_ms("?"),
        guard = guard_sql(Event::Progress),
    )
});

/// The heartbeat locks its rows in id order, renews them, and reads their cancel flags.
static HEARTBEAT_LOCK_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, cancel_requested FROM s_tasks WHERE lease_owner = ? AND {guard}
          ORDER BY id FOR UPDATE",
        guard = guard_sql(Event::Heartbeat),
    )
});

static HEARTBEAT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET lease_expires_at = ? WHERE lease_owner = ? AND {guard}",
        guard = guard_sql(Event::Heartbeat),
    )
});

/// Leases to recover (`Event::Recover`), along the `s_tasks_lease` index.
static EXPIRED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, lease_token, attempts, max_attempts, lease_owner, {started}
           FROM s_tasks WHERE {guard} AND lease_expires_at < ? ORDER BY id",
        started = status_in("status", STARTED),
        guard = guard_sql(Event::Recover),
    )
});

/// Every lease of one owner (`TaskStore::leases_of`).
static LEASES_OF_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, lease_token, attempts, max_attempts, lease_owner, {started}
           FROM s_tasks WHERE {guard} AND lease_owner = ? ORDER BY id",
        started = status_in("status", STARTED),
        guard = guard_sql(Event::Recover),
    )
});

/// The next not-yet-due claimable task: one index range per priority, as in the claim.
/// (MySQL's `LEAST` is `NULL` when any argument is: `MIN` over a union instead.)
fn next_due_sql(identifiers: usize) -> String {
    let one = |rank: i64| {
        format!(
            "(SELECT run_at FROM s_tasks WHERE {due} AND priority_rank = {rank} AND run_at > ?
                 AND {real} AND identifier IN ({list}) ORDER BY run_at LIMIT 1)",
            due = guard_sql(Event::Claim),
            real = not_waiting("run_at"),
            list = marks(identifiers),
        )
    };
    format!(
        "SELECT MIN(run_at) FROM ({} UNION ALL {} UNION ALL {}) AS due",
        one(2),
        one(1),
        one(0)
    )
}

/// A user cancels a pending task (`Event::CancelPending`).
static CANCEL_PENDING_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET status = {cancelled}, message = {message},
                finished_at = {now}, updated_at = {now}
          WHERE id = ? AND {guard}",
        cancelled = target(Event::CancelPending),
        message = message(Event::CancelPending),
        now = from_ms("?"),
        guard = guard_sql(Event::CancelPending),
    )
});

/// A user cancels a leased task: its flag is set (`Event::RequestCancel`).
static REQUEST_CANCEL_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET cancel_requested = TRUE, message = {message}, updated_at = {now}
          WHERE id = ? AND {guard}",
        message = message(Event::RequestCancel),
        now = from_ms("?"),
        guard = guard_sql(Event::RequestCancel),
    )
});

/// A user's retry (`Event::Retry`): pending again with fresh attempts.
static RETRY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_tasks SET status = {pending}, message = {message}, run_at = ?,
                waiting_parents = 0, attempts = 0, finished_at = NULL, cancel_requested = FALSE, progress = 0,
                processed = NULL, total = NULL, eta_seconds = NULL, updated_at = {now}
          WHERE id = ? AND {guard}",
        pending = target(Event::Retry),
        message = message(Event::Retry),
        now = from_ms("?"),
        guard = guard_sql(Event::Retry),
    )
});

/// Retention (`Event::Delete` of tasks finished before the cutoff), rows locked first.
static RETENTION_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id FROM s_tasks WHERE finished_at IS NOT NULL AND finished_at < {cutoff}
            AND {guard} AND NOT {unresolved} ORDER BY id FOR UPDATE",
        cutoff = from_ms("?"),
        guard = guard_sql(Event::Delete),
        unresolved = unresolved_edges_of("s_tasks.id"),
    )
});

/// The pending tasks, in claim order, and their count.
static PENDING_SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
    let pending = status_in("status", &[crate::model::TaskStatus::Pending]);
    [
        format!("SELECT COUNT(*) FROM s_tasks WHERE {pending}"),
        format!(
            "SELECT {} FROM s_tasks WHERE {pending}
              ORDER BY priority_rank DESC, run_at, id LIMIT ?",
            *TASK_COLUMNS
        ),
    ]
});

/// The task list's dialect: numbered placeholders (made positional by [`positional`]), and a
/// `LIKE` that ignores case on every column (MariaDB's JSON is a binary-collated text).
const DIALECT: task_filter::Dialect = task_filter::Dialect {
    placeholder: |n| format!(":p{n}"),
    like: "COLLATE utf8mb4_unicode_ci LIKE",
};

/// The filter's `:pN` placeholders as `?` with their values in order of use (the search term
/// is used four times). The client's own named-parameter parser cannot be used: it reads
/// `'\'` as an escaped quote, where our sessions (`NO_BACKSLASH_ESCAPES`) read a backslash.
/// Times are compared with a `DATETIME(3)` column, so they are converted in SQL.
fn positional(where_sql: &str, args: &[FilterArg]) -> (String, Vec<Value>) {
    let mut sql = String::with_capacity(where_sql.len() + 64);
    let mut values = Vec::new();
    let mut rest = where_sql;
    while let Some(at) = rest.find(":p") {
        sql.push_str(&rest[..at]);
        let digits = rest[at + 2..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let n: usize = rest[at + 2..at + 2 + digits].parse().unwrap_or(0);
        match n.checked_sub(1).and_then(|i| args.get(i)) {
            Some(FilterArg::Text(v)) => {
                sql.push('?');
                values.push(Value::from(v.as_str()));
            }
            Some(FilterArg::Int(v)) => {
                sql.push('?');
                values.push(Value::from(*v));
            }
            Some(FilterArg::Time(v)) => {
                sql.push_str(&from_ms("?"));
                values.push(Value::from(clamp_ms(*v)));
            }
            // Not a placeholder of ours: kept as written.
            None => sql.push_str(&rest[at..at + 2 + digits]),
        }
        rest = &rest[at + 2 + digits..];
    }
    sql.push_str(rest);
    (sql, values)
}

/// Applies finishes in ascending id order; `before` guards recoveries.
pub(super) fn apply_finishes(
    store: &MysqlStore,
    finishes: &[Finish],
    before: Option<i64>,
) -> StoreResult<Vec<bool>> {
    if finishes.is_empty() {
        return Ok(Vec::new());
    }
    let mut order: Vec<usize> = (0..finishes.len()).collect();
    order.sort_by_key(|&i| finishes[i].id);
    let sql = store.sql(FINISH_SQL.as_str());
    store.retrying(|tx| {
        let mut applied = vec![false; finishes.len()];
        for &i in &order {
            let f = &finishes[i];
            let finished_at = f.status.is_finished().then_some(clamp_ms(f.at));
            tx.exec_drop(
                &*sql,
                params![
                    f.status.code(),
                    f.message.as_str(),
                    f.result.as_deref(),
                    f.result_file.as_deref(),
                    f.run_at,
                    finished_at,
                    f.last_error.as_deref(),
                    f.duration_ms,
                    f.memory_bytes,
                    f.duration_ms,
                    f.progress,
                    f.worker_version.as_deref(),
                    f.processed,
                    f.total,
                    f.cpu_ms,
                    i64::from(f.attempts),
                    clamp_ms(f.at),
                    f.id,
                    f.lease_token,
                    before,
                    before,
                    f.if_started,
                    f.if_started,
                ],
            )?;
            applied[i] = tx.affected_rows() == 1;
        }
        Ok(applied)
    })
}

impl MysqlStore {
    /// Runs `sql` (placeholders: now, id, lease token) for each lease in id order, in one
    /// transaction; returns, per lease, whether it applied.
    fn update_leased(
        &self,
        sql: &'static str,
        leases: &[Lease],
        now: i64,
        now_twice: bool,
    ) -> StoreResult<Vec<bool>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut order: Vec<usize> = (0..leases.len()).collect();
        order.sort_by_key(|&i| leases[i].task_id);
        let sql = self.sql(sql);
        self.retrying(|tx| {
            let mut applied = vec![false; leases.len()];
            for &i in &order {
                let l = leases[i];
                let params = if now_twice {
                    params![now, clamp_ms(now), l.task_id, l.token]
                } else {
                    params![clamp_ms(now), l.task_id, l.token]
                };
                tx.exec_drop(&*sql, params)?;
                applied[i] = tx.affected_rows() == 1;
            }
            Ok(applied)
        })
    }
}

/// Inserts `tasks` in `tx` under the unique-key rule (see `crate::unique`): one [`Inserted`]
/// per task, in order, a duplicate naming the task that holds its key (the schedules' slots
/// insert their task through it too).
pub(super) fn insert_in(
    tx: &mut mysql::Transaction<'_>,
    store: &MysqlStore,
    tasks: &[NewTask],
    now: i64,
) -> StoreResult<Vec<Inserted>> {
    let (sql, free, take, holder, delete) = (
        store.sql(INSERT_SQL.as_str()),
        store.sql(unique::FREE_STALE.as_str()),
        store.sql(TAKE_KEY_SQL),
        store.sql(KEY_HOLDER_SQL),
        store.sql(DELETE_DUPLICATE_SQL),
    );
    let mut ids = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Some(key) = &t.unique_key {
            tx.exec_drop(&*free, params![key.as_str(), now])?;
        }
        tx.exec_drop(
            &*sql,
            params![
                t.identifier.as_str(),
                t.action.as_str(),
                created_message(t.start_at, now),
                t.started_by,
                t.token_id,
                t.data.to_string(),
                t.start_at.map(clamp_ms),
                t.start_at.unwrap_or(now).max(0),
                i64::from(t.max_attempts),
                t.priority.name(),
                t.priority.rank(),
                clamp_ms(now),
                clamp_ms(now),
                t.unique_key.as_deref(),
                t.parent_id,
            ],
        )?;
        let id = tx
            .last_insert_id()
            .ok_or_else(|| StoreError::internal("the insert returned no id"))?;
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        let Some(key) = &t.unique_key else {
            link_parents(tx, store, id, t, now)?;
            ids.push(Inserted {
                id,
                duplicate: false,
            });
            continue;
        };
        // A duplicate key rolls back this statement only (not the transaction); InnoDB
        // checks it against uncommitted rows too, waiting for their commit.
        match tx.exec_drop(
            &*take,
            params![key.as_str(), id, unique::held_until(t, now)],
        ) {
            Ok(()) => {
                link_parents(tx, store, id, t, now)?;
                ids.push(Inserted {
                    id,
                    duplicate: false,
                });
            }
            Err(e) if super::code(&e) == Some(super::ER_DUP_ENTRY) => {
                let held: Option<i64> = tx.exec_first(&*holder, params![key.as_str()])?;
                let held = held.ok_or_else(|| {
                    StoreError::internal(format!("unique key {key:?} has no holder"))
                })?;
                tx.exec_drop(&*delete, params![id])?;
                ids.push(Inserted {
                    id: held,
                    duplicate: true,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ids)
}

/// A new task's edges to the tasks it depends on (see `crate::dependencies`).
fn link_parents(
    tx: &mut mysql::Transaction<'_>,
    store: &MysqlStore,
    id: i64,
    task: &NewTask,
    now: i64,
) -> StoreResult<()> {
    if task.depends_on.is_empty() {
        return Ok(());
    }
    let sql = dependencies::statements(dependencies::Dialect::Mysql);
    dependencies::link(
        &mut super::dependencies::Tx { tx, store },
        sql,
        id,
        &task.depends_on,
        task.on_parent_failure,
        now,
    )?;
    Ok(())
}

/// Whether a task's end still has to be passed to its dependants (it is not deleted then).
static HAS_UNRESOLVED_SQL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {}", unresolved_edges_of("?")));

impl TaskStore for MysqlStore {
    fn insert_task(&self, task: &NewTask, now: i64) -> StoreResult<i64> {
        let ids = self.insert_tasks(std::slice::from_ref(task), now)?;
        ids.into_iter()
            .next()
            .map(|i| i.id)
            .ok_or_else(|| StoreError::internal("the insert returned no id"))
    }

    fn insert_tasks(&self, tasks: &[NewTask], now: i64) -> StoreResult<Vec<Inserted>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        // Keys can deadlock between hosts (InnoDB rolls the whole try back): tried again.
        self.retrying(|tx| insert_in(tx, self, tasks, now))
    }

    fn claim(&self, req: &ClaimRequest<'_>) -> StoreResult<Claim> {
        if req.limit == 0 || req.identifiers.is_empty() {
            return Ok(Claim::default());
        }
        let token: i64 = rand::random::<i64>() & i64::MAX;
        let limited = !limits::limited_in(req).is_empty();
        let mut claim = self.retrying(|tx| {
            if limited {
                let mut claim = MysqlLimitedClaim {
                    store: self,
                    tx,
                    req,
                    token,
                };
                limits::claim_with_limits(&mut claim, req)
            } else {
                Ok(Claim {
                    tasks: claim_in(self, tx, req, token, req.identifiers, &[], req.limit)?,
                    held: Vec::new(),
                })
            }
        })?;
        claim
            .tasks
            .sort_by_key(|t| (-t.priority_rank, t.run_at, t.id));
        Ok(claim)
    }

    fn limit_usage(&self, identifiers: &[String]) -> StoreResult<Vec<LimitUsage>> {
        if identifiers.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn()?;
        let leased = leased_in(self, &mut conn, identifiers)?;
        let tats = limit_rows(self, &mut conn, identifiers, false)?;
        Ok(limits::usage_of(identifiers, leased, &tats)
            .into_values()
            .collect())
    }

    fn release(&self, leases: &[Lease], now: i64) -> StoreResult<()> {
        self.update_leased(RELEASE_SQL.as_str(), leases, now, false)?;
        Ok(())
    }

    fn start_runs(&self, leases: &[Lease], now: i64) -> StoreResult<Vec<bool>> {
        self.update_leased(START_SQL.as_str(), leases, now, true)
    }

    fn write_progress(&self, updates: &[ProgressWrite], now: i64) -> StoreResult<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut sorted: Vec<&ProgressWrite> = updates.iter().collect();
        sorted.sort_by_key(|u| u.id);
        let sql = self.sql(PROGRESS_SQL.as_str());
        self.retrying(|tx| {
            for u in &sorted {
                tx.exec_drop(
                    &*sql,
                    params![
                        u.progress,
                        u.processed,
                        u.total,
                        u.eta_seconds,
                        u.message.as_str(),
                        u.worker_version.as_str(),
                        clamp_ms(now),
                        u.id,
                        u.lease_token,
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn append_logs(&self, lines: &[LogLine]) -> StoreResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let sql = self.sql(
            "INSERT INTO s_task_logs (task_id, attempt, level, at, line) VALUES (?, ?, ?, ?, ?)",
        );
        self.transaction(|tx| {
            tx.exec_batch(
                &*sql,
                lines.iter().map(|l| {
                    params![
                        l.task_id,
                        i64::from(l.attempt),
                        i64::from(l.level),
                        l.at,
                        l.line.as_str()
                    ]
                }),
            )?;
            Ok(())
        })
    }

    fn finish(&self, finishes: &[Finish]) -> StoreResult<Vec<bool>> {
        let applied = apply_finishes(self, finishes, None)?;
        Ok(applied)
    }

    fn heartbeat(&self, owner: &str, lease_until: i64) -> StoreResult<Vec<i64>> {
        let (lock, renew) = (
            self.sql(HEARTBEAT_LOCK_SQL.as_str()),
            self.sql(HEARTBEAT_SQL.as_str()),
        );
        self.retrying(|tx| {
            let rows: Vec<(i64, bool)> = tx.exec(&*lock, params![owner])?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            tx.exec_drop(&*renew, params![lease_until, owner])?;
            Ok(rows
                .into_iter()
                .filter(|(_, cancel)| *cancel)
                .map(|(id, _)| id)
                .collect())
        })
    }

    fn expired_leases(&self, now: i64) -> StoreResult<Vec<ExpiredLease>> {
        let rows: Vec<mysql::Row> = self
            .conn()?
            .exec(&*self.sql(EXPIRED_SQL.as_str()), params![now])?;
        rows.iter()
            .map(crate::rows::expired_lease_from_row)
            .collect()
    }

    fn leases_of(&self, owner: &str) -> StoreResult<Vec<ExpiredLease>> {
        let rows: Vec<mysql::Row> = self
            .conn()?
            .exec(&*self.sql(LEASES_OF_SQL.as_str()), params![owner])?;
        rows.iter()
            .map(crate::rows::expired_lease_from_row)
            .collect()
    }

    fn next_due(&self, now: i64, identifiers: &[String]) -> StoreResult<Option<i64>> {
        if identifiers.is_empty() {
            return Ok(None);
        }
        let mut values: Vec<Value> = Vec::new();
        for _ in 0..3 {
            values.push(now.into());
            values.extend(identifiers.iter().map(|i| Value::from(i.as_str())));
        }
        let due: Option<Option<i64>> = self.conn()?.exec_first(
            self.dynamic(&next_due_sql(identifiers.len())),
            mysql::Params::Positional(values),
        )?;
        Ok(due.flatten())
    }

    fn cancel(&self, id: i64, now: i64) -> StoreResult<CancelResult> {
        let (pending, leased) = (
            self.sql(CANCEL_PENDING_SQL.as_str()),
            self.sql(REQUEST_CANCEL_SQL.as_str()),
        );
        let now_dt = clamp_ms(now);
        let result = self.transaction(|tx| {
            tx.exec_drop(&*pending, params![now_dt, now_dt, id])?;
            let cancelled = tx.affected_rows();
            let requested = if cancelled == 0 {
                tx.exec_drop(&*leased, params![now_dt, id])?;
                tx.affected_rows()
            } else {
                0
            };
            Ok(match load_task(self, tx, SELECT_TASK.as_str(), id)? {
                None => CancelResult::NotFound,
                Some(t) if cancelled == 1 => CancelResult::Cancelled(t),
                Some(t) if requested == 1 => CancelResult::Requested(t),
                Some(t) => CancelResult::AlreadyFinished(t),
            })
        })?;
        Ok(result)
    }

    fn retry(&self, id: i64, now: i64) -> StoreResult<RetryResult> {
        let sql = self.sql(RETRY_SQL.as_str());
        let result = self.transaction(|tx| {
            tx.exec_drop(&*sql, params![now, clamp_ms(now), id])?;
            let n = tx.affected_rows();
            Ok(match load_task(self, tx, SELECT_TASK.as_str(), id)? {
                None => RetryResult::NotFound,
                Some(t) if n == 1 => RetryResult::Queued(t),
                Some(t) => RetryResult::NotRetryable(t),
            })
        })?;
        Ok(result)
    }

    fn delete_task(&self, id: i64) -> StoreResult<Option<Task>> {
        self.transaction(|tx| {
            // Locked, so a concurrent retry on another host cannot slip in between.
            let Some(task) = load_task(self, tx, SELECT_TASK_LOCKED.as_str(), id)? else {
                return Ok(None);
            };
            if !rule(Event::Delete).allows(task.status) {
                return Err(StoreError::conflict(format!(
                    "task {id} is {}; cancel it before deleting",
                    task.status
                )));
            }
            let waiting: Option<bool> =
                tx.exec_first(&*self.sql(&HAS_UNRESOLVED_SQL), params![id])?;
            if waiting == Some(true) {
                return Err(StoreError::conflict(dependencies::delete_refused(id)));
            }
            tx.exec_drop(
                &*self.sql("DELETE FROM s_task_logs WHERE task_id = ?"),
                params![id],
            )?;
            tx.exec_drop(
                &*self.sql("DELETE FROM s_task_dependencies WHERE task_id = ?"),
                params![id],
            )?;
            tx.exec_drop(&*self.sql("DELETE FROM s_tasks WHERE id = ?"), params![id])?;
            Ok(Some(task))
        })
    }

    fn task(&self, id: i64) -> StoreResult<Option<Task>> {
        load_task(self, &mut self.conn()?, SELECT_TASK.as_str(), id)
    }

    fn tasks(&self, filter: &TaskFilter) -> StoreResult<(Vec<Task>, i64)> {
        let FilterSql {
            where_sql,
            args,
            page_sql,
        } = filter_sql(filter, &DIALECT);
        let (where_sql, values) = positional(&where_sql, &args);
        let count = self.dynamic(&format!("SELECT COUNT(*) FROM s_tasks {where_sql}"));
        let page = self.dynamic(&format!(
            "SELECT {} FROM s_tasks {where_sql} {page_sql}",
            *TASK_COLUMNS
        ));
        let params = || mysql::Params::Positional(values.clone());
        self.transaction(|tx| {
            let total: Option<i64> = tx.exec_first(&count, params())?;
            let rows: Vec<mysql::Row> = tx.exec(&page, params())?;
            let tasks = rows
                .iter()
                .map(task_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((tasks, total.unwrap_or(0)))
        })
    }

    fn pending_tasks(&self, limit: i64) -> StoreResult<(Vec<Task>, i64)> {
        let limit = limit.max(0);
        let (count, page) = (
            self.sql(PENDING_SQL[0].as_str()),
            self.sql(PENDING_SQL[1].as_str()),
        );
        self.transaction(|tx| {
            let total: Option<i64> = tx.query_first(&*count)?;
            let rows: Vec<mysql::Row> = tx.exec(&*page, params![limit])?;
            let tasks = rows
                .iter()
                .map(task_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((tasks, total.unwrap_or(0)))
        })
    }

    fn task_logs(&self, id: i64, limit: i64) -> StoreResult<Vec<LogLine>> {
        let rows: Vec<(i64, i64, i64, i64, String)> = self.conn()?.exec(
            &*self.sql(
                "SELECT task_id, attempt, level, at, line FROM (
                   SELECT id, task_id, attempt, level, at, line FROM s_task_logs
                    WHERE task_id = ? ORDER BY id DESC LIMIT ?) AS latest ORDER BY id",
            ),
            params![id, limit.max(0)],
        )?;
        Ok(rows
            .into_iter()
            .map(|(task_id, attempt, level, at, line)| LogLine {
                task_id,
                attempt: narrow(attempt),
                level: level.clamp(0, 255) as u8,
                at,
                line,
            })
            .collect())
    }

    fn stats(&self) -> StoreResult<Stats> {
        let counts: Vec<(i64, i64)> = self
            .conn()?
            .query(&*self.sql("SELECT status, COUNT(*) FROM s_tasks GROUP BY status"))?;
        Ok(stats_from_counts(counts))
    }

    fn delete_finished_before(&self, cutoff: i64) -> StoreResult<Vec<i64>> {
        let select = self.sql(RETENTION_SQL.as_str());
        let orphaned = self.sql(unique::ORPHANED_KEYS.as_str());
        self.transaction(|tx| {
            let ids: Vec<i64> = tx.exec(&*select, params![clamp_ms(cutoff)])?;
            for chunk in ids.chunks(1000) {
                let values =
                    || mysql::Params::Positional(chunk.iter().map(|&id| Value::from(id)).collect());
                tx.exec_drop(
                    self.dynamic(&format!(
                        "DELETE FROM s_task_logs WHERE task_id IN ({})",
                        marks(chunk.len())
                    )),
                    values(),
                )?;
                tx.exec_drop(
                    self.dynamic(&format!(
                        "DELETE FROM s_task_dependencies WHERE task_id IN ({})",
                        marks(chunk.len())
                    )),
                    values(),
                )?;
                tx.exec_drop(
                    self.dynamic(&format!(
                        "DELETE FROM s_tasks WHERE id IN ({})",
                        marks(chunk.len())
                    )),
                    values(),
                )?;
            }
            tx.exec_drop(&*orphaned, params![cutoff])?;
            Ok(ids)
        })
    }

    fn external_change_counter(&self) -> StoreResult<Option<i64>> {
        Ok(self.wake.counter())
    }
}
