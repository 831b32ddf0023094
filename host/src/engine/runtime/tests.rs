//! The runtime's threads with fake in-process workers over a real SQLite store in a
//! temporary folder: no plugin is built. Every wait is on an event (a channel, the runtime's
//! idle condition variable); none is a fixed sleep.

use super::super::progress::LiveTask;
use super::super::resources::{RunCost, RunMeter};
use super::super::Engine;
use super::fault_store::FaultStore;
use super::{InService, WorkerRunner, WorkerVersion};
use crate::config::Config;
use crate::events::{Event, EventBus};
use crate::model::{Priority, TaskStatus};
use crate::plugins::TaskHooks;
use crate::store::conformance::task;
use crate::store::sqlite::SqliteStore;
use crate::store::{ClaimRequest, Store};
use crossbeam_channel::{unbounded, Receiver, Sender};
use parking_lot::Mutex;
use serde_json::json;
use stask_plugin_api::protocol::{RunOutcome, RunRequest};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest any awaited event may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

type Behaviour = dyn Fn(&RunRequest, &LiveTask) -> RunOutcome + Send + Sync;

/// A fake worker version: tells `started` which task it starts, then behaves as told.
struct Fake {
    started: Sender<i64>,
    behaviour: Box<Behaviour>,
}

impl WorkerVersion for Fake {
    fn run(&self, request: &RunRequest, hooks: &LiveTask, _: &RunMeter) -> (RunOutcome, RunCost) {
        let _ = self.started.send(request.task_id);
        ((self.behaviour)(request, hooks), RunCost::default())
    }
}

/// Fake workers by identifier; each can be deactivated.
#[derive(Default)]
struct FakeWorkers {
    versions: Mutex<HashMap<String, (serde_json::Value, Arc<Fake>)>>,
    inactive: Mutex<HashSet<String>>,
}

impl FakeWorkers {
    /// Adds worker `identifier` with `settings`; returns the receiver of the ids it starts.
    fn add(
        &self,
        identifier: &str,
        settings: serde_json::Value,
        behaviour: impl Fn(&RunRequest, &LiveTask) -> RunOutcome + Send + Sync + 'static,
    ) -> Receiver<i64> {
        let (started, starts) = unbounded();
        let fake = Arc::new(Fake {
            started,
            behaviour: Box::new(behaviour),
        });
        self.versions
            .lock()
            .insert(identifier.into(), (settings, fake));
        starts
    }

    fn deactivate(&self, identifier: &str) {
        self.inactive.lock().insert(identifier.into());
    }
}

impl WorkerRunner for FakeWorkers {
    fn runnable(&self) -> Vec<String> {
        let inactive = self.inactive.lock();
        let mut ids: Vec<String> = self
            .versions
            .lock()
            .keys()
            .filter(|id| !inactive.contains(*id))
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    fn limits(&self, runnable: &[String]) -> Vec<crate::store::WorkerLimit> {
        let versions = self.versions.lock();
        runnable
            .iter()
            .filter_map(|id| crate::store::WorkerLimit::from_settings(id, &versions.get(id)?.0))
            .collect()
    }

    fn in_service(&self, identifier: &str) -> Option<InService> {
        if self.inactive.lock().contains(identifier) {
            return None;
        }
        let (settings, fake) = self.versions.lock().get(identifier)?.clone();
        Some(InService {
            label: "fake+1".into(),
            settings,
            version: fake,
        })
    }
}

/// Completes at once, or ends as cancelled when its cancel flag was set before it started.
fn quick(_: &RunRequest, hooks: &LiveTask) -> RunOutcome {
    if hooks.is_cancelled() {
        return RunOutcome::Cancelled { message: None };
    }
    RunOutcome::Completed {
        result: Some("ok".into()),
        file: None,
    }
}

/// Works until asked to stop (by a user, the timeout or the host stopping), as a cooperative
/// worker does: it checks its flag between steps of work.
fn until_cancelled(_: &RunRequest, hooks: &LiveTask) -> RunOutcome {
    while !hooks.is_cancelled() {
        std::thread::sleep(Duration::from_millis(2)); // one step of "work"
    }
    RunOutcome::Cancelled { message: None }
}

/// A worker that ignores its cancel flag: it returns only once `gate` is opened (a message
/// or the sender dropped).
fn blocked_on(gate: Receiver<()>) -> impl Fn(&RunRequest, &LiveTask) -> RunOutcome {
    move |_, _| {
        let _ = gate.recv();
        RunOutcome::Completed {
            result: None,
            file: None,
        }
    }
}

struct Harness {
    engine: Arc<Engine>,
    workers: Arc<FakeWorkers>,
    finished: Receiver<(i64, String)>,
}

fn config(home: &std::path::Path) -> Config {
    let mut config = Config::load(Some(home.to_owned())).expect("config");
    config.workers = 1;
    config.prefetch = 8;
    config
}

fn temp_home() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("stask-runtime-{}", uuid::Uuid::new_v4()))
}

