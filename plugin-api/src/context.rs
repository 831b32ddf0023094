//! What a running task can ask of the host.

use crate::abi::HostContextRef;
use crate::protocol::{services, CallError, CreateTaskAnswer, CreateTaskArgs, TaskOptions};
use crate::{LogLevel, TaskError};
use abi_stable::std_types::RStr;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The running task's view of the host: identity, settings, progress, log, cancellation and
/// the output folder. Cheap to use from hot loops: progress is coalesced by the host.
pub struct Context<'a> {
    pub(crate) host: HostContextRef<'a>,
    pub(crate) task_id: i64,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) settings: Value,
    pub(crate) output_dir: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) storage_dir: PathBuf,
}

impl Context<'_> {
    /// The task id (`s_tasks.id`).
    pub fn task_id(&self) -> i64 {
        self.task_id
    }

    /// 1 on the first run; higher on retries.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Attempts allowed in total.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The worker's settings (defaults merged with the operator's overrides).
    pub fn settings(&self) -> &Value {
        &self.settings
    }

    /// One setting, deserialized; `None` when absent or of another type.
    pub fn setting<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.settings
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Reports progress as a percentage (clamped to 0-100) with a message.
    pub fn progress(&self, percent: u32, message: &str) {
        self.host
            .progress(percent.min(100) as i32, -1, -1, RStr::from_str(message));
    }

    /// Reports progress as items processed out of a total; the host derives percent and ETA.
    pub fn progress_items(&self, processed: u64, total: u64, message: &str) {
        let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
        self.host
            .progress(-1, clamp(processed), clamp(total), RStr::from_str(message));
    }

    /// Appends an informational line to the task log.
    pub fn log(&self, line: &str) {
        self.host.log(LogLevel::Info.as_u8(), RStr::from_str(line));
    }

    /// Appends a warning to the task log.
    pub fn warn(&self, line: &str) {
        self.host
            .log(LogLevel::Warning.as_u8(), RStr::from_str(line));
    }

    /// Appends an error line to the task log.
    pub fn error(&self, line: &str) {
        self.host.log(LogLevel::Error.as_u8(), RStr::from_str(line));
    }

    /// Whether a user (or the worker's timeout) asked this task to stop.
    pub fn is_cancelled(&self) -> bool {
        self.host.is_cancelled()
    }

    /// `Err(TaskError::cancelled())` once cancellation was requested: `ctx.check_cancelled()?`.
    pub fn check_cancelled(&self) -> Result<(), TaskError> {
        if self.is_cancelled() {
            Err(TaskError::cancelled())
        } else {
            Ok(())
        }
    }

    /// The folder for this task's result files (created on first use; the host only offers
    /// files from inside it for download).
    pub fn output_dir(&self) -> &Path {
        let _ = std::fs::create_dir_all(&self.output_dir);
        &self.output_dir
    }

    /// The worker's own persistent folder (`storage/workers/{identifier}/`, created on first
    /// use), kept across tasks.
    pub fn data_dir(&self) -> &Path {
        let _ = std::fs::create_dir_all(&self.data_dir);
        &self.data_dir
    }

    /// The host's `storage/` folder, for maintenance work.
    pub fn storage_dir(&self) -> &Path {
        &self.storage_dir
    }

    /// Calls a host service by name with JSON arguments (the services and their documents
    /// are listed in [`crate::protocol`]'s docs). A failure keeps the host's kind: a refused
    /// request or bad arguments are permanent errors, an unavailable service retryable.
    pub fn call(&self, method: &str, args: &Value) -> Result<Value, TaskError> {
        let args = args.to_string();
        match self
            .host
            .call(RStr::from_str(method), RStr::from_str(&args))
            .into_result()
        {
            Ok(text) => serde_json::from_str(&text).map_err(TaskError::from),
            Err(text) => Err(call_error(&CallError::from_text(text.as_str()))),
        }
    }

    /// Queues a follow-up task of `identifier`'s `action` with `data` (a JSON object) and
    /// returns its id (with a `unique_key` another task holds: the holder's id, and nothing
    /// is created). The new task records this task as its parent.
    ///
    /// The follow-up is committed when this returns: it exists even if this run later fails
    /// or is retried. A retried run queues it again unless `options` carries a
    /// `unique_key` (see [`TaskOptions::unique_key`]). An unknown worker or action, or an
    /// option out of range, is a permanent error; a host that cannot reach its storage
    /// answers a retryable one.
    pub fn create_task(
        &self,
        identifier: &str,
        action: &str,
        data: Value,
        options: &TaskOptions,
    ) -> Result<i64, TaskError> {
        let args = CreateTaskArgs {
            identifier: identifier.to_owned(),
            action: action.to_owned(),
            data,
            options: options.clone(),
        };
        let answer = self.call(services::CREATE_TASK, &serde_json::to_value(&args)?)?;
        let answer: CreateTaskAnswer = serde_json::from_value(answer)?;
        Ok(answer.id)
    }
}

/// A service's failure as the run's error: permanent unless another attempt may succeed.
fn call_error(e: &CallError) -> TaskError {
    if e.is_retryable() {
        TaskError::new(e.message.clone())
    } else {
        TaskError::permanent(e.message.clone())
    }
}
