//! sTask's storage layer: the task model, the task state machine and the storage drivers.
//! The only crate that speaks SQL; it has no unsafe code and knows nothing of HTTP.
//!
//! [`Store`] is what the engine, the HTTP API and the CLI need from a database; each backend
//! implements it (`sqlite` and `postgres`) and must pass the same driver test suite.
//! Drivers store what the state machine decided: they never choose a task's next status, its
//! guard or its message themselves. [`crate::task_state`] holds the transition table, and its
//! `sql` fragments are what every statement that changes a status is built from (codes as
//! literals, so the partial indexes apply); the database only executes the guards atomically —
//! claim only due pending rows, and apply a finish only while the caller still holds the lease.

#![forbid(unsafe_code)]

pub mod analytics;
pub mod audit;
pub mod batches;
pub mod clock;
pub mod cluster;
/// The properties every driver must pass, with helpers other crates' tests use (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod copy;
pub mod dependencies;
pub mod limits;
mod migrate;
pub mod model;
pub mod mysql;
pub mod postgres;
pub mod rows;
pub mod schedules;
pub mod sqlite;
pub mod table_prefix;
pub mod task_filter;
pub mod task_state;
pub mod unique;

use crate::model::{
    LogLine, NewTask, PluginFile, Priority, Stats, Task, TaskStatus, TokenRole, TokenRow, WorkerRow,
};
use serde_json::Value;

/// The state machine's decisions, which the drivers apply; defined beside the transition table.
pub use crate::task_state::{ExpiredLease, Finish};
pub use analytics::{AnalyticsStore, ErrorCount, WindowSummary, WorkerSummary};
pub use audit::{AuditEntry, AuditFilter, AuditRow, AuditStore};
pub use batches::{Batch, BatchCancel, BatchCounts, BatchCreated, BatchRow, BatchStore, NewBatch};
pub use cluster::{EventsHook, HostRow, HostStore, WakeHook};
pub use dependencies::{DependencyStore, Resolution, TaskDependencies};
pub use limits::{Claim, Held, HeldReason, LimitUsage, RateLimit, WorkerLimit};
pub use migrate::{
    migrations, Backend, Migration, MYSQL_MIGRATIONS, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS,
};
pub use schedules::{ScheduleRow, ScheduleSource, ScheduleSpec, ScheduleStore, SlotTaken};
pub use table_prefix::TablePrefix;

