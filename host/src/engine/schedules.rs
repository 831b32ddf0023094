//! Recurring schedules: their validation and changes (for the API, the CLI and
//! `stask.toml`), and the firing thread every host runs.
//!
//! **Each due slot creates one task, whatever the number of hosts.** Every host computes the
//! same slots from the shared rows and tries each one; the store decides
//! ([`crate::store::ScheduleStore::take_slot`]: the slot's key and its task in one
//! transaction), so a host's memory never decides whether a slot ran. The thread sleeps until
//! the earliest next slot of all schedules (re-armed at once when this host changes a
//! schedule; at most [`REREAD_MS`] between two reads, so changes made on other hosts are seen).
//!
//! **Which slots fire.** A schedule fires the slots after `max(last_run_at, fire_after)` up to
//! now. Slots at or before this thread's start that nobody took were missed while no host
//! ran (a live host takes its slots when they come): of those, only the latest runs, once,
//! and only with `catch_up` (the default); the rest never run.

use super::{Engine, EngineError, EngineResult};
use crate::clock::now_ms;
use crate::config::ScheduleConfig;
use crate::cron::CronSchedule;
use crate::model::NewTask;
use crate::store::{ScheduleRow, ScheduleSource, ScheduleSpec, SlotTaken};
use crossbeam_channel::{select, Receiver, Sender};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Longest sleep between two reads of the schedules: how late a change made on another host
/// (a new schedule, an enable) is seen here; the host that made it fires on time anyway.
pub const REREAD_MS: i64 = 5_000;

/// Most slots one schedule fires in one wake-up (a sub-second schedule after a long stall);
/// the rest follow at the next, at once.
const MAX_SLOTS_PER_WAKE: usize = 1_000;

/// Wakes the firing thread when this host changed a schedule (capacity one: wake-ups merge).
pub(crate) struct Wake {
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Default for Wake {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(1);
        Wake { tx, rx }
    }
}

/// A schedule with the time it fires next (`None`: disabled, or no slot left).
#[derive(Debug, Clone)]
pub struct ScheduleState {
    /// The stored schedule.
    pub row: ScheduleRow,
    /// Its next slot (UNIX ms).
    pub next_run_at: Option<i64>,
}

impl Engine {
    /// Checks a schedule before it is stored: the expression and time zone parse, the worker
    /// is known and declares the action, the data is an object, the attempts are in range.
    /// (A worker that is inactive or unloaded is accepted: its slots are skipped, with a
    /// warning, until it runs again.)
    pub fn check_schedule(&self, spec: &ScheduleSpec) -> EngineResult<CronSchedule> {
        if spec.name.trim().is_empty() {
            return Err(EngineError::Invalid("a schedule needs a name".into()));
        }
        let cron = CronSchedule::parse(&spec.cron, &spec.timezone).map_err(EngineError::Invalid)?;
        let Some(worker) = self.store.worker(&spec.identifier)? else {
            // The same answer (and list of known workers) as a task for that worker.
            return Err(self.validate(&task_of(spec, 0)).err().unwrap_or_else(|| {
                EngineError::NotFound(format!("unknown worker '{}'", spec.identifier))
            }));
        };
        if !worker.has_action(&spec.action) {
            return Err(EngineError::NotFound(format!(
                "unknown action '{}' for worker '{}' (valid actions: {})",
                spec.action,
                spec.identifier,
                worker.action_names().join(", ")
            )));
        }
        if !spec.data.is_object() {
            return Err(EngineError::Invalid(
                "schedule data must be a JSON object".into(),
            ));
        }
        if spec.max_attempts == 0 || spec.max_attempts > 100 {
            return Err(EngineError::Invalid(format!(
                "max_attempts must be between 1 and 100, got {}",
                spec.max_attempts
            )));
        }
        Ok(cron)
    }

    /// Every schedule, by name, with its next run.
    pub fn schedules(&self) -> EngineResult<Vec<ScheduleState>> {
        let now = now_ms();
        Ok(self
            .store
            .schedules()?
            .into_iter()
            .map(|row| with_next(row, now))
            .collect())
    }

