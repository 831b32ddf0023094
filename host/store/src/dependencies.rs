//! Task dependencies: a task created with `depends_on` waits until every task it depends on
//! (its parents) finished, then runs; a parent that fails or is cancelled cancels it instead,
//! unless it was created with `on_parent_failure = run`.
//!
//! **Storage.** One row per edge in `s_task_dependencies (task_id, depends_on, resolved)`,
//! indexed from both ends, and on the child `waiting_parents` (its unresolved edges) and
//! `on_parent_failure`. A waiting child is an ordinary pending row whose `run_at` is
//! [`WAITING_RUN_AT`]: the claim reads the partial index `(priority_rank, run_at, id) WHERE
//! status = 10` only up to `run_at <= now`, so waiting tasks cost a claim nothing, and
//! `next_due` stops below the sentinel ([`crate::task_state::sql::not_waiting`]).
//!
//! **Resolution** (`resolve`, the same code for every driver over `DepTx`): for each
//! finished parent, its unresolved edges are locked and marked resolved (`resolved = 0` →
//! `1`, so each edge is resolved once, whoever repeats the call); each child of such an edge
//! is locked and, if still waiting, either cancelled (`Event::CancelForParent`: the parent
//! failed or was cancelled and the child cancels on failure), or counted down by one, and
//! released (`Event::ReleaseDependant`: `run_at` = its `start_at` or now, whichever is later)
//! when its counter reaches 0. A cancelled child is itself a finished parent: the loop goes on
//! with it (the cascade). The cost of one parent's end is one read and write per child edge,
//! never a count of a child's other parents, so a task on 10,000 parents is released in
//! O(1) per parent.
//!
//! **When.** The engine calls [`DependencyStore::resolve_dependencies`] right after every
//! write that finishes tasks (the finisher's batches, lease recovery, a user's cancel), and
//! the ticker sweeps every few seconds ([`DependencyStore::sweep_dependencies`]) for finished
//! parents whose edges are still unresolved: what a `kill -9` between the two writes, or a
//! failed resolve, leaves. Both are idempotent, so a dependant is released (and runs) once.
//!
//! **Creation.** Parents must exist when the child is created (the engine refuses unknown ids
//! with [`DependencyStore::missing_tasks`] first): so an edge always points to a task
//! committed before the child, and no cycle can be made. The insert transaction links the
//! parents it finds (locked `FOR SHARE` on the servers, so a parent cannot finish unseen
//! in between) and resolves the ones already finished at once, in the same transaction.
//!
//! **Rules users see.** A user's retry of a failed parent does not revive a dependant it
//! cancelled (the edge stays resolved); a user's retry of a cancelled dependant runs it at
//! once, without waiting again (`waiting_parents` is reset). A finished task whose end was
//! not passed on yet (an unresolved edge) is not deleted (409), and retention skips it until
//! the next sweep resolved it.

use crate::model::{OnParentFailure, TaskStatus};
use crate::task_state::sql::{guard_sql, quoted, status_in, target};
use crate::task_state::{
    created_message, parent_ended_message, Event, FINISHED, WAITING_FOR_PARENTS,
};
use crate::StoreResult;
use std::sync::LazyLock;

/// The `run_at` of a task waiting for its parents: 9999-12-31T23:59:59.999Z in UNIX ms, the
/// largest time every backend stores (MySQL's `DATETIME` ends there), far past any real due
/// time. Never shown as a time: the task view shows `run_at: null` for a waiting task.
pub const WAITING_RUN_AT: i64 = 253_402_300_799_999;

/// Most parents one task may depend on (a batch's `on_complete` task depends on all of its
/// tasks).
pub const MAX_PARENTS: usize = 10_000;

/// How many related tasks a view lists before it only counts ([`TaskDependencies`]).
pub const LISTED: usize = 50;

/// What one resolution did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Dependants that became due (their last parent finished).
    pub released: Vec<i64>,
    /// Dependants cancelled because a parent failed or was cancelled, with their message.
    pub cancelled: Vec<(i64, String)>,
}

impl Resolution {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.released.is_empty() && self.cancelled.is_empty()
    }
}

/// A task related to another by a dependency, as a view lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// Its id.
    pub id: i64,
    /// Its status; `None` when it was deleted.
    pub status: Option<TaskStatus>,
    /// Whether the edge was resolved (the parent's end was passed to the child).
    pub resolved: bool,
}

