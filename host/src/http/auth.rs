//! The `stask` permission for HTTP: a bearer token, or a session cookie whose state-changing
//! requests repeat the session's CSRF token; then the caller's role must cover the route
//! ([`super::roles`]).

use super::audit::AuditWho;
use super::session::COOKIE;
use super::{ApiError, AppState};
use crate::auth::{hash_token, secrets_match};
use crate::clock::now_ms;
use crate::model::TokenRole;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Last-used times are written at most this often per token.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Who is calling, for handlers that record it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token id (directly, or the one the session was opened with).
    pub token_id: i64,
    /// That token's name.
    pub token_name: String,
    /// The session's id hash, when the call came with a session cookie.
    pub session: Option<String>,
    /// What the token (or the session's token) may do.
    pub role: TokenRole,
    /// The workers whose tasks the token may act on; `None`: every worker.
    pub workers: Option<Vec<String>>,
}

impl Caller {
    /// Who this is, as the audit log records it.
    pub fn audit_who(&self) -> AuditWho {
        AuditWho {
            token_id: self.token_id,
            token_name: self.token_name.clone(),
            role: self.role,
            via_session: self.session.is_some(),
        }
    }
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
/// state without the right CSRF token (403), requests the caller's role does not cover
/// (403 naming the role needed), and requests of a token restricted to workers on another
/// worker's tasks (403 naming the worker). Every answer carries who called ([`AuditWho`],
/// in the response's extensions) when that is known, for the audit log.
pub async fn require_permission(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (who, checked) = check(&state, request).await;
    let mut response = match checked {
        Ok(request) => next.run(request).await,
        Err(e) => e.into_response(),
    };
    if let Some(who) = who {
        response.extensions_mut().insert(who);
    }
    response
}

/// The checks of [`require_permission`]: the request to run (with its [`Caller`]) or the
/// refusal, and who called if known.
async fn check(
    state: &AppState,
    mut request: Request,
) -> (Option<AuditWho>, Result<Request, ApiError>) {
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
            return Ok((
                Caller {
                    token_id: row.id,
                    token_name: row.name,
                    session: None,
                    role: row.role,
                    workers: row.workers,
                },
                true,
            ));
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
        let csrf_ok = !state_change || csrf.is_some_and(|c| secrets_match(&c, &row.csrf_token));
        Ok::<_, ApiError>((
            Caller {
                token_id: row.token_id,
                token_name: row.token_name,
                session: Some(id_hash),
                role: row.role,
                workers: row.workers,
            },
            csrf_ok,
        ))
    })();
    let (caller, csrf_ok) = match caller {
        Ok(found) => found,
        Err(e) => return (None, Err(e)),
    };
    let who = Some(caller.audit_who());
    if !csrf_ok {
        return (
            who,
            Err(ApiError::forbidden(
                "missing or wrong X-CSRF-TOKEN header for this session",
            )),
        );
    }
    // The middleware runs after routing (`route_layer`), so the template is known.
    let path = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let needed = super::roles::required_role(request.method(), &path);
    if caller.role < needed {
        let message = format!(
            "{} {path} needs the '{needed}' role; this token has '{}'",
            request.method(),
            caller.role
        );
        return (who, Err(ApiError::forbidden(message)));
    }
    if let Some(allowed) = &caller.workers {
        let (mut parts, body) = request.into_parts();
        let params = RawPathParams::from_request_parts(&mut parts, &())
            .await
            .ok();
        request = Request::from_parts(parts, body);
        let change = changes_state(request.method());
        if let Err(e) = check_workers(state, allowed, &path, change, params.as_ref()).await {
            return (who, Err(e));
        }
    }
    request.extensions_mut().insert(caller);
    (who, Ok(request))
}

/// A token restricted to `allowed` workers may change something on a route naming a worker
/// (`{identifier}`: creates, the worker's own changes) only for one of them (reading a
/// worker's description is not a task's business), and reach a task route
/// (`/stask/tasks/{id}...`, reads included) only for a task of one of them (an unknown task
/// is left to the handler's 404). Routes naming neither are not narrowed here (task lists
/// are, by their handler).
async fn check_workers(
    state: &AppState,
    allowed: &[String],
    path: &str,
    change: bool,
    params: Option<&RawPathParams>,
) -> Result<(), ApiError> {
    let param = |name: &str| {
        params.and_then(|p| {
            p.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
    };
    let refuse = |worker: &str, what: String| {
        ApiError::forbidden(format!(
            "{what} belongs to the worker '{worker}'; this token may act only on the tasks of {}",
            allowed.join(", ")
        ))
        .with_worker(worker)
    };
    if let Some(worker) = param("identifier") {
        if change && !allowed.contains(&worker) {
            return Err(refuse(&worker, format!("{path} for '{worker}'")));
        }
        return Ok(());
    }
    if path.starts_with("/stask/tasks/{id}") {
        let Some(id) = param("id").and_then(|v| v.parse::<i64>().ok()) else {
            // The handler's extractor answers 400 for an id that is not one.
            return Ok(());
        };
        let engine = state.engine.clone();
        let worker = super::blocking(move || Ok(engine.task_worker(id)?)).await?;
        if let Some(worker) = worker.filter(|w| !allowed.contains(w)) {
            return Err(refuse(&worker, format!("task {id}")));
        }
    }
    Ok(())
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
