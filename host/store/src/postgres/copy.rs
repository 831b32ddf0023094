//! `stask migrate-to` into PostgreSQL: the [`crate::copy`] of an SQLite installation, written
//! in one PostgreSQL transaction with one `INSERT ... SELECT FROM unnest(...)` per batch.

use super::{PgStore, Statements, StoreResult};
use crate::copy::{copy_into, CopyReport, CopyTarget, Kind, Table, CLEARED};
use crate::{Store, TablePrefix};
use postgres::types::ToSql;
use std::path::Path;

/// Rows written per statement.
const BATCH: usize = 5_000;

/// Copies the SQLite database at `source` (migrated first) into `target` (migrated too); see
/// [`crate::copy::copy_into`] for what is refused and replaced.
pub fn copy_from_sqlite(source: &Path, target: &PgStore, force: bool) -> StoreResult<CopyReport> {
    // The source is this home's database, read with the same table prefix as the target.
    let prefix = TablePrefix::clone(&target.prefix);
    let options = crate::OpenOptions {
        table_prefix: prefix.clone(),
        ..Default::default()
    };
    crate::sqlite::SqliteStore::open_with(source, &options)?.migrate()?;
    target.migrate()?;
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
        let report = copy_into(&source, &prefix, &mut PgCopy { tx: &mut tx, st }, force)?;
        tx.commit()?;
        Ok(report)
    })
}

/// The copy's transaction on PostgreSQL.
struct PgCopy<'a, 'c> {
    tx: &'a mut postgres::Transaction<'c>,
    st: &'a mut Statements,
}

/// One column's values of a batch, typed for PostgreSQL's arrays.
enum ColumnValues {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
}

impl ColumnValues {
    fn of(rows: &[Vec<crate::copy::Cell>], i: usize, kind: Kind) -> ColumnValues {
        use crate::copy::Cell;
        let int = |c: &Cell| match c {
            Cell::Int(v) => Some(*v),
            _ => None,
        };
        match kind {
            Kind::Int | Kind::Time => ColumnValues::Int(rows.iter().map(|r| int(&r[i])).collect()),
            Kind::Bool => {
                ColumnValues::Bool(rows.iter().map(|r| int(&r[i]).map(|v| v != 0)).collect())
            }
            Kind::Text => ColumnValues::Text(
                rows.iter()
                    .map(|r| match &r[i] {
                        Cell::Text(v) => Some(v.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
        }
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            ColumnValues::Int(v) => v,
            ColumnValues::Text(v) => v,
            ColumnValues::Bool(v) => v,
        }
    }
}

impl CopyTarget for PgCopy<'_, '_> {
    fn count(&mut self, table: &str) -> StoreResult<i64> {
        let sql = self
            .st
            .apply(&format!("SELECT COUNT(*) FROM {table}"))
            .into_owned();
        Ok(self.tx.query_one(&sql, &[])?.try_get(0)?)
    }

    fn clear(&mut self) -> StoreResult<()> {
        let mut sql = String::new();
        for table in CLEARED.iter().rev() {
            sql.push_str(&format!("DELETE FROM {table};"));
        }
        Ok(self.tx.batch_execute(&self.st.apply(&sql))?)
    }

    fn write(&mut self, table: &Table, rows: &[Vec<crate::copy::Cell>]) -> StoreResult<()> {
        let list = table
            .columns
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ");
        let arrays: Vec<String> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                let ty = match kind {
                    Kind::Int | Kind::Time => "bigint",
                    Kind::Text => "text",
                    Kind::Bool => "boolean",
                };
                format!("${}::{ty}[]", i + 1)
            })
            .collect();
        let sql = self
            .st
            .apply(&format!(
                "INSERT INTO {} ({list}) SELECT * FROM unnest({})",
                table.name,
                arrays.join(", ")
            ))
            .into_owned();
        let columns: Vec<ColumnValues> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| ColumnValues::of(rows, i, *kind))
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(ColumnValues::as_sql).collect();
        self.tx.execute(&sql, &params)?;
        Ok(())
    }

    fn continue_ids(&mut self, table: &Table) -> StoreResult<()> {
        let sql = self
            .st
            .apply(&format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), COALESCE(MAX(id), 0) + 1, false)
                   FROM {0}",
                table.name
            ))
            .into_owned();
        self.tx.query_one(&sql, &[])?;
        Ok(())
    }

    fn batch(&self, _table: &Table) -> usize {
        BATCH
    }
}
