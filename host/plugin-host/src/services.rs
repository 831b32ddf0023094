//! The host services a running task reaches through `HostContext::call`: the one list of
//! them ([`SERVICES`]) and their dispatch ([`HostServices::call`]).
//!
//! The plugin host does not know the engine: what a service does is injected as a trait
//! object ([`TaskCreator`] for `tasks.create`), the way the registry's [`crate::ChangeHook`]
//! is. The argument and answer documents are `stask_plugin_api::protocol`'s, where plugin
//! authors read them. Every failure is a `CallError` (JSON in the call's `RErr`), never a
//! panic: bad arguments are [`CallErrorKind::BadArguments`], an unknown service's error
//! names the known ones.

use stask_plugin_api::protocol::{
    services, CallError, CallErrorKind, CreateTaskAnswer, CreateTaskArgs,
};
use std::sync::Arc;

/// Longest argument document a service reads (bytes); a longer one is refused unread.
pub const MAX_ARGS_BYTES: usize = 1 << 20;

/// One host service, as documented for plugin authors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The name a plugin calls (`HostContext::call`'s `method`).
    pub name: &'static str,
    /// The argument document.
    pub arguments: &'static str,
    /// The answer document.
    pub answer: &'static str,
    /// What it does.
    pub summary: &'static str,
}

/// Every service this host offers, in the order the unknown-service error names them.
pub const SERVICES: &[Service] = &[Service {
    name: services::CREATE_TASK,
    arguments: "CreateTaskArgs {identifier, action, data, options: TaskOptions}",
    answer: "CreateTaskAnswer {id, duplicate}",
    summary: "queues a follow-up task whose parent is the running task",
}];

/// Creates the tasks of `tasks.create` (the engine implements it with its normal create path:
/// validation, unique keys, everything an API create does).
pub trait TaskCreator: Send + Sync {
    /// Creates the task `args` asks for, recording `parent_id` (the running task, as the host
    /// knows it) as its parent.
    fn create_task(
        &self,
        parent_id: i64,
        args: CreateTaskArgs,
    ) -> Result<CreateTaskAnswer, CallError>;
}

/// The services of one host, with what serves them.
#[derive(Clone, Default)]
pub struct HostServices {
    tasks: Option<Arc<dyn TaskCreator>>,
}

impl HostServices {
    /// Services whose `tasks.create` is served by `tasks`.
    pub fn new(tasks: Arc<dyn TaskCreator>) -> Self {
        HostServices { tasks: Some(tasks) }
    }

    /// Serves `method` for the running task `task_id`: the answer document, or a
    /// `CallError` as JSON (the `RErr` text of the call).
    pub fn call(&self, task_id: i64, method: &str, args_json: &str) -> Result<String, String> {
        self.dispatch(task_id, method, args_json)
            .map_err(|e| e.to_json())
    }

    fn dispatch(&self, task_id: i64, method: &str, args_json: &str) -> Result<String, CallError> {
        match method {
            services::CREATE_TASK => {
                let args: CreateTaskArgs = parse(method, args_json)?;
                if !(args.data.is_object() || args.data.is_null()) {
                    return Err(CallError::new(
                        CallErrorKind::BadArguments,
                        format!("{method}: data must be a JSON object of task data"),
                    ));
                }
                let Some(tasks) = &self.tasks else {
                    return Err(CallError::new(
                        CallErrorKind::Unavailable,
                        format!("{method} is not offered in this process"),
                    ));
                };
                let answer = tasks.create_task(task_id, args)?;
                answer_json(&answer)
            }
            other => Err(unknown_service(other)),
        }
    }
}

/// The error of a service this host does not offer, naming those it does.
pub fn unknown_service(method: &str) -> CallError {
    let known: Vec<&str> = SERVICES.iter().map(|s| s.name).collect();
    CallError::new(
        CallErrorKind::UnknownService,
        format!(
            "unknown host service '{method}' (known services: {})",
            known.join(", ")
        ),
    )
}

fn parse<T: serde::de::DeserializeOwned>(method: &str, args_json: &str) -> Result<T, CallError> {
    if args_json.len() > MAX_ARGS_BYTES {
        return Err(CallError::new(
            CallErrorKind::BadArguments,
            format!(
                "{method}: the arguments are {} bytes, more than the {MAX_ARGS_BYTES} allowed",
                args_json.len()
            ),
        ));
    }
    serde_json::from_str(args_json).map_err(|e| {
        CallError::new(
            CallErrorKind::BadArguments,
            format!("{method}: bad arguments: {e}"),
        )
    })
}

