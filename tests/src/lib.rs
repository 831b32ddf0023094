//! Harness for the end-to-end tests: builds the workspace once, makes a throw-away home with
//! chosen plugins, runs the real `stask` binary (CLI and daemon) and talks HTTP to it.
//!
//! Waiting is always for an observable condition (a log line, an API state) with a deadline,
//! never a fixed sleep.

mod mysql;
pub mod netns;
mod postgres_server;
pub use crate::postgres_server::PrivatePostgres;

pub use crate::mysql::{mysql_url, MysqlDatabase, PrivateMariadb};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Now, in UNIX seconds (what `start_at` accepts as a number).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Polls `cond` until it holds (20 ms apart), failing after `within` with `what`: for states
/// the daemon reaches on its own (a file it noticed, a slot it fired) with no event to await.
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The build output folder (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn cargo(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace())
        .status()
        .expect("running cargo");
    assert!(status.success(), "cargo {args:?} failed");
}

/// Builds the binary and every plugin once per test process; returns the debug output folder.
pub fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo(&["build", "--workspace", "--quiet"]);
        target_dir().join("debug")
    })
}

/// The `demo` worker built with `panic = "abort"` (a separate profile, built on demand).
pub fn panic_abort_demo() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        cargo(&[
            "build",
            "-p",
            "stask-worker-demo",
            "--profile",
            "panic-abort",
            "--quiet",
        ]);
        target_dir()
            .join("panic-abort")
            .join("libstask_worker_demo.so")
    })
}

/// The `demo` worker built with its `v2` feature: same identifier, different code (its `run`
/// result says "done by v2"). Built into its own target folder so that it never replaces the
/// v1 library other tests use.
pub fn demo_v2() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = target_dir().join("demo-v2");
        let dir_arg = dir.to_string_lossy().into_owned();
        cargo(&[
            "build",
            "-p",
            "stask-worker-demo",
            "--features",
            "v2",
            "--target-dir",
            &dir_arg,
            "--quiet",
        ]);
        dir.join("debug").join("libstask_worker_demo.so")
    })
}

/// One build of the `prefix_growth` fixture: its library (the "plugin") and its host.
pub struct PrefixGrowthBuild {
    /// `base`, `grown` or `grown_prefix` (the fixture's features).
    pub variant: &'static str,
    /// The root-module library.
    pub library: PathBuf,
    /// The `growth_host` binary of the same build.
    pub host: PathBuf,
}

/// The three builds of the `prefix_growth` fixture: `base` from the workspace build, the two
/// grown ones (features) built in a target folder of their own, one after the other, each
/// copied out before the next replaces it.
pub fn prefix_growth_builds() -> &'static [PrefixGrowthBuild] {
    static BUILT: OnceLock<Vec<PrefixGrowthBuild>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let base = PrefixGrowthBuild {
            variant: "base",
            library: library("stask_fixture_prefix_growth"),
            host: built().join("growth_host"),
        };
        let dir = target_dir().join("prefix-growth");
        let dir_arg = dir.to_string_lossy().into_owned();
        let mut builds = vec![base];
        for variant in ["grown", "grown_prefix"] {
            cargo(&[
                "build",
                "-p",
                "stask-fixture-prefix_growth",
                "--features",
                variant,
                "--target-dir",
                &dir_arg,
                "--quiet",
            ]);
            let keep = dir.join(variant);
            std::fs::create_dir_all(&keep).expect("creating the fixture's copy folder");
            let copy = |name: &str| {
                let to = keep.join(name);
                std::fs::copy(dir.join("debug").join(name), &to)
                    .unwrap_or_else(|e| panic!("copying {name} of {variant}: {e}"));
                to
            };
            builds.push(PrefixGrowthBuild {
                variant,
                library: copy("libstask_fixture_prefix_growth.so"),
                host: copy("growth_host"),
            });
        }
        builds
    })
}

/// The `stask` binary.
pub fn stask_bin() -> PathBuf {
    built().join("stask")
}

