//! `stask migrate-to` into MySQL/MariaDB: the [`crate::copy`] of an SQLite installation,
//! written in one InnoDB transaction with multi-row `INSERT`s. The original's timestamp
//! columns are converted from milliseconds to `DATETIME(3)` in SQL; copied ids are kept, and
//! `AUTO_INCREMENT` continues after them by itself.

use super::{clamp_ms, from_ms, MysqlStore};
use crate::copy::{copy_into, Cell, CopyReport, CopyTarget, Kind, Table, CLEARED};
use crate::{Store, StoreResult, TablePrefix};
use mysql::prelude::Queryable;
use mysql::{TxOpts, Value};
use std::path::Path;

/// Placeholders one statement may carry (the protocol's limit is 65,535).
const MAX_PLACEHOLDERS: usize = 60_000;
/// Rows written per statement at most.
const BATCH: usize = 1_000;

/// Copies the SQLite database at `source` (migrated first) into `target` (migrated too); see
/// [`crate::copy::copy_into`] for what is refused and replaced. The hosts of the target
/// must be stopped (MySQL's `LOCK TABLES` would end the transaction).
pub fn copy_from_sqlite(
    source: &Path,
    target: &MysqlStore,
    force: bool,
) -> StoreResult<CopyReport> {
    let prefix = TablePrefix::clone(&target.prefix);
    let options = crate::OpenOptions {
        table_prefix: prefix.clone(),
        ..Default::default()
    };
    crate::sqlite::SqliteStore::open_with(source, &options)?.migrate()?;
    target.migrate()?;
    let mut conn = target.conn()?;
    let mut tx = conn.start_transaction(TxOpts::default())?;
    let report = copy_into(
        source,
        &prefix,
        &mut MysqlCopy {
            tx: &mut tx,
            store: target,
        },
        force,
    )?;
    tx.commit()?;
    Ok(report)
}

/// The copy's transaction on MySQL.
struct MysqlCopy<'a, 'c> {
    tx: &'a mut mysql::Transaction<'c>,
    store: &'a MysqlStore,
}

impl CopyTarget for MysqlCopy<'_, '_> {
    fn count(&mut self, table: &str) -> StoreResult<i64> {
        let sql = self.store.dynamic(&format!("SELECT COUNT(*) FROM {table}"));
        Ok(self.tx.query_first(sql)?.unwrap_or(0))
    }

    fn clear(&mut self) -> StoreResult<()> {
        for table in CLEARED.iter().rev() {
            self.tx
                .query_drop(self.store.dynamic(&format!("DELETE FROM {table}")))?;
        }
        Ok(())
    }

    fn write(&mut self, table: &Table, rows: &[Vec<Cell>]) -> StoreResult<()> {
        let list = table
            .columns
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ");
        let marks = table
            .columns
            .iter()
            .map(|(_, kind)| match kind {
                Kind::Time => from_ms("?"),
                _ => "?".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let tuples = vec![format!("({marks})"); rows.len()].join(", ");
        let sql = self.store.dynamic(&format!(
            "INSERT INTO {} ({list}) VALUES {tuples}",
            table.name
        ));
        let values: Vec<Value> = rows
            .iter()
            .flat_map(|row| {
                row.iter()
                    .zip(table.columns)
                    .map(|(cell, (_, kind))| match (cell, kind) {
                        (Cell::Null, _) => Value::NULL,
                        (Cell::Int(v), Kind::Time) => Value::from(clamp_ms(*v)),
                        (Cell::Int(v), _) => Value::from(*v),
                        (Cell::Text(v), _) => Value::from(v.as_str()),
                    })
            })
            .collect();
        self.tx.exec_drop(sql, mysql::Params::Positional(values))?;
        Ok(())
    }

    fn continue_ids(&mut self, _table: &Table) -> StoreResult<()> {
        // InnoDB moves AUTO_INCREMENT past every id inserted explicitly.
        Ok(())
    }

    fn batch(&self, table: &Table) -> usize {
        (MAX_PLACEHOLDERS / table.columns.len().max(1)).min(BATCH)
    }
}
