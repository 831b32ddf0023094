//! The JSON documents exchanged through the ABI. Adding optional fields here is compatible in
//! both directions; removing or retyping one is not.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a plugin declares about itself (answer of `WorkerModule::manifest`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`crate::PROTOCOL_VERSION`] the plugin was built with.
    pub protocol: u32,
    /// Version of `stask-plugin-api` the plugin was built with.
    pub api_version: String,
    /// Whether the plugin was compiled with `panic = "unwind"`. The host refuses `false`:
    /// such a plugin would abort the whole host on its first panic.
    pub panic_unwind: bool,
    /// Rust type name of the worker (shown as the seed's `class`).
    pub type_name: String,
    /// The worker's own description.
    #[serde(flatten)]
    pub info: crate::WorkerInfo,
}

/// What the host asks a plugin to do (argument of `WorkerModule::run`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    /// Task id (`s_tasks.id`).
    pub task_id: i64,
    /// 1 for the first run, incremented by every retry or recovery.
    pub attempt: u32,
    /// Attempts allowed in total.
    pub max_attempts: u32,
    /// The action to run.
    pub action: String,
    /// The task data (`s_tasks.meta`).
    pub data: Value,
    /// The worker's current settings (`s_workers.settings`).
    pub settings: Value,
    /// Folder where the task may write result files (created by the plugin side on first use).
    pub output_dir: String,
    /// The worker's own persistent folder (`storage/workers/{identifier}/`), created by the host.
    #[serde(default)]
    pub data_dir: String,
    /// The host's `storage/` folder (for maintenance workers such as `system`).
    #[serde(default)]
    pub storage_dir: String,
}

/// How a run ended (answer of `WorkerModule::run`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RunOutcome {
    /// The task finished its work.
    Completed {
        /// Result text (shown to users, stored in `s_tasks.result`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
        /// A result file inside the output folder, offered for download.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
    /// The task failed.
    Failed {
        /// What went wrong.
        message: String,
        /// Whether another attempt could succeed (`false` for bad input).
        retryable: bool,
    },
    /// The task stopped because cancellation was requested.
    Cancelled {
        /// Optional note on how far it got.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Worker code panicked; the message includes the panic location.
    Panicked {
        /// Panic message and location.
        message: String,
    },
}

/// The host services a plugin reaches through [`crate::abi::HostContext::call`] (in Rust:
/// [`crate::Context::call`], or the typed helpers such as [`crate::Context::create_task`]).
///
/// Each service takes one JSON document as its arguments and answers one JSON document; a
/// failure answers `RErr` with a [`CallError`] as JSON. New services are added within an
/// interface line (a host that lacks one answers [`CallErrorKind::UnknownService`], naming
/// the ones it has), so a plugin that uses a newer service still loads on an older host.
///
/// | service | arguments | answer | since |
/// |---|---|---|---|
/// | [`services::CREATE_TASK`] (`tasks.create`) | [`CreateTaskArgs`] | [`CreateTaskAnswer`] | 0.1 |
///
/// `tasks.create` queues a follow-up task through the host's normal create path (the same
/// checks as an API create: the worker and action must exist, the options must be in range,
/// a held `unique_key` creates nothing and answers the holder). The new task records the
/// running task as its `parent_id`; the host takes that id from the run itself, never from the
/// arguments. The follow-up is committed when the call returns: if the parent's run later
/// fails or is retried, the follow-up still exists, and a retried run that creates it again
/// queues a second one, unless both carry the same `unique_key` (held while the first is
/// pending or running, or for `unique_for` seconds whatever its status).
pub mod services {
    /// Queues a follow-up task: [`super::CreateTaskArgs`] → [`super::CreateTaskAnswer`].
    pub const CREATE_TASK: &str = "tasks.create";
}

/// Arguments of [`services::CREATE_TASK`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateTaskArgs {
    /// Worker identifier of the new task.
    pub identifier: String,
    /// Action of that worker.
    pub action: String,
    /// Task data (a JSON object; absent or `null` = `{}`).
    #[serde(default)]
    pub data: Value,
    /// How it is queued.
    #[serde(default)]
    pub options: TaskOptions,
}

/// Answer of [`services::CREATE_TASK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTaskAnswer {
    /// The new task's id; with `duplicate`, the id of the task that holds the key.
    pub id: i64,
    /// The `unique_key` was held by another task: nothing was created.
    #[serde(default)]
    pub duplicate: bool,
}

/// A task's claim priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskPriority {
    /// Claimed after every normal and high task that is due.
    Low,
    /// The default.
    Normal,
    /// Claimed before every normal and low task that is due.
    High,
}

/// How a follow-up task is queued (the options of an API create). Every field is optional;
/// `TaskOptions::default()` queues it at once with normal priority and the host's default
/// attempts. As JSON: `{"priority":"high","start_at":1767225600000,"delay_ms":5000,
/// "max_attempts":3,"unique_key":"k","unique_for":3600}`, absent keys meaning "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskOptions {
    /// Claim priority (default normal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<TaskPriority>,
    /// Scheduled start, UNIX milliseconds. Not together with `delay_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<i64>,
    /// Scheduled start as a delay from the create, milliseconds. Not together with
    /// `start_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Attempts allowed (1-100; default the host's, 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Creates nothing while another task holds this key (1 to 191 characters); the answer
    /// then names the holder. The way to make a retried run not queue its follow-up twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// With `unique_key`: hold the key this many seconds from creation whatever the task's
    /// status (1 s to a year); without it the key is held while the task is pending or
    /// running.
    #[serde(rename = "unique_for", skip_serializing_if = "Option::is_none")]
    pub unique_for_secs: Option<i64>,
}

