//! `AuditStore` for MySQL/MariaDB.

use super::{params, MysqlStore};
use crate::audit::{audit_from_row, filter_sql, insert_sql, AUDIT_COLUMNS};
use crate::task_filter::{Dialect, FilterArg};
use crate::{AuditEntry, AuditFilter, AuditRow, AuditStore, StoreResult};
use mysql::prelude::Queryable;
use mysql::Value;

/// Plain positional placeholders (every audit argument is an integer or a text, used once
/// and in order).
const DIALECT: Dialect = Dialect {
    placeholder: |_| "?".to_owned(),
    like: "LIKE",
};

impl AuditStore for MysqlStore {
    fn insert_audit(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let sql = self.dynamic(&insert_sql(&DIALECT));
        self.transaction(|tx| {
            tx.exec_batch(
                &sql,
                entries.iter().map(|e| {
                    params![
                        e.recorded_at,
                        e.token_id,
                        e.token_name.as_deref(),
                        e.role.as_deref(),
                        e.via_session,
                        e.method.as_str(),
                        e.route.as_str(),
                        e.target.as_deref(),
                        e.created_ids.as_deref(),
                        e.status,
                        e.client_addr.as_deref()
                    ]
                }),
            )?;
            Ok(())
        })
    }

    fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<(Vec<AuditRow>, i64)> {
        let (where_sql, args, page) = filter_sql(filter, &DIALECT);
        let values: Vec<Value> = args
            .into_iter()
            .map(|a| match a {
                FilterArg::Text(v) => Value::from(v),
                FilterArg::Int(v) | FilterArg::Time(v) => Value::from(v),
            })
            .collect();
        let count = self.dynamic(&format!("SELECT COUNT(*) FROM s_audit {where_sql}"));
        let list = self.dynamic(&format!(
            "SELECT {AUDIT_COLUMNS} FROM s_audit {where_sql} {page}"
        ));
        let params = || mysql::Params::Positional(values.clone());
        self.transaction(|tx| {
            let total: Option<i64> = tx.exec_first(&count, params())?;
            let rows: Vec<mysql::Row> = tx.exec(&list, params())?;
            let rows = rows
                .iter()
                .map(audit_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((rows, total.unwrap_or(0)))
        })
    }

    fn delete_audit_before(&self, cutoff: i64) -> StoreResult<u64> {
        let mut conn = self.conn()?;
        conn.exec_drop(
            &*self.sql("DELETE FROM s_audit WHERE recorded_at < ?"),
            params![cutoff],
        )?;
        Ok(conn.affected_rows())
    }
}
