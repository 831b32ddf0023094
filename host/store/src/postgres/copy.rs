//! Copying an SQLite installation into PostgreSQL (`stask migrate-to`): workers with their
//! settings, plugin file records, tokens (hashes only, as stored) and the whole task history
//! with its logs. Sessions are not copied (browsers log in again).
//!
//! Everything is written in one PostgreSQL transaction, so a failed copy leaves the target as
//! it was. Rows keep their ids (tasks' `token_id` names token ids, logs name task ids), so
//! the target must not have tasks or tokens of its own unless the caller forces a replace.

use super::{PgStore, StoreError, StoreResult, TablePrefix};
use crate::Store;
use postgres::types::ToSql;
use rusqlite::OpenFlags;
use std::path::Path;

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bool,
}
use Kind::{Bool, Int, Text};

/// A table to copy: name, columns in order, and whether `id` orders (and pages) it.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    by_id: bool,
}

const TABLES: &[Table] = &[
    Table {
        name: "s_workers",
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("identifier", Text),
            ("scope", Text),
            ("class", Text),
            ("active", Bool),
            ("position", Int),
            ("settings", Text),
            ("hidden", Int),
            ("title", Text),
            ("description", Text),
            ("actions", Text),
            ("default_settings", Text),
            ("state", Text),
            ("load_error", Text),
            ("file", Text),
            ("file_sha256", Text),
            ("version", Text),
            ("generation", Int),
            ("loaded_at", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        by_id: true,
    },
    Table {
        name: "s_plugin_files",
        columns: &[
            ("file", Text),
            ("file_sha256", Text),
            ("state", Text),
            ("identifier", Text),
            ("error", Text),
            ("error_detail", Text),
            ("updated_at", Int),
        ],
        by_id: false,
    },
    Table {
        name: "s_tokens",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("token_hash", Text),
            ("prefix", Text),
            ("created_at", Int),
            ("last_used_at", Int),
            ("revoked_at", Int),
        ],
        by_id: true,
    },
    Table {
        name: "s_tasks",
        columns: &[
            ("id", Int),
            ("identifier", Text),
            ("action", Text),
            ("status", Int),
            ("message", Text),
            ("started_by", Int),
            ("meta", Text),
            ("result", Text),
            ("result_file", Text),
            ("start_at", Int),
            ("run_at", Int),
            ("finished_at", Int),
            ("attempts", Int),
            ("max_attempts", Int),
            ("priority", Text),
            ("priority_rank", Int),
            ("progress", Int),
            ("processed", Int),
            ("total", Int),
            ("eta_seconds", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("started_at", Int),
            ("lease_owner", Text),
            ("lease_token", Int),
            ("lease_expires_at", Int),
            ("cancel_requested", Bool),
            ("worker_version", Text),
            ("last_error", Text),
            ("duration_ms", Int),
            ("cpu_ms", Int),
            ("memory_bytes", Int),
            ("token_id", Int),
        ],
        by_id: true,
    },
    Table {
        name: "s_task_logs",
        columns: &[
            ("id", Int),
            ("task_id", Int),
            ("attempt", Int),
            ("level", Int),
            ("at", Int),
            ("line", Text),
        ],
        by_id: true,
    },
];

/// Rows read and written per statement.
const BATCH: usize = 5_000;

/// What a copy did: rows per table, in copy order.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// `(table, rows copied)`.
    pub tables: Vec<(&'static str, u64)>,
    /// Rows the target had and that a forced copy replaced: `(table, rows)`.
    pub replaced: Vec<(&'static str, i64)>,
}

/// One column's values of a batch, typed for PostgreSQL's arrays.
enum ColumnValues {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
}

impl ColumnValues {
    fn new(kind: Kind) -> ColumnValues {
        match kind {
            Int => ColumnValues::Int(Vec::with_capacity(BATCH)),
            Text => ColumnValues::Text(Vec::with_capacity(BATCH)),
            Bool => ColumnValues::Bool(Vec::with_capacity(BATCH)),
        }
    }

    fn push(&mut self, row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<()> {
        match self {
            ColumnValues::Int(v) => v.push(row.get(i)?),
            ColumnValues::Text(v) => v.push(row.get(i)?),
            ColumnValues::Bool(v) => v.push(row.get::<_, Option<i64>>(i)?.map(|n| n != 0)),
        }
        Ok(())
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            ColumnValues::Int(v) => v,
            ColumnValues::Text(v) => v,
            ColumnValues::Bool(v) => v,
        }
    }
}

/// Copies the SQLite database at `source` (migrated first) into `target` (migrated too).
/// Refuses with [`StoreError::Conflict`] when the target already has tasks or tokens, unless
/// `force`: then the target's workers, plugin files, tokens, sessions, tasks and logs are
/// replaced.
pub fn copy_from_sqlite(source: &Path, target: &PgStore, force: bool) -> StoreResult<CopyReport> {
    // The source is this home's database, read with the same table prefix as the target.
    let prefix = TablePrefix::clone(&target.prefix);
    let options = crate::OpenOptions {
        table_prefix: prefix.clone(),
        ..Default::default()
    };
    crate::sqlite::SqliteStore::open_with(source, &options)?.migrate()?;
    target.migrate()?;
    let sqlite = rusqlite::Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::database(format!("cannot open {}", source.display()), e))?;
    let source = source.to_owned();
    target.run(move |conn| {
        let (client, st) = conn.parts();
        let mut tx = client.transaction()?;
        // Nothing else writes these tables while the copy runs (hosts wait at their next
        // write, after the commit).
        tx.batch_execute(&st.sql(
            "LOCK TABLE s_workers, s_plugin_files, s_tokens, s_sessions, s_tasks, s_task_logs
                IN EXCLUSIVE MODE",
        ))?;
        let count = |tx: &mut postgres::Transaction<'_>, table: &str| -> StoreResult<i64> {
            Ok(tx
                .query_one(&*st.apply(&format!("SELECT COUNT(*) FROM {table}")), &[])?
                .try_get(0)?)
        };
        let (tasks, tokens) = (count(&mut tx, "s_tasks")?, count(&mut tx, "s_tokens")?);
        if (tasks > 0 || tokens > 0) && !force {
            return Err(StoreError::conflict(format!(
                "the target database already has {tasks} tasks and {tokens} tokens; \
                 copy into an empty database, or pass --force to replace them"
            )));
        }
        let mut report = CopyReport::default();
        for table in [
            "s_workers",
            "s_plugin_files",
            "s_tokens",
            "s_sessions",
            "s_tasks",
            "s_task_logs",
        ] {
            let n = count(&mut tx, table)?;
            if n > 0 {
                report.replaced.push((table, n));
            }
        }
        tx.batch_execute(&st.sql(
            "DELETE FROM s_task_logs; DELETE FROM s_tasks; DELETE FROM s_sessions;
             DELETE FROM s_tokens; DELETE FROM s_plugin_files; DELETE FROM s_workers;",
        ))?;
        for table in TABLES {
            let copied = copy_table(&sqlite, &mut tx, &prefix, table).map_err(|e| {
                e.doing(format!("copying {} from {}", table.name, source.display()))
            })?;
            let stored = count(&mut tx, table.name)?;
            if stored != copied as i64 {
                return Err(StoreError::internal(format!(
                    "{}: {copied} rows read but {stored} in the target; nothing was copied",
                    table.name
                )));
            }
            if table.by_id {
                // Identity columns continue after the copied ids.
                tx.query_one(
                    &*st.apply(&format!(
                        "SELECT setval(pg_get_serial_sequence('{0}', 'id'),
                                       COALESCE(MAX(id), 0) + 1, false) FROM {0}",
                        table.name
                    )),
                    &[],
                )?;
            }
            report.tables.push((table.name, copied));
        }
        tx.commit()?;
        Ok(report)
    })
}

