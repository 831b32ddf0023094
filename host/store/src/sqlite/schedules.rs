//! `ScheduleStore` for SQLite: one writer, so a slot's transaction is serial by itself; the
//! slot's primary key still decides (a process restarted on the same file finds it taken).

use super::tasks::insert_one;
use super::SqliteStore;
use crate::model::NewTask;
use crate::schedules::{
    schedule_from_row, ScheduleRow, ScheduleSpec, ScheduleStore, SlotTaken, KEEP_SLOTS_MS,
    SCHEDULE_COLUMNS,
};
use crate::{StoreError, StoreResult};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::sync::LazyLock;

static SELECT_ONE: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SCHEDULE_COLUMNS} FROM s_schedules WHERE id = ?1"));
static SELECT_BY_NAME: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SCHEDULE_COLUMNS} FROM s_schedules WHERE name = ?1"));
static SELECT_ALL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SCHEDULE_COLUMNS} FROM s_schedules ORDER BY name, id"));

/// Columns ?1..?12 of a spec, ?13 now.
const INSERT: &str = "INSERT INTO s_schedules (name, identifier, action, cron, timezone, data,
        priority, max_attempts, unique_key, enabled, catch_up, source, fire_after, created_at,
        updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?13)";

/// [`INSERT`], or the spec written over the row of that name (run times kept; `fire_after`
/// moves only when a disabled schedule is enabled).
const UPSERT: &str = "INSERT INTO s_schedules (name, identifier, action, cron, timezone, data,
        priority, max_attempts, unique_key, enabled, catch_up, source, fire_after, created_at,
        updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?13)
    ON CONFLICT (name) DO UPDATE SET
        fire_after = CASE WHEN NOT s_schedules.enabled AND excluded.enabled
                          THEN excluded.fire_after ELSE s_schedules.fire_after END,
        identifier = excluded.identifier, action = excluded.action, cron = excluded.cron,
        timezone = excluded.timezone, data = excluded.data, priority = excluded.priority,
        max_attempts = excluded.max_attempts, unique_key = excluded.unique_key,
        enabled = excluded.enabled, catch_up = excluded.catch_up, source = excluded.source,
        updated_at = excluded.updated_at";

/// ?1 id, ?2..?13 the spec, ?14 now.
const UPDATE: &str = "UPDATE s_schedules
    SET fire_after = CASE WHEN NOT enabled AND ?11 THEN ?14 ELSE fire_after END,
        name = ?2, identifier = ?3, action = ?4, cron = ?5, timezone = ?6, data = ?7,
        priority = ?8, max_attempts = ?9, unique_key = ?10, enabled = ?11, catch_up = ?12,
        source = ?13, updated_at = ?14
    WHERE id = ?1";

const SET_ENABLED: &str = "UPDATE s_schedules
    SET fire_after = CASE WHEN NOT enabled AND ?2 THEN ?3 ELSE fire_after END,
        enabled = ?2, updated_at = ?3
    WHERE id = ?1";

/// The latest run moves only forward (a slow taker of an older slot does not move it back).
const RECORD_RUN: &str = "UPDATE s_schedules
    SET last_task_id = CASE WHEN last_run_at IS NULL OR last_run_at < ?2 THEN ?3
                            ELSE last_task_id END,
        last_run_at = CASE WHEN last_run_at IS NULL OR last_run_at < ?2 THEN ?2
                           ELSE last_run_at END
    WHERE id = ?1";

fn load(
    conn: &Connection,
    store: &SqliteStore,
    sql: &'static str,
    key: impl rusqlite::ToSql,
) -> StoreResult<Option<ScheduleRow>> {
    conn.prepare_cached(&store.sql(sql))?
        .query_and_then([key], |r| schedule_from_row(r))?
        .next()
        .transpose()
}

/// A unique-name refusal as [`StoreError::Conflict`]; other errors as they are.
fn named(e: rusqlite::Error, name: &str) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
        return StoreError::Conflict {
            message: format!("a schedule named '{name}' already exists; pick another name"),
            source: Some(crate::SharedError::new(e)),
        };
    }
    e.into()
}

impl ScheduleStore for SqliteStore {
    fn insert_schedule(&self, spec: &ScheduleSpec, now: i64) -> StoreResult<ScheduleRow> {
        self.write(|conn| {
            conn.execute(&self.sql(INSERT), params_from_iter(spec_params(spec, now)))
                .map_err(|e| named(e, &spec.name))?;
            let id = conn.last_insert_rowid();
            load(conn, self, &SELECT_ONE, id)?
                .ok_or_else(|| StoreError::internal(format!("schedule {id} vanished")))
        })
    }

