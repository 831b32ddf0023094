//! What the API (and `--json` CLI output) shows of the domain types: typed, so that the OpenAPI
//! document is generated from the same structs that are serialized.

use crate::clock::{human_duration, rfc3339};
use crate::model::{LogLine, PluginFile, Task, TaskStatus, WorkerRow};
use crate::store::dependencies::WAITING_RUN_AT;
use crate::store::TaskDependencies;
use crate::store::{Held, HeldReason, LimitUsage, WorkerLimit};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A task as the API shows it. Times are RFC 3339 (UTC).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskView {
    /// Task id.
    pub id: i64,
    /// Worker identifier.
    pub identifier: String,
    /// Action.
    pub action: String,
    /// `pending`, `preparing`, `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// The seed's numeric code (10, 15, 20, 30, 40, 50).
    pub status_code: i64,
    /// Latest status message.
    pub message: String,
    /// `low`, `normal` or `high`.
    pub priority: String,
    /// 0-100.
    pub progress: i64,
    /// Items processed, when the worker reports items.
    pub processed: Option<i64>,
    /// Items in total, when the worker reports items.
    pub total: Option<i64>,
    /// Time left, e.g. `2m 30s`.
    pub eta: Option<String>,
    /// Time left in seconds.
    pub eta_seconds: Option<i64>,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The task data.
    #[schema(value_type = Object)]
    pub meta: Value,
    /// Result text.
    pub result: Option<String>,
    /// Result file name, when there is one to download.
    pub result_file: Option<String>,
    /// Where to download the result file.
    pub download_url: Option<String>,
    /// Scheduled start as requested.
    pub start_at: Option<String>,
    /// When it is (or was) due; for a task still waiting for the tasks it depends on (not
    /// due until they finished), its creation time.
    pub run_at: String,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Real start of the latest attempt.
    pub started_at: Option<String>,
    /// End time.
    pub finished_at: Option<String>,
    /// Wall time of the latest finished attempt (ms).
    pub duration_ms: Option<i64>,
    /// Time the latest attempt waited from due (creation, `start_at` or retry time) to its
    /// start (ms); `null` before it started.
    pub wait_ms: Option<i64>,
    /// CPU time of the thread that ran the latest finished attempt (ms).
    pub cpu_ms: Option<i64>,
    /// Peak heap growth of the latest finished attempt (bytes); `null` when it was not
    /// measured (it overlapped other tasks, see ARCHITECTURE.md).
    pub memory_bytes: Option<i64>,
    /// Worker version that ran it.
    pub worker_version: Option<String>,
    /// Error of the latest failed attempt.
    pub last_error: Option<String>,
    /// A cancel was requested while it ran.
    pub cancel_requested: bool,
    /// The CMS user it was started for, as given at creation (`null` = none).
    pub started_by: Option<i64>,
    /// Id of the API token that created it (a session's: the token it was opened with);
    /// `null` = not created over the API (CLI, system).
    pub token_id: Option<i64>,
    /// Pending and held because its worker is paused (the message then says so).
    pub paused: bool,
    /// Why a pending task is not running yet; `null` when it is not pending or nothing holds
    /// it but a free slot. Derived when read, never stored.
    pub waiting_for: Option<WaitingFor>,
    /// The unique key it was created with (`null` = none).
    pub unique_key: Option<String>,
    /// The task whose run created this one as a follow-up (`null` = not a follow-up).
    pub parent_id: Option<i64>,
    /// The batch it was created in (`GET /stask/batches/{id}`); null when created alone.
    pub batch_id: Option<i64>,
    /// The tasks it depends on and the tasks that depend on it: only in the task's own view
    /// (`GET /stask/tasks/{id}`, `task show`); `null` in lists.
    pub dependencies: Option<DependenciesView>,
}