    /// One schedule.
    pub fn schedule(&self, id: i64) -> EngineResult<ScheduleState> {
        let row = self.store.schedule(id)?.ok_or_else(|| unknown(id))?;
        Ok(with_next(row, now_ms()))
    }

    /// Checks and stores a new schedule; `Conflict` if its name is taken.
    pub fn create_schedule(&self, spec: &ScheduleSpec) -> EngineResult<ScheduleState> {
        self.check_schedule(spec)?;
        let row = self.store.insert_schedule(spec, now_ms())?;
        self.schedules_changed();
        Ok(with_next(row, now_ms()))
    }

    /// Checks and rewrites a schedule.
    pub fn update_schedule(&self, id: i64, spec: &ScheduleSpec) -> EngineResult<ScheduleState> {
        self.check_schedule(spec)?;
        let row = self
            .store
            .update_schedule(id, spec, now_ms())?
            .ok_or_else(|| unknown(id))?;
        self.schedules_changed();
        Ok(with_next(row, now_ms()))
    }

    /// Enables or disables a schedule (enabling does not catch up on the time it was off).
    pub fn set_schedule_enabled(&self, id: i64, enabled: bool) -> EngineResult<ScheduleState> {
        let row = self
            .store
            .set_schedule_enabled(id, enabled, now_ms())?
            .ok_or_else(|| unknown(id))?;
        self.schedules_changed();
        Ok(with_next(row, now_ms()))
    }

    /// Deletes a schedule (the tasks it created stay); returns it as it was.
    pub fn delete_schedule(&self, id: i64) -> EngineResult<ScheduleState> {
        let state = self.schedule(id)?;
        if !self.store.delete_schedule(id)? {
            return Err(unknown(id));
        }
        self.schedules_changed();
        Ok(state)
    }

    /// Stores the `[[schedules]]` of `stask.toml` by name (source `config`), at start. An
    /// entry that does not check (unknown worker or action, ...) is skipped with an error in
    /// the log, so one stale entry does not keep the daemon down; returns how many were stored.
    pub fn load_config_schedules(&self, entries: &[ScheduleConfig]) -> usize {
        let mut stored = 0;
        for entry in entries {
            let spec = entry.spec();
            let result = self
                .check_schedule(&spec)
                .and_then(|_| Ok(self.store.upsert_schedule(&spec, now_ms())?));
            match result {
                Ok(_) => stored += 1,
                Err(e) => tracing::error!(
                    schedule = %spec.name,
                    "stask.toml: schedule '{}' not loaded: {e}", spec.name
                ),
            }
        }
        if stored > 0 {
            tracing::info!(schedules = stored, "schedules loaded from stask.toml");
            self.schedules_changed();
        }
        stored
    }

    /// Re-arms the firing thread (a schedule changed here).
    fn schedules_changed(&self) {
        let _ = self.schedule_wake.tx.try_send(());
    }

    /// Fires `slot` of `row`: checks the task as any create is checked and takes the slot.
    fn fire(&self, row: &ScheduleRow, slot: i64) -> EngineResult<SlotTaken> {
        let task = task_of(&row.spec, slot);
        match self.validate_cached(&task) {
            Some(result) => result?,
            None => {
                self.validate(&task)?;
            }
        }
        let taken = self.store.take_slot(row.id, slot, &task, now_ms())?;
        if let SlotTaken::Created(id) = taken {
            tracing::debug!(schedule = %row.spec.name, task = id, slot, "schedule fired");
            self.created(id, &task);
        }
        Ok(taken)
    }
}

