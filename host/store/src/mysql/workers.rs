//! `WorkerStore` for MySQL.

use super::{code, from_ms, params, to_ms, MysqlStore, ER_DUP_ENTRY};
use crate::model::{PluginFile, WorkerRow, WorkerState};
use crate::rows::worker_from_row;
use crate::{
    merge_settings, StoreError, StoreResult, WorkerFilter, WorkerRegistration, WorkerStore,
};
use mysql::prelude::Queryable;
use serde_json::Value;
use std::sync::LazyLock;

/// The columns `worker_from_row` reads, with the `DATETIME(3)` ones as UNIX milliseconds.
static SELECT_WORKERS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT id, uuid, identifier, scope, class, active, position, settings, hidden, title,
                description, actions, default_settings, state, load_error, file, file_sha256,
                version, generation, loaded_at, {created_at}, {updated_at}, paused
           FROM s_workers",
        created_at = to_ms("created_at"),
        updated_at = to_ms("updated_at"),
    )
});

static SELECT_WORKER: LazyLock<String> =
    LazyLock::new(|| format!("{} WHERE identifier = ?", *SELECT_WORKERS));
static SELECT_WORKER_LOCKED: LazyLock<String> =
    LazyLock::new(|| format!("{} WHERE identifier = ? FOR UPDATE", *SELECT_WORKERS));

/// Workers in position order; identifiers in byte order, as SQLite sorts text.
static LIST_WORKERS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} WHERE (? IS NULL OR scope = ?) AND (? IS NULL OR active = ?)
          ORDER BY position, identifier COLLATE utf8mb4_bin",
        *SELECT_WORKERS
    )
});

static INSERT_WORKER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO s_workers (uuid, identifier, scope, class, active, position, settings, title,
                description, actions, default_settings, state, file, file_sha256, version,
                generation, loaded_at, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'loaded', ?, ?, ?, 1, ?, {now}, {now})",
        now = from_ms("?"),
    )
});

static UPDATE_WORKER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_workers SET scope = ?, class = ?, title = ?, description = ?, actions = ?,
                default_settings = ?, settings = ?, state = 'loaded', load_error = NULL,
                file = ?, file_sha256 = ?, version = ?, generation = generation + ?,
                loaded_at = CASE WHEN ? = 1 THEN ? ELSE loaded_at END, updated_at = {now}
          WHERE identifier = ?",
        now = from_ms("?"),
    )
});

static SET_STATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_workers SET state = ?, load_error = ?, updated_at = {} WHERE identifier = ?",
        from_ms("?")
    )
});
static SET_ACTIVE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_workers SET active = ?, updated_at = {} WHERE identifier = ?",
        from_ms("?")
    )
});
static SET_PAUSED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_workers SET paused = ?, updated_at = {} WHERE identifier = ?",
        from_ms("?")
    )
});
static SET_SETTINGS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE s_workers SET settings = ?, updated_at = {} WHERE identifier = ?",
        from_ms("?")
    )
});

fn load_worker(
    store: &MysqlStore,
    q: &mut impl Queryable,
    identifier: &str,
    lock: bool,
) -> StoreResult<Option<WorkerRow>> {
    let sql = if lock {
        SELECT_WORKER_LOCKED.as_str()
    } else {
        SELECT_WORKER.as_str()
    };
    q.exec_first::<mysql::Row, _, _>(&*store.sql(sql), params![identifier])?
        .map(|r| worker_from_row(&r))
        .transpose()
}

