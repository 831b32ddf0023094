//! The MySQL/MariaDB backend: several hosts on one queue, in the same database as a CMS
//! (`mysql://USER:PASS@HOST:PORT/DB`, `mariadb://...` alike).
//!
//! **No connection threads.** The `mysql` crate is plain blocking I/O with no runtime inside
//! (unlike `postgres`, which drives tokio and panics inside another runtime), and its [`Pool`]
//! is safe from any thread: each call takes a pooled connection, async thread or not. The pool
//! pings a connection before handing it out and replaces a dead one, so a lost connection
//! fails at most the call at hand ([`StoreError::Connection`]) and the next call reconnects.
//!
//! **Sessions.** Every connection starts in `READ COMMITTED` (as PostgreSQL: no gap locks, so a
//! claim's `FOR UPDATE` never blocks the insert of a new task), with `time_zone = '+00:00'` (the `DATETIME(3)`
//! defaults of rows the CMS inserts are UTC), `NO_BACKSLASH_ESCAPES` (our SQL uses standard
//! string literals, e.g. `ESCAPE '\'`) and strict mode, and reports matched rather than changed
//! rows (`CLIENT_FOUND_ROWS`), so a fenced update that rewrites equal values still counts.
//!
//! **Times.** The seed's time columns are `DATETIME(3)`; the driver converts them to and from
//! the model's UNIX milliseconds in SQL with [`from_ms`] and [`to_ms`] (pure date arithmetic
//! from the epoch: no time zone is involved, and the range is DATETIME's own, years
//! 1000-9999; values outside are clamped by [`clamp_ms`] before they are bound).
//!
//! **Several hosts.** Claims lock rows with `FOR UPDATE SKIP LOCKED`, every later write of a
//! run is fenced by its lease token, rows of a batch are locked in ascending id order, exactly
//! as in PostgreSQL. Deadlocks and lock wait timeouts are [`StoreError::Busy`]; claims and
//! finishes retry them a few times inside the driver. Wake-ups come from a poller
//! ([`wake`]), since MySQL has no `LISTEN`.

mod analytics;
mod audit;
mod batches;
pub mod copy;
mod dependencies;
mod hosts;
mod schedules;
mod tasks;
mod tokens;
pub mod wake;
mod workers;

use super::{migrations, Backend, Migration, SharedError, Store, StoreError, StoreResult};
use crate::{OpenOptions, TablePrefix};
use mysql::prelude::Queryable;
use mysql::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, PooledConn, TxOpts};
use std::sync::Arc;
use std::time::Duration;

/// Most pooled connections per store unless `STASK_MYSQL_CONNECTIONS` says otherwise: several
/// hosts share the server's `max_connections` (151 by default).
const DEFAULT_CONNECTIONS: usize = 8;

/// How long a new connection may take before the call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a claim or a finish is tried when the server answers with a deadlock or a
/// lock wait timeout (nothing of the failed try was written: InnoDB rolled it back).
const BUSY_TRIES: usize = 4;

/// Server error codes after which the same call may succeed when retried.
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;
/// A duplicate key.
const ER_DUP_ENTRY: u16 = 1062;
/// Refusals at open that the operator must fix: access denied, unknown database.
const ER_ACCESS_DENIED: u16 = 1045;
const ER_BAD_DB: u16 = 1049;
/// The client's codes for a lost connection ("server has gone away", "lost connection").
const CR_SERVER_GONE: u16 = 2006;
const CR_SERVER_LOST: u16 = 2013;
/// The server's storage is full: a disk (`ER_DISK_FULL`) or a table/tablespace
/// (`ER_RECORD_FILE_FULL`, also InnoDB's "the table is full" when its files cannot grow).
const ER_DISK_FULL: u16 = 1021;
const ER_RECORD_FILE_FULL: u16 = 1114;
/// A session killed by the server (`KILL`), or the server shutting down.
const ER_CONNECTION_KILLED: u16 = 1927;
const ER_SERVER_SHUTDOWN: u16 = 1053;