/// Errors of a storage driver. Each kind says what the caller can do about it (retry, fix
/// the data, fix the storage); each keeps the database's own error as its [`source`]
/// (`rusqlite::Error`, `postgres::Error`, I/O), so nothing needs to read a message to tell
/// them apart. Drivers choose the kind from error codes (SQLite's `ErrorCode`, PostgreSQL's
/// `SqlState`), never from text.
///
/// Every cause is a [`SharedError`], so an error can be cloned whole for several waiters
/// (one failed group commit answers every create in it) and keeps its kind and cause there.
///
/// [`source`]: std::error::Error::source
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database is busy: SQLite's `SQLITE_BUSY`/`SQLITE_LOCKED` after the busy timeout,
    /// PostgreSQL's lock timeout, serialization failure or deadlock. Nothing was written; the
    /// same call may succeed when retried.
    #[error("database error: {}", described(context, Some(source)))]
    Busy {
        /// What the driver was doing (empty when the cause says enough).
        context: String,
        /// What the database said.
        #[source]
        source: SharedError,
    },
    /// The connection to the database server was lost or could not be opened (PostgreSQL).
    #[error("database error: {}", described(context, Some(source)))]
    Connection {
        /// What the driver was doing.
        context: String,
        /// What the client library said.
        #[source]
        source: SharedError,
    },
    /// The database failed in a way no other kind names (a bug, a broken invariant, an
    /// unexpected code): answered as an internal error.
    #[error("database error: {}", described(context, source.as_ref()))]
    Database {
        /// What the driver was doing, or what went wrong when there is no cause.
        context: String,
        /// What the database (or the operating system) said, when it said something.
        #[source]
        source: Option<SharedError>,
    },
    /// The change conflicts with existing data (e.g. a duplicate name, a task not finished).
    #[error("{message}")]
    Conflict {
        /// What conflicts, for people.
        message: String,
        /// The database's refusal (a unique violation), when it was one.
        #[source]
        source: Option<SharedError>,
    },
    /// Stored data could not be read back (e.g. invalid JSON in a column).
    #[error("corrupt row: {what}: {source}")]
    Corrupt {
        /// Which value (column and row).
        what: String,
        /// Why it did not decode.
        #[source]
        source: SharedError,
    },
    /// The URL names a backend this build does not have, or is malformed.
    #[error("{message}")]
    Config {
        /// What is wrong with it, for people.
        message: String,
        /// The parser's error, when there is one.
        #[source]
        source: Option<SharedError>,
    },
    /// The storage under the database is full (SQLite's `SQLITE_FULL`: the disk or its quota;
    /// PostgreSQL's `53100`; MySQL's 1021 and 1114, a full disk or tablespace). Nothing was
    /// written; the same write succeeds once there is space again.
    #[error("the storage is full: {source}{}", in_folder(folder))]
    StorageFull {
        /// The folder of the database files, when the driver knows it.
        folder: Option<std::path::PathBuf>,
        /// What the database said.
        #[source]
        source: SharedError,
    },
    /// The storage refuses writes: a read-only file system, or files or a folder the daemon's
    /// user may not write (`SQLITE_READONLY`, `SQLITE_CANTOPEN`, `SQLITE_PERM`).
    #[error(
        "the storage is not writable: {source}{}: check that the folder and the database files \
         are writable by the daemon's user and that the file system is mounted read-write",
        in_folder(folder)
    )]
    StorageReadOnly {
        /// The folder of the database files, when the driver knows it.
        folder: Option<std::path::PathBuf>,
        /// What the database said.
        #[source]
        source: SharedError,
    },
    /// Reading or writing the database files failed in the operating system (`SQLITE_IOERR`).
    #[error("the storage failed: {source}{}", in_folder(folder))]
    StorageIo {
        /// The folder of the database files, when the driver knows it.
        folder: Option<std::path::PathBuf>,
        /// What the database said.
        #[source]
        source: SharedError,
    },
    /// The database files this process holds open were removed or replaced by other files
    /// under it (e.g. `rm stask.db-wal`). Writes are refused from then on: going on would
    /// write into files nobody else sees, or mix two databases. The text names the file and
    /// what happened to it (found by comparing inodes: there is no underlying error).
    #[error(
        "the database files were removed or replaced while the daemon runs: {0}; writes are \
         refused so as not to corrupt the database: restore the files or restart the daemon"
    )]
    FilesReplaced(String),
}