/// The task a schedule's slot creates: due at the slot (shown as its `start_at`).
fn task_of(spec: &ScheduleSpec, slot: i64) -> NewTask {
    // A schedule's key is held while its task is pending or running: a slot that comes while
    // the previous run is still going creates nothing new.
    NewTask {
        identifier: spec.identifier.clone(),
        action: spec.action.clone(),
        data: spec.data.clone(),
        priority: spec.priority,
        start_at: Some(slot),
        max_attempts: spec.max_attempts,
        started_by: None,
        token_id: None,
        unique_key: spec.unique_key.clone(),
        unique_for_secs: None,
        parent_id: None,
        depends_on: Vec::new(),
        on_parent_failure: Default::default(),
    }
}

fn unknown(id: i64) -> EngineError {
    EngineError::NotFound(format!("unknown schedule {id}"))
}

/// The slots after this are the schedule's to fire.
fn fired_until(row: &ScheduleRow) -> i64 {
    row.last_run_at.unwrap_or(i64::MIN).max(row.fire_after)
}

fn with_next(row: ScheduleRow, now: i64) -> ScheduleState {
    let next_run_at = if row.spec.enabled {
        CronSchedule::parse(&row.spec.cron, &row.spec.timezone)
            .ok()
            .and_then(|c| c.next_after(fired_until(&row).max(now)))
    } else {
        None
    };
    ScheduleState { row, next_run_at }
}

/// The firing thread's memory: how far each schedule was handled here, so a slot whose task
/// was refused (worker inactive) is not tried again at every wake-up; and the last complaint
/// per schedule, so a broken schedule is logged once, not at every slot.
#[derive(Default)]
struct Firing {
    handled: HashMap<i64, i64>,
    complaints: HashMap<i64, String>,
}

impl Firing {
    fn complain(&mut self, row: &ScheduleRow, what: String) {
        if self.complaints.get(&row.id) != Some(&what) {
            tracing::warn!(schedule = %row.spec.name, "schedule '{}': {what}", row.spec.name);
            self.complaints.insert(row.id, what);
        }
    }
}

/// The firing thread: runs until the runtime stops.
pub(crate) fn run(engine: &Arc<Engine>, stop: Receiver<()>) {
    let started = now_ms();
    let mut firing = Firing::default();
    let mut fault = false;
    loop {
        let next = match fire_due(engine, started, &mut firing) {
            Ok(next) => {
                if std::mem::take(&mut fault) {
                    tracing::info!("schedules: the database answers again");
                }
                next
            }
            Err(e) => {
                if !std::mem::replace(&mut fault, true) {
                    tracing::warn!("schedules: cannot fire due slots: {e}; trying again");
                }
                Some(now_ms() + 1_000)
            }
        };
        let wait = next.map_or(REREAD_MS, |at| (at - now_ms()).clamp(0, REREAD_MS));
        select! {
            recv(stop) -> _ => return,
            recv(engine.schedule_wake.rx) -> _ => {}
            default(Duration::from_millis(wait as u64)) => {}
        }
    }
}

/// Fires every due slot of every enabled schedule; returns the earliest next slot.
fn fire_due(engine: &Engine, started: i64, firing: &mut Firing) -> EngineResult<Option<i64>> {
    let rows = engine.store.schedules()?;
    firing
        .handled
        .retain(|id, _| rows.iter().any(|r| r.id == *id));
    let mut earliest: Option<i64> = None;
    for row in rows.iter().filter(|r| r.spec.enabled) {
        let cron = match CronSchedule::parse(&row.spec.cron, &row.spec.timezone) {
            Ok(cron) => cron,
            Err(e) => {
                firing.complain(row, e);
                continue;
            }
        };
        let mut after = fired_until(row).max(*firing.handled.get(&row.id).unwrap_or(&i64::MIN));
        // Missed while no host ran: at most the latest, once.
        if after < started {
            if let Some(missed) = cron.latest_at_or_before(started).filter(|&m| m > after) {
                if row.spec.catch_up {
                    fire_one(engine, firing, row, missed)?;
                }
                after = missed;
            }
            after = after.max(started);
        }
        let now = now_ms();
        let mut fired = 0;
        while let Some(slot) = cron.next_after(after).filter(|&s| s <= now) {
            if fired == MAX_SLOTS_PER_WAKE {
                break;
            }
            fire_one(engine, firing, row, slot)?;
            after = slot;
            fired += 1;
        }
        firing.handled.insert(row.id, after);
        if let Some(next) = cron.next_after(after) {
            earliest = Some(earliest.map_or(next, |e| e.min(next)));
        }
    }
    Ok(earliest)
}

