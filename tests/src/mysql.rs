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
/// With several statements, the rows changed by all of them.
pub(crate) fn execute(conn: &mut mysql::Conn, sql: &str) -> u64 {
    let mut result = conn
        .query_iter(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut changed = 0;
    while let Some(set) = result.iter() {
        changed += set.affected_rows();
    }
    changed
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

/// A MariaDB server of the test's own (its own data folder and port, started from the
/// installed `mariadbd`), for tests that stop and restart the server under a running daemon
/// without touching the shared one. Killed and removed on drop.
pub struct PrivateMariadb {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<std::process::Child>,
}

impl PrivateMariadb {
    /// Initialises a data folder (root without a password over TCP) and starts the server on
    /// a free port, with database `stask`.
    pub fn start() -> PrivateMariadb {
        let dir = tempfile::Builder::new()
            .prefix("stask-mariadb-")
            .tempdir()
            .expect("tempdir");
        let status = std::process::Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .args(["--user=root", "--auth-root-authentication-method=normal"])
            .arg("--skip-test-db")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("mariadb-install-db runs (tests/setup.sh installs mariadb-server)");
        assert!(status.success(), "mariadb-install-db failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = PrivateMariadb {
            dir,
            port,
            server: None,
        };
        server.start_again();
        server
            .admin()
            .query_drop("CREATE DATABASE IF NOT EXISTS stask")
            .expect("create database stask");
        server
    }

    /// The URL of its `stask` database.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/stask", self.port)
    }

    /// Kills the server (SIGKILL: a crash; InnoDB recovers at the next start).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server on its data folder and port; returns once it answers a query.
    pub fn start_again(&mut self) {
        assert!(self.server.is_none(), "the server is running");
        let data = self.dir.path().join("data");
        let child = std::process::Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("pid").display()
            ))
            .arg("--user=root")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("server.log")).expect("log"))
            .spawn()
            .expect("start mariadbd");
        self.server = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let answered = mysql::Conn::new(
                mysql::Opts::from_url(&format!("mysql://root@127.0.0.1:{}/", self.port))
                    .expect("url"),
            )
            .and_then(|mut c| c.query_drop("SELECT 1"));
            if answered.is_ok() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the private MariaDB did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// A connection to its `stask` database.
    pub fn conn(&self) -> mysql::Conn {
        connect(&self.url())
    }

    fn admin(&self) -> mysql::Conn {
        connect(&format!("mysql://root@127.0.0.1:{}/", self.port))
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        self.kill();
    }
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
