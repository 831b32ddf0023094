//! Worker endpoints: list, detail, activation, settings, discovery.

use super::error::json_body;
use super::extract::ApiQuery;
use super::query::{self, Param};
use super::schema::{
    CleanOrphanedAnswer, FileOutcome, ScanAnswer, SettingsAnswer, WorkerAnswer, WorkerList,
};
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::plugins::registry::ScanOutcomes;
use crate::plugins::FileLoad;
use crate::store::WorkerFilter;
use crate::views::WorkerView;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

/// Filters of `GET /stask/workers`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkerQuery {
    /// Only this scope.
    scope: Option<String>,
    /// Only active (`true`) or inactive (`false`) workers.
    #[param(value_type = Option<bool>)]
    active: Option<Param>,
}

/// Workers ordered by position, and every library file with its load result.
#[utoipa::path(get, path = "/stask/workers", tag = "workers", params(WorkerQuery),
    responses(
        (status = 200, description = "Workers", body = WorkerList),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 422, description = "active is not true or false", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<WorkerQuery>,
) -> Result<Json<WorkerList>, ApiError> {
    let active = query::boolean("active", &q.active)?;
    let engine = state.engine.clone();
    let (workers, plugin_files, usage) = blocking(move || {
        let workers = engine.workers(&WorkerFilter {
            scope: q.scope,
            active,
        })?;
        let usage = engine.limit_usage(&workers)?;
        Ok((workers, engine.plugin_files()?, usage))
    })
    .await?;
    Ok(Json(WorkerList {
        success: true,
        workers: workers
            .iter()
            .map(|w| WorkerView::from(w).with_usage(&usage))
            .collect(),
        plugin_files: plugin_files.into_iter().map(Into::into).collect(),
        loaded_copies: state.engine.loaded_copies(),
    }))
}

fn answer(worker: &crate::model::WorkerRow, message: Option<&str>) -> Json<WorkerAnswer> {
    Json(WorkerAnswer {
        success: true,
        message: message.map(str::to_owned),
        worker: WorkerView::from(worker),
    })
}

/// One worker.
#[utoipa::path(get, path = "/stask/workers/{identifier}", tag = "workers",
    params(("identifier" = String, Path, description = "Worker identifier")),
    responses(
        (status = 200, description = "The worker", body = WorkerAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 404, description = "Unknown worker", body = ErrorBody),
    ))]
pub async fn detail(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<WorkerAnswer>, ApiError> {
    let engine = state.engine.clone();
    let (worker, usage) = blocking(move || {
        let worker = engine.worker(&identifier)?;
        let usage = engine.limit_usage(std::slice::from_ref(&worker))?;
        Ok((worker, usage))
    })
    .await?;
    Ok(Json(WorkerAnswer {
        success: true,
        message: None,
        worker: WorkerView::from(&worker).with_usage(&usage),
    }))
}

async fn set_active(
    state: AppState,
    identifier: String,
    active: bool,
) -> Result<Json<WorkerAnswer>, ApiError> {
    let engine = state.engine.clone();
    let worker = blocking(move || Ok(engine.set_worker_active(&identifier, active)?)).await?;
    Ok(answer(
        &worker,
        Some(if active {
            "Worker activated"
        } else {
            "Worker deactivated"
        }),
    ))
}

/// Activates a worker: its pending tasks run again.
#[utoipa::path(post, path = "/stask/workers/{identifier}/activate", tag = "workers",
    params(("identifier" = String, Path, description = "Worker identifier")),
    responses(
        (status = 200, description = "Activated", body = WorkerAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown worker", body = ErrorBody),
    ))]
pub async fn activate(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<WorkerAnswer>, ApiError> {
    set_active(state, identifier, true).await
}

/// Deactivates a worker: its tasks stay pending; survives reloads and restarts.
#[utoipa::path(post, path = "/stask/workers/{identifier}/deactivate", tag = "workers",
    params(("identifier" = String, Path, description = "Worker identifier")),
    responses(
        (status = 200, description = "Deactivated", body = WorkerAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown worker", body = ErrorBody),
    ))]
pub async fn deactivate(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<WorkerAnswer>, ApiError> {
    set_active(state, identifier, false).await
}

async fn set_paused(
    state: AppState,
    identifier: String,
    paused: bool,
) -> Result<Json<WorkerAnswer>, ApiError> {
    let engine = state.engine.clone();
    let worker = blocking(move || Ok(engine.set_worker_paused(&identifier, paused)?)).await?;
    Ok(answer(
        &worker,
        Some(if paused {
            "Worker paused"
        } else {
            "Worker resumed"
        }),
    ))
}

/// Pauses a worker's queue: it still accepts tasks, which wait as pending (the task views say
/// why) until it is resumed; running tasks finish. Holds on every host and across restarts.
#[utoipa::path(post, path = "/stask/workers/{identifier}/pause", tag = "workers",
    params(("identifier" = String, Path, description = "Worker identifier")),
    responses(
        (status = 200, description = "Paused", body = WorkerAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown worker", body = ErrorBody),
    ))]
