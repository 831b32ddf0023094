//! Task endpoints.

use super::audit::AuditCreated;
use super::auth::Caller;
use super::error::json_body;
use super::extract::{ApiQuery, TaskId};
use super::query::IntParam;
use super::schema::{
    ChildrenView, CleanAnswer, CleanRequest, PendingQuery, ProgressAnswer, TaskChanged,
    TaskCreated, TaskDetail, TaskPage, TaskQuery,
};
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::clock::{human_duration, parse_time};
use crate::model::{
    NewTask, OnParentFailure, Priority, TaskStatus, DEFAULT_MAX_ATTEMPTS, MAX_USER_ID,
};
use crate::store::TaskFilter;
use crate::views::TaskView;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Map, Value};

/// Log lines returned with a progress answer.
const PROGRESS_LOG_LINES: i64 = 20;

/// The control keys of a create body.
pub(crate) struct Controls {
    priority: Priority,
    start_at: Option<i64>,
    max_attempts: u32,
    started_by: Option<i64>,
    unique_key: Option<String>,
    unique_for_secs: Option<i64>,
    depends_on: Vec<i64>,
    on_parent_failure: OnParentFailure,
}

/// Control keys taken out of a create body; everything else is the task data.
pub(crate) fn take_controls(body: &mut Map<String, Value>) -> Result<Controls, ApiError> {
    let priority = match body.remove("priority") {
        None | Some(Value::Null) => Priority::Normal,
        Some(Value::String(p)) => p.parse().map_err(ApiError::invalid)?,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "priority must be a string, got {other}"
            )))
        }
    };
    let start_at = match body.remove("start_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(parse_time(&t).map_err(ApiError::invalid)?),
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .filter(|s| (0..=253_402_300_799).contains(s))
                .ok_or_else(|| {
                    ApiError::invalid("start_at must be UNIX seconds (year 1970-9999) or RFC 3339")
                })?
                * 1000,
        ),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "start_at must be a time, got {other}"
            )))
        }
    };
    let max_attempts = match body.remove("max_attempts") {
        None | Some(Value::Null) => DEFAULT_MAX_ATTEMPTS,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                ApiError::invalid(format!("max_attempts must be a positive integer, got {v}"))
            })?,
    };
    let started_by = match body.remove("started_by") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|id| (1..=MAX_USER_ID).contains(id))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "started_by must be a user id (a whole number between 1 and \
                         {MAX_USER_ID}), got {v}"
                    ))
                })?,
        ),
    };
    let unique_key = match body.remove("unique_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unique_key must be a string, got {}",
                kind(&other)
            )))
        }
    };
    let unique_for_secs = match body.remove("unique_for") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::invalid(format!("unique_for must be whole seconds, got {v}"))
        })?),
    };
    let depends_on = match body.remove("depends_on") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| v.as_i64().filter(|id| *id >= 1))
            .collect::<Option<Vec<i64>>>()
            .ok_or_else(|| {
                ApiError::invalid("depends_on must be a list of task ids (whole numbers from 1)")
            })?,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "depends_on must be a list of task ids, got {}",
                kind(&other)
            )))
        }
    };
    let on_parent_failure = match body.remove("on_parent_failure") {
        None | Some(Value::Null) => OnParentFailure::Cancel,
        Some(Value::String(rule)) => rule.parse().map_err(ApiError::invalid)?,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "on_parent_failure must be \"cancel\" or \"run\", got {}",
                kind(&other)
            )))
        }
    };
    // Length and range: the engine's check (the CLI's creates get the same).
    crate::store::unique::check(unique_key.as_deref(), unique_for_secs)
        .map_err(ApiError::invalid)?;
    Ok(Controls {
        priority,
        start_at,
        max_attempts,
        started_by,
        unique_key,
        unique_for_secs,
        depends_on,
        on_parent_failure,
    })
}

/// What kind of JSON value `v` is, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Object(_) => "an object",
        Value::Null => "null",
    }
}

