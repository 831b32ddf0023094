//! Schedule endpoints: list, detail, create, replace, delete, enable, disable.

use super::error::json_body;
use super::extract::ScheduleId;
use super::schema::{ScheduleAnswer, ScheduleList};
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::engine::schedules::ScheduleState;
use crate::model::{Priority, DEFAULT_MAX_ATTEMPTS};
use crate::store::{ScheduleSource, ScheduleSpec};
use crate::views::ScheduleView;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A schedule as created or replaced (`PUT` sends it whole).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// Unique name.
    name: String,
    /// Worker identifier.
    identifier: String,
    /// One of the worker's actions.
    action: String,
    /// 5 fields, 6 with seconds first, or `@hourly`/`@daily`/`@weekly`/`@monthly`.
    cron: String,
    /// IANA time zone (default `UTC`).
    timezone: Option<String>,
    /// Task data (a JSON object; default `{}`).
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    /// `low`, `normal` (default) or `high`.
    priority: Option<String>,
    /// Attempts per task, 1-100 (default 3).
    max_attempts: Option<u32>,
    /// Unique key of its tasks.
    unique_key: Option<String>,
    /// Whether it fires (default `true`).
    enabled: Option<bool>,
    /// Whether a slot missed while no host ran runs once at the next start (default `true`).
    catch_up: Option<bool>,
}

/// The body as a spec, or the reason it is not one (422).
fn spec(body: Result<Bytes, BytesRejection>) -> Result<ScheduleSpec, ApiError> {
    let value = json_body(body)?.ok_or_else(|| ApiError::invalid("send the schedule as JSON"))?;
    let input: ScheduleInput = serde_json::from_value(value)
        .map_err(|e| ApiError::invalid(format!("invalid schedule: {e}")))?;
    let priority = match input.priority.as_deref() {
        None => Priority::Normal,
        Some(p) => p.parse().map_err(ApiError::invalid)?,
    };
    Ok(ScheduleSpec {
        name: input.name,
        identifier: input.identifier,
        action: input.action,
        cron: input.cron,
        timezone: input.timezone.unwrap_or_else(|| "UTC".into()),
        data: input.data.unwrap_or_else(|| serde_json::json!({})),
        priority,
        max_attempts: input.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        unique_key: input.unique_key,
        enabled: input.enabled.unwrap_or(true),
        catch_up: input.catch_up.unwrap_or(true),
        source: ScheduleSource::Api,
    })
}

fn answer(state: &ScheduleState, message: Option<&str>) -> Json<ScheduleAnswer> {
    Json(ScheduleAnswer {
        success: true,
        message: message.map(str::to_owned),
        schedule: ScheduleView::from(state),
    })
}

/// Every schedule, by name, with its last and next run.
#[utoipa::path(get, path = "/stask/schedules", tag = "schedules",
    responses(
        (status = 200, description = "Schedules", body = ScheduleList),
        (status = 401, description = "No permission", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let engine = state.engine.clone();
    let schedules = blocking(move || Ok(engine.schedules()?)).await?;
    Ok(Json(ScheduleList {
        success: true,
        schedules: schedules.iter().map(ScheduleView::from).collect(),
    }))
}

/// Creates a schedule: from then on each due slot of its expression creates one task.
#[utoipa::path(post, path = "/stask/schedules", tag = "schedules",
    request_body = ScheduleInput,
    responses(
        (status = 201, description = "Created", body = ScheduleAnswer),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown worker or action (the message lists the valid ones)", body = ErrorBody),
        (status = 409, description = "A schedule has that name", body = ErrorBody),
        (status = 422, description = "Bad expression, unknown time zone, invalid fields", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ScheduleAnswer>), ApiError> {
    let spec = spec(body)?;
    let engine = state.engine.clone();
    let created = blocking(move || Ok(engine.create_schedule(&spec)?)).await?;
    Ok((
        StatusCode::CREATED,
        answer(&created, Some("Schedule created")),
    ))
}

/// One schedule.
#[utoipa::path(get, path = "/stask/schedules/{id}", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id", minimum = 1)),
    responses(
        (status = 200, description = "The schedule", body = ScheduleAnswer),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 404, description = "Unknown schedule", body = ErrorBody),
    ))]
pub async fn detail(
    State(state): State<AppState>,
    ScheduleId(id): ScheduleId,
) -> Result<Json<ScheduleAnswer>, ApiError> {
    let engine = state.engine.clone();
    let schedule = blocking(move || Ok(engine.schedule(id)?)).await?;
    Ok(answer(&schedule, None))
}

/// Replaces a schedule (the whole body, as for create); its run times are kept.
#[utoipa::path(put, path = "/stask/schedules/{id}", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id", minimum = 1)),
    request_body = ScheduleInput,
    responses(
        (status = 200, description = "Saved", body = ScheduleAnswer),
        (status = 400, description = "Invalid id or malformed JSON", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown schedule, worker or action", body = ErrorBody),
        (status = 409, description = "Another schedule has that name", body = ErrorBody),
        (status = 422, description = "Bad expression, unknown time zone, invalid fields", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    ScheduleId(id): ScheduleId,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ScheduleAnswer>, ApiError> {
    let spec = spec(body)?;
    let engine = state.engine.clone();
    let updated = blocking(move || Ok(engine.update_schedule(id, &spec)?)).await?;
    Ok(answer(&updated, Some("Schedule saved")))
}

/// Deletes a schedule; the tasks it created stay.
#[utoipa::path(delete, path = "/stask/schedules/{id}", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id", minimum = 1)),
    responses(
        (status = 200, description = "Deleted (the schedule as it was)", body = ScheduleAnswer),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown schedule", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    ScheduleId(id): ScheduleId,
) -> Result<Json<ScheduleAnswer>, ApiError> {
    let engine = state.engine.clone();
    let deleted = blocking(move || Ok(engine.delete_schedule(id)?)).await?;
    Ok(answer(&deleted, Some("Schedule deleted")))
}

async fn set_enabled(
    state: AppState,
    id: i64,
    enabled: bool,
) -> Result<Json<ScheduleAnswer>, ApiError> {
    let engine = state.engine.clone();
    let schedule = blocking(move || Ok(engine.set_schedule_enabled(id, enabled)?)).await?;
    Ok(answer(
        &schedule,
        Some(if enabled {
            "Schedule enabled"
        } else {
            "Schedule disabled"
        }),
    ))
}

/// Enables a schedule: it fires from its next slot on (the time it was off is not caught up).
#[utoipa::path(post, path = "/stask/schedules/{id}/enable", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id", minimum = 1)),
    responses(
        (status = 200, description = "Enabled", body = ScheduleAnswer),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown schedule", body = ErrorBody),
    ))]
pub async fn enable(
    State(state): State<AppState>,
    ScheduleId(id): ScheduleId,
) -> Result<Json<ScheduleAnswer>, ApiError> {
    set_enabled(state, id, true).await
}

/// Disables a schedule: no slot fires until it is enabled again.
#[utoipa::path(post, path = "/stask/schedules/{id}/disable", tag = "schedules",
    params(("id" = i64, Path, description = "Schedule id", minimum = 1)),
    responses(
        (status = 200, description = "Disabled", body = ScheduleAnswer),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 404, description = "Unknown schedule", body = ErrorBody),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    ScheduleId(id): ScheduleId,
) -> Result<Json<ScheduleAnswer>, ApiError> {
    set_enabled(state, id, false).await
}
