//! Test fixtures of the analytics tests: an engine over a fresh SQLite store, a fixed "now",
//! and helpers that record runs, pending tasks and workers.

use crate::config::Config;
use crate::engine::Engine;
use crate::events::EventBus;
use crate::model::{Priority, TaskStatus, WorkerState};
use crate::store::conformance::{record, task, Run};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, WorkerRegistration};
use serde_json::json;
use std::sync::Arc;
use TaskStatus::{Cancelled, Completed, Failed, Running};

use super::HOUR_MS;

/// A fixed "now" (2025-01-16T10:00:00Z) so every figure is exact.
pub(super) const NOW: i64 = 1_737_021_600_000;
/// A minute, in ms.
pub(super) const MIN: i64 = 60_000;

/// An engine over a migrated store in a fresh temporary home.
pub(super) fn engine() -> Arc<Engine> {
    let home = std::env::temp_dir().join(format!("stask-analytics-{}", uuid::Uuid::new_v4()));
    let store = SqliteStore::open(&home.join("storage").join("stask.db")).expect("open");
    store.migrate().expect("migrate");
    let config = Config::load(Some(home)).expect("config");
    Engine::new(config, Arc::new(store), EventBus::new(16))
}

/// The engine's store.
pub(super) fn store(engine: &Engine) -> &dyn Store {
    &*engine.store
}

/// `n` finished runs of worker `w` in the last hour, `duration_ms` each.
pub(super) fn finished(engine: &Engine, n: usize, status: TaskStatus, duration_ms: i64) {
    for i in 0..n {
        let created = NOW - 30 * MIN + i as i64;
        record(
            store(engine),
            &Run::new("w", created, 0, status, duration_ms),
        );
    }
}

/// A pending task of `identifier` due at `due`.
pub(super) fn pending(engine: &Engine, identifier: &str, due: i64) -> i64 {
    let new = task(identifier, Priority::Normal, Some(due));
    store(engine).insert_task(&new, due).unwrap()
}

/// A registered worker `identifier` in `state`.
pub(super) fn register(engine: &Engine, identifier: &str, state: WorkerState) {
    let registration = WorkerRegistration {
        identifier: identifier.into(),
        scope: "default".into(),
        class: format!("{identifier}.so:W"),
        title: identifier.into(),
        description: String::new(),
        actions: json!([{"name": "run"}]),
        default_settings: json!({}),
        file: format!("{identifier}.so"),
        file_sha256: "0".repeat(64),
        version: "1.0.0".into(),
        active_when_new: true,
        new_load: true,
    };
    store(engine).upsert_worker(&registration, NOW).unwrap();
    store(engine)
        .set_worker_state(identifier, state, None, NOW)
        .unwrap();
}

/// Last hour: 3 completed (1 s, 2 s, 4.5 s), 1 failed (0.5 s, "boom"), 1 cancelled
/// (0.25 s), 1 running, 1 pending; waits 1, 2, 0, 0, 0.5, 1.5 s; CPU 1 234, 10 and 8 ms;
/// memory 2 000 000 and 1 000 001 bytes. Two hours ago: one more failure, outside the
/// window.
pub(super) fn known_hour(engine: &Engine) {
    let runs = [
        Run::new("w", NOW - 2 * HOUR_MS, 0, Failed, 9_000).error("old"),
        Run::new("w", NOW - 50 * MIN, 1_000, Completed, 1_000)
            .version("1.0")
            .cost(1_234, Some(2_000_000)),
        Run::new("w", NOW - 40 * MIN, 2_000, Completed, 2_000)
            .version("1.1")
            .cost(10, None),
        Run::new("w", NOW - 30 * MIN, 0, Completed, 4_500).version("1.1"),
        Run::new("w", NOW - 20 * MIN, 0, Failed, 500)
            .error("boom")
            .version("1.1"),
        Run::new("v", NOW - 15 * MIN, 500, Cancelled, 250).cost(8, Some(1_000_001)),
        Run::new("v", NOW - 10 * MIN, 1_500, Running, 0),
    ];
    for run in &runs {
        record(store(engine), run);
    }
    pending(engine, "v", NOW - 5 * MIN);
}
