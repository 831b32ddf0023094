//! Follow-up tasks: what a running task creates through the host service `tasks.create`
//! (`Context::create_task` in a plugin).
//!
//! The plugin host only dispatches the call ([`crate::plugins::HostServices`]); this is the
//! [`TaskCreator`] the engine injects into it, so a follow-up takes the normal create path
//! ([`Engine::create_task`]: the worker and action checked, options in range, the unique-key
//! rule) with one difference: its `parent_id` is the running task, which the host knows and
//! the plugin cannot choose. A follow-up is committed when the call answers, whatever the
//! parent's run does afterwards.

use super::{Engine, EngineError};
use crate::clock::now_ms;
use crate::model::{NewTask, Priority, DEFAULT_MAX_ATTEMPTS};
use crate::plugins::TaskCreator;
use stask_plugin_api::protocol::{
    CallError, CallErrorKind, CreateTaskAnswer, CreateTaskArgs, TaskPriority,
};
use std::sync::Weak;

/// The latest start a follow-up may ask for (UNIX ms): the end of year 9999, as the API's.
const MAX_START_AT_MS: i64 = 253_402_300_799_999;

/// Creates follow-ups through the engine that owns the runs (weak: the engine owns this).
pub(super) struct FollowUps(pub(super) Weak<Engine>);

impl TaskCreator for FollowUps {
    fn create_task(
        &self,
        parent_id: i64,
        args: CreateTaskArgs,
    ) -> Result<CreateTaskAnswer, CallError> {
        let Some(engine) = self.0.upgrade() else {
            return Err(CallError::new(
                CallErrorKind::Unavailable,
                "the host is stopping",
            ));
        };
        let task = new_task(parent_id, args, now_ms())?;
        let inserted = engine.create_task(&task).map_err(call_error)?;
        Ok(CreateTaskAnswer {
            id: inserted.id,
            duplicate: inserted.duplicate,
        })
    }
}

/// The task `args` asks for, as a follow-up of `parent_id`, created at `now`.
fn new_task(parent_id: i64, args: CreateTaskArgs, now: i64) -> Result<NewTask, CallError> {
    let refused = |message: String| CallError::new(CallErrorKind::Refused, message);
    let o = args.options;
    let start_at = match (o.start_at, o.delay_ms) {
        (Some(_), Some(_)) => {
            return Err(refused("give start_at or delay_ms, not both".to_owned()))
        }
        (Some(at), None) if (0..=MAX_START_AT_MS).contains(&at) => Some(at),
        (Some(at), None) => {
            return Err(refused(format!(
                "start_at must be UNIX milliseconds of the years 1970-9999, got {at}"
            )))
        }
        (None, Some(delay)) => Some(
            i64::try_from(delay)
                .ok()
                .and_then(|d| now.checked_add(d))
                .filter(|at| *at <= MAX_START_AT_MS)
                .ok_or_else(|| refused(format!("delay_ms {delay} is beyond the year 9999")))?,
        ),
        (None, None) => None,
    };
    crate::store::unique::check(o.unique_key.as_deref(), o.unique_for_secs).map_err(refused)?;
    Ok(NewTask {
        identifier: args.identifier,
        action: args.action,
        data: match args.data {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            data => data,
        },
        priority: match o.priority {
            None | Some(TaskPriority::Normal) => Priority::Normal,
            Some(TaskPriority::Low) => Priority::Low,
            Some(TaskPriority::High) => Priority::High,
        },
        start_at,
        max_attempts: o.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
        started_by: None,
        token_id: None,
        unique_key: o.unique_key,
        unique_for_secs: o.unique_for_secs,
        parent_id: Some(parent_id),
        depends_on: Vec::new(),
        on_parent_failure: Default::default(),
    })
}

/// An engine refusal as the call's error: the request's fault is refused (the same call
/// fails again), the storage's is unavailable (another attempt may succeed).
fn call_error(e: EngineError) -> CallError {
    let kind = match &e {
        EngineError::NotFound(_)
        | EngineError::Conflict(_)
        | EngineError::Invalid(_)
        | EngineError::UnknownParents { .. }
        | EngineError::BatchTask { .. } => CallErrorKind::Refused,
        EngineError::Store(_) => CallErrorKind::Unavailable,
    };
    CallError::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stask_plugin_api::TaskOptions;

    fn args(options: TaskOptions) -> CreateTaskArgs {
        CreateTaskArgs {
            identifier: "email_campaign".into(),
            action: "send".into(),
            data: serde_json::Value::Null,
            options,
        }
    }

    #[test]
    fn options_become_the_new_task_with_its_parent() {
        let t = new_task(
            7,
            args(
                TaskOptions::default()
                    .priority(TaskPriority::High)
                    .delay(std::time::Duration::from_secs(2))
                    .max_attempts(5)
                    .unique_key("k")
                    .unique_for_secs(60),
            ),
            1_000,
        )
        .unwrap();
        assert_eq!(t.parent_id, Some(7));
        assert_eq!(t.data, json!({}));
        assert_eq!(t.priority, Priority::High);
        assert_eq!(t.start_at, Some(3_000));
        assert_eq!(t.max_attempts, 5);
        assert_eq!(t.unique_key.as_deref(), Some("k"));
        assert_eq!(t.unique_for_secs, Some(60));
        assert_eq!((t.started_by, t.token_id), (None, None));
        let plain = new_task(1, args(TaskOptions::default()), 1_000).unwrap();
        assert_eq!(
            (plain.priority, plain.start_at, plain.max_attempts),
            (Priority::Normal, None, DEFAULT_MAX_ATTEMPTS)
        );
    }

    #[test]
    fn options_out_of_range_are_refused_with_the_reason() {
        for (options, says) in [
            (
                TaskOptions::default()
                    .start_at(5)
                    .delay(std::time::Duration::from_millis(1)),
                "not both",
            ),
            (TaskOptions::default().start_at(-1), "start_at must be"),
            (
                TaskOptions {
                    delay_ms: Some(u64::MAX),
                    ..Default::default()
                },
                "beyond the year 9999",
            ),
            (TaskOptions::default().unique_key(""), "unique_key"),
            (TaskOptions::default().unique_for_secs(60), "unique_for"),
        ] {
            let e = new_task(1, args(options.clone()), 0).unwrap_err();
            assert_eq!(e.kind, CallErrorKind::Refused, "{options:?}");
            assert!(e.message.contains(says), "{options:?}: {}", e.message);
        }
    }
}