/// A task's dependencies both ways, for its view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskDependencies {
    /// The tasks it depends on, by id (at most [`LISTED`]).
    pub parents: Vec<Related>,
    /// How many tasks it depends on in all.
    pub parent_count: i64,
    /// The tasks that depend on it, by id (at most [`LISTED`]).
    pub dependants: Vec<Related>,
    /// How many tasks depend on it in all.
    pub dependant_count: i64,
    /// How many of its parents it still waits for (0 once released, cancelled or retried).
    pub waiting_parents: i64,
    /// The lowest id among the parents it still waits for.
    pub first_waiting: Option<i64>,
    /// What a failed or cancelled parent does to it.
    pub on_parent_failure: OnParentFailure,
}

/// What a driver stores for dependencies; every driver implements it with the shared SQL of
/// this module over its own [`DepTx`].
pub trait DependencyStore: Send + Sync {
    /// The ids among `ids` that name no task (the engine refuses a create that depends on
    /// them; a task's own or a future id is among them, so no cycle can be made).
    fn missing_tasks(&self, ids: &[i64]) -> StoreResult<Vec<i64>>;
    /// Passes the end of the finished tasks among `parents` to their dependants, in one
    /// transaction (see the module doc); idempotent: a repeat does nothing.
    fn resolve_dependencies(&self, parents: &[i64], now: i64) -> StoreResult<Resolution>;
    /// Resolves up to `limit` finished parents whose edges are still unresolved (what a kill
    /// between a finish and its resolution leaves).
    fn sweep_dependencies(&self, now: i64, limit: usize) -> StoreResult<Resolution>;
    /// A task's parents and dependants (the first [`LISTED`] of each, and their counts).
    fn task_dependencies(&self, id: i64) -> StoreResult<TaskDependencies>;
}

/// A bound value of the statements of this module.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    /// An integer (ids, counts, times in UNIX ms).
    Int(i64),
    /// Text (a status message).
    Text(&'a str),
}

/// One open transaction (or a read connection) of a driver, as this module's code uses it.
/// Every value read is an integer column, or NULL.
pub(crate) trait DepTx {
    /// Runs a statement; returns the rows it matched.
    fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<u64>;
    /// Runs a query; returns its rows, each column an integer or NULL.
    fn query(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<Vec<Vec<Option<i64>>>>;
    /// Runs a query whose first column is text (a name, a task's data); returns it per row.
    fn query_text(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> StoreResult<Vec<Option<String>>>;
}

/// The SQL dialects (placeholders, locking clauses, time columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `?` placeholders, no row locks (one writer).
    Sqlite,
    /// `$n` placeholders, `FOR SHARE` / `FOR UPDATE`.
    Postgres,
    /// `?` placeholders, `LOCK IN SHARE MODE` / `FOR UPDATE`, the seed's times as `DATETIME(3)`.
    Mysql,
}

impl Dialect {
    pub(crate) fn share(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR SHARE",
            Dialect::Mysql => " LOCK IN SHARE MODE",
        }
    }

