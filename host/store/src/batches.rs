//! Batches: many tasks created in one transaction under one batch id, read, counted and
//! cancelled as one, with an optional `on_complete` task that runs once after all of them.
//!
//! **Storage.** One row per batch in `s_batches (id, name, created_at, created_by, total,
//! on_complete_task_id, cancelled_at)` (migration 0015, times in UNIX ms on every backend) and
//! `s_tasks.batch_id` (indexed `(batch_id, id)`). `total` is the number of tasks created in the
//! batch (a task whose `unique_key` was held creates nothing and is not counted).
//!
//! **Creation** ([`BatchStore::insert_batch`]): in one transaction of the driver the batch row,
//! every task (through the driver's ordinary insert path, so unique keys and `depends_on`
//! hold as for single creates), their `batch_id` (chunked `UPDATE ... WHERE id IN (...)` of
//! [`ASSIGN_CHUNK`] ids), and the `on_complete` task. All or nothing: a failure rolls
//! everything back.
//!
//! **on_complete.** A dependant of every task of the batch with `on_parent_failure = run`,
//! linked by one set-based statement (`INSERT INTO s_task_dependencies ... SELECT ... WHERE
//! batch_id = ?`, see `crate::dependencies::link_batch`), so a batch of 10,000 links in one
//! round trip. It is released by the dependency machinery like any dependant (exactly once:
//! the release is guarded by `waiting_parents > 0`, and the sweep redoes what a `kill -9`
//! interrupted). **Its data receives the batch's figures in the releasing transaction**
//! ([`on_release`]): `data.batch = {id, name, total, completed, failed, cancelled,
//! task_ids}`. Written there rather than when the host starts it because the release is the
//! one moment that happens once and commits atomically with the figures: a start happens
//! once per attempt (retries would rewrite it, possibly with other figures after a user's
//! retry of a batch task), and a kill between a start-time fill and its commit would need a
//! second mechanism. A kill before the release's commit rolls both back; the sweep releases
//! it again and fills it then.
//!
//! **Cancel** ([`BatchStore::cancel_batch`]): every pending task of the batch is cancelled
//! (`Event::CancelPending`, set-based) and every leased one gets its cancel flag
//! (`Event::RequestCancel`), under the state machine's guards; the batch row records
//! `cancelled_at`. The `on_complete` task is not cancelled: it runs (its rule is `run`) once
//! the running tasks ended, with the cancelled ones counted, so a cancelled batch still
//! reports how far it got.

use crate::dependencies::{Arg, DepTx, Dialect};
use crate::model::{NewTask, TaskStatus};
use crate::task_state::sql::{guard_sql, message, target};
use crate::task_state::Event;
use crate::{Inserted, StoreResult};
use serde_json::{json, Value};
use std::sync::LazyLock;

/// Most tasks one batch creates: its `on_complete` depends on all of them, and a task depends
/// on at most [`crate::dependencies::MAX_PARENTS`].
pub const MAX_BATCH_TASKS: usize = crate::dependencies::MAX_PARENTS;

/// Ids per `UPDATE ... SET batch_id` statement (the last chunk repeats its last id).
pub const ASSIGN_CHUNK: usize = 500;

/// A batch to create.
#[derive(Debug, Clone, Default)]
pub struct NewBatch {
    /// A name for people (`None` or empty: none).
    pub name: Option<String>,
    /// The API token that created it; `None` = not over the API.
    pub created_by: Option<i64>,
    /// Its tasks, in order (at least one, at most [`MAX_BATCH_TASKS`]).
    pub tasks: Vec<NewTask>,
    /// The task that runs once after all of them (its `depends_on` must be empty: the store
    /// links it to the batch).
    pub on_complete: Option<NewTask>,
}

/// What [`BatchStore::insert_batch`] created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchCreated {
    /// The new batch's id.
    pub id: i64,
    /// Per task, in order, its id (or, for a duplicate, the holder's; not in the batch).
    pub tasks: Vec<Inserted>,
    /// The `on_complete` task's id.
    pub on_complete_task_id: Option<i64>,
}