/// A task's dependencies both ways (`depends_on` at creation, and the tasks created with it in
/// theirs). Lists stop after the first 50 ids of each, by id; the counts are complete.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DependenciesView {
    /// Ids of the tasks it depends on.
    pub depends_on: Vec<i64>,
    /// How many tasks it depends on.
    pub depends_on_count: i64,
    /// Ids of the tasks that depend on it.
    pub dependants: Vec<i64>,
    /// How many tasks depend on it.
    pub dependant_count: i64,
    /// How many of the tasks it depends on it still waits for.
    pub waiting_for_count: i64,
    /// What a failed or cancelled task it depends on does to it: `cancel` (it is cancelled)
    /// or `run` (it runs once every one finished).
    pub on_parent_failure: String,
    /// The same tasks with their statuses, parents first (the UI's dependency chain).
    pub tasks: Vec<RelatedTaskView>,
}

/// A task related by a dependency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RelatedTaskView {
    /// Its id.
    pub id: i64,
    /// `parent` (the viewed task depends on it) or `dependant` (it depends on the viewed task).
    pub relation: String,
    /// Its status; `null` when it was deleted.
    pub status: Option<String>,
    /// Whether the parent's end was passed to the dependant already.
    pub resolved: bool,
}

impl From<&TaskDependencies> for DependenciesView {
    fn from(d: &TaskDependencies) -> Self {
        let related = |r: &crate::store::dependencies::Related, relation: &str| RelatedTaskView {
            id: r.id,
            relation: relation.into(),
            status: r.status.map(|s| s.name().into()),
            resolved: r.resolved,
        };
        DependenciesView {
            depends_on: d.parents.iter().map(|r| r.id).collect(),
            depends_on_count: d.parent_count,
            dependants: d.dependants.iter().map(|r| r.id).collect(),
            dependant_count: d.dependant_count,
            waiting_for_count: d.waiting_parents,
            on_parent_failure: d.on_parent_failure.name().into(),
            tasks: d
                .parents
                .iter()
                .map(|r| related(r, "parent"))
                .chain(d.dependants.iter().map(|r| related(r, "dependant")))
                .collect(),
        }
    }
}

impl TaskView {
    /// Adds the task's dependencies; a task still waiting for some says which ("Waiting for
    /// task 12 (and 2 more)"). Call before [`TaskView::with_paused`]: a pause is shown first.
    pub fn with_dependencies(mut self, deps: &TaskDependencies) -> Self {
        if self.status_code == TaskStatus::Pending.code() && deps.waiting_parents > 0 {
            self.waiting_for = Some(WaitingFor::Dependencies);
            if let Some(first) = deps.first_waiting {
                self.message = crate::task_state::waiting_for_message(first, deps.waiting_parents);
            }
        }
        self.dependencies = Some(deps.into());
        self
    }

    /// Marks a pending task of a paused worker: `paused` and the waiting message. Derived at
    /// read time from the workers' rows (`paused_workers`), so a pause or resume rewrites no
    /// task row and every host shows the same.
    pub fn with_paused(mut self, paused_workers: &[String]) -> Self {
        if self.status_code == TaskStatus::Pending.code()
            && paused_workers.contains(&self.identifier)
        {
            self.paused = true;
            self.waiting_for = Some(WaitingFor::Paused);
            self.message = crate::task_state::paused_message(&self.identifier);
        }
        self
    }
}

impl TaskView {
    /// [`TaskView::with_paused`], then, for a pending task that is due and not held by
    /// anything else, the limit of its worker (or its action) that holds it now: `waiting_for`
    /// and the message say which.
    pub fn with_waiting(self, waiting: &Waiting) -> Self {
        let mut view = self.with_paused(&waiting.paused);
        if view.status_code != TaskStatus::Pending.code() || view.waiting_for.is_some() {
            return view;
        }
        let hold = waiting.limits.iter().find(|h| {
            h.identifier == view.identifier && h.action.as_ref().is_none_or(|a| *a == view.action)
        });
        if let Some(hold) = hold {
            view.waiting_for = Some(hold.waiting_for);
            view.message = hold.message.clone();
        }
        view
    }
}

