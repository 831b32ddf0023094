//! Worker management shared by the API and the CLI: activation, settings, orphan cleanup.

use super::{Engine, EngineError, EngineResult};
use crate::clock::now_ms;
use crate::config::MAX_MEMORY_LIMIT_MB;
use crate::events::Event;
use crate::model::WorkerRow;
use crate::store::{LimitUsage, Store, StoreResult, WorkerLimit};
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

    /// Pauses or resumes a worker's queue. A paused worker still accepts tasks; they wait as
    /// pending (the task views say why) and no host claims them: the claim statements read the
    /// flag from the row, so it holds on every host and across restarts. Tasks already running
    /// finish; tasks this host claimed ahead and has not started are given back. On resume the
    /// held tasks run in their order (priority, then due time and id).
    pub fn set_worker_paused(&self, identifier: &str, paused: bool) -> EngineResult<WorkerRow> {
        if !self.store.set_worker_paused(identifier, paused, now_ms())? {
            return Err(EngineError::NotFound(format!(
                "unknown worker '{identifier}'"
            )));
        }
        self.registry.refresh_rows()?;
        if paused {
            self.release_unrunnable();
        }
        self.events.publish(Event::WorkerPaused {
            identifier: identifier.to_owned(),
            paused,
        });
        self.wake();
        self.worker(identifier)
    }

    /// What holds pending tasks back now (paused workers, limits), for the task views; read
    /// from the store, so the answer is the same on every host.
    pub fn waiting(&self) -> EngineResult<crate::views::Waiting> {
        Ok(waiting_in(&*self.store)?)
    }

    /// How many tasks of each limited worker among `workers` run now, for the worker views.
    pub fn limit_usage(&self, workers: &[WorkerRow]) -> EngineResult<Vec<LimitUsage>> {
        let limited: Vec<String> = workers
            .iter()
            .filter(|w| WorkerLimit::from_settings(&w.identifier, &w.settings).is_some())
            .map(|w| w.identifier.clone())
            .collect();
        Ok(self.store.limit_usage(&limited)?)
    }

    /// Replaces a worker's settings after checking them (see [`validate_settings`]). The
    /// worker sees them from its next task on.
    pub fn update_worker_settings(
        &self,
        identifier: &str,
        settings: &Value,
    ) -> EngineResult<WorkerRow> {
        let worker = self.worker(identifier)?;
        validate_settings(&worker.default_settings, settings).map_err(EngineError::Invalid)?;
        let settings = normalize_settings(settings);
        self.store
            .set_worker_settings(identifier, &settings, now_ms())?;
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

/// What holds pending tasks back now in `store` (see [`Engine::waiting`]; the CLI reads it
/// without an engine): one read of the worker rows and one of the limited workers' usage (none
/// without limits).
pub fn waiting_in(store: &dyn Store) -> StoreResult<crate::views::Waiting> {
    let workers = store.workers(&crate::store::WorkerFilter::default())?;
    let limited: Vec<String> = workers
        .iter()
        .filter(|w| WorkerLimit::from_settings(&w.identifier, &w.settings).is_some())
        .map(|w| w.identifier.clone())
        .collect();
    let usage = store.limit_usage(&limited)?;
    Ok(crate::views::Waiting::of(&workers, &usage, now_ms()))
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

/// What a setting the host itself reads accepts.
#[derive(Debug, Clone, Copy)]
enum Accepts {
    /// A whole JSON number (no fraction, no exponent form beyond an integer) in the range.
    Whole {
        min: u64,
        max: u64,
        /// What the number counts, for the error message.
        unit: &'static str,
        /// What 0 means.
        zero: &'static str,
    },
    /// One of these strings, in any case (stored lowercase).
    OneOf(&'static [&'static str]),
    /// An object of action names to whole numbers of tasks up to the maximum (0: no limit).
    ActionCaps {
        /// Largest cap.
        max: u64,
    },
    /// `null` (no limit) or a rate `"N/s"`, `"N/min"`, `"N/h"` (see [`crate::store::RateLimit`]).
    Rate,
}

/// Every setting the host interprets (the engine's runtime reads exactly these), with its
/// declared type and range. A value outside them used to be ignored in silence (a `timeout` of
/// 1.5 ran with no timeout); now it is refused with 422 naming the key and what it accepts.
const HOST_SETTINGS: &[(&str, Accepts)] = &[
    (
        "timeout",
        Accepts::Whole {
            min: 0,
            max: MAX_TIMEOUT_SECS,
            unit: "seconds",
            zero: "no timeout",
        },
    ),
    ("isolation", Accepts::OneOf(&["in_process", "process"])),
    (
        "memory_limit_mb",
        Accepts::Whole {
            min: 0,
            max: MAX_MEMORY_LIMIT_MB,
            unit: "MiB",
            zero: "no limit",
        },
    ),
    (
        "concurrency",
        Accepts::Whole {
            min: 0,
            max: MAX_CONCURRENCY,
            unit: "tasks",
            zero: "no limit",
        },
    ),
    (
        "action_concurrency",
        Accepts::ActionCaps {
            max: MAX_CONCURRENCY,
        },
    ),
    ("rate_limit", Accepts::Rate),
];

/// Largest `concurrency` (and `action_concurrency` cap).
pub const MAX_CONCURRENCY: u64 = 100_000;

/// Longest `timeout` setting: a week.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// The problem with `value` for the host setting `key`, if any.
fn check_host_setting(key: &str, accepts: Accepts, value: &Value) -> Option<String> {
    match accepts {
        Accepts::Whole {
            min,
            max,
            unit,
            zero,
        } => {
            let ok = value.as_u64().is_some_and(|v| (min..=max).contains(&v));
            (!ok).then(|| {
                format!(
                    "{key} must be a whole number of {unit} between {min} and {max} \
                     (0: {zero}), got {value}"
                )
            })
        }
        Accepts::ActionCaps { max } => {
            let ok = value.as_object().is_some_and(|caps| {
                caps.values()
                    .all(|cap| cap.as_u64().is_some_and(|c| c <= max))
            });
            (!ok).then(|| {
                format!(
                    "{key} must be an object of action names to whole numbers of tasks between \
                     0 and {max} (0: no limit), got {value}"
                )
            })
        }
        Accepts::Rate => match value {
            Value::Null => None,
            Value::String(text) => text
                .parse::<crate::store::RateLimit>()
                .err()
                .map(|e| format!("{key} must be null (no limit) or {e}")),
            other => Some(format!(
                "{key} must be null (no limit) or a rate such as \"100/s\", \"600/min\" or \
                 \"1000/h\", got {other}"
            )),
        },
        Accepts::OneOf(choices) => {
            let ok = value
                .as_str()
                .is_some_and(|v| choices.iter().any(|c| c.eq_ignore_ascii_case(v)));
            (!ok).then(|| {
                let list: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
                format!("{key} must be one of {}, got {value}", list.join(", "))
            })
        }
    }
}

/// Settings as they are stored: the host's enumerated values in lowercase (they are accepted
/// in any case, and the runtime compares the lowercase words). Call after
/// [`validate_settings`] accepted them.
pub fn normalize_settings(settings: &Value) -> Value {
    let mut settings = settings.clone();
    if let Some(map) = settings.as_object_mut() {
        for (key, accepts) in HOST_SETTINGS {
            if let (Accepts::OneOf(_), Some(Value::String(v))) = (accepts, map.get_mut(*key)) {
                *v = v.to_ascii_lowercase();
            }
        }
    }
    settings
}

/// Checks new settings: a JSON object whose keys the plugin declares keep the declared JSON
/// type, and whose keys the host itself reads (`timeout`, `isolation`, `memory_limit_mb`,
/// `concurrency`, `action_concurrency`, `rate_limit`) have a value the host accepts.
pub fn validate_settings(defaults: &Value, settings: &Value) -> Result<(), String> {
    let Some(settings) = settings.as_object() else {
        return Err(format!(
            "settings must be a JSON object, got {}",
            json_type(settings)
        ));
    };
    let declared = defaults.as_object();
    let mut wrong: Vec<String> = Vec::new();
    for (key, value) in settings {
        if let Some((_, accepts)) = HOST_SETTINGS.iter().find(|(k, _)| k == key) {
            wrong.extend(check_host_setting(key, *accepts, value));
            continue;
        }
        let Some(declared) = declared.and_then(|d| d.get(key)) else {
            continue;
        };
        if !declared.is_null() && json_type(declared) != json_type(value) {
            wrong.push(format!(
                "'{key}' must be a {}, got {}",
                json_type(declared),
                json_type(value)
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid settings: {}", wrong.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::{normalize_settings, validate_settings};
    use serde_json::json;

    #[test]
    fn settings_keep_declared_types_and_allow_new_keys() {
        let defaults = json!({"timeout": 0, "from": "a@b"});
        assert!(validate_settings(&defaults, &json!({"timeout": 30, "extra": [1]})).is_ok());
        let e = validate_settings(&defaults, &json!({"from": 3})).unwrap_err();
        assert_eq!(e, "invalid settings: 'from' must be a string, got number");
        assert!(validate_settings(&defaults, &json!([1])).is_err());
    }

    /// Found by the hostile test of issue 13: a `timeout` of 1.5, -1 or 1e300 was accepted
    /// and the task ran with no timeout; `isolation` and `memory_limit_mb` took anything.
    #[test]
    fn the_settings_the_host_reads_have_a_declared_type_and_range() {
        // With and without the plugin declaring them.
        for defaults in [json!({"timeout": 0}), json!({})] {
            for ok in [
                json!({"timeout": 0}),
                json!({"timeout": 604800}),
                json!({"isolation": "process", "memory_limit_mb": 256}),
                json!({"isolation": "In_Process", "memory_limit_mb": 0}),
                json!({"concurrency": 0}),
                json!({"concurrency": 3, "action_concurrency": {"import": 1, "other": 0}}),
                json!({"rate_limit": "100/s"}),
                json!({"rate_limit": "600/min", "concurrency": 100000}),
                json!({"rate_limit": "1000/h"}),
                json!({"rate_limit": null}),
            ] {
                assert!(validate_settings(&defaults, &ok).is_ok(), "{ok}");
            }
            for (bad, message) in [
                (json!({"timeout": 1.5}), "timeout must be a whole number of seconds between 0 and 604800 (0: no timeout), got 1.5"),
                (json!({"timeout": -1}), "timeout must be a whole number of seconds between 0 and 604800 (0: no timeout), got -1"),
                (json!({"timeout": 1e300}), "timeout must be a whole number of seconds between 0 and 604800 (0: no timeout), got 1e+300"),
                (json!({"timeout": 604801}), "timeout must be a whole number of seconds between 0 and 604800 (0: no timeout), got 604801"),
                (json!({"timeout": "30"}), "timeout must be a whole number of seconds between 0 and 604800 (0: no timeout), got \"30\""),
                (json!({"isolation": "bogus"}), "isolation must be one of \"in_process\", \"process\", got \"bogus\""),
                (json!({"isolation": null}), "isolation must be one of \"in_process\", \"process\", got null"),
                (json!({"memory_limit_mb": -1}), "memory_limit_mb must be a whole number of MiB between 0 and 1048576 (0: no limit), got -1"),
                (json!({"concurrency": -1}), "concurrency must be a whole number of tasks between 0 and 100000 (0: no limit), got -1"),
                (json!({"concurrency": 2.5}), "concurrency must be a whole number of tasks between 0 and 100000 (0: no limit), got 2.5"),
                (json!({"concurrency": "2"}), "concurrency must be a whole number of tasks between 0 and 100000 (0: no limit), got \"2\""),
                (json!({"action_concurrency": {"import": -1}}), "action_concurrency must be an object of action names to whole numbers of tasks between 0 and 100000 (0: no limit), got {\"import\":-1}"),
                (json!({"action_concurrency": [1]}), "action_concurrency must be an object of action names to whole numbers of tasks between 0 and 100000 (0: no limit), got [1]"),
                (json!({"rate_limit": "100/d"}), "rate_limit must be null (no limit) or a rate \"N/s\", \"N/min\" or \"N/h\" (N a whole number from 1 to 1000000), got \"100/d\""),
                (json!({"rate_limit": 100}), "rate_limit must be null (no limit) or a rate such as \"100/s\", \"600/min\" or \"1000/h\", got 100"),
            ] {
                let e = validate_settings(&defaults, &bad).unwrap_err();
                assert_eq!(e, format!("invalid settings: {message}"), "{bad}");
            }
        }
        let e = validate_settings(&json!({}), &json!({"timeout": -1, "isolation": 3})).unwrap_err();
        assert!(e.contains("timeout") && e.contains("isolation"), "{e}");
    }

    #[test]
    fn enumerated_settings_are_stored_lowercase() {
        let stored = normalize_settings(&json!({"isolation": "PROCESS", "other": "Keep"}));
        assert_eq!(stored, json!({"isolation": "process", "other": "Keep"}));
    }
}
