//! Worker management shared by the API and the CLI: activation, settings, orphan cleanup.

use super::{Engine, EngineError, EngineResult};
use crate::clock::now_ms;
use crate::model::WorkerRow;
use serde_json::Value;

impl Engine {
    /// One worker row.
    pub fn worker(&self, identifier: &str) -> EngineResult<WorkerRow> {
        self.store
            .worker(identifier)?
            .ok_or_else(|| EngineError::NotFound(format!("unknown worker '{identifier}'")))
    }

    /// Activates or deactivates a worker. An inactive worker's tasks stay pending; the flag
    /// survives reloads and restarts (it lives only in the row).
    pub fn set_worker_active(&self, identifier: &str, active: bool) -> EngineResult<WorkerRow> {
        if !self.store.set_worker_active(identifier, active, now_ms())? {
            return Err(EngineError::NotFound(format!(
                "unknown worker '{identifier}'"
            )));
        }
        self.registry.refresh_rows()?;
        if !active {
            self.release_unrunnable();
        }
        self.wake();
        self.worker(identifier)
    }

    /// Replaces a worker's settings after checking them against the plugin's defaults: a JSON
    /// object whose keys that the plugin declares keep the declared JSON type. The worker sees
    /// them from its next task on.
    pub fn update_worker_settings(
        &self,
        identifier: &str,
        settings: &Value,
    ) -> EngineResult<WorkerRow> {
        let worker = self.worker(identifier)?;
        validate_settings(&worker.default_settings, settings).map_err(EngineError::Invalid)?;
        self.store
            .set_worker_settings(identifier, settings, now_ms())?;
        self.registry.refresh_rows()?;
        self.worker(identifier)
    }

    /// Deletes orphaned worker rows (their task history stays); returns their identifiers.
    pub fn clean_orphaned_workers(&self) -> EngineResult<Vec<String>> {
        let removed = self.store.delete_orphaned_workers()?;
        self.registry.refresh_rows()?;
        Ok(removed)
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks new settings against the declared defaults.
pub fn validate_settings(defaults: &Value, settings: &Value) -> Result<(), String> {
    let Some(settings) = settings.as_object() else {
        return Err(format!(
            "settings must be a JSON object, got {}",
            json_type(settings)
        ));
    };
    let Some(defaults) = defaults.as_object() else {
        return Ok(());
    };
    let wrong: Vec<String> = settings
        .iter()
        .filter_map(|(key, value)| {
            let declared = defaults.get(key)?;
            (!declared.is_null() && json_type(declared) != json_type(value)).then(|| {
                format!(
                    "'{key}' must be a {}, got {}",
                    json_type(declared),
                    json_type(value)
                )
            })
        })
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid settings: {}", wrong.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::validate_settings;
    use serde_json::json;

    #[test]
    fn settings_keep_declared_types_and_allow_new_keys() {
        let defaults = json!({"timeout": 0, "from": "a@b"});
        assert!(validate_settings(&defaults, &json!({"timeout": 30, "extra": [1]})).is_ok());
        let e = validate_settings(&defaults, &json!({"timeout": "30"})).unwrap_err();
        assert_eq!(
            e,
            "invalid settings: 'timeout' must be a number, got string"
        );
        assert!(validate_settings(&defaults, &json!([1])).is_err());
    }
}
