//! Worker endpoints.

use super::{blocking, ApiError, AppState};
use crate::store::WorkerFilter;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Query of `GET /stask/workers`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    scope: Option<String>,
    active: Option<bool>,
}

/// `GET /stask/workers`: every worker with its state, plus refused library files.
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
