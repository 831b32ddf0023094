//! The registry: which worker version serves each identifier, kept in step with plugins.d/ and
//! with `s_workers` / `s_plugin_files`.

use super::cache_stats::CacheCounters;
pub use super::cache_stats::CacheStats;
use super::copies::{CopiesCleanup, CopiesUsage, LoadedCopies};
use super::loader::{self, LoadedWorker};
use super::read::{self, PluginBytes, ReadError};
use parking_lot::RwLock;
use stask_store::clock::now_ms;
use stask_store::model::{PluginFile, WorkerRow, WorkerState};
use stask_store::{Store, StoreResult, WorkerFilter, WorkerRegistration};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A change of the workers in service, told to whoever built the registry (the daemon turns
/// them into live events): the registry itself knows nothing of the event bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerChange {
    /// A worker library was loaded or reloaded.
    Loaded {
        /// Identifier.
        identifier: String,
        /// Version label.
        version: String,
        /// File in plugins.d/.
        file: String,
    },
    /// A worker's library was removed.
    Orphaned {
        /// Identifier.
        identifier: String,
    },
    /// A library file was refused.
    Refused {
        /// File in plugins.d/.
        file: String,
        /// One-line reason.
        reason: String,
    },
}

/// Receives every [`WorkerChange`] (called on the thread that made the change).
pub type ChangeHook = Arc<dyn Fn(WorkerChange) + Send + Sync>;

/// What a scan did to each file, by file name.
pub type ScanOutcomes = Vec<(String, FileLoad)>;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq)]
pub enum FileLoad {
    /// Loaded (or reloaded) as this worker version.
    Loaded {
        /// Worker identifier.
        identifier: String,
        /// Version label.
        version: String,
    },
    /// Same bytes as the version in service: nothing to do.
    Unchanged,
    /// Refused, with the one-line reason.
    Refused(String),
}

#[derive(Default)]
struct Inner {
    /// The version in service per identifier.
    live: HashMap<String, Arc<LoadedWorker>>,
    /// File name -> (identifier it serves, sha256) for loaded files.
    files: HashMap<String, (String, String)>,
    /// Cached worker rows (active flag, settings) of the loaded workers. An entry may be
    /// missing (dropped by [`Registry::clear_cache`]): lookups read it again from the store.
    rows: HashMap<String, WorkerRow>,
    /// Bumped by every change of `rows`: lets readers keep what they derived from the rows
    /// (the workers' limits) until the rows change.
    rows_version: u64,
}

/// Libraries loaded since start past which a warning is logged (and again every as many
/// loads): old versions are never unloaded, so each reload keeps its memory, and its copy in
/// `storage/plugins-loaded/`, until the daemon restarts.
const RELOAD_WARNING_THRESHOLD: u64 = 100;

/// Loaded worker versions and their registration.
pub struct Registry {
    /// This host's name in the hosts registry (its lease owner name).
    host_name: String,
    plugins_dir: PathBuf,
    /// The copies this host loaded (`storage/plugins-loaded/`).
    copies: LoadedCopies,
    /// Largest file read from plugins.d/ (`STASK_MAX_PLUGIN_BYTES`).
    max_file_bytes: u64,
    store: Arc<dyn Store>,
    on_change: ChangeHook,
    active_when_new: bool,
    inner: RwLock<Inner>,
    loads: AtomicU64,
    /// Loads that replaced a version in service.
    reloads: AtomicU64,
    /// Files refused.
    refusals: AtomicU64,
    /// Cache counters (reported by the performance API).
    pub cache: CacheCounters,
}

/// Library file names the registry considers: `*.so`, not hidden (editors, `cp x .x.tmp`).
pub fn is_plugin_file_name(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".so")
}

impl Registry {
    /// A registry for `plugins_dir`, loading copies from `copies_dir`, reading files of at most
    /// `max_file_bytes`, for the host `host_name` (its name in the hosts registry).
    pub fn new(
        host_name: String,
        plugins_dir: PathBuf,
        copies_dir: PathBuf,
        max_file_bytes: u64,
        store: Arc<dyn Store>,
        on_change: ChangeHook,
        active_when_new: bool,
    ) -> Self {
        Registry {
            host_name,
            plugins_dir,
            copies: LoadedCopies::new(copies_dir),
            max_file_bytes,
            store,
            on_change,
            active_when_new,
            inner: RwLock::new(Inner::default()),
            loads: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
            cache: CacheCounters::default(),
        }
    }

