//! One error type for the whole API, and the JSON extractor that reports bad bodies with it.

use crate::engine::EngineError;
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

/// An API error: a status and a message for the `{"success":false,...}` body.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human message.
    pub message: String,
}

impl ApiError {
    /// An error with a status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 422.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 500: logged in full, answered without internals.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!("internal error: {message}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the host log",
        )
    }
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// The HTTP status, repeated.
    pub code: u16,
    /// What went wrong, for people (lists valid choices where there are some).
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            success: false,
            code: self.status.as_u16(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound(m) => ApiError::not_found(m),
            EngineError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            EngineError::Invalid(m) => ApiError::invalid(m),
            EngineError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            StoreError::Database(m) if m.contains("database is locked") => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is busy; retry shortly",
            ),
            // Storage faults are the operator's to fix, not bugs: a clear answer naming the
            // folder (the store logs each fault once when it starts and once when it ends).
            e @ StoreError::StorageFull { .. } => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string())
            }
            e @ (StoreError::StorageReadOnly { .. }
            | StoreError::StorageIo { .. }
            | StoreError::FilesReplaced(_)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// A file operation under the storage folder failed: 507 when the disk is full, 503 when
    /// the folder may not be written (permission, read-only file system), naming the path and
    /// the folder; anything else is a 500.
    pub fn storage_io(doing: &str, path: &std::path::Path, e: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        let folder = path.parent().unwrap_or(path).display();
        match e.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                format!(
                    "the storage is full: {doing} {}: {e} (folder {folder})",
                    path.display()
                ),
            ),
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the storage folder {folder} is not writable: {doing} {}: {e}; check that \
                     the daemon's user may write it and that its file system is mounted \
                     read-write",
                    path.display()
                ),
            ),
            _ => Self::internal(format!("{doing} {}: {e}", path.display())),
        }
    }
}

/// Fallback for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// Fallback for a known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
    )
}

impl ApiError {
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
}

/// Parses a task id from a path segment.
pub fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid task id '{raw}': expected a positive integer"
        ))
    })
}

/// Parses an optional JSON body (empty = `None`), whatever its content type: a curl `-d` sends
/// form encoding by default, and refusing it would help nobody.
pub fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Option<Value>, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
}