/// Whether `e` says the connection is gone (the pool replaces it).
fn is_lost(e: &mysql::Error) -> bool {
    match e {
        mysql::Error::IoError(_) => true,
        // Only the driver's errors about the link itself: the others (parameters, pool
        // settings, protocol features) are bugs or settings, not a lost connection.
        mysql::Error::DriverError(d) => matches!(
            d,
            mysql::DriverError::ConnectTimeout
                | mysql::DriverError::CouldNotConnect(_)
                | mysql::DriverError::PacketOutOfSync
                | mysql::DriverError::UnexpectedPacket
                | mysql::DriverError::Timeout
        ),
        mysql::Error::MySqlError(m) => matches!(
            m.code,
            CR_SERVER_GONE | CR_SERVER_LOST | ER_CONNECTION_KILLED | ER_SERVER_SHUTDOWN
        ),
        _ => false,
    }
}

/// The server's error code, if the server answered with one.
pub(crate) fn code(e: &mysql::Error) -> Option<u16> {
    match e {
        mysql::Error::MySqlError(m) => Some(m.code),
        _ => None,
    }
}

impl From<mysql::Error> for StoreError {
    fn from(e: mysql::Error) -> Self {
        if is_lost(&e) {
            return StoreError::Connection {
                context: "the connection to MySQL was lost (it is re-opened for the next call)"
                    .into(),
                source: SharedError::new(e),
            };
        }
        let context = "MySQL".to_owned();
        match code(&e) {
            Some(ER_LOCK_WAIT_TIMEOUT | ER_LOCK_DEADLOCK) => StoreError::Busy {
                context,
                source: SharedError::new(e),
            },
            Some(ER_DISK_FULL | ER_RECORD_FILE_FULL) => StoreError::StorageFull {
                folder: None,
                source: SharedError::new(e),
            },
            Some(ER_DUP_ENTRY) => StoreError::Conflict {
                message: format!("MySQL: {e}"),
                source: Some(SharedError::new(e)),
            },
            _ => StoreError::Database {
                context,
                source: Some(SharedError::new(e)),
            },
        }
    }
}

impl From<mysql::FromValueError> for StoreError {
    fn from(e: mysql::FromValueError) -> Self {
        StoreError::Corrupt {
            what: "a MySQL value".into(),
            source: SharedError::new(e),
        }
    }
}

/// The URL without its password, for logs and errors (the PostgreSQL driver's rule).
pub fn redact(url: &str) -> String {
    super::postgres::redact(url)
}

/// `DATETIME(3)` from the UNIX milliseconds bound at placeholder `p` (`?` or `:name`).
pub(crate) fn from_ms(p: &str) -> String {
    format!("TIMESTAMPADD(MICROSECOND, {p} * 1000, TIMESTAMP'1970-01-01 00:00:00')")
}

/// UNIX milliseconds (BIGINT) from the `DATETIME(3)` expression `col`.
pub(crate) fn to_ms(col: &str) -> String {
    format!("(TIMESTAMPDIFF(MICROSECOND, TIMESTAMP'1970-01-01 00:00:00', {col}) DIV 1000)")
}

/// Milliseconds inside DATETIME's range (1000-01-01 to 9999-12-31), so that [`from_ms`] never
/// overflows nor yields NULL for a cutoff such as `i64::MAX`.
pub(crate) fn clamp_ms(ms: i64) -> i64 {
    ms.clamp(-30_610_224_000_000, 253_402_300_799_999)
}

/// `?, ?, ?` for `n` values (at least one: `IN ()` is not SQL; callers skip empty lists).
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

/// Positional parameters from values of mixed types.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        mysql::Params::Positional(vec![$(mysql::Value::from($v)),*])
    };
}
pub(crate) use params;

