//! The domain types shared by the store, the engine, the HTTP API and the CLI.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// A task's status. The numeric codes are the seed's and are stored in `s_tasks.status`;
/// the names are what the API shows. Transitions are decided only in [`crate::task_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting to be claimed (possibly scheduled for later or waiting for its worker).
    Pending,
    /// Claimed by a host, not yet reported running.
    Preparing,
    /// Running on a host.
    Running,
    /// Finished its work.
    Completed,
    /// Failed with no attempts left (or a permanent error).
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl TaskStatus {
    /// All statuses, in code order.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::Preparing,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The seed's numeric code.
    pub fn code(self) -> i64 {
        match self {
            TaskStatus::Pending => 10,
            TaskStatus::Preparing => 15,
            TaskStatus::Running => 20,
            TaskStatus::Completed => 30,
            TaskStatus::Failed => 40,
            TaskStatus::Cancelled => 50,
        }
    }

    /// The status for a numeric code.
    pub fn from_code(code: i64) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Preparing => "preparing",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Completed, failed or cancelled: nothing will run any more (until a retry).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(code) = s.parse::<i64>() {
            if let Some(status) = TaskStatus::from_code(code) {
                return Ok(status);
            }
        }
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                format!("unknown status '{s}' (valid: pending, preparing, running, completed, failed, cancelled or 10-50)")
            })
    }
}

/// Task priority; claims take high before normal before low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Runs after everything else that is due.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Runs before everything else that is due.
    High,
}

impl Priority {
    /// Rank stored in `s_tasks.priority_rank` (higher is claimed first).
    pub fn rank(self) -> i64 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
        }
    }

    /// The stored and shown name.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

impl FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            other => Err(format!(
                "unknown priority '{other}' (valid: low, normal, high)"
            )),
        }
    }
}

/// What a failed or cancelled parent does to a task that depends on it (see
/// `crate::dependencies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnParentFailure {
    /// The dependant is cancelled, with a message naming the parent (the default).
    #[default]
    Cancel,
    /// The dependant runs anyway once every parent finished, however they ended.
    Run,
}

impl OnParentFailure {
    /// The code stored in `s_tasks.on_parent_failure`.
    pub fn code(self) -> i64 {
        match self {
            OnParentFailure::Cancel => 0,
            OnParentFailure::Run => 1,
        }
    }

    /// The rule a stored code names (anything unknown reads as cancel).
    pub fn from_code(code: i64) -> OnParentFailure {
        match code {
            1 => OnParentFailure::Run,
            _ => OnParentFailure::Cancel,
        }
    }

    /// The API name (`cancel`, `run`).
    pub fn name(self) -> &'static str {
        match self {
            OnParentFailure::Cancel => "cancel",
            OnParentFailure::Run => "run",
        }
    }
}

impl FromStr for OnParentFailure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cancel" => Ok(OnParentFailure::Cancel),
            "run" => Ok(OnParentFailure::Run),
            other => Err(format!(
                "unknown on_parent_failure '{other}' (valid: cancel, run)"
            )),
        }
    }
}

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Worker identifier.
    pub identifier: String,
    /// Action of that worker.
    pub action: String,
    /// Task data (a JSON object).
    pub data: Value,
    /// Claim priority.
    pub priority: Priority,
    /// Scheduled start (UNIX ms); `None` = at once.
    pub start_at: Option<i64>,
    /// Attempts allowed (>= 1).
    pub max_attempts: u32,
    /// The CMS user the task was started for (the original's `userId`), as the client gave
    /// it; `None` = no user.
    pub started_by: Option<i64>,
    /// The API token that created it (a session's: the token it was opened with); `None` =
    /// not over the API (CLI, system).
    pub token_id: Option<i64>,
    /// Creates nothing while another task holds this key (see `crate::unique`); at most
    /// [`crate::unique::MAX_UNIQUE_KEY_CHARS`] characters, not empty.
    pub unique_key: Option<String>,
    /// With `unique_key`: the key is held this many seconds from creation, whatever the
    /// task's status; `None`: held while the task is pending, claimed or running.
    pub unique_for_secs: Option<i64>,
    /// The task whose run created this one as a follow-up (set by the host from the running
    /// task, never from a plugin's or client's input); `None` for every other create.
    pub parent_id: Option<i64>,
    /// The tasks it waits for (see `crate::dependencies`); empty: none.
    pub depends_on: Vec<i64>,
    /// What a failed or cancelled task of `depends_on` does to it.
    pub on_parent_failure: OnParentFailure,
}

