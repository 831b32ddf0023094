//! The REST API (`/stask/...`): thin handlers over the engine and the store.
//!
//! Every route except health and version sits behind [`auth::require_token`]. Every error is
//! an [`ApiError`], rendered as `{"success":false,"code":N,"message":"..."}`.

mod auth;
mod error;
mod events;
mod system;
mod tasks;
mod workers;

use crate::engine::Engine;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

pub use error::{ApiError, ApiJson};

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
}

/// The whole API.
pub fn router(engine: Arc<Engine>) -> Router {
    let state = AppState {
        engine: engine.clone(),
    };
    let protected = Router::new()
        .route(
            "/stask/workers/{identifier}/tasks/{action}",
            post(tasks::create),
        )
        .route("/stask/workers", get(workers::list))
        .route("/stask/workers/discover", post(workers::discover))
        .route("/stask/workers/rescan", post(workers::rescan))
        .route(
            "/stask/workers/clean-orphaned",
            post(workers::clean_orphaned),
        )
        .route("/stask/workers/{identifier}", get(workers::detail))
        .route(
            "/stask/workers/{identifier}/activate",
            post(workers::activate),
        )
        .route(
            "/stask/workers/{identifier}/deactivate",
            post(workers::deactivate),
        )
        .route(
            "/stask/workers/{identifier}/settings",
            get(workers::settings).put(workers::update_settings),
        )
        .route("/stask/tasks", get(tasks::list))
        .route(
            "/stask/tasks/{id}",
            get(tasks::detail).delete(tasks::delete),
        )
        .route("/stask/tasks/{id}/progress", get(tasks::progress))
        .route("/stask/tasks/{id}/download", get(tasks::download))
        .route("/stask/tasks/{id}/cancel", post(tasks::cancel))
        .route("/stask/tasks/{id}/retry", post(tasks::retry))
        .route("/stask/tasks/{id}/events", get(events::task))
        .route("/stask/events", get(events::all))
        .route("/stask/stats", get(system::stats))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/stask/health", get(system::health))
        .route("/stask/version", get(system::version))
        .merge(protected)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(engine.config.max_body_bytes))
        .with_state(state)
}

/// Runs a blocking store or engine call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?
}
