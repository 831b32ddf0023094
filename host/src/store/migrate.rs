//! Migrations embedded from `migrations/`, applied in order, each exactly once.

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
];
