//! What `stask migrate-to` copies, and the copy itself for any target driver: workers with
//! their settings, plugin file records, tokens (hashes only, as stored) and the whole task
//! history with its logs, read from an SQLite installation in batches. Sessions are not copied
//! (browsers log in again).
//!
//! A target driver gives one transaction ([`CopyTarget`]); [`copy_into`] decides what happens
//! in it, so every target refuses, replaces and checks alike. Everything is written in that one
//! transaction, so a failed copy leaves the target as it was. Rows keep their ids (tasks'
//! `token_id` names token ids, logs name task ids), so the target must not have tasks or tokens
//! of its own unless the caller forces a replace.

use crate::{StoreError, StoreResult, TablePrefix};
use std::path::Path;

/// How a column is read from SQLite and written to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer.
    Int,
    /// Text.
    Text,
    /// A boolean (an integer 0/1 in SQLite).
    Bool,
    /// A point in time the original product declares a timestamp: UNIX milliseconds in SQLite
    /// and PostgreSQL, `DATETIME(3)` on MySQL (the target converts).
    Time,
}
use Kind::{Bool, Int, Text, Time};

/// A table to copy: name, columns in order, and whether `id` orders (and pages) it.
#[derive(Debug)]
pub struct Table {
    /// The table's name as written in our SQL (`s_...`; the prefix applies).
    pub name: &'static str,
    /// Columns in copy order, with their kinds.
    pub columns: &'static [(&'static str, Kind)],
    /// Whether the table has an `id` primary key (read in pages by it; ids continue after).
    pub by_id: bool,
}

/// The tables, in an order that satisfies every reference (workers before tasks, tasks before
/// logs).
pub const TABLES: &[Table] = &[
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
            ("created_at", Time),
            ("updated_at", Time),
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
            ("start_at", Time),
            ("run_at", Int),
            ("finished_at", Time),
            ("attempts", Int),
            ("max_attempts", Int),
            ("priority", Text),
            ("priority_rank", Int),
            ("progress", Int),
            ("processed", Int),
            ("total", Int),
            ("eta_seconds", Int),
            ("created_at", Time),
            ("updated_at", Time),
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

/// One value read from SQLite.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// An integer, a boolean as 0/1, or a time in UNIX milliseconds.
    Int(i64),
    /// Text.
    Text(String),
}

/// What a copy did: rows per table, in copy order.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// `(table, rows copied)`.
    pub tables: Vec<(&'static str, u64)>,
    /// Rows the target had and that a forced copy replaced: `(table, rows)`.
    pub replaced: Vec<(&'static str, i64)>,
}

/// One open transaction of a target database, as [`copy_into`] uses it.
pub trait CopyTarget {
    /// Rows in one of our tables.
    fn count(&mut self, table: &str) -> StoreResult<i64>;
    /// Deletes every row of our tables that the copy writes, and sessions.
    fn clear(&mut self) -> StoreResult<()>;
    /// Writes rows (each one value per column of `table`, in order).
    fn write(&mut self, table: &Table, rows: &[Vec<Cell>]) -> StoreResult<()>;
    /// Makes new ids of `table` continue after the copied ones.
    fn continue_ids(&mut self, table: &Table) -> StoreResult<()>;
    /// How many rows one [`CopyTarget::write`] takes (the target's statement limits).
    fn batch(&self, table: &Table) -> usize;
}

/// The tables a copy clears in the target, sessions included.
pub const CLEARED: [&str; 6] = [
    "s_workers",
    "s_plugin_files",
    "s_tokens",
    "s_sessions",
    "s_tasks",
    "s_task_logs",
];

/// Copies the SQLite database at `source` (already migrated) into `target`, an open
/// transaction the caller commits. Refuses with [`StoreError::Conflict`] when the target
/// already has tasks or tokens, unless `force`: then the target's workers, plugin files,
/// tokens, sessions, tasks and logs are replaced.
pub fn copy_into(
    source: &Path,
    prefix: &TablePrefix,
    target: &mut dyn CopyTarget,
    force: bool,
) -> StoreResult<CopyReport> {
    let sqlite =
        rusqlite::Connection::open_with_flags(source, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StoreError::database(format!("cannot open {}", source.display()), e))?;
    let (tasks, tokens) = (target.count("s_tasks")?, target.count("s_tokens")?);
    if (tasks > 0 || tokens > 0) && !force {
        return Err(StoreError::conflict(format!(
            "the target database already has {tasks} tasks and {tokens} tokens; \
             copy into an empty database, or pass --force to replace them"
        )));
    }
    let mut report = CopyReport::default();
    for table in CLEARED {
        let n = target.count(table)?;
        if n > 0 {
            report.replaced.push((table, n));
        }
    }
    target.clear()?;
    for table in TABLES {
        let copied = copy_table(&sqlite, prefix, target, table)
            .map_err(|e| e.doing(format!("copying {} from {}", table.name, source.display())))?;
        let stored = target.count(table.name)?;
        if stored != copied as i64 {
            return Err(StoreError::internal(format!(
                "{}: {copied} rows read but {stored} in the target; nothing was copied",
                table.name
            )));
        }
        if table.by_id {
            target.continue_ids(table)?;
        }
        report.tables.push((table.name, copied));
    }
    Ok(report)
}

fn copy_table(
    sqlite: &rusqlite::Connection,
    prefix: &TablePrefix,
    target: &mut dyn CopyTarget,
    table: &Table,
) -> StoreResult<u64> {
    let list = table
        .columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    let batch = target.batch(table).max(1);
    let read = if table.by_id {
        format!(
            "SELECT {list} FROM {} WHERE id > ?1 ORDER BY id LIMIT {batch}",
            table.name
        )
    } else {
        format!("SELECT {list} FROM {} WHERE ?1 IS NOT NULL", table.name)
    };
    let sqlite_error = |e: rusqlite::Error| StoreError::database("", e);
    let mut stmt = sqlite.prepare(&prefix.apply(&read)).map_err(sqlite_error)?;
    let mut after = i64::MIN;
    let mut copied = 0u64;
    loop {
        let mut rows: Vec<Vec<Cell>> = Vec::new();
        let mut read = stmt.query([after]).map_err(sqlite_error)?;
        while let Some(row) = read.next().map_err(sqlite_error)? {
            let cells = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| cell(row, i, *kind))
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sqlite_error)?;
            if table.by_id {
                after = row.get(0).map_err(sqlite_error)?;
            }
            rows.push(cells);
        }
        if rows.is_empty() {
            break;
        }
        let n = rows.len();
        // A table without ids is read whole; it is written in batches all the same.
        for chunk in rows.chunks(batch) {
            target.write(table, chunk)?;
        }
        copied += n as u64;
        if !table.by_id || n < batch {
            break;
        }
    }
    Ok(copied)
}

fn cell(row: &rusqlite::Row<'_>, i: usize, kind: Kind) -> rusqlite::Result<Cell> {
    Ok(match kind {
        Int | Bool | Time => row.get::<_, Option<i64>>(i)?.map_or(Cell::Null, Cell::Int),
        Text => row
            .get::<_, Option<String>>(i)?
            .map_or(Cell::Null, Cell::Text),
    })
}
