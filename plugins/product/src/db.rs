//! The products table: schema, connection setup and the per-row upsert.

use rusqlite::{params, Connection};
use stask_plugin_api::TaskError;
use std::path::Path;
use std::time::Duration;

/// File name of the worker's database inside its data folder.
pub const DB_FILE: &str = "products.db";

/// Every column of the table, in table order (also the default export field list).
pub const COLUMNS: &[&str] = &[
    "id",
    "sku",
    "name",
    "price",
    "stock",
    "category_id",
    "active",
    "updated_at",
];

/// Opens (and creates when needed) `{data_dir}/products.db`.
///
/// Tasks of one worker may run in parallel, so the connection waits for locks instead of failing
/// at once, and WAL lets an export read while an import writes.
pub fn open(data_dir: &Path) -> Result<Connection, TaskError> {
    if data_dir.as_os_str().is_empty() {
        return Err(TaskError::permanent(
            "the host gave this worker no data folder; it needs one for products.db",
        ));
    }
    std::fs::create_dir_all(data_dir)?;
    let conn = Connection::open(data_dir.join(DB_FILE))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA journal_mode = WAL;")?;
    init_schema(&conn)?;
    Ok(conn)
}

/// The products table (what [`init_schema`] creates; the benchmark's raw insert loop uses the
/// same).
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS products (
    id          INTEGER PRIMARY KEY,
    sku         TEXT UNIQUE NOT NULL,
    name        TEXT,
    price       REAL,
    stock       INTEGER,
    category_id INTEGER,
    active      INTEGER,
    updated_at  TEXT
);";

/// Creates the table when missing; an existing table is left as it is.
pub fn init_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

/// One product as read from a CSV row. `None` means "not given": an update keeps the stored
/// value, so a CSV with only `sku,stock` adjusts stock without blanking names and prices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductRow {
    pub sku: String,
    pub name: Option<String>,
    pub price: Option<f64>,
    pub stock: Option<i64>,
    pub category_id: Option<i64>,
    pub active: Option<bool>,
}

/// Which kinds of writes an import may do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub update_existing: bool,
    pub create_new: bool,
}

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Upserted {
    Created,
    Updated,
    /// Valid, but the policy forbade the write (existing SKU without `update_existing`, or new
    /// SKU without `create_new`).
    Skipped,
}

/// The insert of a new product; a SKU that exists already changes nothing (the caller then
/// updates it, or skips it).
const INSERT_NEW: &str =
    "INSERT INTO products (sku, name, price, stock, category_id, active, updated_at)
     VALUES (?1, ?2, ?3, COALESCE(?4, 0), ?5, COALESCE(?6, 1),
             strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
     ON CONFLICT (sku) DO NOTHING";

/// The update of an existing product: only the given columns change.
const UPDATE: &str = "UPDATE products SET
        name        = COALESCE(?2, name),
        price       = COALESCE(?3, price),
        stock       = COALESCE(?4, stock),
        category_id = COALESCE(?5, category_id),
        active      = COALESCE(?6, active),
        updated_at  = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
     WHERE sku = ?1";

/// Inserts or updates one product by SKU according to `policy`.
///
/// When new products may be created, the insert is tried first and its conflict on the SKU
/// says whether the product existed: one statement for a new row instead of a lookup and an
/// insert (what an import of new products spends its time on).
pub fn upsert(conn: &Connection, row: &ProductRow, policy: Policy) -> rusqlite::Result<Upserted> {
    let values = params![
        row.sku,
        row.name,
        row.price,
        row.stock,
        row.category_id,
        row.active
    ];
    if policy.create_new {
        // New products are in stock 0 and active unless the row says otherwise.
        if conn.prepare_cached(INSERT_NEW)?.execute(values)? == 1 {
            return Ok(Upserted::Created);
        }
    } else {
        let exists = conn
            .prepare_cached("SELECT 1 FROM products WHERE sku = ?1")?
            .exists([&row.sku])?;
        if !exists {
            return Ok(Upserted::Skipped);
        }
    }
    if !policy.update_existing {
        return Ok(Upserted::Skipped);
    }
    conn.prepare_cached(UPDATE)?.execute(values)?;
    Ok(Upserted::Updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Policy = Policy {
        update_existing: true,
        create_new: true,
    };

    fn memory() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        init_schema(&conn).unwrap();
        conn
    }

    fn row(sku: &str) -> ProductRow {
        ProductRow {
            sku: sku.to_owned(),
            ..ProductRow::default()
        }
    }

    #[test]
    fn insert_then_partial_update_keeps_other_columns() {
        let conn = memory();
        let full = ProductRow {
            name: Some("Mug".into()),
            price: Some(4.5),
            stock: Some(3),
            ..row("MUG-1")
        };
        assert_eq!(upsert(&conn, &full, ALL).unwrap(), Upserted::Created);
        let stock_only = ProductRow {
            stock: Some(7),
            ..row("MUG-1")
        };
        assert_eq!(upsert(&conn, &stock_only, ALL).unwrap(), Upserted::Updated);
        let (name, price, stock, active): (String, f64, i64, i64) = conn
            .query_row(
                "SELECT name, price, stock, active FROM products WHERE sku = 'MUG-1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!((name.as_str(), price, stock, active), ("Mug", 4.5, 7, 1));
    }

    #[test]
    fn policy_can_forbid_creates_and_updates() {
        let conn = memory();
        let no_create = Policy {
            create_new: false,
            ..ALL
        };
        assert_eq!(
            upsert(&conn, &row("A"), no_create).unwrap(),
            Upserted::Skipped
        );
        upsert(&conn, &row("A"), ALL).unwrap();
        let no_update = Policy {
            update_existing: false,
            ..ALL
        };
        assert_eq!(
            upsert(&conn, &row("A"), no_update).unwrap(),
            Upserted::Skipped
        );
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM products", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 1);
    }

    #[test]
    fn open_creates_the_file_in_the_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("nested")).unwrap();
        upsert(&conn, &row("X"), ALL).unwrap();
        assert!(dir.path().join("nested").join(DB_FILE).is_file());
    }
}
