//! The MySQL driver's own tests: the conformance suite on a fresh database each, and what only
//! MySQL has (foreign rows, the table prefix, errors at open, the wake-up poller).

use super::testing::{self, open};
use super::*;
use crate::{HostStore, TaskStore, MYSQL_MIGRATIONS};
use mysql::prelude::Queryable;

/// [`open`], and the store the next process would use: starts are in the database at once,
/// so the same store stands for it (its temporary database lives as long as it).
fn reopenable() -> (Arc<dyn Store>, crate::conformance::Reopen) {
    (open(), Box::new(|store| store))
}

crate::driver_tests!(open, reopenable);

/// Waits up to `secs` seconds for `rx` to get a message.
fn woken_within(rx: &std::sync::mpsc::Receiver<()>, secs: u64) -> bool {
    rx.recv_timeout(Duration::from_secs(secs)).is_ok()
}

/// A row the CMS inserts with its own SQL (another connection, no driver) wakes the host.
#[test]
fn a_task_inserted_by_foreign_sql_wakes_the_host() {
    let (store, database) = testing::open_mysql(TablePrefix::none());
    let (tx, rx) = std::sync::mpsc::channel();
    store.on_new_work(Arc::new(move || {
        let _ = tx.send(());
    }));
    assert!(woken_within(&rx, 20), "the poller connects");
    // Nothing happened: no more wake-ups.
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    let mut cms = testing::foreign(&database);
    cms.query_drop(
        "INSERT INTO s_tasks (identifier, action, message, meta, run_at, priority, priority_rank)
         VALUES ('w', 'run', '', '{}', 0, 'normal', 1)",
    )
    .unwrap();
    assert!(woken_within(&rx, 5), "the foreign insert wakes the host");
}

/// A worker row written by another process's SQL moves the change counter (trigger).
#[test]
fn a_foreign_worker_change_moves_the_counter() {
    let (store, database) = testing::open_mysql(TablePrefix::none());
    let (tx, rx) = std::sync::mpsc::channel();
    store.on_new_work(Arc::new(move || {
        let _ = tx.send(());
    }));
    assert!(woken_within(&rx, 20));
    let before = store.external_change_counter().unwrap().unwrap();
    testing::foreign(&database)
        .query_drop(
            "INSERT INTO s_workers (uuid, identifier, settings, title, description, actions,
                                    default_settings)
             VALUES (UUID(), 'cms', '{}', '', '', '[]', '{}')",
        )
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.external_change_counter().unwrap() == Some(before) {
        assert!(std::time::Instant::now() < deadline, "the counter moved");
        let _ = rx.recv_timeout(Duration::from_millis(50));
    }
}

/// With a prefix every object is the prefixed one (tables, triggers), and two prefixes in one
/// database are two installations.
#[test]
fn the_table_prefix_names_every_object() {
    let (store, database) = testing::open_mysql(TablePrefix::new("cms_").unwrap());
    assert!(store.describe().contains("prefix cms_"));
    let mut admin = testing::foreign(&database);
    let tables: Vec<String> = admin
        .exec(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?
              ORDER BY table_name",
            (database.as_str(),),
        )
        .unwrap();
    assert!(!tables.is_empty());
    assert!(tables.iter().all(|t| t.starts_with("cms_s_")), "{tables:?}");
    let triggers: Vec<String> = admin
        .exec(
            "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = ?",
            (database.as_str(),),
        )
        .unwrap();
    assert!(!triggers.is_empty());
    assert!(
        triggers.iter().all(|t| t.starts_with("cms_s_")),
        "{triggers:?}"
    );
    let id = store
        .insert_task(
            &crate::conformance::task("w", crate::model::Priority::Normal, None),
            1_000,
        )
        .unwrap();
    assert_eq!(store.task(id).unwrap().unwrap().created_at, 1_000);
    // A second installation beside it, on the same database.
    let other = MysqlStore::open_opts(
        mysql::OptsBuilder::from_opts(testing::base_opts())
            .db_name(Some(database.clone()))
            .into(),
        "second".into(),
        TablePrefix::new("two_").unwrap(),
        2,
    )
    .unwrap();
    assert_eq!(other.migrate().unwrap().len(), MYSQL_MIGRATIONS.len());
    assert_eq!(other.stats().unwrap().total, 0);
    assert_eq!(store.stats().unwrap().total, 1);
}

