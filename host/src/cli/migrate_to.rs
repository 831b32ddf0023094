//! `stask migrate-to <url>`: moves an SQLite installation to PostgreSQL or MySQL/MariaDB, so
//! several hosts can share its queue (or it lives in the CMS's database).

use super::{lock_home, CliError, CliResult};
use crate::config::Config;
use crate::store::mysql::MysqlStore;
use crate::store::postgres::{redact, PgStore};
use clap::Args;
use std::path::PathBuf;

/// Flags of `stask migrate-to`.
#[derive(Debug, Args)]
pub struct MigrateToArgs {
    /// The database to copy into: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` or
    /// `mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (also `mariadb://`).
    pub url: String,
    /// Replace what the target already has (tasks, tokens, workers, sessions); without it a
    /// target with tasks or tokens is refused.
    #[arg(long)]
    pub force: bool,
}

/// The SQLite file a database URL names, or why it does not name one.
fn sqlite_path(url: &str) -> Result<PathBuf, CliError> {
    if let Some(server) = Server::of(url) {
        return Err(CliError::new(
            5,
            format!(
                "this installation already uses {} (STASK_DATABASE_URL); migrate-to copies an \
                 SQLite installation",
                server.name()
            ),
        ));
    }
    Ok(PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)))
}

/// The database servers migrate-to copies into.
#[derive(Debug, Clone, Copy)]
enum Server {
    Postgres,
    Mysql,
}

impl Server {
    /// The server a URL names, by its scheme.
    fn of(url: &str) -> Option<Server> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Server::Postgres)
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Some(Server::Mysql)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Server::Postgres => "PostgreSQL",
            Server::Mysql => "MySQL/MariaDB",
        }
    }
}

/// Copies workers, settings, plugin file records, tokens and the task history from this home's
/// SQLite database into the PostgreSQL or MySQL database `args.url`.
pub(super) fn migrate_to(home: Option<PathBuf>, args: MigrateToArgs) -> CliResult {
    let config = Config::load(home)?;
    super::require_existing(&config)?;
    let source = sqlite_path(&config.database_url)?;
    if !source.is_file() {
        return Err(CliError::new(
            3,
            format!("no SQLite database at {}", source.display()),
        ));
    }
    // No daemon or cron pass may write the source while it is copied.
    let _lock = lock_home(&config.storage_dir())?;
    let Some(server) = Server::of(&args.url) else {
        return Err(CliError::new(
            5,
            format!(
                "'{}' is not a PostgreSQL or MySQL URL (postgres://USER@HOST/DATABASE, \
                 mysql://USER@HOST/DATABASE)",
                redact(&args.url)
            ),
        ));
    };
    let options = config.open_options();
    let report = match server {
        Server::Postgres => crate::store::postgres::copy::copy_from_sqlite(
            &source,
            &PgStore::open_with(&args.url, &options)?,
            args.force,
        )?,
        Server::Mysql => crate::store::mysql::copy::copy_from_sqlite(
            &source,
            &MysqlStore::open(&args.url, options.table_prefix.clone())?,
            args.force,
        )?,
    };
    for (table, rows) in &report.replaced {
        outln!("replaced {rows} rows of {table} in the target");
    }
    for (table, rows) in &report.tables {
        outln!("copied {rows} rows of {table}");
    }
    outln!(
        "{} is now a copy of {}; start the hosts with STASK_DATABASE_URL={}",
        redact(&args.url),
        source.display(),
        redact(&args.url)
    );
    Ok(())
}
