//! `stask migrate-to` from and into SQLite: [`SqliteSource`] reads an installation in one read
//! transaction (a snapshot of the WAL), [`copy_into_sqlite`] writes one in one `IMMEDIATE`
//! transaction. SQLite keeps the copy's types as they are: times in UNIX milliseconds,
//! booleans as 0/1. Ids are plain `INTEGER PRIMARY KEY`s, so new ids continue after the
//! copied ones by themselves.

use crate::copy::CLEARED;
use crate::copy::{copy_into, select, Cell, CopyReport, CopySource, CopyTarget, Kind, Table};
use crate::{OpenOptions, Store, StoreError, StoreResult, TablePrefix};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Variables one statement may bind (SQLite's limit is 32,766 since 3.32).
const MAX_VARIABLES: usize = 30_000;
/// Rows written per statement at most.
const BATCH: usize = 1_000;
/// How long the copy waits for another writer of the target (a daemon that was not stopped).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An SQLite installation read in one snapshot.
pub struct SqliteSource {
    conn: Connection,
    prefix: TablePrefix,
    name: String,
}

impl SqliteSource {
    /// Opens the database at `path` read-only and begins the snapshot every read shares.
    pub fn open(path: &Path, prefix: TablePrefix) -> StoreResult<SqliteSource> {
        let named =
            |e: rusqlite::Error| StoreError::database(format!("cannot read {}", path.display()), e);
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(named)?;
        // A deferred transaction takes its snapshot at its first read: read once now.
        conn.execute_batch("BEGIN DEFERRED; SELECT COUNT(*) FROM sqlite_master;")
            .map_err(named)?;
        Ok(SqliteSource {
            conn,
            prefix,
            name: path.display().to_string(),
        })
    }
}

impl CopySource for SqliteSource {
    fn read(&mut self, table: &Table, after: i64, limit: usize) -> StoreResult<Vec<Vec<Cell>>> {
        let sql = select(table, "?1", limit, |name, _| name.to_owned());
        let mut stmt = self.conn.prepare_cached(&self.prefix.apply(&sql))?;
        let params: &[&dyn rusqlite::ToSql] = if table.by_id { &[&after] } else { &[] };
        let mut rows = stmt.query(params)?;
        let mut read = Vec::new();
        while let Some(row) = rows.next()? {
            let cells = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| match kind {
                    Kind::Int | Kind::Bool | Kind::Time => {
                        Ok(row.get::<_, Option<i64>>(i)?.map_or(Cell::Null, Cell::Int))
                    }
                    Kind::Text => Ok(row
                        .get::<_, Option<String>>(i)?
                        .map_or(Cell::Null, Cell::Text)),
                })
                .collect::<rusqlite::Result<Vec<_>>>()?;
            read.push(cells);
        }
        Ok(read)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Copies `source` into the SQLite database at `target` (created and migrated first, with
/// the table prefix of `options`); see [`crate::copy::copy_into`] for what is refused and
/// replaced. No daemon may use the target meanwhile.
pub fn copy_into_sqlite(
    mut source: Box<dyn CopySource>,
    target: &Path,
    options: &OpenOptions,
    force: bool,
) -> StoreResult<CopyReport> {
    // Opening creates the file, its folder and the WAL; migrating creates our tables.
    super::SqliteStore::open_with(target, options)?.migrate()?;
    let named =
        |e: rusqlite::Error| StoreError::from(e).doing(format!("writing {}", target.display()));
    let mut conn =
        Connection::open_with_flags(target, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(named)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(named)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(named)?;
    let report = copy_into(
        source.as_mut(),
        &mut SqliteCopy {
            tx: &tx,
            prefix: &options.table_prefix,
        },
        force,
    )?;
    tx.commit().map_err(named)?;
    Ok(report)
}

/// The copy's transaction on SQLite.
struct SqliteCopy<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    prefix: &'a TablePrefix,
}

impl CopyTarget for SqliteCopy<'_> {
    fn count(&mut self, table: &str) -> StoreResult<i64> {
        let sql = self
            .prefix
            .apply(&format!("SELECT COUNT(*) FROM {table}"))
            .into_owned();
        Ok(self.tx.query_row(&sql, [], |r| r.get(0))?)
    }

    fn clear(&mut self) -> StoreResult<()> {
        let mut sql = String::new();
        for table in CLEARED.iter().rev() {
            sql.push_str(&format!("DELETE FROM {table};"));
        }
        Ok(self.tx.execute_batch(&self.prefix.apply(&sql))?)
    }

    fn write(&mut self, table: &Table, rows: &[Vec<Cell>]) -> StoreResult<()> {
        let list = table.column_list();
        let tuple = format!("({})", vec!["?"; table.columns.len()].join(", "));
        let sql = format!(
            "INSERT INTO {} ({list}) VALUES {}",
            table.name,
            vec![tuple; rows.len()].join(", ")
        );
        let values: Vec<rusqlite::types::Value> = rows
            .iter()
            .flatten()
            .map(|cell| match cell {
                Cell::Null => rusqlite::types::Value::Null,
                Cell::Int(v) => rusqlite::types::Value::Integer(*v),
                Cell::Text(v) => rusqlite::types::Value::Text(v.clone()),
            })
            .collect();
        let mut stmt = self.tx.prepare_cached(&self.prefix.apply(&sql))?;
        stmt.execute(rusqlite::params_from_iter(values))?;
        Ok(())
    }

    fn continue_ids(&mut self, _table: &Table) -> StoreResult<()> {
        // An INTEGER PRIMARY KEY without AUTOINCREMENT takes MAX(id) + 1 by itself.
        Ok(())
    }

    fn batch(&self, table: &Table) -> usize {
        (MAX_VARIABLES / table.columns.len().max(1)).min(BATCH)
    }
}
