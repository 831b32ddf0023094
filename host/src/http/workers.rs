//! Worker endpoints: list, detail, activation, settings, discovery.

use super::error::json_body;
use super::{blocking, ApiError, AppState};
use crate::plugins::registry::ScanOutcomes;
use crate::plugins::{FileLoad, Registry};
use crate::store::StoreResult;
use crate::store::WorkerFilter;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Query of `GET /stask/workers`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    scope: Option<String>,
    active: Option<bool>,
}

/// `GET /stask/workers`: workers ordered by position, plus every library file and its state.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let engine = state.engine.clone();
    let (workers, files) = blocking(move || {
        let workers = engine.store.workers(&WorkerFilter {
            scope: q.scope,
            active: q.active,
        })?;
        Ok((workers, engine.store.plugin_files()?))
    })
    .await?;
    Ok(Json(json!({
        "success": true,
        "workers": workers.iter().map(|w| w.to_json()).collect::<Vec<_>>(),
        "plugin_files": files,
    })))
}

/// `GET /stask/workers/{identifier}`.
pub async fn detail(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let worker = blocking(move || Ok(engine.worker(&identifier)?)).await?;
    Ok(Json(json!({"success": true, "worker": worker.to_json()})))
}

async fn set_active(
    state: AppState,
    identifier: String,
    active: bool,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let worker = blocking(move || Ok(engine.set_worker_active(&identifier, active)?)).await?;
    let message = if active {
        "Worker activated"
    } else {
        "Worker deactivated"
    };
    Ok(Json(
        json!({"success": true, "message": message, "worker": worker.to_json()}),
    ))
}

/// `POST /stask/workers/{identifier}/activate`.
pub async fn activate(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_active(state, identifier, true).await
}

/// `POST /stask/workers/{identifier}/deactivate`.
pub async fn deactivate(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_active(state, identifier, false).await
}

/// `GET /stask/workers/{identifier}/settings`.
pub async fn settings(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let worker = blocking(move || Ok(engine.worker(&identifier)?)).await?;
    Ok(Json(json!({
        "success": true,
        "settings": worker.settings,
        "default_settings": worker.default_settings,
    })))
}

/// `PUT /stask/workers/{identifier}/settings`: body = the complete new settings object.
pub async fn update_settings(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let settings =
        json_body(body)?.ok_or_else(|| ApiError::invalid("send the settings as a JSON object"))?;
    let engine = state.engine.clone();
    let worker =
        blocking(move || Ok(engine.update_worker_settings(&identifier, &settings)?)).await?;
    Ok(Json(
        json!({"success": true, "message": "Settings saved", "settings": worker.settings}),
    ))
}

fn outcomes_json(outcomes: ScanOutcomes) -> Value {
    let list: Vec<Value> = outcomes
        .into_iter()
        .map(|(file, outcome)| match outcome {
            FileLoad::Loaded { identifier, version } => {
                json!({"file": file, "outcome": "loaded", "identifier": identifier, "version": version})
            }
            FileLoad::Unchanged => json!({"file": file, "outcome": "unchanged"}),
            FileLoad::Refused(reason) => json!({"file": file, "outcome": "refused", "error": reason}),
        })
        .collect();
    Value::Array(list)
}

async fn scan_with(
    state: AppState,
    scan: fn(&Registry) -> StoreResult<ScanOutcomes>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let outcomes = blocking(move || {
        let outcomes = scan(&engine.registry)?;
        engine.wake();
        Ok(outcomes)
    })
    .await?;
    Ok(Json(
        json!({"success": true, "files": outcomes_json(outcomes)}),
    ))
}

/// `POST /stask/workers/discover`: loads new and changed libraries, orphans removed ones.
pub async fn discover(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    scan_with(state, Registry::scan).await
}

/// `POST /stask/workers/rescan`: discover, then rewrite every loaded worker's metadata.
pub async fn rescan(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    scan_with(state, Registry::rescan).await
}

/// `POST /stask/workers/clean-orphaned`: deletes orphaned rows, keeps their task history.
pub async fn clean_orphaned(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let removed = blocking(move || Ok(engine.clean_orphaned_workers()?)).await?;
    Ok(Json(json!({
        "success": true,
        "deleted": removed.len(),
        "identifiers": removed,
        "message": format!("Removed {} orphaned workers", removed.len()),
    })))
}