/// The cause of a [`StoreError`], shared by the copies of one error (one failed group commit
/// answers every create in it).
///
/// Not itself an [`Error`](std::error::Error) but a handle that dereferences to the cause: so
/// the error chain of a [`StoreError`] goes straight to the driver's error (`source()` is the
/// `rusqlite::Error` itself, found by `downcast_ref`), where an `Arc` would put itself in
/// between.
#[derive(Debug, Clone)]
pub struct SharedError(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl SharedError {
    /// Shares `cause`.
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> SharedError {
        SharedError(std::sync::Arc::new(cause))
    }
}

impl std::ops::Deref for SharedError {
    type Target = dyn std::error::Error + Send + Sync;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// ` (folder X)` when the folder is known.
fn in_folder(folder: &Option<std::path::PathBuf>) -> String {
    folder
        .as_ref()
        .map(|f| format!(" (folder {})", f.display()))
        .unwrap_or_default()
}

/// `context: cause`, or whichever of the two there is.
fn described(context: &str, source: Option<&SharedError>) -> String {
    match (context.is_empty(), source) {
        (false, Some(source)) => format!("{context}: {source}"),
        (true, Some(source)) => source.to_string(),
        (_, None) => context.to_owned(),
    }
}

impl StoreError {
    /// A failure with no more specific kind, caused by `source`.
    pub fn database(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Database {
            context: context.into(),
            source: Some(SharedError::new(source)),
        }
    }

    /// A broken invariant with no underlying error (a row that vanished, a stopped thread).
    pub fn internal(what: impl Into<String>) -> StoreError {
        StoreError::Database {
            context: what.into(),
            source: None,
        }
    }

    /// A conflict with existing data that the driver found itself (no database error).
    pub fn conflict(message: impl Into<String>) -> StoreError {
        StoreError::Conflict {
            message: message.into(),
            source: None,
        }
    }

    /// A copy for another waiter on the same failed call, of the same kind and cause (the API
    /// answers storage faults with 503/507 and a busy database with 503, not 500).
    pub fn share(&self) -> StoreError {
        self.clone()
    }

    /// Whether this is a fault of the storage itself (full, read-only, failing, files
    /// replaced) rather than of one request.
    pub fn is_storage_fault(&self) -> bool {
        matches!(
            self,
            StoreError::StorageFull { .. }
                | StoreError::StorageReadOnly { .. }
                | StoreError::StorageIo { .. }
                | StoreError::FilesReplaced(_)
        )
    }

    /// The same error with what the driver was doing in front of its context (`doing:
    /// context`); kinds without a context (conflicts, storage faults, ...) stay as they are.
    pub fn doing(self, doing: impl std::fmt::Display) -> StoreError {
        let prefixed = |context: String| {
            if context.is_empty() {
                doing.to_string()
            } else {
                format!("{doing}: {context}")
            }
        };
        match self {
            StoreError::Busy { context, source } => StoreError::Busy {
                context: prefixed(context),
                source,
            },
            StoreError::Connection { context, source } => StoreError::Connection {
                context: prefixed(context),
                source,
            },
            StoreError::Database { context, source } => StoreError::Database {
                context: prefixed(context),
                source,
            },
            other => other,
        }
    }

    /// The same fault with the folder of the database files named (drivers fill it in).
    pub fn in_folder(self, dir: &std::path::Path) -> StoreError {
        let named = |folder: Option<std::path::PathBuf>| folder.or_else(|| Some(dir.to_owned()));
        match self {
            StoreError::StorageFull { folder, source } => StoreError::StorageFull {
                folder: named(folder),
                source,
            },
            StoreError::StorageReadOnly { folder, source } => StoreError::StorageReadOnly {
                folder: named(folder),
                source,
            },
            StoreError::StorageIo { folder, source } => StoreError::StorageIo {
                folder: named(folder),
                source,
            },
            other => other,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let code = match &e {
            rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
            _ => None,
        };
        let folder = None;
        let source = SharedError::new(e);
        match code {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy {
                context: String::new(),
                source,
            },
            Some(ErrorCode::DiskFull) => StoreError::StorageFull { folder, source },
            Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
                StoreError::StorageReadOnly { folder, source }
            }
            Some(ErrorCode::SystemIoFailure) => StoreError::StorageIo { folder, source },
            _ => StoreError::Database {
                context: String::new(),
                source: Some(source),
            },
        }
    }
}

/// Result of a driver call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A claim of due tasks for one host.
#[derive(Debug, Clone, Default)]
pub struct ClaimRequest<'a> {
    /// Host instance taking the lease.
    pub owner: &'a str,
    /// Most tasks to claim.
    pub limit: usize,
    /// Now (UNIX ms): only tasks with `run_at <= now` are due.
    pub now: i64,
    /// Lease length; heartbeats extend it.
    pub lease_ms: i64,
    /// Workers this host can run (loaded and active); other tasks stay pending.
    pub identifiers: &'a [String],
    /// The limits of the workers in `identifiers` that have any (see [`limits`]); empty: the
    /// plain claim, at no cost for limits.
    pub limits: &'a [WorkerLimit],
    /// Free pool slots (`limit` less what would be claimed ahead): limited workers' tasks are
    /// claimed only up to this many, never ahead.
    pub slots: usize,
}

/// A task handed to a host by [`TaskStore::claim`]. Its status is now `preparing`.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    /// Task id.
    pub id: i64,
    /// Worker identifier.
    pub identifier: String,
    /// Action.
    pub action: String,
    /// Task data as stored (JSON text).
    pub meta: String,
    /// The number this run's attempt gets if a pool thread starts it (`attempts + 1`). A claim
    /// does not count: [`TaskStore::start_runs`] does, when the run really starts.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Fences every later write of this run.
    pub lease_token: i64,
    /// When it became due (for queue-wait figures).
    pub run_at: i64,
    /// Priority rank (2 high, 1 normal, 0 low), for the host's ready queue.
    pub priority_rank: i64,
}