impl WorkerStore for MysqlStore {
    fn upsert_worker(&self, reg: &WorkerRegistration, now: i64) -> StoreResult<WorkerRow> {
        let now = super::clamp_ms(now);
        self.retrying(|tx| {
            // Hosts loading the same plugin at the same time: the first inserts, the others
            // hit its unique key and update its row under a row lock, like a reload.
            let mut existing = load_worker(self, tx, &reg.identifier, true)?;
            if existing.is_none() {
                let position: Option<i64> = tx.query_first(
                    &*self.sql("SELECT COALESCE(MAX(position), 0) + 1 FROM s_workers"),
                )?;
                let inserted = tx.exec_drop(
                    &*self.sql(INSERT_WORKER.as_str()),
                    params![
                        uuid::Uuid::new_v4().to_string(),
                        reg.identifier.as_str(),
                        reg.scope.as_str(),
                        reg.class.as_str(),
                        reg.active_when_new,
                        position.unwrap_or(1),
                        merge_settings(&reg.default_settings, &Value::Null).to_string(),
                        reg.title.as_str(),
                        reg.description.as_str(),
                        reg.actions.to_string(),
                        reg.default_settings.to_string(),
                        reg.file.as_str(),
                        reg.file_sha256.as_str(),
                        reg.version.as_str(),
                        now,
                        now,
                        now,
                    ],
                );
                match inserted {
                    Ok(()) => {}
                    // A statement error leaves the transaction open in MySQL: read the winner.
                    Err(e) if code(&e) == Some(ER_DUP_ENTRY) => {
                        existing = load_worker(self, tx, &reg.identifier, true)?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(existing) = existing {
                let settings = merge_settings(&reg.default_settings, &existing.settings);
                let new_load = i64::from(reg.new_load);
                tx.exec_drop(
                    &*self.sql(UPDATE_WORKER.as_str()),
                    params![
                        reg.scope.as_str(),
                        reg.class.as_str(),
                        reg.title.as_str(),
                        reg.description.as_str(),
                        reg.actions.to_string(),
                        reg.default_settings.to_string(),
                        settings.to_string(),
                        reg.file.as_str(),
                        reg.file_sha256.as_str(),
                        reg.version.as_str(),
                        new_load,
                        new_load,
                        now,
                        now,
                        reg.identifier.as_str(),
                    ],
                )?;
            }
            load_worker(self, tx, &reg.identifier, false)?
                .ok_or_else(|| StoreError::internal("upserted row vanished"))
        })
    }

    fn set_worker_state(
        &self,
        identifier: &str,
        state: WorkerState,
        load_error: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            &*self.sql(SET_STATE.as_str()),
            params![state.name(), load_error, super::clamp_ms(now), identifier],
        )?;
        Ok(conn.affected_rows() == 1)
    }

    fn workers(&self, filter: &WorkerFilter) -> StoreResult<Vec<WorkerRow>> {
        let (scope, active) = (filter.scope.as_deref(), filter.active);
        let rows: Vec<mysql::Row> = self.conn()?.exec(
            &*self.sql(LIST_WORKERS.as_str()),
            params![scope, scope, active, active],
        )?;
        rows.iter().map(worker_from_row).collect()
    }

    fn worker(&self, identifier: &str) -> StoreResult<Option<WorkerRow>> {
        load_worker(self, &mut self.conn()?, identifier, false)
    }

    fn set_worker_active(&self, identifier: &str, active: bool, now: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            &*self.sql(SET_ACTIVE.as_str()),
            params![active, super::clamp_ms(now), identifier],
        )?;
        Ok(conn.affected_rows() == 1)
    }

    fn set_worker_paused(&self, identifier: &str, paused: bool, now: i64) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            &*self.sql(SET_PAUSED.as_str()),
            params![paused, super::clamp_ms(now), identifier],
        )?;
        Ok(conn.affected_rows() == 1)
    }

    fn set_worker_settings(
        &self,
        identifier: &str,
        settings: &Value,
        now: i64,
    ) -> StoreResult<bool> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            &*self.sql(SET_SETTINGS.as_str()),
            params![settings.to_string(), super::clamp_ms(now), identifier],
        )?;
        Ok(conn.affected_rows() == 1)
    }

    fn delete_orphaned_workers(&self) -> StoreResult<Vec<String>> {
        self.transaction(|tx| {
            let gone: Vec<String> = tx.query(&*self.sql(
                "SELECT identifier FROM s_workers WHERE state = 'orphaned' ORDER BY id FOR UPDATE",
            ))?;
            tx.query_drop(&*self.sql("DELETE FROM s_workers WHERE state = 'orphaned'"))?;
            Ok(gone)
        })
    }

    fn record_plugin_file(&self, f: &PluginFile) -> StoreResult<()> {
        self.conn()?.exec_drop(
            &*self.sql(
                "INSERT INTO s_plugin_files (file, file_sha256, state, identifier, error,
                        error_detail, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE file_sha256 = VALUES(file_sha256),
                        state = VALUES(state), identifier = VALUES(identifier),
                        error = VALUES(error), error_detail = VALUES(error_detail),
                        updated_at = VALUES(updated_at)",
            ),
            params![
                f.file.as_str(),
                f.file_sha256.as_deref(),
                f.state.as_str(),
                f.identifier.as_deref(),
                f.error.as_deref(),
                f.error_detail.as_deref(),
                f.updated_at,
            ],
        )?;
        Ok(())
    }

    fn plugin_files(&self) -> StoreResult<Vec<PluginFile>> {
        use crate::rows::RowRead;
        let rows: Vec<mysql::Row> = self.conn()?.query(&*self.sql(
            "SELECT file, file_sha256, state, identifier, error, error_detail, updated_at
               FROM s_plugin_files ORDER BY file",
        ))?;
        rows.iter()
            .map(|r| {
                Ok(PluginFile {
                    file: r.col(0)?,
                    file_sha256: r.col(1)?,
                    state: r.col(2)?,
                    identifier: r.col(3)?,
                    error: r.col(4)?,
                    error_detail: r.col(5)?,
                    updated_at: r.col(6)?,
                })
            })
            .collect()
    }
}