/// A built library by crate name: `library("stask_worker_demo")`.
pub fn library(name: &str) -> PathBuf {
    let path = built().join(format!("lib{name}.so"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The PostgreSQL server the tests use: `STASK_TEST_POSTGRES_URL`, else the local one (CI
/// has it).
pub fn postgres_url() -> String {
    std::env::var("STASK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The database a run puts every [`Home`] on: `STASK_TEST_DATABASE` = `sqlite` (the default:
/// each home its own file), `postgres` (each home its own schema) or `mysql` (each home its
/// own database on MySQL/MariaDB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestDatabase {
    /// Each home on its own SQLite file.
    Sqlite,
    /// Each home on a schema of its own in the test PostgreSQL database.
    Postgres,
    /// Each home on a database of its own on the test MySQL/MariaDB server.
    Mysql,
}

/// This run's [`TestDatabase`]; an unknown value fails loudly rather than testing SQLite.
pub fn test_database() -> TestDatabase {
    match std::env::var("STASK_TEST_DATABASE").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => TestDatabase::Sqlite,
        Ok("postgres") => TestDatabase::Postgres,
        Ok("mysql") | Ok("mariadb") => TestDatabase::Mysql,
        Ok(other) => panic!("STASK_TEST_DATABASE={other}: use sqlite, postgres or mysql"),
    }
}

/// Whether this run puts every [`Home`] on PostgreSQL (`STASK_TEST_DATABASE=postgres`).
pub fn on_postgres() -> bool {
    test_database() == TestDatabase::Postgres
}

/// Whether this run puts every [`Home`] on a database server (PostgreSQL or MySQL/MariaDB)
/// instead of its own SQLite file: what the server drivers share (starts written at once,
/// no files of the database under `storage/`).
pub fn on_server() -> bool {
    test_database() != TestDatabase::Sqlite
}

/// Peak resident memory (`VmHWM`, kB) of a process.
pub fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc status");
    line.split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse().ok())
        .expect("VmHWM in kB")
}

/// For tests that only make sense on SQLite (they open the `.db` file): true, with the reason
/// printed, when this run is on a database server; the test then returns early.
pub fn sqlite_only(reason: &str) -> bool {
    if on_server() {
        eprintln!("skipped on {:?}: {reason}", test_database());
        return true;
    }
    false
}

/// A database on a server that homes share: hosts sharing one queue.
#[derive(Clone)]
pub enum ServerDatabase {
    /// A schema of the test PostgreSQL database.
    Postgres(Arc<PgSchema>),
    /// A database on the test MySQL/MariaDB server.
    Mysql(Arc<MysqlDatabase>),
}

impl ServerDatabase {
    /// A fresh one for this run's [`TestDatabase`]; None on SQLite.
    pub fn for_run() -> Option<ServerDatabase> {
        match test_database() {
            TestDatabase::Sqlite => None,
            TestDatabase::Postgres => Some(ServerDatabase::Postgres(PgSchema::create())),
            TestDatabase::Mysql => Some(ServerDatabase::Mysql(MysqlDatabase::create())),
        }
    }

    /// The URL for `STASK_DATABASE_URL`.
    pub fn url(&self) -> String {
        match self {
            ServerDatabase::Postgres(schema) => schema.url(),
            ServerDatabase::Mysql(db) => db.url(),
        }
    }
}

/// A schema of its own in the test PostgreSQL database, dropped (with everything in it) when
/// the last [`Home`] using it goes. Homes sharing one are hosts sharing one queue.
pub struct PgSchema {
    name: String,
}

impl PgSchema {
    /// Creates `stask_e2e_<random>`; panics with a clear message when the server is
    /// unreachable.
    pub fn create() -> Arc<PgSchema> {
        let name = format!("stask_e2e_{:x}_{}", rand_suffix(), std::process::id());
        let sql = format!("CREATE SCHEMA \"{name}\"");
        off_runtime(|| admin_client().batch_execute(&sql)).expect("creating the test schema");
        Arc::new(PgSchema { name })
    }

    /// The schema name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database URL for `STASK_DATABASE_URL`: the test database with this schema first
    /// in the search path.
    pub fn url(&self) -> String {
        let base = postgres_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20search_path%3D{}", self.name)
    }

    /// A connection with this schema in its search path, for checks straight in the tables
    /// (from a plain thread: the `postgres` crate panics on an async runtime's thread).
    pub fn client(&self) -> postgres::Client {
        let mut client = admin_client();
        client
            .batch_execute(&format!("SET search_path = \"{}\"", self.name))
            .expect("set search_path");
        client
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        if let Err(e) = off_runtime(|| admin_client().batch_execute(&sql)) {
            eprintln!("cannot drop test schema {}: {e}", self.name);
        }
    }
}

/// Runs `f` on a thread of its own: the `postgres` crate blocks on a runtime of its own and
/// panics on a thread that already drives one (the async UI tests create homes there).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("PostgreSQL admin call"))
}

fn admin_client() -> postgres::Client {
    let url = postgres_url();
    postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
        panic!(
            "these tests need PostgreSQL at {url} (start it, or set STASK_TEST_POSTGRES_URL): {e}"
        )
    })
}