/// MySQL implementation of [`Store`].
pub struct MysqlStore {
    pool: Pool,
    prefix: TablePrefix,
    what: String,
    wake: Arc<wake::Wake>,
    /// How often the wake-up poller reads its counters.
    wake_poll: std::time::Duration,
    /// For tests: a database created for this store alone, dropped with it.
    temporary_database: Option<(String, Opts)>,
}

/// How long sent data may stay unacknowledged before a connection counts as broken.
const TCP_USER_TIMEOUT_MS: u32 = 10_000;

/// The session every connection starts with (see the module doc).
const SESSION_INIT: [&str; 3] = [
    // And on MariaDB (the `/*M!` part, a comment to MySQL): a host cut off mid-transaction
    // holds its row locks no longer than 10 s (other hosts then recover its tasks); our own
    // transactions never wait on their client for more than milliseconds.
    "SET time_zone = '+00:00' /*M! , SESSION idle_transaction_timeout = 10 */",
    // PostgreSQL's default: no gap locks, so claims never block inserts of new tasks.
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_TRANS_TABLES', \
     'NO_BACKSLASH_ESCAPES')",
];

impl MysqlStore {
    /// Connects to the database `url` names (`mysql://USER[:PASSWORD]@HOST[:PORT]/DB` or
    /// `mariadb://...`). The first connection is opened here, so a wrong URL, a wrong
    /// password or an unknown database fails at once.
    pub fn open(url: &str) -> StoreResult<MysqlStore> {
        Self::open_with(url, &OpenOptions::default())
    }