/// A batch row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRow {
    /// Its id.
    pub id: i64,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Creation time (UNIX ms).
    pub created_at: i64,
    /// The creating token's id.
    pub created_by: Option<i64>,
    /// Tasks created in it.
    pub total: i64,
    /// Its `on_complete` task.
    pub on_complete_task_id: Option<i64>,
    /// When it was cancelled (UNIX ms).
    pub cancelled_at: Option<i64>,
}

/// A batch's tasks per status, as stored now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Pending (waiting ones included).
    pub pending: i64,
    /// Claimed, not started.
    pub preparing: i64,
    /// Running.
    pub running: i64,
    /// Completed.
    pub completed: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
    /// The sum of `progress` (0-100) over the unfinished tasks.
    pub unfinished_progress: i64,
    /// The earliest `finished_at` of a finished task (UNIX ms).
    pub first_finished_at: Option<i64>,
    /// The latest `finished_at` of a finished task (UNIX ms).
    pub last_finished_at: Option<i64>,
}

impl BatchCounts {
    /// Finished tasks (completed, failed, cancelled).
    pub fn finished(&self) -> i64 {
        self.completed + self.failed + self.cancelled
    }

    /// Tasks still to finish.
    pub fn unfinished(&self) -> i64 {
        self.pending + self.preparing + self.running
    }
}

/// A batch with its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The row.
    pub row: BatchRow,
    /// Its tasks per status.
    pub counts: BatchCounts,
}

/// What [`BatchStore::cancel_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchCancel {
    /// Pending tasks now cancelled (their ends are to be passed on to their dependants).
    pub cancelled: Vec<i64>,
    /// Leased tasks whose cancel flag is now set.
    pub requested: Vec<i64>,
}

/// What a driver stores for batches; every driver implements it over the shared statements of
/// this module (its own insert path for the tasks).
pub trait BatchStore: Send + Sync {
    /// Creates the batch, its tasks and its `on_complete` task in one transaction (see the
    /// module doc); all or nothing.
    fn insert_batch(&self, batch: &NewBatch, now: i64) -> StoreResult<BatchCreated>;
    /// One batch with its counts.
    fn batch(&self, id: i64) -> StoreResult<Option<Batch>>;
    /// A page of batches, newest first, and how many there are.
    fn batches(&self, limit: i64, offset: i64) -> StoreResult<(Vec<Batch>, i64)>;
    /// Cancels the batch's pending tasks and flags its leased ones (see the module doc);
    /// `None` when there is no such batch.
    fn cancel_batch(&self, id: i64, now: i64) -> StoreResult<Option<BatchCancel>>;
}

/// The statements of this module in one dialect.
pub(crate) struct Statements {
    open: String,
    assign: String,
    close: String,
    close_with: String,
    row: String,
    name: String,
    counts: String,
    page: String,
    count: String,
    task_ids: String,
    on_complete_of: String,
    meta: String,
    set_meta: String,
    lock: String,
    pending_ids: String,
    cancel_pending: String,
    leased_ids: String,
    request_cancel: String,
    mark_cancelled: String,
}

