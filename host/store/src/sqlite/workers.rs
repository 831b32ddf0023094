//! `WorkerStore` for SQLite.

use super::SqliteStore;
use crate::model::{PluginFile, WorkerRow, WorkerState};
use crate::rows::{worker_from_row, WORKER_COLUMNS};
use crate::{
    merge_settings, StoreResult, TablePrefix, WorkerFilter, WorkerRegistration, WorkerStore,
};
use rusqlite::{params, Connection};
use serde_json::Value;

fn load_worker(
    conn: &Connection,
    p: &TablePrefix,
    identifier: &str,
) -> StoreResult<Option<WorkerRow>> {
    let sql = format!("SELECT {WORKER_COLUMNS} FROM s_workers WHERE identifier = ?1");
    conn.prepare_cached(&p.apply(&sql))?
        .query_and_then([identifier], |r| worker_from_row(r))?
        .next()
        .transpose()
}

impl WorkerStore for SqliteStore {
    fn upsert_worker(&self, reg: &WorkerRegistration, now: i64) -> StoreResult<WorkerRow> {
        self.write(|conn| {
            let tx = conn.transaction()?;
            let existing = load_worker(&tx, &self.prefix, &reg.identifier)?;
            let settings = merge_settings(
                &reg.default_settings,
                existing.as_ref().map_or(&Value::Null, |w| &w.settings),
            );
            if existing.is_some() {
                tx.execute(
                    &self.sql(
                        "UPDATE s_workers SET scope = ?2, class = ?3, title = ?4, description = ?5,
                            actions = ?6, default_settings = ?7, settings = ?8, state = 'loaded',
                            load_error = NULL, file = ?9, file_sha256 = ?10, version = ?11,
                            generation = generation + ?13,
                            loaded_at = CASE WHEN ?13 = 1 THEN ?12 ELSE loaded_at END,
                            updated_at = ?12
                      WHERE identifier = ?1",
                    ),
                    params![
                        reg.identifier,
                        reg.scope,
                        reg.class,
                        reg.title,
                        reg.description,
                        reg.actions.to_string(),
                        reg.default_settings.to_string(),
                        settings.to_string(),
                        reg.file,
                        reg.file_sha256,
                        reg.version,
                        now,
                        i64::from(reg.new_load)
                    ],
                )?;
            } else {
                let position: i64 = tx.query_row(
                    &self.sql("SELECT COALESCE(MAX(position), 0) + 1 FROM s_workers"),
                    [],
                    |r| r.get(0),
                )?;
                tx.execute(
                    &self.sql(
                        "INSERT INTO s_workers (uuid, identifier, scope, class, active, position,
                            settings, title, description, actions, default_settings, state,
                            file, file_sha256, version, generation, loaded_at, created_at,
                            updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'loaded', ?12, ?13,
                             ?14, 1, ?15, ?15, ?15)",
                    ),
                    params![
                        uuid::Uuid::new_v4().to_string(),
                        reg.identifier,
                        reg.scope,
                        reg.class,
                        reg.active_when_new,
                        position,
                        settings.to_string(),
                        reg.title,
                        reg.description,
                        reg.actions.to_string(),
                        reg.default_settings.to_string(),
                        reg.file,
                        reg.file_sha256,
                        reg.version,
                        now
                    ],
                )?;
            }
            let row = load_worker(&tx, &self.prefix, &reg.identifier)?;
            tx.commit()?;
            row.ok_or_else(|| crate::StoreError::internal("upserted row vanished"))
        })
    }

    fn set_worker_state(
        &self,
        identifier: &str,
        state: WorkerState,
        load_error: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        self.write(|conn| {
            let n = conn.execute(
                &self.sql(
                    "UPDATE s_workers SET state = ?2, load_error = ?3, updated_at = ?4
                  WHERE identifier = ?1",
                ),
                params![identifier, state.name(), load_error, now],
            )?;
            Ok(n == 1)
        })
    }

    fn workers(&self, filter: &WorkerFilter) -> StoreResult<Vec<WorkerRow>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {WORKER_COLUMNS} FROM s_workers
                  WHERE (?1 IS NULL OR scope = ?1) AND (?2 IS NULL OR active = ?2)
                  ORDER BY position, identifier"
            );
            conn.prepare_cached(&self.prefix.apply(&sql))?
                .query_and_then(params![filter.scope, filter.active], |r| worker_from_row(r))?
                .collect()
        })
    }

    fn worker(&self, identifier: &str) -> StoreResult<Option<WorkerRow>> {
        self.read(|conn| load_worker(conn, &self.prefix, identifier))
    }

    fn set_worker_active(&self, identifier: &str, active: bool, now: i64) -> StoreResult<bool> {
        self.write(|conn| {
            let n = conn.execute(
                &self
                    .sql("UPDATE s_workers SET active = ?2, updated_at = ?3 WHERE identifier = ?1"),
                params![identifier, active, now],
            )?;
            Ok(n == 1)
        })
    }

    fn set_worker_paused(&self, identifier: &str, paused: bool, now: i64) -> StoreResult<bool> {
        self.write(|conn| {
            let n = conn.execute(
                &self
                    .sql("UPDATE s_workers SET paused = ?2, updated_at = ?3 WHERE identifier = ?1"),
                params![identifier, paused, now],
            )?;
            Ok(n == 1)
        })
    }

    fn set_worker_settings(
        &self,
        identifier: &str,
        settings: &Value,
        now: i64,
    ) -> StoreResult<bool> {
        self.write(|conn| {
            let n = conn.execute(
                &self.sql(
                    "UPDATE s_workers SET settings = ?2, updated_at = ?3 WHERE identifier = ?1",
                ),
                params![identifier, settings.to_string(), now],
            )?;
            Ok(n == 1)
        })
    }

    fn delete_orphaned_workers(&self) -> StoreResult<Vec<String>> {
        self.write(|conn| {
            let ids = conn
                .prepare(
                    &self
                        .sql("DELETE FROM s_workers WHERE state = 'orphaned' RETURNING identifier"),
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(ids)
        })
    }

    fn record_plugin_file(&self, f: &PluginFile) -> StoreResult<()> {
        self.write(|conn| {
            conn.execute(
                &self.sql(
                    "INSERT INTO s_plugin_files (file, file_sha256, state, identifier, error,
                        error_detail, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (file) DO UPDATE SET file_sha256 = excluded.file_sha256,
                        state = excluded.state, identifier = excluded.identifier,
                        error = excluded.error, error_detail = excluded.error_detail,
                        updated_at = excluded.updated_at",
                ),
                params![
                    f.file,
                    f.file_sha256,
                    f.state,
                    f.identifier,
                    f.error,
                    f.error_detail,
                    f.updated_at
                ],
            )?;
            Ok(())
        })
    }

    fn plugin_files(&self) -> StoreResult<Vec<PluginFile>> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&self.sql(
                    "SELECT file, file_sha256, state, identifier, error, error_detail, updated_at
                       FROM s_plugin_files ORDER BY file",
                ))?
                .query_map([], |r| {
                    Ok(PluginFile {
                        file: r.get(0)?,
                        file_sha256: r.get(1)?,
                        state: r.get(2)?,
                        identifier: r.get(3)?,
                        error: r.get(4)?,
                        error_detail: r.get(5)?,
                        updated_at: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