/// The largest CMS user id a task's `started_by` takes (the API and the CLI refuse more):
/// JavaScript's largest exact integer, so that a browser and the OpenAPI document read every
/// id exactly. User ids start at 1.
pub const MAX_USER_ID: i64 = 9_007_199_254_740_991;

/// Default `max_attempts` (the seed's).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// A task row.
#[derive(Debug, Clone)]
pub struct Task {
    /// `s_tasks.id`.
    pub id: i64,
    /// Worker identifier.
    pub identifier: String,
    /// Action.
    pub action: String,
    /// Status.
    pub status: TaskStatus,
    /// Last status message.
    pub message: String,
    /// The CMS user the task was started for; `None` = no user.
    pub started_by: Option<i64>,
    /// The API token that created it; `None` = not over the API.
    pub token_id: Option<i64>,
    /// The unique key it was created with, if any.
    pub unique_key: Option<String>,
    /// The task whose run created this one as a follow-up; `None` = not a follow-up.
    pub parent_id: Option<i64>,
    /// The batch it was created in (see `crate::batches`); `None` = created alone.
    pub batch_id: Option<i64>,
    /// Task data.
    pub meta: Value,
    /// Result text.
    pub result: Option<String>,
    /// Result file, relative to `storage/stask/results/`.
    pub result_file: Option<String>,
    /// Scheduled start as requested.
    pub start_at: Option<i64>,
    /// When it is (or was) due.
    pub run_at: i64,
    /// When it finished.
    pub finished_at: Option<i64>,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Priority.
    pub priority: Priority,
    /// 0-100.
    pub progress: i64,
    /// Items processed, when the worker reports items.
    pub processed: Option<i64>,
    /// Items in total, when the worker reports items.
    pub total: Option<i64>,
    /// Estimated seconds left.
    pub eta_seconds: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Real start of the latest attempt.
    pub started_at: Option<i64>,
    /// Host instance holding the lease.
    pub lease_owner: Option<String>,
    /// Lease expiry.
    pub lease_expires_at: Option<i64>,
    /// Whether a cancel was requested while it ran.
    pub cancel_requested: bool,
    /// Worker version that ran (or runs) it.
    pub worker_version: Option<String>,
    /// Error of the latest failed attempt.
    pub last_error: Option<String>,
    /// Wall time of the latest finished attempt.
    pub duration_ms: Option<i64>,
    /// CPU time (user + system) of the thread that ran the latest finished attempt.
    pub cpu_ms: Option<i64>,
    /// Peak heap growth of the latest finished attempt, when it could be measured (it ran
    /// alone); `None` otherwise.
    pub memory_bytes: Option<i64>,
}

