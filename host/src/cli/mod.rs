//! The `stask` command line: thin commands over the same engine and store as the HTTP API.
//!
//! Exit codes scripts can rely on: 0 success, 1 runtime failure (database, I/O), 2 usage error
//! (also a flag outside its range, a malformed task id), 3 not found (also a home or database
//! that does not exist), 4 conflict with the current state, 5 invalid input (also an invalid
//! configuration value), 6 task ended failed or cancelled (`task watch`). Output goes through
//! [`outln!`]: a closed stdout ends the command quietly with 0.

#[macro_use]
mod output;

mod admin;
mod audit;
mod batch;
mod dev;
mod discover;
mod log_tail;
mod migrate_to;
mod new_worker;
mod schedules;
mod serve;
mod service_manager;
mod task;

use crate::config::{Config, ConfigError};
use crate::engine::{Engine, EngineError};
use crate::events::EventBus;
use crate::store::{Store, StoreError};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

/// sTask: background tasks with native worker plugins.
#[derive(Debug, Parser)]
#[command(name = "stask", version, about)]
pub struct Cli {
    /// Installation folder holding storage/ and plugins.d/ [env: STASK_HOME; default: .]
    #[arg(long, global = true)]
    pub home: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: load plugins, run tasks, serve the API.
    Serve(serve::ServeArgs),
    /// Development loop: build the plugins in plugins/, serve, rebuild and reload on save.
    Dev(dev::DevArgs),
    /// Run due tasks once and exit (for cron, as in the original).
    Process {
        /// Run at most this many tasks (at least 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        batch_size: Option<u32>,
    },
    /// Apply database migrations.
    Migrate,
    /// Copy this installation (workers, settings, tokens, schedules, task history) into
    /// another database of any backend (SQLite, PostgreSQL, MySQL/MariaDB).
    MigrateTo(migrate_to::MigrateToArgs),
    /// Create and inspect tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Create batches of tasks from a JSON file and show them.
    #[command(subcommand)]
    Batch(batch::BatchCommand),
    /// Manage workers.
    #[command(subcommand)]
    Workers(admin::WorkersCommand),
    /// Manage recurring schedules (cron expressions in a time zone).
    #[command(subcommand)]
    Schedules(schedules::SchedulesCommand),
    /// Task counts per status.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete finished tasks older than N days, with their files.
    Clean {
        /// Age in days.
        #[arg(long)]
        days: u32,
    },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// The audit log: state-changing API requests, newest first.
    Audit(audit::AuditArgs),
    /// Print the version.
    Version,
    /// Create a worker crate (a plugin) in a new folder, with unit tests, ready to build.
    NewWorker(new_worker::NewWorkerArgs),
    /// Internal: run one task of the library in this process for a daemon that isolates it
    /// (the daemon starts it; the protocol is on stdin/stdout).
    #[command(hide = true)]
    IsolatedRun {
        /// The library to load.
        #[arg(long)]
        library: PathBuf,
    },
}

/// A command failure: message for stderr and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: i32,
    /// Message.
    pub message: String,
}

impl CliError {
    /// An error with an exit code.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        let code = match &e {
            EngineError::NotFound(_) => 3,
            EngineError::Conflict(_) => 4,
            EngineError::Invalid(_)
            | EngineError::UnknownParents { .. }
            | EngineError::BatchTask { .. } => 5,
            EngineError::Store(StoreError::Conflict { .. }) => 4,
            EngineError::Store(StoreError::Config { .. }) => 5,
            EngineError::Store(_) => 1,
        };
        CliError::new(code, e.to_string())
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e).into()
    }
}

/// A configuration the command cannot run with is invalid input: exit code 5.
impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::new(5, e.to_string())
    }
}

/// Result of a command.
pub type CliResult = Result<(), CliError>;

/// An exclusive lock on `storage/stask.lock`: one daemon (or cron pass) per home at a time.
pub(crate) struct HomeLock(#[allow(dead_code)] std::fs::File);

/// [`try_lock_home`], refused (exit code 4) when another process holds the lock.
pub(crate) fn lock_home(storage: &std::path::Path) -> Result<HomeLock, CliError> {
    try_lock_home(storage)?.ok_or_else(|| {
        let path = storage.join("stask.lock");
        CliError::new(
            4,
            format!(
                "another stask daemon or process pass is already running on {} (lock {} is held)",
                storage.parent().unwrap_or(storage).display(),
                path.display()
            ),
        )
    })
}

/// The home lock, or `None` when another process holds it; an error only when the lock file
/// cannot be opened.
pub(crate) fn try_lock_home(storage: &std::path::Path) -> Result<Option<HomeLock>, CliError> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(storage)
        .map_err(|e| CliError::new(1, format!("cannot create {}: {e}", storage.display())))?;
    let path = storage.join("stask.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CliError::new(1, format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(CliError::new(
            1,
            format!("cannot lock {}: {e}", path.display()),
        ));
    }
    Ok(Some(HomeLock(file)))
}

