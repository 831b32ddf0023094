//! The task engine: validates and creates tasks, runs them on the bounded pool, and applies
//! the state machine's decisions through the store.
//!
//! - [`crate::task_state`] (in the storage crate): the only place that decides a status;
//! - [`progress`]: live progress, ETA, logs, cancel flags, snapshot files;
//! - [`runtime`]: the threads (dispatcher, pool, finisher, ticker) and their private state
//!   ([`Engine`] keeps it in one field, apart from the public service fields).

pub mod analytics;
pub mod audit;
mod batches;
mod dependencies;
mod follow_up;
mod hosts;
mod inserts;
pub mod monitor;
pub mod progress;
mod queue;
mod relay;
pub mod resources;
pub mod runtime;
pub mod schedules;
mod service;
mod unflushed;
mod workers;

pub use batches::check_size as check_batch_size;
pub use workers::{validate_settings, waiting_in};

use crate::clock::now_ms;
use crate::config::Config;
use crate::events::{Event, EventBus};
use crate::model::{NewTask, Task, WorkerRow, WorkerState};
use crate::plugins::Registry;
use crate::store::{CancelResult, Inserted, RetryResult, Store, StoreError, WorkerFilter};
use crate::task_state::Backoff;
use progress::ProgressHub;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why an engine operation was refused. Each kind maps to one HTTP status and CLI exit code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such task, worker or action (the message lists the valid choices).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (e.g. worker orphaned, task running).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A new task's `depends_on` names tasks that do not exist (answered 422 with the ids).
    #[error("{message}")]
    UnknownParents {
        /// What is wrong, naming the ids.
        message: String,
        /// The ids that name no task.
        ids: Vec<i64>,
    },
    /// One task of a batch is refused (answered 422 naming its index); the batch created
    /// nothing.
    #[error("tasks[{index}]: {error}")]
    BatchTask {
        /// The task's position in the batch, from 0.
        index: usize,
        /// Why it was refused.
        #[source]
        error: Box<EngineError>,
    },
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many follow-up ids a task's view lists ([`Engine::children`]); the rest are counted.
pub const MAX_LISTED_CHILDREN: i64 = 50;

/// A task's follow-ups, as its view shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Children {
    /// Follow-ups in total.
    pub total: i64,
    /// The first [`MAX_LISTED_CHILDREN`] ids, oldest first.
    pub ids: Vec<i64>,
}

/// Result of an engine operation.
pub type EngineResult<T> = Result<T, EngineError>;

/// The engine shared by the runtime threads, the HTTP API and the CLI.
pub struct Engine {
    /// Configuration.
    pub config: Config,
    /// Storage driver.
    pub store: Arc<dyn Store>,
    /// Loaded workers.
    pub registry: Arc<Registry>,
    /// Live events.
    pub events: EventBus,
    /// Running tasks of this host.
    pub hub: Arc<ProgressHub>,
    /// This host instance's lease owner name.
    pub owner: String,
    backoff: Backoff,
    /// Group-commit inserter for the API, started on first use.
    inserter: std::sync::OnceLock<inserts::Inserter>,
    /// How the pool runs workers (the registry's libraries, or fakes in tests).
    workers: Arc<dyn runtime::WorkerRunner>,
    /// What the runtime's threads share (wake-ups, in-flight count, ready queue, ...).
    runtime_state: runtime::RuntimeState,
    /// Prometheus metrics of this host.
    pub metrics: crate::metrics::Metrics,
    /// Re-arms the schedules' firing thread when a schedule changes here.
    schedule_wake: schedules::Wake,
    /// The host services running tasks call (`tasks.create` served by this engine).
    services: crate::plugins::HostServices,
    /// The audit log's writer, started by the first entry.
    audit: std::sync::OnceLock<audit::AuditLog>,
}

impl Engine {
    /// An engine over `store`, with a registry for the configured plugins folder whose
    /// workers the pool runs.
    pub fn new(config: Config, store: Arc<dyn Store>, events: EventBus) -> Arc<Engine> {
        Self::build(config, store, events, |registry, config| {
            Arc::new(runtime::RegistryWorkers::new(registry.clone(), config))
        })
    }

    /// An engine whose pool runs `workers` instead of the registry's libraries (the registry
    /// is still made, for the service calls that manage plugins).
    pub fn with_workers(
        config: Config,
        store: Arc<dyn Store>,
        events: EventBus,
        workers: Arc<dyn runtime::WorkerRunner>,
    ) -> Arc<Engine> {
        Self::build(config, store, events, |_, _| workers)
    }

