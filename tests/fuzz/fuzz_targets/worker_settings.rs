//! Worker settings as `PUT /stask/workers/{identifier}/settings` checks them: any JSON gets an
//! answer, and accepted settings keep the type of every key the worker declares.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stask_host::fuzzing::{sample_worker, worker_settings};

fn kind(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(settings) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let defaults = sample_worker().default_settings;
    match worker_settings(&defaults, &settings) {
        Ok(()) => {
            let settings = settings
                .as_object()
                .expect("accepted settings are an object");
            for (key, declared) in defaults.as_object().unwrap() {
                if let Some(value) = settings.get(key) {
                    assert_eq!(kind(value), kind(declared), "{key}: {value}");
                }
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