/// Creates a task (the seed's endpoint). The body is the task data; the keys `priority`
/// (`low`/`normal`/`high`), `start_at` (RFC 3339 or UNIX seconds), `max_attempts` (1-100)
/// and `started_by` (the CMS user's id, a positive integer) are taken out of it as options,
/// and so are `unique_key` (a string of 1 to 191 characters) and `unique_for` (seconds, 1 to
/// a year): a create whose key another task holds (pending, claimed or running; with
/// `unique_for`, that long after its creation whatever its status) creates nothing and
/// answers 200 with that task's id and `"duplicate": true`; decided by the database, so it
/// holds under concurrent creates on every host. `depends_on` (a list of existing task ids,
/// at most 10,000) makes the task wait, pending, until every one of them finished; when one
/// fails or is cancelled, the task is cancelled with a message naming it, unless
/// `on_parent_failure` is `"run"` (it then runs once all finished). Unknown ids are refused
/// with 422 and `unknown_ids`. The calling token's id is stored as the task's `token_id`.
#[utoipa::path(post, path = "/stask/workers/{identifier}/tasks/{action}", tag = "tasks",
    params(
        ("identifier" = String, Path, description = "Worker identifier"),
        ("action" = String, Path, description = "One of the worker's actions"),
    ),
    request_body(content = Object, description = "Task data plus optional priority, start_at, max_attempts, started_by (the CMS user's id), unique_key, unique_for (seconds), depends_on (task ids), on_parent_failure (cancel or run)"),
    responses(
        (status = 200, description = "Not created: a task holding unique_key exists (its id, duplicate true)", body = TaskCreated),
        (status = 201, description = "Created", body = TaskCreated),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "The token's role is below operate, a session without CSRF token, or a token restricted to other workers (`worker` names this one)", body = ErrorBody),
        (status = 404, description = "Unknown worker or action (the message lists the valid ones)", body = ErrorBody),
        (status = 409, description = "Worker orphaned, failed to load, or inactive", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid options or data, or depends_on names unknown tasks (their ids in unknown_ids)", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Path((identifier, action)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Extension<AuditCreated>, Json<TaskCreated>), ApiError> {
    // A session is opened with a token: its calls carry that token's id (see `auth`).
    let task = new_task(identifier, action, Some(caller.token_id), body)?;
    let inserted = state.engine.create_task_async(task).await?;
    if inserted.duplicate {
        // Nothing was created: 200 (not 201) with the task that holds the key.
        return Ok((
            StatusCode::OK,
            Extension(AuditCreated(Vec::new())),
            Json(TaskCreated {
                success: true,
                id: inserted.id,
                duplicate: true,
                message: "A task with this unique_key exists".into(),
            }),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Extension(AuditCreated(vec![inserted.id])),
        Json(TaskCreated {
            success: true,
            id: inserted.id,
            duplicate: false,
            message: "Task created successfully".into(),
        }),
    ))
}

/// The task a create request asks for: the body's data, with the control keys taken out;
/// `token_id` is the caller's token.
pub(crate) fn new_task(
    identifier: String,
    action: String,
    token_id: Option<i64>,
    body: Result<Bytes, BytesRejection>,
) -> Result<NewTask, ApiError> {
    let mut data = match json_body(body)? {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "the body must be a JSON object of task data, got {}",
                kind(&other)
            )))
        }
    };
    let controls = take_controls(&mut data)?;
    Ok(controls.into_task(identifier, action, Value::Object(data), token_id))
}

impl Controls {
    /// The task these options create with `data`, for the caller's `token_id`.
    pub(crate) fn into_task(
        self,
        identifier: String,
        action: String,
        data: Value,
        token_id: Option<i64>,
    ) -> NewTask {
        NewTask {
            identifier,
            action,
            data,
            priority: self.priority,
            start_at: self.start_at,
            max_attempts: self.max_attempts,
            started_by: self.started_by,
            token_id,
            unique_key: self.unique_key,
            unique_for_secs: self.unique_for_secs,
            parent_id: None,
            depends_on: self.depends_on,
            on_parent_failure: self.on_parent_failure,
        }
    }
}