    fn build(
        config: Config,
        store: Arc<dyn Store>,
        events: EventBus,
        workers: impl FnOnce(&Arc<Registry>, &Config) -> Arc<dyn runtime::WorkerRunner>,
    ) -> Arc<Engine> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".into());
        let owner = format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let registry = Arc::new(Registry::new(
            owner.clone(),
            config.plugins_dir.clone(),
            config.loaded_copies_dir(),
            config.max_plugin_bytes,
            store.clone(),
            {
                let events = events.clone();
                Arc::new(move |change| events.publish(Event::from(change)))
            },
            config.activate_new_workers,
        ));
        let workers = workers(&registry, &config);
        Arc::new_cyclic(|engine| Engine {
            services: crate::plugins::HostServices::new(Arc::new(follow_up::FollowUps(
                engine.clone(),
            ))),
            backoff: Backoff {
                base_ms: config.retry_base_ms,
                max_ms: config.retry_max_ms,
            },
            owner,
            config,
            store,
            registry,
            events,
            hub: Arc::new(ProgressHub::default()),
            inserter: std::sync::OnceLock::new(),
            workers,
            runtime_state: runtime::RuntimeState::default(),
            metrics: crate::metrics::Metrics::new(),
            schedule_wake: schedules::Wake::default(),
            audit: std::sync::OnceLock::new(),
        })
    }

    /// Queues an audit entry; the writer thread stores it with the others queued meanwhile.
    pub fn record_audit(&self, entry: crate::store::AuditEntry) {
        self.audit
            .get_or_init(|| audit::AuditLog::start(self.store.clone()))
            .record(entry);
    }

    /// Stores every queued audit entry and stops the writer (at a clean stop, after the
    /// last request was answered).
    pub fn close_audit(&self) {
        if let Some(log) = self.audit.get() {
            log.close();
        }
    }

    /// A page of the audit log, newest first, with the total matching `filter`.
    pub fn audit_entries(
        &self,
        filter: &crate::store::AuditFilter,
    ) -> EngineResult<(Vec<crate::store::AuditRow>, i64)> {
        Ok(self.store.audit_entries(filter)?)
    }

    /// Deletes audit entries older than `STASK_AUDIT_KEEP_DAYS` (none when it is 0).
    pub fn clean_audit(&self) -> EngineResult<u64> {
        let days = self.config.audit_keep_days;
        if days == 0 {
            return Ok(0);
        }
        let cutoff = now_ms() - i64::from(days) * 86_400_000;
        Ok(self.store.delete_audit_before(cutoff)?)
    }

    /// The worker of task `id`, if it exists (a worker-restricted token's check).
    pub fn task_worker(&self, id: i64) -> EngineResult<Option<String>> {
        Ok(self.store.task(id)?.map(|t| t.identifier))
    }

    /// The Prometheus exposition of this host, with the queue read from the store now.
    pub fn metrics_text(&self) -> EngineResult<String> {
        let s = self.store.stats()?;
        let cache = self.registry.cache_stats();
        Ok(self.metrics.render(&crate::metrics::ScrapeState {
            queue: vec![
                ("pending", s.pending),
                ("preparing", s.preparing),
                ("running", s.running),
                ("completed", s.completed),
                ("failed", s.failed),
                ("cancelled", s.cancelled),
            ],
            running: self.hub.len() as i64,
            pool_size: self.config.workers as i64,
            pool_busy: self.runtime_state.meter.running() as i64,
            plugin_loads: self.registry.loads(),
            plugin_reloads: self.registry.reloads(),
            plugin_load_errors: self.registry.refusals(),
            workers_loaded: self.registry.loaded_count() as i64,
            cache_hits: cache.hits,
            cache_misses: cache.misses,
        }))
    }

    /// Wakes the dispatcher (after an insert, a finished task, a worker change).
    pub fn wake(&self) {
        self.runtime_state.wake();
    }

    /// Checks a new task against the registered workers; returns the worker row.
    pub fn validate(&self, task: &NewTask) -> EngineResult<WorkerRow> {
        let Some(worker) = self.store.worker(&task.identifier)? else {
            let known: Vec<String> = self
                .store
                .workers(&WorkerFilter::default())?
                .into_iter()
                .map(|w| w.identifier)
                .collect();
            return Err(EngineError::NotFound(format!(
                "unknown worker '{}' (known workers: {})",
                task.identifier,
                list_or_none(&known)
            )));
        };
        check_task(&worker, task)?;
        Ok(worker)
    }

    /// [`Engine::validate`] from the registry's cached row when the worker is loaded here (no
    /// database read); `None` when the cache cannot decide (not loaded: the full check reads
    /// the database for the exact reason).
    pub fn validate_cached(&self, task: &NewTask) -> Option<EngineResult<()>> {
        self.registry.get(&task.identifier)?;
        let worker = self.registry.row(&task.identifier)?;
        Some(check_task(&worker, task))
    }

    /// Validates and stores a task, and wakes the dispatcher; a task whose `unique_key` is
    /// held creates nothing and answers the holder (`duplicate`).
    pub fn create_task(&self, task: &NewTask) -> EngineResult<Inserted> {
        self.validate(task)?;
        self.check_parents(task)?;
        let inserted = self
            .store
            .insert_tasks(std::slice::from_ref(task), now_ms())?
            .pop()
            .ok_or_else(|| crate::store::StoreError::internal("the insert returned no id"))?;
        if !inserted.duplicate {
            self.created(inserted.id, task);
        }
        Ok(inserted)
    }

    /// After an insert: announce it, and wake the dispatcher if the task may be due before
    /// the dispatcher would look again anyway.
    fn created(&self, id: i64, task: &NewTask) {
        self.events.publish(Event::TaskCreated {
            id,
            identifier: task.identifier.clone(),
            action: task.action.clone(),
        });
        let due = task.start_at.unwrap_or(i64::MIN);
        if due < self.runtime_state.dispatcher_deadline() {
            self.wake();
        }
    }

    /// Cancels a pending task at once, or asks a running one to stop.
    pub fn cancel(&self, id: i64) -> EngineResult<Task> {
        match self.store.cancel(id, now_ms())? {
            CancelResult::Cancelled(task) => {
                self.publish_finished(&task);
                self.pass_on_ends(&[id]);
                Ok(task)
            }
            CancelResult::Requested(task) => {
                // Claimed here but not started yet: the pool checks the early cancels at
                // start. A task leased by another process hears of it by that process's
                // heartbeat, so it is not kept here (nothing here would ever take it out).
                if !self.hub.request_cancel(id)
                    && task.lease_owner.as_deref() == Some(self.owner.as_str())
                {
                    self.runtime_state.early_cancels.lock().insert(id);
                }
                Ok(task)
            }
            CancelResult::AlreadyFinished(task) => Err(EngineError::Conflict(format!(
                "task {id} already {}",
                task.status
            ))),
            CancelResult::NotFound => Err(not_found(id)),
        }
    }

    /// Re-queues a failed or cancelled task with fresh attempts.
    pub fn retry(&self, id: i64) -> EngineResult<Task> {
        match self.store.retry(id, now_ms())? {
            RetryResult::Queued(task) => {
                self.wake();
                Ok(task)
            }
            RetryResult::NotRetryable(task) => Err(EngineError::Conflict(format!(
                "task {id} is {}; only failed or cancelled tasks can be retried",
                task.status
            ))),
            RetryResult::NotFound => Err(not_found(id)),
        }
    }

    /// Deletes a finished task with its snapshot and result files.
    pub fn delete(&self, id: i64) -> EngineResult<Task> {
        let task = self.store.delete_task(id).map_err(|e| match e {
            StoreError::Conflict { message, .. } => EngineError::Conflict(message),
            other => EngineError::Store(other),
        })?;
        let task = task.ok_or_else(|| not_found(id))?;
        self.remove_task_files(id);
        Ok(task)
    }

    /// Deletes tasks finished more than `days` days ago, with their files; returns how many.
    pub fn clean_old_tasks(&self, days: u32) -> EngineResult<usize> {
        let cutoff = now_ms() - i64::from(days) * 86_400_000;
        let ids = self.store.delete_finished_before(cutoff)?;
        for id in &ids {
            self.remove_task_files(*id);
        }
        Ok(ids.len())
    }

    fn remove_task_files(&self, id: i64) {
        let _ = std::fs::remove_file(self.config.snapshot_dir().join(format!("{id}.json")));
        let _ = std::fs::remove_dir_all(self.config.results_dir().join(id.to_string()));
    }

    /// A task, with live progress from memory when it runs on this host.
    pub fn task(&self, id: i64) -> EngineResult<Task> {
        let mut task = self.store.task(id)?.ok_or_else(|| not_found(id))?;
        if let Some(live) = self.hub.get(id) {
            let view = live.view();
            task.progress = view.progress;
            task.processed = view.processed;
            task.total = view.total;
            task.eta_seconds = view.eta_seconds;
            if !task.cancel_requested {
                task.message = view.message;
            }
        }
        Ok(task)
    }

    /// The result file of a completed task, resolved inside the results folder only.
    pub fn result_file(&self, task: &Task) -> EngineResult<PathBuf> {
        let Some(relative) = task.result_file.as_deref() else {
            return Err(EngineError::NotFound(format!(
                "task {} has no result file",
                task.id
            )));
        };
        let root = self.config.results_dir();
        resolve_inside(&root, relative).ok_or_else(|| {
            EngineError::NotFound(format!(
                "the result file of task {} is no longer available",
                task.id
            ))
        })
    }

    fn publish_finished(&self, task: &Task) {
        self.events.publish(Event::TaskFinished {
            id: task.id,
            status: task.status.name().into(),
            message: task.message.clone(),
        });
    }

    /// The backoff policy.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }
}

