//! Batch endpoints: create many tasks in one transaction, follow and cancel them as one (see
//! `stask_store::batches`).

use super::audit::AuditCreated;
use super::auth::Caller;
use super::error::json_body;
use super::extract::{ApiQuery, BatchId};
use super::query::Param;
use super::tasks::{kind, take_controls, PAGE, PER_PAGE};
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::clock::{now_ms, rfc3339};
use crate::model::NewTask;
use crate::store::{Batch, NewBatch};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// Longest batch name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// A batch's tasks per status.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchCountsView {
    /// Pending (waiting ones included).
    pub pending: i64,
    /// Claimed, not started yet.
    pub preparing: i64,
    /// Running.
    pub running: i64,
    /// Completed.
    pub completed: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
}

/// A batch as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchView {
    /// Batch id.
    pub id: i64,
    /// Its name (`null` = none).
    pub name: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// The id of the token that created it.
    pub created_by: Option<i64>,
    /// Tasks created in it.
    pub total: i64,
    /// Its tasks per status now.
    pub counts: BatchCountsView,
    /// Finished tasks (completed, failed, cancelled).
    pub finished: i64,
    /// Progress over the batch, 0-100: the mean of its tasks' progress, a finished task
    /// counting 100.
    pub progress: f64,
    /// Seconds until every task finished, from the rate at which they finished so far
    /// (`null` before the first finished or once all did).
    pub eta_seconds: Option<i64>,
    /// Whether every task finished.
    pub done: bool,
    /// The task that runs once after all of them (`null` = none).
    pub on_complete_task_id: Option<i64>,
    /// When it was cancelled (RFC 3339; `null` = not cancelled).
    pub cancelled_at: Option<String>,
}

impl BatchView {
    /// The view of `b`, its ETA reckoned at `now`.
    pub fn of(b: &Batch, now: i64) -> BatchView {
        let c = &b.counts;
        let finished = c.finished();
        let unfinished = c.unfinished();
        let total = (finished + unfinished).max(1);
        let progress = (finished as f64 * 100.0 + c.unfinished_progress as f64) / total as f64;
        let elapsed = (now - b.row.created_at).max(1);
        let eta_seconds = (finished > 0 && unfinished > 0)
            .then(|| (unfinished as f64 * elapsed as f64 / finished as f64 / 1000.0).ceil() as i64);
        BatchView {
            id: b.row.id,
            name: b.row.name.clone(),
            created_at: rfc3339(b.row.created_at),
            created_by: b.row.created_by,
            total: b.row.total,
            counts: BatchCountsView {
                pending: c.pending,
                preparing: c.preparing,
                running: c.running,
                completed: c.completed,
                failed: c.failed,
                cancelled: c.cancelled,
            },
            finished,
            progress: (progress * 10.0).round() / 10.0,
            eta_seconds,
            done: unfinished == 0,
            on_complete_task_id: b.row.on_complete_task_id,
            cancelled_at: b.row.cancelled_at.map(rfc3339),
        }
    }
}

/// One batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    /// `true`.
    pub success: bool,
    /// The batch.
    pub batch: BatchView,
}

/// A page of batches.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchPage {
    /// `true`.
    pub success: bool,
    /// The batches of this page, newest first.
    pub batches: Vec<BatchView>,
    /// Batches in total.
    pub total: i64,
    /// Page number (from 1).
    pub page: i64,
    /// Page size.
    pub per_page: i64,
}

/// What a batch create made.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchCreatedAnswer {
    /// `true`.
    pub success: bool,
    /// The new batch's id.
    pub id: i64,
    /// Per task of the request, in order, its id (for a task whose `unique_key` was held: the
    /// holder's id, not in the batch).
    pub task_ids: Vec<i64>,
    /// How many tasks were duplicates of a task holding their `unique_key` (not created).
    pub duplicates: usize,
    /// The `on_complete` task's id.
    pub on_complete_task_id: Option<i64>,
    /// What happened.
    pub message: String,
}

/// What a batch cancel did.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchCancelAnswer {
    /// `true`.
    pub success: bool,
    /// Pending tasks cancelled.
    pub cancelled: usize,
    /// Running tasks asked to stop.
    pub requested: usize,
    /// The batch after the cancel.
    pub batch: BatchView,
}