fn build(d: Dialect) -> Statements {
    let p = |sql: String| d.placeholders(sql);
    // An integer aggregate as BIGINT (PostgreSQL's SUM of BIGINT is NUMERIC, MySQL's DECIMAL).
    let int = |e: &str| match d {
        Dialect::Sqlite => e.to_owned(),
        Dialect::Postgres => format!("CAST({e} AS BIGINT)"),
        Dialect::Mysql => format!("CAST({e} AS SIGNED)"),
    };
    let ids = vec!["?"; ASSIGN_CHUNK].join(", ");
    let finished_at = d.time_out("finished_at");
    Statements {
        // MySQL has no `RETURNING` (MariaDB has): the id comes from `LAST_INSERT_ID()`.
        open: p(format!(
            "INSERT INTO s_batches (name, created_at, created_by, total)
             VALUES (NULLIF(?, ''), ?, NULLIF({by}, 0), 0){returning}",
            by = int("?"),
            returning = if d == Dialect::Mysql {
                ""
            } else {
                " RETURNING id"
            },
        )),
        assign: p(format!(
            "UPDATE s_tasks SET batch_id = ? WHERE id IN ({ids})"
        )),
        close: p("UPDATE s_batches SET total = ? WHERE id = ?".into()),
        close_with: p(
            "UPDATE s_batches SET total = ?, on_complete_task_id = ? WHERE id = ?".into(),
        ),
        row: p(
            "SELECT id, created_at, created_by, total, on_complete_task_id, cancelled_at
               FROM s_batches WHERE id = ?"
                .into(),
        ),
        name: p("SELECT name FROM s_batches WHERE id = ?".into()),
        counts: p(format!(
            "SELECT status, COUNT(*), {sum}, {min}, {max} FROM s_tasks WHERE batch_id = ?
              GROUP BY status",
            sum = int("SUM(progress)"),
            min = int(&format!("MIN({finished_at})")),
            max = int(&format!("MAX({finished_at})")),
        )),
        page: p("SELECT id FROM s_batches ORDER BY id DESC LIMIT ? OFFSET ?".into()),
        count: "SELECT COUNT(*) FROM s_batches".into(),
        task_ids: p("SELECT id FROM s_tasks WHERE batch_id = ? ORDER BY id".into()),
        on_complete_of: p("SELECT id FROM s_batches WHERE on_complete_task_id = ?".into()),
        meta: p("SELECT meta FROM s_tasks WHERE id = ?".into()),
        set_meta: p("UPDATE s_tasks SET meta = ? WHERE id = ?".into()),
        lock: p(format!(
            "SELECT id FROM s_batches WHERE id = ?{}",
            d.update()
        )),
        pending_ids: p(format!(
            "SELECT id FROM s_tasks WHERE batch_id = ? AND {guard} ORDER BY id{lock}",
            guard = guard_sql(Event::CancelPending),
            lock = d.update(),
        )),
        cancel_pending: p(format!(
            "UPDATE s_tasks SET status = {cancelled}, message = {message},
                    finished_at = {now}, updated_at = {now2}
              WHERE batch_id = ? AND {guard}",
            cancelled = target(Event::CancelPending),
            message = message(Event::CancelPending),
            now = d.time_in("?"),
            now2 = d.time_in("?"),
            guard = guard_sql(Event::CancelPending),
        )),
        leased_ids: p(format!(
            "SELECT id FROM s_tasks WHERE batch_id = ? AND {guard} ORDER BY id{lock}",
            guard = guard_sql(Event::RequestCancel),
            lock = d.update(),
        )),
        request_cancel: p(format!(
            "UPDATE s_tasks SET cancel_requested = TRUE, message = {message}, updated_at = {now}
              WHERE batch_id = ? AND {guard}",
            message = message(Event::RequestCancel),
            now = d.time_in("?"),
            guard = guard_sql(Event::RequestCancel),
        )),
        mark_cancelled: p(
            "UPDATE s_batches SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL".into(),
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

/// A time as MySQL's seed columns take it (inside `DATETIME`'s range); as is elsewhere.
fn time_arg(d: Dialect, ms: i64) -> i64 {
    match d {
        Dialect::Mysql => crate::mysql::clamp_ms(ms),
        _ => ms,
    }
}

/// The batch row, first in the creating transaction; returns its id.
pub(crate) fn open(tx: &mut dyn DepTx, d: Dialect, batch: &NewBatch, now: i64) -> StoreResult<i64> {
    let sql = statements(d);
    // `Arg` has no NULL: an empty name and a token id 0 are written as NULL (`NULLIF`).
    let name = batch.name.as_deref().unwrap_or("");
    let args = [
        Arg::Text(name),
        Arg::Int(now),
        Arg::Int(batch.created_by.unwrap_or(0)),
    ];
    let rows = if d == Dialect::Mysql {
        tx.execute(&sql.open, &args)?;
        tx.query("SELECT CAST(LAST_INSERT_ID() AS SIGNED)", &[])?
    } else {
        tx.query(&sql.open, &args)?
    };
    rows.first()
        .and_then(|r| r[0])
        .ok_or_else(|| crate::StoreError::internal("the batch insert returned no id"))
}

/// After the tasks were inserted in the same transaction: their `batch_id`, the batch's
/// total and `on_complete` (linked to every task of the batch, set-based).
pub(crate) fn close(
    tx: &mut dyn DepTx,
    d: Dialect,
    id: i64,
    inserted: &[Inserted],
    on_complete: Option<i64>,
    now: i64,
) -> StoreResult<()> {
    let sql = statements(d);
    let ids: Vec<i64> = inserted
        .iter()
        .filter(|i| !i.duplicate)
        .map(|i| i.id)
        .collect();
    for chunk in ids.chunks(ASSIGN_CHUNK) {
        let mut args = Vec::with_capacity(ASSIGN_CHUNK + 1);
        args.push(Arg::Int(id));
        for k in 0..ASSIGN_CHUNK {
            args.push(Arg::Int(*chunk.get(k).unwrap_or(&chunk[chunk.len() - 1])));
        }
        tx.execute(&sql.assign, &args)?;
    }
    let total = ids.len() as i64;
    let Some(child) = on_complete else {
        tx.execute(&sql.close, &[Arg::Int(total), Arg::Int(id)])?;
        return Ok(());
    };
    tx.execute(
        &sql.close_with,
        &[Arg::Int(total), Arg::Int(child), Arg::Int(id)],
    )?;
    let deps = crate::dependencies::statements(d);
    let (linked, _) = crate::dependencies::link_batch(tx, deps, child, id, now)?;
    if linked == 0 {
        // Nothing to wait for (every task was a duplicate): due at once, with its figures.
        fill(tx, d, child, id)?;
    }
    Ok(())
}

/// Called for every dependant a resolution releases, in its transaction: when `task` is a
/// batch's `on_complete`, its data receives the batch's figures (see the module doc). One
/// indexed read for any other dependant.
pub(crate) fn on_release(tx: &mut dyn DepTx, d: Dialect, task: i64) -> StoreResult<()> {
    let sql = statements(d);
    let batch = tx
        .query(&sql.on_complete_of, &[Arg::Int(task)])?
        .first()
        .and_then(|r| r[0]);
    match batch {
        Some(batch) => fill(tx, d, task, batch),
        None => Ok(()),
    }
}

/// Writes `data.batch` of task `task` from batch `batch`'s rows as they are now.
fn fill(tx: &mut dyn DepTx, d: Dialect, task: i64, batch: i64) -> StoreResult<()> {
    let sql = statements(d);
    let Some(found) = read(tx, d, batch)? else {
        return Ok(());
    };
    let task_ids: Vec<i64> = tx
        .query(&sql.task_ids, &[Arg::Int(batch)])?
        .into_iter()
        .filter_map(|r| r[0])
        .collect();
    let meta = tx
        .query_text(&sql.meta, &[Arg::Int(task)])?
        .into_iter()
        .next()
        .flatten()
        .unwrap_or_default();
    let mut data: Value = serde_json::from_str(&meta).unwrap_or_else(|_| json!({}));
    if !data.is_object() {
        data = json!({});
    }
    let c = found.counts;
    data["batch"] = json!({
        "id": batch,
        "name": found.row.name,
        "total": found.row.total,
        "completed": c.completed,
        "failed": c.failed,
        "cancelled": c.cancelled,
        "unfinished": c.unfinished(),
        "cancelled_at": found.row.cancelled_at.map(crate::clock::rfc3339),
        "task_ids": task_ids,
    });
    tx.execute(
        &sql.set_meta,
        &[Arg::Text(&data.to_string()), Arg::Int(task)],
    )?;
    Ok(())
}

/// One batch with its counts.
pub(crate) fn read(tx: &mut dyn DepTx, d: Dialect, id: i64) -> StoreResult<Option<Batch>> {
    let sql = statements(d);
    let Some(r) = tx.query(&sql.row, &[Arg::Int(id)])?.into_iter().next() else {
        return Ok(None);
    };
    let name = tx
        .query_text(&sql.name, &[Arg::Int(id)])?
        .into_iter()
        .next()
        .flatten()
        .filter(|n| !n.is_empty());
    let mut counts = BatchCounts::default();
    for c in tx.query(&sql.counts, &[Arg::Int(id)])? {
        let n = c[1].unwrap_or(0);
        match c[0].and_then(TaskStatus::from_code) {
            Some(TaskStatus::Pending) => counts.pending += n,
            Some(TaskStatus::Preparing) => counts.preparing += n,
            Some(TaskStatus::Running) => counts.running += n,
            Some(TaskStatus::Completed) => counts.completed += n,
            Some(TaskStatus::Failed) => counts.failed += n,
            Some(TaskStatus::Cancelled) => counts.cancelled += n,
            None => {}
        }
        let status = c[0].and_then(TaskStatus::from_code);
        if status.is_some_and(TaskStatus::is_finished) {
            let (min, max) = (c[3], c[4]);
            counts.first_finished_at = match (counts.first_finished_at, min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            counts.last_finished_at = match (counts.last_finished_at, max) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        } else {
            counts.unfinished_progress += c[2].unwrap_or(0);
        }
    }
    Ok(Some(Batch {
        row: BatchRow {
            id: r[0].unwrap_or(id),
            name,
            created_at: r[1].unwrap_or(0),
            created_by: r[2].filter(|v| *v != 0),
            total: r[3].unwrap_or(0),
            on_complete_task_id: r[4],
            cancelled_at: r[5],
        },
        counts,
    }))
}

/// A page of batches, newest first, and their number.
pub(crate) fn page(
    tx: &mut dyn DepTx,
    d: Dialect,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Batch>, i64)> {
    let sql = statements(d);
    let ids: Vec<i64> = tx
        .query(&sql.page, &[Arg::Int(limit), Arg::Int(offset)])?
        .into_iter()
        .filter_map(|r| r[0])
        .collect();
    let mut batches = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(b) = read(tx, d, id)? {
            batches.push(b);
        }
    }
    let total = tx
        .query(&sql.count, &[])?
        .first()
        .and_then(|r| r[0])
        .unwrap_or(0);
    Ok((batches, total))
}

/// [`BatchStore::cancel_batch`] in a driver's write transaction.
pub(crate) fn cancel(
    tx: &mut dyn DepTx,
    d: Dialect,
    id: i64,
    now: i64,
) -> StoreResult<Option<BatchCancel>> {
    let sql = statements(d);
    if tx.query(&sql.lock, &[Arg::Int(id)])?.is_empty() {
        return Ok(None);
    }
    let ids = |rows: Vec<Vec<Option<i64>>>| -> Vec<i64> {
        rows.into_iter().filter_map(|r| r[0]).collect()
    };
    // Read under the rows' locks (one writer on SQLite): the update then changes these rows.
    let cancelled = ids(tx.query(&sql.pending_ids, &[Arg::Int(id)])?);
    let t = time_arg(d, now);
    if !cancelled.is_empty() {
        tx.execute(
            &sql.cancel_pending,
            &[Arg::Int(t), Arg::Int(t), Arg::Int(id)],
        )?;
    }
    let requested = ids(tx.query(&sql.leased_ids, &[Arg::Int(id)])?);
    if !requested.is_empty() {
        tx.execute(&sql.request_cancel, &[Arg::Int(t), Arg::Int(id)])?;
    }
    tx.execute(&sql.mark_cancelled, &[Arg::Int(now), Arg::Int(id)])?;
    Ok(Some(BatchCancel {
        cancelled,
        requested,
    }))
}