    fn upsert_schedule(&self, spec: &ScheduleSpec, now: i64) -> StoreResult<ScheduleRow> {
        self.write(|conn| {
            conn.execute(&self.sql(UPSERT), params_from_iter(spec_params(spec, now)))?;
            load(conn, self, &SELECT_BY_NAME, spec.name.as_str())?
                .ok_or_else(|| StoreError::internal(format!("schedule '{}' vanished", spec.name)))
        })
    }

    fn update_schedule(
        &self,
        id: i64,
        spec: &ScheduleSpec,
        now: i64,
    ) -> StoreResult<Option<ScheduleRow>> {
        self.write(|conn| {
            let data = spec.data.to_string();
            let n = conn
                .execute(
                    &self.sql(UPDATE),
                    params![
                        id,
                        spec.name,
                        spec.identifier,
                        spec.action,
                        spec.cron,
                        spec.timezone,
                        data,
                        spec.priority.name(),
                        spec.max_attempts,
                        spec.unique_key,
                        spec.enabled,
                        spec.catch_up,
                        spec.source.name(),
                        now
                    ],
                )
                .map_err(|e| named(e, &spec.name))?;
            if n == 0 {
                return Ok(None);
            }
            load(conn, self, &SELECT_ONE, id)
        })
    }

    fn set_schedule_enabled(
        &self,
        id: i64,
        enabled: bool,
        now: i64,
    ) -> StoreResult<Option<ScheduleRow>> {
        self.write(|conn| {
            let n = conn.execute(&self.sql(SET_ENABLED), params![id, enabled, now])?;
            if n == 0 {
                return Ok(None);
            }
            load(conn, self, &SELECT_ONE, id)
        })
    }

    fn delete_schedule(&self, id: i64) -> StoreResult<bool> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let n = tx.execute(&self.sql("DELETE FROM s_schedules WHERE id = ?1"), [id])?;
            tx.execute(
                &self.sql("DELETE FROM s_schedule_slots WHERE schedule_id = ?1"),
                [id],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
    }

    fn schedule(&self, id: i64) -> StoreResult<Option<ScheduleRow>> {
        self.read(|conn| load(conn, self, &SELECT_ONE, id))
    }

    fn schedules(&self) -> StoreResult<Vec<ScheduleRow>> {
        self.read(|conn| {
            conn.prepare_cached(&self.sql(&SELECT_ALL))?
                .query_and_then([], |r| schedule_from_row(r))?
                .collect()
        })
    }

    fn take_slot(
        &self,
        schedule_id: i64,
        slot_at: i64,
        task: &NewTask,
        now: i64,
    ) -> StoreResult<SlotTaken> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let enabled: Option<bool> = tx
                .query_row(
                    &self.sql("SELECT enabled FROM s_schedules WHERE id = ?1"),
                    [schedule_id],
                    |r| r.get(0),
                )
                .optional()?;
            if enabled != Some(true) {
                return Ok(SlotTaken::Gone);
            }
            let inserted = tx.execute(
                &self.sql(
                    "INSERT INTO s_schedule_slots (schedule_id, slot_at, taken_at)
                     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                ),
                params![schedule_id, slot_at, now],
            )?;
            if inserted == 0 {
                return Ok(SlotTaken::Taken);
            }
            let task_id = insert_one(&tx, &self.prefix, task, now)?.id;
            tx.execute(
                &self.sql(
                    "UPDATE s_schedule_slots SET task_id = ?3
                      WHERE schedule_id = ?1 AND slot_at = ?2",
                ),
                params![schedule_id, slot_at, task_id],
            )?;
            tx.execute(
                &self.sql(RECORD_RUN),
                params![schedule_id, slot_at, task_id],
            )?;
            tx.execute(
                &self.sql("DELETE FROM s_schedule_slots WHERE schedule_id = ?1 AND slot_at < ?2"),
                params![schedule_id, slot_at - KEEP_SLOTS_MS],
            )?;
            tx.commit()?;
            Ok(SlotTaken::Created(task_id))
        })
    }
}

/// A spec as [`INSERT`]'s parameters, with `now`.
fn spec_params(spec: &ScheduleSpec, now: i64) -> Vec<Box<dyn rusqlite::ToSql>> {
    vec![
        Box::new(spec.name.clone()),
        Box::new(spec.identifier.clone()),
        Box::new(spec.action.clone()),
        Box::new(spec.cron.clone()),
        Box::new(spec.timezone.clone()),
        Box::new(spec.data.to_string()),
        Box::new(spec.priority.name()),
        Box::new(spec.max_attempts),
        Box::new(spec.unique_key.clone()),
        Box::new(spec.enabled),
        Box::new(spec.catch_up),
        Box::new(spec.source.name()),
        Box::new(now),
    ]
}
