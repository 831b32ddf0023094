//! Performance analytics, alerts and the worker-registry cache (the seed's endpoints).

use super::error::json_body;
use super::extract::ApiQuery;
use super::query::{IntParam, Param};
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::alerts::Alert;
use crate::engine::analytics::{PerformanceSummary, Timeline, WorkerPerformance, MAX_HOURS};
use crate::plugins::registry::CacheStats;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// The window of an analytics query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Window {
    /// Hours back from now, 1-8784 (default 24).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 8784)]
    hours: Option<Param>,
}

/// `hours` of the analytics queries.
pub(crate) const HOURS: IntParam = IntParam {
    name: "hours",
    min: 1,
    max: MAX_HOURS as i64,
    default: 24,
};

/// `buckets` of the timeline.
pub(crate) const BUCKETS: IntParam = IntParam {
    name: "buckets",
    min: 1,
    max: 500,
    default: 24,
};

fn hours(window: &Window) -> Result<u32, ApiError> {
    HOURS.read_u32(&window.hours)
}

/// `GET /stask/performance/summary` answer: the seed's shape plus percentiles, wait,
/// throughput and the most common errors.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryAnswer {
    /// `true`.
    success: bool,
    #[serde(flatten)]
    summary: PerformanceSummary,
}

/// Task counts and timings over the last `hours`, from the stored tasks.
#[utoipa::path(get, path = "/stask/performance/summary", tag = "performance", params(Window),
    responses(
        (status = 200, description = "Summary", body = SummaryAnswer),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 422, description = "Hours out of range", body = ErrorBody),
    ))]
pub async fn summary(
    State(state): State<AppState>,
    ApiQuery(window): ApiQuery<Window>,
) -> Result<Json<SummaryAnswer>, ApiError> {
    let hours = hours(&window)?;
    let engine = state.engine.clone();
    let summary = blocking(move || Ok(engine.performance_summary(hours)?)).await?;
    Ok(Json(SummaryAnswer {
        success: true,
        summary,
    }))
}

/// `GET /stask/performance/workers` answer: figures keyed by worker identifier (the seed's).
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkersAnswer {
    /// `true`.
    success: bool,
    /// Per worker.
    workers: BTreeMap<String, WorkerPerformance>,
}

/// Per-worker counts and timings over the last `hours`.
#[utoipa::path(get, path = "/stask/performance/workers", tag = "performance", params(Window),
    responses(
        (status = 200, description = "Per worker", body = WorkersAnswer),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 422, description = "Hours out of range", body = ErrorBody),
    ))]
pub async fn workers(
    State(state): State<AppState>,
    ApiQuery(window): ApiQuery<Window>,
) -> Result<Json<WorkersAnswer>, ApiError> {
    let hours = hours(&window)?;
    let engine = state.engine.clone();
    let list = blocking(move || Ok(engine.worker_performance(hours)?)).await?;
    Ok(Json(WorkersAnswer {
        success: true,
        workers: list
            .into_iter()
            .map(|w| (w.identifier.clone(), w))
            .collect(),
    }))
}

/// Query of the timeline.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Hours back from now, 1-8784 (default 24).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 8784)]
    hours: Option<Param>,
    /// Intervals, 1-500 (default 24).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    buckets: Option<Param>,
}

/// `GET /stask/performance/timeline` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineAnswer {
    /// `true`.
    success: bool,
    #[serde(flatten)]
    timeline: Timeline,
}

/// Completed and failed tasks per interval (for the dashboard chart).
#[utoipa::path(get, path = "/stask/performance/timeline", tag = "performance", params(TimelineQuery),
    responses(
        (status = 200, description = "Timeline", body = TimelineAnswer),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 422, description = "Out of range", body = ErrorBody),
    ))]
pub async fn timeline(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Json<TimelineAnswer>, ApiError> {
    let (hours, buckets) = (HOURS.read_u32(&q.hours)?, BUCKETS.read_u32(&q.buckets)?);
    let engine = state.engine.clone();
    let timeline = blocking(move || Ok(engine.timeline(hours, buckets)?)).await?;
    Ok(Json(TimelineAnswer {
        success: true,
        timeline,
    }))
}

/// `GET /stask/performance/alerts` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsAnswer {
    /// `true`.
    success: bool,
    /// Alerts firing now.
    alerts: Vec<Alert>,
}

/// Health alerts firing now (thresholds from the configuration: `[alerts]` in stask.toml or
/// `STASK_ALERT_*`).
#[utoipa::path(get, path = "/stask/performance/alerts", tag = "performance",
    responses(
        (status = 200, description = "Alerts", body = AlertsAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
    ))]
pub async fn alerts(State(state): State<AppState>) -> Result<Json<AlertsAnswer>, ApiError> {
    let engine = state.engine.clone();
    let alerts = blocking(move || Ok(engine.alerts(&engine.config.alerts.thresholds)?)).await?;
    Ok(Json(AlertsAnswer {
        success: true,
        alerts,
    }))
}

/// `GET /stask/cache/stats` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheAnswer {
    /// `true`.
    success: bool,
    /// Counters of the worker-registry cache.
    cache_stats: CacheStats,
}

/// Hit, miss and eviction counters of the host's worker-registry cache.
#[utoipa::path(get, path = "/stask/cache/stats", tag = "performance",
    responses(
        (status = 200, description = "Cache statistics", body = CacheAnswer),
        (status = 401, description = "No permission", body = ErrorBody),
    ))]
pub async fn cache_stats(State(state): State<AppState>) -> Json<CacheAnswer> {
    Json(CacheAnswer {
        success: true,
        cache_stats: state.engine.cache_stats(),
    })
}

/// Body of `POST /stask/cache/clear`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClearRequest {
    /// Only this worker's entry; all when absent.
    identifier: Option<String>,
}

/// `POST /stask/cache/clear` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClearAnswer {
    /// `true`.
    success: bool,
    /// `Cache cleared successfully`.
    message: String,
    /// Entries dropped.
    cleared: usize,
}

/// Drops cached worker rows (all, or one `identifier`): the next lookup re-reads the database.
#[utoipa::path(post, path = "/stask/cache/clear", tag = "performance",
    request_body(content = ClearRequest, description = "Optional `identifier`"),
    responses(
        (status = 200, description = "Cleared", body = ClearAnswer),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 422, description = "identifier is not a string", body = ErrorBody),
    ))]
pub async fn cache_clear(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ClearAnswer>, ApiError> {
    let request = match json_body(body)? {
        None => ClearRequest { identifier: None },
        Some(v) => serde_json::from_value(v).map_err(|e| {
            ApiError::invalid(format!("send {{\"identifier\": \"...\"}} or nothing: {e}"))
        })?,
    };
    let cleared = state.engine.clear_cache(request.identifier.as_deref());
    Ok(Json(ClearAnswer {
        success: true,
        message: "Cache cleared successfully".into(),
        cleared,
    }))
}