    pub(crate) fn update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::Mysql => " FOR UPDATE",
        }
    }

    /// A seed time column (`start_at`, `finished_at`, `updated_at`) written from ms.
    pub(crate) fn time_in(self, placeholder: &str) -> String {
        match self {
            Dialect::Mysql => crate::mysql::from_ms(placeholder),
            _ => placeholder.to_owned(),
        }
    }

    /// A seed time column read as ms.
    pub(crate) fn time_out(self, column: &str) -> String {
        match self {
            Dialect::Mysql => crate::mysql::to_ms(column),
            _ => column.to_owned(),
        }
    }

    /// `sql` with its `?` placeholders as the dialect writes them (`$1, $2, ...`).
    pub(crate) fn placeholders(self, sql: String) -> String {
        if self != Dialect::Postgres {
            return sql;
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// The statements of this module in one dialect.
pub(crate) struct Statements {
    /// Whose statements these are (the batch statements a release reads, `crate::batches`).
    pub(crate) dialect: Dialect,
    /// Edges from a batch's `on_complete` task to every task of the batch, in one statement
    /// (`?` child, `?` batch id).
    link_batch: String,
    /// The finished tasks of a batch (`?` batch id).
    finished_in_batch: String,
    /// A parent's status, locked against a concurrent finish (`?` id).
    parent_status: String,
    /// A new edge (`?` child, `?` parent).
    link: String,
    /// A new child waits (`?` count, `?` on_parent_failure, `?` id).
    mark_waiting: String,
    /// A new child's `on_parent_failure` when it waits for nothing (`?` value, `?` id).
    set_failure_rule: String,
    /// A parent's unresolved edges, locked (`?` parent).
    open_edges: String,
    /// Marks them resolved (`?` parent).
    resolve_edges: String,
    /// A waiting child, locked: waiting_parents, on_parent_failure, start_at (`?` id).
    lock_waiting: String,
    /// `?` count, `?` now, `?` id.
    count_down: String,
    /// `Event::ReleaseDependant`: `?` run_at, `?` message, `?` now, `?` id.
    release: String,
    /// `Event::CancelForParent`: `?` message, `?` now, `?` now, `?` now, `?` id.
    cancel: String,
    /// Finished parents with unresolved edges (`?` limit).
    sweep: String,
    /// Whether a task exists (`?` id).
    exists: String,
    /// A task's parents (`?` id, `?` limit): id, status, resolved.
    parents: String,
    /// A task's dependants (`?` id, `?` limit): id, status, resolved.
    dependants: String,
    /// Counts: parents, dependants (`?` id, `?` id).
    counts: String,
    /// waiting_parents, on_parent_failure, first unresolved parent (`?` id, `?` id).
    waiting: String,
}

fn build(d: Dialect) -> Statements {
    let p = |sql: String| d.placeholders(sql);
    let pending = status_in("status", &[TaskStatus::Pending]);
    let finished = status_in("t.status", FINISHED);
    Statements {
        dialect: d,
        link_batch: p(
            "INSERT INTO s_task_dependencies (task_id, depends_on, resolved)
             SELECT ?, id, 0 FROM s_tasks WHERE batch_id = ?"
                .into(),
        ),
        finished_in_batch: p(format!(
            "SELECT t.id FROM s_tasks t WHERE t.batch_id = ? AND {finished} ORDER BY t.id"
        )),
        parent_status: p(format!(
            "SELECT status FROM s_tasks WHERE id = ?{}",
            d.share()
        )),
        link: p("INSERT INTO s_task_dependencies (task_id, depends_on, resolved) VALUES (?, ?, 0)"
            .into()),
        mark_waiting: p(format!(
            "UPDATE s_tasks SET waiting_parents = ?, on_parent_failure = ?, run_at = {WAITING_RUN_AT},
                    message = {message}
              WHERE id = ?",
            message = quoted(WAITING_FOR_PARENTS),
        )),
        set_failure_rule: p("UPDATE s_tasks SET on_parent_failure = ? WHERE id = ?".into()),
        open_edges: p(format!(
            "SELECT task_id FROM s_task_dependencies WHERE resolved = 0 AND depends_on = ?
              ORDER BY task_id{}",
            d.update()
        )),
        resolve_edges: p(
            "UPDATE s_task_dependencies SET resolved = 1 WHERE resolved = 0 AND depends_on = ?"
                .into(),
        ),
        lock_waiting: p(format!(
            "SELECT waiting_parents, on_parent_failure, {start_at} FROM s_tasks
              WHERE id = ? AND {pending} AND waiting_parents > 0{lock}",
            start_at = d.time_out("start_at"),
            lock = d.update(),
        )),
        count_down: p(format!(
            "UPDATE s_tasks SET waiting_parents = ?, updated_at = {now}
              WHERE id = ? AND {pending} AND waiting_parents > 0",
            now = d.time_in("?"),
        )),
        release: p(format!(
            "UPDATE s_tasks SET waiting_parents = 0, run_at = ?, message = ?, updated_at = {now}
              WHERE id = ? AND {guard} AND waiting_parents > 0",
            now = d.time_in("?"),
            guard = guard_sql(Event::ReleaseDependant),
        )),
        cancel: p(format!(
            "UPDATE s_tasks SET status = {cancelled}, waiting_parents = 0, message = ?,
                    run_at = ?, finished_at = {now}, updated_at = {now2}
              WHERE id = ? AND {guard} AND waiting_parents > 0",
            cancelled = target(Event::CancelForParent),
            now = d.time_in("?"),
            now2 = d.time_in("?"),
            guard = guard_sql(Event::CancelForParent),
        )),
        sweep: p(format!(
            "SELECT DISTINCT d.depends_on FROM s_task_dependencies d
               JOIN s_tasks t ON t.id = d.depends_on
              WHERE d.resolved = 0 AND {finished}
              ORDER BY d.depends_on LIMIT ?"
        )),
        exists: p("SELECT id FROM s_tasks WHERE id = ?".into()),
        parents: p(
            "SELECT d.depends_on, t.status, d.resolved FROM s_task_dependencies d
               LEFT JOIN s_tasks t ON t.id = d.depends_on
              WHERE d.task_id = ? ORDER BY d.depends_on LIMIT ?"
                .into(),
        ),
        dependants: p(
            "SELECT d.task_id, t.status, d.resolved FROM s_task_dependencies d
               LEFT JOIN s_tasks t ON t.id = d.task_id
              WHERE d.depends_on = ? ORDER BY d.task_id LIMIT ?"
                .into(),
        ),
        counts: p("SELECT (SELECT COUNT(*) FROM s_task_dependencies WHERE task_id = ?),
                          (SELECT COUNT(*) FROM s_task_dependencies WHERE depends_on = ?)"
            .into()),
        waiting: p(
            "SELECT waiting_parents, on_parent_failure,
                    (SELECT MIN(depends_on) FROM s_task_dependencies
                      WHERE task_id = ? AND resolved = 0)
               FROM s_tasks WHERE id = ?"
                .into(),
        ),
    }
}

static SQLITE: LazyLock<Statements> = LazyLock::new(|| build(Dialect::Sqlite));
static POSTGRES: LazyLock<Statements> = LazyLock::new(|| build(Dialect::Postgres));
static MYSQL: LazyLock<Statements> = LazyLock::new(|| build(Dialect::Mysql));

/// The statements of `dialect`, built once (stable text for the prepared-statement caches).
pub(crate) fn statements(dialect: Dialect) -> &'static Statements {
    match dialect {
        Dialect::Sqlite => &SQLITE,
        Dialect::Postgres => &POSTGRES,
        Dialect::Mysql => &MYSQL,
    }
}

/// Links a new task `child` to its `parents` in its insert transaction: an edge per parent
/// that exists (read locked, so a parent cannot finish unseen before this commits), the
/// child waiting for them, and the parents already finished resolved at once (a completed
/// one counts, a failed or cancelled one applies the child's rule now).
pub(crate) fn link(
    tx: &mut dyn DepTx,
    sql: &'static Statements,
    child: i64,
    parents: &[i64],
    rule: OnParentFailure,
    now: i64,
) -> StoreResult<Resolution> {
    let mut parents = parents.to_vec();
    parents.sort_unstable();
    parents.dedup();
    let mut linked = Vec::with_capacity(parents.len());
    let mut finished = Vec::new();
    for &parent in &parents {
        let rows = tx.query(&sql.parent_status, &[Arg::Int(parent)])?;
        let Some(status) = rows.first().and_then(|r| r[0]) else {
            // Deleted since the engine checked it: it had finished (only finished tasks are
            // deleted), with an end no one can tell any more; it is not waited for.
            continue;
        };
        tx.execute(&sql.link, &[Arg::Int(child), Arg::Int(parent)])?;
        linked.push(parent);
        if TaskStatus::from_code(status).is_some_and(TaskStatus::is_finished) {
            finished.push(parent);
        }
    }
    if linked.is_empty() {
        tx.execute(
            &sql.set_failure_rule,
            &[Arg::Int(rule.code()), Arg::Int(child)],
        )?;
        return Ok(Resolution::default());
    }
    tx.execute(
        &sql.mark_waiting,
        &[
            Arg::Int(linked.len() as i64),
            Arg::Int(rule.code()),
            Arg::Int(child),
        ],
    )?;
    resolve(tx, sql, &finished, now)
}

/// Links a batch's `on_complete` task `child` to every task of batch `batch_id` in its
/// insert transaction: one set-based statement (`INSERT ... SELECT`) whatever the batch's
/// size, the child waiting for them all with `on_parent_failure = run`, and the tasks already
/// finished (a batch task cancelled at creation for a failed parent of its own) resolved at
/// once. Returns how many edges it made (0: the child waits for nothing) and what resolved.
pub(crate) fn link_batch(
    tx: &mut dyn DepTx,
    sql: &'static Statements,
    child: i64,
    batch_id: i64,
    now: i64,
) -> StoreResult<(u64, Resolution)> {
    let linked = tx.execute(&sql.link_batch, &[Arg::Int(child), Arg::Int(batch_id)])?;
    let rule = OnParentFailure::Run;
    if linked == 0 {
        tx.execute(
            &sql.set_failure_rule,
            &[Arg::Int(rule.code()), Arg::Int(child)],
        )?;
        return Ok((0, Resolution::default()));
    }
    tx.execute(
        &sql.mark_waiting,
        &[
            Arg::Int(linked as i64),
            Arg::Int(rule.code()),
            Arg::Int(child),
        ],
    )?;
    let finished: Vec<i64> = tx
        .query(&sql.finished_in_batch, &[Arg::Int(batch_id)])?
        .into_iter()
        .filter_map(|r| r[0])
        .collect();
    Ok((linked, resolve(tx, sql, &finished, now)?))
}

/// Passes the end of the finished tasks among `parents` on to their dependants, cascading
/// through the dependants it cancels (see the module doc). Idempotent.
pub(crate) fn resolve(
    tx: &mut dyn DepTx,
    sql: &'static Statements,
    parents: &[i64],
    now: i64,
) -> StoreResult<Resolution> {
    let mut done = Resolution::default();
    let mut round: Vec<i64> = parents.to_vec();
    round.sort_unstable();
    round.dedup();
    while !round.is_empty() {
        let mut next = Vec::new();
        for parent in round {
            // Edges first: most finished tasks have none, and the read stops there.
            let children: Vec<i64> = tx
                .query(&sql.open_edges, &[Arg::Int(parent)])?
                .into_iter()
                .filter_map(|r| r[0])
                .collect();
            if children.is_empty() {
                continue;
            }
            let rows = tx.query(&sql.parent_status, &[Arg::Int(parent)])?;
            let Some(status) = rows
                .first()
                .and_then(|r| r[0])
                .and_then(TaskStatus::from_code)
                .filter(|s| s.is_finished())
            else {
                // Not finished (a caller's mistake, or retried since): its edges stay open
                // (the lock taken on them ends with the transaction).
                continue;
            };
            tx.execute(&sql.resolve_edges, &[Arg::Int(parent)])?;
            for child in children {
                if let Some(cancelled) = pass_on(tx, sql, parent, status, child, now, &mut done)? {
                    next.push(cancelled);
                }
            }
        }
        round = next;
    }
    Ok(done)
}

/// One resolved edge `parent → child`: the child counts down, is released or is cancelled.
/// Returns the child when it was cancelled (its own dependants follow).
fn pass_on(
    tx: &mut dyn DepTx,
    sql: &'static Statements,
    parent: i64,
    status: TaskStatus,
    child: i64,
    now: i64,
    done: &mut Resolution,
) -> StoreResult<Option<i64>> {
    let rows = tx.query(&sql.lock_waiting, &[Arg::Int(child)])?;
    let Some(row) = rows.first() else {
        // No longer waiting (cancelled by another parent or a user, or retried).
        return Ok(None);
    };
    let waiting = row[0].unwrap_or(0);
    let rule = OnParentFailure::from_code(row[1].unwrap_or(0));
    let start_at = row[2];
    if status != TaskStatus::Completed && rule == OnParentFailure::Cancel {
        let message = parent_ended_message(parent, status);
        let n = tx.execute(
            &sql.cancel,
            &[
                Arg::Text(&message),
                Arg::Int(now),
                Arg::Int(now),
                Arg::Int(now),
                Arg::Int(child),
            ],
        )?;
        if n == 1 {
            done.cancelled.push((child, message));
            return Ok(Some(child));
        }
        return Ok(None);
    }
    if waiting > 1 {
        tx.execute(
            &sql.count_down,
            &[Arg::Int(waiting - 1), Arg::Int(now), Arg::Int(child)],
        )?;
        return Ok(None);
    }
    let run_at = start_at.unwrap_or(now).max(now);
    let message = created_message(start_at, now);
    let n = tx.execute(
        &sql.release,
        &[
            Arg::Int(run_at),
            Arg::Text(&message),
            Arg::Int(now),
            Arg::Int(child),
        ],
    )?;
    if n == 1 {
        // In the releasing transaction: a batch's on_complete gets the batch's counts in its
        // data exactly when it becomes due, once (the release applies once).
        crate::batches::on_release(tx, sql.dialect, child)?;
        done.released.push(child);
    }
    Ok(None)
}

/// Up to `limit` finished tasks whose edges are not all resolved, lowest id first (what the
/// sweep resolves; every driver reads it outside its writing transaction first, so an empty
/// sweep writes nothing).
pub(crate) fn finished_with_open_edges(
    tx: &mut dyn DepTx,
    sql: &'static Statements,
    limit: usize,
) -> StoreResult<Vec<i64>> {
    Ok(tx
        .query(&sql.sweep, &[Arg::Int(limit as i64)])?
        .into_iter()
        .filter_map(|r| r[0])
        .collect())
}

/// [`DependencyStore::missing_tasks`] over a driver's connection.
pub(crate) fn missing(
    tx: &mut dyn DepTx,
    sql: &'static Statements,
    ids: &[i64],
) -> StoreResult<Vec<i64>> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut missing = Vec::new();
    for id in ids {
        if tx.query(&sql.exists, &[Arg::Int(id)])?.is_empty() {
            missing.push(id);
        }
    }
    Ok(missing)
}

