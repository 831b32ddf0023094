//! The `stask` permission for HTTP: a bearer token, or a session cookie whose state-changing
//! requests repeat the session's CSRF token; then the caller's role must cover the route
//! ([`super::roles`]).

use super::session::COOKIE;
use super::{ApiError, AppState};
use crate::auth::{hash_token, secrets_match};
use crate::clock::now_ms;
use crate::model::TokenRole;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;

/// Last-used times are written at most this often per token.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Who is calling, for handlers that record it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token id (directly, or the one the session was opened with).
    pub token_id: i64,
    /// The session's id hash, when the call came with a session cookie.
    pub session: Option<String>,
    /// What the token (or the session's token) may do.
    pub role: TokenRole,
}

/// The value of one cookie.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive
/// (RFC 9110, section 11.1: `bearer`, `BEARER` work too), separated by spaces or tabs.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Rejects requests without the `stask` permission (401), session requests that change
/// state without the right CSRF token (403), and requests the caller's role does not cover
/// (403 naming the role needed).
pub async fn require_permission(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let token = bearer(headers);
    let session = cookie(headers, COOKIE);
    let csrf = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let state_change = changes_state(request.method());
    // Inline on the async thread: a token check is one indexed read on a reader connection
    // (tens of µs), cheaper than a hand-off to a blocking thread and back.
    let caller = (|| {
        let engine = state.engine.as_ref();
        if let Some(token) = token {
            let row = engine
                .verify_token(&token)?
                .ok_or_else(|| ApiError::unauthorized("invalid or revoked token"))?;
            let now = now_ms();
            if row.last_used_at.is_none_or(|at| now - at > TOUCH_EVERY_MS) {
                engine.touch_token(row.id, now)?;
            }
            return Ok(Caller {
                token_id: row.id,
                session: None,
                role: row.role,
            });
        }
        let Some(session_id) = session else {
            return Err(ApiError::unauthorized(
                "authentication required: send 'Authorization: Bearer <token>' (create one with 'stask token create --name NAME') or log in",
            ));
        };
        let id_hash = hash_token(&session_id);
        let row = engine
            .session(&id_hash, now_ms())?
            .ok_or_else(|| ApiError::unauthorized("session expired or logged out; log in again"))?;
        if state_change && !csrf.is_some_and(|c| secrets_match(&c, &row.csrf_token)) {
            return Err(ApiError::forbidden(
                "missing or wrong X-CSRF-TOKEN header for this session",
            ));
        }
        Ok::<_, ApiError>(Caller {
            token_id: row.token_id,
            session: Some(id_hash),
            role: row.role,
        })
    })()?;
    // The middleware runs after routing (`route_layer`), so the template is known.
    let path = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let needed = super::roles::required_role(request.method(), &path);
    if caller.role < needed {
        return Err(ApiError::forbidden(format!(
            "{} {path} needs the '{needed}' role; this token has '{}'",
            request.method(),
            caller.role
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::bearer;
    use axum::http::{header, HeaderMap, HeaderValue};

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR  abc ",
            "Bearer\tabc",
        ] {
            assert_eq!(bearer(&with(v)).as_deref(), Some("abc"), "{v:?}");
        }
        for v in ["Basic abc", "Bearerabc", "abc", "Bearer"] {
            assert_eq!(bearer(&with(v)), None, "{v:?}");
        }
    }
}
