//! The audit log over HTTP: one middleware that records every state-changing request
//! (any method but `GET`/`HEAD`/`OPTIONS`) of every matched route, refused ones included, and
//! `GET /stask/audit` (admin) that lists them.
//!
//! The middleware wraps the permission check (`auth`), so it sees what the check refused.
//! Who called comes back in the response's extensions ([`AuditWho`], set by the check, or by
//! the login for the token it logged in with); the tasks a create made, likewise
//! ([`AuditCreated`]). No route is named here: a new route is recorded as it is added. The
//! entry goes to the engine's audit writer ([`crate::engine::audit`]) without waiting.

use super::extract::ApiQuery;
use super::query::Param;
use super::tasks::{PAGE, PER_PAGE};
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::clock::{now_ms, parse_time, rfc3339};
use crate::model::TokenRole;
use crate::store::audit::status_class;
use crate::store::{AuditEntry, AuditFilter, AuditRow};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::{IntoParams, ToSchema};

/// Who made a request, as the audit log records it (put in the response's extensions).
#[derive(Debug, Clone)]
pub struct AuditWho {
    /// The token (a session's: the token it was opened with).
    pub token_id: i64,
    /// Its name.
    pub token_name: String,
    /// Its role.
    pub role: TokenRole,
    /// Whether the call came through a session.
    pub via_session: bool,
}

/// The ids of the tasks a request created (put in the response's extensions).
#[derive(Debug, Clone)]
pub struct AuditCreated(pub Vec<i64>);

/// Records a state-changing request once it was answered.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let (mut parts, body) = request.into_parts();
    let target = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .map(|params| {
            params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|t| !t.is_empty());
    let response = next.run(Request::from_parts(parts, body)).await;
    let who = response.extensions().get::<AuditWho>();
    let created = response
        .extensions()
        .get::<AuditCreated>()
        .map(|c| c.0.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
    state.engine.record_audit(AuditEntry {
        recorded_at: now_ms(),
        token_id: who.map(|w| w.token_id),
        token_name: who.map(|w| w.token_name.clone()),
        role: who.map(|w| w.role.name().to_owned()),
        via_session: who.is_some_and(|w| w.via_session),
        method,
        route,
        target,
        created_ids: created,
        status: i64::from(response.status().as_u16()),
        client_addr: client,
    });
    response
}

/// Filters of `GET /stask/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// A token, by name or id.
    pub token: Option<String>,
    /// A route template, exactly (`/stask/tasks/{id}/cancel`).
    pub route: Option<String>,
    /// A status class: `2xx`, `3xx`, `4xx` or `5xx`.
    pub status: Option<String>,
    /// Recorded at or after (RFC 3339, `YYYY-MM-DD HH:MM:SS` or UNIX seconds).
    pub since: Option<String>,
    /// Recorded before.
    pub until: Option<String>,
    /// Page number, 1-1000000 (default 1), as the task list's.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000000)]
    pub page: Option<Param>,
    /// Page size, 1-500 (default 50), as the task list's.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub per_page: Option<Param>,
}

/// One recorded request.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Id.
    pub id: i64,
    /// When it was answered (RFC 3339).
    pub at: String,
    /// Who: the token's name, or `anonymous` when no valid token or session came with it.
    pub who: String,
    /// The token's id (a session's: the token it was opened with).
    pub token_id: Option<i64>,
    /// The token's role.
    pub role: Option<String>,
    /// Whether it came through a browser session.
    pub via_session: bool,
    /// HTTP method.
    pub method: String,
    /// The route template.
    pub route: String,
    /// The path's parameters (`id=5`).
    pub target: Option<String>,
    /// The ids of the tasks it created.
    pub created_ids: Vec<i64>,
    /// The HTTP status answered.
    pub status: i64,
    /// The client's address.
    pub client: Option<String>,
}

impl From<AuditRow> for AuditView {
    fn from(row: AuditRow) -> Self {
        let e = row.entry;
        AuditView {
            id: row.id,
            at: rfc3339(e.recorded_at),
            who: e.token_name.unwrap_or_else(|| "anonymous".into()),
            token_id: e.token_id,
            role: e.role,
            via_session: e.via_session,
            method: e.method,
            route: e.route,
            target: e.target,
            created_ids: e
                .created_ids
                .unwrap_or_default()
                .split(',')
                .filter_map(|id| id.parse().ok())
                .collect(),
            status: e.status,
            client: e.client_addr,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// `true`.
    pub success: bool,
    /// The entries of this page, newest first.
    pub entries: Vec<AuditView>,
    /// Entries matching the filters in total.
    pub total: i64,
    /// Page number (from 1).
    pub page: i64,
    /// Page size.
    pub per_page: i64,
}

/// The audit log: every state-changing request (refused ones and failed logins included),
/// newest first, filtered and paginated. Admin only.
#[utoipa::path(get, path = "/stask/audit", tag = "system", params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "The token's role is not admin", body = ErrorBody),
        (status = 422, description = "Invalid filter value", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let per_page = PER_PAGE.read(&q.per_page)?;
    let page = PAGE.read(&q.page)?;
    let time = |raw: &Option<String>| {
        raw.as_deref()
            .filter(|s| !s.is_empty())
            .map(parse_time)
            .transpose()
            .map_err(ApiError::invalid)
    };
    let status_class = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(status_class(s).ok_or_else(|| {
            ApiError::invalid(format!("status must be 2xx, 3xx, 4xx or 5xx, not '{s}'"))
        })?),
    };
    let filter = AuditFilter {
        token: q.token.filter(|s| !s.is_empty()),
        route: q.route.filter(|s| !s.is_empty()),
        status_class,
        since: time(&q.since)?,
        until: time(&q.until)?,
        limit: per_page,
        offset: (page - 1) * per_page,
    };
    let engine = state.engine.clone();
    let (rows, total) = blocking(move || Ok(engine.audit_entries(&filter)?)).await?;
    Ok(Json(AuditPage {
        success: true,
        entries: rows.into_iter().map(AuditView::from).collect(),
        total,
        page,
        per_page,
    }))
}
