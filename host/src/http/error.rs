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
    /// For a create whose `depends_on` names unknown tasks: their ids.
    pub unknown_ids: Option<Vec<i64>>,
    /// For a token restricted to workers refused another worker's task: that worker.
    pub worker: Option<String>,
    /// For a batch refused for one of its tasks: that task's index, from 0.
    pub index: Option<usize>,
}

impl ApiError {
    /// An error with a status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            unknown_ids: None,
            worker: None,
            index: None,
        }
    }

    /// The same error, naming the worker it is about (`worker` in the body).
    pub fn with_worker(mut self, worker: &str) -> Self {
        self.worker = Some(worker.to_owned());
        self
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
    /// Only on a create whose `depends_on` names tasks that do not exist (422): their ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_ids: Option<Vec<i64>>,
    /// Only when a token restricted to workers is refused another worker's task (403):
    /// that worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Only on a batch refused for one of its tasks (422): that task's index in `tasks`,
    /// from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            success: false,
            code: self.status.as_u16(),
            message: self.message,
            unknown_ids: self.unknown_ids,
            worker: self.worker,
            index: self.index,
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
            EngineError::UnknownParents { message, ids } => ApiError {
                unknown_ids: Some(ids),
                ..ApiError::invalid(message)
            },
            EngineError::BatchTask { index, error } => {
                let message = format!("tasks[{index}]: {error}");
                let unknown_ids = match *error {
                    EngineError::UnknownParents { ids, .. } => Some(ids),
                    _ => None,
                };
                ApiError {
                    unknown_ids,
                    index: Some(index),
                    ..ApiError::invalid(message)
                }
            }
            EngineError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { message, .. } => ApiError::new(StatusCode::CONFLICT, message),
            StoreError::Busy { .. } => ApiError::new(
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
            // The server restarts or the link is down; the next call reconnects. (A write whose
            // connection broke after its commit may be stored all the same: a create with a
            // `unique_key` is safe to send again.)
            e @ StoreError::Connection { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the database cannot be reached now; retry shortly ({e})"),
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// A real `SQLITE_BUSY`: a second connection writes while the first holds the write lock,
    /// without waiting.
    fn busy_error() -> StoreError {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder
            .execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE;")
            .unwrap();
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer.busy_timeout(std::time::Duration::ZERO).unwrap();
        writer
            .execute("INSERT INTO t VALUES (1)", [])
            .unwrap_err()
            .into()
    }

    #[test]
    fn a_locked_sqlite_database_is_busy_by_its_code_and_answers_503() {
        let e = busy_error();
        assert!(matches!(e, StoreError::Busy { .. }), "{e:?}");
        assert_eq!(e.to_string(), "database error: database is locked");
        let cause = e.source().expect("the cause is kept");
        assert_eq!(
            cause
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code),
            Some(rusqlite::ErrorCode::DatabaseBusy)
        );
        let shared = e.share();
        assert!(
            matches!(shared, StoreError::Busy { .. }),
            "a waiter's copy is busy too"
        );
        let answer = ApiError::from(shared);
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.message, "the database is busy; retry shortly");
    }

    #[test]
    fn a_conflict_answers_409_with_its_message_and_other_failures_500() {
        let answer = ApiError::from(StoreError::conflict("task 3 is running"));
        assert_eq!(answer.status, StatusCode::CONFLICT);
        assert_eq!(answer.message, "task 3 is running");
        let answer = ApiError::from(StoreError::internal("upserted row vanished"));
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.message, "internal error; see the host log");
    }

    #[test]
    fn context_goes_in_front_of_the_cause() {
        let e = busy_error().doing("cannot open x.db");
        assert!(matches!(e, StoreError::Busy { .. }), "the kind stays");
        assert_eq!(
            e.to_string(),
            "database error: cannot open x.db: database is locked"
        );
        let e = StoreError::internal("a").doing("b");
        assert_eq!(e.to_string(), "database error: b: a");
        assert!(e.source().is_none());
    }
}
