//! Row mapping shared by the drivers: both read the same columns in the same order, so one
//! mapper per model type serves both through [`RowRead`]. A column added to a table is mapped
//! here once.

use super::{ErrorCount, HostRow, WindowSummary, WorkerSummary};
use super::{StoreError, StoreResult};
use crate::model::{Priority, Task, TaskStatus, TokenRow, WorkerRow, WorkerState};

/// A value every driver can read from a column.
pub trait ColumnValue:
    rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a> + mysql::prelude::FromValue
{
}
impl<T> ColumnValue for T where
    T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a> + mysql::prelude::FromValue
{
}

/// A result row of either driver, read by column index.
pub trait RowRead {
    /// Column `i` (0-based) as `T`.
    fn col<T: ColumnValue>(&self, i: usize) -> StoreResult<T>;
}

impl RowRead for rusqlite::Row<'_> {
    fn col<T: ColumnValue>(&self, i: usize) -> StoreResult<T> {
        Ok(self.get(i)?)
    }
}

impl RowRead for postgres::Row {
    fn col<T: ColumnValue>(&self, i: usize) -> StoreResult<T> {
        Ok(self.try_get(i)?)
    }
}

impl RowRead for mysql::Row {
    fn col<T: ColumnValue>(&self, i: usize) -> StoreResult<T> {
        match self.get_opt::<T, usize>(i) {
            Some(Ok(value)) => Ok(value),
            Some(Err(e)) => Err(StoreError::Corrupt {
                what: format!("column {i} of a MySQL row"),
                source: crate::SharedError::new(e),
            }),
            None => Err(StoreError::internal(format!(
                "a MySQL row has no column {i} (or it was read twice)"
            ))),
        }
    }
}

/// A JSON column's value; a column that does not parse is reported as corrupt, with `what`.
pub fn json_column(text: &str, what: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        source: crate::SharedError::new(e),
    })
}

