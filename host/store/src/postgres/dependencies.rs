//! `DependencyStore` for PostgreSQL: the shared statements of `crate::dependencies` on a
//! connection thread; a resolve or sweep first reads which parents have open edges (no
//! transaction), then resolves those in one transaction. Parents are read `FOR SHARE` and a parent's edges and
//! each child `FOR UPDATE`, so two hosts resolving parents of one child count it down in turn.

use super::{prepared, PgStore, Statements};
use crate::dependencies::{
    self, statements, Arg, DepTx, DependencyStore, Dialect, Resolution, TaskDependencies,
};
use crate::StoreResult;
use postgres::types::ToSql;
use postgres::GenericClient;
use std::sync::LazyLock;

/// Which of the finished tasks (`$1`, an array) have unresolved edges.
static OPEN_EDGES_SQL: LazyLock<String> =
    LazyLock::new(|| dependencies::with_open_edges("SELECT unnest($1::bigint[])"));

/// A transaction (or, for reads, a plain client) as `crate::dependencies` uses it.
pub(super) struct Tx<'a, C: GenericClient> {
    pub(super) tx: &'a mut C,
    pub(super) cache: &'a mut Statements,
}

/// A bound value as the `postgres` crate takes it.
enum Owned {
    Int(i64),
    Text(String),
}

fn owned(args: &[Arg<'_>]) -> Vec<Owned> {
    args.iter()
        .map(|a| match a {
            Arg::Int(v) => Owned::Int(*v),
            Arg::Text(t) => Owned::Text((*t).to_owned()),
        })
        .collect()
}

fn refs(values: &[Owned]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| match v {
            Owned::Int(i) => i as &(dyn ToSql + Sync),
            Owned::Text(t) => t as &(dyn ToSql + Sync),
        })
        .collect()
}

impl<C: GenericClient> DepTx for Tx<'_, C> {
    fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<u64> {
        let stmt = prepared(self.tx, self.cache, sql)?;
        let values = owned(args);
        Ok(self.tx.execute(&stmt, &refs(&values))?)
    }

    fn query(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<Vec<Vec<Option<i64>>>> {
        let stmt = prepared(self.tx, self.cache, sql)?;
        let values = owned(args);
        let rows = self.tx.query(&stmt, &refs(&values))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| Ok(r.try_get::<_, Option<i64>>(i)?))
                    .collect::<StoreResult<Vec<_>>>()
            })
            .collect()
    }

    fn query_text(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> StoreResult<Vec<Option<String>>> {
        let stmt = prepared(self.tx, self.cache, sql)?;
        let values = owned(args);
        let rows = self.tx.query(&stmt, &refs(&values))?;
        rows.iter()
            .map(|r| Ok(r.try_get::<_, Option<String>>(0)?))
            .collect()
    }
}

impl DependencyStore for PgStore {
    fn missing_tasks(&self, ids: &[i64]) -> StoreResult<Vec<i64>> {
        let ids = ids.to_vec();
        self.run(move |conn| {
            let (tx, cache) = conn.parts();
            dependencies::missing(&mut Tx { tx, cache }, statements(Dialect::Postgres), &ids)
        })
    }

    fn resolve_dependencies(&self, parents: &[i64], now: i64) -> StoreResult<Resolution> {
        if parents.is_empty() {
            return Ok(Resolution::default());
        }
        let parents = parents.to_vec();
        // Read first, outside a transaction: nearly every finisher batch has no dependant,
        // and then costs one round trip instead of three (resolving is idempotent, so the
        // read need not be in the writing transaction).
        let parents = self.run(move |conn| {
            let (client, cache) = conn.parts();
            let open = prepared(client, cache, &OPEN_EDGES_SQL)?;
            client
                .query(&open, &[&parents])?
                .iter()
                .map(|r| Ok(r.try_get::<_, i64>(0)?))
                .collect::<StoreResult<Vec<i64>>>()
        })?;
        if parents.is_empty() {
            return Ok(Resolution::default());
        }
        self.transaction(move |tx, cache| {
            dependencies::resolve(
                &mut Tx { tx, cache },
                statements(Dialect::Postgres),
                &parents,
                now,
            )
        })
    }

    fn sweep_dependencies(&self, now: i64, limit: usize) -> StoreResult<Resolution> {
        let sql = statements(Dialect::Postgres);
        // Read first, as for a resolve: nearly every sweep finds nothing.
        let parents = self.run(move |conn| {
            let (tx, cache) = conn.parts();
            dependencies::finished_with_open_edges(&mut Tx { tx, cache }, sql, limit)
        })?;
        if parents.is_empty() {
            return Ok(Resolution::default());
        }
        self.transaction(move |tx, cache| {
            dependencies::resolve(&mut Tx { tx, cache }, sql, &parents, now)
        })
    }

    fn task_dependencies(&self, id: i64) -> StoreResult<TaskDependencies> {
        self.run(move |conn| {
            let (tx, cache) = conn.parts();
            dependencies::of_task(&mut Tx { tx, cache }, statements(Dialect::Postgres), id)
        })
    }
}