pub async fn pause(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<WorkerAnswer>, ApiError> {
    set_paused(state, identifier, true).await
}

/// Resumes a paused worker's queue: its waiting tasks run in their order (priority, then due
/// time and id).
#[utoipa::path(post, path = "/stask/workers/{identifier}/resume", tag = "workers",
    params(("identifier" = String, Path, description = "Worker identifier")),
    responses(
        (status = 200, description = "Resumed", body = WorkerAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown worker", body = ErrorBody),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<WorkerAnswer>, ApiError> {
    set_paused(state, identifier, false).await
}

/// A worker's settings and the plugin's defaults.
#[utoipa::path(get, path = "/stask/workers/{identifier}/settings", tag = "workers",
    params(("identifier" = String, Path, description = "Worker identifier")),
    responses(
        (status = 200, description = "Settings", body = SettingsAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 404, description = "Unknown worker", body = ErrorBody),
    ))]
pub async fn settings(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
) -> Result<Json<SettingsAnswer>, ApiError> {
    let engine = state.engine.clone();
    let worker = blocking(move || Ok(engine.worker(&identifier)?)).await?;
    Ok(Json(SettingsAnswer {
        success: true,
        settings: worker.settings,
        default_settings: worker.default_settings,
    }))
}

/// Replaces a worker's settings (a JSON object; keys the plugin declares keep their type). The
/// worker sees them from its next task on.
#[utoipa::path(put, path = "/stask/workers/{identifier}/settings", tag = "workers",
    params(("identifier" = String, Path, description = "Worker identifier")),
    request_body(content = Object, description = "The complete new settings"),
    responses(
        (status = 200, description = "Saved", body = SettingsAnswer),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown worker", body = ErrorBody),
        (status = 422, description = "Not an object, or a declared key of another type", body = ErrorBody),
    ))]
pub async fn update_settings(
    State(state): State<AppState>,
    Path(identifier): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SettingsAnswer>, ApiError> {
    let settings =
        json_body(body)?.ok_or_else(|| ApiError::invalid("send the settings as a JSON object"))?;
    let engine = state.engine.clone();
    let worker =
        blocking(move || Ok(engine.update_worker_settings(&identifier, &settings)?)).await?;
    Ok(Json(SettingsAnswer {
        success: true,
        settings: worker.settings,
        default_settings: worker.default_settings,
    }))
}

fn outcomes(outcomes: ScanOutcomes) -> Vec<FileOutcome> {
    outcomes
        .into_iter()
        .map(|(file, outcome)| {
            let mut o = FileOutcome {
                file,
                outcome: String::new(),
                identifier: None,
                version: None,
                error: None,
            };
            match outcome {
                FileLoad::Loaded {
                    identifier,
                    version,
                } => {
                    o.outcome = "loaded".into();
                    o.identifier = Some(identifier);
                    o.version = Some(version);
                }
                FileLoad::Unchanged => o.outcome = "unchanged".into(),
                FileLoad::Refused(reason) => {
                    o.outcome = "refused".into();
                    o.error = Some(reason);
                }
            }
            o
        })
        .collect()
}

/// Scans the plugin folder (`rescan`: every file again) and answers what each file did.
async fn scan_with(state: AppState, rescan: bool) -> Result<Json<ScanAnswer>, ApiError> {
    let engine = state.engine.clone();
    let files = blocking(move || Ok(engine.scan_plugins(rescan)?)).await?;
    Ok(Json(ScanAnswer {
        success: true,
        files: outcomes(files),
    }))
}

/// Loads new and changed libraries in plugins.d/ and orphans the removed ones.
#[utoipa::path(post, path = "/stask/workers/discover", tag = "workers",
    responses(
        (status = 200, description = "What happened to each file", body = ScanAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
    ))]
pub async fn discover(State(state): State<AppState>) -> Result<Json<ScanAnswer>, ApiError> {
    scan_with(state, false).await
}

/// Discover, then rewrite every loaded worker's row from its library.
#[utoipa::path(post, path = "/stask/workers/rescan", tag = "workers",
    responses(
        (status = 200, description = "What happened to each file", body = ScanAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
    ))]
pub async fn rescan(State(state): State<AppState>) -> Result<Json<ScanAnswer>, ApiError> {
    scan_with(state, true).await
}

/// Deletes orphaned worker rows; their task history stays.
#[utoipa::path(post, path = "/stask/workers/clean-orphaned", tag = "workers",
    responses(
        (status = 200, description = "Deleted", body = CleanOrphanedAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
    ))]
pub async fn clean_orphaned(
    State(state): State<AppState>,
) -> Result<Json<CleanOrphanedAnswer>, ApiError> {
    let engine = state.engine.clone();
    let removed = blocking(move || Ok(engine.clean_orphaned_workers()?)).await?;
    Ok(Json(CleanOrphanedAnswer {
        success: true,
        deleted: removed.len(),
        message: format!("Removed {} orphaned workers", removed.len()),
        identifiers: removed,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_worker_list_documents_the_loaded_copies() {
        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["WorkerList"]["properties"]["loaded_copies"]["$ref"],
            "#/components/schemas/CopiesUsage"
        );
        let usage = &schemas["CopiesUsage"]["properties"];
        assert!(
            usage["count"].is_object() && usage["bytes"].is_object(),
            "{usage}"
        );
    }
}