/// Progress of a task (the seed's keys), with the latest log lines.
#[utoipa::path(get, path = "/stask/tasks/{id}/progress", tag = "tasks",
    params(("id" = i64, Path, description = "Task id", minimum = 1)),
    responses(
        (status = 200, description = "Progress", body = ProgressAnswer),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "A token restricted to workers, and the task is another worker's (`worker` names it)", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    ))]
pub async fn progress(
    State(state): State<AppState>,
    TaskId(id): TaskId,
) -> Result<Json<ProgressAnswer>, ApiError> {
    let engine = state.engine.clone();
    let (task, logs, waiting) = blocking(move || {
        let task = engine.task(id)?;
        let logs = engine.task_logs(id, PROGRESS_LOG_LINES)?;
        Ok((task, logs, engine.waiting()?))
    })
    .await?;
    let view = TaskView::from(&task).with_waiting(&waiting);
    Ok(Json(ProgressAnswer {
        success: true,
        code: 200,
        id: task.id,
        status: task.status.name().into(),
        progress: task.progress,
        message: view.message,
        paused: view.paused,
        eta: task.eta_seconds.map(human_duration),
        processed: task.processed,
        total: task.total,
        attempts: task.attempts,
        log_lines: logs.into_iter().map(|l| l.line).collect(),
    }))
}

/// Everything about one task, with its log.
#[utoipa::path(get, path = "/stask/tasks/{id}", tag = "tasks",
    params(("id" = i64, Path, description = "Task id", minimum = 1)),
    responses(
        (status = 200, description = "The task", body = TaskDetail),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "A token restricted to workers, and the task is another worker's (`worker` names it)", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
    ))]
pub async fn detail(
    State(state): State<AppState>,
    TaskId(id): TaskId,
) -> Result<Json<TaskDetail>, ApiError> {
    let engine = state.engine.clone();
    let (task, children, log, waiting, deps) = blocking(move || {
        Ok((
            engine.task(id)?,
            engine.children(id)?,
            engine.task_logs(id, 500)?,
            engine.waiting()?,
            engine.task_dependencies(id)?,
        ))
    })
    .await?;
    Ok(Json(TaskDetail {
        success: true,
        task: TaskView::from(&task)
            .with_dependencies(&deps)
            .with_waiting(&waiting),
        children: ChildrenView {
            total: children.total,
            ids: children.ids,
        },
        log: log.into_iter().map(Into::into).collect(),
    }))
}

fn statuses(raw: Option<&str>) -> Result<Vec<TaskStatus>, ApiError> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(Vec::new()),
        Some("incomplete") => Ok(vec![
            TaskStatus::Pending,
            TaskStatus::Preparing,
            TaskStatus::Running,
        ]),
        Some("finished") => Ok(vec![
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Cancelled,
        ]),
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse::<TaskStatus>())
            .collect::<Result<_, _>>()
            .map_err(ApiError::invalid),
    }
}

fn time_param(raw: &Option<String>) -> Result<Option<i64>, ApiError> {
    raw.as_deref()
        .filter(|s| !s.is_empty())
        .map(parse_time)
        .transpose()
        .map_err(ApiError::invalid)
}

/// A page of tasks, each marked when its worker is paused or a limit holds it (see
/// [`TaskView::with_waiting`]).
fn page(
    (tasks, total, waiting): (Vec<crate::model::Task>, i64, crate::views::Waiting),
    page: i64,
    per_page: i64,
) -> Json<TaskPage> {
    Json(TaskPage {
        success: true,
        tasks: tasks
            .iter()
            .map(|t| TaskView::from(t).with_waiting(&waiting))
            .collect(),
        total,
        page,
        per_page,
    })
}

