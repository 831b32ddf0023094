//! Typed answers of the API: what is serialized is what the OpenAPI document describes.

use super::query::Param;
use crate::plugins::copies::CopiesUsage;
use crate::views::{LogLineView, PluginFileView};
use crate::views::{TaskView, WorkerView};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// `POST /stask/workers/{identifier}/tasks/{action}` answer (the seed's).
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskCreated {
    /// `true`.
    pub success: bool,
    /// New task id, or for a duplicate the id of the task holding the `unique_key`.
    pub id: i64,
    /// `true` when nothing was created (200): a task holding the same `unique_key` exists.
    pub duplicate: bool,
    /// `Task created successfully`.
    pub message: String,
}

/// `GET /stask/tasks/{id}/progress` answer (the seed's keys plus items and log lines).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressAnswer {
    /// `true`.
    pub success: bool,
    /// 200.
    pub code: u16,
    /// Task id.
    pub id: i64,
    /// Status name.
    pub status: String,
    /// 0-100.
    pub progress: i64,
    /// Latest message ("Waiting: worker X is paused" while its worker is paused).
    pub message: String,
    /// Pending and held because its worker is paused.
    pub paused: bool,
    /// Time left, e.g. `2m 30s`.
    pub eta: Option<String>,
    /// Items processed.
    pub processed: Option<i64>,
    /// Items in total.
    pub total: Option<i64>,
    /// Attempts started.
    pub attempts: u32,
    /// The latest log lines, oldest first.
    pub log_lines: Vec<String>,
}

/// `GET /stask/tasks/{id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDetail {
    /// `true`.
    pub success: bool,
    /// The task.
    pub task: TaskView,
    /// The follow-ups its runs created (`GET /stask/tasks?parent_id=` lists them all).
    pub children: ChildrenView,
    /// Its log (latest 500 lines), oldest first.
    pub log: Vec<LogLineView>,
}

/// A task's follow-ups: how many, and the first ones' ids.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChildrenView {
    /// Follow-ups in total.
    pub total: i64,
    /// The ids of the first 50 of them, oldest first.
    pub ids: Vec<i64>,
}

/// A page of tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    /// `true`.
    pub success: bool,
    /// The tasks of this page.
    pub tasks: Vec<TaskView>,
    /// Tasks matching the filters in total.
    pub total: i64,
    /// Page number (from 1).
    pub page: i64,
    /// Page size.
    pub per_page: i64,
}

/// Answer of an action on one task (cancel, retry, delete).
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskChanged {
    /// `true`.
    pub success: bool,
    /// Task id.
    pub id: i64,
    /// Status after the action.
    pub status: Option<String>,
    /// What happened.
    pub message: String,
}

/// Filters of `GET /stask/tasks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Status names or codes, comma-separated, or `incomplete` / `finished`.
    pub status: Option<String>,
    /// Worker identifier.
    pub identifier: Option<String>,
    /// Action.
    pub action: Option<String>,
    /// `low`, `normal` or `high`.
    pub priority: Option<String>,
    /// Created at or after (RFC 3339, `YYYY-MM-DD HH:MM:SS` or UNIX seconds).
    pub from: Option<String>,
    /// Created before.
    pub to: Option<String>,
    /// Text in the message, data, worker or action.
    pub q: Option<String>,
    /// Started for this CMS user (a user id, as given at creation).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    pub started_by: Option<Param>,
    /// Follow-ups of this task (its id): the tasks its runs created.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub parent_id: Option<Param>,
    /// Tasks of this batch (its id).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub batch_id: Option<Param>,
    /// Page number, 1-1000000 (default 1).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000000)]
    pub page: Option<Param>,
    /// Page size, 1-500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub per_page: Option<Param>,
}

/// Query of `GET /stask/tasks/pending`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PendingQuery {
    /// How many, 1-500 (default 10).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<Param>,
}

/// Body of `POST /stask/tasks/clean`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CleanRequest {
    /// Delete finished tasks older than this many days.
    pub days: u32,
}

