//! `ScheduleStore` for MySQL/MariaDB: as PostgreSQL's, a slot's transaction locks the
//! schedule's row first (`FOR UPDATE`) and then inserts the slot's key, whose duplicate
//! (`ER_DUP_ENTRY`, a [`StoreError::Conflict`]) means another host had it. Deadlocks and lock
//! waits are tried again, as the other writes of several hosts are.

use super::tasks::insert_in;
use super::{params, MysqlStore};
use crate::model::NewTask;
use crate::schedules::{
    schedule_from_row, ScheduleRow, ScheduleSpec, ScheduleStore, SlotTaken, KEEP_SLOTS_MS,
    SCHEDULE_COLUMNS,
};
use crate::{StoreError, StoreResult};
use mysql::prelude::Queryable;
use std::sync::LazyLock;

static SELECT_ONE: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SCHEDULE_COLUMNS} FROM s_schedules WHERE id = ?"));
static SELECT_BY_NAME: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SCHEDULE_COLUMNS} FROM s_schedules WHERE name = ?"));
static SELECT_ALL: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {SCHEDULE_COLUMNS} FROM s_schedules ORDER BY name, id"));

/// The spec's twelve columns, then `fire_after`, `created_at`, `updated_at`.
const INSERT: &str = "INSERT INTO s_schedules (name, identifier, action, cron, timezone, data,
        priority, max_attempts, unique_key, enabled, catch_up, source, fire_after, created_at,
        updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// [`INSERT`], or the spec written over the row of that name. MySQL assigns left to right
/// with the new values visible, so `fire_after` is decided before `enabled` changes.
const UPSERT: &str = "INSERT INTO s_schedules (name, identifier, action, cron, timezone, data,
        priority, max_attempts, unique_key, enabled, catch_up, source, fire_after, created_at,
        updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON DUPLICATE KEY UPDATE
        fire_after = CASE WHEN NOT enabled AND VALUES(enabled) THEN VALUES(fire_after)
                          ELSE fire_after END,
        identifier = VALUES(identifier), action = VALUES(action), cron = VALUES(cron),
        timezone = VALUES(timezone), data = VALUES(data), priority = VALUES(priority),
        max_attempts = VALUES(max_attempts), unique_key = VALUES(unique_key),
        enabled = VALUES(enabled), catch_up = VALUES(catch_up), source = VALUES(source),
        updated_at = VALUES(updated_at)";

/// `fire_after` first (see [`UPSERT`]): now if the schedule was off and is enabled.
const UPDATE: &str = "UPDATE s_schedules
    SET fire_after = CASE WHEN NOT enabled AND ? THEN ? ELSE fire_after END,
        name = ?, identifier = ?, action = ?, cron = ?, timezone = ?, data = ?, priority = ?,
        max_attempts = ?, unique_key = ?, enabled = ?, catch_up = ?, source = ?, updated_at = ?
    WHERE id = ?";

const SET_ENABLED: &str = "UPDATE s_schedules
    SET fire_after = CASE WHEN NOT enabled AND ? THEN ? ELSE fire_after END,
        enabled = ?, updated_at = ?
    WHERE id = ?";

/// The latest run moves only forward; `last_task_id` is assigned before `last_run_at`
/// changes (left to right).
const RECORD_RUN: &str = "UPDATE s_schedules
    SET last_task_id = CASE WHEN last_run_at IS NULL OR last_run_at < ? THEN ?
                            ELSE last_task_id END,
        last_run_at = CASE WHEN last_run_at IS NULL OR last_run_at < ? THEN ?
                           ELSE last_run_at END
    WHERE id = ?";

/// A duplicate name as a conflict that says so (the cause kept).
fn named(e: StoreError, name: &str) -> StoreError {
    match e {
        StoreError::Conflict { source, .. } => StoreError::Conflict {
            message: format!("a schedule named '{name}' already exists; pick another name"),
            source,
        },
        other => other,
    }
}

impl MysqlStore {
    fn load(&self, sql: &'static str, key: mysql::Value) -> StoreResult<Option<ScheduleRow>> {
        let row: Option<mysql::Row> = self.conn()?.exec_first(&*self.sql(sql), (key,))?;
        row.as_ref().map(schedule_from_row).transpose()
    }

    fn write_spec(&self, sql: &'static str, spec: &ScheduleSpec, now: i64) -> StoreResult<u64> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            &*self.sql(sql),
            params![
                spec.name.as_str(),
                spec.identifier.as_str(),
                spec.action.as_str(),
                spec.cron.as_str(),
                spec.timezone.as_str(),
                spec.data.to_string(),
                spec.priority.name(),
                i64::from(spec.max_attempts),
                spec.unique_key.as_deref(),
                spec.enabled,
                spec.catch_up,
                spec.source.name(),
                now,
                now,
                now,
            ],
        )
        .map_err(|e| named(e.into(), &spec.name))?;
        Ok(conn.last_insert_id())
    }
}