/// [`DependencyStore::task_dependencies`] over a driver's connection.
pub(crate) fn of_task(
    tx: &mut dyn DepTx,
    sql: &'static Statements,
    id: i64,
) -> StoreResult<TaskDependencies> {
    let related = |rows: Vec<Vec<Option<i64>>>| -> Vec<Related> {
        rows.into_iter()
            .filter_map(|r| {
                Some(Related {
                    id: r[0]?,
                    status: r[1].and_then(TaskStatus::from_code),
                    resolved: r[2].unwrap_or(0) != 0,
                })
            })
            .collect()
    };
    let limit = Arg::Int(LISTED as i64);
    let parents = related(tx.query(&sql.parents, &[Arg::Int(id), limit])?);
    let dependants = related(tx.query(&sql.dependants, &[Arg::Int(id), limit])?);
    let counts = tx.query(&sql.counts, &[Arg::Int(id), Arg::Int(id)])?;
    let waiting = tx.query(&sql.waiting, &[Arg::Int(id), Arg::Int(id)])?;
    let count = |i: usize| counts.first().and_then(|r| r[i]).unwrap_or(0);
    let waiting = waiting.first();
    Ok(TaskDependencies {
        parents,
        parent_count: count(0),
        dependants,
        dependant_count: count(1),
        waiting_parents: waiting.and_then(|r| r[0]).unwrap_or(0),
        first_waiting: waiting.and_then(|r| r[2]),
        on_parent_failure: OnParentFailure::from_code(waiting.and_then(|r| r[1]).unwrap_or(0)),
    })
}

