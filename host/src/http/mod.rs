//! The REST API (`/stask/...`): thin handlers over the engine and the store.
//!
//! Every route is declared with `utoipa::path`, so `/stask/openapi.json` is generated from the
//! same code that serves. Every route except health, version and login sits behind
//! `auth::require_permission` (a bearer token, or a session cookie plus CSRF token). Every
//! error is an [`ApiError`], rendered as `{"success":false,"code":N,"message":"..."}`.

mod audit;
mod auth;
pub(crate) mod batches;
mod download;
mod error;
mod events;
mod extract;
mod hosts;
mod performance;
pub mod protocol_errors;
mod query;
mod roles;
mod schedules;
mod schema;
mod session;
mod system;
mod tasks;
mod ui;
mod uploads;
mod workers;

use crate::engine::Engine;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};
pub(crate) use extract::TaskId;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Turns true when the server shuts down: endless responses (event streams) end then,
    /// or a graceful shutdown would wait for them forever.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The document's frame; paths are collected from the routers below.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sTask API",
        description = "Background tasks with native worker plugins. Every endpoint except health, version and login needs the `stask` permission: `Authorization: Bearer <token>` (from `stask token create`), or the session cookie from `POST /stask/login` plus `X-CSRF-TOKEN` on state-changing requests."
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "tasks", description = "Create, follow and manage tasks"),
        (name = "workers", description = "Worker plugins and their registration"),
        (name = "schedules", description = "Recurring tasks: cron expressions in a time zone"),
        (name = "performance", description = "Analytics, alerts and cache statistics"),
        (name = "system", description = "Health, version, statistics, login"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(session::COOKIE))),
        );
    }
}

/// The protected routes and the public ones, with their OpenAPI description; uploads accept
/// bodies up to `upload_body_limit` (every other route: `STASK_MAX_BODY_BYTES`).
fn routers(upload_body_limit: usize) -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    // This layer sits inside the router-wide body limit, so it replaces it for this route.
    let uploads = OpenApiRouter::new()
        .routes(routes!(uploads::upload))
        .layer(DefaultBodyLimit::max(upload_body_limit));
    let protected = OpenApiRouter::new()
        .routes(routes!(tasks::create))
        .routes(routes!(tasks::list))
        .routes(routes!(tasks::pending))
        .routes(routes!(tasks::clean))
        .routes(routes!(tasks::detail, tasks::delete))
        .routes(routes!(tasks::progress))
        .routes(routes!(download::download))
        .routes(routes!(tasks::cancel))
        .routes(routes!(tasks::retry))
        .routes(routes!(batches::create, batches::list))
        .routes(routes!(batches::detail))
        .routes(routes!(batches::cancel))
        .routes(routes!(events::task))
        .routes(routes!(events::all))
        .merge(uploads)
        .routes(routes!(workers::list))
        .routes(routes!(workers::discover))
        .routes(routes!(workers::rescan))
        .routes(routes!(workers::clean_orphaned))
        .routes(routes!(workers::detail))
        .routes(routes!(workers::activate))
        .routes(routes!(workers::deactivate))
        .routes(routes!(workers::pause))
        .routes(routes!(workers::resume))
        .routes(routes!(workers::settings, workers::update_settings))
        .routes(routes!(schedules::list, schedules::create))
        .routes(routes!(
            schedules::detail,
            schedules::update,
            schedules::delete
        ))
        .routes(routes!(schedules::enable))
        .routes(routes!(schedules::disable))
        .routes(routes!(system::stats))
        .routes(routes!(hosts::list))
        .routes(routes!(system::metrics))
        .routes(routes!(performance::summary))
        .routes(routes!(performance::workers))
        .routes(routes!(performance::alerts))
        .routes(routes!(performance::timeline))
        .routes(routes!(performance::cache_stats))
        .routes(routes!(performance::cache_clear))
        .routes(routes!(system::openapi))
        .routes(routes!(audit::list))
        .routes(routes!(session::current))
        .routes(routes!(session::logout));
    let public = OpenApiRouter::new()
        .routes(routes!(system::health))
        .routes(routes!(system::version))
        .routes(routes!(session::login));
    (protected, public)
}

/// The OpenAPI document of the whole API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (protected, public) = routers(0);
    let mut doc = ApiDoc::openapi();
    doc.merge(protected.into_openapi());
    doc.merge(public.into_openapi());
    doc
}