fn sqlite(home: &std::path::Path) -> Arc<dyn Store> {
    let store = SqliteStore::open(&home.join("storage").join("stask.db")).expect("open");
    store.migrate().expect("migrate");
    Arc::new(store)
}

impl Harness {
    fn new(tune: impl FnOnce(&mut Config)) -> Harness {
        let home = temp_home();
        let store = sqlite(&home);
        Harness::over(home, store, tune)
    }

    fn over(
        home: std::path::PathBuf,
        store: Arc<dyn Store>,
        tune: impl FnOnce(&mut Config),
    ) -> Harness {
        let mut config = config(&home);
        tune(&mut config);
        let workers = Arc::new(FakeWorkers::default());
        let engine = Engine::with_workers(config, store, EventBus::new(1024), workers.clone());
        let finished = finished_events(&engine);
        Harness {
            engine,
            workers,
            finished,
        }
    }

    fn insert(&self, identifier: &str, priority: Priority) -> i64 {
        self.engine
            .store
            .insert_task(&task(identifier, priority, None), crate::clock::now_ms())
            .expect("insert")
    }

    fn status(&self, id: i64) -> crate::model::Task {
        self.engine.store.task(id).expect("read").expect("task")
    }

    /// Waits for task `id` to finish; returns its status name.
    fn await_finished(&self, id: i64) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.finished.recv_timeout(left) {
                Ok((done, status)) if done == id => return status,
                Ok(_) => continue,
                Err(_) => panic!("task {id} did not finish within {PATIENCE:?}"),
            }
        }
    }

    /// Waits until nothing is in flight and no run is in the hub.
    fn await_idle(&self) {
        let deadline = Instant::now() + PATIENCE;
        assert!(
            self.engine
                .runtime_state
                .wait_idle(&self.engine.hub, Some(deadline)),
            "the runtime did not become idle"
        );
    }
}

