//! `export`: the products table (filtered, chosen columns) as a CSV file in the output folder.

use crate::db::{self, COLUMNS};
use crate::input::opt_str;
use rusqlite::params_from_iter;
use rusqlite::types::{Value as SqlValue, ValueRef};
use serde_json::{json, Value};
use stask_plugin_api::{Context, Output, TaskError};

/// Export formats this worker can write.
const FORMATS: &[&str] = &["csv"];
/// Keys accepted in `filters`.
const FILTER_KEYS: &[&str] = &[
    "category_id",
    "active",
    "sku_prefix",
    "min_price",
    "max_price",
];

/// The `filters` object, validated. Every given filter must match (AND).
#[derive(Debug, Default, PartialEq)]
struct Filters {
    category_id: Option<i64>,
    active: Option<bool>,
    sku_prefix: Option<String>,
    min_price: Option<f64>,
    max_price: Option<f64>,
}

fn parse_format(data: &Value) -> Result<(), TaskError> {
    let format = opt_str(data, "format")?.unwrap_or("csv");
    if FORMATS.contains(&format) {
        Ok(())
    } else {
        Err(TaskError::permanent(format!(
            "unsupported format {format:?}; valid formats: {}",
            FORMATS.join(", ")
        )))
    }
}

fn parse_filters(value: Option<&Value>) -> Result<Filters, TaskError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Filters::default()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(TaskError::permanent(format!(
                "filters must be an object, got {other}"
            )))
        }
    };
    let mut filters = Filters::default();
    for (key, value) in map {
        let wrong = |expected: &str| {
            TaskError::permanent(format!("filter {key} must be {expected}, got {value}"))
        };
        match key.as_str() {
            "category_id" => {
                filters.category_id = Some(value.as_i64().ok_or_else(|| wrong("an integer"))?)
            }
            // Stored as 0/1, so accept both spellings.
            "active" => {
                filters.active = Some(match value {
                    Value::Bool(b) => *b,
                    Value::Number(n) if n.as_u64() == Some(1) => true,
                    Value::Number(n) if n.as_u64() == Some(0) => false,
                    _ => return Err(wrong("true, false, 1 or 0")),
                })
            }
            "sku_prefix" => {
                filters.sku_prefix =
                    Some(value.as_str().ok_or_else(|| wrong("a string"))?.to_owned())
            }
            "min_price" => {
                filters.min_price = Some(value.as_f64().ok_or_else(|| wrong("a number"))?)
            }
            "max_price" => {
                filters.max_price = Some(value.as_f64().ok_or_else(|| wrong("a number"))?)
            }
            _ => {
                return Err(TaskError::permanent(format!(
                    "unknown filter {key}; valid filters: {}",
                    FILTER_KEYS.join(", ")
                )))
            }
        }
    }
    if let (Some(min), Some(max)) = (filters.min_price, filters.max_price) {
        if min > max {
            return Err(TaskError::permanent(format!(
                "min_price {min} is greater than max_price {max}"
            )));
        }
    }
    Ok(filters)
}

impl Filters {
    /// The `WHERE` clause (empty when no filter is set) and its parameters. Values always
    /// travel as parameters; only fixed column names are spliced into the SQL.
    fn where_clause(&self) -> (String, Vec<SqlValue>) {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if let Some(id) = self.category_id {
            conditions.push("category_id = ?");
            params.push(SqlValue::Integer(id));
        }
        if let Some(active) = self.active {
            conditions.push("active = ?");
            params.push(SqlValue::Integer(i64::from(active)));
        }
        if let Some(prefix) = &self.sku_prefix {
            // substr instead of LIKE: no escaping of % and _, and case-sensitive like SKUs.
            conditions.push("substr(sku, 1, length(?)) = ?");
            params.push(SqlValue::Text(prefix.clone()));
            params.push(SqlValue::Text(prefix.clone()));
        }
        if let Some(min) = self.min_price {
            conditions.push("price >= ?");
            params.push(SqlValue::Real(min));
        }
        if let Some(max) = self.max_price {
            conditions.push("price <= ?");
            params.push(SqlValue::Real(max));
        }
        if conditions.is_empty() {
            (String::new(), params)
        } else {
            (format!(" WHERE {}", conditions.join(" AND ")), params)
        }
    }
}

/// The requested columns, each checked against [`COLUMNS`]; all columns when absent.
fn parse_fields(value: Option<&Value>) -> Result<Vec<&'static str>, TaskError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(COLUMNS.to_vec()),
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(other) => {
            return Err(TaskError::permanent(format!(
                "fields must be a non-empty array of column names, got {other}"
            )))
        }
    };
    list.iter()
        .map(|field| {
            field
                .as_str()
                .and_then(|name| COLUMNS.iter().copied().find(|c| *c == name))
                .ok_or_else(|| {
                    TaskError::permanent(format!(
                        "unknown field {field}; valid fields: {}",
                        COLUMNS.join(", ")
                    ))
                })
        })
        .collect()
}

