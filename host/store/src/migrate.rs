//! Migrations embedded from `migrations/`, applied in order, each exactly once.
//!
//! Each backend has its own folder (`migrations/sqlite/`, `migrations/postgres/`,
//! `migrations/mysql/`) with the same numbering: file N creates the same tables and columns in
//! each, in each one's SQL flavour. [`migrations`] picks the folder for a backend; the driver
//! applies each file once and records it in `s_schema_migrations` (in one transaction per file
//! where DDL is transactional; MySQL commits each DDL statement on its own, so its driver
//! serialises hosts with `GET_LOCK` instead).

/// A database backend with its own migrations folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default (`migrations/sqlite/`).
    Sqlite,
    /// Several hosts on one queue (`migrations/postgres/`).
    Postgres,
    /// Several hosts on one queue, beside a CMS's own tables (`migrations/mysql/`).
    Mysql,
}

/// The migrations of a backend, in order.
pub fn migrations(backend: Backend) -> &'static [Migration] {
    match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
        Backend::Mysql => MYSQL_MIGRATIONS,
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
    7 => "0007_task_token.sql",
    8 => "0008_worker_pause.sql",
    9 => "0009_unique_tasks.sql",
    10 => "0010_schedules.sql",
    11 => "0011_worker_limits.sql",
    12 => "0012_task_dependencies.sql",
    13 => "0013_task_parent.sql",
    14 => "0014_token_roles.sql",
    15 => "0015_batches.sql",
    16 => "0016_audit.sql",
);

/// The PostgreSQL migrations, in order; numbered like [`SQLITE_MIGRATIONS`].
pub const POSTGRES_MIGRATIONS: &[Migration] = migrations!("postgres":
    1 => "0001_init.sql",
    2 => "0002_sessions.sql",
    3 => "0003_created_index.sql",
    4 => "0004_task_resources.sql",
    5 => "0005_hosts.sql",
    6 => "0006_seed_rows.sql",
    7 => "0007_task_token.sql",
    8 => "0008_worker_pause.sql",
    9 => "0009_unique_tasks.sql",
    10 => "0010_schedules.sql",
    11 => "0011_worker_limits.sql",
    12 => "0012_task_dependencies.sql",
    13 => "0013_task_parent.sql",
    14 => "0014_token_roles.sql",
    15 => "0015_batches.sql",
    16 => "0016_audit.sql",
);

/// The MySQL/MariaDB migrations, in order; numbered like [`SQLITE_MIGRATIONS`].
pub const MYSQL_MIGRATIONS: &[Migration] = migrations!("mysql":
    1 => "0001_init.sql",
    2 => "0002_sessions.sql",
    3 => "0003_created_index.sql",
    4 => "0004_task_resources.sql",
    5 => "0005_hosts.sql",
    6 => "0006_seed_rows.sql",
    7 => "0007_task_token.sql",
    8 => "0008_worker_pause.sql",
    9 => "0009_unique_tasks.sql",
    10 => "0010_schedules.sql",
    11 => "0011_worker_limits.sql",
    12 => "0012_task_dependencies.sql",
    13 => "0013_task_parent.sql",
    14 => "0014_token_roles.sql",
    15 => "0015_batches.sql",
    16 => "0016_audit.sql",
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
                Backend::Postgres | Backend::Mysql => vec![0],
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

    /// MySQL has no partial indexes: the claim index leads with the status, so the claim's
    /// guard (`status = 10`) and its rank and due time read one range of it. The guard must stay
    /// one equality on the status for that to hold.
    #[test]
    fn the_mysql_claim_index_leads_with_the_claim_guard() {
        let init = migrations(Backend::Mysql)[0].sql;
        assert_eq!(guard_sql(Event::Claim), "status = 10");
        assert!(init.contains("KEY s_tasks_claim (status, priority_rank, run_at, id)"));
        assert!(guard_sql(Event::Recover).starts_with("status IN ("));
        assert!(init.contains("KEY s_tasks_lease (status, lease_expires_at)"));
        assert!(
            !init.contains(") WHERE status"),
            "no partial index in MySQL"
        );
    }

    /// Migration 7 moves the token ids older rows kept in `started_by` to `token_id` (they
    /// never named a user) and leaves the rows without a user.
    #[test]
    fn task_token_moves_old_started_by_to_token_id_in_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let (before, after): (Vec<&Migration>, Vec<&Migration>) =
            SQLITE_MIGRATIONS.iter().partition(|m| m.version < 7);
        for m in before {
            conn.execute_batch(m.sql).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO s_tasks (identifier, action, started_by, run_at, created_at, updated_at)
             VALUES ('w', 'run', 4, 0, 0, 0), ('w', 'run', NULL, 0, 0, 0)",
        )
        .unwrap();
        for m in after {
            conn.execute_batch(m.sql).unwrap();
        }
        let rows: Vec<(Option<i64>, Option<i64>)> = conn
            .prepare("SELECT started_by, token_id FROM s_tasks ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![(None, Some(4)), (None, None)]);
    }
}
