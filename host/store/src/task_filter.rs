//! The task list's filter as SQL, written once for every driver: they differ only in how a
//! placeholder is spelled, in which `LIKE` ignores case, and in how a time is compared (MySQL converts it to a `DATETIME`).

use super::TaskFilter;

/// A value bound to one placeholder of the clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterArg {
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// A point in time, UNIX milliseconds (a driver whose time columns are native
    /// timestamps converts it in SQL).
    Time(i64),
}

/// What differs between the SQL dialects here.
pub struct Dialect {
    /// The placeholder for the n-th argument (1-based): `?1`, `$1`.
    pub placeholder: fn(usize) -> String,
    /// A `LIKE` that ignores ASCII case: SQLite's `LIKE` does, PostgreSQL's `ILIKE`.
    pub like: &'static str,
}

/// SQLite's dialect.
pub const SQLITE: Dialect = Dialect {
    placeholder: |n| format!("?{n}"),
    like: "LIKE",
};

/// PostgreSQL's dialect.
pub const POSTGRES: Dialect = Dialect {
    placeholder: |n| format!("${n}"),
    like: "ILIKE",
};

/// The filtered page of a task list: `WHERE ...` (or nothing) with its arguments in order,
/// and the `ORDER BY`/`LIMIT`/`OFFSET` tail.
#[derive(Debug, PartialEq, Eq)]
pub struct FilterSql {
    /// `WHERE ...`, or empty.
    pub where_sql: String,
    /// Arguments of the placeholders, in order.
    pub args: Vec<FilterArg>,
    /// `ORDER BY id ... LIMIT ... OFFSET ...`.
    pub page_sql: String,
}

/// `filter` in `dialect`. Only integers from enums and clamped numbers are inlined; every
/// user-given value is an argument.
pub fn filter_sql(filter: &TaskFilter, dialect: &Dialect) -> FilterSql {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<FilterArg> = Vec::new();
    if !filter.statuses.is_empty() {
        let codes: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| s.code().to_string())
            .collect();
        clauses.push(format!("status IN ({})", codes.join(",")));
    }
    let mut bind = |value: FilterArg| {
        args.push(value);
        (dialect.placeholder)(args.len())
    };
    if let Some(v) = &filter.identifier {
        clauses.push(format!("identifier = {}", bind(FilterArg::Text(v.clone()))));
    }
    if !filter.identifiers.is_empty() {
        let marks: Vec<String> = filter
            .identifiers
            .iter()
            .map(|v| bind(FilterArg::Text(v.clone())))
            .collect();
        clauses.push(format!("identifier IN ({})", marks.join(", ")));
    }
    if let Some(v) = &filter.action {
        clauses.push(format!("action = {}", bind(FilterArg::Text(v.clone()))));
    }
    if let Some(v) = filter.priority {
        clauses.push(format!(
            "priority = {}",
            bind(FilterArg::Text(v.name().into()))
        ));
    }
    if let Some(v) = filter.started_by {
        clauses.push(format!("started_by = {}", bind(FilterArg::Int(v))));
    }
    if let Some(v) = filter.parent_id {
        clauses.push(format!("parent_id = {}", bind(FilterArg::Int(v))));
    }
    if let Some(v) = filter.batch_id {
        clauses.push(format!("batch_id = {}", bind(FilterArg::Int(v))));
    }
    if let Some(v) = filter.created_from {
        clauses.push(format!("created_at >= {}", bind(FilterArg::Time(v))));
    }
    if let Some(v) = filter.created_to {
        clauses.push(format!("created_at < {}", bind(FilterArg::Time(v))));
    }
    if let Some(v) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let escaped = v
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let p = bind(FilterArg::Text(format!("%{escaped}%")));
        let like = |column: &str| format!("{column} {} {p} ESCAPE '\\'", dialect.like);
        clauses.push(format!(
            "({} OR {} OR {} OR {})",
            like("message"),
            like("meta"),
            like("identifier"),
            like("action")
        ));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let order = if filter.oldest_first { "ASC" } else { "DESC" };
    let limit = filter.limit.clamp(1, 1000);
    let offset = filter.offset.max(0);
    FilterSql {
        where_sql,
        args,
        page_sql: format!("ORDER BY id {order} LIMIT {limit} OFFSET {offset}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Priority, TaskStatus};

    #[test]
    fn every_user_value_is_an_argument_in_either_dialect() {
        let filter = TaskFilter {
            statuses: vec![TaskStatus::Pending, TaskStatus::Failed],
            identifier: Some("w'; DROP TABLE s_tasks; --".into()),
            priority: Some(Priority::High),
            created_from: Some(5),
            started_by: Some(7),
            search: Some("50%_off\\".into()),
            limit: 5_000,
            offset: -3,
            ..Default::default()
        };
        let pg = filter_sql(&filter, &POSTGRES);
        assert_eq!(
            pg.where_sql,
            "WHERE status IN (10,40) AND identifier = $1 AND priority = $2 AND started_by = $3 \
             AND created_at >= $4 \
             AND (message ILIKE $5 ESCAPE '\\' OR meta ILIKE $5 ESCAPE '\\' \
             OR identifier ILIKE $5 ESCAPE '\\' OR action ILIKE $5 ESCAPE '\\')"
        );
        assert_eq!(
            pg.args,
            vec![
                FilterArg::Text("w'; DROP TABLE s_tasks; --".into()),
                FilterArg::Text("high".into()),
                FilterArg::Int(7),
                FilterArg::Time(5),
                FilterArg::Text("%50\\%\\_off\\\\%".into()),
            ]
        );
        assert_eq!(pg.page_sql, "ORDER BY id DESC LIMIT 1000 OFFSET 0");
        let sqlite = filter_sql(&filter, &SQLITE);
        assert!(sqlite.where_sql.contains("identifier = ?1"));
        assert!(sqlite.where_sql.contains("started_by = ?3"));
        assert!(sqlite.where_sql.contains("message LIKE ?5"));
        assert_eq!(sqlite.args, pg.args);
    }

    #[test]
    fn an_empty_filter_has_no_where() {
        let f = filter_sql(
            &TaskFilter {
                limit: 20,
                offset: 40,
                oldest_first: true,
                ..Default::default()
            },
            &SQLITE,
        );
        assert_eq!((f.where_sql.as_str(), f.args.len()), ("", 0));
        assert_eq!(f.page_sql, "ORDER BY id ASC LIMIT 20 OFFSET 40");
    }
}
