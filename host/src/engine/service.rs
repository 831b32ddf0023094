//! What the HTTP API reads and asks of the engine beyond tasks' lifecycle: task logs and
//! lists, workers and their library files, the plugin registry's scans and cache, hosts,
//! counts, and the token and session checks of authentication.
//!
//! The API calls these instead of reaching into [`Engine::store`] and [`Engine::registry`],
//! so what it may do is this list, and a change of storage or registry stays behind it.
//! Each is a thin call: the rules live in the store, the registry and [`crate::auth`].

use super::{Engine, EngineResult};
use crate::auth::NewSession;
use crate::model::{LogLine, PluginFile, Stats, Task, TokenRow, WorkerRow};
use crate::plugins::copies::CopiesUsage;
use crate::plugins::registry::{CacheStats, ScanOutcomes};
use crate::store::{HostRow, SessionRow, TaskFilter, WorkerFilter};

impl Engine {
    /// The latest `limit` log lines of task `id`, oldest first (none for an unknown task).
    pub fn task_logs(&self, id: i64, limit: i64) -> EngineResult<Vec<LogLine>> {
        Ok(self.store.task_logs(id, limit)?)
    }

    /// A page of tasks matching `filter`, and how many match in all.
    pub fn tasks(&self, filter: &TaskFilter) -> EngineResult<(Vec<Task>, i64)> {
        Ok(self.store.tasks(filter)?)
    }

    /// The follow-ups of task `id`: how many, and the first [`super::MAX_LISTED_CHILDREN`]
    /// ids, oldest first.
    pub fn children(&self, id: i64) -> EngineResult<super::Children> {
        let (tasks, total) = self.store.tasks(&TaskFilter {
            parent_id: Some(id),
            limit: super::MAX_LISTED_CHILDREN,
            oldest_first: true,
            ..TaskFilter::default()
        })?;
        Ok(super::Children {
            total,
            ids: tasks.iter().map(|t| t.id).collect(),
        })
    }

    /// Up to `limit` pending tasks in the order they will be claimed, and how many are pending.
    pub fn pending_tasks(&self, limit: i64) -> EngineResult<(Vec<Task>, i64)> {
        Ok(self.store.pending_tasks(limit)?)
    }

    /// Task counts per status.
    pub fn stats(&self) -> EngineResult<Stats> {
        Ok(self.store.stats()?)
    }

    /// The hosts sharing the database, as they last reported.
    pub fn hosts(&self) -> EngineResult<Vec<HostRow>> {
        Ok(self.store.hosts()?)
    }

    /// Workers matching `filter`, by position then identifier.
    pub fn workers(&self, filter: &WorkerFilter) -> EngineResult<Vec<WorkerRow>> {
        Ok(self.store.workers(filter)?)
    }

    /// Every library file seen, with how its latest load went.
    pub fn plugin_files(&self) -> EngineResult<Vec<PluginFile>> {
        Ok(self.store.plugin_files()?)
    }

    /// How much room the loaded copies of the libraries take.
    pub fn loaded_copies(&self) -> CopiesUsage {
        self.registry.copies_usage()
    }

    /// Loads new and changed library files (`rescan`: every file again), then wakes the
    /// dispatcher so tasks of newly loaded workers start at once.
    pub fn scan_plugins(&self, rescan: bool) -> EngineResult<ScanOutcomes> {
        let outcomes = if rescan {
            self.registry.rescan()?
        } else {
            self.registry.scan()?
        };
        self.wake();
        Ok(outcomes)
    }

    /// Counters of the worker-registry cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.registry.cache_stats()
    }

    /// Empties the worker-registry cache (one worker's entry, or all); returns how many
    /// entries went.
    pub fn clear_cache(&self, identifier: Option<&str>) -> usize {
        self.registry.clear_cache(identifier)
    }

    /// The live token `presented` is, if any (see [`crate::auth::verify`]).
    pub fn verify_token(&self, presented: &str) -> EngineResult<Option<TokenRow>> {
        Ok(crate::auth::verify(self.store.as_ref(), presented)?)
    }

    /// Records a use of token `id` (the caller throttles).
    pub fn touch_token(&self, id: i64, now: i64) -> EngineResult<()> {
        Ok(self.store.touch_token(id, now)?)
    }

    /// Opens a browser session for `token`.
    pub fn open_session(&self, token: &TokenRow, now: i64) -> EngineResult<NewSession> {
        Ok(crate::auth::open_session(self.store.as_ref(), token, now)?)
    }

    /// The live session whose id hashes to `id_hash`, if its token is not revoked.
    pub fn session(&self, id_hash: &str, now: i64) -> EngineResult<Option<SessionRow>> {
        Ok(self.store.session(id_hash, now)?)
    }

    /// Ends the session whose id hashes to `id_hash` (and drops expired ones).
    pub fn end_session(&self, id_hash: &str, now: i64) -> EngineResult<()> {
        Ok(self.store.delete_session(id_hash, now)?)
    }
}
