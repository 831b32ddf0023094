//! `WorkerStore` for PostgreSQL.

use super::{prepared, text, PgStore, Statements};
use crate::model::{PluginFile, WorkerRow, WorkerState};
use crate::rows::{worker_columns, worker_from_row};
use crate::{
    merge_settings, StoreError, StoreResult, WorkerFilter, WorkerRegistration, WorkerStore,
};
use postgres::GenericClient;
use serde_json::Value;

const SELECT_WORKERS: &str = concat!("SELECT ", worker_columns!(), " FROM s_workers");

fn load_worker(
    client: &mut impl GenericClient,
    st: &Statements,
    identifier: &str,
    lock: bool,
) -> StoreResult<Option<WorkerRow>> {
    let sql = format!(
        "{SELECT_WORKERS} WHERE identifier = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    client
        .query_opt(&*st.apply(&sql), &[&identifier])?
        .map(|r| worker_from_row(&r))
        .transpose()
}

impl WorkerStore for PgStore {
    fn upsert_worker(&self, reg: &WorkerRegistration, now: i64) -> StoreResult<WorkerRow> {
        let reg = reg.clone();
        self.transaction(move |tx, st| {
            // Hosts loading the same plugin at the same time: the first inserts, the others
            // find its row (ON CONFLICT) and update it under a row lock, like a reload.
            let mut existing = load_worker(tx, st, &reg.identifier, true)?;
            if existing.is_none() {
                let inserted = tx.execute(
                    &*st.sql(
                        "INSERT INTO s_workers (uuid, identifier, scope, class, active, position,
                            settings, title, description, actions, default_settings, state,
                            file, file_sha256, version, generation, loaded_at, created_at,
                            updated_at)
                     VALUES ($1, $2, $3, $4, $5,
                             (SELECT COALESCE(MAX(position), 0) + 1 FROM s_workers),
                             $6, $7, $8, $9, $10, 'loaded', $11, $12, $13, 1, $14, $14, $14)
                     ON CONFLICT (identifier) DO NOTHING",
                    ),
                    &[
                        &uuid::Uuid::new_v4().to_string(),
                        &reg.identifier,
                        &reg.scope,
                        &reg.class,
                        &reg.active_when_new,
                        &merge_settings(&reg.default_settings, &Value::Null).to_string(),
                        &reg.title,
                        &reg.description,
                        &reg.actions.to_string(),
                        &reg.default_settings.to_string(),
                        &reg.file,
                        &reg.file_sha256,
                        &reg.version,
                        &now,
                    ],
                )?;
                if inserted == 0 {
                    existing = load_worker(tx, st, &reg.identifier, true)?;
                }
            }
            if let Some(existing) = existing {
                let settings = merge_settings(&reg.default_settings, &existing.settings);
                tx.execute(
                    &*st.sql(
                        "UPDATE s_workers SET scope = $2, class = $3, title = $4, description = $5,
                            actions = $6, default_settings = $7, settings = $8, state = 'loaded',
                            load_error = NULL, file = $9, file_sha256 = $10, version = $11,
                            generation = generation + $13::bigint,
                            loaded_at = CASE WHEN $13::bigint = 1 THEN $12 ELSE loaded_at END,
                            updated_at = $12
                      WHERE identifier = $1",
                    ),
                    &[
                        &reg.identifier,
                        &reg.scope,
                        &reg.class,
                        &reg.title,
                        &reg.description,
                        &reg.actions.to_string(),
                        &reg.default_settings.to_string(),
                        &settings.to_string(),
                        &reg.file,
                        &reg.file_sha256,
                        &reg.version,
                        &now,
                        &i64::from(reg.new_load),
                    ],
                )?;
            }
            load_worker(tx, st, &reg.identifier, false)?
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
        let (identifier, load_error) = (identifier.to_owned(), load_error.map(str::to_owned));
        self.run(move |conn| {
            let n = conn.execute(
                "UPDATE s_workers SET state = $2, load_error = $3, updated_at = $4
                  WHERE identifier = $1",
                &[&identifier, &state.name(), &load_error, &now],
            )?;
            Ok(n == 1)
        })
    }

    fn workers(&self, filter: &WorkerFilter) -> StoreResult<Vec<WorkerRow>> {
        let (scope, active) = (filter.scope.clone(), filter.active);
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            // COLLATE "C": byte order, as SQLite sorts text.
            let stmt = prepared(
                client,
                cache,
                "SELECT id, uuid, identifier, scope, class, active, position, settings, hidden,
                        title, description, actions, default_settings, state, load_error, file,
                        file_sha256, version, generation, loaded_at, created_at, updated_at,
                        paused
                   FROM s_workers
                  WHERE ($1::text IS NULL OR scope = $1) AND ($2::boolean IS NULL OR active = $2)
                  ORDER BY position, identifier COLLATE \"C\"",
            )?;
            client
                .query(&stmt, &[&scope, &active])?
                .iter()
                .map(worker_from_row)
                .collect()
        })
    }

    fn worker(&self, identifier: &str) -> StoreResult<Option<WorkerRow>> {
        let identifier = text(identifier);
        self.run(move |conn| {
            let (client, st) = conn.parts();
            load_worker(client, st, &identifier, false)
        })
    }

    fn set_worker_active(&self, identifier: &str, active: bool, now: i64) -> StoreResult<bool> {
        let identifier = text(identifier);
        self.run(move |conn| {
            let n = conn.execute(
                "UPDATE s_workers SET active = $2, updated_at = $3 WHERE identifier = $1",
                &[&identifier, &active, &now],
            )?;
            Ok(n == 1)
        })
    }

    fn set_worker_paused(&self, identifier: &str, paused: bool, now: i64) -> StoreResult<bool> {
        let identifier = text(identifier);
        self.run(move |conn| {
            let n = conn.execute(
                "UPDATE s_workers SET paused = $2, updated_at = $3 WHERE identifier = $1",
                &[&identifier, &paused, &now],
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
        let (identifier, settings) = (text(identifier), settings.to_string());
        self.run(move |conn| {
            let n = conn.execute(
                "UPDATE s_workers SET settings = $2, updated_at = $3 WHERE identifier = $1",
                &[&identifier, &settings, &now],
            )?;
            Ok(n == 1)
        })
    }

    fn delete_orphaned_workers(&self) -> StoreResult<Vec<String>> {
        self.run(|conn| {
            conn.query(
                "DELETE FROM s_workers WHERE state = 'orphaned' RETURNING identifier",
                &[],
            )?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
        })
    }

    fn record_plugin_file(&self, f: &PluginFile) -> StoreResult<()> {
        let f = f.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO s_plugin_files (file, file_sha256, state, identifier, error,
                        error_detail, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (file) DO UPDATE SET file_sha256 = excluded.file_sha256,
                        state = excluded.state, identifier = excluded.identifier,
                        error = excluded.error, error_detail = excluded.error_detail,
                        updated_at = excluded.updated_at",
                &[
                    &f.file,
                    &f.file_sha256,
                    &f.state,
                    &f.identifier,
                    &f.error,
                    &f.error_detail,
                    &f.updated_at,
                ],
            )?;
            Ok(())
        })
    }

    fn plugin_files(&self) -> StoreResult<Vec<PluginFile>> {
        self.run(|conn| {
            conn.query(
                "SELECT file, file_sha256, state, identifier, error, error_detail, updated_at
                       FROM s_plugin_files ORDER BY file COLLATE \"C\"",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(PluginFile {
                    file: r.try_get(0)?,
                    file_sha256: r.try_get(1)?,
                    state: r.try_get(2)?,
                    identifier: r.try_get(3)?,
                    error: r.try_get(4)?,
                    error_detail: r.try_get(5)?,
                    updated_at: r.try_get(6)?,
                })
            })
            .collect()
        })
    }
}
