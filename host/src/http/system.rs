//! Health, version, statistics and the API description.

use super::schema::{HealthAnswer, StatsAnswer, VersionAnswer};
use super::{blocking, ApiError, AppState, ErrorBody};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

/// Liveness, without credentials and without anything sensitive.
#[utoipa::path(get, path = "/stask/health", tag = "system", security(()),
    responses((status = 200, description = "The daemon answers", body = HealthAnswer)))]
pub async fn health() -> Json<HealthAnswer> {
    Json(HealthAnswer {
        success: true,
        status: "ok".into(),
    })
}

/// Version of the host and of the plugin interface (the seed's "configuration check").
#[utoipa::path(get, path = "/stask/version", tag = "system", security(()),
    responses((status = 200, description = "Versions", body = VersionAnswer)))]
pub async fn version() -> Json<VersionAnswer> {
    Json(VersionAnswer {
        success: true,
        name: "stask".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        plugin_api: crate::plugins::plugin_api_version().into(),
    })
}

/// Counts of tasks per status.
#[utoipa::path(get, path = "/stask/stats", tag = "system",
    responses(
        (status = 200, description = "Counts", body = StatsAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
    ))]
pub async fn stats(State(state): State<AppState>) -> Result<Json<StatsAnswer>, ApiError> {
    let engine = state.engine.clone();
    let s = blocking(move || Ok(engine.stats()?)).await?;
    Ok(Json(StatsAnswer {
        success: true,
        pending: s.pending,
        preparing: s.preparing,
        running: s.running,
        completed: s.completed,
        failed: s.failed,
        cancelled: s.cancelled,
        total: s.total,
    }))
}

/// Prometheus metrics of this host (OpenMetrics text; see `crate::metrics` for what each
/// series counts). Scrapers send the API token as a bearer token.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "The metrics", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "No permission", body = ErrorBody),
    ))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let engine = state.engine.clone();
    let text = blocking(move || Ok(engine.metrics_text()?)).await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text))
}

/// This API's OpenAPI 3 description, generated from the code.
#[utoipa::path(get, path = "/stask/openapi.json", tag = "system",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object),
        (status = 401, description = "No permission", body = ErrorBody),
    ))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi())
}