/// Answer of `POST /stask/tasks/clean`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CleanAnswer {
    /// `true`.
    pub success: bool,
    /// Tasks deleted.
    pub deleted: usize,
    /// What happened.
    pub message: String,
}

/// `GET /stask/stats` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsAnswer {
    /// `true`.
    pub success: bool,
    /// Pending tasks.
    pub pending: i64,
    /// Claimed, not yet running.
    pub preparing: i64,
    /// Running tasks.
    pub running: i64,
    /// Completed tasks.
    pub completed: i64,
    /// Failed tasks.
    pub failed: i64,
    /// Cancelled tasks.
    pub cancelled: i64,
    /// All tasks.
    pub total: i64,
}

/// `GET /stask/workers` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerList {
    /// `true`.
    pub success: bool,
    /// Workers ordered by position.
    pub workers: Vec<WorkerView>,
    /// Every library file seen in plugins.d/ and how its last load went.
    pub plugin_files: Vec<PluginFileView>,
    /// The library copies this host loaded and keeps mapped (one per load since start, never
    /// unloaded): files in `storage/plugins-loaded/` until the daemon exits.
    pub loaded_copies: CopiesUsage,
}

/// Every schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// `true`.
    pub success: bool,
    /// By name.
    pub schedules: Vec<crate::views::ScheduleView>,
}

/// One schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleAnswer {
    /// `true`.
    pub success: bool,
    /// What happened, for changes.
    pub message: Option<String>,
    /// The schedule.
    pub schedule: crate::views::ScheduleView,
}

/// One worker.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerAnswer {
    /// `true`.
    pub success: bool,
    /// What happened, for actions.
    pub message: Option<String>,
    /// The worker.
    pub worker: WorkerView,
}

/// A worker's settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsAnswer {
    /// `true`.
    pub success: bool,
    /// Effective settings.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// The plugin's defaults.
    #[schema(value_type = Object)]
    pub default_settings: Value,
}

/// What a scan did to one file.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileOutcome {
    /// File name in plugins.d/.
    pub file: String,
    /// `loaded`, `unchanged` or `refused`.
    pub outcome: String,
    /// Worker it serves, when loaded.
    pub identifier: Option<String>,
    /// Version loaded.
    pub version: Option<String>,
    /// Why it was refused.
    pub error: Option<String>,
}

/// Answer of discover and rescan.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanAnswer {
    /// `true`.
    pub success: bool,
    /// One entry per library file.
    pub files: Vec<FileOutcome>,
}

/// Answer of clean-orphaned.
#[derive(Debug, Serialize, ToSchema)]
pub struct CleanOrphanedAnswer {
    /// `true`.
    pub success: bool,
    /// Rows deleted.
    pub deleted: usize,
    /// Their identifiers.
    pub identifiers: Vec<String>,
    /// What happened.
    pub message: String,
}

/// `GET /stask/health` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthAnswer {
    /// `true`.
    pub success: bool,
    /// `ok`.
    pub status: String,
}

/// `GET /stask/version` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionAnswer {
    /// `true`.
    pub success: bool,
    /// `stask`.
    pub name: String,
    /// Host version.
    pub version: String,
    /// Plugin interface version plugins must be built against.
    pub plugin_api: String,
}

/// Body of `POST /stask/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// An API token.
    pub token: String,
}

/// A browser session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionAnswer {
    /// `true`.
    pub success: bool,
    /// Send it as `X-CSRF-TOKEN` with every state-changing request.
    pub csrf_token: String,
    /// Name of the token the session was opened with.
    pub token_name: Option<String>,
    /// What the session may do (its token's role): `read`, `operate` or `admin`.
    #[schema(example = "admin")]
    pub role: String,
    /// Expiry (RFC 3339).
    pub expires_at: String,
}

/// A plain acknowledgement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    /// `true`.
    pub success: bool,
    /// What happened.
    pub message: String,
}

/// Answer of an upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadAnswer {
    /// `true`.
    pub success: bool,
    /// Path relative to `storage/`: pass it as the `file` of an import task.
    pub path: String,
    /// Stored file name (generated).
    pub name: String,
    /// Bytes stored.
    pub size: u64,
}