fn answer_json<T: serde::Serialize>(answer: &T) -> Result<String, CallError> {
    serde_json::to_string(answer).map_err(|e| {
        CallError::new(
            CallErrorKind::Unavailable,
            format!("cannot write the answer: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// Records what it was asked and answers id 41 + calls.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(i64, CreateTaskArgs)>>);

    impl TaskCreator for Recorder {
        fn create_task(
            &self,
            parent_id: i64,
            args: CreateTaskArgs,
        ) -> Result<CreateTaskAnswer, CallError> {
            if args.identifier == "nope" {
                return Err(CallError::new(
                    CallErrorKind::Refused,
                    "unknown worker 'nope'",
                ));
            }
            let mut seen = self.0.lock();
            seen.push((parent_id, args));
            Ok(CreateTaskAnswer {
                id: 41 + seen.len() as i64,
                duplicate: false,
            })
        }
    }

    fn error(text: String) -> CallError {
        serde_json::from_str(&text).expect("errors are CallError documents")
    }

    #[test]
    fn an_unknown_service_names_the_known_ones() {
        let e = error(
            HostServices::default()
                .call(1, "files.read", "{}")
                .unwrap_err(),
        );
        assert_eq!(e.kind, CallErrorKind::UnknownService);
        assert_eq!(
            e.message,
            "unknown host service 'files.read' (known services: tasks.create)"
        );
    }

    #[test]
    fn bad_arguments_are_a_clear_error_never_a_panic() {
        let services = HostServices::new(Arc::new(Recorder::default()));
        for (args, says) in [
            ("not json", "tasks.create: bad arguments"),
            ("{}", "missing field `identifier`"),
            (
                r#"{"identifier":"w","action":"a","options":{"priority":"urgent"}}"#,
                "urgent",
            ),
            (
                r#"{"identifier":"w","action":"a","data":[1]}"#,
                "data must be a JSON object",
            ),
        ] {
            let e = error(services.call(1, "tasks.create", args).unwrap_err());
            assert_eq!(e.kind, CallErrorKind::BadArguments, "{args}");
            assert!(e.message.contains(says), "{args}: {}", e.message);
        }
        let huge = format!(
            r#"{{"identifier":"w","action":"a","data":{{"x":"{}"}}}}"#,
            "y".repeat(MAX_ARGS_BYTES)
        );
        let e = error(services.call(1, "tasks.create", &huge).unwrap_err());
        assert_eq!(e.kind, CallErrorKind::BadArguments);
        assert!(e.message.contains("more than the"), "{}", e.message);
    }

    #[test]
    fn the_parent_is_the_running_task_never_an_id_from_the_plugin() {
        let recorder = Arc::new(Recorder::default());
        let services = HostServices::new(recorder.clone());
        let answer = services
            .call(
                7,
                "tasks.create",
                r#"{"identifier":"w","action":"a","data":{"k":1},"parent_id":99,
                    "options":{"unique_key":"u","delay_ms":10}}"#,
            )
            .unwrap();
        assert_eq!(answer, r#"{"id":42,"duplicate":false}"#);
        let seen = recorder.0.lock();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, 7);
        assert_eq!(seen[0].1.identifier, "w");
        assert_eq!(seen[0].1.options.unique_key.as_deref(), Some("u"));
        assert_eq!(seen[0].1.options.delay_ms, Some(10));
    }

    #[test]
    fn a_refusal_keeps_its_kind_and_a_missing_creator_is_unavailable() {
        let services = HostServices::new(Arc::new(Recorder::default()));
        let e = error(
            services
                .call(1, "tasks.create", r#"{"identifier":"nope","action":"a"}"#)
                .unwrap_err(),
        );
        assert_eq!(e.kind, CallErrorKind::Refused);
        let e = error(
            HostServices::default()
                .call(1, "tasks.create", r#"{"identifier":"w","action":"a"}"#)
                .unwrap_err(),
        );
        assert_eq!(e.kind, CallErrorKind::Unavailable);
    }

    #[test]
    fn every_service_of_the_protocol_is_listed() {
        assert_eq!(
            SERVICES.iter().map(|s| s.name).collect::<Vec<_>>(),
            vec![services::CREATE_TASK]
        );
    }
}
