//! The registry: which worker version serves each identifier, kept in step with plugins.d/ and
//! with `s_workers` / `s_plugin_files`.

use super::loader::{self, LoadedWorker};
use crate::clock::now_ms;
use crate::events::{Event, EventBus};
use crate::model::{PluginFile, WorkerRow, WorkerState};
use crate::store::{Store, StoreResult, WorkerFilter, WorkerRegistration};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    /// Cached worker rows (active flag, settings) of the loaded workers.
    rows: HashMap<String, WorkerRow>,
}

/// Libraries loaded since start past which a warning is logged: old versions are never
/// unloaded, so each reload keeps its memory until the daemon restarts.
const RELOAD_WARNING_THRESHOLD: u64 = 100;

/// Hit/miss counters of the worker-row cache.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Lookups answered from memory.
    pub hits: AtomicU64,
    /// Lookups that read the database.
    pub misses: AtomicU64,
}

/// Loaded worker versions and their registration.
pub struct Registry {
    plugins_dir: PathBuf,
    shadow_dir: PathBuf,
    store: Arc<dyn Store>,
    events: EventBus,
    active_when_new: bool,
    inner: RwLock<Inner>,
    loads: AtomicU64,
    /// Cache counters (reported by the performance API).
    pub cache: CacheCounters,
}

/// Library file names the registry considers: `*.so`, not hidden (editors, `cp x .x.tmp`).
pub fn is_plugin_file_name(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".so")
}

impl Registry {
    /// A registry for `plugins_dir`, loading shadow copies from `shadow_dir`.
    pub fn new(
        plugins_dir: PathBuf,
        shadow_dir: PathBuf,
        store: Arc<dyn Store>,
        events: EventBus,
        active_when_new: bool,
    ) -> Self {
        Registry {
            plugins_dir,
            shadow_dir,
            store,
            events,
            active_when_new,
            inner: RwLock::new(Inner::default()),
            loads: AtomicU64::new(0),
            cache: CacheCounters::default(),
        }
    }

    /// The watched folder.
    pub fn plugins_dir(&self) -> &Path {
        &self.plugins_dir
    }

    /// Loads every library in plugins.d/ and orphans the workers whose file is gone.
    /// Clears stale shadow copies first (they are never reused).
    pub fn scan(&self) -> StoreResult<ScanOutcomes> {
        let _ = std::fs::remove_dir_all(&self.shadow_dir);
        let mut names: Vec<String> = match std::fs::read_dir(&self.plugins_dir) {
            Ok(dir) => dir
                .filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| is_plugin_file_name(n))
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %self.plugins_dir.display(), "cannot read the plugins folder: {e}");
                Vec::new()
            }
        };
        names.sort();
        let mut outcomes = Vec::new();
        for name in names {
            let outcome = self.load_file(&name)?;
            outcomes.push((name, outcome));
        }
        let present: Vec<String> = self.inner.read().live.keys().cloned().collect();
        for row in self.store.workers(&WorkerFilter::default())? {
            if !present.contains(&row.identifier) && row.state == WorkerState::Loaded {
                self.store.set_worker_state(
                    &row.identifier,
                    WorkerState::Orphaned,
                    None,
                    now_ms(),
                )?;
                tracing::info!(worker = %row.identifier, "worker orphaned: its library is gone");
                self.events.publish(Event::WorkerOrphaned {
                    identifier: row.identifier,
                });
            }
        }
        self.refresh_rows()?;
        Ok(outcomes)
    }

    /// Loads (or reloads) one file of plugins.d/ by name.
    pub fn load_file(&self, name: &str) -> StoreResult<FileLoad> {
        let path = self.plugins_dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => self.load_bytes(name, &bytes),
            Err(e) => {
                let reason = format!("cannot read {name}: {e}");
                self.record_refusal(name, None, &reason, None, None)?;
                Ok(FileLoad::Refused(reason))
            }
        }
    }

    /// Loads (or reloads) `bytes`, the content of plugins.d/`name`, read once by the caller.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> StoreResult<FileLoad> {
        let sha256 = loader::sha256_hex(bytes);
        if self
            .inner
            .read()
            .files
            .get(name)
            .is_some_and(|(_, known)| *known == sha256)
        {
            return Ok(FileLoad::Unchanged);
        }
        let loaded = match loader::load(name, bytes, &self.shadow_dir) {
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
            tracing::warn!(
                loads,
                "{loads} plugin libraries loaded since start; replaced versions stay in memory \
                 (libraries are never unloaded): restart the daemon to reclaim it"
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
        }
        if reloaded {
            tracing::info!(worker = %identifier, %version, file = name, "worker reloaded: new tasks run the new version");
        } else {
            tracing::info!(worker = %identifier, %version, file = name, "worker loaded");
        }
        self.events.publish(Event::WorkerLoaded {
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
        tracing::warn!(file = name, "plugin refused: {reason}");
        self.events.publish(Event::PluginError {
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
        if let Some(identifier) = served {
            self.store
                .set_worker_state(&identifier, WorkerState::Orphaned, None, now_ms())?;
            tracing::info!(worker = %identifier, file = name, "worker orphaned: its library was removed");
            self.events.publish(Event::WorkerOrphaned { identifier });
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

    /// The version in service for `identifier`.
    pub fn get(&self, identifier: &str) -> Option<Arc<LoadedWorker>> {
        self.inner.read().live.get(identifier).cloned()
    }

    /// The cached row (active flag, settings) of a loaded worker.
    pub fn row(&self, identifier: &str) -> Option<WorkerRow> {
        let row = self.inner.read().rows.get(identifier).cloned();
        let counter = if row.is_some() {
            &self.cache.hits
        } else {
            &self.cache.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        row
    }

    /// Identifiers this host can run now: loaded and active.
    pub fn runnable(&self) -> Vec<String> {
        let inner = self.inner.read();
        let mut ids: Vec<String> = inner
            .live
            .keys()
            .filter(|id| inner.rows.get(*id).is_some_and(|r| r.active))
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Re-reads the rows of the loaded workers (after an operator changed `active` or settings,
    /// here or in another process).
    pub fn refresh_rows(&self) -> StoreResult<()> {
        let rows = self.store.workers(&WorkerFilter::default())?;
        let mut inner = self.inner.write();
        let live: Vec<String> = inner.live.keys().cloned().collect();
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
