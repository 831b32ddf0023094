//! The audit log (`s_audit`, migration 0016): one row per state-changing HTTP request, refused
//! ones included. The HTTP layer decides what a row says and batches the writes; the store
//! only keeps, lists and forgets rows. The list's filter is written once here for every
//! dialect, as the task list's is ([`crate::task_filter`]).

use crate::task_filter::{Dialect, FilterArg};
use crate::StoreResult;

/// One request as the audit log keeps it (without its id, which the store gives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When the answer was sent, UNIX ms.
    pub recorded_at: i64,
    /// The calling token (a session's: the token it was opened with); `None`: anonymous.
    pub token_id: Option<i64>,
    /// That token's name.
    pub token_name: Option<String>,
    /// That token's role name (`read`, `operate`, `admin`).
    pub role: Option<String>,
    /// Whether the call came through a browser session.
    pub via_session: bool,
    /// HTTP method.
    pub method: String,
    /// The matched route template (`/stask/tasks/{id}/cancel`).
    pub route: String,
    /// The path's parameters, `name=value` separated by spaces (`id=5`).
    pub target: Option<String>,
    /// Ids of the tasks the request created, separated by commas.
    pub created_ids: Option<String>,
    /// The HTTP status answered.
    pub status: i64,
    /// The client's address (`ip:port`).
    pub client_addr: Option<String>,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Id (grows with time of writing).
    pub id: i64,
    /// What was recorded.
    pub entry: AuditEntry,
}

/// Which audit rows to list: every field narrows; newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// A token, by name or id.
    pub token: Option<String>,
    /// A route template, exactly.
    pub route: Option<String>,
    /// The status class: 2, 3, 4 or 5 (`2xx`...).
    pub status_class: Option<i64>,
    /// Recorded at or after (UNIX ms).
    pub since: Option<i64>,
    /// Recorded before (UNIX ms).
    pub until: Option<i64>,
    /// Page size (clamped to 1..=1000).
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// The audit log's storage.
pub trait AuditStore: Send + Sync {
    /// Stores entries, all in one transaction.
    fn insert_audit(&self, entries: &[AuditEntry]) -> StoreResult<()>;
    /// A page of the rows `filter` selects, newest first, and how many it selects in all.
    fn audit_entries(&self, filter: &AuditFilter) -> StoreResult<(Vec<AuditRow>, i64)>;
    /// Deletes rows recorded before `cutoff`; returns how many.
    fn delete_audit_before(&self, cutoff: i64) -> StoreResult<u64>;
}

/// The columns [`audit_from_row`] reads, in its order.
pub const AUDIT_COLUMNS: &str = "id, recorded_at, token_id, token_name, role, via_session, \
     method, route, target, created_ids, status, client_addr";

/// The insert of one row; its placeholders are numbered 1..=11 in [`AUDIT_COLUMNS`]' order
/// after `id`.
pub fn insert_sql(dialect: &Dialect) -> String {
    let marks: Vec<String> = (1..=11).map(dialect.placeholder).collect();
    format!(
        "INSERT INTO s_audit (recorded_at, token_id, token_name, role, via_session, method, \
         route, target, created_ids, status, client_addr) VALUES ({})",
        marks.join(", ")
    )
}

/// An audit row from a row of [`AUDIT_COLUMNS`].
pub fn audit_from_row(row: &impl crate::rows::RowRead) -> StoreResult<AuditRow> {
    Ok(AuditRow {
        id: row.col(0)?,
        entry: AuditEntry {
            recorded_at: row.col(1)?,
            token_id: row.col(2)?,
            token_name: row.col(3)?,
            role: row.col(4)?,
            via_session: row.col(5)?,
            method: row.col(6)?,
            route: row.col(7)?,
            target: row.col(8)?,
            created_ids: row.col(9)?,
            status: row.col(10)?,
            client_addr: row.col(11)?,
        },
    })
}

/// `WHERE ...` (or nothing) with its arguments, and the page's `ORDER BY ... LIMIT ...`.
/// Times are plain integers here (bookkeeping milliseconds on every backend).
pub fn filter_sql(filter: &AuditFilter, dialect: &Dialect) -> (String, Vec<FilterArg>, String) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    let mut bind = |value: FilterArg| {
        args.push(value);
        (dialect.placeholder)(args.len())
    };
    if let Some(token) = &filter.token {
        match token.parse::<i64>() {
            Ok(id) => clauses.push(format!("token_id = {}", bind(FilterArg::Int(id)))),
            Err(_) => clauses.push(format!(
                "token_name = {}",
                bind(FilterArg::Text(token.clone()))
            )),
        }
    }
    if let Some(route) = &filter.route {
        clauses.push(format!("route = {}", bind(FilterArg::Text(route.clone()))));
    }
    if let Some(class) = filter.status_class {
        let low = bind(FilterArg::Int(class * 100));
        let high = bind(FilterArg::Int(class * 100 + 100));
        clauses.push(format!("status >= {low} AND status < {high}"));
    }
    if let Some(since) = filter.since {
        clauses.push(format!("recorded_at >= {}", bind(FilterArg::Int(since))));
    }
    if let Some(until) = filter.until {
        clauses.push(format!("recorded_at < {}", bind(FilterArg::Int(until))));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let page = format!(
        "ORDER BY id DESC LIMIT {} OFFSET {}",
        filter.limit.clamp(1, 1000),
        filter.offset.max(0)
    );
    (where_sql, args, page)
}

/// A status class as people write it, `2xx` (or `2`) up to `5xx`, as its digit; the one
/// reading of the API's `status` filter and the CLI's `--status`.
pub fn status_class(s: &str) -> Option<i64> {
    let digit = s.strip_suffix("xx").unwrap_or(s);
    match digit {
        "2" | "3" | "4" | "5" => digit.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_value_is_an_argument() {
        let (w, args, page) = filter_sql(
            &AuditFilter {
                token: Some("ci'; --".into()),
                status_class: Some(4),
                since: Some(5),
                limit: 0,
                offset: -1,
                ..Default::default()
            },
            &crate::task_filter::POSTGRES,
        );
        assert_eq!(
            w,
            "WHERE token_name = $1 AND status >= $2 AND status < $3 AND recorded_at >= $4"
        );
        assert_eq!(
            args,
            vec![
                FilterArg::Text("ci'; --".into()),
                FilterArg::Int(400),
                FilterArg::Int(500),
                FilterArg::Int(5)
            ]
        );
        assert_eq!(page, "ORDER BY id DESC LIMIT 1 OFFSET 0");
        let (w, _, _) = filter_sql(
            &AuditFilter {
                token: Some("12".into()),
                ..Default::default()
            },
            &crate::task_filter::SQLITE,
        );
        assert_eq!(w, "WHERE token_id = ?1");
    }
}