/// Tasks, newest first, filtered and paginated.
#[utoipa::path(get, path = "/stask/tasks", tag = "tasks", params(TaskQuery),
    responses(
        (status = 200, description = "A page of tasks", body = TaskPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 422, description = "Invalid filter value", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<TaskQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    let mut filter = task_filter(query)?;
    // A token restricted to workers sees only their tasks; restricted to none, none (an
    // empty `identifiers` would mean every worker).
    let restricted_to_none = caller.workers.as_ref().is_some_and(Vec::is_empty);
    filter.identifiers = caller.workers.unwrap_or_default();
    let (page_no, per_page) = (filter.offset / filter.limit + 1, filter.limit);
    let engine = state.engine.clone();
    let listed = blocking(move || {
        let (tasks, total) = if restricted_to_none {
            (Vec::new(), 0)
        } else {
            engine.tasks(&filter)?
        };
        Ok((tasks, total, engine.waiting()?))
    })
    .await?;
    Ok(page(listed, page_no, per_page))
}

/// `page` of `GET /stask/tasks`.
pub(crate) const PAGE: IntParam = IntParam {
    name: "page",
    min: 1,
    max: 1_000_000,
    default: 1,
};

/// `per_page` of `GET /stask/tasks`.
pub(crate) const PER_PAGE: IntParam = IntParam {
    name: "per_page",
    min: 1,
    max: 500,
    default: 50,
};

/// `started_by` of `GET /stask/tasks`: a user id, as a create accepts it. Read with
/// [`IntParam::read_opt`]: absent is no filter, so the default is never used.
pub(crate) const STARTED_BY: IntParam = IntParam {
    name: "started_by",
    min: 1,
    max: MAX_USER_ID,
    default: 0,
};

/// `parent_id` of `GET /stask/tasks`: a task id. Read with [`IntParam::read_opt`]: absent is
/// no filter, so the default is never used.
pub(crate) const PARENT_ID: IntParam = IntParam {
    name: "parent_id",
    min: 1,
    max: i64::MAX,
    default: 0,
};

/// `batch_id` of `GET /stask/tasks`: a batch id. Read with [`IntParam::read_opt`]: absent is
/// no filter, so the default is never used.
pub(crate) const BATCH_ID: IntParam = IntParam {
    name: "batch_id",
    min: 1,
    max: i64::MAX,
    default: 0,
};

/// `limit` of `GET /stask/tasks/pending`.
pub(crate) const PENDING_LIMIT: IntParam = IntParam {
    name: "limit",
    min: 1,
    max: 500,
    default: 10,
};

/// The store filter of a task list query.
pub(crate) fn task_filter(q: TaskQuery) -> Result<TaskFilter, ApiError> {
    let per_page = PER_PAGE.read(&q.per_page)?;
    let page_no = PAGE.read(&q.page)?;
    Ok(TaskFilter {
        statuses: statuses(q.status.as_deref())?,
        identifier: q.identifier.filter(|s| !s.is_empty()),
        identifiers: Vec::new(),
        action: q.action.filter(|s| !s.is_empty()),
        priority: q
            .priority
            .filter(|s| !s.is_empty())
            .map(|p| p.parse::<Priority>())
            .transpose()
            .map_err(ApiError::invalid)?,
        created_from: time_param(&q.from)?,
        created_to: time_param(&q.to)?,
        search: q.q,
        started_by: STARTED_BY.read_opt(&q.started_by)?,
        parent_id: PARENT_ID.read_opt(&q.parent_id)?,
        batch_id: BATCH_ID.read_opt(&q.batch_id)?,
        limit: per_page,
        offset: (page_no - 1) * per_page,
        oldest_first: false,
    })
}

/// Pending tasks in the order they will be claimed (the seed's `getPendingTasks`).
#[utoipa::path(get, path = "/stask/tasks/pending", tag = "tasks", params(PendingQuery),
    responses(
        (status = 200, description = "Pending tasks", body = TaskPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 422, description = "limit out of range", body = ErrorBody),
    ))]