/// The checks of a new task against its worker's row.
pub(crate) fn check_task(worker: &WorkerRow, task: &NewTask) -> EngineResult<()> {
    if !worker.has_action(&task.action) {
        return Err(EngineError::NotFound(format!(
            "unknown action '{}' for worker '{}' (valid actions: {})",
            task.action,
            task.identifier,
            list_or_none(&worker.action_names())
        )));
    }
    match worker.state {
        WorkerState::Loaded => {}
        WorkerState::Orphaned => {
            return Err(EngineError::Conflict(format!(
                "worker '{}' is orphaned: its library was removed from plugins.d/",
                worker.identifier
            )))
        }
        WorkerState::Error => {
            return Err(EngineError::Conflict(format!(
                "worker '{}' failed to load: {}",
                worker.identifier,
                worker.load_error.as_deref().unwrap_or("unknown error")
            )))
        }
    }
    if !worker.active {
        return Err(EngineError::Conflict(format!(
            "worker '{}' is inactive; activate it first",
            worker.identifier
        )));
    }
    if !task.data.is_object() {
        return Err(EngineError::Invalid(
            "task data must be a JSON object".into(),
        ));
    }
    if task.max_attempts == 0 || task.max_attempts > 100 {
        return Err(EngineError::Invalid(format!(
            "max_attempts must be between 1 and 100, got {}",
            task.max_attempts
        )));
    }
    crate::store::unique::check(task.unique_key.as_deref(), task.unique_for_secs)
        .map_err(EngineError::Invalid)?;
    Ok(())
}

