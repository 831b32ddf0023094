//! `ScheduleStore` for PostgreSQL: a slot's transaction locks the schedule's row first
//! (`FOR UPDATE`), so hosts taking the same slot queue there; the second then finds the slot's
//! key taken (`ON CONFLICT DO NOTHING`) and creates nothing. Every statement that writes both
//! tables locks the schedule before its slots (delete too), so they cannot deadlock.

use super::tasks::InsertColumns;
use super::{text, PgStore};
use crate::model::NewTask;
use crate::schedules::{
    schedule_from_row, ScheduleRow, ScheduleSpec, ScheduleStore, SlotTaken, KEEP_SLOTS_MS,
    SCHEDULE_COLUMNS,
};
use crate::{StoreError, StoreResult};
use postgres::error::SqlState;
use postgres::types::ToSql;
use std::sync::LazyLock;

static SELECT_ONE: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SCHEDULE_COLUMNS} FROM s_schedules WHERE id = $1"));
static SELECT_ALL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SCHEDULE_COLUMNS} FROM s_schedules ORDER BY name, id"));
static INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO s_schedules (name, identifier, action, cron, timezone, data, priority,
            max_attempts, unique_key, enabled, catch_up, source, fire_after, created_at,
            updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $13)
         RETURNING {SCHEDULE_COLUMNS}"
    )
});
/// [`INSERT`], or the spec written over the row of that name (run times kept; `fire_after`
/// moves only when a disabled schedule is enabled).
static UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO s_schedules (name, identifier, action, cron, timezone, data, priority,
            max_attempts, unique_key, enabled, catch_up, source, fire_after, created_at,
            updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $13)
         ON CONFLICT (name) DO UPDATE SET
            fire_after = CASE WHEN NOT s_schedules.enabled AND excluded.enabled
                              THEN excluded.fire_after ELSE s_schedules.fire_after END,
            identifier = excluded.identifier, action = excluded.action, cron = excluded.cron,
            timezone = excluded.timezone, data = excluded.data, priority = excluded.priority,
            max_attempts = excluded.max_attempts, unique_key = excluded.unique_key,
            enabled = excluded.enabled, catch_up = excluded.catch_up, source = excluded.source,
            updated_at = excluded.updated_at
         RETURNING {SCHEDULE_COLUMNS}"
    )
});
static UPDATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_schedules
            SET fire_after = CASE WHEN NOT enabled AND $11 THEN $14 ELSE fire_after END,
                name = $2, identifier = $3, action = $4, cron = $5, timezone = $6, data = $7,
                priority = $8, max_attempts = $9, unique_key = $10, enabled = $11,
                catch_up = $12, source = $13, updated_at = $14
          WHERE id = $1
         RETURNING {SCHEDULE_COLUMNS}"
    )
});
static SET_ENABLED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_schedules
            SET fire_after = CASE WHEN NOT enabled AND $2 THEN $3 ELSE fire_after END,
                enabled = $2, updated_at = $3
          WHERE id = $1
         RETURNING {SCHEDULE_COLUMNS}"
    )
});
/// The latest run moves only forward (a slow taker of an older slot does not move it back).
const RECORD_RUN: &str = "UPDATE s_schedules
    SET last_task_id = CASE WHEN last_run_at IS NULL OR last_run_at < $2 THEN $3
                            ELSE last_task_id END,
        last_run_at = CASE WHEN last_run_at IS NULL OR last_run_at < $2 THEN $2
                           ELSE last_run_at END
    WHERE id = $1";

/// A spec's values, owned (the call runs on a connection thread).
struct Values {
    name: String,
    identifier: String,
    action: String,
    cron: String,
    timezone: String,
    data: String,
    priority: String,
    max_attempts: i64,
    unique_key: Option<String>,
    enabled: bool,
    catch_up: bool,
    source: String,
}

impl Values {
    /// `$1..$12` of the statements, then `now` as `$13`.
    fn params<'a>(&'a self, now: &'a i64) -> [&'a (dyn ToSql + Sync); 13] {
        [
            &self.name,
            &self.identifier,
            &self.action,
            &self.cron,
            &self.timezone,
            &self.data,
            &self.priority,
            &self.max_attempts,
            &self.unique_key,
            &self.enabled,
            &self.catch_up,
            &self.source,
            now,
        ]
    }

    fn of(spec: &ScheduleSpec) -> Values {
        Values {
            name: text(&spec.name),
            identifier: text(&spec.identifier),
            action: text(&spec.action),
            cron: text(&spec.cron),
            timezone: text(&spec.timezone),
            data: spec.data.to_string(),
            priority: spec.priority.name().into(),
            max_attempts: i64::from(spec.max_attempts),
            unique_key: spec.unique_key.as_deref().map(text),
            enabled: spec.enabled,
            catch_up: spec.catch_up,
            source: spec.source.name().into(),
        }
    }
}