/// A batch create's body (documentation: the handler reads it by hand, so each task's
/// refusal can name its index).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Read by the OpenAPI document only.
pub struct BatchInput {
    /// The tasks, 1 to 10,000: each `{identifier, action, data?}` plus the options of a single
    /// create (`priority`, `start_at`, `max_attempts`, `started_by`, `unique_key`,
    /// `unique_for`, `depends_on`, `on_parent_failure`).
    #[schema(value_type = Vec<Object>)]
    pub tasks: Vec<Value>,
    /// A task that runs once after every task of the batch finished, whatever their ends
    /// (`{identifier, action, data?}` and the options, without `depends_on` and
    /// `unique_key`); its data then holds `batch`: `{id, name, total, completed, failed,
    /// cancelled, task_ids, ...}`.
    #[schema(value_type = Option<Object>)]
    pub on_complete: Option<Value>,
    /// A name for people (up to 200 characters).
    pub name: Option<String>,
}

/// Paging of `GET /stask/batches`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchQuery {
    /// Page number, 1-1000000 (default 1).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000000)]
    pub page: Option<Param>,
    /// Page size, 1-500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub per_page: Option<Param>,
}

/// One task of a batch body (`what` names it in messages).
fn task_of(what: &str, value: Value, token_id: Option<i64>) -> Result<NewTask, ApiError> {
    let Value::Object(mut item) = value else {
        return Err(ApiError::invalid(format!(
            "{what} must be an object {{identifier, action, data?, ...}}, got {}",
            kind(&value)
        )));
    };
    let mut text = |key: &str| match item.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(ApiError::invalid(format!(
            "{what}: {key} must be a non-empty string"
        ))),
    };
    let identifier = text("identifier")?;
    let action = text("action")?;
    let data = match item.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{what}: data must be an object, got {}",
                kind(&other)
            )))
        }
    };
    let controls = take_controls(&mut item).map_err(|e| ApiError {
        message: format!("{what}: {}", e.message),
        ..e
    })?;
    if let Some(key) = item.keys().next() {
        return Err(ApiError::invalid(format!(
            "{what}: unknown key '{key}' (task data goes in data)"
        )));
    }
    Ok(controls.into_task(identifier, action, Value::Object(data), token_id))
}

/// The batch a create body asks for.
fn new_batch(body: Result<Bytes, BytesRejection>, token_id: i64) -> Result<NewBatch, ApiError> {
    parse_batch(json_body(body)?, Some(token_id))
}

/// The batch a create body (`POST /stask/batches`, `stask batch create --file`) asks for;
/// `token_id` is the caller's token (`None` from the CLI).
pub(crate) fn parse_batch(
    body: Option<Value>,
    token_id: Option<i64>,
) -> Result<NewBatch, ApiError> {
    let Some(Value::Object(mut body)) = body else {
        return Err(ApiError::invalid(
            "send the batch as a JSON object {tasks: [...], on_complete?, name?}",
        ));
    };
    let tasks = match body.remove("tasks") {
        Some(Value::Array(tasks)) => tasks,
        _ => return Err(ApiError::invalid("tasks must be a list of tasks")),
    };
    crate::engine::check_batch_size(tasks.len()).map_err(ApiError::from)?;
    let name = match body.remove("name") {
        None | Some(Value::Null) => None,
        // No control characters (PostgreSQL's text cannot hold NUL; nor can a name be shown).
        Some(Value::String(n))
            if n.chars().count() <= MAX_NAME_CHARS && !n.chars().any(char::is_control) =>
        {
            Some(n)
        }
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "name must be a string of at most {MAX_NAME_CHARS} characters, without control characters"
            )))
        }
    };
    let on_complete = match body.remove("on_complete") {
        None | Some(Value::Null) => None,
        Some(v) => Some(task_of("on_complete", v, token_id)?),
    };
    if let Some(key) = body.keys().next() {
        return Err(ApiError::invalid(format!(
            "unknown key '{key}' (a batch has tasks, on_complete and name)"
        )));
    }
    let tasks = tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            task_of(&format!("tasks[{i}]"), t, token_id).map_err(|e| ApiError {
                index: Some(i),
                ..e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NewBatch {
        name,
        created_by: token_id,
        tasks,
        on_complete,
    })
}

