//! The PostgreSQL backend: several hosts on one queue (SPEC §10).
//!
//! **Connection threads.** The synchronous `postgres` crate drives an internal tokio runtime
//! and panics when called from a thread that is already inside one; the token check of the
//! HTTP API calls the store inline on async threads. So every SQL call runs on connection
//! threads this driver owns: each owns one `postgres::Client`, takes jobs (closures) from a
//! shared channel and answers on a reply channel the caller blocks on. That is safe from any
//! thread, async or not. A broken connection fails the call at hand with a clear error and is
//! re-opened for the next one; nothing panics.
//!
//! **Several hosts.** Claims lock rows with `FOR UPDATE SKIP LOCKED`, so hosts claiming at the
//! same time never wait for or take each other's rows; every later write of a run is fenced by
//! its lease token, exactly as in SQLite. Triggers `NOTIFY` when a task becomes pending or a
//! cancel or worker change is stored; one listener connection per host turns them into a
//! dispatcher wake-up ([`HostStore::on_new_work`]) and into
//! [`TaskStore::external_change_counter`].

mod analytics;
mod audit;
mod batches;
pub mod copy;
mod dependencies;
mod hosts;
mod schedules;
mod tasks;
mod tokens;
mod workers;

use super::{
    migrations, Backend, EventsHook, Migration, OpenOptions, SharedError, Store, StoreError,
    StoreResult, TablePrefix, WakeHook,
};
use crate::table_prefix::Sql;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connection threads per store unless `STASK_PG_CONNECTIONS` says otherwise. Enough for the
/// dispatcher, finisher, ticker and inserter to write while the API reads; several hosts share
/// the server's `max_connections` (100 by default), so a host keeps few.
const DEFAULT_CONNECTIONS: usize = 4;

/// How long a new connection may take before the call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sent data may stay unacknowledged before the connection counts as broken.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server lets a transaction of ours wait for its next statement: a host cut off
/// mid-transaction holds its row locks no longer than this (other hosts then recover its
/// tasks), while our own transactions never wait on their client for more than milliseconds.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "10s";

/// A PostgreSQL error shown as the server's message (and its detail, for statements), not
/// as the client library's `db error: ERROR: ...`; the library's error is its source.
#[derive(Debug)]
pub struct PgMessage {
    error: postgres::Error,
    with_detail: bool,
}

impl PgMessage {
    /// The server's message and detail (`message (detail)`), or the library's text when the
    /// server said nothing.
    pub fn new(error: postgres::Error) -> Self {
        PgMessage {
            error,
            with_detail: true,
        }
    }

    /// The server's message alone (a refused connection's detail says nothing more).
    pub fn message_only(error: postgres::Error) -> Self {
        PgMessage {
            error,
            with_detail: false,
        }
    }
}

impl std::fmt::Display for PgMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error.as_db_error() {
            Some(db) => {
                f.write_str(db.message())?;
                match db.detail() {
                    Some(detail) if self.with_detail => write!(f, " ({detail})"),
                    _ => Ok(()),
                }
            }
            None => self.error.fmt(f),
        }
    }
}

impl std::error::Error for PgMessage {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// SQLSTATEs after which the same statement may succeed when retried: the database was
/// busy, nothing of the call was written.
const BUSY_STATES: [SqlState; 3] = [
    SqlState::LOCK_NOT_AVAILABLE,
    SqlState::T_R_SERIALIZATION_FAILURE,
    SqlState::T_R_DEADLOCK_DETECTED,
];

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // Class 08 (connection exception) and the server going away (57P01 terminated by a
        // shutdown, 57P02 crash of another backend, 57P03 starting up or shutting down): the
        // server is out of reach for now, as when the socket closes.
        let unreachable = e.code().is_some_and(|code| {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                ]
                .contains(code)
        });
        if e.is_closed() || unreachable {
            return StoreError::Connection {
                context: "the connection to PostgreSQL was lost (it is re-opened for the next \
                          call)"
                    .into(),
                source: SharedError::new(e),
            };
        }
        let busy = e.code().is_some_and(|code| BUSY_STATES.contains(code));
        let full = e.code() == Some(&SqlState::DISK_FULL);
        let source = SharedError::new(PgMessage::new(e));
        let context = "PostgreSQL".to_owned();
        if busy {
            StoreError::Busy { context, source }
        } else if full {
            // The server's disk (53100): nothing of the call was written.
            StoreError::StorageFull {
                folder: None,
                source,
            }
        } else {
            StoreError::Database {
                context,
                source: Some(source),
            }
        }
    }
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// One connection and its prepared statements.
pub(crate) struct Conn {
    client: Client,
    statements: Statements,
}

