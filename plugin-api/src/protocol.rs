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
