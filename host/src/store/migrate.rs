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

/// The SQLite migrations, in order.
pub const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init.sql",
        sql: include_str!("../../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_sessions.sql",
        sql: include_str!("../../../migrations/sqlite/0002_sessions.sql"),
    },
    Migration {
        version: 3,
        name: "0003_created_index.sql",
        sql: include_str!("../../../migrations/sqlite/0003_created_index.sql"),
    },
    Migration {
        version: 4,
        name: "0004_task_resources.sql",
        sql: include_str!("../../../migrations/sqlite/0004_task_resources.sql"),
    },
    Migration {
        version: 5,
        name: "0005_hosts.sql",
        sql: include_str!("../../../migrations/sqlite/0005_hosts.sql"),
    },
];

/// The PostgreSQL migrations, in order; numbered like [`SQLITE_MIGRATIONS`].
pub const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init.sql",
        sql: include_str!("../../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_sessions.sql",
        sql: include_str!("../../../migrations/postgres/0002_sessions.sql"),
    },
    Migration {
        version: 3,
        name: "0003_created_index.sql",
        sql: include_str!("../../../migrations/postgres/0003_created_index.sql"),
    },
    Migration {
        version: 4,
        name: "0004_task_resources.sql",
        sql: include_str!("../../../migrations/postgres/0004_task_resources.sql"),
    },
    Migration {
        version: 5,
        name: "0005_hosts.sql",
        sql: include_str!("../../../migrations/postgres/0005_hosts.sql"),
    },
];
