//! File uploads for import tasks. The client never chooses where a file goes: it is stored
//! under `storage/stask/uploads/` with a generated name that keeps only a sanitised extension.

use super::schema::UploadAnswer;
use super::{ApiError, AppState, ErrorBody};
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::Json;
use tokio::io::AsyncWriteExt;

/// Room for the form around the file (boundaries, part headers, small fields).
const FORM_OVERHEAD: u64 = 64 << 10;

/// The request body limit of the upload route: the upload limit plus the form around it.
pub fn body_limit(max_upload_bytes: u64) -> usize {
    usize::try_from(max_upload_bytes.saturating_add(FORM_OVERHEAD)).unwrap_or(usize::MAX)
}

/// The stored name: a random id, plus the client's extension when it is short and plain.
fn stored_name(client_name: Option<&str>) -> String {
    let ext = client_name
        .and_then(|n| std::path::Path::new(n).extension())
        .and_then(|e| e.to_str())
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|e| format!(".{}", e.to_ascii_lowercase()))
        .unwrap_or_default();
    format!("{}{ext}", uuid::Uuid::new_v4().simple())
}

/// Uploads one file (multipart form field `file`) for an import task; answers the path to pass
/// as the task's `file`. The file is written to disk as it arrives (never held in memory
/// whole), up to `STASK_MAX_UPLOAD_BYTES`; the route's body limit is that, not
/// `STASK_MAX_BODY_BYTES` ([`body_limit`]).
#[utoipa::path(post, path = "/stask/uploads", tag = "tasks",
    request_body(content_type = "multipart/form-data", content = Object, description = "A form with one file field named `file`"),
    responses(
        (status = 201, description = "Stored", body = UploadAnswer),
        (status = 400, description = "Not a multipart form with a `file` field", body = ErrorBody),
        (status = 401, description = "No permission", body = ErrorBody),
        (status = 403, description = "Session without CSRF token", body = ErrorBody),
        (status = 413, description = "File larger than `STASK_MAX_UPLOAD_BYTES`; nothing is kept", body = ErrorBody),
        (status = 503, description = "The uploads folder is not writable (permission, read-only file system)", body = ErrorBody),
        (status = 507, description = "The storage is full; nothing is kept", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<UploadAnswer>), ApiError> {
    let mut multipart = multipart.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = state.engine.config.max_upload_bytes;
    let dir = state.engine.config.uploads_dir();
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::new(e.status(), e.body_text()))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let name = stored_name(field.file_name());
        let path = dir.join(&name);
        // tokio's file type writes on its blocking pool: the async threads never wait on disk.
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ApiError::storage_io("creating the folder", &dir, &e))?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| ApiError::storage_io("creating", &path, &e))?;
        let mut size: u64 = 0;
        let result: Result<(), ApiError> = async {
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| ApiError::new(e.status(), e.body_text()))?
            {
                size += chunk.len() as u64;
                if size > limit {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("file larger than the upload limit of {limit} bytes"),
                    ));
                }
                file.write_all(&chunk)
                    .await
                    .map_err(|e| ApiError::storage_io("writing", &path, &e))?;
            }
            file.flush()
                .await
                .map_err(|e| ApiError::storage_io("writing", &path, &e))
        }
        .await;
        if let Err(e) = result {
            drop(file);
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        return Ok((
            StatusCode::CREATED,
            Json(UploadAnswer {
                success: true,
                path: format!("stask/uploads/{name}"),
                name,
                size,
            }),
        ));
    }
    Err(ApiError::bad_request("the form has no field named 'file'"))
}

#[cfg(test)]
mod tests {
    use super::stored_name;

    #[test]
    fn names_are_generated_and_keep_only_a_plain_extension() {
        let n = stored_name(Some("../../etc/passwd"));
        assert!(!n.contains('/') && !n.contains('.'), "{n}");
        assert!(stored_name(Some("products.CSV")).ends_with(".csv"));
        assert!(!stored_name(Some("x.c$v")).contains('$'));
        assert_ne!(stored_name(None), stored_name(None));
    }
}
