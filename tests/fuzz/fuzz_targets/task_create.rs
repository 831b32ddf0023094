//! Task creation as the API does it: the request body parsed (JSON, control keys), then the
//! engine's checks against the worker's cached row. Any body gets an accepted task or a 4xx
//! with a message, never a panic; an accepted task is what the rest of the host relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stask_host::clock::rfc3339;
use stask_host::fuzzing::{create_task, sample_worker};
use stask_host::model::WorkerRow;
use std::sync::OnceLock;

const ACTIONS: &[&str] = &["run", "noop", "unknown", "", "RUN", "run\0"];

fn worker() -> &'static WorkerRow {
    static WORKER: OnceLock<WorkerRow> = OnceLock::new();
    WORKER.get_or_init(sample_worker)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the action in the URL; the rest is the body.
    let (action, body) = match data.split_first() {
        Some((pick, rest)) => (ACTIONS[usize::from(*pick) % ACTIONS.len()], rest),
        None => ("run", data),
    };
    match create_task(worker(), action, body) {
        Ok(task) => {
            assert!(worker().has_action(&task.action));
            assert!((1..=100).contains(&task.max_attempts), "{task:?}");
            let data = task.data.as_object().expect("task data is an object");
            for control in ["priority", "start_at", "max_attempts"] {
                assert!(!data.contains_key(control), "{control} left in the data");
            }
            if let Some(at) = task.start_at {
                // Every accepted start time can be shown (the API and the UI print it).
                assert!(!rfc3339(at).is_empty(), "start_at {at} cannot be shown");
            }
            // The data is stored as JSON text and parsed again by the plugin: unchanged.
            let text = serde_json::to_string(&task.data).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, task.data);
        }
        Err((status, message)) => {
            assert!(
                matches!(status, 400 | 404 | 409 | 413 | 422),
                "{status}: {message}"
            );
            assert!(!message.is_empty());
        }
    }
});