impl ScheduleStore for MysqlStore {
    fn insert_schedule(&self, spec: &ScheduleSpec, now: i64) -> StoreResult<ScheduleRow> {
        let id = self.write_spec(INSERT, spec, now)?;
        self.load(&SELECT_ONE, id.into())?
            .ok_or_else(|| StoreError::internal(format!("schedule {id} vanished")))
    }

    fn upsert_schedule(&self, spec: &ScheduleSpec, now: i64) -> StoreResult<ScheduleRow> {
        self.write_spec(UPSERT, spec, now)?;
        self.load(&SELECT_BY_NAME, spec.name.as_str().into())?
            .ok_or_else(|| StoreError::internal(format!("schedule '{}' vanished", spec.name)))
    }

    fn update_schedule(
        &self,
        id: i64,
        spec: &ScheduleSpec,
        now: i64,
    ) -> StoreResult<Option<ScheduleRow>> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            &*self.sql(UPDATE),
            params![
                spec.enabled,
                now,
                spec.name.as_str(),
                spec.identifier.as_str(),
                spec.action.as_str(),
                spec.cron.as_str(),
                spec.timezone.as_str(),
                spec.data.to_string(),
                spec.priority.name(),
                i64::from(spec.max_attempts),
                spec.unique_key.as_deref(),
                spec.enabled,
                spec.catch_up,
                spec.source.name(),
                now,
                id,
            ],
        )
        .map_err(|e| named(e.into(), &spec.name))?;
        if conn.affected_rows() == 0 {
            return Ok(None);
        }
        drop(conn);
        self.load(&SELECT_ONE, id.into())
    }

    fn set_schedule_enabled(
        &self,
        id: i64,
        enabled: bool,
        now: i64,
    ) -> StoreResult<Option<ScheduleRow>> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            &*self.sql(SET_ENABLED),
            params![enabled, now, enabled, now, id],
        )?;
        if conn.affected_rows() == 0 {
            return Ok(None);
        }
        drop(conn);
        self.load(&SELECT_ONE, id.into())
    }

    fn delete_schedule(&self, id: i64) -> StoreResult<bool> {
        self.retrying(|tx| {
            // The schedule first, then its slots: the order a slot's transaction locks them.
            tx.exec_drop(&*self.sql("DELETE FROM s_schedules WHERE id = ?"), (id,))?;
            let n = tx.affected_rows();
            tx.exec_drop(
                &*self.sql("DELETE FROM s_schedule_slots WHERE schedule_id = ?"),
                (id,),
            )?;
            Ok(n == 1)
        })
    }

    fn schedule(&self, id: i64) -> StoreResult<Option<ScheduleRow>> {
        self.load(&SELECT_ONE, id.into())
    }

    fn schedules(&self) -> StoreResult<Vec<ScheduleRow>> {
        let rows: Vec<mysql::Row> = self.conn()?.query(&*self.sql(&SELECT_ALL))?;
        rows.iter().map(schedule_from_row).collect()
    }

    fn take_slot(
        &self,
        schedule_id: i64,
        slot_at: i64,
        task: &NewTask,
        now: i64,
    ) -> StoreResult<SlotTaken> {
        self.retrying(|tx| {
            let enabled: Option<bool> = tx.exec_first(
                &*self.sql("SELECT enabled FROM s_schedules WHERE id = ? FOR UPDATE"),
                (schedule_id,),
            )?;
            if enabled != Some(true) {
                return Ok(SlotTaken::Gone);
            }
            let inserted = tx.exec_drop(
                &*self.sql(
                    "INSERT INTO s_schedule_slots (schedule_id, slot_at, taken_at)
                     VALUES (?, ?, ?)",
                ),
                (schedule_id, slot_at, now),
            );
            match inserted.map_err(StoreError::from) {
                Ok(()) => {}
                // The key is taken: another host created this slot's task.
                Err(StoreError::Conflict { .. }) => return Ok(SlotTaken::Taken),
                Err(e) => return Err(e),
            }
            let task_id = insert_in(tx, self, std::slice::from_ref(task), now)?
                .into_iter()
                .next()
                .map(|inserted| inserted.id)
                .ok_or_else(|| StoreError::internal("the insert returned no id"))?;
            tx.exec_drop(
                &*self.sql(
                    "UPDATE s_schedule_slots SET task_id = ? WHERE schedule_id = ? AND slot_at = ?",
                ),
                (task_id, schedule_id, slot_at),
            )?;
            tx.exec_drop(
                &*self.sql(RECORD_RUN),
                (slot_at, task_id, slot_at, slot_at, schedule_id),
            )?;
            tx.exec_drop(
                &*self.sql("DELETE FROM s_schedule_slots WHERE schedule_id = ? AND slot_at < ?"),
                (schedule_id, slot_at - KEEP_SLOTS_MS),
            )?;
            Ok(SlotTaken::Created(task_id))
        })
    }
}
