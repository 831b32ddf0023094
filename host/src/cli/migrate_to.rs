//! `stask migrate-to <postgres-url>`: moves an SQLite installation to PostgreSQL, so several
//! hosts can share its queue.

use super::{lock_home, CliError, CliResult};
use crate::config::Config;
use crate::store::postgres::{copy::copy_from_sqlite, redact, PgStore};
use clap::Args;
use std::path::PathBuf;

/// Flags of `stask migrate-to`.
#[derive(Debug, Args)]
pub struct MigrateToArgs {
    /// The PostgreSQL database to copy into: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
    pub url: String,
    /// Replace what the target already has (tasks, tokens, workers, sessions); without it a
    /// target with tasks or tokens is refused.
    #[arg(long)]
    pub force: bool,
}

/// The SQLite file a database URL names, or why it does not name one.
fn sqlite_path(url: &str) -> Result<PathBuf, CliError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(CliError::new(
            5,
            "this installation already uses PostgreSQL (STASK_DATABASE_URL); migrate-to copies an SQLite installation",
        ));
    }
    Ok(PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)))
}

/// Copies workers, settings, plugin file records, tokens and the task history from this home's
/// SQLite database into the PostgreSQL database `args.url`.
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
    if !args.url.starts_with("postgres://") && !args.url.starts_with("postgresql://") {
        return Err(CliError::new(
            5,
            format!(
                "'{}' is not a PostgreSQL URL (postgres://USER@HOST/DATABASE)",
                redact(&args.url)
            ),
        ));
    }
    let target = PgStore::open_with(&args.url, &config.open_options())?;
    let report = copy_from_sqlite(&source, &target, args.force)?;
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