/// The whole API with its middleware; event streams end when `shutdown` turns true.
pub fn router(engine: Arc<Engine>, shutdown: tokio::sync::watch::Receiver<bool>) -> Router {
    let state = AppState {
        engine: engine.clone(),
        shutdown,
    };
    let (protected, public) = routers(uploads::body_limit(engine.config.max_upload_bytes));
    // The audit layer wraps the permission check (a later `route_layer` is the outer one),
    // so refusals are recorded too; on the public routes it records logins.
    let protected: Router<AppState> = Router::from(protected)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_permission,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ));
    let public: Router<AppState> = Router::from(public).route_layer(
        axum::middleware::from_fn_with_state(state.clone(), audit::record),
    );
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(protected)
        .merge(public)
        .merge(ui::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_request,
        ))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(engine.config.max_body_bytes))
        .layer(axum::middleware::from_fn(json_errors))
        // Downloads (attachments) go out as they are on disk: Content-Length and ranges
        // count the file's bytes.
        .layer(CompressionLayer::new().compress_when(DefaultPredicate::new().and(
            |_: StatusCode, _: axum::http::Version, headers: &axum::http::HeaderMap, _: &axum::http::Extensions| {
                !headers.contains_key(axum::http::header::CONTENT_DISPOSITION)
            },
        )))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_deadline,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::debug_span!("http", method = %request.method(), uri = %request.uri().path(), request_id = %id)
            },
        ))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Answers 408, with the JSON error body, when a request (reading its body included) takes
/// longer than `STASK_REQUEST_TIMEOUT_SECS`: a client that sends its body slowly cannot hold
/// a connection. A response's streaming body (event streams) is not limited.
async fn request_deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let secs = state.engine.config.request_timeout_secs;
    match tokio::time::timeout(Duration::from_secs(secs), next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {secs}s (a body sent too slowly, or work that did not finish in time)"),
        )
        .into_response(),
    }
}

/// Gives every error answer the JSON error body. Handlers answer through [`ApiError`]
/// already; what is left are axum's own rejections, answered in plain text (a path segment
/// that is not UTF-8 once percent-decoded, `/stask/tasks/%FF`, and the like): they keep their
/// status and headers, and their text becomes the message. Errors hyper answers before a
/// request exists are handled by [`protocol_errors`].
async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    use axum::response::IntoResponse;
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Rejection texts are a line or two; a larger body is not one of them.
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut answer = ApiError::new(status, message).into_response();
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(CONTENT_LENGTH);
    for (name, value) in &parts.headers {
        answer.headers_mut().append(name.clone(), value.clone());
    }
    answer
}

/// Counts each routed request in the metrics by its route pattern (unrouted requests are
/// answered by the fallback and not counted: their paths are unbounded).
async fn count_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    if let Some(route) = route {
        state.engine.metrics.http_request(
            method.as_str(),
            &route,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    response
}

/// Parses a create request's body as `POST /stask/workers/{identifier}/tasks/{action}` does
/// (the fuzz targets call it through [`crate::fuzzing`]).
pub(crate) fn parse_create_body(
    identifier: &str,
    action: &str,
    body: &[u8],
) -> Result<crate::model::NewTask, ApiError> {
    tasks::new_task(
        identifier.to_owned(),
        action.to_owned(),
        None,
        Ok(axum::body::Bytes::copy_from_slice(body)),
    )
}

/// Parses a request target (`/stask/tasks?...`) as `GET /stask/tasks` does: the URI, the
/// query string, then the filter values.
pub(crate) fn parse_task_query(target: &str) -> Result<crate::store::TaskFilter, ApiError> {
    let uri: axum::http::Uri = target
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid request target: {e}")))?;
    let query = query::parse(axum::extract::Query::<schema::TaskQuery>::try_from_uri(
        &uri,
    ))?;
    tasks::task_filter(query)
}

/// Every whole-number query parameter of the API with its range (the OpenAPI document must
/// declare the same; checked by a unit test in `query`).
#[cfg(test)]
pub(crate) fn int_params() -> [query::IntParam; 8] {
    [
        tasks::PAGE,
        tasks::PER_PAGE,
        tasks::STARTED_BY,
        tasks::PARENT_ID,
        tasks::BATCH_ID,
        tasks::PENDING_LIMIT,
        performance::HOURS,
        performance::BUCKETS,
    ]
}

/// Runs a blocking store or engine call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request task failed: {e}")))?
}
