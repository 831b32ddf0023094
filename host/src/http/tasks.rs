//! Task endpoints.

use super::auth::Caller;
use super::error::json_body;
use super::error::parse_id;
use super::{blocking, ApiError, AppState};
use crate::clock::{human_duration, parse_time};
use crate::model::{NewTask, Priority, TaskStatus, DEFAULT_MAX_ATTEMPTS};
use crate::store::TaskFilter;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Log lines returned with a progress answer.
const PROGRESS_LOG_LINES: i64 = 20;

/// Control keys taken out of a create body; everything else is the task data.
fn take_controls(body: &mut Map<String, Value>) -> Result<(Priority, Option<i64>, u32), ApiError> {
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
                .ok_or_else(|| ApiError::invalid("start_at must be UNIX seconds or RFC 3339"))?
                .saturating_mul(1000),
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
    Ok((priority, start_at, max_attempts))
}

/// `POST /stask/workers/{identifier}/tasks/{action}`: body = task data plus optional
/// `priority`, `start_at` and `max_attempts`.
pub async fn create(
    State(state): State<AppState>,
    Path((identifier, action)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let (priority, start_at, max_attempts) = take_controls(&mut data)?;
    let task = NewTask {
        identifier,
        action,
        data: Value::Object(data),
        priority,
        start_at,
        max_attempts,
        started_by: Some(caller.token_id),
    };
    let engine = state.engine.clone();
    let id = blocking(move || Ok(engine.create_task(&task)?)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": true, "id": id, "message": "Task created successfully"})),
    ))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        _ => "null",
    }
}

/// `GET /stask/tasks/{id}/progress`: the seed's keys plus items and the latest log lines.
pub async fn progress(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let engine = state.engine.clone();
    let (task, logs) = blocking(move || {
        let task = engine.task(id)?;
        let logs = engine.store.task_logs(id, PROGRESS_LOG_LINES)?;
        Ok((task, logs))
    })
    .await?;
    Ok(Json(json!({
        "success": true,
        "code": 200,
        "id": task.id,
        "status": task.status.name(),
        "progress": task.progress,
        "message": task.message,
        "eta": task.eta_seconds.map(human_duration),
        "processed": task.processed,
        "total": task.total,
        "attempts": task.attempts,
        "log_lines": logs.into_iter().map(|l| l.line).collect::<Vec<_>>(),
    })))
}

/// `GET /stask/tasks/{id}`: everything about one task, with its log.
pub async fn detail(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let engine = state.engine.clone();
    let (task, logs) =
        blocking(move || Ok((engine.task(id)?, engine.store.task_logs(id, 500)?))).await?;
    Ok(Json(
        json!({ "success": true, "task": task.to_json(), "log": logs }),
    ))
}

/// Query of `GET /stask/tasks`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    identifier: Option<String>,
    action: Option<String>,
    priority: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

/// `GET /stask/tasks`: filtered, paginated list, newest first.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let statuses = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some("incomplete") => vec![
            TaskStatus::Pending,
            TaskStatus::Preparing,
            TaskStatus::Running,
        ],
        Some("finished") => vec![
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Cancelled,
        ],
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse::<TaskStatus>())
            .collect::<Result<_, _>>()
            .map_err(ApiError::bad_request)?,
    };
    let per_page = q.per_page.unwrap_or(50).clamp(1, 500);
    let page = q.page.unwrap_or(1).max(1);
    let time = |t: &Option<String>| {
        t.as_deref()
            .filter(|s| !s.is_empty())
            .map(parse_time)
            .transpose()
    };
    let filter = TaskFilter {
        statuses,
        identifier: q.identifier.filter(|s| !s.is_empty()),
        action: q.action.filter(|s| !s.is_empty()),
        priority: q
            .priority
            .filter(|s| !s.is_empty())
            .map(|p| p.parse::<Priority>())
            .transpose()
            .map_err(ApiError::bad_request)?,
        created_from: time(&q.from).map_err(ApiError::bad_request)?,
        created_to: time(&q.to).map_err(ApiError::bad_request)?,
        search: q.q,
        limit: per_page,
        offset: (page - 1) * per_page,
        oldest_first: false,
    };
    let engine = state.engine.clone();
    let (tasks, total) = blocking(move || Ok(engine.store.tasks(&filter)?)).await?;
    Ok(Json(json!({
        "success": true,
        "tasks": tasks.iter().map(|t| t.to_json()).collect::<Vec<_>>(),
        "total": total,
        "page": page,
        "per_page": per_page,
    })))
}

/// `POST /stask/tasks/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let engine = state.engine.clone();
    let task = blocking(move || Ok(engine.cancel(id)?)).await?;
    let message = if task.status == TaskStatus::Cancelled {
        "Task cancelled"
    } else {
        "Cancel requested; the task stops at its next check"
    };
    Ok(Json(
        json!({"success": true, "id": id, "status": task.status.name(), "message": message}),
    ))
}

/// `POST /stask/tasks/{id}/retry`.
pub async fn retry(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let engine = state.engine.clone();
    let task = blocking(move || Ok(engine.retry(id)?)).await?;
    Ok(Json(
        json!({"success": true, "id": id, "status": task.status.name(), "message": "Task queued again"}),
    ))
}

/// `DELETE /stask/tasks/{id}`: a finished task and its files.
pub async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let engine = state.engine.clone();
    blocking(move || Ok(engine.delete(id)?)).await?;
    Ok(Json(
        json!({"success": true, "id": id, "message": "Task deleted"}),
    ))
}

/// `GET /stask/tasks/{id}/download`: the result file of a completed task. The stored path is
/// resolved inside the results folder only; anything else is a 404.
pub async fn download(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let engine = state.engine.clone();
    let (path, bytes) = blocking(move || {
        let task = engine.task(id)?;
        if task.status != TaskStatus::Completed {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "task {id} is {}; only completed tasks have a download",
                    task.status
                ),
            ));
        }
        let path = engine.result_file(&task)?;
        let bytes = std::fs::read(&path)
            .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
        Ok((path, bytes))
    })
    .await?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\\', '\r', '\n'], "_"))
        .unwrap_or_else(|| "result".into());
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("txt") | Some("log") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        Body::from(bytes),
    )
        .into_response())
}