/// A unique-name refusal as [`StoreError::Conflict`]; other errors as they are.
fn named(e: postgres::Error, name: &str) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        return StoreError::Conflict {
            message: format!("a schedule named '{name}' already exists; pick another name"),
            source: Some(crate::SharedError::new(super::PgMessage::new(e))),
        };
    }
    e.into()
}

impl PgStore {
    /// Runs `sql` (returning [`SCHEDULE_COLUMNS`]) with the spec as `$1..$12` and `now` as
    /// `$13`.
    fn write_spec(
        &self,
        sql: &'static str,
        spec: &ScheduleSpec,
        now: i64,
    ) -> StoreResult<ScheduleRow> {
        let v = Values::of(spec);
        self.run(move |conn| {
            let row = conn
                .query_one(sql, &v.params(&now))
                .map_err(|e| named(e, &v.name))?;
            schedule_from_row(&row)
        })
    }
}

impl ScheduleStore for PgStore {
    fn insert_schedule(&self, spec: &ScheduleSpec, now: i64) -> StoreResult<ScheduleRow> {
        self.write_spec(&INSERT, spec, now)
    }

    fn upsert_schedule(&self, spec: &ScheduleSpec, now: i64) -> StoreResult<ScheduleRow> {
        self.write_spec(&UPSERT, spec, now)
    }

    fn update_schedule(
        &self,
        id: i64,
        spec: &ScheduleSpec,
        now: i64,
    ) -> StoreResult<Option<ScheduleRow>> {
        let v = Values::of(spec);
        self.run(move |conn| {
            let rows = conn
                .query(
                    &UPDATE,
                    &[&[&id as &(dyn ToSql + Sync)], &v.params(&now)[..]].concat(),
                )
                .map_err(|e| named(e, &v.name))?;
            rows.first().map(schedule_from_row).transpose()
        })
    }

    fn set_schedule_enabled(
        &self,
        id: i64,
        enabled: bool,
        now: i64,
    ) -> StoreResult<Option<ScheduleRow>> {
        self.run(move |conn| {
            let rows = conn.query(&SET_ENABLED, &[&id, &enabled, &now])?;
            rows.first().map(schedule_from_row).transpose()
        })
    }

    fn delete_schedule(&self, id: i64) -> StoreResult<bool> {
        self.transaction(move |tx, cache| {
            // The schedule first, then its slots: the order a slot's transaction locks them.
            let n = tx.execute(
                &*cache.apply("DELETE FROM s_schedules WHERE id = $1"),
                &[&id],
            )?;
            tx.execute(
                &*cache.apply("DELETE FROM s_schedule_slots WHERE schedule_id = $1"),
                &[&id],
            )?;
            Ok(n == 1)
        })
    }

    fn schedule(&self, id: i64) -> StoreResult<Option<ScheduleRow>> {
        self.run(move |conn| {
            let rows = conn.query(&SELECT_ONE, &[&id])?;
            rows.first().map(schedule_from_row).transpose()
        })
    }

    fn schedules(&self) -> StoreResult<Vec<ScheduleRow>> {
        self.run(move |conn| {
            let rows = conn.query(&SELECT_ALL, &[])?;
            rows.iter().map(schedule_from_row).collect()
        })
    }

    fn take_slot(
        &self,
        schedule_id: i64,
        slot_at: i64,
        task: &NewTask,
        now: i64,
    ) -> StoreResult<SlotTaken> {
        let columns = InsertColumns::of(std::slice::from_ref(task), now);
        self.transaction(move |tx, cache| {
            let enabled = tx.query_opt(
                &*cache.apply("SELECT enabled FROM s_schedules WHERE id = $1 FOR UPDATE"),
                &[&schedule_id],
            )?;
            if enabled.map(|r| r.try_get::<_, bool>(0)).transpose()? != Some(true) {
                return Ok(SlotTaken::Gone);
            }
            let inserted = tx.execute(
                &*cache.apply(
                    "INSERT INTO s_schedule_slots (schedule_id, slot_at, taken_at)
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                ),
                &[&schedule_id, &slot_at, &now],
            )?;
            if inserted == 0 {
                return Ok(SlotTaken::Taken);
            }
            let task_id = columns
                .insert(tx, cache, now)?
                .into_iter()
                .next()
                .map(|inserted| inserted.id)
                .ok_or_else(|| StoreError::internal("the insert returned no id"))?;
            tx.execute(
                &*cache.apply(
                    "UPDATE s_schedule_slots SET task_id = $3
                      WHERE schedule_id = $1 AND slot_at = $2",
                ),
                &[&schedule_id, &slot_at, &task_id],
            )?;
            tx.execute(
                &*cache.apply(RECORD_RUN),
                &[&schedule_id, &slot_at, &task_id],
            )?;
            tx.execute(
                &*cache
                    .apply("DELETE FROM s_schedule_slots WHERE schedule_id = $1 AND slot_at < $2"),
                &[&schedule_id, &(slot_at - KEEP_SLOTS_MS)],
            )?;
            Ok(SlotTaken::Created(task_id))
        })
    }
}