/// A count or attempt number stored as a 64-bit integer, narrowed for the model (never
/// negative there).
pub fn narrow(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// The `s_tasks` columns [`task_from_row`] reads, in its order: a macro, so that a driver can
/// build a `&'static str` statement around it with `concat!`.
macro_rules! task_columns {
    () => {
        "id, identifier, action, status, message, started_by, meta, result, result_file, \
         start_at, run_at, finished_at, attempts, max_attempts, priority, progress, processed, \
         total, eta_seconds, created_at, updated_at, started_at, lease_owner, lease_expires_at, \
         cancel_requested, worker_version, last_error, duration_ms, cpu_ms, memory_bytes, token_id, \
         unique_key, parent_id, batch_id"
    };
}
pub(crate) use task_columns;

/// The `s_tasks` columns [`task_from_row`] reads, in its order.
pub const TASK_COLUMNS: &str = task_columns!();

/// A claimed task from a claim's row: `id, identifier, action, meta, attempts, max_attempts,
/// run_at, priority_rank`, in that order (what the server drivers' claims return), with the
/// lease token the claim wrote.
pub fn claimed_from_row(row: &impl RowRead, lease_token: i64) -> StoreResult<crate::ClaimedTask> {
    Ok(crate::ClaimedTask {
        id: row.col(0)?,
        identifier: row.col(1)?,
        action: row.col(2)?,
        meta: row.col(3)?,
        attempt: narrow(row.col(4)?),
        max_attempts: narrow(row.col(5)?),
        lease_token,
        run_at: row.col(6)?,
        priority_rank: row.col(7)?,
    })
}

/// An expired lease from a row of `id, lease_token, attempts, max_attempts, lease_owner,
/// started` (what the server drivers' lease scans return).
pub fn expired_lease_from_row(row: &impl RowRead) -> StoreResult<crate::ExpiredLease> {
    Ok(crate::ExpiredLease {
        id: row.col(0)?,
        lease_token: row.col::<Option<i64>>(1)?.unwrap_or(0),
        attempts: narrow(row.col(2)?),
        max_attempts: narrow(row.col(3)?),
        owner: row.col(4)?,
        started: row.col(5)?,
    })
}

/// A session from a row of `id_hash, token_id, csrf_token, created_at, expires_at, role` (the
/// role of its token, [`SESSION_COLUMNS`]).
pub fn session_from_row(row: &impl RowRead) -> StoreResult<crate::SessionRow> {
    Ok(crate::SessionRow {
        id_hash: row.col(0)?,
        token_id: row.col(1)?,
        csrf_token: row.col(2)?,
        created_at: row.col(3)?,
        expires_at: row.col(4)?,
        role: role_from(row.col(5)?)?,
        token_name: row.col(6)?,
        workers: workers_from(row.col(7)?)?,
    })
}

/// What [`session_from_row`] reads, from `s_sessions s JOIN s_tokens t`.
pub const SESSION_COLUMNS: &str =
    "s.id_hash, s.token_id, s.csrf_token, s.created_at, s.expires_at, t.role, t.name, t.workers";

/// A task from a row of [`TASK_COLUMNS`].
pub fn task_from_row(row: &impl RowRead) -> StoreResult<Task> {
    let id: i64 = row.col(0)?;
    let priority: String = row.col(14)?;
    let meta: String = row.col(6)?;
    Ok(Task {
        id,
        identifier: row.col(1)?,
        action: row.col(2)?,
        status: TaskStatus::from_code(row.col(3)?).unwrap_or(TaskStatus::Failed),
        message: row.col(4)?,
        started_by: row.col(5)?,
        meta: json_column(&meta, &format!("s_tasks.meta of task {id}"))?,
        result: row.col(7)?,
        result_file: row.col(8)?,
        start_at: row.col(9)?,
        run_at: row.col(10)?,
        finished_at: row.col(11)?,
        attempts: narrow(row.col(12)?),
        max_attempts: narrow(row.col(13)?),
        priority: priority.parse().unwrap_or(Priority::Normal),
        progress: row.col(15)?,
        processed: row.col(16)?,
        total: row.col(17)?,
        eta_seconds: row.col(18)?,
        created_at: row.col(19)?,
        updated_at: row.col(20)?,
        started_at: row.col(21)?,
        lease_owner: row.col(22)?,
        lease_expires_at: row.col(23)?,
        cancel_requested: row.col(24)?,
        worker_version: row.col(25)?,
        last_error: row.col(26)?,
        duration_ms: row.col(27)?,
        cpu_ms: row.col(28)?,
        memory_bytes: row.col(29)?,
        token_id: row.col(30)?,
        unique_key: row.col(31)?,
        parent_id: row.col(32)?,
        batch_id: row.col(33)?,
    })
}

/// The `s_workers` columns [`worker_from_row`] reads, in its order (a macro, as above).
macro_rules! worker_columns {
    () => {
        "id, uuid, identifier, scope, class, active, position, settings, hidden, title, \
         description, actions, default_settings, state, load_error, file, file_sha256, version, \
         generation, loaded_at, created_at, updated_at, paused"
    };
}
pub(crate) use worker_columns;

/// The `s_workers` columns [`worker_from_row`] reads, in its order.
pub const WORKER_COLUMNS: &str = worker_columns!();

/// A worker row from a row of [`WORKER_COLUMNS`].
pub fn worker_from_row(row: &impl RowRead) -> StoreResult<WorkerRow> {
    let identifier: String = row.col(2)?;
    let state: String = row.col(13)?;
    let json = |i: usize, col: &str| -> StoreResult<serde_json::Value> {
        json_column(
            &row.col::<String>(i)?,
            &format!("s_workers.{col} of {identifier}"),
        )
    };
    Ok(WorkerRow {
        id: row.col(0)?,
        uuid: row.col(1)?,
        scope: row.col(3)?,
        class: row.col(4)?,
        active: row.col(5)?,
        position: row.col(6)?,
        settings: json(7, "settings")?,
        hidden: row.col(8)?,
        title: row.col(9)?,
        description: row.col(10)?,
        actions: json(11, "actions")?,
        default_settings: json(12, "default_settings")?,
        state: WorkerState::from_name(&state).unwrap_or(WorkerState::Error),
        load_error: row.col(14)?,
        file: row.col(15)?,
        file_sha256: row.col(16)?,
        version: row.col(17)?,
        generation: row.col(18)?,
        loaded_at: row.col(19)?,
        created_at: row.col(20)?,
        updated_at: row.col(21)?,
        paused: row.col(22)?,
        identifier,
    })
}

/// The `s_hosts` columns [`host_from_row`] reads, in its order.
pub const HOST_COLUMNS: &str =
    "name, version, started_at, last_heartbeat, busy_slots, pool_size, workers, lease_ms, stopped_at";

/// A hosts-registry row from a row of [`HOST_COLUMNS`].
pub fn host_from_row(row: &impl RowRead) -> StoreResult<HostRow> {
    let name: String = row.col(0)?;
    let workers = json_column(
        &row.col::<String>(6)?,
        &format!("s_hosts.workers of {name}"),
    )?;
    Ok(HostRow {
        version: row.col(1)?,
        started_at: row.col(2)?,
        last_heartbeat: row.col(3)?,
        busy_slots: row.col(4)?,
        pool_size: row.col(5)?,
        workers: serde_json::from_value(workers).unwrap_or_default(),
        lease_ms: row.col(7)?,
        stopped_at: row.col(8)?,
        name,
    })
}

/// A window's counts and aggregates from a row of the drivers' `WINDOW_SQL`, with how many
/// durations and waits the percentiles rank (columns 9 and 11).
pub fn window_from_row(
    row: &impl RowRead,
    since: i64,
    now: i64,
) -> StoreResult<(WindowSummary, i64, i64)> {
    Ok((
        WindowSummary {
            since,
            now,
            total: row.col(0)?,
            pending: row.col(1)?,
            preparing: row.col(2)?,
            running: row.col(3)?,
            completed: row.col(4)?,
            failed: row.col(5)?,
            cancelled: row.col(6)?,
            average_duration_ms: row.col(7)?,
            max_duration_ms: row.col(8)?,
            average_wait_ms: row.col(10)?,
            average_cpu_ms: row.col(12)?,
            average_memory_bytes: row.col(13)?,
            max_memory_bytes: row.col(14)?,
            ..WindowSummary::default()
        },
        row.col(9)?,
        row.col(11)?,
    ))
}

/// One worker's figures from a row of the drivers' `WORKERS_SQL` (percentiles and versions
/// are filled in from other queries).
pub fn worker_summary_from_row(row: &impl RowRead) -> StoreResult<WorkerSummary> {
    Ok(WorkerSummary {
        identifier: row.col(0)?,
        total_tasks: row.col(1)?,
        completed: row.col(2)?,
        failed: row.col(3)?,
        cancelled: row.col(4)?,
        average_duration_ms: row.col(5)?,
        last_execution: row.col(6)?,
        average_cpu_ms: row.col(7)?,
        average_memory_bytes: row.col(8)?,
        max_memory_bytes: row.col(9)?,
        ..WorkerSummary::default()
    })
}

/// A most-common error from a `(message, count)` row.
pub fn error_count_from_row(row: &impl RowRead) -> StoreResult<ErrorCount> {
    Ok(ErrorCount {
        message: row.col(0)?,
        count: row.col(1)?,
    })
}

/// The `s_tokens` columns [`token_from_row`] reads, in its order (never the hash).
pub const TOKEN_COLUMNS: &str =
    "id, name, prefix, created_at, last_used_at, revoked_at, role, workers";

/// An API token's row (without its hash) from a row of [`TOKEN_COLUMNS`].
pub fn token_from_row(row: &impl RowRead) -> StoreResult<TokenRow> {
    Ok(TokenRow {
        id: row.col(0)?,
        name: row.col(1)?,
        prefix: row.col(2)?,
        created_at: row.col(3)?,
        last_used_at: row.col(4)?,
        revoked_at: row.col(5)?,
        role: role_from(row.col(6)?)?,
        workers: workers_from(row.col(7)?)?,
    })
}

/// A token's stored worker list (a JSON array of identifiers); NULL: every worker.
fn workers_from(text: Option<String>) -> StoreResult<Option<Vec<String>>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt {
            what: "a token's worker list".into(),
            source: crate::SharedError::new(e),
        })
    })
    .transpose()
}

/// A token's worker list as stored ([`workers_from`] reads it back).
pub fn workers_text(workers: Option<&[String]>) -> Option<String> {
    workers.map(|w| serde_json::Value::from(w.to_vec()).to_string())
}

/// A stored role name; one this version does not know is corrupt data, not "no role".
fn role_from(name: String) -> StoreResult<crate::model::TokenRole> {
    crate::model::TokenRole::parse(&name)
        .ok_or_else(|| crate::StoreError::internal(format!("unknown token role '{name}' stored")))
}