    /// The watched folder.
    pub fn plugins_dir(&self) -> &Path {
        &self.plugins_dir
    }

    /// The library copies this host keeps mapped (and on disk until it exits).
    pub fn copies_usage(&self) -> CopiesUsage {
        self.copies.usage()
    }

    /// For the process holding the home lock, before its first load: deletes the copies a
    /// killed daemon left (and the `shadow/` and `isolated/` folders of older versions beside
    /// them) and returns the guard that deletes this process's copies when it exits.
    pub fn claim_copies(&self) -> CopiesCleanup {
        let dir = self.copies.dir();
        let legacy: Vec<PathBuf> = ["shadow", "isolated"]
            .into_iter()
            .map(|name| dir.with_file_name(name))
            .collect();
        self.copies.claim(&legacy)
    }

    /// Reads plugins.d/`name` without trusting it (see [`read`]): regular files only, within
    /// the size limit, never blocking.
    pub fn read_file(&self, name: &str) -> Result<PluginBytes, ReadError> {
        read::read(&self.plugins_dir.join(name), self.max_file_bytes)
    }

    /// Loads every library in plugins.d/, orphans the workers whose file is gone (files this
    /// registry loaded and no longer finds included: the folder may have been replaced), and
    /// orphans worker rows no library serves.
    pub fn scan(&self) -> StoreResult<ScanOutcomes> {
        let listed: Option<Vec<String>> = match std::fs::read_dir(&self.plugins_dir) {
            Ok(dir) => Some(
                dir.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                    .filter(|n| is_plugin_file_name(n))
                    // Folders are ignored (links to folders included).
                    .filter(|n| !self.plugins_dir.join(n).is_dir())
                    .collect(),
            ),
            // No folder: every library is gone.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %self.plugins_dir.display(), "the plugins folder does not exist");
                Some(Vec::new())
            }
            // Unreadable: what is loaded stays; nothing is known about the files.
            Err(e) => {
                tracing::warn!(dir = %self.plugins_dir.display(), "cannot read the plugins folder: {e}");
                None
            }
        };
        let mut names = listed.clone().unwrap_or_default();
        names.sort();
        let mut outcomes = Vec::new();
        for name in names {
            let outcome = self.load_file(&name)?;
            outcomes.push((name, outcome));
        }
        if let Some(listed) = listed {
            let vanished: Vec<String> = self
                .inner
                .read()
                .files
                .keys()
                .filter(|f| !listed.contains(f))
                .cloned()
                .collect();
            for name in vanished {
                self.remove_file(&name)?;
            }
        }
        let present: Vec<String> = self.inner.read().live.keys().cloned().collect();
        for row in self.store.workers(&WorkerFilter::default())? {
            if !present.contains(&row.identifier)
                && row.state == WorkerState::Loaded
                && !self.served_elsewhere(&row.identifier)
            {
                self.store.set_worker_state(
                    &row.identifier,
                    WorkerState::Orphaned,
                    None,
                    now_ms(),
                )?;
                tracing::info!(worker = %row.identifier, "worker orphaned: its library is gone");
                (self.on_change)(WorkerChange::Orphaned {
                    identifier: row.identifier,
                });
            }
        }
        self.refresh_rows()?;
        Ok(outcomes)
    }

    /// Whether another live host on a shared database has `identifier` loaded: a worker row is
    /// shared by the hosts, so one host lacking the library must not orphan it for the others.
    fn served_elsewhere(&self, identifier: &str) -> bool {
        if !self.store.shared_by_hosts() {
            return false;
        }
        let now = now_ms();
        match self.store.hosts() {
            Ok(hosts) => hosts.iter().any(|h| {
                h.name != self.host_name && h.live(now) && h.workers.iter().any(|w| w == identifier)
            }),
            Err(e) => {
                tracing::warn!("cannot read the hosts registry: {e}");
                false
            }
        }
    }

    /// On a shared database: orphans the worker rows still marked loaded that no live host
    /// has loaded (their last host removed the library or died). Called after this host's
    /// registry row is refreshed. A row loaded less than `settle_ms` ago is left alone: the
    /// host that loaded it lists it only from its next heartbeat on.
    pub fn orphan_unserved_workers(&self, settle_ms: i64) -> StoreResult<()> {
        if !self.store.shared_by_hosts() {
            return Ok(());
        }
        let rows = self.store.workers(&WorkerFilter::default())?;
        let now = now_ms();
        for row in rows {
            let here = self.inner.read().live.contains_key(&row.identifier);
            let settling = row.loaded_at.unwrap_or(row.updated_at) > now - settle_ms;
            if row.state != WorkerState::Loaded
                || here
                || settling
                || self.served_elsewhere(&row.identifier)
            {
                continue;
            }
            self.store
                .set_worker_state(&row.identifier, WorkerState::Orphaned, None, now_ms())?;
            tracing::info!(worker = %row.identifier, "worker orphaned: no live host has its library");
            (self.on_change)(WorkerChange::Orphaned {
                identifier: row.identifier,
            });
        }
        Ok(())
    }

    /// Identifiers of the workers loaded on this host, sorted.
    pub fn loaded(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.inner.read().live.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Loads (or reloads) one file of plugins.d/ by name. A file that is not a regular file
    /// or is over the size limit is refused without being read (a folder is not a library
    /// file: refused too, as the caller asked for it by name); a file that is gone is handled
    /// as removed.
    pub fn load_file(&self, name: &str) -> StoreResult<FileLoad> {
        match self.read_file(name) {
            Ok(read) => self.load_read(name, &read),
            Err(ReadError::NotFound(_)) => {
                self.remove_file(name)?;
                Ok(FileLoad::Refused(format!("{name} is gone")))
            }
            Err(e) => {
                let reason = e.to_string();
                self.record_refusal(name, None, &reason, None, None)?;
                Ok(FileLoad::Refused(reason))
            }
        }
    }

    /// Loads (or reloads) `bytes`, the content of plugins.d/`name`, read once by the caller.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> StoreResult<FileLoad> {
        self.load_read(
            name,
            &PluginBytes {
                bytes: bytes.to_vec(),
                sha256: loader::sha256_hex(bytes),
            },
        )
    }

    /// Loads (or reloads) `read`, the content of plugins.d/`name` with its hash.
    pub fn load_read(&self, name: &str, read: &PluginBytes) -> StoreResult<FileLoad> {
        let (bytes, sha256) = (&read.bytes[..], read.sha256.clone());
        if self
            .inner
            .read()
            .files
            .get(name)
            .is_some_and(|(_, known)| *known == sha256)
        {
            return Ok(FileLoad::Unchanged);
        }
        let loaded = match loader::load(name, bytes, &sha256, &self.copies) {
            Ok(loaded) => loaded,
            Err(e) => {
                self.record_refusal(
                    name,
                    Some(&sha256),
                    &e.reason,
                    e.detail.as_deref(),
                    e.identifier.as_deref(),
                )?;
                return Ok(FileLoad::Refused(e.reason));
            }
        };
        let loads = self.loads.fetch_add(1, Ordering::Relaxed) + 1;
        if loads > RELOAD_WARNING_THRESHOLD && loads % RELOAD_WARNING_THRESHOLD == 1 {
            let held = self.copies.usage();
            tracing::warn!(
                loads,
                copies = held.count,
                copy_bytes = held.bytes,
                "{loads} plugin libraries loaded since start; replaced versions stay in memory \
                 (libraries are never unloaded) and their {} copies hold {} bytes in {} until \
                 the daemon exits: restart the daemon to reclaim it",
                held.count,
                held.bytes,
                self.copies.dir().display()
            );
        }
        let identifier = loaded.identifier().to_owned();
        let provider = self
            .inner
            .read()
            .files
            .iter()
            .find(|(file, (id, _))| *id == identifier && file.as_str() != name)
            .map(|(file, _)| file.clone());
        if let Some(other) = provider {
            let reason =
                format!("duplicate identifier '{identifier}': already provided by {other}");
            self.record_refusal(name, Some(&sha256), &reason, None, None)?;
            return Ok(FileLoad::Refused(reason));
        }
        let version = loaded.version_label();
        let row = self
            .store
            .upsert_worker(&registration(&loaded, self.active_when_new, true), now_ms())?;
        self.store.record_plugin_file(&PluginFile {
            file: name.to_owned(),
            file_sha256: Some(sha256.clone()),
            state: "loaded".into(),
            identifier: Some(identifier.clone()),
            error: None,
            error_detail: None,
            updated_at: now_ms(),
        })?;
        let reloaded;
        {
            let mut inner = self.inner.write();
            reloaded = inner.live.contains_key(&identifier);
            // A file that switched identifiers no longer serves the old one.
            if let Some((old_id, _)) = inner.files.get(name).cloned() {
                if old_id != identifier {
                    inner.live.remove(&old_id);
                    inner.rows.remove(&old_id);
                }
            }
            inner.live.insert(identifier.clone(), Arc::new(loaded));
            inner
                .files
                .insert(name.to_owned(), (identifier.clone(), sha256));
            inner.rows.insert(identifier.clone(), row);
            inner.rows_version += 1;
        }
        if reloaded {
            self.reloads.fetch_add(1, Ordering::Relaxed);
            let held = self.copies.usage();
            tracing::info!(worker = %identifier, %version, file = name, copies = held.count, copy_bytes = held.bytes, "worker reloaded: new tasks run the new version");
        } else {
            tracing::info!(worker = %identifier, %version, file = name, "worker loaded");
        }
        (self.on_change)(WorkerChange::Loaded {
            identifier: identifier.clone(),
            version: version.clone(),
            file: name.to_owned(),
        });
        Ok(FileLoad::Loaded {
            identifier,
            version,
        })
    }

    fn record_refusal(
        &self,
        name: &str,
        sha256: Option<&str>,
        reason: &str,
        detail: Option<&str>,
        identifier: Option<&str>,
    ) -> StoreResult<()> {
        // The worker this file served keeps its running version and notes the refusal; a
        // worker the file only declares shows the error when nothing else serves it (a refused
        // duplicate must not mark the healthy original).
        let served = self.inner.read().files.get(name).map(|(id, _)| id.clone());
        let worker = served.clone().or_else(|| identifier.map(str::to_owned));
        if let Some(worker) = &worker {
            let live = self.inner.read().live.contains_key(worker);
            if live && served.is_none() {
                // Served by another file: leave its row alone.
            } else if live {
                let message =
                    format!("new library refused, previous version still serving: {reason}");
                self.store.set_worker_state(
                    worker,
                    WorkerState::Loaded,
                    Some(&message),
                    now_ms(),
                )?;
            } else {
                self.store
                    .set_worker_state(worker, WorkerState::Error, Some(reason), now_ms())?;
            }
        }
        self.store.record_plugin_file(&PluginFile {
            file: name.to_owned(),
            file_sha256: sha256.map(str::to_owned),
            state: "error".into(),
            identifier: worker,
            error: Some(reason.to_owned()),
            error_detail: detail.map(str::to_owned),
            updated_at: now_ms(),
        })?;
        // Logged once recorded: whoever reacts to the line finds the rows up to date.
        self.refusals.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(file = name, "plugin refused: {reason}");
        (self.on_change)(WorkerChange::Refused {
            file: name.to_owned(),
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// Handles a file that disappeared from plugins.d/: its worker becomes `orphaned` (row,
    /// settings and history kept; pending tasks wait; running tasks finish on the old code).
    pub fn remove_file(&self, name: &str) -> StoreResult<()> {
        let served = {
            let mut inner = self.inner.write();
            let served = inner.files.remove(name).map(|(id, _)| id);
            if let Some(id) = &served {
                inner.live.remove(id);
                inner.rows.remove(id);
                inner.rows_version += 1;
            }
            served
        };
        let known = self
            .store
            .plugin_files()?
            .into_iter()
            .any(|f| f.file == name);
        if known {
            self.store.record_plugin_file(&PluginFile {
                file: name.to_owned(),
                file_sha256: None,
                state: "removed".into(),
                identifier: served.clone(),
                error: None,
                error_detail: None,
                updated_at: now_ms(),
            })?;
        }
        if let Some(identifier) = served.filter(|id| !self.served_elsewhere(id)) {
            self.store
                .set_worker_state(&identifier, WorkerState::Orphaned, None, now_ms())?;
            tracing::info!(worker = %identifier, file = name, "worker orphaned: its library was removed");
            (self.on_change)(WorkerChange::Orphaned { identifier });
        }
        Ok(())
    }

    /// Rewrites the rows of every loaded worker from its library's manifest (repairs rows
    /// edited by hand), after a [`Registry::scan`] picked up new and changed files.
    pub fn rescan(&self) -> StoreResult<ScanOutcomes> {
        let outcomes = self.scan()?;
        let live: Vec<Arc<LoadedWorker>> = self.inner.read().live.values().cloned().collect();
        for worker in live {
            self.store.upsert_worker(
                &registration(&worker, self.active_when_new, false),
                now_ms(),
            )?;
        }
        self.refresh_rows()?;
        Ok(outcomes)
    }

    /// Libraries loaded since start (each stays mapped until the process ends).
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Loads that replaced a version in service, since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Files refused since start.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// Workers in service now.
    pub fn loaded_count(&self) -> usize {
        self.inner.read().live.len()
    }

    /// The version in service for `identifier`.
    pub fn get(&self, identifier: &str) -> Option<Arc<LoadedWorker>> {
        self.inner.read().live.get(identifier).cloned()
    }

    /// The row (active flag, settings) of a loaded worker: from the cache, or read from the
    /// store and cached on a miss. `None` for a worker that is not loaded (not cached: only
    /// loaded workers' rows are kept) or whose row cannot be read (logged).
    pub fn row(&self, identifier: &str) -> Option<WorkerRow> {
        let loaded = {
            let inner = self.inner.read();
            if let Some(row) = inner.rows.get(identifier) {
                self.cache.hits.fetch_add(1, Ordering::Relaxed);
                return Some(row.clone());
            }
            inner.live.contains_key(identifier)
        };
        self.cache.misses.fetch_add(1, Ordering::Relaxed);
        if loaded {
            self.load_row(identifier)
        } else {
            None
        }
    }

    /// Reads a worker's row from the store and caches it while the worker is loaded. A row
    /// cached in the meantime (by a reload or a refresh, which read no earlier) is kept; a
    /// worker unloaded in the meantime gets its row returned but not cached.
    fn load_row(&self, identifier: &str) -> Option<WorkerRow> {
        let row = match self.store.worker(identifier) {
            Ok(row) => row?,
            Err(e) => {
                tracing::warn!(worker = identifier, "cannot read the worker row: {e}");
                return None;
            }
        };
        let mut inner = self.inner.write();
        if !inner.live.contains_key(identifier) {
            return Some(row);
        }
        inner.rows_version += 1;
        Some(
            inner
                .rows
                .entry(identifier.to_owned())
                .or_insert(row)
                .clone(),
        )
    }

    /// Drops the cached row of `identifier`, or every cached row with `None`; returns how many
    /// were dropped (each counted as an eviction). Later lookups read the rows again.
    pub fn clear_cache(&self, identifier: Option<&str>) -> usize {
        let dropped = {
            let mut inner = self.inner.write();
            inner.rows_version += 1;
            match identifier {
                Some(id) => usize::from(inner.rows.remove(id).is_some()),
                None => std::mem::take(&mut inner.rows).len(),
            }
        };
        self.cache
            .evictions
            .fetch_add(dropped as u64, Ordering::Relaxed);
        dropped
    }

    /// The cache's counters, size and estimated memory now.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.snapshot(&self.inner.read().rows)
    }

    /// Identifiers this host can run now: loaded, active and not paused (the claim statements
    /// skip paused workers' tasks too, so a row cached before a pause on another host cannot
    /// start them; this filter keeps the claims from asking).
    ///
    /// Rows dropped by [`Registry::clear_cache`] are read again here, once each, and counted as
    /// misses: a cleared cache must be seen refilling from the database.
    pub fn runnable(&self) -> Vec<String> {
        let missing: Vec<String> = {
            let inner = self.inner.read();
            inner
                .live
                .keys()
                .filter(|id| !inner.rows.contains_key(*id))
                .cloned()
                .collect()
        };
        // Rows dropped by a cache clear are read again here: each such read is a miss.
        for identifier in &missing {
            self.cache.misses.fetch_add(1, Ordering::Relaxed);
            self.load_row(identifier);
        }
        let inner = self.inner.read();
        let mut ids: Vec<String> = inner
            .live
            .keys()
            .filter(|id| inner.rows.get(*id).is_some_and(|r| r.active && !r.paused))
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// The limits (`concurrency`, `action_concurrency`, `rate_limit`) the cached rows of the
    /// loaded workers set, and the version of the cache they were read from: the dispatcher
    /// keeps them until the version changes, so settings are parsed once per change, not per
    /// claim.
    pub fn limits(&self) -> (u64, Vec<stask_store::WorkerLimit>) {
        let inner = self.inner.read();
        let mut limits: Vec<_> = inner
            .rows
            .values()
            .filter_map(|row| {
                stask_store::WorkerLimit::from_settings(&row.identifier, &row.settings)
            })
            .collect();
        limits.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        (inner.rows_version, limits)
    }

    /// The version of the cached rows (see [`Registry::limits`]).
    pub fn rows_version(&self) -> u64 {
        self.inner.read().rows_version
    }

    /// Re-reads the rows of the loaded workers (after an operator changed `active` or settings,
    /// here or in another process).
    pub fn refresh_rows(&self) -> StoreResult<()> {
        let rows = self.store.workers(&WorkerFilter::default())?;
        let mut inner = self.inner.write();
        let live: Vec<String> = inner.live.keys().cloned().collect();
        inner.rows_version += 1;
        inner.rows = rows
            .into_iter()
            .filter(|r| live.contains(&r.identifier))
            .map(|r| (r.identifier.clone(), r))
            .collect();
        Ok(())
    }
}

/// What a loaded library registers in `s_workers`.
fn registration(
    loaded: &LoadedWorker,
    active_when_new: bool,
    new_load: bool,
) -> WorkerRegistration {
    let manifest = &loaded.manifest;
    WorkerRegistration {
        identifier: manifest.info.identifier.clone(),
        scope: manifest.info.scope.clone(),
        class: format!("{}:{}", loaded.file, manifest.type_name),
        title: manifest.info.title.clone(),
        description: manifest.info.description.clone(),
        actions: serde_json::to_value(&manifest.info.actions).unwrap_or_default(),
        default_settings: manifest.info.settings.clone(),
        file: loaded.file.clone(),
        file_sha256: loaded.sha256.clone(),
        version: loaded.version_label(),
        active_when_new,
        new_load,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use stask_store::model::WorkerState;
    use stask_store::sqlite::SqliteStore;
    use std::sync::OnceLock;

    /// A registry over a migrated store in a fresh temporary home, and that store.
    fn registry() -> (Registry, Arc<dyn Store>) {
        let home = std::env::temp_dir().join(format!("stask-registry-{}", uuid::Uuid::new_v4()));
        let store = SqliteStore::open(&home.join("storage").join("stask.db")).expect("open");
        store.migrate().expect("migrate");
        let store: Arc<dyn Store> = Arc::new(store);
        let registry = Registry::new(
            "test-host".into(),
            home.join("plugins.d"),
            home.join("storage").join("plugins-loaded"),
            256 << 20,
            store.clone(),
            Arc::new(|_| {}),
            true,
        );
        (registry, store)
    }

    fn sample_row(identifier: &str, description: &str) -> WorkerRow {
        WorkerRow {
            id: 1,
            uuid: "00000000-0000-0000-0000-000000000000".into(),
            identifier: identifier.into(),
            scope: "default".into(),
            class: "w.so:W".into(),
            active: true,
            paused: false,
            position: 0,
            settings: json!({}),
            hidden: 0,
            title: "W".into(),
            description: description.into(),
            actions: json!([]),
            default_settings: json!({}),
            state: WorkerState::Loaded,
            load_error: None,
            file: Some("w.so".into()),
            file_sha256: None,
            version: Some("1.0.0".into()),
            generation: 1,
            loaded_at: Some(0),
            created_at: 0,
            updated_at: 0,
        }
    }

    /// Puts a row in the cache as a load does.
    fn cache(registry: &Registry, row: WorkerRow) {
        let mut inner = registry.inner.write();
        inner.rows.insert(row.identifier.clone(), row);
    }

    /// The demo plugin's bytes, built by cargo on first use (as the e2e harness does): only a
    /// loaded library makes a worker live, which is what a read-through miss requires.
    fn demo_library() -> &'static [u8] {
        static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
        BYTES.get_or_init(|| {
            // host/plugin-host/ → the workspace root.
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .unwrap();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "-p", "stask-worker-demo", "--quiet"])
                .current_dir(workspace)
                .status()
                .expect("running cargo");
            assert!(status.success(), "building the demo plugin failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.join("target"));
            std::fs::read(target.join("debug").join("libstask_worker_demo.so"))
                .expect("reading the demo plugin")
        })
    }

    #[test]
    fn a_miss_reads_a_loaded_worker_row_and_caches_it() {
        let (registry, store) = registry();
        let FileLoad::Loaded { identifier, .. } =
            registry.load_bytes("demo.so", demo_library()).unwrap()
        else {
            panic!("the demo plugin did not load");
        };
        assert!(registry.row(&identifier).is_some(), "a load caches the row");
        assert_eq!(registry.clear_cache(Some(&identifier)), 1);
        store
            .set_worker_settings(&identifier, &json!({"timeout": 5}), now_ms())
            .unwrap();
        let row = registry.row(&identifier).expect("read through on a miss");
        assert_eq!(row.settings["timeout"], json!(5), "the store's current row");
        assert!(registry.row(&identifier).is_some());
        let stats = registry.cache_stats();
        assert_eq!(
            (stats.hits, stats.misses, stats.evictions, stats.cache_size),
            (2, 1, 1, 1)
        );
        assert_eq!(stats.hit_rate, 66.67);

        assert_eq!(registry.clear_cache(None), 1);
        assert_eq!(
            registry.runnable(),
            vec![identifier.clone()],
            "a cleared cache does not stop the dispatcher"
        );
        let stats = registry.cache_stats();
        assert_eq!(
            (stats.misses, stats.cache_size),
            (2, 1),
            "refilled by runnable(), counted as a miss"
        );
        registry.refresh_rows().unwrap();
        assert_eq!(registry.cache_stats().cache_size, 1);
    }

    #[test]
    fn lookups_of_unloaded_workers_miss_and_cache_nothing() {
        let (registry, _store) = registry();
        assert!(registry.row("nobody").is_none());
        let stats = registry.cache_stats();
        assert_eq!((stats.hits, stats.misses, stats.cache_size), (0, 1, 0));
        assert_eq!(stats.hit_rate, 0.0);
    }

    #[test]
    fn cached_rows_are_hits() {
        let (registry, _store) = registry();
        assert_eq!(registry.cache_stats().hit_rate, 0.0, "no lookups yet");
        cache(&registry, sample_row("w", ""));
        assert_eq!(registry.row("w").map(|r| r.identifier), Some("w".into()));
        assert!(registry.row("x").is_none());
        let stats = registry.cache_stats();
        assert_eq!((stats.hits, stats.misses, stats.hit_rate), (1, 1, 50.0));
    }

    #[test]
    fn clear_cache_drops_entries_and_counts_evictions() {
        let (registry, _store) = registry();
        cache(&registry, sample_row("a", ""));
        cache(&registry, sample_row("b", ""));
        assert_eq!(registry.clear_cache(Some("a")), 1);
        assert_eq!(registry.clear_cache(Some("a")), 0, "already gone");
        assert_eq!(registry.cache_stats().cache_size, 1);
        assert_eq!(registry.clear_cache(None), 1);
        let stats = registry.cache_stats();
        assert_eq!(
            (stats.evictions, stats.cache_size, stats.memory_usage),
            (2, 0, 0)
        );
    }

    #[test]
    fn memory_usage_counts_string_and_json_bytes() {
        let (registry, _store) = registry();
        cache(&registry, sample_row("w", ""));
        let base = registry.cache_stats().memory_usage;
        assert!(base > std::mem::size_of::<WorkerRow>() as u64);
        cache(&registry, sample_row("w", &"x".repeat(1_000)));
        assert_eq!(registry.cache_stats().memory_usage, base + 1_000);
        let mut row = sample_row("w", "");
        row.settings = json!({"k": "v"});
        cache(&registry, row);
        assert_eq!(
            registry.cache_stats().memory_usage,
            base + 7,
            "{{\"k\":\"v\"}} is 7 bytes longer than {{}}"
        );
        cache(&registry, sample_row("w2", ""));
        assert_eq!(registry.cache_stats().memory_usage, base + 7 + base + 2);
    }

    #[test]
    fn cache_stats_serialize_flat() {
        let (registry, _store) = registry();
        assert_eq!(
            serde_json::to_value(registry.cache_stats()).unwrap(),
            json!({
                "hits": 0, "misses": 0, "evictions": 0, "hit_rate": 0.0,
                "cache_size": 0, "memory_usage": 0
            })
        );
    }
}