/// Refuses a home folder or an SQLite database that does not exist (exit code 3, the path in
/// the message), so that a mistyped `STASK_HOME` is not answered "total 0" from a database
/// created on the spot. Only `serve`, `dev`, `migrate` and `process` create them. A PostgreSQL
/// database is not checked beyond connecting to it.
fn require_existing(config: &Config) -> Result<(), CliError> {
    if !config.home.is_dir() {
        return Err(CliError::new(
            3,
            format!(
                "the home folder {} does not exist (check STASK_HOME or --home; `stask serve` or `stask migrate` creates a new installation)",
                config.home.display()
            ),
        ));
    }
    let url = config.database_url.as_str();
    let sqlite = match url.strip_prefix("sqlite://") {
        Some(path) => Some(path),
        None => (!url.contains("://")).then_some(url),
    };
    if let Some(path) = sqlite.map(std::path::Path::new) {
        if !path.is_file() {
            return Err(CliError::new(
                3,
                format!(
                    "no database at {} (check STASK_HOME, --home or STASK_DATABASE_URL; `stask migrate` or `stask serve` creates it)",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Loads the configuration and opens (and migrates) the store of an existing installation;
/// see [`require_existing`]. For every command but the ones that create an installation.
fn open_existing(home: Option<PathBuf>) -> Result<(Config, Arc<dyn Store>), CliError> {
    let config = Config::load(home)?;
    require_existing(&config)?;
    let store = crate::store::open_with(&config.database_url, &config.open_options())?;
    store.migrate()?;
    Ok((config, store))
}

/// Loads the configuration and opens (and migrates) the store, creating a missing database
/// (`serve`, `dev`, `process`).
fn open(home: Option<PathBuf>) -> Result<(Config, Arc<dyn Store>), CliError> {
    let config = Config::load(home)?;
    let store = crate::store::open_with(&config.database_url, &config.open_options())?;
    store.migrate()?;
    Ok((config, store))
}

/// An engine for commands that need validation or plugins, on an existing installation.
fn engine(home: Option<PathBuf>) -> Result<Arc<Engine>, CliError> {
    let (config, store) = open_existing(home)?;
    Ok(Engine::new(config, store, EventBus::default()))
}

/// A task id argument: the API's rule (a positive whole number, else 400 there), so
/// `stask task show 0` is a usage error (exit code 2) with the API's message, not "not found".
fn task_id(raw: &str) -> Result<i64, String> {
    crate::http::TaskId::parse(raw)
        .map(|crate::http::TaskId(id)| id)
        .map_err(|e| e.message)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Serve(args) => serve::serve(cli.home, args),
        Command::Dev(args) => dev::dev(cli.home, args),
        Command::Process { batch_size } => serve::process(cli.home, batch_size.map(|n| n as usize)),
        Command::Migrate => {
            let config = Config::load(cli.home)?;
            let store = crate::store::open_with(&config.database_url, &config.open_options())?;
            let applied = store.migrate()?;
            if applied.is_empty() {
                outln!("database is up to date ({})", store.describe());
            } else {
                for name in applied {
                    outln!("applied {name}");
                }
            }
            Ok(())
        }
        Command::MigrateTo(args) => migrate_to::migrate_to(cli.home, args),
        Command::Task(cmd) => task::run(cli.home, cmd),
        Command::Batch(cmd) => batch::run(cli.home, cmd),
        Command::Workers(cmd) => admin::workers(cli.home, cmd),
        Command::Schedules(cmd) => schedules::schedules(cli.home, cmd),
        Command::Stats { json } => admin::stats(cli.home, json),
        Command::Clean { days } => {
            let engine = engine(cli.home)?;
            let n = engine.clean_old_tasks(days)?;
            outln!("deleted {n} finished tasks older than {days} days");
            Ok(())
        }
        Command::Token(cmd) => admin::token(cli.home, cmd),
        Command::Audit(args) => audit::audit(cli.home, args),
        Command::IsolatedRun { library } => {
            std::process::exit(crate::plugins::isolation::child_main(&library))
        }
        Command::NewWorker(args) => new_worker::new_worker(args),
        Command::Version => {
            outln!(
                "stask {} (plugin api {})",
                env!("CARGO_PKG_VERSION"),
                crate::plugins::plugin_api_version()
            );
            Ok(())
        }
    }
}
