//! Recurring schedules (`s_schedules`) and the slots they fired (`s_schedule_slots`): what a
//! driver stores for them. When a schedule is due is the engine's business (cron and time
//! zones live in the host crate); the store only makes each slot fire once, whatever the
//! number of hosts: [`ScheduleStore::take_slot`] inserts the slot's row, whose primary key is
//! `(schedule_id, slot_at)`, in the same transaction as the task it creates, so a second taker
//! (another host, or this one after a restart) finds the key taken and creates nothing.

use crate::model::{NewTask, Priority};
use crate::rows::{json_column, narrow, RowRead};
use crate::StoreResult;
use serde_json::Value;

/// Where a schedule was last written from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleSource {
    /// A `[[schedules]]` entry of `stask.toml` (upserted by name at every start).
    Config,
    /// The HTTP API or the CLI.
    Api,
}

impl ScheduleSource {
    /// The stored and shown name (`config`, `api`).
    pub fn name(self) -> &'static str {
        match self {
            ScheduleSource::Config => "config",
            ScheduleSource::Api => "api",
        }
    }

    /// The source a stored name names (anything unknown reads as `api`).
    pub fn from_name(name: &str) -> ScheduleSource {
        match name {
            "config" => ScheduleSource::Config,
            _ => ScheduleSource::Api,
        }
    }
}

/// What a schedule is, as created or updated (the stored row adds ids and run times).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// Unique name.
    pub name: String,
    /// Worker identifier of the tasks it creates.
    pub identifier: String,
    /// Action of that worker.
    pub action: String,
    /// Cron expression (5 fields, 6 with seconds first, or `@hourly`...), checked by the engine.
    pub cron: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    /// Data of every task it creates (a JSON object).
    pub data: Value,
    /// Priority of its tasks.
    pub priority: Priority,
    /// Attempts of its tasks.
    pub max_attempts: u32,
    /// Unique key of its tasks (stored and shown; see the unique-task rules).
    pub unique_key: Option<String>,
    /// Whether it fires.
    pub enabled: bool,
    /// Whether a slot missed while no host ran is run once at the next start.
    pub catch_up: bool,
    /// Where it was written from.
    pub source: ScheduleSource,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    /// Id.
    pub id: i64,
    /// What it is.
    pub spec: ScheduleSpec,
    /// No slot at or before this time (UNIX ms) fires: set when the schedule is created and
    /// each time it is enabled again, so that a re-enabled schedule does not catch up on the
    /// time it was off.
    pub fire_after: i64,
    /// The latest slot taken (UNIX ms), if any.
    pub last_run_at: Option<i64>,
    /// The task that slot created.
    pub last_task_id: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Latest change of its spec.
    pub updated_at: i64,
}

/// What [`ScheduleStore::take_slot`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotTaken {
    /// The slot was free: this task was created for it (or, when the schedule's unique key
    /// was held, the task holding it stands for the slot and nothing new was created).
    Created(i64),
    /// Another taker had the slot already: nothing was created.
    Taken,
    /// The schedule is gone or disabled: nothing was created.
    Gone,
}

/// Slots older than this before the slot being taken are deleted: no host tries a slot older
/// than the schedule's latest run, and one day is far more than any host lags behind.
pub const KEEP_SLOTS_MS: i64 = 24 * 3_600_000;

/// Schedules and their slots.
pub trait ScheduleStore: Send + Sync {
    /// Stores a new schedule; `Err(Conflict)` if one has its name.
    fn insert_schedule(&self, spec: &ScheduleSpec, now: i64) -> StoreResult<ScheduleRow>;
    /// Stores a schedule by name (`stask.toml` at start): inserts it, or rewrites the one with
    /// that name, keeping its id and run times (enabling a disabled one sets `fire_after`).
    fn upsert_schedule(&self, spec: &ScheduleSpec, now: i64) -> StoreResult<ScheduleRow>;
    /// Rewrites a schedule's spec; `None` if unknown, `Err(Conflict)` if another has its name.
    /// Enabling a disabled schedule sets `fire_after` to `now`.
    fn update_schedule(
        &self,
        id: i64,
        spec: &ScheduleSpec,
        now: i64,
    ) -> StoreResult<Option<ScheduleRow>>;
    /// Enables or disables a schedule; `None` if unknown.
    fn set_schedule_enabled(
        &self,
        id: i64,
        enabled: bool,
        now: i64,
    ) -> StoreResult<Option<ScheduleRow>>;
    /// Deletes a schedule and its slots (its tasks stay); false if unknown.
    fn delete_schedule(&self, id: i64) -> StoreResult<bool>;
    /// One schedule.
    fn schedule(&self, id: i64) -> StoreResult<Option<ScheduleRow>>;
    /// Every schedule, by name.
    fn schedules(&self) -> StoreResult<Vec<ScheduleRow>>;
    /// Takes the slot `slot_at` of a schedule and creates `task` for it, atomically: in one
    /// transaction, with the schedule's row locked, it inserts `(schedule_id, slot_at)` (a
    /// duplicate key means another taker had it: [`SlotTaken::Taken`]), inserts the task,
    /// records it as the schedule's latest run (if it is the latest slot) and drops slots
    /// older than [`KEEP_SLOTS_MS`]. A schedule deleted or disabled meanwhile creates nothing.
    fn take_slot(
        &self,
        schedule_id: i64,
        slot_at: i64,
        task: &NewTask,
        now: i64,
    ) -> StoreResult<SlotTaken>;
}

/// The `s_schedules` columns [`schedule_from_row`] reads, in its order.
pub const SCHEDULE_COLUMNS: &str = "id, name, identifier, action, cron, timezone, data, priority, \
     max_attempts, unique_key, enabled, catch_up, source, fire_after, last_run_at, last_task_id, \
     created_at, updated_at";

/// A schedule from a row of [`SCHEDULE_COLUMNS`].
pub fn schedule_from_row(row: &impl RowRead) -> StoreResult<ScheduleRow> {
    let id: i64 = row.col(0)?;
    let data = json_column(&row.col::<String>(6)?, &format!("s_schedules.data of {id}"))?;
    let priority: String = row.col(7)?;
    Ok(ScheduleRow {
        id,
        spec: ScheduleSpec {
            name: row.col(1)?,
            identifier: row.col(2)?,
            action: row.col(3)?,
            cron: row.col(4)?,
            timezone: row.col(5)?,
            data,
            priority: priority.parse().unwrap_or_default(),
            max_attempts: narrow(row.col(8)?),
            unique_key: row.col(9)?,
            enabled: row.col(10)?,
            catch_up: row.col(11)?,
            source: ScheduleSource::from_name(&row.col::<String>(12)?),
        },
        fire_after: row.col(13)?,
        last_run_at: row.col(14)?,
        last_task_id: row.col(15)?,
        created_at: row.col(16)?,
        updated_at: row.col(17)?,
    })
}