impl TaskOptions {
    /// Sets the priority.
    pub fn priority(mut self, priority: TaskPriority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Starts the task `delay` after the create.
    pub fn delay(mut self, delay: std::time::Duration) -> Self {
        self.delay_ms = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Starts the task at `unix_ms` (UNIX milliseconds).
    pub fn start_at(mut self, unix_ms: i64) -> Self {
        self.start_at = Some(unix_ms);
        self
    }

    /// Sets the attempts allowed.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Sets a unique key (see [`TaskOptions::unique_key`]).
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Holds the unique key `secs` seconds from creation, whatever the task's status.
    pub fn unique_for_secs(mut self, secs: i64) -> Self {
        self.unique_for_secs = Some(secs);
        self
    }
}

/// Why a host service call failed: the `RErr` text of [`crate::abi::HostContext::call`], as
/// JSON (`{"kind":"refused","message":"unknown worker 'x' (known workers: a, b)"}`). A host
/// older than this document answers plain text instead; [`crate::Context::call`] reads both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallError {
    /// What kind of failure.
    pub kind: CallErrorKind,
    /// For people: what was wrong, naming the offending value.
    pub message: String,
}

/// The kinds of [`CallError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallErrorKind {
    /// The host offers no service of that name (the message names the ones it has).
    UnknownService,
    /// The arguments are not the service's JSON document.
    BadArguments,
    /// The host understood and refused the request (e.g. an unknown worker or action, an
    /// option out of range): the same request will be refused again.
    Refused,
    /// The host could not serve it now (storage busy or failing, the service not offered in
    /// this process): another attempt may succeed.
    Unavailable,
}

impl CallError {
    /// A failure of `kind` with `message`.
    pub fn new(kind: CallErrorKind, message: impl Into<String>) -> Self {
        CallError {
            kind,
            message: message.into(),
        }
    }

    /// As the `RErr` text of a call.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.message.clone())
    }

    /// Reads the `RErr` text of a call: a [`CallError`] document, or (from an older host) a
    /// plain message, taken as [`CallErrorKind::Unavailable`].
    pub fn from_text(text: &str) -> Self {
        serde_json::from_str(text)
            .unwrap_or_else(|_| CallError::new(CallErrorKind::Unavailable, text))
    }

    /// Whether another attempt of the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind == CallErrorKind::Unavailable
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_options_are_an_empty_object_and_read_back() {
        let options = TaskOptions::default();
        assert_eq!(serde_json::to_value(&options).unwrap(), json!({}));
        assert_eq!(
            serde_json::from_value::<TaskOptions>(json!({})).unwrap(),
            options
        );
        // Absent options in the arguments are the defaults too.
        let args: CreateTaskArgs =
            serde_json::from_value(json!({"identifier": "w", "action": "a"})).unwrap();
        assert_eq!(args.options, TaskOptions::default());
        assert_eq!(args.data, Value::Null);
    }

    #[test]
    fn options_use_the_documented_keys() {
        let options = TaskOptions::default()
            .priority(TaskPriority::High)
            .delay(std::time::Duration::from_secs(5))
            .max_attempts(2)
            .unique_key("import-7-notify")
            .unique_for_secs(3600);
        let value = serde_json::to_value(&options).unwrap();
        assert_eq!(
            value,
            json!({"priority": "high", "delay_ms": 5000, "max_attempts": 2,
                   "unique_key": "import-7-notify", "unique_for": 3600})
        );
        assert_eq!(
            serde_json::from_value::<TaskOptions>(value).unwrap(),
            options
        );
        let at = TaskOptions::default().start_at(1_767_225_600_000);
        assert_eq!(
            serde_json::to_value(&at).unwrap(),
            json!({"start_at": 1_767_225_600_000_i64})
        );
    }

    #[test]
    fn wrongly_typed_options_are_refused_not_defaulted() {
        for bad in [
            json!({"priority": "urgent"}),
            json!({"max_attempts": -1}),
            json!({"delay_ms": "soon"}),
            json!({"unique_key": 5}),
        ] {
            assert!(
                serde_json::from_value::<TaskOptions>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn call_errors_read_json_and_plain_text() {
        let e = CallError::new(CallErrorKind::Refused, "unknown worker 'x'");
        let text = e.to_json();
        assert_eq!(text, r#"{"kind":"refused","message":"unknown worker 'x'"}"#);
        assert_eq!(CallError::from_text(&text), e);
        assert!(!e.is_retryable());
        let old = CallError::from_text("unknown host service 'x'");
        assert_eq!(old.kind, CallErrorKind::Unavailable);
        assert_eq!(old.message, "unknown host service 'x'");
        assert!(old.is_retryable());
    }
}
