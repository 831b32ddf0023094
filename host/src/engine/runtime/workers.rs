//! How the pool runs a worker: the [`WorkerRunner`] trait, and [`RegistryWorkers`], its
//! implementation over the plugin registry (loaded libraries, run in the host or in a child
//! process).
//!
//! The runtime knows workers only through this trait, so unit tests run fake in-process
//! workers against a real store without building a plugin. Invariant: a version handed out
//! by [`WorkerRunner::in_service`] stays valid for the whole run (a reload never changes the
//! code under a running task).

use super::super::progress::LiveTask;
use super::super::resources::{RunCost, RunMeter};
use crate::config::Config;
use crate::plugins::isolation;
use crate::plugins::loader::LoadedWorker;
use crate::plugins::Registry;
use crate::store::WorkerLimit;
use parking_lot::Mutex;
use stask_plugin_api::protocol::{RunOutcome, RunRequest};
use std::sync::Arc;
use std::time::Duration;

/// How long an isolated run that was cancelled (or timed out) may take to stop before its
/// process is killed.
const ISOLATION_KILL_GRACE: Duration = Duration::from_secs(5);

/// The workers this host can run.
pub trait WorkerRunner: Send + Sync {
    /// Identifiers runnable now (loaded and active), sorted.
    fn runnable(&self) -> Vec<String>;
    /// The version in service for `identifier` with its settings, if it may run now (loaded
    /// and active); `None` otherwise.
    fn in_service(&self, identifier: &str) -> Option<InService>;
    /// The limits of the workers in `runnable` that have any (see `stask_store::limits`), for
    /// the claim. None by default.
    fn limits(&self, _runnable: &[String]) -> Vec<WorkerLimit> {
        Vec::new()
    }
}

/// A worker version ready to run tasks, with the settings of its row.
pub struct InService {
    /// The version label stored with the run (`s_tasks.worker_version`).
    pub label: String,
    /// The worker's settings (JSON object).
    pub settings: serde_json::Value,
    /// The code that runs.
    pub version: Arc<dyn WorkerVersion>,
}

/// One worker version's code.
pub trait WorkerVersion: Send + Sync {
    /// Runs one request on the calling pool thread with the host hooks, and returns its
    /// outcome and cost. In-process runs are measured with `meter` (its `begin`/`end` around
    /// the call).
    fn run(
        &self,
        request: &RunRequest,
        hooks: &LiveTask,
        meter: &RunMeter,
    ) -> (RunOutcome, RunCost);
}

/// [`WorkerRunner`] over the plugin registry.
pub struct RegistryWorkers {
    registry: Arc<Registry>,
    /// The limits of the cached rows and the rows' version they were read at.
    limits: Mutex<(u64, Vec<WorkerLimit>)>,
    isolate_by_default: bool,
    isolation_memory_mb: u64,
}

impl RegistryWorkers {
    /// Runs the registry's workers with the isolation defaults of `config`.
    pub fn new(registry: Arc<Registry>, config: &Config) -> RegistryWorkers {
        RegistryWorkers {
            registry,
            limits: Mutex::new((u64::MAX, Vec::new())),
            isolate_by_default: config.isolate_by_default,
            isolation_memory_mb: config.isolation_memory_mb,
        }
    }

    /// The limits of a run in a child process, when the worker's `isolation` setting (or else
    /// the host default) says `process`; `None` runs it in the host.
    fn isolation_of(&self, settings: &serde_json::Value) -> Option<isolation::Limits> {
        let isolated = match settings.get("isolation").and_then(|v| v.as_str()) {
            Some("process") => true,
            Some("in_process") => false,
            _ => self.isolate_by_default,
        };
        let memory_mb = settings
            .get("memory_limit_mb")
            .and_then(|v| v.as_u64())
            .unwrap_or(self.isolation_memory_mb);
        isolated.then_some(isolation::Limits {
            memory_bytes: (memory_mb > 0).then_some(memory_mb << 20),
            kill_grace: ISOLATION_KILL_GRACE,
        })
    }
}

impl WorkerRunner for RegistryWorkers {
    fn runnable(&self) -> Vec<String> {
        self.registry.runnable()
    }

    fn limits(&self, runnable: &[String]) -> Vec<WorkerLimit> {
        let mut cached = self.limits.lock();
        if cached.0 != self.registry.rows_version() {
            *cached = self.registry.limits();
        }
        cached
            .1
            .iter()
            .filter(|l| runnable.contains(&l.identifier))
            .cloned()
            .collect()
    }

    fn in_service(&self, identifier: &str) -> Option<InService> {
        let worker = self.registry.get(identifier)?;
        let row = self.registry.row(identifier).filter(|row| row.active)?;
        let isolation = self.isolation_of(&row.settings);
        Some(InService {
            label: worker.version_label(),
            settings: row.settings,
            version: Arc::new(PluginVersion { worker, isolation }),
        })
    }
}

/// A loaded library, run in the host or (with limits) in a child process.
struct PluginVersion {
    worker: Arc<LoadedWorker>,
    isolation: Option<isolation::Limits>,
}

impl WorkerVersion for PluginVersion {
    fn run(
        &self,
        request: &RunRequest,
        hooks: &LiveTask,
        meter: &RunMeter,
    ) -> (RunOutcome, RunCost) {
        match self.isolation {
            Some(limits) => run_isolated(&self.worker, request, hooks, limits),
            None => {
                let probe = meter.begin();
                let outcome = self.worker.run(request, hooks);
                (outcome, meter.end(probe))
            }
        }
    }
}

/// Runs a task in a child process; its cost is the child's own (exact, see `isolation`).
fn run_isolated(
    worker: &LoadedWorker,
    request: &RunRequest,
    hooks: &LiveTask,
    limits: isolation::Limits,
) -> (RunOutcome, RunCost) {
    // Looked up once: the binary does not move while it runs.
    static EXE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let exe = EXE.get_or_init(|| std::env::current_exe().ok());
    let (Some(exe), Some(library)) = (exe.as_deref(), worker.isolated_copy.as_deref()) else {
        let outcome = RunOutcome::Failed {
            message: "cannot run the task in a child process: the stask binary or the \
                      library copy is missing"
                .into(),
            retryable: true,
        };
        return (outcome, RunCost::default());
    };
    let run = isolation::run(exe, library, request, hooks, limits);
    let cost = RunCost {
        cpu_ms: run.cpu_ms,
        memory_bytes: run.max_rss_bytes,
    };
    (run.outcome, cost)
}