/// The lease a claim handed out for one task. Every write of the run is fenced by it: the write
/// applies only while `token` is still the task's current lease token (a recovered and
/// re-claimed task has a new one, so the old run can no longer write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// Task id.
    pub task_id: i64,
    /// The lease token the claim gave the task.
    pub token: i64,
}

impl ClaimedTask {
    /// The lease this claim holds.
    pub fn lease(&self) -> Lease {
        Lease {
            task_id: self.id,
            token: self.lease_token,
        }
    }
}

impl Finish {
    /// The lease this finish is fenced by.
    pub fn lease(&self) -> Lease {
        Lease {
            task_id: self.id,
            token: self.lease_token,
        }
    }
}

impl ExpiredLease {
    /// The lease that expired.
    pub fn lease(&self) -> Lease {
        Lease {
            task_id: self.id,
            token: self.lease_token,
        }
    }
}

/// A throttled progress write for a running task.
#[derive(Debug, Clone)]
pub struct ProgressWrite {
    /// Task id.
    pub id: i64,
    /// The run's lease (stale runs do not write).
    pub lease_token: i64,
    /// 0-100.
    pub progress: i64,
    /// Items processed.
    pub processed: Option<i64>,
    /// Items in total.
    pub total: Option<i64>,
    /// Seconds left.
    pub eta_seconds: Option<i64>,
    /// Latest message.
    pub message: String,
    /// Worker version running it.
    pub worker_version: String,
}

/// What a cancel request did.
#[derive(Debug, Clone)]
pub enum CancelResult {
    /// The task was pending and is cancelled now.
    Cancelled(Task),
    /// The task is running; its flag is set and it will end as cancelled.
    Requested(Task),
    /// The task had already finished; nothing changed.
    AlreadyFinished(Task),
    /// No such task.
    NotFound,
}

/// What a retry request did.
#[derive(Debug, Clone)]
pub enum RetryResult {
    /// The task is pending again.
    Queued(Task),
    /// The task is not failed or cancelled.
    NotRetryable(Task),
    /// No such task.
    NotFound,
}

/// Filters for listing tasks. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Any of these statuses.
    pub statuses: Vec<TaskStatus>,
    /// Worker identifier.
    pub identifier: Option<String>,
    /// Any of these worker identifiers (a token restricted to workers lists only theirs);
    /// empty: every worker.
    pub identifiers: Vec<String>,
    /// Action.
    pub action: Option<String>,
    /// Priority.
    pub priority: Option<Priority>,
    /// Created at or after (UNIX ms).
    pub created_from: Option<i64>,
    /// Created before (UNIX ms).
    pub created_to: Option<i64>,
    /// Text in message, data, identifier or action.
    pub search: Option<String>,
    /// Started for this CMS user (`started_by`).
    pub started_by: Option<i64>,
    /// Follow-ups of this task (`parent_id`).
    pub parent_id: Option<i64>,
    /// Tasks of this batch (`batch_id`).
    pub batch_id: Option<i64>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
    /// Oldest first instead of newest first (pending lists read best in claim order).
    pub oldest_first: bool,
}

/// Filters for listing workers.
#[derive(Debug, Clone, Default)]
pub struct WorkerFilter {
    /// Scope.
    pub scope: Option<String>,
    /// Active or inactive only.
    pub active: Option<bool>,
}

/// What a successfully loaded library declares, to register in `s_workers`.
#[derive(Debug, Clone)]
pub struct WorkerRegistration {
    /// Identifier.
    pub identifier: String,
    /// Scope.
    pub scope: String,
    /// `file:TypeName`.
    pub class: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Declared actions.
    pub actions: Value,
    /// Plugin defaults; merged under the operator's settings.
    pub default_settings: Value,
    /// Library file name.
    pub file: String,
    /// Library hash.
    pub file_sha256: String,
    /// Worker version.
    pub version: String,
    /// `active` for a worker seen for the first time.
    pub active_when_new: bool,
    /// A library was (re)loaded now: bump `generation` and `loaded_at`. False when only the
    /// metadata is rewritten (rescan).
    pub new_load: bool,
}

/// What the insert of one [`NewTask`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// The new task's id, or for a duplicate the id of the task that holds its `unique_key`.
    pub id: i64,
    /// Nothing was created: another task (earlier, or earlier in the same batch) holds the key.
    pub duplicate: bool,
}

