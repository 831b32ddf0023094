//! The plain-Rust side of a worker: what it declares, what it returns.

use crate::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;

/// A background worker. One value is created per loaded library (with `Default`) and shared by
/// every task of that worker, possibly from several threads at once.
pub trait Worker: Send + Sync + 'static {
    /// Identifier, title, actions and default settings. Called once per load.
    fn info(&self) -> WorkerInfo;

    /// Runs `action` with the task `data`. Report progress and check cancellation through `ctx`.
    /// A panic here fails the task with the panic message; the host stays up.
    fn run(&self, ctx: &Context<'_>, action: &str, data: Value) -> Result<Output, TaskError>;
}

/// One action a worker offers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActionInfo {
    /// Name used in `POST /stask/workers/{identifier}/tasks/{action}`.
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// Optional JSON schema of the task data, shown in the UI's run form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

/// What a worker declares about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerInfo {
    /// Unique identifier (`s_workers.identifier`): lowercase letters, digits, `_` and `-`.
    pub identifier: String,
    /// Module or package the worker belongs to (`s_workers.scope`).
    pub scope: String,
    /// Human title.
    pub title: String,
    /// Longer description.
    pub description: String,
    /// The worker's own version string (shown with the library hash on reloads).
    pub version: String,
    /// The actions it accepts.
    pub actions: Vec<ActionInfo>,
    /// Default settings; operators may override them per installation.
    pub settings: Value,
}

impl WorkerInfo {
    /// Starts a declaration with an identifier and a title; scope defaults to `"default"`.
    pub fn new(identifier: &str, title: &str) -> Self {
        WorkerInfo {
            identifier: identifier.to_owned(),
            scope: "default".to_owned(),
            title: title.to_owned(),
            description: String::new(),
            version: "0.0.0".to_owned(),
            actions: Vec::new(),
            settings: Value::Object(Map::new()),
        }
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = scope.to_owned();
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_owned();
        self
    }

    /// Sets the worker's version (use `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// Adds an action.
    pub fn action(mut self, name: &str, description: &str) -> Self {
        self.actions.push(ActionInfo {
            name: name.to_owned(),
            description: description.to_owned(),
            schema: None,
        });
        self
    }

    /// Adds an action with a JSON schema of its data.
    pub fn action_with_schema(mut self, name: &str, description: &str, schema: Value) -> Self {
        self.actions.push(ActionInfo {
            name: name.to_owned(),
            description: description.to_owned(),
            schema: Some(schema),
        });
        self
    }

    /// Adds a default setting.
    pub fn setting(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.settings {
            map.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// The successful end of a task: a result text, a result file, or both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub(crate) text: Option<String>,
    pub(crate) file: Option<PathBuf>,
}

impl Output {
    /// No result beyond "completed".
    pub fn none() -> Self {
        Output::default()
    }

    /// A result text.
    pub fn text(text: impl Into<String>) -> Self {
        Output {
            text: Some(text.into()),
            file: None,
        }
    }

    /// A JSON result, stored as its text.
    pub fn json(value: &Value) -> Self {
        Output::text(value.to_string())
    }

    /// A file written into [`Context::output_dir`], offered for download.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Output {
            text: None,
            file: Some(path.into()),
        }
    }

    /// Adds a result text to an output.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// The result text, if any (for tests of a worker, see [`crate::testing`]).
    pub fn result_text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The result file, if any.
    pub fn result_file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }
}

/// Why a task did not complete.
///
/// Any `std::error::Error` converts into a retryable `TaskError`, so `?` works on I/O, CSV or
/// JSON errors. Use [`TaskError::permanent`] for input that no retry can fix.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskError {
    pub(crate) message: String,
    pub(crate) kind: ErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ErrorKind {
    Retryable,
    Permanent,
    Cancelled,
}

impl TaskError {
    /// A failure that another attempt may fix (the host retries up to `max_attempts`).
    pub fn new(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            kind: ErrorKind::Retryable,
        }
    }

    /// A failure no retry can fix, such as invalid task data: the task fails at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            kind: ErrorKind::Permanent,
        }
    }

    /// The task stopped because [`Context::is_cancelled`] said so.
    pub fn cancelled() -> Self {
        TaskError {
            message: "cancelled".to_owned(),
            kind: ErrorKind::Cancelled,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Made by [`TaskError::permanent`]: the host will not retry it.
    pub fn is_permanent(&self) -> bool {
        self.kind == ErrorKind::Permanent
    }

    /// Made by [`TaskError::cancelled`] (or `Context::check_cancelled`).
    pub fn is_cancelled(&self) -> bool {
        self.kind == ErrorKind::Cancelled
    }

    /// Whether the host may retry the task after this error (neither permanent nor a cancel).
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for TaskError {
    fn from(error: E) -> Self {
        TaskError::new(error.to_string())
    }
}