/// Fires one slot. A refused task (worker unknown, inactive, unloaded) skips the slot with a
/// warning; a storage error is returned, so the slot is tried again at the next wake-up.
fn fire_one(
    engine: &Engine,
    firing: &mut Firing,
    row: &ScheduleRow,
    slot: i64,
) -> EngineResult<()> {
    match engine.fire(row, slot) {
        Ok(_) => {
            firing.complaints.remove(&row.id);
            Ok(())
        }
        Err(EngineError::Store(e)) => Err(EngineError::Store(e)),
        Err(e) => {
            firing.complain(row, format!("slot skipped: {e}"));
            Ok(())
        }
    }
}

impl ScheduleConfig {
    /// The spec this entry stores (source `config`).
    pub fn spec(&self) -> ScheduleSpec {
        ScheduleSpec {
            name: self.name.clone(),
            identifier: self.identifier.clone(),
            action: self.action.clone(),
            cron: self.cron.clone(),
            timezone: self.timezone.clone(),
            data: self.data.clone(),
            priority: self.priority,
            max_attempts: self.max_attempts,
            unique_key: self.unique_key.clone(),
            enabled: self.enabled,
            catch_up: self.catch_up,
            source: ScheduleSource::Config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::events::EventBus;
    use crate::model::Priority;
    use crate::store::conformance::workers::registration;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Store, WorkerStore};
    use serde_json::json;

    const HOUR: i64 = 3_600_000;

    fn engine() -> (Arc<Engine>, tempfile::TempDir) {
        let home = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&home.path().join("stask.db")).unwrap();
        store.migrate().unwrap();
        store
            .upsert_worker(&registration("w", "s", json!({})), now_ms())
            .unwrap();
        let config = Config::load(Some(home.path().to_owned())).unwrap();
        (
            Engine::new(config, Arc::new(store), EventBus::new(16)),
            home,
        )
    }

    fn spec(name: &str, cron: &str, catch_up: bool) -> ScheduleSpec {
        ScheduleSpec {
            name: name.into(),
            identifier: "w".into(),
            action: "run".into(),
            cron: cron.into(),
            timezone: "UTC".into(),
            data: json!({}),
            priority: Priority::Normal,
            max_attempts: 1,
            unique_key: None,
            enabled: true,
            catch_up,
            source: ScheduleSource::Api,
        }
    }

    fn slots_of(engine: &Engine) -> Vec<i64> {
        let (tasks, _) = engine.store.pending_tasks(1_000).unwrap();
        let mut slots: Vec<i64> = tasks.iter().map(|t| t.start_at.unwrap()).collect();
        slots.sort_unstable();
        slots
    }

    /// Five hours passed with no host: with catch-up the latest missed slot runs once, also
    /// when a second host (or pass) looks again; without it nothing runs, and the next slot is
    /// what the thread sleeps until.
    #[test]
    fn missed_slots_run_once_with_catch_up_and_never_without() {
        let (engine, _home) = engine();
        let now = now_ms();
        engine
            .store
            .insert_schedule(&spec("catch", "@hourly", true), now - 5 * HOUR)
            .unwrap();
        let latest = now / HOUR * HOUR;
        let next = fire_due(&engine, now, &mut Firing::default()).unwrap();
        assert_eq!(slots_of(&engine), vec![latest]);
        assert_eq!(next, Some(latest + HOUR));
        fire_due(&engine, now, &mut Firing::default()).unwrap();
        assert_eq!(
            slots_of(&engine),
            vec![latest],
            "a second look takes nothing more"
        );

        let (engine, _home) = engine_without_catch_up(now);
        let next = fire_due(&engine, now, &mut Firing::default()).unwrap();
        assert!(slots_of(&engine).is_empty());
        assert_eq!(next, Some(latest + HOUR));
    }