impl From<&Task> for TaskView {
    fn from(t: &Task) -> Self {
        let time = |v: Option<i64>| v.map(rfc3339);
        // Pending at the sentinel due time: waiting for the tasks it depends on.
        let waiting = t.status == TaskStatus::Pending && t.run_at == WAITING_RUN_AT;
        TaskView {
            id: t.id,
            identifier: t.identifier.clone(),
            action: t.action.clone(),
            status: t.status.name().into(),
            status_code: t.status.code(),
            message: t.message.clone(),
            priority: t.priority.name().into(),
            progress: t.progress,
            processed: t.processed,
            total: t.total,
            eta: t.eta_seconds.map(human_duration),
            eta_seconds: t.eta_seconds,
            attempts: t.attempts,
            max_attempts: t.max_attempts,
            meta: t.meta.clone(),
            result: t.result.clone(),
            result_file: t
                .result_file
                .as_deref()
                .and_then(|f| f.rsplit('/').next())
                .map(str::to_owned),
            download_url: t
                .result_file
                .as_ref()
                .map(|_| format!("/stask/tasks/{}/download", t.id)),
            start_at: time(t.start_at),
            run_at: rfc3339(if waiting { t.created_at } else { t.run_at }),
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            started_at: time(t.started_at),
            finished_at: time(t.finished_at),
            duration_ms: t.duration_ms,
            wait_ms: t
                .started_at
                .filter(|&started| started >= t.run_at && t.status != TaskStatus::Pending)
                .map(|started| started - t.run_at),
            cpu_ms: t.cpu_ms,
            memory_bytes: t.memory_bytes,
            worker_version: t.worker_version.clone(),
            last_error: t.last_error.clone(),
            cancel_requested: t.cancel_requested,
            started_by: t.started_by,
            token_id: t.token_id,
            paused: false,
            waiting_for: if waiting {
                Some(WaitingFor::Dependencies)
            } else {
                (t.status == TaskStatus::Pending && t.run_at > crate::clock::now_ms())
                    .then_some(WaitingFor::Scheduled)
            },
            unique_key: t.unique_key.clone(),
            parent_id: t.parent_id,
            batch_id: t.batch_id,
            dependencies: None,
        }
    }
}

/// What holds a pending task back (the task view's `waiting_for`). When several do, the one
/// that decides first is shown: paused, then dependencies, then scheduled, then the worker's
/// limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitingFor {
    /// Its worker is paused.
    Paused,
    /// Its due time (`start_at`, a retry's backoff) is still ahead.
    Scheduled,
    /// A task it depends on has not completed yet.
    Dependencies,
    /// Its worker (or action) runs as many tasks as its `concurrency` setting allows.
    ConcurrencyLimit,
    /// Its worker started as many tasks as its `rate_limit` setting allows for now.
    RateLimit,
}

/// A worker as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerView {
    /// Row id.
    pub id: i64,
    /// External id.
    pub uuid: String,
    /// Unique identifier.
    pub identifier: String,
    /// Module/package scope.
    pub scope: String,
    /// Library file and declared type.
    pub class: String,
    /// Inactive workers' tasks stay pending.
    pub active: bool,
    /// A paused worker accepts tasks but none is started (on any host) until it is resumed.
    pub paused: bool,
    /// Display order.
    pub position: i64,
    /// Effective settings.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// The plugin's defaults.
    #[schema(value_type = Object)]
    pub default_settings: Value,
    /// Visibility flag.
    pub hidden: i64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Declared actions: `[{name, description, schema?}]`.
    #[schema(value_type = Vec<Object>)]
    pub actions: Value,
    /// `loaded`, `orphaned` or `error`.
    pub state: String,
    /// Why the latest load failed.
    pub load_error: Option<String>,
    /// Library file name in plugins.d/.
    pub file: Option<String>,
    /// SHA-256 of the loaded library.
    pub file_sha256: Option<String>,
    /// Version label (`declared+hash`).
    pub version: Option<String>,
    /// Loads so far.
    pub generation: i64,
    /// When the current version was loaded.
    pub loaded_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Its limits (settings `concurrency`, `action_concurrency`, `rate_limit`) and how many of
    /// its tasks run now; `null` when it has none.
    pub limits: Option<WorkerLimitsView>,
}

