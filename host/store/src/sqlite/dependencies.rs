//! `DependencyStore` for SQLite: the shared statements of `crate::dependencies` on the writer
//! connection (resolutions) or a reader (views). One writer: no row locks are needed.

use super::SqliteStore;
use crate::dependencies::{
    self, statements, Arg, DepTx, DependencyStore, Dialect, Resolution, TaskDependencies,
};
use crate::{StoreError, StoreResult, TablePrefix};
use std::sync::LazyLock;

/// Which of the finished tasks (a JSON array) have unresolved edges.
static OPEN_EDGES_SQL: LazyLock<String> =
    LazyLock::new(|| dependencies::with_open_edges("SELECT value FROM json_each(?1)"));
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection};

/// A connection (or an open transaction: it derefs to one) as `crate::dependencies` uses it.
pub(super) struct Tx<'a> {
    pub(super) conn: &'a Connection,
    pub(super) prefix: &'a TablePrefix,
}

fn values(args: &[Arg<'_>]) -> Vec<SqlValue> {
    args.iter()
        .map(|a| match a {
            Arg::Int(v) => SqlValue::Integer(*v),
            Arg::Text(t) => SqlValue::Text((*t).to_owned()),
        })
        .collect()
}

impl DepTx for Tx<'_> {
    fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<u64> {
        let mut stmt = self.conn.prepare_cached(&self.prefix.statement(sql))?;
        Ok(stmt.execute(params_from_iter(values(args)))? as u64)
    }

    fn query(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<Vec<Vec<Option<i64>>>> {
        let mut stmt = self.conn.prepare_cached(&self.prefix.statement(sql))?;
        let columns = stmt.column_count();
        let rows = stmt
            .query_map(params_from_iter(values(args)), |r| {
                (0..columns).map(|i| r.get::<_, Option<i64>>(i)).collect()
            })?
            .collect::<rusqlite::Result<Vec<Vec<Option<i64>>>>>()?;
        Ok(rows)
    }

    fn query_text(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> StoreResult<Vec<Option<String>>> {
        let mut stmt = self.conn.prepare_cached(&self.prefix.statement(sql))?;
        let rows = stmt
            .query_map(params_from_iter(values(args)), |r| {
                r.get::<_, Option<String>>(0)
            })?
            .collect::<rusqlite::Result<Vec<Option<String>>>>()?;
        Ok(rows)
    }
}

impl DependencyStore for SqliteStore {
    fn missing_tasks(&self, ids: &[i64]) -> StoreResult<Vec<i64>> {
        let sql = statements(Dialect::Sqlite);
        self.read(|conn| {
            let mut tx = Tx {
                conn,
                prefix: &self.prefix,
            };
            dependencies::missing(&mut tx, sql, ids)
        })
    }

    fn resolve_dependencies(&self, parents: &[i64], now: i64) -> StoreResult<Resolution> {
        if parents.is_empty() {
            return Ok(Resolution::default());
        }
        let parents = self.read(|conn| {
            let ids = serde_json::to_string(parents).map_err(|e| StoreError::database("", e))?;
            let mut stmt = conn.prepare_cached(&self.prefix.statement(&OPEN_EDGES_SQL))?;
            let rows = stmt
                .query_map([ids], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            Ok(rows)
        })?;
        if parents.is_empty() {
            return Ok(Resolution::default());
        }
        self.resolve_in_write(&parents, now)
    }

    fn sweep_dependencies(&self, now: i64, limit: usize) -> StoreResult<Resolution> {
        let sql = statements(Dialect::Sqlite);
        // Read first: nearly every sweep finds nothing and then takes no write lock.
        let parents = self.read(|conn| {
            let mut tx = Tx {
                conn,
                prefix: &self.prefix,
            };
            dependencies::finished_with_open_edges(&mut tx, sql, limit)
        })?;
        if parents.is_empty() {
            return Ok(Resolution::default());
        }
        self.resolve_in_write(&parents, now)
    }

    fn task_dependencies(&self, id: i64) -> StoreResult<TaskDependencies> {
        let sql = statements(Dialect::Sqlite);
        self.read(|conn| {
            let mut tx = Tx {
                conn,
                prefix: &self.prefix,
            };
            dependencies::of_task(&mut tx, sql, id)
        })
    }
}

impl SqliteStore {
    /// Resolves the ends of `parents` in one write transaction.
    fn resolve_in_write(&self, parents: &[i64], now: i64) -> StoreResult<Resolution> {
        let sql = statements(Dialect::Sqlite);
        self.write(|conn| {
            let tx = conn.transaction()?;
            let done = dependencies::resolve(
                &mut Tx {
                    conn: &tx,
                    prefix: &self.prefix,
                },
                sql,
                parents,
                now,
            )?;
            tx.commit()?;
            Ok(done)
        })
    }
}
