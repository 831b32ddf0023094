//! Workers and plugin files: registration and reload, state, lists and their filters,
//! activation and settings, orphan cleanup, and the record of each library file's load.

use crate::model::{PluginFile, WorkerState};
use crate::{Store, WorkerFilter, WorkerRegistration};
use serde_json::json;

/// A registration of `identifier` in `scope` as a fresh load with the given defaults.
pub fn registration(
    identifier: &str,
    scope: &str,
    defaults: serde_json::Value,
) -> WorkerRegistration {
    WorkerRegistration {
        identifier: identifier.into(),
        scope: scope.into(),
        class: format!("lib{identifier}.so:Worker"),
        title: format!("{identifier} title"),
        description: "does things".into(),
        actions: json!([{"name": "run"}]),
        default_settings: defaults,
        file: format!("lib{identifier}.so"),
        file_sha256: "aa".repeat(32),
        version: "1.0.0".into(),
        active_when_new: true,
        new_load: true,
    }
}

/// A first registration stores what the library declares, loaded, active as asked, last in
/// position, with the plugin's defaults as settings; a reload keeps the operator's choices
/// (active flag, position, settings over the new defaults) and counts a generation, and a
/// rewrite of the metadata alone (no new load) keeps generation and load time.
pub fn registration_keeps_the_operators_choices(store: &dyn Store) {
    let first = store
        .upsert_worker(
            &registration("a", "s", json!({"size": 1, "mode": "x"})),
            100,
        )
        .unwrap();
    assert_eq!(
        (
            first.identifier.as_str(),
            first.scope.as_str(),
            first.state,
            first.active
        ),
        ("a", "s", WorkerState::Loaded, true)
    );
    assert_eq!(
        (first.generation, first.loaded_at, first.created_at),
        (1, Some(100), 100)
    );
    assert_eq!(first.settings, json!({"size": 1, "mode": "x"}));
    assert_eq!(first.version.as_deref(), Some("1.0.0"));
    assert!(first.has_action("run"));
    let mut inactive = registration("b", "s", json!({}));
    inactive.active_when_new = false;
    let second = store.upsert_worker(&inactive, 110).unwrap();
    assert!(!second.active, "a new worker is active only when asked");
    assert!(second.position > first.position, "a new worker goes last");

    assert!(store.set_worker_active("a", false, 120).unwrap());
    assert!(store
        .set_worker_settings("a", &json!({"size": 5}), 130)
        .unwrap());
    let mut reload = registration("a", "s2", json!({"size": 2, "mode": "y", "new": true}));
    reload.version = "1.1.0".into();
    let reloaded = store.upsert_worker(&reload, 200).unwrap();
    assert_eq!((reloaded.id, reloaded.position), (first.id, first.position));
    assert!(
        !reloaded.active,
        "the operator's deactivation survives a reload"
    );
    assert_eq!(
        reloaded.settings,
        json!({"size": 5, "mode": "y", "new": true}),
        "the operator's values over the new defaults"
    );
    assert_eq!(
        (
            reloaded.generation,
            reloaded.loaded_at,
            reloaded.scope.as_str()
        ),
        (2, Some(200), "s2")
    );
    assert_eq!(reloaded.version.as_deref(), Some("1.1.0"));
    let mut rescan = reload.clone();
    rescan.new_load = false;
    rescan.title = "renamed".into();
    let rescanned = store.upsert_worker(&rescan, 300).unwrap();
    assert_eq!(
        (
            rescanned.generation,
            rescanned.loaded_at,
            rescanned.title.as_str()
        ),
        (2, Some(200), "renamed")
    );
}

/// A worker's state and load error are set together; `None` clears the error, a reload sets
/// it loaded again, and an unknown worker is not changed.
pub fn worker_state_and_load_error(store: &dyn Store) {
    store
        .upsert_worker(&registration("a", "s", json!({})), 100)
        .unwrap();
    assert!(store
        .set_worker_state("a", WorkerState::Error, Some("bad layout"), 110)
        .unwrap());
    let w = store.worker("a").unwrap().unwrap();
    assert_eq!(
        (w.state, w.load_error.as_deref()),
        (WorkerState::Error, Some("bad layout"))
    );
    assert!(store
        .set_worker_state("a", WorkerState::Orphaned, None, 120)
        .unwrap());
    let w = store.worker("a").unwrap().unwrap();
    assert_eq!((w.state, w.load_error), (WorkerState::Orphaned, None));
    store
        .upsert_worker(&registration("a", "s", json!({})), 130)
        .unwrap();
    assert_eq!(
        store.worker("a").unwrap().unwrap().state,
        WorkerState::Loaded
    );
    assert!(!store
        .set_worker_state("nobody", WorkerState::Error, Some("x"), 140)
        .unwrap());
}