    fn engine_without_catch_up(now: i64) -> (Arc<Engine>, tempfile::TempDir) {
        let (engine, home) = engine();
        engine
            .store
            .insert_schedule(&spec("skip", "@hourly", false), now - 5 * HOUR)
            .unwrap();
        (engine, home)
    }

    /// While this host runs, every slot since the schedule's start fires, each once, even if
    /// the thread wakes late (here: three seconds of slots at once).
    #[test]
    fn every_slot_while_the_host_runs_fires_once() {
        let (engine, _home) = engine();
        let now = now_ms();
        let created = now - 3_000;
        engine
            .store
            .insert_schedule(&spec("tick", "* * * * * *", true), created)
            .unwrap();
        let mut firing = Firing::default();
        let next = fire_due(&engine, created - 1_000, &mut firing).unwrap();
        let slots = slots_of(&engine);
        let expected: Vec<i64> = (created / 1_000 + 1..=now / 1_000)
            .map(|s| s * 1_000)
            .collect();
        assert_eq!(slots, expected);
        assert_eq!(next, Some((now / 1_000 + 1) * 1_000));
        fire_due(&engine, created - 1_000, &mut firing).unwrap();
        let again = slots_of(&engine);
        assert!(again.starts_with(&expected) && again.len() <= expected.len() + 1);
    }

    /// A slot whose task would be refused (the worker inactive) is skipped with one warning,
    /// and not tried again at the next wake-up; a disabled schedule fires nothing.
    #[test]
    fn refused_slots_are_skipped_and_disabled_schedules_wait() {
        let (engine, _home) = engine();
        let now = now_ms();
        let s = engine
            .store
            .insert_schedule(&spec("tick", "* * * * * *", true), now - 2_000)
            .unwrap();
        engine.store.set_worker_active("w", false, now).unwrap();
        let mut firing = Firing::default();
        fire_due(&engine, now - 10_000, &mut firing).unwrap();
        assert!(slots_of(&engine).is_empty());
        assert!(
            firing.complaints[&s.id].contains("inactive"),
            "{:?}",
            firing.complaints
        );
        assert!(firing.handled[&s.id] >= now / 1_000 * 1_000 - 1_000);

        engine.store.set_worker_active("w", true, now).unwrap();
        engine.set_schedule_enabled(s.id, false).unwrap();
        let next = fire_due(&engine, now - 10_000, &mut firing).unwrap();
        assert_eq!(next, None);
        assert!(slots_of(&engine).is_empty());
    }

    /// The API's refusals: unknown worker and action, bad expression and zone.
    #[test]
    fn schedules_are_checked_before_they_are_stored() {
        let (engine, _home) = engine();
        let mut bad = spec("x", "@daily", true);
        bad.identifier = "nope".into();
        assert!(matches!(
            engine.create_schedule(&bad),
            Err(EngineError::NotFound(_))
        ));
        let mut bad = spec("x", "@daily", true);
        bad.action = "fly".into();
        assert!(matches!(
            engine.create_schedule(&bad),
            Err(EngineError::NotFound(_))
        ));
        let bad = spec("x", "* * *", true);
        assert!(matches!(
            engine.create_schedule(&bad),
            Err(EngineError::Invalid(_))
        ));
        let mut bad = spec("x", "@daily", true);
        bad.timezone = "Nowhere".into();
        assert!(matches!(
            engine.create_schedule(&bad),
            Err(EngineError::Invalid(_))
        ));
        assert!(engine.schedules().unwrap().is_empty());
        let ok = engine.create_schedule(&spec("x", "@daily", true)).unwrap();
        assert_eq!(
            ok.next_run_at,
            Some((now_ms() / 86_400_000 + 1) * 86_400_000)
        );
    }
}
