//! Entry points for the fuzz targets in `tests/fuzz/` (hidden from the docs; not an API).
//!
//! Each one runs the daemon's own code on untrusted input exactly as a request or a plugin file
//! reaches it, and must return an answer, never panic or hang. The targets add the properties
//! they check on top.

use crate::model::{NewTask, WorkerRow, WorkerState};
use crate::store::TaskFilter;
use serde_json::{json, Value};

/// A loaded, active worker with two actions and declared settings, as the registry caches it.
pub fn sample_worker() -> WorkerRow {
    WorkerRow {
        id: 1,
        uuid: "00000000-0000-4000-8000-000000000001".into(),
        identifier: "demo".into(),
        scope: "stask".into(),
        class: "demo.so".into(),
        active: true,
        paused: false,
        position: 0,
        settings: json!({"timeout": 0}),
        hidden: 0,
        title: "Demo".into(),
        description: String::new(),
        actions: json!([{"name": "run", "description": ""}, {"name": "noop", "description": ""}]),
        default_settings: json!({"timeout": 0, "from": "a@b", "tags": []}),
        state: WorkerState::Loaded,
        load_error: None,
        file: Some("demo.so".into()),
        file_sha256: None,
        version: Some("1".into()),
        generation: 1,
        loaded_at: Some(0),
        created_at: 0,
        updated_at: 0,
    }
}

/// A create request: the body parsed as the API parses it, then checked as the engine checks
/// it against `worker`. `Ok` is a task the API would accept; `Err` the message of a 4xx.
pub fn create_task(
    worker: &WorkerRow,
    action: &str,
    body: &[u8],
) -> Result<NewTask, (u16, String)> {
    let task = crate::http::parse_create_body(&worker.identifier, action, body)
        .map_err(|e| (e.status.as_u16(), e.message))?;
    crate::engine::check_task(worker, &task).map_err(|e| {
        let e = crate::http::ApiError::from(e);
        (e.status.as_u16(), e.message)
    })?;
    Ok(task)
}

/// A task list request target (`/stask/tasks?status=...`) parsed into the store filter;
/// `Err` is the message of a 4xx.
pub fn task_query(target: &str) -> Result<TaskFilter, (u16, String)> {
    crate::http::parse_task_query(target).map_err(|e| (e.status.as_u16(), e.message))
}

/// New settings checked against the worker's declared defaults (`PUT .../settings`).
pub fn worker_settings(defaults: &Value, settings: &Value) -> Result<(), String> {
    crate::engine::validate_settings(defaults, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `task_create` fuzz target: without correctly rounded float parsing, a large
    /// number in the task data changed on its way through the store (parsed, written as text,
    /// parsed again: 9.111111111111111e28 came back as 9.111111111111113e28).
    #[test]
    fn task_data_numbers_survive_the_store_round_trip() {
        let body = br#"{"a": 91111111111111111101234567890, "b": 0.1, "c": 1e-300}"#;
        let task = create_task(&sample_worker(), "run", body).unwrap();
        let stored = serde_json::to_string(&task.data).unwrap();
        let back: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, task.data);
    }

    /// Found by the `task_query` fuzz target (see `clock::parse_time`): a `from` beyond year
    /// 9999 is refused with a 422 instead of filtering on a time nobody can read.
    #[test]
    fn list_filters_refuse_times_that_cannot_be_shown() {
        let (status, message) = task_query("/stask/tasks?from=20257375737023400").unwrap_err();
        assert_eq!(status, 422, "{message}");
        let filter = task_query("/stask/tasks?from=2025-01-01T00:00:00Z&per_page=500").unwrap();
        assert_eq!((filter.limit, filter.offset), (500, 0));
        // Out of range is refused, not clamped (issue 13).
        let (status, message) = task_query("/stask/tasks?per_page=900").unwrap_err();
        assert_eq!(status, 422, "{message}");
        assert!(message.contains("per_page"), "{message}");
    }

    #[test]
    fn create_bodies_get_a_task_or_a_client_error() {
        let ok = create_task(&sample_worker(), "run", br#"{"priority":"high","x":1}"#).unwrap();
        assert_eq!(ok.data, json!({"x": 1}));
        for (action, body, status) in [
            ("run", &b"[1]"[..], 422),
            ("run", &b"{"[..], 400),
            ("nope", &b"{}"[..], 404),
            ("run", &br#"{"max_attempts": 0}"#[..], 422),
        ] {
            assert_eq!(
                create_task(&sample_worker(), action, body).unwrap_err().0,
                status
            );
        }
    }
}
