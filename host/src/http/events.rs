//! Live events as Server-Sent Events: everything (`/stask/events`, for the UI) or one task
//! (`/stask/tasks/{id}/events`). A listener that falls behind gets a `lagged` event and should
//! re-read the state it shows.

use super::extract::TaskId;
use super::{ApiError, AppState, ErrorBody};
use crate::events::Event;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

fn to_sse(item: Result<Event, BroadcastStreamRecvError>) -> SseEvent {
    match item {
        Ok(event) => {
            let data = serde_json::to_value(&event).unwrap_or_default();
            let kind = data["type"].as_str().unwrap_or("event").to_owned();
            SseEvent::default().event(kind).data(data.to_string())
        }
        Err(BroadcastStreamRecvError::Lagged(n)) => SseEvent::default()
            .event("lagged")
            .data(format!("{{\"type\":\"lagged\",\"missed\":{n}}}")),
    }
}

fn stream(state: &AppState, task: Option<i64>) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let mut shutdown = state.shutdown.clone();
    let events = BroadcastStream::new(state.engine.events.subscribe())
        .filter(move |item| match (task, item) {
            (Some(id), Ok(event)) => event.task_id() == Some(id),
            _ => true,
        })
        .map(|item| Ok(to_sse(item)));
    // End with the server (a graceful shutdown waits for open responses); clients reconnect
    // to the next one by themselves.
    futures_util::StreamExt::take_until(
        events,
        Box::pin(async move {
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        }),
    )
}

/// Every task and worker event, as they happen (`task_created`, `task_progress`, `task_log`,
/// `task_finished`, `worker_loaded`, `worker_orphaned`, `plugin_error`).
#[utoipa::path(get, path = "/stask/events", tag = "system",
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "No permission", body = ErrorBody),
    ))]
pub async fn all(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    Sse::new(stream(&state, None)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// One task's progress, log lines (`task_log`) and end, as they happen.
#[utoipa::path(get, path = "/stask/tasks/{id}/events", tag = "tasks",
    params(("id" = i64, Path, description = "Task id", minimum = 1)),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "A token restricted to workers, and the task is another worker's (`worker` names it)", body = ErrorBody),
    ))]
pub async fn task(
    State(state): State<AppState>,
    TaskId(id): TaskId,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    Ok(Sse::new(stream(&state, Some(id)))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
