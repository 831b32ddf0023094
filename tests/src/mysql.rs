//! The MySQL/MariaDB side of the harness: a database of its own per test home (or per group of
//! hosts sharing one queue), dropped when the last home using it goes.

use mysql::prelude::Queryable;
use std::sync::Arc;

/// The MySQL/MariaDB server the tests use: `STASK_TEST_MYSQL_URL`, else the local MariaDB
/// (CI starts it; `tests/setup.sh` installs it when missing).
pub fn mysql_url() -> String {
    std::env::var("STASK_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A database of its own on the test server (`stask_e2e_<random>`), dropped with everything
/// in it when the last [`crate::Home`] using it goes. Homes sharing one are hosts sharing one
/// queue.
pub struct MysqlDatabase {
    name: String,
}

impl MysqlDatabase {
    /// Creates the database; panics with a clear message when the server is unreachable.
    pub fn create() -> Arc<MysqlDatabase> {
        let name = format!(
            "stask_e2e_{:x}_{}",
            crate::rand_suffix(),
            std::process::id()
        );
        admin()
            .query_drop(format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ))
            .expect("creating the test database");
        Arc::new(MysqlDatabase { name })
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL for `STASK_DATABASE_URL`: the test server, this database.
    pub fn url(&self) -> String {
        with_database(&mysql_url(), &self.name)
    }

    /// A connection to this database, for checks straight in the tables.
    pub fn conn(&self) -> mysql::Conn {
        connect(&self.url())
    }
}

impl Drop for MysqlDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        if let Err(e) = admin().query_drop(sql) {
            eprintln!("cannot drop test database {}: {e}", self.name);
        }
    }
}

/// `url` with its database (the path) replaced by `database`; a query string is kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn connect(url: &str) -> mysql::Conn {
    let opts = mysql::Opts::from_url(url).unwrap_or_else(|e| panic!("bad MySQL URL {url}: {e}"));
    mysql::Conn::new(opts).unwrap_or_else(|e| {
        panic!(
            "these tests need MySQL/MariaDB at {url} (run tests/setup.sh, or set \
             STASK_TEST_MYSQL_URL): {e}"
        )
    })
}

fn admin() -> mysql::Conn {
    connect(&mysql_url())
}

/// Runs statements with their values written in (test-made values only), each on its own.
pub(crate) fn execute(conn: &mut mysql::Conn, sql: &str) -> u64 {
    conn.query_drop(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.affected_rows()
}

/// Rows of a query, every value as its text (the text protocol sends them so), NULL as None.
pub(crate) fn query(conn: &mut mysql::Conn, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows: Vec<mysql::Row> = conn.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|row| {
            row.unwrap()
                .into_iter()
                .map(|value| match value {
                    mysql::Value::NULL => None,
                    mysql::Value::Bytes(bytes) => {
                        Some(String::from_utf8_lossy(&bytes).into_owned())
                    }
                    other => Some(other.as_sql(true)),
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306/test", "x"),
            "mysql://root@127.0.0.1:3306/x"
        );
        assert_eq!(
            with_database("mysql://u:p@h/test?prefer_socket=false", "x"),
            "mysql://u:p@h/x?prefer_socket=false"
        );
        assert_eq!(with_database("mysql://h:1", "x"), "mysql://h:1/x");
    }
}