impl Conn {
    /// The client with the statement cache beside it, so a transaction can prepare through
    /// [`prepared`] while it borrows the client.
    fn parts(&mut self) -> (&mut Client, &mut Statements) {
        (&mut self.client, &mut self.statements)
    }

    /// `Client::execute` of `sql` with the table prefix.
    pub(crate) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        self.client.execute(&*self.statements.apply(sql), params)
    }

    /// `Client::query` of `sql` with the table prefix.
    pub(crate) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        self.client.query(&*self.statements.apply(sql), params)
    }

    /// `Client::query_one` of `sql` with the table prefix.
    pub(crate) fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        self.client.query_one(&*self.statements.apply(sql), params)
    }
}

/// A connection's prepared statements, and the table prefix every statement it sends gets
/// (`STASK_TABLE_PREFIX`): SQL reaches the server only through [`prepared`],
/// [`Statements::sql`] or [`Statements::apply`].
pub(crate) struct Statements {
    /// Keyed by the statement as written (the prefix is the store's, the same for all).
    prepared: HashMap<&'static str, Statement>,
    prefix: Arc<TablePrefix>,
}

impl Statements {
    fn new(prefix: Arc<TablePrefix>) -> Statements {
        Statements {
            prepared: HashMap::new(),
            prefix,
        }
    }

    /// A statement written in the code, as sent (rewritten once per store).
    pub(crate) fn sql(&self, sql: &'static str) -> Sql {
        self.prefix.statement(sql)
    }

    /// A statement built at run time, as sent.
    pub(crate) fn apply<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        self.prefix.apply(sql)
    }
}

/// `sql` prepared once per connection: a statement is parsed and planned at its first use on
/// each connection, then only bound and executed (one round trip instead of two).
pub(crate) fn prepared(
    client: &mut impl GenericClient,
    cache: &mut Statements,
    sql: &'static str,
) -> StoreResult<Statement> {
    if let Some(statement) = cache.prepared.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(&cache.prefix.apply(sql))?;
    cache.prepared.insert(sql, statement.clone());
    Ok(statement)
}

/// A call to run on a connection thread; returns whether it failed (the connection is then
/// checked before its next use).
type Job = Box<dyn FnOnce(StoreResult<&mut Conn>) -> bool + Send>;

/// How long the health check after a failed call may take.
const VALID_TIMEOUT: Duration = Duration::from_secs(2);

fn connect(config: &postgres::Config, what: &str) -> StoreResult<Client> {
    let failed = |e| StoreError::Connection {
        context: format!("cannot connect to PostgreSQL at {what}"),
        source: SharedError::new(PgMessage::message_only(e)),
    };
    let mut client = config.connect(NoTls).map_err(failed)?;
    client
        .batch_execute(&format!(
            "SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'"
        ))
        .map_err(failed)?;
    Ok(client)
}

/// A connection thread: runs jobs until the store is dropped (the channel closes).
fn connection_thread(
    config: postgres::Config,
    what: String,
    prefix: Arc<TablePrefix>,
    mut conn: Option<Conn>,
    jobs: Receiver<Job>,
) {
    while let Ok(job) = jobs.recv() {
        if conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            tracing::warn!("the connection to PostgreSQL at {what} was closed; reconnecting");
            conn = None;
        }
        if conn.is_none() {
            match connect(&config, &what) {
                Ok(client) => {
                    conn = Some(Conn {
                        client,
                        statements: Statements::new(prefix.clone()),
                    })
                }
                Err(e) => {
                    let _ = job(Err(e));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        // A panic in a job (a bug) must not kill the thread: the caller gets an error (its
        // reply sender is dropped) and the connection, in an unknown state, is replaced.
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(c)))) {
            Ok(false) => {}
            // A failed call may have been the first sign of a dead connection (the server's
            // FATAL answer arrives before the socket reads as closed): check it now, so the
            // next call does not fail on it too.
            Ok(true) => {
                if c.client.is_valid(VALID_TIMEOUT).is_err() {
                    conn = None;
                }
            }
            Err(_) => conn = None,
        }
    }
}