fn copy_table(
    sqlite: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    prefix: &TablePrefix,
    table: &Table,
) -> StoreResult<u64> {
    let names: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    let list = names.join(", ");
    let read = if table.by_id {
        format!(
            "SELECT {list} FROM {} WHERE id > ?1 ORDER BY id LIMIT {BATCH}",
            table.name
        )
    } else {
        format!("SELECT {list} FROM {} WHERE ?1 IS NOT NULL", table.name)
    };
    let arrays: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            let ty = match kind {
                Int => "bigint",
                Text => "text",
                Bool => "boolean",
            };
            format!("${}::{ty}[]", i + 1)
        })
        .collect();
    let write = format!(
        "INSERT INTO {} ({list}) SELECT * FROM unnest({})",
        table.name,
        arrays.join(", ")
    );
    let write = tx.prepare(&prefix.apply(&write))?;
    let mut stmt = sqlite
        .prepare(&prefix.apply(&read))
        .map_err(|e| StoreError::database("", e))?;
    let mut after = i64::MIN;
    let mut copied = 0u64;
    loop {
        let mut columns: Vec<ColumnValues> = table
            .columns
            .iter()
            .map(|(_, kind)| ColumnValues::new(*kind))
            .collect();
        let mut rows = stmt
            .query([after])
            .map_err(|e| StoreError::database("", e))?;
        let mut n = 0usize;
        while let Some(row) = rows.next().map_err(|e| StoreError::database("", e))? {
            for (i, column) in columns.iter_mut().enumerate() {
                column
                    .push(row, i)
                    .map_err(|e| StoreError::database("", e))?;
            }
            if table.by_id {
                after = row.get(0).map_err(|e| StoreError::database("", e))?;
            }
            n += 1;
        }
        if n == 0 {
            break;
        }
        let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(ColumnValues::as_sql).collect();
        tx.execute(&write, &params)?;
        copied += n as u64;
        if !table.by_id || n < BATCH {
            break;
        }
    }
    Ok(copied)
}
