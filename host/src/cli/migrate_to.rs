//! `stask migrate-to <url>`: copies this installation into another database, of any backend:
//! SQLite to PostgreSQL or MySQL/MariaDB so several hosts can share its queue (or it lives in
//! the CMS's database), and back, or between the two servers.

use super::{lock_home, CliError, CliResult};
use crate::config::Config;
use crate::store::postgres::redact;
use crate::store::DatabaseUrl;
use clap::Args;

/// Flags of `stask migrate-to`.
#[derive(Debug, Args)]
pub struct MigrateToArgs {
    /// The database to copy into: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`,
    /// `mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (also `mariadb://`) or `sqlite://PATH`.
    pub url: String,
    /// Replace what the target already has (tasks, tokens, workers, sessions); without it a
    /// target with tasks or tokens is refused.
    #[arg(long)]
    pub force: bool,
}

/// Copies workers, settings, plugin file records, tokens and the task history from this home's
/// database into the database `args.url`. Every host on the source must be stopped: this
/// home's daemon by the home lock, the other hosts of a server database by their heartbeats.
pub(super) fn migrate_to(home: Option<std::path::PathBuf>, args: MigrateToArgs) -> CliResult {
    let config = Config::load(home)?;
    super::require_existing(&config)?;
    let target = DatabaseUrl::of(&args.url).map_err(|_| {
        CliError::new(
            5,
            format!(
                "'{}' is not a database URL to copy into (postgres://USER@HOST/DATABASE, \
                 mysql://USER@HOST/DATABASE or sqlite://PATH)",
                redact(&args.url)
            ),
        )
    })?;
    if let DatabaseUrl::Sqlite(path) = DatabaseUrl::of(&config.database_url)? {
        if !path.is_file() {
            return Err(CliError::new(
                3,
                format!("no SQLite database at {}", path.display()),
            ));
        }
    }
    // No daemon or cron pass of this home may write the source while it is copied.
    let _lock = lock_home(&config.storage_dir())?;
    let report = crate::store::copy::copy_database(
        &config.database_url,
        &args.url,
        &config.open_options(),
        args.force,
    )?;
    for (table, rows) in &report.replaced {
        outln!("replaced {rows} rows of {table} in the target");
    }
    for (table, rows) in &report.tables {
        outln!("copied {rows} rows of {table}");
    }
    let url = match target {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        _ => redact(&args.url),
    };
    outln!(
        "{url} is now a copy of {}; start the hosts with STASK_DATABASE_URL={url}",
        redact(&config.database_url),
    );
    Ok(())
}