pub async fn pending(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PendingQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    let limit = PENDING_LIMIT.read(&query.limit)?;
    let engine = state.engine.clone();
    let listed = blocking(move || {
        let (tasks, total) = engine.pending_tasks(limit)?;
        Ok((tasks, total, engine.waiting()?))
    })
    .await?;
    Ok(page(listed, 1, limit))
}

/// Deletes finished tasks older than `days` days, with their files (the seed's
/// `cleanOldTasks`).
#[utoipa::path(post, path = "/stask/tasks/clean", tag = "tasks", request_body = CleanRequest,
    responses(
        (status = 200, description = "Deleted", body = CleanAnswer),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 422, description = "Invalid days", body = ErrorBody),
    ))]
pub async fn clean(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CleanAnswer>, ApiError> {
    let body = json_body(body)?.ok_or_else(|| ApiError::invalid("send {\"days\": N}"))?;
    let request: CleanRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::invalid(format!("send {{\"days\": N}} with N >= 0: {e}")))?;
    let engine = state.engine.clone();
    let deleted = blocking(move || Ok(engine.clean_old_tasks(request.days)?)).await?;
    Ok(Json(CleanAnswer {
        success: true,
        deleted,
        message: format!(
            "Deleted {deleted} finished tasks older than {} days",
            request.days
        ),
    }))
}

fn changed(id: i64, status: Option<TaskStatus>, message: &str) -> Json<TaskChanged> {
    Json(TaskChanged {
        success: true,
        id,
        status: status.map(|s| s.name().to_owned()),
        message: message.into(),
    })
}

/// Cancels a task: a pending one at once, a running one at its next check.
#[utoipa::path(post, path = "/stask/tasks/{id}/cancel", tag = "tasks",
    params(("id" = i64, Path, description = "Task id", minimum = 1)),
    responses(
        (status = 200, description = "Cancelled or cancel requested", body = TaskChanged),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token, the role is below operate, or a token restricted to workers and the task is another worker's (`worker` names it)", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Already finished", body = ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    TaskId(id): TaskId,
) -> Result<Json<TaskChanged>, ApiError> {
    let engine = state.engine.clone();
    let task = blocking(move || Ok(engine.cancel(id)?)).await?;
    let message = if task.status == TaskStatus::Cancelled {
        "Task cancelled"
    } else {
        "Cancel requested; the task stops at its next check"
    };
    Ok(changed(id, Some(task.status), message))
}

/// Queues a failed or cancelled task again, with fresh attempts.
#[utoipa::path(post, path = "/stask/tasks/{id}/retry", tag = "tasks",
    params(("id" = i64, Path, description = "Task id", minimum = 1)),
    responses(
        (status = 200, description = "Queued", body = TaskChanged),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token, the role is below operate, or a token restricted to workers and the task is another worker's (`worker` names it)", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Not failed or cancelled", body = ErrorBody),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    TaskId(id): TaskId,
) -> Result<Json<TaskChanged>, ApiError> {
    let engine = state.engine.clone();
    let task = blocking(move || Ok(engine.retry(id)?)).await?;
    Ok(changed(id, Some(task.status), "Task queued again"))
}

/// Deletes a finished task with its snapshot and result files.
#[utoipa::path(delete, path = "/stask/tasks/{id}", tag = "tasks",
    params(("id" = i64, Path, description = "Task id", minimum = 1)),
    responses(
        (status = 200, description = "Deleted", body = TaskChanged),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token, the role is below operate, or a token restricted to workers and the task is another worker's (`worker` names it)", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Not finished, or tasks that depend on it still wait for its end to be passed on", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    TaskId(id): TaskId,
) -> Result<Json<TaskChanged>, ApiError> {
    let engine = state.engine.clone();
    blocking(move || Ok(engine.delete(id)?)).await?;
    Ok(changed(id, None, "Task deleted"))
}