/// The refusal of a delete of task `id` whose end was not passed to its dependants yet.
pub(crate) fn delete_refused(id: i64) -> String {
    format!(
        "task {id} has dependants still waiting for it; delete it once they were released or \
         cancelled (within seconds of its end)"
    )
}

/// The ids among a list (`{list}`: a dialect's list expression) that have unresolved edges:
/// the drivers read it before they open a write transaction, so finishing tasks that nobody
/// depends on (nearly all) costs one indexed read per batch.
pub(crate) fn with_open_edges(list: &str) -> String {
    format!(
        "SELECT DISTINCT depends_on FROM s_task_dependencies WHERE resolved = 0 AND depends_on IN ({list})"
    )
}

/// Whether a task has edges whose resolution is still due: it must not be deleted yet (its
/// dependants would wait for ever). `{id}` is the task's id expression.
pub(crate) fn unresolved_edges_of(id: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM s_task_dependencies ud WHERE ud.resolved = 0 AND ud.depends_on = {id})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_statements_number_their_placeholders() {
        let pg = statements(Dialect::Postgres);
        assert!(pg.cancel.contains("$5"), "{}", pg.cancel);
        assert!(!pg.cancel.contains('?'));
        assert!(statements(Dialect::Sqlite).cancel.contains('?'));
        assert!(statements(Dialect::Mysql).cancel.contains("TIMESTAMPADD"));
    }

    #[test]
    fn the_sentinel_is_the_last_time_every_backend_stores() {
        assert_eq!(
            crate::clock::rfc3339(WAITING_RUN_AT),
            "9999-12-31T23:59:59.999Z"
        );
    }
}