/// The seed's time columns are DATETIME(3) in UTC, as the CMS's models read them.
#[test]
fn seed_times_are_utc_datetimes() {
    let (store, database) = testing::open_mysql(TablePrefix::none());
    // 2023-11-14 22:13:20.123 UTC.
    let now = 1_700_000_000_123;
    let id = store
        .insert_task(
            &crate::conformance::task("w", crate::model::Priority::Normal, Some(now + 1_000)),
            now,
        )
        .unwrap();
    let row: Option<(String, String, String)> = testing::foreign(&database)
        .exec_first(
            "SELECT CAST(created_at AS CHAR), CAST(start_at AS CHAR), DATA_TYPE
               FROM s_tasks, information_schema.columns
              WHERE s_tasks.id = ? AND table_schema = DATABASE() AND table_name = 's_tasks'
                AND column_name = 'created_at'",
            (id,),
        )
        .unwrap();
    assert_eq!(
        row.unwrap(),
        (
            "2023-11-14 22:13:20.123".into(),
            "2023-11-14 22:13:21.123".into(),
            "datetime".into()
        )
    );
    let t = store.task(id).unwrap().unwrap();
    assert_eq!((t.created_at, t.start_at), (now, Some(now + 1_000)));
}

/// Two hosts migrating at once: each file is applied once (GET_LOCK serialises them).
#[test]
fn hosts_starting_together_migrate_once() {
    let (store, database) = testing::open_mysql(TablePrefix::new("race_").unwrap());
    drop(store.migrate().unwrap());
    let opts: Opts = mysql::OptsBuilder::from_opts(testing::base_opts())
        .db_name(Some(database.clone()))
        .into();
    let prefix = TablePrefix::new("both_").unwrap();
    let applied: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let (opts, prefix) = (opts.clone(), prefix.clone());
                s.spawn(move || {
                    MysqlStore::open_opts(opts, "racer".into(), prefix, 1)
                        .unwrap()
                        .migrate()
                        .unwrap()
                        .len()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        applied.iter().sum::<usize>(),
        MYSQL_MIGRATIONS.len(),
        "{applied:?}"
    );
}

/// Wrong database or password: a clear error naming the URL without the password.
#[test]
fn refusals_at_open_name_the_url_without_the_password() {
    let base = testing::base_opts();
    let host = base.get_ip_or_hostname().to_string();
    let port = base.get_tcp_port();
    let user = base.get_user().unwrap_or("root").to_owned();
    let unknown = format!(
        "mysql://{user}@{host}:{port}/stask_no_such_db_{}",
        std::process::id()
    );
    let Err(e) = MysqlStore::open(&unknown) else {
        panic!("an unknown database is refused");
    };
    assert!(matches!(e, StoreError::Connection { .. }), "{e}");
    assert!(e.to_string().contains("unknown database"), "{e}");
    assert!(e.to_string().contains(&unknown), "{e}");
    let denied = format!("mariadb://stask_nobody:hunter2@{host}:{port}/test");
    let Err(e) = MysqlStore::open(&denied) else {
        panic!("a wrong user is refused");
    };
    let text = e.to_string();
    assert!(text.contains("access denied"), "{text}");
    assert!(text.contains("mariadb://stask_nobody@"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn redact_hides_the_password() {
    assert_eq!(
        redact("mysql://u:secret@db:3306/cms"),
        "mysql://u@db:3306/cms"
    );
    assert_eq!(redact("mariadb://db/cms"), "mariadb://db/cms");
}

/// Deadlocks and lock wait timeouts are `Busy`, a duplicate key a `Conflict`, a full disk or
/// table `StorageFull`, a lost connection `Connection`: chosen from codes, with the client's error kept as the source.
#[test]
fn server_codes_choose_the_error_kind() {
    let server = |code: u16| {
        StoreError::from(mysql::Error::MySqlError(mysql::MySqlError {
            state: "HY000".into(),
            message: "m".into(),
            code,
        }))
    };
    assert!(matches!(server(1213), StoreError::Busy { .. }));
    assert!(matches!(server(1205), StoreError::Busy { .. }));
    assert!(matches!(server(1062), StoreError::Conflict { .. }));
    assert!(matches!(server(2006), StoreError::Connection { .. }));
    assert!(matches!(server(2013), StoreError::Connection { .. }));
    assert!(matches!(server(1146), StoreError::Database { .. }));
    assert!(matches!(server(1021), StoreError::StorageFull { .. }));
    assert!(matches!(server(1114), StoreError::StorageFull { .. }));
    let io = StoreError::from(mysql::Error::IoError(std::io::Error::from(
        std::io::ErrorKind::ConnectionReset,
    )));
    assert!(matches!(io, StoreError::Connection { .. }));
    let refused = StoreError::from(mysql::Error::DriverError(
        mysql::DriverError::CouldNotConnect(None),
    ));
    assert!(matches!(refused, StoreError::Connection { .. }));
    // A bug in the driver's own parameters is no lost connection.
    let bug = StoreError::from(mysql::Error::DriverError(mysql::DriverError::MixedParams));
    assert!(matches!(bug, StoreError::Database { .. }));
    use std::error::Error as _;
    assert!(server(1213)
        .source()
        .and_then(|s| s.downcast_ref::<mysql::Error>())
        .is_some());
}

/// The store answers from an async (tokio) thread.
#[test]
fn calls_from_an_async_thread_do_not_panic() {
    let store = open();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stats = rt.block_on(async { store.stats() }).unwrap();
    assert_eq!(stats.total, 0);
}

/// A connection killed by the server fails at most the call at hand; the pool reconnects.
#[test]
fn a_lost_connection_is_reopened() {
    let (store, database) = testing::open_mysql(TablePrefix::none());
    store.stats().unwrap();
    let mut admin = testing::foreign(&database);
    let ids: Vec<u64> = admin
        .exec(
            "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
            (database.as_str(),),
        )
        .unwrap();
    assert!(!ids.is_empty(), "the store's connections were found");
    for id in &ids {
        admin.query_drop(format!("KILL {id}")).unwrap();
    }
    let mut errors = 0;
    for _ in 0..10 {
        if let Err(e) = store.stats() {
            errors += 1;
            assert!(matches!(e, StoreError::Connection { .. }), "{e}");
        }
    }
    assert!(
        errors <= ids.len(),
        "one failed call per lost connection at most"
    );
    assert_eq!(store.stats().unwrap().total, 0);
}

/// A row inserted as the original's PHP model writes it (only the original's columns, times
/// as UTC strings) is claimable at once, with its rank, due time and message filled in; a
/// scheduled one waits for its start.
#[test]
fn a_row_with_only_the_original_columns_is_claimable_at_once() {
    let (store, database) = testing::open_mysql(TablePrefix::new("evo_").unwrap());
    let mut cms = testing::foreign(&database);
    let insert = "INSERT INTO evo_s_tasks (identifier, action, status, priority, start_at, meta,
                                           max_attempts, started_by, created_at, updated_at)
                  VALUES ('w', 'run', 10, ?, ?, '{\"n\": 1}', 2, 7, UTC_TIMESTAMP(), UTC_TIMESTAMP())";
    cms.exec_drop(insert, ("high", None::<String>)).unwrap();
    let now_id = cms.last_insert_id() as i64;
    cms.exec_drop(insert, ("low", Some("2999-01-01 00:00:00.250")))
        .unwrap();
    let later_id = cms.last_insert_id() as i64;
    let now = crate::clock::now_ms();
    let claimed = store
        .claim(&crate::ClaimRequest {
            owner: "h",
            limit: 10,
            now,
            lease_ms: 1_000,
            identifiers: &["w".to_owned()],
            ..Default::default()
        })
        .unwrap()
        .tasks;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let run = &claimed[0];
    assert_eq!(
        (run.id, run.priority_rank, run.max_attempts),
        (now_id, 2, 2)
    );
    assert!(
        run.run_at <= now && run.run_at > now - 60_000,
        "{}",
        run.run_at
    );
    let waiting = store.task(later_id).unwrap().unwrap();
    assert_eq!(waiting.start_at, Some(32_472_144_000_250));
    assert_eq!(waiting.run_at, 32_472_144_000_250);
    assert_eq!(waiting.message, "Scheduled for 2999-01-01T00:00:00.250Z");
    assert_eq!(waiting.priority, crate::model::Priority::Low);
    assert_eq!(waiting.started_by, Some(7));
    let first = store.task(now_id).unwrap().unwrap();
    assert_eq!(first.meta, serde_json::json!({"n": 1}));
    // A producer's bulk INSERT ... SELECT of the same columns (MySQL checks defaults before
    // the trigger there), and a row with no meta and no priority at all.
    cms.query_drop(
        "INSERT INTO evo_s_tasks (identifier, action, status, meta, max_attempts, priority)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
         SELECT 'w', 'run', 10, '{}', 3, 'normal' FROM n",
    )
    .unwrap();
    assert_eq!(cms.affected_rows(), 50);
    cms.query_drop("INSERT INTO evo_s_tasks (identifier, action) VALUES ('w', 'run')")
        .unwrap();
    let bare = store.task(cms.last_insert_id() as i64).unwrap().unwrap();
    assert_eq!(bare.message, "Waiting to run");
    assert_eq!(bare.meta, serde_json::json!({}));
    let claimed = store
        .claim(&crate::ClaimRequest {
            owner: "h",
            limit: 100,
            now: crate::clock::now_ms(),
            lease_ms: 1_000,
            identifiers: &["w".to_owned()],
            ..Default::default()
        })
        .unwrap()
        .tasks;
    assert_eq!(
        claimed.len(),
        51,
        "the bulk rows and the bare one are due at once"
    );
}

/// Two hosts claiming, starting and finishing one queue at once: every task is claimed by one
/// of them exactly once (`SKIP LOCKED`), and every finish applies (no deadlock surfaces).
#[test]
fn hosts_claiming_together_take_disjoint_tasks() {
    use crate::model::{Priority, TaskStatus};
    let (a, database) = testing::open_mysql(TablePrefix::none());
    let b = MysqlStore::open_opts(
        mysql::OptsBuilder::from_opts(testing::base_opts())
            .db_name(Some(database.clone()))
            .into(),
        "second host".into(),
        TablePrefix::none(),
        2,
    )
    .unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let priority = [Priority::Low, Priority::Normal, Priority::High][i % 3];
            crate::conformance::task("w", priority, None)
        })
        .collect();
    a.insert_tasks(&tasks, 0).unwrap();
    let run = |store: &MysqlStore, owner: &str| {
        let mut mine = Vec::new();
        loop {
            let claimed = crate::conformance::claim(store, owner, 7, 10);
            if claimed.is_empty() {
                return mine;
            }
            let leases: Vec<_> = claimed.iter().map(|c| c.lease()).collect();
            assert!(store.start_runs(&leases, 11).unwrap().iter().all(|&s| s));
            let finishes: Vec<_> = claimed
                .iter()
                .map(|c| crate::conformance::finish(c.id, c.lease_token, TaskStatus::Completed, 12))
                .collect();
            assert!(store.finish(&finishes).unwrap().iter().all(|&f| f));
            mine.extend(claimed.iter().map(|c| c.id));
        }
    };
    let (mine_a, mine_b) = std::thread::scope(|s| {
        let ha = s.spawn(|| run(&a, "a"));
        let hb = s.spawn(|| run(&b, "b"));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let mut all: Vec<i64> = mine_a.iter().chain(&mine_b).copied().collect();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a task was claimed twice");
    assert_eq!(all.len(), 200);
    assert_eq!(a.stats().unwrap().completed, 200);
}

/// The store connects where the URL says (TCP to host:port), never through the server's Unix
/// socket: operators and firewalls see the connections they configured.
#[test]
fn connections_use_the_urls_tcp_address() {
    let (store, _database) = testing::open_mysql(TablePrefix::none());
    let host: Option<String> = store
        .conn()
        .unwrap()
        .query_first("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
        .unwrap();
    let host = host.unwrap();
    assert!(
        host.rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok()),
        "a TCP client address: {host}"
    );
}