    /// [`MysqlStore::open`] with the table prefix, pool size and wake-up interval of `options`.
    pub fn open_with(url: &str, options: &OpenOptions) -> StoreResult<MysqlStore> {
        let what = redact(url);
        let normalized = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_owned(),
        };
        let opts = Opts::from_url(&normalized).map_err(|e| StoreError::Config {
            message: format!("invalid MySQL URL '{what}': {e}"),
            source: Some(SharedError::new(e)),
        })?;
        let connections = options.mysql_connections.unwrap_or(DEFAULT_CONNECTIONS);
        let mut store = Self::open_opts(opts, what, options.table_prefix.clone(), connections)?;
        store.wake_poll = options.mysql_wake_poll.unwrap_or(wake::DEFAULT_POLL);
        Ok(store)
    }

    fn open_opts(
        opts: Opts,
        what: String,
        prefix: TablePrefix,
        connections: usize,
    ) -> StoreResult<MysqlStore> {
        let constraints = PoolConstraints::new(1, connections)
            .ok_or_else(|| StoreError::internal("invalid MySQL pool size"))?;
        let opts: Opts = OptsBuilder::from_opts(opts)
            .init(SESSION_INIT.to_vec())
            .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
            // A link that silently drops everything (a partition) fails the calls on it after
            // 10 s instead of the kernel's ~15 minutes of retransmissions; the pool then
            // opens a new connection, so a host goes back to work soon after the link heals.
            .tcp_user_timeout_ms(Some(TCP_USER_TIMEOUT_MS))
            .stmt_cache_size(256)
            // Connect where the URL says: the client would otherwise switch a local TCP
            // connection to the server's Unix socket behind the operator's back.
            .prefer_socket(false)
            .additional_capabilities(mysql::consts::CapabilityFlags::CLIENT_FOUND_ROWS)
            // No COM_RESET_CONNECTION when a connection goes back to the pool: it would drop
            // the session settings (re-sent each time) and every prepared statement. Our calls
            // leave no session state behind: transactions end in commit or rollback (on drop).
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(constraints)
                    .with_reset_connection(false),
            )
            .into();
        let pool = Pool::new(opts).map_err(|e| open_error(e, &what))?;
        // The first connection, so that a refusal is reported now and names the URL.
        drop(pool.get_conn().map_err(|e| open_error(e, &what))?);
        Ok(MysqlStore {
            pool,
            prefix,
            what,
            wake: Arc::new(wake::Wake::default()),
            wake_poll: wake::DEFAULT_POLL,
            temporary_database: None,
        })
    }

    /// A pooled connection (re-opened by the pool when the previous one died).
    pub(crate) fn conn(&self) -> StoreResult<PooledConn> {
        Ok(self.pool.get_conn()?)
    }

    /// A statement written in the code, with the table prefix applied (once per store).
    pub(crate) fn sql(&self, sql: &'static str) -> crate::table_prefix::Sql {
        self.prefix.statement(sql)
    }

    /// SQL built at run time, with the table prefix applied.
    pub(crate) fn dynamic(&self, sql: &str) -> String {
        self.prefix.apply(sql).into_owned()
    }

    /// Runs `f` in one transaction.
    pub(crate) fn transaction<T>(
        &self,
        f: impl FnOnce(&mut mysql::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.conn()?;
        let mut tx = conn.start_transaction(TxOpts::default())?;
        let value = f(&mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// [`MysqlStore::transaction`], tried again when the server says it deadlocked or timed
    /// out waiting for a lock (InnoDB rolled the whole try back: nothing was written).
    pub(crate) fn retrying<T>(
        &self,
        mut f: impl FnMut(&mut mysql::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.transaction(&mut f) {
                Err(StoreError::Busy { .. }) if tries < BUSY_TRIES => {
                    tracing::debug!("MySQL deadlock or lock wait timeout; trying again");
                    std::thread::sleep(Duration::from_millis(5 * tries as u64));
                }
                other => return other,
            }
        }
    }
}

/// An error at open, naming the URL (without its password) and what to fix.
fn open_error(e: mysql::Error, what: &str) -> StoreError {
    let hint = match code(&e) {
        Some(ER_ACCESS_DENIED) => "access denied: check the user and password",
        Some(ER_BAD_DB) => "unknown database: create it first (CREATE DATABASE ...)",
        _ if is_lost(&e) => "cannot reach the server",
        _ => "cannot open",
    };
    StoreError::Connection {
        context: format!("cannot connect to MySQL at {what}: {hint}"),
        source: SharedError::new(e),
    }
}

impl Drop for MysqlStore {
    fn drop(&mut self) {
        self.wake.stop();
        if let Some((database, opts)) = self.temporary_database.take() {
            let dropped = mysql::Conn::new(opts).and_then(|mut admin| {
                admin.query_drop(format!("DROP DATABASE IF EXISTS `{database}`"))
            });
            if let Err(e) = dropped {
                tracing::warn!("cannot drop test database {database}: {e}");
            }
        }
    }
}

/// The name `GET_LOCK` serialises migrations under: per database and prefix.
const MIGRATE_LOCK: &str = "CONCAT('stask_migrate_', DATABASE(), '_', ?)";

/// How long a host waits for another host's migration before it gives up.
const MIGRATE_WAIT_S: i64 = 300;

fn apply_migrations(store: &MysqlStore, list: &'static [Migration]) -> StoreResult<Vec<String>> {
    let mut conn = store.conn()?;
    // Hosts starting together would otherwise race on CREATE TABLE (and DDL commits on its
    // own, so no transaction can stand in): the first migrates, the others wait for the lock
    // and then find nothing left to do.
    let locked: Option<i64> = conn.exec_first(
        format!("SELECT GET_LOCK({MIGRATE_LOCK}, ?)"),
        params![store.prefix.as_str(), MIGRATE_WAIT_S],
    )?;
    if locked != Some(1) {
        return Err(StoreError::Busy {
            context: format!(
                "another host has been migrating {} for {MIGRATE_WAIT_S} s",
                store.what
            ),
            source: SharedError::new(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        });
    }
    let result = (|| -> StoreResult<Vec<String>> {
        conn.query_drop(store.sql(
            "CREATE TABLE IF NOT EXISTS s_schema_migrations (
                 version BIGINT NOT NULL PRIMARY KEY, name VARCHAR(191) NOT NULL,
                 applied_at BIGINT NOT NULL) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4",
        ))?;
        let done: Vec<i64> = conn.query(store.sql("SELECT version FROM s_schema_migrations"))?;
        let mut applied = Vec::new();
        for m in list.iter().filter(|m| !done.contains(&m.version)) {
            // One multi-statement text query per file: the server parses trigger bodies
            // (BEGIN ... END) itself, so no client-side splitting is needed.
            conn.query_drop(store.prefix.apply(m.sql).as_ref())
                .map_err(|e| StoreError::from(e).doing(format!("migration {}", m.name)))?;
            conn.exec_drop(
                store.sql(
                    "INSERT INTO s_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                ),
                params![m.version, m.name, crate::clock::now_ms()],
            )?;
            applied.push(m.name.to_owned());
        }
        Ok(applied)
    })();
    let unlocked = conn.exec_drop(
        format!("SELECT RELEASE_LOCK({MIGRATE_LOCK})"),
        params![store.prefix.as_str()],
    );
    let applied = result?;
    unlocked?;
    Ok(applied)
}

impl Store for MysqlStore {
    fn migrate(&self) -> StoreResult<Vec<String>> {
        apply_migrations(self, migrations(Backend::Mysql))
    }

    fn execute_foreign(&self, sql: &str) -> StoreResult<()> {
        Ok(self.conn()?.query_drop(self.prefix.apply(sql).as_ref())?)
    }

    fn time_literal(&self, ms: i64) -> String {
        let utc = chrono::DateTime::from_timestamp_millis(clamp_ms(ms)).unwrap_or_default();
        format!("'{}'", utc.format("%Y-%m-%d %H:%M:%S%.3f"))
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("mysql {}", self.what)
        } else {
            format!("mysql {} prefix {}", self.what, self.prefix.as_str())
        }
    }
}

/// Test support: stores in their own database on the test server.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// The server the tests use: `STASK_TEST_MYSQL_URL`, else the local one.
    pub fn base_url() -> String {
        std::env::var("STASK_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
    }

    /// Options for the test server.
    pub fn base_opts() -> Opts {
        Opts::from_url(&base_url()).expect("STASK_TEST_MYSQL_URL")
    }

    /// A migrated store in a fresh database `stask_t_<random>`, dropped with the store, so
    /// tests run in parallel without seeing each other.
    pub fn open() -> Arc<dyn Store> {
        Arc::new(open_mysql(TablePrefix::none()).0)
    }

    /// [`open`] with a table prefix, and the database's name.
    pub fn open_mysql(prefix: TablePrefix) -> (MysqlStore, String) {
        let base = base_opts();
        let database = format!("stask_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = mysql::Conn::new(base.clone()).unwrap_or_else(|e| {
            panic!(
                "the MySQL tests need a server at {} (set STASK_TEST_MYSQL_URL): {e}",
                redact(&base_url())
            )
        });
        admin
            .query_drop(format!(
                "CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            ))
            .expect("create the test database");
        let opts: Opts = OptsBuilder::from_opts(base.clone())
            .db_name(Some(database.clone()))
            .into();
        let mut store = MysqlStore::open_opts(
            opts,
            format!("{} database {database}", redact(&base_url())),
            prefix,
            4,
        )
        .expect("open the test store");
        store.temporary_database = Some((database.clone(), base));
        store.migrate().expect("migrate");
        (store, database)
    }

    /// A connection to the test database `database`, as a foreign client (the CMS) has.
    pub fn foreign(database: &str) -> mysql::Conn {
        let opts: Opts = OptsBuilder::from_opts(base_opts())
            .db_name(Some(database))
            .init(SESSION_INIT.to_vec())
            .into();
        mysql::Conn::new(opts).expect("a foreign connection")
    }
}

#[cfg(test)]
mod tests;
