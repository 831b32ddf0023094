//! Migrations embedded from `migrations/`, applied in order, each exactly once.
//!
//! Each backend has its own folder (`migrations/sqlite/`, `migrations/postgres/`) with the same
//! numbering: file N creates the same tables and columns in both, in each one's SQL flavour.
//! [`migrations`] picks the folder for a backend; the driver applies it in one transaction per
//! file and records it in `s_schema_migrations`.

/// A database backend with its own migrations folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default (`migrations/sqlite/`).
    Sqlite,
    /// Several hosts on one queue (`migrations/postgres/`).
    Postgres,
}

/// The migrations of a backend, in order.
pub fn migrations(backend: Backend) -> &'static [Migration] {
    match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    }
}

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Sequence number (file name prefix).
    pub version: i64,
    /// File name.
    pub name: &'static str,
    /// SQL text.
    pub sql: &'static str,
}

/// One list of migration files per backend folder of `migrations/`, embedded at build time.
macro_rules! migrations {
    ($backend:literal: $($version:literal => $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../migrations/", $backend, "/", $name)),
        }),*]
    };
}

/// The SQLite migrations, in order.
pub const SQLITE_MIGRATIONS: &[Migration] = migrations!("sqlite":
    1 => "0001_init.sql",
    2 => "0002_sessions.sql",
    3 => "0003_created_index.sql",
    4 => "0004_task_resources.sql",
    5 => "0005_hosts.sql",
    6 => "0006_seed_rows.sql",
);

/// The PostgreSQL migrations, in order; numbered like [`SQLITE_MIGRATIONS`].
pub const POSTGRES_MIGRATIONS: &[Migration] = migrations!("postgres":
    1 => "0001_init.sql",
    2 => "0002_sessions.sql",
    3 => "0003_created_index.sql",
    4 => "0004_task_resources.sql",
    5 => "0005_hosts.sql",
    6 => "0006_seed_rows.sql",
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task_state::sql::guard_sql;
    use crate::task_state::Event;

    /// The partial indexes' predicates are literal in the migrations: the guards the claim and
    /// the lease scans are built from must be the same text, or SQLite stops using them.
    #[test]
    fn claim_and_lease_guards_match_the_partial_indexes() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            // SQLite's 0006 rebuilds s_tasks and creates its indexes again, in the same text.
            let rebuilt = match backend {
                Backend::Sqlite => vec![0, 5],
                Backend::Postgres => vec![0],
            };
            for init in rebuilt.into_iter().map(|i| migrations(backend)[i].sql) {
                let claim = format!(
                    "s_tasks_claim ON s_tasks (priority_rank, run_at, id) WHERE {};",
                    guard_sql(Event::Claim)
                );
                let lease = format!(
                    "s_tasks_lease ON s_tasks (lease_expires_at) WHERE {};",
                    guard_sql(Event::Recover)
                );
                assert!(init.contains(&claim), "{backend:?}: {claim}");
                assert!(init.contains(&lease), "{backend:?}: {lease}");
            }
        }
    }
}
