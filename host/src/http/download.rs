//! `GET /stask/tasks/{id}/download`: a completed task's result file, streamed from disk.
//!
//! tower-http's `ServeFile` does the streaming (in chunks, never the whole file in memory),
//! `Content-Length`, `Last-Modified`, `If-Modified-Since` and `Range` (206, and 416 for a
//! range outside the file). It has no entity tags, so this module adds a strong `ETag` made
//! of the file's size and modification time, and answers `If-None-Match` with 304 itself.
//! Downloads are sent as they are on disk: the compression layer leaves attachments alone, so
//! `Content-Length` and ranges keep meaning bytes of the file.

use super::extract::TaskId;
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::model::TaskStatus;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::path::Path;
use std::time::UNIX_EPOCH;
use tower_http::services::ServeFile;

/// The result file of a completed task. The stored path is resolved inside the results folder
/// only; anything else is a 404, whatever the row holds.
#[utoipa::path(get, path = "/stask/tasks/{id}/download", tag = "tasks",
    params(
        ("id" = i64, Path, description = "Task id", minimum = 1),
        ("Range" = Option<String>, Header, description = "A byte range (`bytes=START-[END]`): resume a broken download"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of a copy the client has"),
    ),
    responses(
        (status = 200, description = "The file, with `Content-Length`, `ETag` and `Last-Modified`", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range of the file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "The client's copy (its `If-None-Match`) is current"),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "A token restricted to workers, and the task is another worker's (`worker` names it)", body = ErrorBody),
        (status = 404, description = "No such task or no file", body = ErrorBody),
        (status = 409, description = "Not completed", body = ErrorBody),
        (status = 416, description = "The range is outside the file", body = ErrorBody),
    ))]
pub async fn download(
    State(state): State<AppState>,
    TaskId(id): TaskId,
    request: Request,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let (path, etag) = blocking(move || {
        let task = engine.task(id)?;
        if task.status != TaskStatus::Completed {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "task {id} is {}; only completed tasks have a download",
                    task.status
                ),
            ));
        }
        let path = engine.result_file(&task)?;
        let etag = entity_tag(&path).map_err(|e| match e.kind() {
            // Removed between the lookup and now: what the lookup says of a missing file.
            std::io::ErrorKind::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                format!("the result file of task {id} is no longer available"),
            ),
            _ => ApiError::internal(format!("{}: {e}", path.display())),
        })?;
        Ok((path, etag))
    })
    .await?;
    let mut response = if matches_etag(request.headers(), &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let served = ServeFile::new(&path)
            .try_call(request)
            .await
            .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
        served.map(axum::body::Body::new)
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if !response.status().is_client_error() {
        set_file_headers(response.headers_mut(), &path);
    }
    Ok(response)
}

/// `"<size>-<mtime ns>"` in hex: changes whenever the file is rewritten.
fn entity_tag(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let modified = meta
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("\"{:x}-{:x}\"", meta.len(), modified))
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// The file's type by its extension, its name for the browser's save dialog, and no sniffing.
fn set_file_headers(headers: &mut HeaderMap, path: &Path) {
    let name = path
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .replace(|c: char| c == '"' || c == '\\' || c.is_control(), "_")
        })
        .unwrap_or_else(|| "result".into());
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("txt") | Some("log") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_matches_the_tag_in_a_list_weak_or_star() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            h
        };
        let tag = "\"10-ff\"";
        assert!(matches_etag(&with("\"10-ff\""), tag));
        assert!(matches_etag(&with("\"1-1\", W/\"10-ff\""), tag));
        assert!(matches_etag(&with("*"), tag));
        assert!(!matches_etag(&with("\"10-fe\""), tag));
        assert!(!matches_etag(&HeaderMap::new(), tag));
    }
}
