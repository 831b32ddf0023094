//! Reading typed options out of the task data, with messages that name the offending key.
//!
//! Task data comes from users, so every wrong type is a permanent error rather than a default:
//! silently ignoring `"update_existing": "no"` would do the opposite of what was asked.

use serde_json::Value;
use stask_plugin_api::TaskError;

/// `data[key]` as a boolean; `default` when absent or null.
pub fn bool_or(data: &Value, key: &str, default: bool) -> Result<bool, TaskError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(TaskError::permanent(format!(
            "{key} must be true or false, got {other}"
        ))),
    }
}

/// `data[key]` as a string; `None` when absent or null.
pub fn opt_str<'a>(data: &'a Value, key: &str) -> Result<Option<&'a str>, TaskError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(TaskError::permanent(format!(
            "{key} must be a string, got {other}"
        ))),
    }
}