/// One SQLite value as CSV text; NULL becomes an empty cell.
fn cell_text(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

/// Runs the `export` action.
pub fn run(ctx: &Context<'_>, data: &Value) -> Result<Output, TaskError> {
    parse_format(data)?;
    let filters = parse_filters(data.get("filters"))?;
    let fields = parse_fields(data.get("fields"))?;
    let (where_sql, params) = filters.where_clause();

    let conn = db::open(ctx.data_dir())?;
    let total: u64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM products{where_sql}"),
        params_from_iter(params.iter()),
        |row| row.get(0),
    )?;

    let name = format!("products-export-{}.csv", ctx.task_id());
    let path = ctx.output_dir().join(&name);
    let mut writer = csv::Writer::from_path(&path)?;
    writer.write_record(&fields)?;

    let mut statement = conn.prepare(&format!(
        "SELECT {} FROM products{where_sql} ORDER BY id",
        fields.join(", ")
    ))?;
    let mut rows = statement.query(params_from_iter(params.iter()))?;
    let mut written = 0u64;
    let mut cells = Vec::with_capacity(fields.len());
    while let Some(row) = rows.next()? {
        if ctx.is_cancelled() {
            drop(writer);
            // A half-written export is worse than none: nobody should download it.
            let _ = std::fs::remove_file(&path);
            return Err(TaskError::cancelled());
        }
        cells.clear();
        for i in 0..fields.len() {
            cells.push(cell_text(row.get_ref(i)?));
        }
        writer.write_record(&cells)?;
        written += 1;
        if written % 100 == 0 {
            ctx.progress_items(written, total.max(written), "exporting rows");
        }
    }
    writer.flush()?;
    ctx.progress_items(written, total.max(written), "export written");
    ctx.log(&format!("exported {written} products to {name}"));
    Ok(Output::file(path).with_text(json!({"rows": written, "file": name}).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{init_schema, upsert, Policy, ProductRow};
    use rusqlite::Connection;

    #[test]
    fn format_defaults_to_csv_and_lists_valid_ones() {
        assert!(parse_format(&json!({})).is_ok());
        assert!(parse_format(&json!({"format": "csv"})).is_ok());
        let error = parse_format(&json!({"format": "xlsx"})).unwrap_err();
        assert!(error.message().contains("valid formats: csv"), "{error}");
    }

    #[test]
    fn filters_are_typed_and_closed() {
        let filters = parse_filters(Some(&json!({
            "category_id": 4, "active": 1, "sku_prefix": "AB", "min_price": 1, "max_price": 9.5
        })))
        .unwrap();
        assert_eq!(
            filters,
            Filters {
                category_id: Some(4),
                active: Some(true),
                sku_prefix: Some("AB".into()),
                min_price: Some(1.0),
                max_price: Some(9.5),
            }
        );
        let error = parse_filters(Some(&json!({"colour": "red"}))).unwrap_err();
        assert!(error.message().contains("valid filters"), "{error}");
        assert!(parse_filters(Some(&json!({"active": "yes"}))).is_err());
        assert!(parse_filters(Some(&json!({"category_id": 1.5}))).is_err());
        assert!(parse_filters(Some(&json!({"min_price": 5, "max_price": 1}))).is_err());
        assert!(parse_filters(Some(&json!([1]))).is_err());
        assert_eq!(parse_filters(None).unwrap(), Filters::default());
    }

    #[test]
    fn fields_default_to_all_and_reject_unknown_ones() {
        assert_eq!(parse_fields(None).unwrap(), COLUMNS.to_vec());
        assert_eq!(
            parse_fields(Some(&json!(["sku", "price"]))).unwrap(),
            vec!["sku", "price"]
        );
        let error = parse_fields(Some(&json!(["sku", "password"]))).unwrap_err();
        assert!(error.message().contains("valid fields"), "{error}");
        assert!(parse_fields(Some(&json!([]))).is_err());
        assert!(parse_fields(Some(&json!("sku"))).is_err());
    }

    #[test]
    fn where_clause_selects_the_matching_rows() {
        let conn = Connection::open_in_memory().unwrap();
        init_schema(&conn).unwrap();
        let all = Policy {
            update_existing: true,
            create_new: true,
        };
        for (sku, price, category, active) in [
            ("AB-1", 5.0, 1, true),
            ("AB-2", 15.0, 1, true),
            ("A%-3", 5.0, 1, true),
            ("CD-1", 5.0, 2, false),
        ] {
            let row = ProductRow {
                sku: sku.into(),
                price: Some(price),
                category_id: Some(category),
                active: Some(active),
                ..ProductRow::default()
            };
            upsert(&conn, &row, all).unwrap();
        }
        let skus = |filters: Value| -> Vec<String> {
            let (sql, params) = parse_filters(Some(&filters)).unwrap().where_clause();
            let mut statement = conn
                .prepare(&format!("SELECT sku FROM products{sql} ORDER BY id"))
                .unwrap();
            let rows = statement
                .query_map(params_from_iter(params.iter()), |r| r.get(0))
                .unwrap();
            rows.map(Result::unwrap).collect()
        };
        assert_eq!(skus(json!({})).len(), 4);
        assert_eq!(skus(json!({"sku_prefix": "AB"})), ["AB-1", "AB-2"]);
        assert_eq!(skus(json!({"sku_prefix": "A%"})), ["A%-3"]);
        assert_eq!(skus(json!({"active": false})), ["CD-1"]);
        assert_eq!(
            skus(json!({"category_id": 1, "max_price": 10})),
            ["AB-1", "A%-3"]
        );
    }

    #[test]
    fn cells_render_sqlite_values() {
        assert_eq!(cell_text(ValueRef::Null), "");
        assert_eq!(cell_text(ValueRef::Integer(3)), "3");
        assert_eq!(cell_text(ValueRef::Real(2.5)), "2.5");
        assert_eq!(cell_text(ValueRef::Text(b"x")), "x");
    }
}
