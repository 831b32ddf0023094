//! The `stask` command line: thin commands over the same engine and store as the HTTP API.
//!
//! Exit codes scripts can rely on: 0 success, 1 runtime failure (database, I/O), 2 usage error,
//! 3 not found, 4 conflict with the current state, 5 invalid input, 6 task ended failed or
//! cancelled (`task watch`).

mod admin;
mod dev;
mod migrate_to;
mod serve;
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
        /// Run at most this many tasks.
        #[arg(long)]
        batch_size: Option<usize>,
    },
    /// Apply database migrations.
    Migrate,
    /// Copy this SQLite installation (workers, settings, tokens, task history) into a
    /// PostgreSQL database, for several hosts on one queue.
    MigrateTo(migrate_to::MigrateToArgs),
    /// Create and inspect tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Manage workers.
    #[command(subcommand)]
    Workers(admin::WorkersCommand),
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
    /// Print the version.
    Version,
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
            EngineError::Invalid(_) => 5,
            EngineError::Store(StoreError::Conflict(_)) => 4,
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

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::new(1, e.to_string())
    }
}

/// Result of a command.
pub type CliResult = Result<(), CliError>;

/// An exclusive lock on `storage/stask.lock`: one daemon (or cron pass) per home at a time.
pub(crate) struct HomeLock(#[allow(dead_code)] std::fs::File);

pub(crate) fn lock_home(storage: &std::path::Path) -> Result<HomeLock, CliError> {
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
        return Err(CliError::new(
            4,
            format!(
                "another stask daemon or process pass is already running on {} (lock {} is held)",
                storage.parent().unwrap_or(storage).display(),
                path.display()
            ),
        ));
    }
    Ok(HomeLock(file))
}

/// Loads the configuration and opens (and migrates) the store.
fn open(home: Option<PathBuf>) -> Result<(Config, Arc<dyn Store>), CliError> {
    let config = Config::load(home)?;
    let store = crate::store::open_with(&config.database_url, config.sqlite_sync)?;
    store.migrate()?;
    Ok((config, store))
}

/// An engine for commands that need validation or plugins.
fn engine(home: Option<PathBuf>) -> Result<Arc<Engine>, CliError> {
    let (config, store) = open(home)?;
    Ok(Engine::new(config, store, EventBus::default()))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Serve(args) => serve::serve(cli.home, args),
        Command::Dev(args) => dev::dev(cli.home, args),
        Command::Process { batch_size } => serve::process(cli.home, batch_size),
        Command::Migrate => {
            let config = Config::load(cli.home)?;
            let store = crate::store::open_with(&config.database_url, config.sqlite_sync)?;
            let applied = store.migrate()?;
            if applied.is_empty() {
                println!("database is up to date ({})", store.describe());
            } else {
                for name in applied {
                    println!("applied {name}");
                }
            }
            Ok(())
        }
        Command::MigrateTo(args) => migrate_to::migrate_to(cli.home, args),
        Command::Task(cmd) => task::run(cli.home, cmd),
        Command::Workers(cmd) => admin::workers(cli.home, cmd),
        Command::Stats { json } => admin::stats(cli.home, json),
        Command::Clean { days } => {
            let engine = engine(cli.home)?;
            let n = engine.clean_old_tasks(days)?;
            println!("deleted {n} finished tasks older than {days} days");
            Ok(())
        }
        Command::Token(cmd) => admin::token(cli.home, cmd),
        Command::IsolatedRun { library } => {
            std::process::exit(crate::plugins::isolation::child_main(&library))
        }
        Command::Version => {
            println!(
                "stask {} (plugin api {})",
                env!("CARGO_PKG_VERSION"),
                crate::plugins::plugin_api_version()
            );
            Ok(())
        }
    }
}
