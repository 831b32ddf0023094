//! Browser sessions for the admin UI: log in with an API token, get an HttpOnly cookie and a
//! CSRF token.

use super::auth::Caller;
use super::error::json_body;
use super::schema::{Done, LoginRequest, SessionAnswer};
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::clock::{now_ms, rfc3339};
use crate::config::SecureCookies;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{AppendHeaders, IntoResponse};
use axum::{Extension, Json};

/// Name of the session cookie.
pub const COOKIE: &str = "stask_session";

fn set_cookie(value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("stask_session=; Max-Age=0"))
}

/// Whether the cookie set in answer to `headers` is marked `Secure`.
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    match state.engine.config.secure_cookies {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https")),
    }
}

/// Log in with an API token: sets the session cookie, answers the CSRF token.
#[utoipa::path(post, path = "/stask/login", tag = "system", security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; the session cookie is set", body = SessionAnswer),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Invalid or revoked token", body = ErrorBody),
        (status = 422, description = "No token given", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = json_body(body)?.ok_or_else(|| ApiError::invalid("send {\"token\": \"...\"}"))?;
    let request: LoginRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::invalid(format!("send {{\"token\": \"...\"}}: {e}")))?;
    let engine = state.engine.clone();
    let (session, row) = blocking(move || {
        let row = engine
            .verify_token(&request.token)?
            .ok_or_else(|| ApiError::unauthorized("invalid or revoked token"))?;
        let session = engine.open_session(&row, now_ms())?;
        Ok((session, row))
    })
    .await?;
    let (name, role) = (row.name.clone(), row.role);
    // The audit log records the login as the token's.
    let who = super::audit::AuditWho {
        token_id: row.id,
        token_name: row.name,
        role: row.role,
        via_session: false,
    };
    let max_age = crate::auth::SESSION_TTL_MS / 1000;
    let cookie = set_cookie(&session.id, max_age, secure(&state, &headers));
    Ok((
        Extension(who),
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Json(SessionAnswer {
            success: true,
            csrf_token: session.csrf_token,
            token_name: Some(name),
            role: role.name().to_owned(),
            expires_at: rfc3339(session.expires_at),
        }),
    ))
}

/// The current session (to recover the CSRF token after a page reload).
#[utoipa::path(get, path = "/stask/session", tag = "system",
    responses(
        (status = 200, description = "The session", body = SessionAnswer),
        (status = 401, description = "No session", body = ErrorBody),
    ))]
pub async fn current(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<SessionAnswer>, ApiError> {
    let Some(id_hash) = caller.session else {
        return Err(ApiError::unauthorized(
            "this request did not come with a session cookie",
        ));
    };
    let engine = state.engine.clone();
    let row = blocking(move || {
        engine
            .store
            .session(&id_hash, now_ms())?
            .ok_or_else(|| ApiError::unauthorized("session expired"))
    })
    .await?;
    Ok(Json(SessionAnswer {
        success: true,
        csrf_token: row.csrf_token,
        token_name: None,
        role: row.role.name().to_owned(),
        expires_at: rfc3339(row.expires_at),
    }))
}

/// Ends the session and clears the cookie.
#[utoipa::path(post, path = "/stask/logout", tag = "system",
    responses(
        (status = 200, description = "Logged out", body = Done),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(id_hash) = caller.session {
        let engine = state.engine.clone();
        blocking(move || Ok(engine.end_session(&id_hash, now_ms())?)).await?;
    }
    Ok((
        AppendHeaders([(
            header::SET_COOKIE,
            set_cookie("", 0, secure(&state, &headers)),
        )]),
        Json(Done {
            success: true,
            message: "Logged out".into(),
        }),
    ))
}
