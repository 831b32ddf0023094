//! `stask migrate-to` from and into MySQL/MariaDB: [`MysqlSource`] reads an installation in
//! one consistent InnoDB snapshot; [`copy_into_mysql`] writes the [`crate::copy`] in one InnoDB
//! transaction with multi-row `INSERT`s. The original's timestamp columns are converted between
//! `DATETIME(3)` and milliseconds in SQL; copied ids are kept, and `AUTO_INCREMENT` continues
//! after them by itself.

use super::{clamp_ms, from_ms, to_ms, MysqlStore};
use crate::copy::{
    copy_into, select, Cell, CopyReport, CopySource, CopyTarget, Kind, Table, CLEARED,
};
use crate::{Store, StoreResult, TablePrefix};
use mysql::prelude::Queryable;
use mysql::{PooledConn, TxOpts, Value};

/// Placeholders one statement may carry (the protocol's limit is 65,535).
const MAX_PLACEHOLDERS: usize = 60_000;
/// Rows written per statement at most.
const BATCH: usize = 1_000;

impl MysqlStore {
    /// A snapshot of this database for [`crate::copy::copy_into`], on a pooled connection
    /// held until the source is dropped.
    pub fn copy_source(&self) -> StoreResult<MysqlSource> {
        let mut conn = self.conn()?;
        // Sessions run READ COMMITTED (a snapshot per statement); the copy's one transaction
        // needs one snapshot for all its reads. `SET TRANSACTION` without SESSION applies to
        // the next transaction only, so the pooled connection keeps its session's level.
        conn.query_drop("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")?;
        Ok(MysqlSource {
            conn,
            prefix: self.prefix.clone(),
            name: format!("MySQL at {}", self.what),
        })
    }
}

/// A MySQL installation read in one snapshot.
pub struct MysqlSource {
    conn: PooledConn,
    prefix: TablePrefix,
    name: String,
}

impl Drop for MysqlSource {
    fn drop(&mut self) {
        // The connection goes back to the pool: end the read-only transaction first.
        let _ = self.conn.query_drop("ROLLBACK");
    }
}

impl CopySource for MysqlSource {
    fn read(&mut self, table: &Table, after: i64, limit: usize) -> StoreResult<Vec<Vec<Cell>>> {
        let sql = select(table, "?", limit, |name, kind| match kind {
            Kind::Time => to_ms(name),
            _ => name.to_owned(),
        });
        let sql = self.prefix.apply(&sql).into_owned();
        let rows: Vec<mysql::Row> = if table.by_id {
            self.conn.exec(sql, (after,))?
        } else {
            self.conn.exec(sql, ())?
        };
        rows.into_iter()
            .map(|mut row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| {
                        Ok(match kind {
                            Kind::Text => {
                                take::<String>(&mut row, i)?.map_or(Cell::Null, Cell::Text)
                            }
                            _ => take::<i64>(&mut row, i)?.map_or(Cell::Null, Cell::Int),
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

/// Column `i` of `row`, NULL as `None`.
fn take<T: mysql::prelude::FromValue>(row: &mut mysql::Row, i: usize) -> StoreResult<Option<T>> {
    match row.take_opt::<Option<T>, usize>(i) {
        Some(value) => Ok(value?),
        None => Err(crate::StoreError::internal(format!(
            "column {i} is missing from the row"
        ))),
    }
}

/// Copies `source` into `target` (migrated first); see [`crate::copy::copy_into`] for what is
/// refused and replaced. The hosts of the target must be stopped (MySQL's `LOCK TABLES` would
/// end the transaction).
pub fn copy_into_mysql(
    mut source: Box<dyn CopySource>,
    target: &MysqlStore,
    force: bool,
) -> StoreResult<CopyReport> {
    target.migrate()?;
    let mut conn = target.conn()?;
    let mut tx = conn.start_transaction(TxOpts::default())?;
    let report = copy_into(
        source.as_mut(),
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
        let list = table.column_list();
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