/// The listener's state: notifications seen, and the hook to wake the dispatcher.
#[derive(Default)]
struct Notices {
    /// Bumped on every `stask_changed_*` notification (and after a reconnect).
    changed: AtomicI64,
    /// Set once by [`HostStore::on_new_work`].
    hook: Mutex<Option<WakeHook>>,
    /// Set once by [`HostStore::on_events`].
    events_hook: Mutex<Option<EventsHook>>,
    /// Whether the listener thread runs.
    started: AtomicBool,
    /// Tells the listener to stop (the store is dropped).
    stop: AtomicBool,
}

/// PostgreSQL implementation of [`Store`].
pub struct PgStore {
    jobs: Option<Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    config: postgres::Config,
    what: String,
    notices: Arc<Notices>,
    /// `STASK_TABLE_PREFIX`, shared with the connection threads and the listener.
    prefix: Arc<TablePrefix>,
    /// For tests: a schema created for this store alone, dropped with it.
    temporary_schema: Option<(String, postgres::Config)>,
}

impl PgStore {
    /// Connects to the database `url` names (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`, with
    /// libpq-style parameters such as `?options=-c%20search_path%3Dmyschema`). The first
    /// connection is opened here, so a wrong URL or an unreachable server fails at once.
    pub fn open(url: &str) -> StoreResult<PgStore> {
        Self::open_with(url, &OpenOptions::default())
    }

    /// [`PgStore::open`] with the table prefix of `options`.
    pub fn open_with(url: &str, options: &OpenOptions) -> StoreResult<PgStore> {
        let config: postgres::Config = url.parse().map_err(|e| StoreError::Config {
            message: format!("invalid PostgreSQL URL '{}': {e}", redact(url)),
            source: Some(SharedError::new(e)),
        })?;
        let connections = options.pg_connections.unwrap_or(DEFAULT_CONNECTIONS);
        Self::open_config(
            config,
            redact(url),
            connections,
            options.table_prefix.clone(),
        )
    }

    fn open_config(
        mut config: postgres::Config,
        what: String,
        connections: usize,
        prefix: TablePrefix,
    ) -> StoreResult<PgStore> {
        let prefix = Arc::new(prefix);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("stask");
        }
        // A link that silently drops everything (a partition) fails the calls on it after
        // this long instead of the kernel's ~15 minutes of retransmissions; the connection
        // thread then reconnects, so a host goes back to work soon after the link heals.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        let first = connect(&config, &what)?;
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut first = Some(Conn {
            client: first,
            statements: Statements::new(prefix.clone()),
        });
        let mut threads = Vec::with_capacity(connections);
        for i in 0..connections {
            let (config, what, rx, conn) = (config.clone(), what.clone(), rx.clone(), first.take());
            let prefix = prefix.clone();
            let thread = std::thread::Builder::new()
                .name(format!("stask-pg-{i}"))
                .spawn(move || connection_thread(config, what, prefix, conn, rx))
                .map_err(|e| StoreError::database("cannot start a connection thread", e))?;
            threads.push(thread);
        }
        Ok(PgStore {
            jobs: Some(tx),
            threads,
            config,
            what,
            notices: Arc::new(Notices::default()),
            prefix,
            temporary_schema: None,
        })
    }

    /// Runs `f` on a connection thread and waits for its answer.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let job: Job = Box::new(move |conn| {
            let result = conn.and_then(f);
            let failed = result.is_err();
            let _ = reply_tx.send(result);
            failed
        });
        self.jobs
            .as_ref()
            .ok_or_else(|| StoreError::internal("the PostgreSQL store is closed"))?
            .send(job)
            .map_err(|_| StoreError::internal("the PostgreSQL connection threads stopped"))?;
        reply_rx.recv().map_err(|_| {
            StoreError::internal("a PostgreSQL call failed unexpectedly (see the log)")
        })?
    }

    /// Runs `f` in one transaction on a connection thread.
    pub(crate) fn transaction<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>, &mut Statements) -> StoreResult<T>
            + Send
            + 'static,
    ) -> StoreResult<T> {
        self.run(move |conn| {
            let (client, cache) = conn.parts();
            let mut tx = client.transaction()?;
            let value = f(&mut tx, cache)?;
            tx.commit()?;
            Ok(value)
        })
    }

    /// Starts the listener connection once (see [`HostStore::on_new_work`]).
    fn start_listener(&self) {
        if self.notices.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let (config, what, notices, prefix) = (
            self.config.clone(),
            self.what.clone(),
            self.notices.clone(),
            self.prefix.clone(),
        );
        if let Err(e) = std::thread::Builder::new()
            .name("stask-pg-listen".into())
            .spawn(move || listener(config, what, notices, prefix))
        {
            tracing::warn!("cannot start the PostgreSQL listener (the periodic sweep still picks tasks up): {e}");
        }
    }
}

