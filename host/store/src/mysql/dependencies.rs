//! `DependencyStore` for MySQL/MariaDB: the shared statements of `crate::dependencies` in one
//! transaction. Parents are read `LOCK IN SHARE MODE`, a parent's edges and each child `FOR
//! UPDATE` (locking reads see the latest committed rows, also under `READ COMMITTED`), so two
//! hosts resolving parents of one child count it down in turn. Deadlocks are retried.

use super::MysqlStore;
use crate::dependencies::{
    self, statements, Arg, DepTx, DependencyStore, Dialect, Resolution, TaskDependencies,
};
use crate::StoreResult;
use mysql::prelude::Queryable;
use mysql::{Params, Value};

/// A transaction (or, for reads, a pooled connection) as `crate::dependencies` uses it.
pub(super) struct Tx<'a, Q: Session> {
    pub(super) tx: &'a mut Q,
    pub(super) store: &'a MysqlStore,
}

/// What a statement runs on: `affected_rows` is inherent to both kinds, not in `Queryable`.
pub(super) trait Session: Queryable {
    /// Rows the last statement matched.
    fn affected(&self) -> u64;
}

impl Session for mysql::Transaction<'_> {
    fn affected(&self) -> u64 {
        self.affected_rows()
    }
}

impl Session for mysql::PooledConn {
    fn affected(&self) -> u64 {
        self.affected_rows()
    }
}

fn params(args: &[Arg<'_>]) -> Params {
    Params::Positional(
        args.iter()
            .map(|a| match a {
                Arg::Int(v) => Value::from(*v),
                Arg::Text(t) => Value::from(*t),
            })
            .collect(),
    )
}

impl<Q: Session> DepTx for Tx<'_, Q> {
    fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<u64> {
        self.tx.exec_drop(&*self.store.sql(sql), params(args))?;
        Ok(self.tx.affected())
    }

    fn query(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<Vec<Vec<Option<i64>>>> {
        let rows: Vec<mysql::Row> = self.tx.exec(&*self.store.sql(sql), params(args))?;
        rows.into_iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        let value: Option<Value> = row.get(i);
                        Ok(match value {
                            None | Some(Value::NULL) => None,
                            Some(v) => Some(mysql::from_value_opt::<i64>(v).map_err(|e| {
                                crate::StoreError::database("reading a dependency row", e)
                            })?),
                        })
                    })
                    .collect::<StoreResult<Vec<_>>>()
            })
            .collect()
    }

    fn query_text(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> StoreResult<Vec<Option<String>>> {
        let rows: Vec<mysql::Row> = self.tx.exec(&*self.store.sql(sql), params(args))?;
        rows.into_iter()
            .map(|row| {
                let value: Option<Value> = row.get(0);
                Ok(match value {
                    None | Some(Value::NULL) => None,
                    Some(v) => Some(
                        mysql::from_value_opt::<String>(v)
                            .map_err(|e| crate::StoreError::database("reading a text column", e))?,
                    ),
                })
            })
            .collect()
    }
}

impl DependencyStore for MysqlStore {
    fn missing_tasks(&self, ids: &[i64]) -> StoreResult<Vec<i64>> {
        self.transaction(|tx| {
            dependencies::missing(&mut Tx { tx, store: self }, statements(Dialect::Mysql), ids)
        })
    }

    fn resolve_dependencies(&self, parents: &[i64], now: i64) -> StoreResult<Resolution> {
        if parents.is_empty() {
            return Ok(Resolution::default());
        }
        let mut open = Vec::new();
        let mut conn = self.conn()?;
        for chunk in parents.chunks(1_000) {
            let sql = self.dynamic(&dependencies::with_open_edges(&super::marks(chunk.len())));
            let ids: Vec<i64> = conn.exec(
                sql,
                Params::Positional(chunk.iter().map(|&id| Value::from(id)).collect()),
            )?;
            open.extend(ids);
        }
        drop(conn);
        if open.is_empty() {
            return Ok(Resolution::default());
        }
        self.retrying(|tx| {
            dependencies::resolve(
                &mut Tx { tx, store: self },
                statements(Dialect::Mysql),
                &open,
                now,
            )
        })
    }

    fn sweep_dependencies(&self, now: i64, limit: usize) -> StoreResult<Resolution> {
        let sql = statements(Dialect::Mysql);
        // Read first, on a plain connection: nearly every sweep finds nothing.
        let parents = dependencies::finished_with_open_edges(
            &mut Tx {
                tx: &mut self.conn()?,
                store: self,
            },
            sql,
            limit,
        )?;
        if parents.is_empty() {
            return Ok(Resolution::default());
        }
        self.retrying(|tx| dependencies::resolve(&mut Tx { tx, store: self }, sql, &parents, now))
    }

    fn task_dependencies(&self, id: i64) -> StoreResult<TaskDependencies> {
        self.transaction(|tx| {
            dependencies::of_task(&mut Tx { tx, store: self }, statements(Dialect::Mysql), id)
        })
    }
}