/// Worker lists are in position order (registration order) and filter by scope and active
/// flag; one worker reads by identifier, an unknown one as nothing.
pub fn workers_filter_by_scope_and_active_in_position_order(store: &dyn Store) {
    for (identifier, scope) in [("c", "mail"), ("a", "build"), ("b", "mail")] {
        store
            .upsert_worker(&registration(identifier, scope, json!({})), 100)
            .unwrap();
    }
    store.set_worker_active("b", false, 110).unwrap();
    let names = |filter: WorkerFilter| -> Vec<String> {
        store
            .workers(&filter)
            .unwrap()
            .into_iter()
            .map(|w| w.identifier)
            .collect()
    };
    assert_eq!(names(WorkerFilter::default()), ["c", "a", "b"]);
    let mail = WorkerFilter {
        scope: Some("mail".into()),
        active: None,
    };
    assert_eq!(names(mail), ["c", "b"]);
    let inactive = WorkerFilter {
        scope: None,
        active: Some(false),
    };
    assert_eq!(names(inactive), ["b"]);
    let active_mail = WorkerFilter {
        scope: Some("mail".into()),
        active: Some(true),
    };
    assert_eq!(names(active_mail), ["c"]);
    let none = WorkerFilter {
        scope: Some("nothing".into()),
        active: None,
    };
    assert!(names(none).is_empty());
    let a = store.worker("a").unwrap().expect("a is registered");
    assert_eq!((a.identifier.as_str(), a.scope.as_str()), ("a", "build"));
    assert!(store.worker("z").unwrap().is_none());
}

/// Activation and settings change a known worker (and say so); an unknown worker is not
/// created by either.
pub fn activation_and_settings_change_known_workers_only(store: &dyn Store) {
    store
        .upsert_worker(&registration("a", "s", json!({"x": 1})), 100)
        .unwrap();
    assert!(store.set_worker_active("a", false, 110).unwrap());
    let w = store.worker("a").unwrap().unwrap();
    assert_eq!((w.active, w.updated_at), (false, 110));
    assert!(store.set_worker_active("a", true, 120).unwrap());
    assert!(store.worker("a").unwrap().unwrap().active);
    let settings = json!({"x": 2, "list": [1, 2], "nested": {"k": "v"}});
    assert!(store.set_worker_settings("a", &settings, 130).unwrap());
    assert_eq!(store.worker("a").unwrap().unwrap().settings, settings);
    assert!(!store.set_worker_active("z", true, 140).unwrap());
    assert!(!store.set_worker_settings("z", &settings, 140).unwrap());
    assert!(store.worker("z").unwrap().is_none());
}

/// Only orphaned workers are deleted, and their identifiers returned; loaded and failed ones
/// stay.
pub fn only_orphaned_workers_are_deleted(store: &dyn Store) {
    for identifier in ["a", "b", "c", "d"] {
        store
            .upsert_worker(&registration(identifier, "s", json!({})), 100)
            .unwrap();
    }
    store
        .set_worker_state("b", WorkerState::Orphaned, None, 110)
        .unwrap();
    store
        .set_worker_state("d", WorkerState::Orphaned, None, 110)
        .unwrap();
    store
        .set_worker_state("c", WorkerState::Error, Some("x"), 110)
        .unwrap();
    let mut deleted = store.delete_orphaned_workers().unwrap();
    deleted.sort();
    assert_eq!(deleted, ["b", "d"]);
    let left: Vec<String> = store
        .workers(&WorkerFilter::default())
        .unwrap()
        .into_iter()
        .map(|w| w.identifier)
        .collect();
    assert_eq!(left, ["a", "c"]);
    assert!(store.delete_orphaned_workers().unwrap().is_empty());
}

/// The record of a library file keeps only its latest load (all fields replaced), one row per
/// file, listed by file name.
pub fn plugin_files_keep_the_latest_load_per_file(store: &dyn Store) {
    assert!(store.plugin_files().unwrap().is_empty());
    let failed = PluginFile {
        file: "libz.so".into(),
        file_sha256: Some("ab".into()),
        state: "error".into(),
        identifier: None,
        error: Some("layout mismatch".into()),
        error_detail: Some("the whole report".into()),
        updated_at: 100,
    };
    let loaded = PluginFile {
        file: "liba.so".into(),
        file_sha256: Some("cd".into()),
        state: "loaded".into(),
        identifier: Some("a".into()),
        error: None,
        error_detail: None,
        updated_at: 110,
    };
    store.record_plugin_file(&failed).unwrap();
    store.record_plugin_file(&loaded).unwrap();
    let fixed = PluginFile {
        file_sha256: Some("ef".into()),
        state: "loaded".into(),
        identifier: Some("z".into()),
        error: None,
        error_detail: None,
        updated_at: 120,
        ..failed.clone()
    };
    store.record_plugin_file(&fixed).unwrap();
    let files: Vec<_> = store
        .plugin_files()
        .unwrap()
        .into_iter()
        .map(|f| {
            (
                f.file,
                f.file_sha256,
                f.state,
                f.identifier,
                f.error,
                f.error_detail,
                f.updated_at,
            )
        })
        .collect();
    let row = |f: &PluginFile| {
        (
            f.file.clone(),
            f.file_sha256.clone(),
            f.state.clone(),
            f.identifier.clone(),
            f.error.clone(),
            f.error_detail.clone(),
            f.updated_at,
        )
    };
    assert_eq!(files, vec![row(&loaded), row(&fixed)]);
}