/// Tasks: create, claim, finish, query.
pub trait TaskStore: Send + Sync {
    /// Inserts one task; returns its id (for a task whose `unique_key` is held, the holder's
    /// id: [`TaskStore::insert_tasks`] tells the two apart).
    fn insert_task(&self, task: &NewTask, now: i64) -> StoreResult<i64>;
    /// Inserts many tasks in one transaction; returns per task, in order, its id and whether
    /// it was a duplicate of a task holding its `unique_key` (see [`unique`]): the database
    /// decides, atomically across hosts.
    fn insert_tasks(&self, tasks: &[NewTask], now: i64) -> StoreResult<Vec<Inserted>>;
    /// Atomically moves up to `limit` due pending tasks to `preparing` under a new lease,
    /// highest priority first, then by due time, then id; tasks of workers in
    /// `request.limits` only within their limits (on all hosts), and the held workers named.
    fn claim(&self, request: &ClaimRequest<'_>) -> StoreResult<Claim>;
    /// How many tasks of each of these workers are leased now (per action too) and their rate
    /// state: what the task and worker views show of the limits. A plain read, no lock.
    fn limit_usage(&self, identifiers: &[String]) -> StoreResult<Vec<LimitUsage>>;
    /// Gives claimed tasks that never started back: pending again (no attempt was counted;
    /// fenced by lease and `preparing`; used at shutdown for tasks claimed ahead).
    fn release(&self, leases: &[Lease], now: i64) -> StoreResult<()>;
    /// Records that pool threads start these claimed runs, before the plugin is called: after
    /// it returns, a kill of the process at any moment finds the run started. Only a started run
    /// counts as an attempt. Returns, per run, whether it applied; a run that did not (its lease
    /// was taken over) must not start.
    ///
    /// PostgreSQL writes it to the database at once (`preparing` → `running`, `attempts + 1`,
    /// `started_at = now`, fenced by lease and `preparing`), since other hosts recover its
    /// leases. SQLite writes it to its start journal (one `pwrite`, no database write) and
    /// moves the row to `running` with its attempt at the next [`TaskStore::flush_starts`].
    fn start_runs(&self, leases: &[Lease], now: i64) -> StoreResult<Vec<bool>>;
    /// Writes the starts [`TaskStore::start_runs`] kept out of the database so far (batched,
    /// from the ticker; applies once, fenced by lease and `preparing`). Nothing to do for a
    /// driver that writes starts at once.
    fn flush_starts(&self, _now: i64) -> StoreResult<()> {
        Ok(())
    }
    /// Writes progress of running tasks in one transaction (fenced by lease).
    fn write_progress(&self, updates: &[ProgressWrite], now: i64) -> StoreResult<()>;
    /// Appends task log lines.
    fn append_logs(&self, lines: &[LogLine]) -> StoreResult<()>;
    /// Applies finishes in one transaction. Returns, per finish, whether it applied (false when
    /// the lease was no longer the caller's: a stale run).
    fn finish(&self, finishes: &[Finish]) -> StoreResult<Vec<bool>>;
    /// Extends the leases of every task `owner` is running; returns the ids whose cancel was
    /// requested in the database (by another process).
    fn heartbeat(&self, owner: &str, lease_until: i64) -> StoreResult<Vec<i64>>;
    /// Running or preparing tasks whose lease expired before `now`, whoever held it.
    fn expired_leases(&self, now: i64) -> StoreResult<Vec<ExpiredLease>>;
    /// Every lease `owner` holds now, expired or not, with the facts a recovery decides from:
    /// a host compares them with the runs it knows, to find leases it holds without knowing
    /// (a claim or a start committed on a connection that broke before the answer came).
    fn leases_of(&self, owner: &str) -> StoreResult<Vec<ExpiredLease>>;
    /// Earliest future `run_at` of a pending task of these workers, to sleep until then.
    fn next_due(&self, now: i64, identifiers: &[String]) -> StoreResult<Option<i64>>;
    /// Cancels a pending task at once, or flags a running one.
    fn cancel(&self, id: i64, now: i64) -> StoreResult<CancelResult>;
    /// Puts a failed or cancelled task back to pending with fresh attempts.
    fn retry(&self, id: i64, now: i64) -> StoreResult<RetryResult>;
    /// Deletes a finished task; returns it (for file cleanup), or `Err(Conflict)` if it is not
    /// finished.
    fn delete_task(&self, id: i64) -> StoreResult<Option<Task>>;
    /// One task.
    fn task(&self, id: i64) -> StoreResult<Option<Task>>;
    /// A page of tasks and the total matching count.
    fn tasks(&self, filter: &TaskFilter) -> StoreResult<(Vec<Task>, i64)>;
    /// Up to `limit` pending tasks in claim order, and how many are pending in all.
    fn pending_tasks(&self, limit: i64) -> StoreResult<(Vec<Task>, i64)>;
    /// The latest `limit` log lines of a task, oldest first.
    fn task_logs(&self, id: i64, limit: i64) -> StoreResult<Vec<LogLine>>;
    /// Counts per status.
    fn stats(&self) -> StoreResult<Stats>;
    /// Deletes finished tasks that finished before `cutoff` with their logs; returns their ids.
    fn delete_finished_before(&self, cutoff: i64) -> StoreResult<Vec<i64>>;
    /// A cheap counter that changes when another process writes the database (`None` if the
    /// backend cannot tell): lets the host pick up tasks created by the CLI at once.
    fn external_change_counter(&self) -> StoreResult<Option<i64>>;
}

/// Workers and plugin files.
pub trait WorkerStore: Send + Sync {
    /// Registers (or refreshes) a loaded worker, keeping `active`, `position` and the operator's
    /// settings; sets state `loaded` and bumps `generation`.
    fn upsert_worker(&self, reg: &WorkerRegistration, now: i64) -> StoreResult<WorkerRow>;
    /// Sets a worker's state and load error (`None` clears it).
    fn set_worker_state(
        &self,
        identifier: &str,
        state: crate::model::WorkerState,
        load_error: Option<&str>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Workers, ordered by `position` then identifier.
    fn workers(&self, filter: &WorkerFilter) -> StoreResult<Vec<WorkerRow>>;
    /// One worker.
    fn worker(&self, identifier: &str) -> StoreResult<Option<WorkerRow>>;
    /// Activates or deactivates a worker; false if unknown.
    fn set_worker_active(&self, identifier: &str, active: bool, now: i64) -> StoreResult<bool>;
    /// Pauses or resumes a worker's queue; false if unknown. While paused, no claim (of any
    /// host) takes its tasks; they stay pending, in their order, until it is resumed.
    fn set_worker_paused(&self, identifier: &str, paused: bool, now: i64) -> StoreResult<bool>;
    /// Replaces a worker's settings; false if unknown.
    fn set_worker_settings(
        &self,
        identifier: &str,
        settings: &Value,
        now: i64,
    ) -> StoreResult<bool>;
    /// Deletes orphaned worker rows (task history stays); returns their identifiers.
    fn delete_orphaned_workers(&self) -> StoreResult<Vec<String>>;
    /// Records how the latest load of a library file went.
    fn record_plugin_file(&self, file: &PluginFile) -> StoreResult<()>;
    /// Every library file seen.
    fn plugin_files(&self) -> StoreResult<Vec<PluginFile>>;
}

/// API tokens.
pub trait TokenStore: Send + Sync {
    /// Stores a new token's hash with its role; `Err(Conflict)` if a live token has that name.
    fn insert_token(
        &self,
        name: &str,
        hash: &str,
        prefix: &str,
        role: TokenRole,
        now: i64,
    ) -> StoreResult<TokenRow>;
    /// All tokens, revoked ones included.
    fn tokens(&self) -> StoreResult<Vec<TokenRow>>;
    /// Revokes a live token by name or id; false if none.
    fn revoke_token(&self, name_or_id: &str, now: i64) -> StoreResult<bool>;
    /// Live tokens whose clear prefix is `prefix`, with their stored hashes.
    fn live_tokens_with_prefix(&self, prefix: &str) -> StoreResult<Vec<(TokenRow, String)>>;
    /// Records a use (throttled by the caller).
    fn touch_token(&self, id: i64, now: i64) -> StoreResult<()>;
    /// Restricts a token (and its sessions) to acting on the tasks of these workers; `None`
    /// lifts the restriction. False if no token has that id.
    fn restrict_token(&self, id: i64, workers: Option<&[String]>) -> StoreResult<bool>;
    /// Stores a browser session (by the hash of its id) for a token.
    fn insert_session(&self, session: &SessionRow) -> StoreResult<()>;
    /// The live session with this id hash whose token is not revoked.
    fn session(&self, id_hash: &str, now: i64) -> StoreResult<Option<SessionRow>>;
    /// Ends a session; also drops expired ones.
    fn delete_session(&self, id_hash: &str, now: i64) -> StoreResult<()>;
}

/// A browser session (`s_sessions`).
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// SHA-256 of the session id (the cookie value).
    pub id_hash: String,
    /// Token it was opened with.
    pub token_id: i64,
    /// The CSRF token every state-changing request must repeat.
    pub csrf_token: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// The role of the token it was opened with: a session acts with its token's role. Read
    /// from the token with the session ([`TokenStore::session`]); not stored with it.
    pub role: TokenRole,
    /// The name of the token it was opened with (read like `role`).
    pub token_name: String,
    /// The workers its token is restricted to (read like `role`); `None`: every worker.
    pub workers: Option<Vec<String>>,
}

/// A complete storage backend.
pub trait Store:
    TaskStore
    + WorkerStore
    + TokenStore
    + AnalyticsStore
    + HostStore
    + ScheduleStore
    + DependencyStore
    + AuditStore
    + BatchStore
{
    /// Applies pending migrations; returns the names applied.
    fn migrate(&self) -> StoreResult<Vec<String>>;
    /// Backend name and location for logs (never a password).
    fn describe(&self) -> String;
    /// The storage fault that lasts now (full, read-only, failing, files replaced), if any:
    /// raised as the `storage_fault` alert. Drivers that cannot tell answer `None`.
    fn storage_fault(&self) -> Option<String> {
        None
    }
    /// Called once at a clean stop, after the last task was stored: SQLite folds its WAL
    /// into the database file and truncates it.
    fn close(&self) {}
    /// Runs `sql` (statements without parameters, naming our tables `s_...`) with the table
    /// prefix applied, as another program writing the database would: the conformance suite
    /// writes rows the original product's way through it. Not for sTask's own writes.
    fn execute_foreign(&self, sql: &str) -> StoreResult<()>;
    /// A point in time as SQL text for a column the original product declares a timestamp
    /// (`start_at`), as another program would write it: UNIX milliseconds where our time
    /// columns are integers (SQLite, PostgreSQL), a `DATETIME` literal in UTC on MySQL.
    fn time_literal(&self, ms: i64) -> String {
        ms.to_string()
    }
}

/// Opens the store a database URL names: `sqlite://PATH` (or a plain path),
/// `postgres://...` / `postgresql://...`, or `mysql://...` / `mariadb://...` (several hosts
/// may share a PostgreSQL or MySQL database).
/// SQLite gets `synchronous=NORMAL`; see [`open_with`].
pub fn open(url: &str) -> StoreResult<std::sync::Arc<dyn Store>> {
    open_with(url, &OpenOptions::default())
}

/// How a store is opened, besides its URL: what the configuration chose.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// SQLite's `synchronous` mode (`STASK_SQLITE_SYNC`; the servers ignore it).
    pub sqlite_sync: sqlite::SqliteSync,
    /// The prefix of every table and object of ours (`STASK_TABLE_PREFIX`; all backends).
    pub table_prefix: TablePrefix,
    /// PostgreSQL connection threads per store (`STASK_PG_CONNECTIONS`); `None`: the
    /// driver's default.
    pub pg_connections: Option<usize>,
    /// Most pooled MySQL connections per store (`STASK_MYSQL_CONNECTIONS`); `None`: the
    /// driver's default.
    pub mysql_connections: Option<usize>,
    /// How often the MySQL wake-up poller reads its counters (`STASK_MYSQL_WAKE_POLL_MS`);
    /// `None`: the driver's default.
    pub mysql_wake_poll: Option<std::time::Duration>,
}