/// A worker's limits as set, and its tasks running under them (on all hosts).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerLimitsView {
    /// Most tasks running at once on all hosts (`null`: no cap).
    pub concurrency: Option<u64>,
    /// Most tasks of an action running at once, by action.
    #[schema(value_type = Object)]
    pub action_concurrency: BTreeMap<String, u64>,
    /// Most starts per period on all hosts, as `"100/s"` (`null`: no rate limit).
    pub rate_limit: Option<String>,
    /// Its tasks preparing or running now (`null` when not read with this answer).
    pub running: Option<u64>,
    /// The same per action.
    #[schema(value_type = Object)]
    pub running_by_action: BTreeMap<String, u64>,
}

impl WorkerView {
    /// Adds how many of its tasks run now (from the store's `limit_usage`).
    pub fn with_usage(mut self, usage: &[LimitUsage]) -> Self {
        if let Some(limits) = &mut self.limits {
            if let Some(u) = usage.iter().find(|u| u.identifier == self.identifier) {
                limits.running = Some(u.leased);
                limits.running_by_action = u.leased_by_action.clone();
            } else {
                limits.running = Some(0);
            }
        }
        self
    }
}

/// A limit that holds a worker's pending tasks now (or one action's), for the task views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHold {
    /// The worker.
    pub identifier: String,
    /// Only this action's tasks (an `action_concurrency` cap); `None`: all its tasks.
    pub action: Option<String>,
    /// `ConcurrencyLimit` or `RateLimit`.
    pub waiting_for: WaitingFor,
    /// What the task view says.
    pub message: String,
}

impl LimitHold {
    /// The view of a store's [`Held`] under `limit`.
    pub fn of(held: &Held, limit: &WorkerLimit) -> LimitHold {
        let who = &held.identifier;
        let (action, waiting_for, message) = match &held.reason {
            HeldReason::Concurrency { running, cap } => (
                None,
                WaitingFor::ConcurrencyLimit,
                format!("Waiting: {running} of {cap} tasks of '{who}' running (concurrency limit)"),
            ),
            HeldReason::ActionConcurrency {
                action,
                running,
                cap,
            } => (
                Some(action.clone()),
                WaitingFor::ConcurrencyLimit,
                format!(
                    "Waiting: {running} of {cap} '{action}' tasks of '{who}' running \
                     (concurrency limit)"
                ),
            ),
            HeldReason::Rate { .. } => (
                None,
                WaitingFor::RateLimit,
                format!(
                    "Waiting: rate limit {}",
                    limit.rate.map(|r| r.to_string()).unwrap_or_default()
                ),
            ),
        };
        LimitHold {
            identifier: who.clone(),
            action,
            waiting_for,
            message,
        }
    }
}

/// What holds pending tasks back, read once for a whole answer: the paused workers and the
/// limits that hold now. Derived at read time; nothing of it is stored in task rows.
#[derive(Debug, Clone, Default)]
pub struct Waiting {
    /// Identifiers of the paused workers.
    pub paused: Vec<String>,
    /// The limits holding workers (or actions) now.
    pub limits: Vec<LimitHold>,
}

impl Waiting {
    /// From the worker rows and the limited workers' usage at `now`.
    pub fn of(workers: &[WorkerRow], usage: &[LimitUsage], now: i64) -> Waiting {
        let paused = workers
            .iter()
            .filter(|w| w.paused)
            .map(|w| w.identifier.clone())
            .collect();
        let mut limits = Vec::new();
        for w in workers {
            let Some(limit) = WorkerLimit::from_settings(&w.identifier, &w.settings) else {
                continue;
            };
            let Some(u) = usage.iter().find(|u| u.identifier == w.identifier) else {
                continue;
            };
            limits.extend(u.held(&limit, now).iter().map(|h| LimitHold::of(h, &limit)));
        }
        Waiting { paused, limits }
    }
}