/// A worker row (`s_workers`).
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRow {
    /// `s_workers.id`.
    pub id: i64,
    /// External id.
    pub uuid: String,
    /// Unique identifier.
    pub identifier: String,
    /// Module/package scope.
    pub scope: String,
    /// Library file + declared type.
    pub class: String,
    /// Operator switch: inactive workers' tasks stay pending.
    pub active: bool,
    /// Operator switch: a paused worker still accepts tasks, but none of them is claimed (on
    /// any host) until it is resumed; running ones finish.
    pub paused: bool,
    /// Display order.
    pub position: i64,
    /// Effective settings (defaults merged with the operator's values).
    pub settings: Value,
    /// Visibility flag (seed).
    pub hidden: i64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Declared actions (`[{name, description, schema?}]`).
    pub actions: Value,
    /// The plugin's defaults.
    pub default_settings: Value,
    /// `loaded`, `orphaned` or `error`.
    pub state: WorkerState,
    /// Why the latest load failed, if it did.
    pub load_error: Option<String>,
    /// Library file name in plugins.d/.
    pub file: Option<String>,
    /// SHA-256 of the loaded library.
    pub file_sha256: Option<String>,
    /// Worker version string.
    pub version: Option<String>,
    /// Load counter: incremented on every (re)load.
    pub generation: i64,
    /// When the current version was loaded.
    pub loaded_at: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

impl WorkerRow {
    /// Whether `action` is one of the declared actions.
    pub fn has_action(&self, action: &str) -> bool {
        self.action_names().iter().any(|a| a == action)
    }

    /// The declared action names.
    pub fn action_names(&self) -> Vec<String> {
        self.actions
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|a| a.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Registration state of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Its library is loaded and serving.
    Loaded,
    /// Its library was removed; row, settings and history kept.
    Orphaned,
    /// Its library failed to load; see `load_error`.
    Error,
}

impl WorkerState {
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Loaded => "loaded",
            WorkerState::Orphaned => "orphaned",
            WorkerState::Error => "error",
        }
    }

    /// Parses a stored name.
    pub fn from_name(s: &str) -> Option<WorkerState> {
        match s {
            "loaded" => Some(WorkerState::Loaded),
            "orphaned" => Some(WorkerState::Orphaned),
            "error" => Some(WorkerState::Error),
            _ => None,
        }
    }
}

/// Counts per status (`GET /stask/stats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Pending tasks.
    pub pending: i64,
    /// Preparing tasks.
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

/// A task log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Task id.
    pub task_id: i64,
    /// Attempt that wrote it.
    pub attempt: u32,
    /// A [`stask_plugin_api::LogLevel`] as its stored integer: 0 info, 1 warning, 2 error.
    pub level: u8,
    /// UNIX ms.
    pub at: i64,
    /// The text.
    pub line: String,
}

/// How the latest load of one library file went (`s_plugin_files`).
#[derive(Debug, Clone, Serialize)]
pub struct PluginFile {
    /// File name in plugins.d/.
    pub file: String,
    /// SHA-256 of the bytes last looked at.
    pub file_sha256: Option<String>,
    /// `loaded`, `error` or `removed`.
    pub state: String,
    /// Worker identifier it provides, when known.
    pub identifier: Option<String>,
    /// One-line reason of the failure.
    pub error: Option<String>,
    /// Full detail (e.g. the whole abi_stable layout report).
    pub error_detail: Option<String>,
    /// Last change.
    pub updated_at: i64,
}

/// What a token (and a session opened with it) may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// Reads only (GET).
    Read,
    /// Also creates, cancels, retries and deletes tasks (and uploads their input files).
    Operate,
    /// Everything: workers, settings, schedules, cache, cleaning. Tokens made before roles
    /// existed have it, so they keep working.
    Admin,
}

impl TokenRole {
    /// Every role, weakest first.
    pub const ALL: [TokenRole; 3] = [TokenRole::Read, TokenRole::Operate, TokenRole::Admin];

    /// The name stored in `s_tokens.role` and shown to people.
    pub fn name(self) -> &'static str {
        match self {
            TokenRole::Read => "read",
            TokenRole::Operate => "operate",
            TokenRole::Admin => "admin",
        }
    }

    /// The role of a stored or typed name (case-insensitive), if it is one.
    pub fn parse(name: &str) -> Option<TokenRole> {
        TokenRole::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl std::fmt::Display for TokenRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An API token row (without the secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    /// Id (stored as `token_id` of tasks it creates).
    pub id: i64,
    /// Name given at creation.
    pub name: String,
    /// What it may do.
    pub role: TokenRole,
    /// First characters of the token, to recognise it.
    pub prefix: String,
    /// Creation time.
    pub created_at: i64,
    /// Last use.
    pub last_used_at: Option<i64>,
    /// Revocation time.
    pub revoked_at: Option<i64>,
    /// The workers whose tasks it may act on (`stask token create --workers`); `None`: every
    /// worker.
    pub workers: Option<Vec<String>>,
}