/// A throw-away installation: `plugins.d/`, `storage/`, an API token.
pub struct Home {
    dir: tempfile::TempDir,
    /// Environment for every `stask` started here.
    pub env: Vec<(String, String)>,
    /// The server database it uses, when not on its SQLite file.
    server: Option<ServerDatabase>,
    /// The network namespace its daemons run in (`ip netns exec`), if not the test's.
    namespace: Option<String>,
    /// The address its daemons listen on.
    bind_ip: String,
}

/// Output of a CLI run.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Home {
    /// An empty home with the given worker plugins (`"demo"`, `"product"`, ...) installed.
    /// On its own SQLite file, or on a fresh PostgreSQL schema when the run is
    /// [`on_postgres`].
    pub fn with_workers(workers: &[&str]) -> Home {
        Home::new(workers, ServerDatabase::for_run())
    }

    /// Like [`Home::with_workers`], but without its database: for tests of what creates one
    /// (`stask migrate`, `serve`, `process`) and of the commands that refuse to.
    pub fn without_database(workers: &[&str]) -> Home {
        Home::create(workers, ServerDatabase::for_run(), false)
    }

    /// A home on its own SQLite file, whatever the run's database (for tests of SQLite
    /// itself, e.g. moving an installation to PostgreSQL).
    pub fn on_sqlite(workers: &[&str]) -> Home {
        Home::new(workers, None)
    }

    /// A home on the given PostgreSQL schema: homes sharing a schema are hosts sharing one
    /// queue (each with its own plugins.d/ and storage/).
    pub fn on_schema(workers: &[&str], schema: Arc<PgSchema>) -> Home {
        Home::new(workers, Some(ServerDatabase::Postgres(schema)))
    }

    /// A home on the given server database (PostgreSQL schema or MySQL database): homes
    /// sharing one are hosts sharing one queue.
    pub fn on_server_database(workers: &[&str], database: ServerDatabase) -> Home {
        Home::new(workers, Some(database))
    }

    /// A home on its own SQLite file (`server` `None`) or on a server database, without its
    /// database yet: for tests that set the environment (e.g. `STASK_TABLE_PREFIX`) before
    /// `stask migrate`.
    pub fn unmigrated(workers: &[&str], server: Option<ServerDatabase>) -> Home {
        Home::create(workers, server, false)
    }

    fn new(workers: &[&str], server: Option<ServerDatabase>) -> Home {
        Home::create(workers, server, true)
    }

    fn create(workers: &[&str], server: Option<ServerDatabase>, migrate: bool) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("stask-test-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("plugins.d")).unwrap();
        // `STASK_TEST_LOG` sets the daemons' log filter when a failure needs more detail.
        let log = std::env::var("STASK_TEST_LOG").unwrap_or_else(|_| "info".into());
        let mut env: Vec<(String, String)> = vec![
            ("STASK_LOG".into(), log),
            ("STASK_RETRY_BASE_MS".into(), "200".into()),
            ("STASK_LEASE_MS".into(), "3000".into()),
        ];
        if let Some(database) = &server {
            env.push(("STASK_DATABASE_URL".into(), database.url()));
        }
        let home = Home {
            dir,
            env,
            server,
            namespace: None,
            bind_ip: "127.0.0.1".into(),
        };
        for w in workers {
            home.install_worker(w);
        }
        // An installation has its database: every command but serve, migrate and process
        // refuses a home without one.
        if migrate {
            let out = home.cli(&["migrate"]);
            assert_eq!(out.code, 0, "stask migrate failed: {out:?}");
        }
        home
    }

    /// Its PostgreSQL schema, when it is on PostgreSQL.
    pub fn schema(&self) -> Option<&Arc<PgSchema>> {
        match &self.server {
            Some(ServerDatabase::Postgres(schema)) => Some(schema),
            _ => None,
        }
    }

    /// Its server database, when it is not on its SQLite file.
    pub fn server_database(&self) -> Option<&ServerDatabase> {
        self.server.as_ref()
    }

    /// Runs SQL straight in this home's database, whichever it is (values written into the
    /// text: for test-made values only); returns the rows changed. Tables are named as the
    /// home's `STASK_TABLE_PREFIX` makes them: write the prefixed names.
    pub fn execute_sql(&self, sql: &str) -> u64 {
        match &self.server {
            None => {
                let db = rusqlite::Connection::open(self.storage().join("stask.db"))
                    .expect("open the home's SQLite database");
                db.execute_batch(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                db.changes()
            }
            Some(ServerDatabase::Postgres(schema)) => off_runtime(|| {
                schema
                    .client()
                    .execute(sql, &[])
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }),
            Some(ServerDatabase::Mysql(db)) => mysql::execute(&mut db.conn(), sql),
        }
    }

    /// The rows of a query in this home's database, every value as text (NULL as None).
    pub fn query_sql(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match &self.server {
            None => {
                let db = rusqlite::Connection::open(self.storage().join("stask.db"))
                    .expect("open the home's SQLite database");
                let mut statement = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let columns = statement.column_count();
                statement
                    .query_map([], |row| {
                        (0..columns)
                            .map(|i| {
                                Ok(match row.get_ref(i)? {
                                    rusqlite::types::ValueRef::Null => None,
                                    rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                                    rusqlite::types::ValueRef::Real(x) => Some(x.to_string()),
                                    rusqlite::types::ValueRef::Text(t)
                                    | rusqlite::types::ValueRef::Blob(t) => {
                                        Some(String::from_utf8_lossy(t).into_owned())
                                    }
                                })
                            })
                            .collect()
                    })
                    .and_then(|rows| rows.collect())
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Some(ServerDatabase::Postgres(schema)) => off_runtime(|| {
                schema
                    .client()
                    .simple_query(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .into_iter()
                    .filter_map(|message| match message {
                        postgres::SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_owned))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect()
            }),
            Some(ServerDatabase::Mysql(db)) => mysql::query(&mut db.conn(), sql),
        }
    }

    /// The home folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `plugins.d/`.
    pub fn plugins_dir(&self) -> PathBuf {
        self.path().join("plugins.d")
    }

    /// `storage/`.
    pub fn storage(&self) -> PathBuf {
        self.path().join("storage")
    }

    /// Copies `libstask_worker_<name>.so` into plugins.d/.
    pub fn install_worker(&self, name: &str) {
        self.install_file(
            &library(&format!("stask_worker_{name}")),
            &format!("{name}.so"),
        );
    }

    /// Copies any file into plugins.d/ under `as_name`.
    pub fn install_file(&self, from: &Path, as_name: &str) {
        std::fs::copy(from, self.plugins_dir().join(as_name)).expect("copy plugin");
    }

    /// Writes bytes into plugins.d/.
    pub fn write_plugin_bytes(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.plugins_dir().join(name), bytes).unwrap();
    }

    /// Sets an environment variable for later `stask` runs.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Moves this home's daemons and commands into `link`'s network namespace: they reach
    /// the database through a relay on the link (so the link's faults are theirs) and listen
    /// on the link's address.
    pub fn behind(&mut self, link: &netns::Link) {
        let url = self
            .env
            .iter()
            .find(|(k, _)| k == "STASK_DATABASE_URL")
            .map(|(_, v)| v.clone())
            .expect("a home on a server database");
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (user, rest) = rest.split_once('@').expect("a user in the URL");
        let (host_port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let target: std::net::SocketAddr = host_port.parse().expect("an IP address and port");
        let relay = link.relay_to(target);
        self.set_env(
            "STASK_DATABASE_URL",
            &format!("{scheme}://{user}@{relay}{path}"),
        );
        self.namespace = Some(link.namespace().to_owned());
        self.bind_ip = link.host_ip().to_owned();
    }

    fn command(&self) -> Command {
        let mut cmd = match &self.namespace {
            Some(ns) => {
                // `ip netns exec` execs the program: the child's pid is the daemon's.
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(stask_bin());
                cmd
            }
            None => Command::new(stask_bin()),
        };
        cmd.arg("--home").arg(self.path());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `stask <args>` to completion.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let out = self.command().args(args).output().expect("running stask");
        CliOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Creates an API token with the CLI.
    pub fn token(&self) -> String {
        let out = self.cli(&["token", "create", "--name", &format!("t{}", rand_suffix())]);
        assert_eq!(out.code, 0, "token create failed: {}", out.stderr);
        out.stdout
            .lines()
            .last()
            .expect("token line")
            .trim()
            .to_owned()
    }

    /// Starts `stask serve` on a free port and waits until it is ready.
    pub fn serve(&self) -> Daemon {
        let token = self.token();
        self.serve_with_token(token)
    }

    /// Starts `stask serve` with a known token.
    pub fn serve_with_token(&self, token: String) -> Daemon {
        self.serve_on(token, &format!("{}:0", self.bind_ip))
    }

    /// Starts `stask serve` with a known token on `bind`: a restart on the address of an
    /// earlier daemon (`Daemon::base` without `http://`) is the same host to its clients.
    pub fn serve_on(&self, token: String, bind: &str) -> Daemon {
        let mut cmd = self.command();
        cmd.arg("serve")
            .env("STASK_BIND", bind)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting stask serve");
        let log = Arc::new(LogBuffer::default());
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.push(line);
            }
            sink.close();
        });
        let ready = log
            .wait_for(Duration::from_secs(60), |l| {
                l.contains("listening on http://")
            })
            .unwrap_or_else(|| panic!("daemon did not start; log:\n{}", log.text()));
        // The address ends where its characters do (a text line goes on with a space, a JSON
        // line with a quote).
        let addr: String = ready
            .split("http://")
            .nth(1)
            .expect("address in ready line")
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
            .collect();
        Daemon {
            child,
            base: format!("http://{addr}"),
            token,
            log,
        }
    }
}

