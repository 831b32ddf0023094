//! `AuditStore` for SQLite.

use super::SqliteStore;
use crate::audit::{audit_from_row, filter_sql, insert_sql, AUDIT_COLUMNS};
use crate::task_filter::{FilterArg, SQLITE};
use crate::{AuditEntry, AuditFilter, AuditRow, AuditStore, StoreResult};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter};

impl AuditStore for SqliteStore {
    fn insert_audit(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let sql = self.prefix.apply(&insert_sql(&SQLITE)).into_owned();
        self.write(|conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(&sql)?;
                for e in entries {
                    stmt.execute(params![
                        e.recorded_at,
                        e.token_id,
                        e.token_name,
                        e.role,
                        e.via_session,
                        e.method,
                        e.route,
                        e.target,
                        e.created_ids,
                        e.status,
                        e.client_addr
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<(Vec<AuditRow>, i64)> {
        let (where_sql, args, page) = filter_sql(filter, &SQLITE);
        let args: Vec<SqlValue> = args
            .into_iter()
            .map(|a| match a {
                FilterArg::Text(v) => SqlValue::Text(v),
                FilterArg::Int(v) | FilterArg::Time(v) => SqlValue::Integer(v),
            })
            .collect();
        self.read(|conn| {
            let total: i64 = conn.query_row(
                &self
                    .prefix
                    .apply(&format!("SELECT COUNT(*) FROM s_audit {where_sql}")),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )?;
            let sql = format!("SELECT {AUDIT_COLUMNS} FROM s_audit {where_sql} {page}");
            let rows = conn
                .prepare(&self.prefix.apply(&sql))?
                .query_and_then(params_from_iter(args.iter()), |r| audit_from_row(r))?
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((rows, total))
        })
    }

    fn delete_audit_before(&self, cutoff: i64) -> StoreResult<u64> {
        self.write(|conn| {
            let n = conn.execute(
                &self.sql("DELETE FROM s_audit WHERE recorded_at < ?1"),
                [cutoff],
            )?;
            Ok(n as u64)
        })
    }
}