/// The start of a notification channel's name: `stask_<kind>_<table prefix>`, followed by the
/// schema name (`stask_due_evo_public`). The prefix keeps two installations in one schema
/// apart; without one the names are those of the versions before it. The triggers build the
/// same names (migration 0006).
pub(crate) fn channel_start(kind: &str, prefix: &TablePrefix) -> String {
    format!("stask_{kind}_{}", prefix.as_str())
}

/// How long the listener waits for a notification before checking whether to stop.
const LISTEN_POLL: Duration = Duration::from_millis(500);
/// Pause before re-opening a lost listener connection.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// The listener thread: `LISTEN`s on this schema's channels and turns notifications into
/// wake-ups; re-opens a lost connection (and then wakes everything once: notifications sent
/// while it was away are lost, the sweep and this wake-up cover them).
fn listener(
    config: postgres::Config,
    what: String,
    notices: Arc<Notices>,
    prefix: Arc<TablePrefix>,
) {
    let mut warned = false;
    while !notices.stop.load(Ordering::Relaxed) {
        let listening = (|| -> StoreResult<(Client, String, String, String)> {
            let mut client = connect(&config, &what)?;
            let schema: String = client.query_one("SELECT current_schema()", &[])?.get(0);
            let due = format!("{}{schema}", channel_start("due", &prefix));
            let changed = format!("{}{schema}", channel_start("changed", &prefix));
            let events = format!("{}{schema}", channel_start("events", &prefix));
            client.batch_execute(&format!(
                "LISTEN {}; LISTEN {}; LISTEN {};",
                quote_ident(&due),
                quote_ident(&changed),
                quote_ident(&events)
            ))?;
            Ok((client, due, changed, events))
        })();
        let (mut client, due, changed, events) = match listening {
            Ok(v) => v,
            Err(e) => {
                if !warned {
                    tracing::warn!("cannot listen for new tasks (retrying; the periodic sweep still picks them up): {e}");
                    warned = true;
                }
                std::thread::sleep(LISTEN_RETRY);
                continue;
            }
        };
        if warned {
            tracing::info!("listening for new tasks again");
            warned = false;
        }
        // Anything may have happened while no one listened.
        notices.changed.fetch_add(1, Ordering::SeqCst);
        wake(&notices);
        'listen: while !notices.stop.load(Ordering::Relaxed) {
            {
                let mut notifications = client.notifications();
                let mut iter = notifications.timeout_iter(LISTEN_POLL);
                loop {
                    match iter.next() {
                        Ok(Some(n)) => {
                            if n.channel() == changed {
                                notices.changed.fetch_add(1, Ordering::SeqCst);
                                wake(&notices);
                            } else if n.channel() == due {
                                wake(&notices);
                            } else if n.channel() == events {
                                if let Some(hook) = notices.events_hook.lock().as_ref() {
                                    hook(n.payload());
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(
                                "lost the PostgreSQL listener connection, re-opening: {e}"
                            );
                            break 'listen;
                        }
                    }
                }
            }
            if client.is_closed() {
                break;
            }
        }
    }
}

fn wake(notices: &Notices) {
    if let Some(hook) = notices.hook.lock().as_ref() {
        hook();
    }
}

/// A quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.notices.stop.store(true, Ordering::Relaxed);
        // Closing the channel ends the connection threads once their current job is done.
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some((schema, config)) = self.temporary_schema.take() {
            match connect(&config, &self.what) {
                Ok(mut admin) => {
                    let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(&schema));
                    if let Err(e) = admin.batch_execute(&sql) {
                        tracing::warn!("cannot drop test schema {schema}: {e}");
                    }
                }
                Err(e) => tracing::warn!("cannot drop test schema {schema}: {e}"),
            }
        }
    }
}