pub(crate) fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Lines a daemon wrote to stderr, with waiting for one to appear.
#[derive(Default)]
pub struct LogBuffer {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl LogBuffer {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().0.push(strip_ansi(&line));
        self.changed.notify_all();
    }

    fn close(&self) {
        self.lines.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    /// Waits until a line matching `pred` was written; returns it.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lines.lock().unwrap();
        loop {
            if let Some(line) = guard.0.iter().find(|l| pred(l)) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if guard.1 || now >= deadline {
                return None;
            }
            guard = self.changed.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Waits until at least `n` lines match `pred`; returns how many match then.
    pub fn wait_count(&self, timeout: Duration, n: usize, pred: impl Fn(&str) -> bool) -> usize {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lines.lock().unwrap();
        loop {
            let count = guard.0.iter().filter(|l| pred(l)).count();
            let now = Instant::now();
            if count >= n || guard.1 || now >= deadline {
                return count;
            }
            guard = self.changed.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// How many lines so far match `pred`.
    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines
            .lock()
            .unwrap()
            .0
            .iter()
            .filter(|l| pred(l))
            .count()
    }

    /// Everything so far.
    pub fn text(&self) -> String {
        self.lines.lock().unwrap().0.join("\n")
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A running `stask serve`. Killed (SIGKILL) when dropped.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A valid API token.
    pub token: String,
    /// Its log.
    pub log: Arc<LogBuffer>,
}

/// An HTTP answer: status and JSON body (or `Value::String` of a non-JSON body).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
    /// Raw body.
    pub raw: Vec<u8>,
    /// Content-Type.
    pub content_type: String,
}

impl Daemon {
    /// Sends a request with the daemon's token.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.request_as(Some(&self.token), method, path, body)
    }

    /// Sends a request with a chosen token (or none).
    pub fn request_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Reply {
        let mut req =
            ureq::request(method, &format!("{}{path}", self.base)).timeout(Duration::from_secs(30));
        if let Some(token) = token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(b),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let content_type = response.content_type().to_owned();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut raw).unwrap();
        let body = serde_json::from_slice(&raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
        Reply {
            status,
            body,
            raw,
            content_type,
        }
    }

    /// GET.
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None)
    }