/// Creates a batch: every task, and the optional `on_complete` task, in one transaction under
/// a new batch id. All or nothing: a task that a single create would refuse refuses the whole
/// batch with 422, `index` naming it. `on_complete` depends on every task with
/// `on_parent_failure = run`: it runs once, after all of them finished (completed, failed or
/// cancelled), with the batch's figures in its data (`data.batch`).
#[utoipa::path(post, path = "/stask/batches", tag = "tasks",
    request_body = BatchInput,
    responses(
        (status = 201, description = "Created", body = BatchCreatedAnswer),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token, a role below operate, or a token restricted to workers and a task of another (`worker` names it)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "No tasks, more than 10,000, or a task refused (index names it; unknown_ids for unknown depends_on)", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<
    (
        StatusCode,
        Extension<AuditCreated>,
        Json<BatchCreatedAnswer>,
    ),
    ApiError,
> {
    let batch = new_batch(body, caller.token_id)?;
    // A token restricted to workers creates only their tasks (the permission layer cannot
    // tell: the workers are in the body).
    if let Some(allowed) = &caller.workers {
        let named = batch.tasks.iter().chain(batch.on_complete.as_ref());
        if let Some(other) = named.map(|t| &t.identifier).find(|w| !allowed.contains(w)) {
            return Err(ApiError::forbidden(format!(
                "the batch has a task of the worker '{other}'; this token may act only on the \
                 tasks of {}",
                allowed.join(", ")
            ))
            .with_worker(other));
        }
    }
    let engine = state.engine.clone();
    let created = blocking(move || Ok(engine.create_batch(&batch)?)).await?;
    let duplicates = created.tasks.iter().filter(|t| t.duplicate).count();
    let mut ids: Vec<i64> = created
        .tasks
        .iter()
        .filter(|t| !t.duplicate)
        .map(|t| t.id)
        .collect();
    ids.extend(created.on_complete_task_id);
    Ok((
        StatusCode::CREATED,
        Extension(AuditCreated(ids)),
        Json(BatchCreatedAnswer {
            success: true,
            id: created.id,
            task_ids: created.tasks.iter().map(|t| t.id).collect(),
            duplicates,
            on_complete_task_id: created.on_complete_task_id,
            message: format!(
                "Batch created with {} tasks",
                created.tasks.len() - duplicates
            ),
        }),
    ))
}

/// Batches, newest first, paginated.
#[utoipa::path(get, path = "/stask/batches", tag = "tasks", params(BatchQuery),
    responses(
        (status = 200, description = "A page of batches", body = BatchPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 422, description = "Invalid page or per_page", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BatchQuery>,
) -> Result<Json<BatchPage>, ApiError> {
    let per_page = PER_PAGE.read(&query.per_page)?;
    let page = PAGE.read(&query.page)?;
    let engine = state.engine.clone();
    let (batches, total) =
        blocking(move || Ok(engine.batches(per_page, (page - 1) * per_page)?)).await?;
    let now = now_ms();
    Ok(Json(BatchPage {
        success: true,
        batches: batches.iter().map(|b| BatchView::of(b, now)).collect(),
        total,
        page,
        per_page,
    }))
}

/// One batch: its counts per status, progress, ETA and on_complete task.
#[utoipa::path(get, path = "/stask/batches/{id}", tag = "tasks",
    params(("id" = i64, Path, description = "Batch id", minimum = 1)),
    responses(
        (status = 200, description = "The batch", body = BatchAnswer),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 404, description = "No such batch", body = ErrorBody),
    ))]
pub async fn detail(
    State(state): State<AppState>,
    BatchId(id): BatchId,
) -> Result<Json<BatchAnswer>, ApiError> {
    let engine = state.engine.clone();
    let batch = blocking(move || Ok(engine.batch(id)?)).await?;
    Ok(Json(BatchAnswer {
        success: true,
        batch: BatchView::of(&batch, now_ms()),
    }))
}

/// Cancels every unfinished task of a batch: pending ones at once, running ones are asked to
/// stop. Its on_complete task is not cancelled: it runs once the running ones ended, with the
/// cancelled ones counted in its data.
#[utoipa::path(post, path = "/stask/batches/{id}/cancel", tag = "tasks",
    params(("id" = i64, Path, description = "Batch id", minimum = 1)),
    responses(
        (status = 200, description = "Cancelled (counts of what changed)", body = BatchCancelAnswer),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token, a role below operate, or a token restricted to workers and a batch it did not create", body = ErrorBody),
        (status = 404, description = "No such batch", body = ErrorBody),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    BatchId(id): BatchId,
) -> Result<Json<BatchCancelAnswer>, ApiError> {
    let engine = state.engine.clone();
    let restricted = caller.workers.is_some();
    let (done, batch) = blocking(move || {
        // A token restricted to workers cancels only batches it created: those hold only its
        // workers' tasks (checked at creation); another's may hold anyone's.
        if restricted && engine.batch(id)?.row.created_by != Some(caller.token_id) {
            return Err(ApiError::forbidden(format!(
                "batch {id} was not created by this token, which may act only on the tasks of \
                 its workers"
            )));
        }
        let done = engine.cancel_batch(id)?;
        Ok((done, engine.batch(id)?))
    })
    .await?;
    Ok(Json(BatchCancelAnswer {
        success: true,
        cancelled: done.cancelled.len(),
        requested: done.requested.len(),
        batch: BatchView::of(&batch, now_ms()),
    }))
}