fn apply_migrations(conn: &mut Conn, list: &'static [Migration]) -> StoreResult<Vec<String>> {
    let (client, st) = conn.parts();
    // Hosts starting together would otherwise race on CREATE TABLE: the first migrates, the
    // others wait and then find nothing left to do. The key is per schema and table prefix.
    let lock_key = format!("stask_migrate_{}", st.prefix.as_str());
    client.execute(
        "SELECT pg_advisory_lock(hashtext($1 || current_schema()))",
        &[&lock_key],
    )?;
    let result = (|| -> StoreResult<Vec<String>> {
        // Checked first: `IF NOT EXISTS` would log a notice at every start.
        let exists: bool = client
            .query_one(
                &*st.sql("SELECT to_regclass('s_schema_migrations') IS NOT NULL"),
                &[],
            )?
            .get(0);
        if !exists {
            client.batch_execute(&st.sql(
                "CREATE TABLE s_schema_migrations (
                     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            ))?;
        }
        let mut applied = Vec::new();
        for m in list {
            let mut tx = client.transaction()?;
            let done: bool = tx
                .query_one(
                    &*st.sql("SELECT EXISTS(SELECT 1 FROM s_schema_migrations WHERE version = $1)"),
                    &[&m.version],
                )?
                .get(0);
            if !done {
                tx.batch_execute(&st.apply(m.sql))
                    .map_err(|e| StoreError::from(e).doing(format!("migration {}", m.name)))?;
                tx.execute(
                    &*st.sql(
                        "INSERT INTO s_schema_migrations (version, name, applied_at) \
                         VALUES ($1, $2, $3)",
                    ),
                    &[&m.version, &m.name, &crate::clock::now_ms()],
                )?;
                applied.push(m.name.to_owned());
            }
            tx.commit()?;
        }
        Ok(applied)
    })();
    let unlocked = client.execute(
        "SELECT pg_advisory_unlock(hashtext($1 || current_schema()))",
        &[&lock_key],
    );
    let applied = result?;
    unlocked?;
    Ok(applied)
}

impl Store for PgStore {
    fn migrate(&self) -> StoreResult<Vec<String>> {
        self.run(|conn| apply_migrations(conn, migrations(Backend::Postgres)))
    }

    fn execute_foreign(&self, sql: &str) -> StoreResult<()> {
        let sql = sql.to_owned();
        self.run(move |conn| {
            let (client, st) = conn.parts();
            Ok(client.batch_execute(&st.apply(&sql))?)
        })
    }

    fn describe(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("postgres {}", self.what),
            p => format!("postgres {} (table prefix {p})", self.what),
        }
    }
}