/// A database URL, parsed by its scheme: which backend, with what opening it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://PATH` or a plain path.
    Sqlite(std::path::PathBuf),
    /// `postgres://...` or `postgresql://...`: the URL.
    Postgres(String),
    /// `mysql://...` or `mariadb://...`: the URL.
    Mysql(String),
}

impl DatabaseUrl {
    /// The backend `url` names, by its scheme; a URL with another scheme is refused.
    pub fn of(url: &str) -> StoreResult<DatabaseUrl> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Ok(DatabaseUrl::Sqlite(path.into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            return Ok(DatabaseUrl::Mysql(url.to_owned()));
        }
        if url.contains("://") {
            return Err(StoreError::Config {
                message: format!(
                    "unsupported database URL '{}': use sqlite://PATH, \
                     postgres://USER@HOST/DATABASE or mysql://USER@HOST/DATABASE (mariadb:// too)",
                    postgres::redact(url)
                ),
                source: None,
            });
        }
        Ok(DatabaseUrl::Sqlite(url.into()))
    }

    /// The backend's name in messages.
    pub fn name(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "SQLite",
            DatabaseUrl::Postgres(_) => "PostgreSQL",
            DatabaseUrl::Mysql(_) => "MySQL/MariaDB",
        }
    }

    /// Whether both name one database: the same SQLite file (however the path is written), or
    /// the same server URL apart from the `mysql`/`mariadb` and `postgres`/`postgresql` spellings.
    pub fn same_database(&self, other: &DatabaseUrl) -> bool {
        let file = |p: &std::path::Path| {
            let name = p.file_name().map(ToOwned::to_owned);
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            let dir = dir.unwrap_or(std::path::Path::new("."));
            (
                std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned()),
                name,
            )
        };
        let rest = |url: &str| url.split_once("://").map(|(_, r)| r.to_owned());
        match (self, other) {
            (DatabaseUrl::Sqlite(a), DatabaseUrl::Sqlite(b)) => file(a) == file(b),
            (DatabaseUrl::Postgres(a), DatabaseUrl::Postgres(b))
            | (DatabaseUrl::Mysql(a), DatabaseUrl::Mysql(b)) => rest(a) == rest(b),
            _ => false,
        }
    }
}

