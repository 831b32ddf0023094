//! `STASK_TABLE_PREFIX` and rows written the original product's way, on SQLite, PostgreSQL and
//! MariaDB (each test runs on all three, whatever the run's database).
//!
//! Prefixes: the tables of an installation are named `<prefix>s_...` in the database; two
//! prefixes in one SQLite file, PostgreSQL schema or MariaDB database are two independent installations
//! (each sees, runs and registers only its own); an invalid prefix is a configuration error.
//! Seed rows: a task inserted with only `identifier, action, status, priority, meta` by
//! another program is picked up by the running daemon and run to completion.

use mysql::prelude::Queryable;
use serde_json::{json, Value};
use stask_tests::{Daemon, Home, MysqlDatabase, PgSchema, ServerDatabase};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The database two installations share.
enum Shared {
    Sqlite(tempfile::TempDir),
    Postgres(Arc<PgSchema>),
    Mysql(Arc<MysqlDatabase>),
}

impl Shared {
    fn sqlite() -> Shared {
        Shared::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Shared {
        Shared::Postgres(PgSchema::create())
    }

    fn mysql() -> Shared {
        Shared::Mysql(MysqlDatabase::create())
    }

    fn db_file(&self) -> Option<PathBuf> {
        match self {
            Shared::Sqlite(dir) => Some(dir.path().join("shared.db")),
            Shared::Postgres(_) | Shared::Mysql(_) => None,
        }
    }

    fn url(&self) -> String {
        match self {
            Shared::Sqlite(_) => format!("sqlite://{}", self.db_file().unwrap().display()),
            Shared::Postgres(schema) => schema.url(),
            Shared::Mysql(db) => db.url(),
        }
    }

    /// A home with the demo worker on this database, with `prefix` (migrated).
    fn home(&self, prefix: &str) -> Home {
        let mut home = match self {
            Shared::Sqlite(_) => Home::unmigrated(&["demo"], None),
            Shared::Postgres(schema) => {
                Home::unmigrated(&["demo"], Some(ServerDatabase::Postgres(schema.clone())))
            }
            Shared::Mysql(db) => {
                Home::unmigrated(&["demo"], Some(ServerDatabase::Mysql(db.clone())))
            }
        };
        home.set_env("STASK_DATABASE_URL", &self.url());
        home.set_env("STASK_TABLE_PREFIX", prefix);
        let out = home.cli(&["migrate"]);
        assert_eq!(out.code, 0, "migrate with prefix {prefix}: {out:?}");
        home
    }

    /// One statement returning one integer, run straight in the database.
    fn query_int(&self, sql: &str) -> i64 {
        match self {
            Shared::Sqlite(_) => {
                let conn = rusqlite::Connection::open(self.db_file().unwrap()).unwrap();
                conn.query_row(sql, [], |r| r.get(0)).unwrap()
            }
            Shared::Postgres(schema) => {
                let sql = sql.to_owned();
                let schema = schema.clone();
                std::thread::spawn(move || schema.client().query_one(&sql, &[]).unwrap().get(0))
                    .join()
                    .unwrap()
            }
            Shared::Mysql(db) => db.conn().query_first(sql).unwrap().expect("one row"),
        }
    }

    /// The tables in the database.
    fn tables(&self) -> BTreeSet<String> {
        match self {
            Shared::Sqlite(_) => {
                let conn = rusqlite::Connection::open(self.db_file().unwrap()).unwrap();
                let mut stmt = conn
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .unwrap();
                let names = stmt.query_map([], |r| r.get(0)).unwrap();
                names.collect::<rusqlite::Result<_>>().unwrap()
            }
            Shared::Postgres(schema) => {
                let schema = schema.clone();
                std::thread::spawn(move || {
                    schema
                        .client()
                        .query(
                            "SELECT table_name::text FROM information_schema.tables
                              WHERE table_schema = current_schema()",
                            &[],
                        )
                        .unwrap()
                        .iter()
                        .map(|r| r.get(0))
                        .collect()
                })
                .join()
                .unwrap()
            }
            Shared::Mysql(db) => db
                .conn()
                .query(
                    "SELECT table_name FROM information_schema.tables
                      WHERE table_schema = DATABASE()",
                )
                .unwrap()
                .into_iter()
                .collect(),
        }
    }

    /// Inserts a task the original product's way (only its columns) into `table`; returns
    /// its id. A connection of another program: the daemon learns of it as of any write.
    fn insert_seed(&self, table: &str, meta: &Value) -> i64 {
        let sql = format!(
            "INSERT INTO {table} (identifier, action, status, priority, meta)
             VALUES ('demo', 'run', 10, 'high', '{meta}')"
        );
        match self {
            Shared::Sqlite(_) => {
                let conn = rusqlite::Connection::open(self.db_file().unwrap()).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.execute(&sql, []).unwrap();
                conn.last_insert_rowid()
            }
            Shared::Postgres(_) => self.query_int(&format!("{sql} RETURNING id")),
            Shared::Mysql(db) => {
                let mut conn = db.conn();
                conn.query_drop(&sql).unwrap();
                conn.last_insert_id() as i64
            }
        }
    }
}

fn total(d: &Daemon) -> i64 {
    let r = d.get("/stask/tasks");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["total"].as_i64().expect("total")
}

fn two_prefixes_are_two_installations(db: Shared) {
    let (a, b) = (db.home("evo_"), db.home("cms2_"));
    let tables = db.tables();
    for name in ["s_tasks", "s_workers", "s_task_logs", "s_schema_migrations"] {
        assert!(tables.contains(&format!("evo_{name}")), "{tables:?}");
        assert!(tables.contains(&format!("cms2_{name}")), "{tables:?}");
    }
    let (da, dbb) = (a.serve(), b.serve());
    let ta = da.create("demo", "run", json!({"steps": 2, "who": "a"}));
    let tb = dbb.create("demo", "run", json!({"steps": 2, "who": "b"}));
    let (fa, fb) = (da.wait_finished(ta), dbb.wait_finished(tb));
    assert_eq!(fa["status"], "completed", "{fa}");
    assert_eq!(fb["status"], "completed", "{fb}");
    // Each installation sees and ran only its own task (the ids may well be equal: each
    // table has its own sequence).
    assert_eq!((total(&da), total(&dbb)), (1, 1));
    assert_eq!(da.task(ta)["meta"]["who"], "a", "{}", da.task(ta));
    assert_eq!(dbb.task(tb)["meta"]["who"], "b", "{}", dbb.task(tb));
    for p in ["evo_", "cms2_"] {
        assert_eq!(db.query_int(&format!("SELECT COUNT(*) FROM {p}s_tasks")), 1);
        // Workers are registered per installation.
        assert_eq!(
            db.query_int(&format!(
                "SELECT COUNT(*) FROM {p}s_workers WHERE identifier = 'demo'"
            )),
            1
        );
    }
    // No unprefixed installation was made beside them.
    assert!(!db.tables().contains("s_tasks"), "{:?}", db.tables());
}

#[test]
fn two_prefixes_in_one_sqlite_file_are_two_installations() {
    two_prefixes_are_two_installations(Shared::sqlite());
}

#[test]
fn two_prefixes_in_one_postgres_schema_are_two_installations() {
    two_prefixes_are_two_installations(Shared::postgres());
}

#[test]
fn two_prefixes_in_one_mariadb_database_are_two_installations() {
    two_prefixes_are_two_installations(Shared::mysql());
}

#[test]
fn an_invalid_prefix_is_a_configuration_error() {
    let mut home = Home::without_database(&["demo"]);
    home.set_env("STASK_TABLE_PREFIX", "evo-");
    let out = home.cli(&["migrate"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("invalid table prefix 'evo-'"),
        "{}",
        out.stderr
    );
}

/// A seed-style row written by another program while the daemon runs is picked up without
/// waiting for a periodic sweep and run to completion.
fn a_seed_row_is_picked_up_and_run(db: Shared, prefix: &str) {
    let home = db.home(prefix);
    let d = home.serve();
    // The daemon is idle and has registered its worker before the row arrives.
    let first = d.create("demo", "noop", json!({}));
    d.wait_finished(first);
    let inserted = Instant::now();
    let id = db.insert_seed(&format!("{prefix}s_tasks"), &json!({"steps": 2}));
    let task = d.wait_task(id, Duration::from_secs(30), |t| t["status"] != "pending");
    let picked_up = inserted.elapsed();
    let done = d.wait_finished(id);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["priority"], "high", "{done}");
    // The usual pickup: the dispatcher claims again at least every 100 ms (and on
    // PostgreSQL the insert's NOTIFY wakes it at once); 5 s leaves room for a loaded machine.
    assert!(
        picked_up < Duration::from_secs(5),
        "picked up after {picked_up:?}: {task}"
    );
}

#[test]
fn a_seed_row_runs_on_sqlite() {
    a_seed_row_is_picked_up_and_run(Shared::sqlite(), "");
}

#[test]
fn a_seed_row_runs_on_postgres() {
    a_seed_row_is_picked_up_and_run(Shared::postgres(), "");
}

#[test]
fn a_seed_row_runs_on_mariadb() {
    a_seed_row_is_picked_up_and_run(Shared::mysql(), "");
}

#[test]
fn a_seed_row_runs_under_a_prefix() {
    a_seed_row_is_picked_up_and_run(Shared::sqlite(), "evo_");
    a_seed_row_is_picked_up_and_run(Shared::postgres(), "evo_");
    a_seed_row_is_picked_up_and_run(Shared::mysql(), "evo_");
}

/// `stask migrate-to` under a prefix copies the prefixed SQLite tables into prefixed
/// PostgreSQL tables (and makes no unprefixed ones).
#[test]
fn migrate_to_keeps_the_prefix() {
    let source = Shared::sqlite();
    let home = source.home("evo_");
    let d = home.serve();
    let id = d.create("demo", "run", json!({"steps": 1}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
    assert_eq!(d.terminate(), 0);
    let target = Shared::postgres();
    let out = home.cli(&["migrate-to", &target.url()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(target.query_int("SELECT COUNT(*) FROM evo_s_tasks"), 1);
    assert_eq!(
        target.query_int("SELECT COUNT(*) FROM evo_s_workers WHERE identifier = 'demo'"),
        1
    );
    let tables = target.tables();
    assert!(tables.iter().all(|t| t.starts_with("evo_s_")), "{tables:?}");
}