impl From<&WorkerRow> for WorkerView {
    fn from(w: &WorkerRow) -> Self {
        WorkerView {
            id: w.id,
            uuid: w.uuid.clone(),
            identifier: w.identifier.clone(),
            scope: w.scope.clone(),
            class: w.class.clone(),
            active: w.active,
            paused: w.paused,
            position: w.position,
            settings: w.settings.clone(),
            default_settings: w.default_settings.clone(),
            hidden: w.hidden,
            title: w.title.clone(),
            description: w.description.clone(),
            actions: w.actions.clone(),
            state: w.state.name().into(),
            load_error: w.load_error.clone(),
            file: w.file.clone(),
            file_sha256: w.file_sha256.clone(),
            version: w.version.clone(),
            generation: w.generation,
            loaded_at: w.loaded_at.map(rfc3339),
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
            limits: WorkerLimit::from_settings(&w.identifier, &w.settings).map(|l| {
                WorkerLimitsView {
                    concurrency: (l.concurrency > 0).then_some(l.concurrency),
                    action_concurrency: l.action_concurrency.clone(),
                    rate_limit: l.rate.map(|r| r.to_string()),
                    running: None,
                    running_by_action: BTreeMap::new(),
                }
            }),
        }
    }
}

/// A task log line as the API shows it (the store's [`LogLine`], with the schema the OpenAPI
/// document states: the storage crate knows nothing of the API).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = LogLine)]
pub struct LogLineView {
    /// Task id.
    pub task_id: i64,
    /// Attempt that wrote it.
    pub attempt: u32,
    /// 0 info, 1 warning, 2 error.
    pub level: u8,
    /// UNIX ms.
    pub at: i64,
    /// The text.
    pub line: String,
}

impl From<LogLine> for LogLineView {
    fn from(l: LogLine) -> LogLineView {
        LogLineView {
            task_id: l.task_id,
            attempt: l.attempt,
            level: l.level,
            at: l.at,
            line: l.line,
        }
    }
}

/// How the latest load of one library file went, as the API shows it (`s_plugin_files`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = PluginFile)]
pub struct PluginFileView {
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

impl From<PluginFile> for PluginFileView {
    fn from(f: PluginFile) -> PluginFileView {
        PluginFileView {
            file: f.file,
            file_sha256: f.file_sha256,
            state: f.state,
            identifier: f.identifier,
            error: f.error,
            error_detail: f.error_detail,
            updated_at: f.updated_at,
        }
    }
}

/// A recurring schedule as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Worker identifier of the tasks it creates.
    pub identifier: String,
    /// Action of that worker.
    pub action: String,
    /// Cron expression (5 fields, 6 with seconds first, or `@hourly`/`@daily`/`@weekly`/`@monthly`).
    pub cron: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    /// Data of every task it creates.
    #[schema(value_type = Object)]
    pub data: Value,
    /// `low`, `normal` or `high`.
    pub priority: String,
    /// Attempts of its tasks.
    pub max_attempts: u32,
    /// Unique key of its tasks.
    pub unique_key: Option<String>,
    /// Whether it fires.
    pub enabled: bool,
    /// Whether a slot missed while no host ran runs once at the next start.
    pub catch_up: bool,
    /// Where it was last written from: `config` (stask.toml) or `api`.
    pub source: String,
    /// The latest slot that created a task.
    pub last_run_at: Option<String>,
    /// The task it created.
    pub last_task_id: Option<i64>,
    /// The next slot (none while disabled).
    pub next_run_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Latest change.
    pub updated_at: String,
}

impl From<&crate::engine::schedules::ScheduleState> for ScheduleView {
    fn from(s: &crate::engine::schedules::ScheduleState) -> Self {
        let (row, spec) = (&s.row, &s.row.spec);
        ScheduleView {
            id: row.id,
            name: spec.name.clone(),
            identifier: spec.identifier.clone(),
            action: spec.action.clone(),
            cron: spec.cron.clone(),
            timezone: spec.timezone.clone(),
            data: spec.data.clone(),
            priority: spec.priority.name().into(),
            max_attempts: spec.max_attempts,
            unique_key: spec.unique_key.clone(),
            enabled: spec.enabled,
            catch_up: spec.catch_up,
            source: spec.source.name().into(),
            last_run_at: row.last_run_at.map(rfc3339),
            last_task_id: row.last_task_id,
            next_run_at: s.next_run_at.map(rfc3339),
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}