/// The ids of finished tasks with their status, as published on the event bus.
fn finished_events(engine: &Engine) -> Receiver<(i64, String)> {
    let mut events = engine.events.subscribe();
    let (tx, rx) = unbounded();
    std::thread::spawn(move || {
        while let Ok(event) = events.blocking_recv() {
            if let Event::TaskFinished { id, status, .. } = event {
                if tx.send((id, status)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

fn next(starts: &Receiver<i64>) -> i64 {
    starts
        .recv_timeout(PATIENCE)
        .expect("a run started in time")
}

/// Makes the dispatcher claim ahead at once (as after a few short runs).
fn short_tasks_seen(engine: &Engine) {
    engine.runtime_state.note_run_time(1);
}

#[test]
fn runs_claimed_tasks_by_priority_then_due_time_then_id() {
    let h = Harness::new(|c| c.prefetch = 0);
    let starts = h.workers.add("w", json!({}), quick);
    let low = h.insert("w", Priority::Low);
    let normal_1 = h.insert("w", Priority::Normal);
    let high = h.insert("w", Priority::High);
    let normal_2 = h.insert("w", Priority::Normal);
    let store = h.engine.store.clone();
    let earlier = store
        .insert_task(
            &task("w", Priority::Normal, Some(1)),
            crate::clock::now_ms(),
        )
        .unwrap();
    let runtime = h.engine.start();
    let order: Vec<i64> = (0..5).map(|_| next(&starts)).collect();
    h.await_finished(low);
    runtime.shutdown(Duration::from_secs(5));
    assert_eq!(order, vec![high, earlier, normal_1, normal_2, low]);
    assert_eq!(h.status(low).status, TaskStatus::Completed);
}

/// One high-priority task blocks the only pool thread; the others are claimed ahead with it.
fn blocked_with_claimed_ahead(h: &Harness, queued: usize) -> (i64, Vec<i64>) {
    short_tasks_seen(&h.engine);
    let blocker = h.insert("b", Priority::High);
    let waiting: Vec<i64> = (0..queued)
        .map(|_| h.insert("q", Priority::Normal))
        .collect();
    (blocker, waiting)
}

#[test]
fn shutdown_gives_back_tasks_claimed_ahead_and_interrupts_runs_without_an_attempt() {
    let h = Harness::new(|_| {});
    let b_starts = h.workers.add("b", json!({}), until_cancelled);
    let q_starts = h.workers.add("q", json!({}), quick);
    let (blocker, waiting) = blocked_with_claimed_ahead(&h, 3);
    let runtime = h.engine.start();
    assert_eq!(next(&b_starts), blocker);
    // One claim took them all (9 free slots): they wait in the ready queue.
    for id in &waiting {
        assert_eq!(h.status(*id).status, TaskStatus::Preparing);
    }
    runtime.shutdown(Duration::from_secs(10));
    assert!(q_starts.try_recv().is_err(), "no claimed-ahead task ran");
    let b = h.status(blocker);
    assert_eq!(b.status, TaskStatus::Pending);
    assert_eq!(b.attempts, 0, "an interrupted run gives its attempt back");
    assert!(b.message.starts_with("Interrupted"), "{}", b.message);
    for id in &waiting {
        let t = h.status(*id);
        assert_eq!((t.status, t.attempts), (TaskStatus::Pending, 0));
        assert_eq!(t.lease_owner, None);
    }
}

#[test]
fn deactivating_a_worker_gives_back_its_claimed_ahead_tasks() {
    let h = Harness::new(|_| {});
    let (gate, gate_rx) = unbounded();
    let b_starts = h.workers.add("b", json!({}), blocked_on(gate_rx));
    let q_starts = h.workers.add("q", json!({}), quick);
    let (blocker, waiting) = blocked_with_claimed_ahead(&h, 2);
    let runtime = h.engine.start();
    assert_eq!(next(&b_starts), blocker);
    h.workers.deactivate("q");
    h.engine.release_unrunnable();
    for id in &waiting {
        let t = h.status(*id);
        assert_eq!((t.status, t.attempts), (TaskStatus::Pending, 0));
    }
    assert_eq!(
        h.engine.runtime_state.in_flight(),
        1,
        "only the blocker is left"
    );
    drop(gate);
    assert_eq!(h.await_finished(blocker), "completed");
    runtime.shutdown(Duration::from_secs(5));
    assert!(
        q_starts.try_recv().is_err(),
        "the deactivated worker ran nothing"
    );
}

#[test]
fn cancels_pending_waiting_and_running_tasks() {
    let h = Harness::new(|_| {});
    let b_starts = h.workers.add("b", json!({}), until_cancelled);
    let q_starts = h.workers.add("q", json!({}), quick);
    let later = h
        .engine
        .store
        .insert_task(
            &task("q", Priority::Normal, Some(i64::MAX / 2)),
            crate::clock::now_ms(),
        )
        .unwrap();
    let (blocker, waiting) = blocked_with_claimed_ahead(&h, 1);
    let runtime = h.engine.start();
    assert_eq!(next(&b_starts), blocker);
    // Pending (due later): cancelled at once.
    assert_eq!(
        h.engine.cancel(later).unwrap().status,
        TaskStatus::Cancelled
    );
    // Waiting in the ready queue: the flag is kept for its start.
    h.engine.cancel(waiting[0]).unwrap();
    assert!(h
        .engine
        .runtime_state
        .early_cancels
        .lock()
        .contains(&waiting[0]));
    // Running: the worker sees its flag and stops.
    h.engine.cancel(blocker).unwrap();
    assert_eq!(h.await_finished(blocker), "cancelled");
    assert_eq!(next(&q_starts), waiting[0]);
    assert_eq!(h.await_finished(waiting[0]), "cancelled");
    runtime.shutdown(Duration::from_secs(5));
    assert!(h.engine.runtime_state.early_cancels.lock().is_empty());
}

#[test]
fn a_cancel_of_a_task_leased_by_another_host_is_not_kept_here() {
    let h = Harness::new(|_| {});
    let id = h.insert("w", Priority::Normal);
    let claimed = h
        .engine
        .store
        .claim(&ClaimRequest {
            owner: "another-host",
            limit: 1,
            now: crate::clock::now_ms(),
            lease_ms: 60_000,
            identifiers: &["w".to_owned()],
            ..Default::default()
        })
        .unwrap()
        .tasks;
    assert_eq!(claimed.len(), 1);
    let task = h.engine.cancel(id).unwrap();
    assert!(task.cancel_requested);
    assert!(
        h.engine.runtime_state.early_cancels.lock().is_empty(),
        "the other host's heartbeat carries the cancel; nothing here would remove it"
    );
}

#[test]
fn a_run_that_ignores_its_timeout_is_abandoned_and_its_slot_replaced() {
    let h = Harness::new(|c| c.shutdown_grace_secs = 0);
    let (gate, gate_rx) = unbounded();
    let stuck_starts = h
        .workers
        .add("stuck", json!({"timeout": 1}), blocked_on(gate_rx));
    let q_starts = h.workers.add("q", json!({}), quick);
    let mut new = task("stuck", Priority::High, None);
    new.max_attempts = 1;
    let stuck = h
        .engine
        .store
        .insert_task(&new, crate::clock::now_ms())
        .unwrap();
    let runtime = h.engine.start();
    assert_eq!(next(&stuck_starts), stuck);
    assert_eq!(h.await_finished(stuck), "failed");
    let t = h.status(stuck);
    assert!(t.message.contains("timed out after 1s"), "{}", t.message);
    assert_eq!(h.engine.hub.abandoned().len(), 1);
    // The only pool thread is still blocked: a replacement runs the next task.
    let after = h.insert("q", Priority::Normal);
    assert_eq!(next(&q_starts), after);
    assert_eq!(h.await_finished(after), "completed");
    drop(gate);
    h.await_idle();
    runtime.shutdown(Duration::from_secs(5));
    // The abandoned run's late outcome changed nothing.
    assert_eq!(h.status(stuck).status, TaskStatus::Failed);
}

#[test]
fn an_outcome_after_the_lease_was_taken_over_is_refused() {
    let h = Harness::new(|_| {});
    let (gate, gate_rx) = unbounded();
    let starts = h.workers.add("b", json!({}), blocked_on(gate_rx));
    let id = h.insert("b", Priority::Normal);
    let runtime = h.engine.start();
    assert_eq!(next(&starts), id);
    // Another host recovers the lease (as if this one had died) and claims the task.
    let store = h.engine.store.clone();
    store.flush_starts(crate::clock::now_ms()).unwrap();
    let leases = store.expired_leases(i64::MAX).unwrap();
    let finishes: Vec<_> = leases
        .iter()
        .map(|l| crate::task_state::after_lost_lease(l, h.engine.backoff()))
        .collect();
    assert_eq!(store.recover(&finishes, i64::MAX).unwrap(), vec![true]);
    let theirs = store
        .claim(&ClaimRequest {
            owner: "another-host",
            limit: 1,
            now: i64::MAX / 4,
            lease_ms: 60_000,
            identifiers: &["b".to_owned()],
            ..Default::default()
        })
        .unwrap()
        .tasks;
    assert_eq!(theirs.len(), 1);
    drop(gate);
    h.await_idle();
    runtime.shutdown(Duration::from_secs(5));
    let t = h.status(id);
    assert_eq!(
        t.status,
        TaskStatus::Preparing,
        "the stale completion was refused"
    );
    assert_eq!(t.lease_owner.as_deref(), Some("another-host"));
    assert!(
        h.finished.try_recv().is_err(),
        "a refused outcome is not published"
    );
}

#[test]
fn progress_a_failed_flush_kept_is_written_by_the_next_successful_one() {
    let home = temp_home();
    let (faulty, flushes) = FaultStore::new(sqlite(&home));
    let faulty = Arc::new(faulty);
    faulty.fail_flushes.store(true, Ordering::SeqCst);
    let h = Harness::over(home, faulty.clone(), |_| {});
    let (reported_tx, reported) = unbounded();
    let (gate, gate_rx) = unbounded::<()>();
    h.workers.add("p", json!({}), move |_, hooks| {
        hooks.progress(40, 4, 10, "four of ten");
        hooks.log(stask_plugin_api::LogLevel::Warning, "step one");
        let _ = reported_tx.send(());
        let _ = gate_rx.recv();
        RunOutcome::Completed {
            result: None,
            file: None,
        }
    });
    let id = h.insert("p", Priority::Normal);
    let runtime = h.engine.start();
    reported
        .recv_timeout(PATIENCE)
        .expect("the worker reported");
    // The second refused flush after the report began after it, so it took the report.
    while flushes.try_recv().is_ok() {}
    for _ in 0..2 {
        assert!(!flushes.recv_timeout(PATIENCE).expect("a flush"));
    }
    let logs = |store: &dyn Store| -> Vec<String> {
        store
            .task_logs(id, 100)
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect()
    };
    assert!(!logs(&*h.engine.store).contains(&"step one".to_owned()));
    faulty.fail_flushes.store(false, Ordering::SeqCst);
    loop {
        if flushes.recv_timeout(PATIENCE).expect("a flush") {
            break;
        }
    }
    assert!(logs(&*h.engine.store).contains(&"step one".to_owned()));
    let t = h.status(id);
    assert_eq!((t.progress, t.processed, t.total), (40, Some(4), Some(10)));
    drop(gate);
    assert_eq!(h.await_finished(id), "completed");
    runtime.shutdown(Duration::from_secs(5));
}

/// A worker with `concurrency` 1 runs one task at a time even with free pool slots and
/// prefetch on; its other tasks stay pending (never claimed ahead into the ready queue), and
/// another worker's tasks behind them run meanwhile.
#[test]
fn a_capped_worker_runs_within_its_cap_and_does_not_hold_up_others() {
    let h = Harness::new(|c| c.workers = 4);
    short_tasks_seen(&h.engine);
    let (gate, gated) = crossbeam_channel::bounded::<()>(0);
    let capped = h
        .workers
        .add("c", json!({"concurrency": 1}), blocked_on(gated));
    h.workers.add("w", json!({}), quick);
    let c: Vec<i64> = (0..3).map(|_| h.insert("c", Priority::High)).collect();
    let w: Vec<i64> = (0..2).map(|_| h.insert("w", Priority::Low)).collect();
    let runtime = h.engine.start();
    let first = next(&capped);
    // The other worker's tasks finish (in any order) while the capped one runs.
    let mut left: HashSet<i64> = w.iter().copied().collect();
    while !left.is_empty() {
        let (id, status) = h.finished.recv_timeout(PATIENCE).expect("a finish in time");
        assert!(
            left.remove(&id),
            "only the other worker's tasks finish: {id}"
        );
        assert_eq!(status, "completed");
    }
    let waiting: Vec<TaskStatus> = c
        .iter()
        .filter(|&&id| id != first)
        .map(|&id| h.status(id).status)
        .collect();
    assert_eq!(waiting, [TaskStatus::Pending, TaskStatus::Pending]);
    assert!(capped.try_recv().is_err(), "a second capped run started");
    drop(gate);
    let mut left: HashSet<i64> = c.iter().copied().collect();
    while !left.is_empty() {
        let (id, status) = h.finished.recv_timeout(PATIENCE).expect("a finish in time");
        assert!(left.remove(&id));
        assert_eq!(status, "completed");
    }
    h.await_idle();
    runtime.shutdown(Duration::from_secs(5));
}

/// A deep backlog of short tasks is claimed in large batches (the prefetch grows while claims
/// come back full, and the dispatcher waits for the ready queue to run down to its refill
/// mark), never more than the capacity at a time, and each task is claimed once.
#[test]
fn a_deep_backlog_is_claimed_in_large_batches_within_the_capacity() {
    let home = temp_home();
    let (faulty, _) = FaultStore::new(sqlite(&home));
    let faulty = Arc::new(faulty);
    let h = Harness::over(home, faulty.clone(), |c| c.workers = 2);
    short_tasks_seen(&h.engine);
    h.workers.add("w", json!({}), quick);
    // Below the event bus's capacity (1024), so that no finish event is lost to lag.
    let n = 1_000;
    let batch = vec![task("w", Priority::Normal, None); n];
    h.engine
        .store
        .insert_tasks(&batch, crate::clock::now_ms())
        .expect("insert");
    let runtime = h.engine.start();
    for _ in 0..n {
        let (_, status) = h.finished.recv_timeout(PATIENCE).expect("a finish in time");
        assert_eq!(status, "completed");
    }
    h.await_idle();
    runtime.shutdown(Duration::from_secs(5));
    let claims = faulty.claims.lock().clone();
    let mut ids: Vec<i64> = claims.iter().flat_map(|c| c.ids.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "every task claimed, none twice");
    assert_eq!(claims.iter().map(|c| c.ids.len()).sum::<usize>(), n);
    let capacity = 2 + super::shared::DEEP_PREFETCH_MAX;
    assert!(claims.iter().all(|c| c.asked <= capacity), "{claims:?}");
    let biggest = claims.iter().map(|c| c.ids.len()).max().unwrap_or(0);
    assert!(
        biggest > 2 + 8,
        "the prefetch grew with the backlog: {biggest}"
    );
    let made = claims.iter().filter(|c| !c.ids.is_empty()).count();
    assert!(
        made * 20 < n,
        "{made} claims for {n} tasks: not one per run"
    );
}