/// `root/relative` if it exists and, with every link resolved, stays inside `root`.
pub fn resolve_inside(root: &Path, relative: &str) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let path = root.join(relative).canonicalize().ok()?;
    (path.starts_with(&root) && path.is_file()).then_some(path)
}

/// Why a run's output folder (`storage/stask/results/{id}/`) cannot be made, if it cannot: an
/// attempt that failed gets it in its message, because the plugin itself only sees "No such
/// file or directory" when it writes its result file into a folder the storage refused.
/// Only called for failed attempts, so successful runs without files leave no folder behind.
pub(crate) fn output_dir_problem(dir: &Path) -> Option<String> {
    if dir.is_dir() {
        return None;
    }
    match std::fs::create_dir_all(dir) {
        Ok(()) => {
            // It could be made: not the problem (and no empty folder is left).
            let _ = std::fs::remove_dir(dir);
            None
        }
        Err(e) => {
            let folder = dir.parent().unwrap_or(dir).display();
            Some(match e.kind() {
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => format!(
                    "the storage is full: the task's output folder {} cannot be created: {e} \
                     (folder {folder})",
                    dir.display()
                ),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    format!(
                        "the task's output folder {} cannot be created: {e}: the storage folder \
                         {folder} is not writable; check that the daemon's user may write it \
                         and that its file system is mounted read-write",
                        dir.display()
                    )
                }
                _ => format!(
                    "the task's output folder {} cannot be created: {e}",
                    dir.display()
                ),
            })
        }
    }
}

fn not_found(id: i64) -> EngineError {
    EngineError::NotFound(format!("task {id} not found"))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