/// Test support: stores in their own schema of the test database.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// The server the tests use: `STASK_TEST_POSTGRES_URL`, else the local one (CI has it).
    pub fn base_url() -> String {
        std::env::var("STASK_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// A migrated store in a fresh schema `stask_test_<random>`, dropped with the store, so
    /// tests run in parallel without seeing each other. Panics with a clear message when the
    /// server is unreachable.
    pub fn open() -> Arc<dyn Store> {
        Arc::new(open_pg().0)
    }

    /// [`open`], with the schema name (also the connections' `application_name`).
    pub fn open_pg() -> (PgStore, String) {
        open_pg_prefixed(TablePrefix::none())
    }

    /// [`open_pg`] with a table prefix.
    pub fn open_pg_prefixed(prefix: TablePrefix) -> (PgStore, String) {
        let base = base_url();
        let admin_config: postgres::Config = base.parse().expect("STASK_TEST_POSTGRES_URL");
        let schema = format!("stask_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_config.connect(NoTls).unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL tests need a server at {} (set STASK_TEST_POSTGRES_URL): {e}",
                redact(&base)
            )
        });
        admin
            .batch_execute(&format!("CREATE SCHEMA {}", quote_ident(&schema)))
            .expect("create the test schema");
        let mut config = admin_config.clone();
        config.options(&format!("-c search_path={schema}"));
        config.application_name(&schema);
        let mut store = PgStore::open_config(
            config,
            format!("{} schema {schema}", redact(&base)),
            3,
            prefix,
        )
        .expect("open the test store");
        store.temporary_schema = Some((schema.clone(), admin_config));
        store.migrate().expect("migrate");
        (store, schema)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::open;
    use super::*;
    use crate::TaskStore;

    /// [`open`], and the store the next process would use: starts are in the database at once,
    /// so the same store stands for it (its temporary schema lives as long as it).
    fn reopenable() -> (Arc<dyn Store>, crate::conformance::Reopen) {
        (open(), Box::new(|store| store))
    }

    crate::driver_tests!(open, reopenable);

    /// Migration 7 moves the token ids older rows kept in `started_by` to `token_id` (they
    /// never named a user) and leaves the rows without a user.
    #[test]
    fn task_token_moves_old_started_by_to_token_id() {
        let base = testing::base_url();
        let mut admin = base
            .parse::<postgres::Config>()
            .unwrap()
            .connect(NoTls)
            .unwrap();
        let schema = format!("stask_test_{}", uuid::Uuid::new_v4().simple());
        // (started_by, token_id) of each row.
        type Who = Vec<(Option<i64>, Option<i64>)>;
        let outcome = (|| -> Result<Who, postgres::Error> {
            admin.batch_execute(&format!(
                "CREATE SCHEMA {0}; SET search_path = {0}",
                quote_ident(&schema)
            ))?;
            let list = migrations(Backend::Postgres);
            let (before, after): (Vec<&Migration>, Vec<&Migration>) =
                list.iter().partition(|m| m.version < 7);
            for m in before {
                admin.batch_execute(m.sql)?;
            }
            admin.batch_execute(
                "INSERT INTO s_tasks (identifier, action, started_by, run_at, created_at,
                                      updated_at)
                 VALUES ('w', 'run', 4, 0, 0, 0), ('w', 'run', NULL, 0, 0, 0)",
            )?;
            for m in after {
                admin.batch_execute(m.sql)?;
            }
            Ok(admin
                .query("SELECT started_by, token_id FROM s_tasks ORDER BY id", &[])?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })();
        admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(&schema)))
            .unwrap();
        assert_eq!(outcome.unwrap(), vec![(None, Some(4)), (None, None)]);
    }

    /// The whole suite again with the tables named `evo_s_...` in the test schema: the schema
    /// holds no `s_...` table, so a statement that bypassed the prefix fails its property.
    mod prefixed {
        use super::testing::open_pg_prefixed;
        use crate::{Store, TablePrefix};
        use std::sync::Arc;

        fn open() -> Arc<dyn Store> {
            Arc::new(open_pg_prefixed(TablePrefix::new("evo_").unwrap()).0)
        }

        fn reopenable() -> (Arc<dyn Store>, crate::conformance::Reopen) {
            (open(), Box::new(|store| store))
        }

        crate::driver_tests!(open, reopenable);
    }

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(
            redact("postgres://u:secret@db:5432/x?sslmode=disable"),
            "postgres://u@db:5432/x?sslmode=disable"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }

    /// The store answers from an async (tokio) thread, where a direct `postgres` call panics.
    #[test]
    fn calls_from_an_async_thread_do_not_panic() {
        let store = open();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // The store is borrowed, not moved: dropping it (which drops the test schema) is
        // the test's business, outside the runtime.
        let stats = rt.block_on(async { store.stats() }).unwrap();
        assert_eq!(stats.total, 0);
    }

    /// A connection killed by the server fails at most the call at hand, with a clear error;
    /// the next call reconnects.
    #[test]
    fn a_lost_connection_is_reopened() {
        let (store, schema) = testing::open_pg();
        store.stats().unwrap();
        let mut admin = testing::base_url()
            .parse::<postgres::Config>()
            .unwrap()
            .connect(NoTls)
            .unwrap();
        let pids: Vec<i32> = admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                &[&schema],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let terminated = pids.len();
        assert!(terminated >= 1, "the store's connection was found");
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid",
                &[&pids],
            )
            .unwrap();
        // Termination is asynchronous: wait until the backends are gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while admin
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ANY($1)",
                &[&pids],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 0
        {
            assert!(std::time::Instant::now() < deadline, "backends still alive");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut errors = 0;
        for _ in 0..10 {
            if let Err(e) = store.stats() {
                errors += 1;
                assert!(e.to_string().contains("PostgreSQL"), "a clear error: {e}");
            }
        }
        // A connection thread that got none of those calls still holds its lost connection:
        // its first call fails too, within the same budget of one failure per connection.
        let total = loop {
            match store.stats() {
                Ok(stats) => break stats.total,
                Err(e) => {
                    errors += 1;
                    assert!(e.to_string().contains("PostgreSQL"), "a clear error: {e}");
                    assert!(
                        errors <= terminated,
                        "one failed call per lost connection at most"
                    );
                }
            }
        };
        assert!(
            errors <= terminated,
            "one failed call per lost connection at most"
        );
        assert_eq!(total, 0);
    }
}

/// PostgreSQL's `text` cannot hold NUL, which SQLite's can: text from plugins (messages, log
/// lines, results, errors) and from queries is stored and matched with U+FFFD in its place, so
/// a stray NUL never fails a write (a failed finish would leave the task to be run again).
pub(super) fn text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}