    /// POST with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.request("POST", path, Some(&body.to_string()))
    }

    /// Creates a task and returns its id (asserting 201).
    pub fn create(&self, worker: &str, action: &str, data: Value) -> i64 {
        let r = self.post(&format!("/stask/workers/{worker}/tasks/{action}"), &data);
        assert_eq!(r.status, 201, "create failed: {:?}", r.body);
        r.body["id"].as_i64().expect("id")
    }

    /// The task detail (`task` object).
    pub fn task(&self, id: i64) -> Value {
        let r = self.get(&format!("/stask/tasks/{id}"));
        assert_eq!(r.status, 200, "task {id}: {:?}", r.body);
        r.body["task"].clone()
    }

    /// Waits until the task satisfies `pred`; returns the last detail.
    pub fn wait_task(&self, id: i64, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let task = self.task(id);
            if pred(&task) {
                return task;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} did not reach the state in time: {task}\nlog:\n{}",
                self.log.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the task is finished (completed, failed or cancelled).
    pub fn wait_finished(&self, id: i64) -> Value {
        self.wait_task(id, Duration::from_secs(60), |t| {
            matches!(
                t["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
        })
    }

    /// Kills the daemon with SIGKILL (as a crash would).
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the daemon with SIGTERM and waits; returns the exit code.
    pub fn terminate(mut self) -> i32 {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().ok().and_then(|s| s.code()).unwrap_or(-1)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its peak resident memory so far (`VmHWM`, kB): a buffer read and freed again leaves
    /// `VmRSS` where it was, but not the peak.
    pub fn peak_rss_kb(&self) -> u64 {
        peak_rss_kb(self.pid())
    }

    /// The local ports of this daemon's open TCP connections to a server on `server_port`
    /// (its database sessions, as the server lists them: `client_port`, `host:port`). Read
    /// from `/proc`: the daemon's socket inodes matched against the kernel's TCP table.
    pub fn client_ports_to(&self, server_port: u16) -> Vec<u16> {
        let pid = self.pid();
        let inodes: std::collections::HashSet<String> =
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|dir| {
                    dir.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                        .filter_map(|link| {
                            let link = link.to_string_lossy().into_owned();
                            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                        })
                        .collect()
                })
                .unwrap_or_default();
        let port_of = |address: &str| {
            address
                .rsplit_once(':')
                .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
        };
        let mut ports = Vec::new();
        for table in ["tcp", "tcp6"] {
            let text =
                std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(remote), Some(inode)) =
                    (fields.get(1), fields.get(2), fields.get(9))
                else {
                    continue;
                };
                if port_of(remote) == Some(server_port) && inodes.contains(*inode) {
                    ports.extend(port_of(local));
                }
            }
        }
        ports
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