/// [`open`] with the options the configuration chose.
pub fn open_with(url: &str, options: &OpenOptions) -> StoreResult<std::sync::Arc<dyn Store>> {
    let store: std::sync::Arc<dyn Store> = match DatabaseUrl::of(url)? {
        DatabaseUrl::Sqlite(path) => {
            std::sync::Arc::new(sqlite::SqliteStore::open_with(&path, options)?)
        }
        DatabaseUrl::Postgres(url) => {
            std::sync::Arc::new(postgres::PgStore::open_with(&url, options)?)
        }
        DatabaseUrl::Mysql(url) => {
            std::sync::Arc::new(mysql::MysqlStore::open_with(&url, options)?)
        }
    };
    // Before anything reads the time: every process of a shared queue keeps its clock.
    if let Some(reading) = clock::sync_to_database(&*store, 3)? {
        clock::report(&reading);
    }
    Ok(store)
}

/// The plugin's defaults with the operator's values on top; keys the plugin no longer declares
/// are kept too (an operator's value is never silently dropped by a reload). Both drivers
/// store what this returns when a worker is registered or reloaded.
pub fn merge_settings(
    defaults: &serde_json::Value,
    current: &serde_json::Value,
) -> serde_json::Value {
    let mut merged = defaults.as_object().cloned().unwrap_or_default();
    if let Some(current) = current.as_object() {
        for (k, v) in current {
            merged.insert(k.clone(), v.clone());
        }
    }
    serde_json::Value::Object(merged)
}

/// [`Stats`] from `(status code, count)` rows (`SELECT status, COUNT(*) ... GROUP BY status`).
pub fn stats_from_counts(rows: impl IntoIterator<Item = (i64, i64)>) -> Stats {
    let mut stats = Stats::default();
    for (code, n) in rows {
        match TaskStatus::from_code(code) {
            Some(TaskStatus::Pending) => stats.pending = n,
            Some(TaskStatus::Preparing) => stats.preparing = n,
            Some(TaskStatus::Running) => stats.running = n,
            Some(TaskStatus::Completed) => stats.completed = n,
            Some(TaskStatus::Failed) => stats.failed = n,
            Some(TaskStatus::Cancelled) => stats.cancelled = n,
            None => {}
        }
        stats.total += n;
    }
    stats
}
