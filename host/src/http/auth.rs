//! The `stask` permission for HTTP: a bearer token on every protected route.

use super::{blocking, ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// The caller, for handlers that record who created a task.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// Token id.
    pub token_id: i64,
}

/// Rejects requests without a valid `Authorization: Bearer <token>`.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let Some(presented) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication required: send 'Authorization: Bearer <token>' (create one with 'stask token create --name NAME')",
        ));
    };
    let engine = state.engine.clone();
    let row = blocking(move || Ok(crate::auth::verify(engine.store.as_ref(), &presented)?)).await?;
    let Some(row) = row else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid or revoked token",
        ));
    };
    request.extensions_mut().insert(Caller { token_id: row.id });
    Ok(next.run(request).await)
}
