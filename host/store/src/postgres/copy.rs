//! `stask migrate-to` from and into PostgreSQL: [`PgSource`] reads an installation in one
//! `REPEATABLE READ` snapshot on a connection of its own; [`copy_into_postgres`] writes the
//! [`crate::copy`] in one PostgreSQL transaction with one `INSERT ... SELECT FROM unnest(...)`
//! per batch.

use super::{connect, PgStore, Statements, StoreResult};
use crate::copy::{
    copy_into, select, Cell, CopyReport, CopySource, CopyTarget, Kind, Table, CLEARED,
};
use crate::{Store, TablePrefix};
use postgres::types::ToSql;

/// Rows written per statement.
const BATCH: usize = 5_000;

impl PgStore {
    /// A snapshot of this database for [`crate::copy::copy_into`], on a connection of its own
    /// (the store's connection threads run closures, which cannot lend a transaction out).
    pub fn copy_source(&self) -> StoreResult<PgSource> {
        let mut client = connect(&self.config, &self.what)?;
        // The snapshot is taken at the transaction's first statement, not at BEGIN.
        client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1")?;
        Ok(PgSource {
            client,
            prefix: TablePrefix::clone(&self.prefix),
            name: format!("PostgreSQL at {}", self.what),
        })
    }
}

/// A PostgreSQL installation read in one snapshot (the transaction ends with the connection).
pub struct PgSource {
    client: postgres::Client,
    prefix: TablePrefix,
    name: String,
}

impl CopySource for PgSource {
    fn read(&mut self, table: &Table, after: i64, limit: usize) -> StoreResult<Vec<Vec<Cell>>> {
        // Every column is cast to what a Cell holds: JSON to text, integers of any width and
        // booleans to bigint.
        let sql = select(table, "$1", limit, |name, kind| match kind {
            Kind::Int | Kind::Time => format!("{name}::bigint"),
            Kind::Bool => format!("{name}::int::bigint"),
            Kind::Text => format!("{name}::text"),
        });
        let sql = self.prefix.apply(&sql).into_owned();
        let rows = if table.by_id {
            self.client.query(&sql, &[&after])?
        } else {
            self.client.query(&sql, &[])?
        };
        rows.iter()
            .map(|row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| {
                        Ok(match kind {
                            Kind::Text => row
                                .try_get::<_, Option<String>>(i)?
                                .map_or(Cell::Null, Cell::Text),
                            _ => row
                                .try_get::<_, Option<i64>>(i)?
                                .map_or(Cell::Null, Cell::Int),
                        })
                    })
                    .collect()
            })
            .collect()
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Copies `source` into `target` (migrated first); see [`crate::copy::copy_into`] for what is
/// refused and replaced.
pub fn copy_into_postgres(
    mut source: Box<dyn CopySource>,
    target: &PgStore,
    force: bool,
) -> StoreResult<CopyReport> {
    target.migrate()?;
    target.run(move |conn| {
        let (client, st) = conn.parts();
        let mut tx = client.transaction()?;
        // Nothing else writes these tables while the copy runs (hosts wait at their next
        // write, after the commit).
        tx.batch_execute(&st.sql(
            "LOCK TABLE s_workers, s_plugin_files, s_tokens, s_sessions, s_tasks, s_task_logs,
                    s_schedules, s_schedule_slots, s_task_dependencies
                IN EXCLUSIVE MODE",
        ))?;
        let report = copy_into(source.as_mut(), &mut PgCopy { tx: &mut tx, st }, force)?;
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
    fn of(rows: &[Vec<Cell>], i: usize, kind: Kind) -> ColumnValues {
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

    fn write(&mut self, table: &Table, rows: &[Vec<Cell>]) -> StoreResult<()> {
        let list = table.column_list();
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
