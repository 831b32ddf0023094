//! `AuditStore` for PostgreSQL: a batch is one statement over arrays (`unnest`), one round
//! trip whatever its size.

use super::{text, PgStore};
use crate::audit::{audit_from_row, filter_sql, AUDIT_COLUMNS};
use crate::task_filter::{FilterArg, POSTGRES};
use crate::{AuditEntry, AuditFilter, AuditRow, AuditStore, StoreResult};
use postgres::types::ToSql;

/// Every entry of a batch, one array per column.
const INSERT_SQL: &str = "INSERT INTO s_audit (recorded_at, token_id, token_name, role, \
     via_session, method, route, target, created_ids, status, client_addr)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::boolean[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[])";

/// A bound value of the list's filter.
enum Param {
    Text(String),
    Int(i64),
}

impl AuditStore for PgStore {
    fn insert_audit(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let opt = |v: &Option<String>| v.as_deref().map(text);
        let at: Vec<i64> = entries.iter().map(|e| e.recorded_at).collect();
        let token_id: Vec<Option<i64>> = entries.iter().map(|e| e.token_id).collect();
        let token_name: Vec<Option<String>> = entries.iter().map(|e| opt(&e.token_name)).collect();
        let role: Vec<Option<String>> = entries.iter().map(|e| opt(&e.role)).collect();
        let session: Vec<bool> = entries.iter().map(|e| e.via_session).collect();
        let method: Vec<String> = entries.iter().map(|e| text(&e.method)).collect();
        let route: Vec<String> = entries.iter().map(|e| text(&e.route)).collect();
        let target: Vec<Option<String>> = entries.iter().map(|e| opt(&e.target)).collect();
        let created: Vec<Option<String>> = entries.iter().map(|e| opt(&e.created_ids)).collect();
        let status: Vec<i64> = entries.iter().map(|e| e.status).collect();
        let client: Vec<Option<String>> = entries.iter().map(|e| opt(&e.client_addr)).collect();
        self.run(move |conn| {
            conn.execute(
                INSERT_SQL,
                &[
                    &at,
                    &token_id,
                    &token_name,
                    &role,
                    &session,
                    &method,
                    &route,
                    &target,
                    &created,
                    &status,
                    &client,
                ],
            )?;
            Ok(())
        })
    }

    fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<(Vec<AuditRow>, i64)> {
        let (where_sql, args, page) = filter_sql(filter, &POSTGRES);
        let args: Vec<Param> = args
            .into_iter()
            .map(|a| match a {
                FilterArg::Text(v) => Param::Text(text(&v)),
                FilterArg::Int(v) | FilterArg::Time(v) => Param::Int(v),
            })
            .collect();
        self.transaction(move |tx, st| {
            let params: Vec<&(dyn ToSql + Sync)> = args
                .iter()
                .map(|p| match p {
                    Param::Text(v) => v as &(dyn ToSql + Sync),
                    Param::Int(v) => v as &(dyn ToSql + Sync),
                })
                .collect();
            let total: i64 = tx
                .query_one(
                    &*st.apply(&format!("SELECT COUNT(*) FROM s_audit {where_sql}")),
                    &params,
                )?
                .try_get(0)?;
            let sql = format!("SELECT {AUDIT_COLUMNS} FROM s_audit {where_sql} {page}");
            let rows = tx
                .query(&*st.apply(&sql), &params)?
                .iter()
                .map(audit_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok((rows, total))
        })
    }

    fn delete_audit_before(&self, cutoff: i64) -> StoreResult<u64> {
        self.run(move |conn| {
            Ok(conn.execute("DELETE FROM s_audit WHERE recorded_at < $1", &[&cutoff])?)
        })
    }
}
