//! Running a worker in a unit test, without a host.
//!
//! [`TestHost`] stands in for the daemon: it hands the worker a [`Context`] whose progress and
//! log lines it records, whose cancel flag the test raises, and whose folders are a fresh
//! temporary directory. It goes through the same [`HostContext`] trait object the daemon lends,
//! so the worker's code runs as it will in production (panics are not caught here: a panic
//! fails the test, which is what a test wants).
//!
//! ```
//! use serde_json::{json, Value};
//! use stask_plugin_api::testing::TestHost;
//! use stask_plugin_api::{Context, Output, TaskError, Worker, WorkerInfo};
//!
//! #[derive(Default)]
//! struct Count;
//!
//! impl Worker for Count {
//!     fn info(&self) -> WorkerInfo {
//!         WorkerInfo::new("count", "Count").action("run", "Counts to n")
//!     }
//!     fn run(&self, ctx: &Context<'_>, _action: &str, data: Value) -> Result<Output, TaskError> {
//!         let n = data["n"].as_u64().unwrap_or(0);
//!         for i in 1..=n {
//!             ctx.progress_items(i, n, "counting");
//!         }
//!         Ok(Output::text(format!("counted {n}")))
//!     }
//! }
//!
//! let host = TestHost::new();
//! let output = host.run(&Count, "run", json!({"n": 3})).unwrap();
//! assert_eq!(output.result_text(), Some("counted 3"));
//! assert_eq!(host.progress().last().unwrap().processed, Some(3));
//! ```

use crate::abi::{HostContext, HostContextRef, HostContext_TO};
use crate::context::Context;
use crate::{LogLevel, Output, TaskError, Worker};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::RRef;
use abi_stable::std_types::{RResult, RStr, RString};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// One progress report as the worker made it (`None`: not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressReport {
    /// 0-100, when the worker gave a percentage.
    pub percent: Option<u32>,
    /// Items done, when the worker reported items.
    pub processed: Option<u64>,
    /// Items in total, when the worker reported items.
    pub total: Option<u64>,
    /// The progress message.
    pub message: String,
}

/// A stand-in host for unit tests of a worker; see the [module docs](self).
pub struct TestHost {
    settings: Value,
    task_id: i64,
    attempt: u32,
    max_attempts: u32,
    dir: PathBuf,
    recorded: Recorder,
}

#[derive(Default)]
struct Recorder {
    progress: Mutex<Vec<ProgressReport>>,
    logs: Mutex<Vec<(LogLevel, String)>>,
    cancelled: AtomicBool,
}

impl Default for TestHost {
    fn default() -> Self {
        TestHost::new()
    }
}

impl TestHost {
    /// A host with empty settings, task id 1, first attempt of 3, and folders under a new
    /// directory in the system's temporary folder (removed when the host is dropped).
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stask-test-host-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        TestHost {
            settings: Value::Object(Default::default()),
            task_id: 1,
            attempt: 1,
            max_attempts: 3,
            dir,
            recorded: Recorder::default(),
        }
    }

    /// The worker's settings as the host would pass them (defaults merged with overrides).
    pub fn with_settings(mut self, settings: Value) -> Self {
        self.settings = settings;
        self
    }

    /// The attempt the run is (1 = first) and the attempts allowed.
    pub fn with_attempt(mut self, attempt: u32, max_attempts: u32) -> Self {
        self.attempt = attempt;
        self.max_attempts = max_attempts;
        self
    }

    /// Raises the cancel flag: the worker's next `is_cancelled` sees it.
    pub fn cancel(&self) {
        self.recorded.cancelled.store(true, Ordering::SeqCst);
    }

    /// Runs `action` of `worker` with `data`, as the host would run one attempt.
    pub fn run<W: Worker>(
        &self,
        worker: &W,
        action: &str,
        data: Value,
    ) -> Result<Output, TaskError> {
        let output_dir = self.dir.join("output");
        for dir in [&output_dir, &self.dir.join("data")] {
            std::fs::create_dir_all(dir).map_err(|e| {
                TaskError::permanent(format!("test host cannot create {}: {e}", dir.display()))
            })?;
        }
        let host: HostContextRef<'_> =
            HostContext_TO::from_ptr(RRef::new(&self.recorded), TD_Opaque);
        let ctx = Context {
            host,
            task_id: self.task_id,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            settings: self.settings.clone(),
            output_dir,
            data_dir: self.dir.join("data"),
            storage_dir: self.dir.clone(),
        };
        worker.run(&ctx, action, data)
    }

    /// Every progress report, in order.
    pub fn progress(&self) -> Vec<ProgressReport> {
        lock(&self.recorded.progress).clone()
    }

    /// Every log line with its level, in order.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        lock(&self.recorded.logs).clone()
    }

    /// The folder the runs' `output_dir`, `data_dir` and `storage_dir` lie in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A poisoned lock only means an earlier assertion failed while it was held.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HostContext for Recorder {
    fn progress(&self, percent: i32, processed: i64, total: i64, message: RStr<'_>) {
        lock(&self.progress).push(ProgressReport {
            percent: u32::try_from(percent).ok(),
            processed: u64::try_from(processed).ok(),
            total: u64::try_from(total).ok(),
            message: message.as_str().to_owned(),
        });
    }

    fn log(&self, level: u8, line: RStr<'_>) {
        lock(&self.logs).push((LogLevel::from_u8(level), line.as_str().to_owned()));
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn call(&self, method: RStr<'_>, _args_json: RStr<'_>) -> RResult<RString, RString> {
        RResult::RErr(RString::from(format!(
            "the test host serves no host services (asked for '{method}')"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkerInfo;
    use serde_json::json;

    struct Echo;

    impl Worker for Echo {
        fn info(&self) -> WorkerInfo {
            WorkerInfo::new("echo", "Echo").action("echo", "Echoes")
        }
        fn run(&self, ctx: &Context<'_>, _: &str, data: Value) -> Result<Output, TaskError> {
            ctx.log("starting");
            ctx.warn(&format!("attempt {}", ctx.attempt()));
            ctx.progress(40, "halfway");
            ctx.check_cancelled()?;
            std::fs::write(ctx.output_dir().join("out.txt"), "x")
                .map_err(|e| TaskError::new(e.to_string()))?;
            Ok(Output::text(data["say"].as_str().unwrap_or("").to_owned()))
        }
    }

    #[test]
    fn a_run_records_progress_and_logs_and_returns_the_output() {
        let host = TestHost::new().with_attempt(2, 5);
        let out = host.run(&Echo, "echo", json!({"say": "hi"})).unwrap();
        assert_eq!(out.result_text(), Some("hi"));
        assert_eq!(
            host.progress(),
            vec![ProgressReport {
                percent: Some(40),
                processed: None,
                total: None,
                message: "halfway".into()
            }]
        );
        let logs = host.logs();
        assert_eq!(logs[0], (LogLevel::Info, "starting".to_owned()));
        assert_eq!(logs[1], (LogLevel::Warning, "attempt 2".to_owned()));
        assert!(host.dir().join("output/out.txt").exists());
    }

    #[test]
    fn a_cancel_is_seen_by_the_worker() {
        let host = TestHost::new();
        host.cancel();
        let e = host.run(&Echo, "echo", json!({})).unwrap_err();
        assert!(e.is_cancelled(), "{e:?}");
    }

    #[test]
    fn the_folder_goes_with_the_host() {
        let host = TestHost::new();
        host.run(&Echo, "echo", json!({})).unwrap();
        let dir = host.dir().to_owned();
        assert!(dir.exists());
        drop(host);
        assert!(!dir.exists());
    }
}
