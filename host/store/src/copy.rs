//! What `stask migrate-to` copies, and the copy itself between any two drivers: workers with
//! their settings, plugin file records, tokens (hashes only, as stored) and the whole task
//! history with its logs, and schedules with their recent slots, read in batches. Sessions are not copied (browsers log in again).
//!
//! A source driver gives one read-only snapshot ([`CopySource`]), a target driver one
//! transaction ([`CopyTarget`]); [`copy_into`] decides what happens between them, so every
//! pair of backends refuses, replaces and checks alike. Everything is written in that one
//! transaction, so a failed copy leaves the target as it was. Rows keep their ids (tasks'
//! `token_id` names token ids, logs name task ids), so the target must not have tasks or tokens
//! of its own unless the caller forces a replace. [`copy_database`] is the whole operation
//! from two URLs.

use crate::{DatabaseUrl, HostStore, OpenOptions, StoreError, StoreResult};

/// How a column is read from the source and written to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer.
    Int,
    /// Text.
    Text,
    /// A boolean (an integer 0/1 in SQLite and MySQL, `boolean` in PostgreSQL).
    Bool,
    /// A point in time the original product declares a timestamp: UNIX milliseconds in SQLite
    /// and PostgreSQL, `DATETIME(3)` on MySQL (the target converts).
    Time,
}
use Kind::{Bool, Int, Text, Time};

/// A table to copy: name, columns in order, and whether `id` orders (and pages) it.
#[derive(Debug)]
pub struct Table {
    /// The table's name as written in our SQL (`s_...`; the prefix applies).
    pub name: &'static str,
    /// Columns in copy order, with their kinds.
    pub columns: &'static [(&'static str, Kind)],
    /// Whether the table has an `id` primary key (read in pages by it; ids continue after).
    pub by_id: bool,
}

impl Table {
    /// Its columns as an `INSERT`'s list: `id, uuid, ...`.
    pub fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        names.join(", ")
    }
}

/// The tables, in an order that satisfies every reference (workers before tasks, tasks before
/// logs).
pub const TABLES: &[Table] = &[
    Table {
        name: "s_workers",
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("identifier", Text),
            ("scope", Text),
            ("class", Text),
            ("active", Bool),
            ("position", Int),
            ("settings", Text),
            ("hidden", Int),
            ("title", Text),
            ("description", Text),
            ("actions", Text),
            ("default_settings", Text),
            ("state", Text),
            ("load_error", Text),
            ("file", Text),
            ("file_sha256", Text),
            ("version", Text),
            ("generation", Int),
            ("loaded_at", Int),
            ("created_at", Time),
            ("updated_at", Time),
            ("paused", Bool),
        ],
        by_id: true,
    },
    Table {
        name: "s_plugin_files",
        columns: &[
            ("file", Text),
            ("file_sha256", Text),
            ("state", Text),
            ("identifier", Text),
            ("error", Text),
            ("error_detail", Text),
            ("updated_at", Int),
        ],
        by_id: false,
    },
    Table {
        name: "s_tokens",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("token_hash", Text),
            ("prefix", Text),
            ("created_at", Int),
            ("last_used_at", Int),
            ("revoked_at", Int),
            ("role", Text),
            ("workers", Text),
        ],
        by_id: true,
    },
    Table {
        name: "s_tasks",
        columns: &[
            ("id", Int),
            ("identifier", Text),
            ("action", Text),
            ("status", Int),
            ("message", Text),
            ("started_by", Int),
            ("meta", Text),
            ("result", Text),
            ("result_file", Text),
            ("start_at", Time),
            ("run_at", Int),
            ("finished_at", Time),
            ("attempts", Int),
            ("max_attempts", Int),
            ("priority", Text),
            ("priority_rank", Int),
            ("progress", Int),
            ("processed", Int),
            ("total", Int),
            ("eta_seconds", Int),
            ("created_at", Time),
            ("updated_at", Time),
            ("started_at", Int),
            ("lease_owner", Text),
            ("lease_token", Int),
            ("lease_expires_at", Int),
            ("cancel_requested", Bool),
            ("worker_version", Text),
            ("last_error", Text),
            ("duration_ms", Int),
            ("cpu_ms", Int),
            ("memory_bytes", Int),
            ("token_id", Int),
            ("unique_key", Text),
            ("parent_id", Int),
            ("waiting_parents", Int),
            ("on_parent_failure", Int),
            ("batch_id", Int),
        ],
        by_id: true,
    },
    Table {
        name: "s_task_dependencies",
        columns: &[("task_id", Int), ("depends_on", Int), ("resolved", Int)],
        by_id: false,
    },
    Table {
        name: "s_unique_keys",
        columns: &[("unique_key", Text), ("task_id", Int), ("held_until", Int)],
        by_id: false,
    },
    Table {
        name: "s_task_logs",
        columns: &[
            ("id", Int),
            ("task_id", Int),
            ("attempt", Int),
            ("level", Int),
            ("at", Int),
            ("line", Text),
        ],
        by_id: true,
    },
    Table {
        name: "s_schedules",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("identifier", Text),
            ("action", Text),
            ("cron", Text),
            ("timezone", Text),
            ("data", Text),
            ("priority", Text),
            ("max_attempts", Int),
            ("unique_key", Text),
            ("enabled", Bool),
            ("catch_up", Bool),
            ("source", Text),
            ("fire_after", Int),
            ("last_run_at", Int),
            ("last_task_id", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        by_id: true,
    },
    // The slots taken (at most a day per schedule, see `schedules::KEEP_SLOTS_MS`): copied so
    // that the copy keeps the record of which task each recent slot created. Not needed for
    // correctness (a schedule's `last_run_at` already keeps older slots from firing again).
    Table {
        name: "s_schedule_slots",
        columns: &[
            ("schedule_id", Int),
            ("slot_at", Int),
            ("task_id", Int),
            ("taken_at", Int),
        ],
        by_id: false,
    },
    // The limited workers' rate state (see `crate::limits`): copied so that a rate limit
    // holds across the move (a missing row is created by the next limited claim).
    Table {
        name: "s_worker_limits",
        columns: &[("identifier", Text), ("rate_tat", Int)],
        by_id: false,
    },
    // The audit log (migration 0016): who changed what over the API is kept across a move.
    Table {
        name: "s_audit",
        columns: &[
            ("id", Int),
            ("recorded_at", Int),
            ("token_id", Int),
            ("token_name", Text),
            ("role", Text),
            ("via_session", Bool),
            ("method", Text),
            ("route", Text),
            ("target", Text),
            ("created_ids", Text),
            ("status", Int),
            ("client_addr", Text),
        ],
        by_id: true,
    },
    // Batches (see `crate::batches`): their tasks name them by `s_tasks.batch_id`.
    Table {
        name: "s_batches",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("created_at", Int),
            ("created_by", Int),
            ("total", Int),
            ("on_complete_task_id", Int),
            ("cancelled_at", Int),
        ],
        by_id: true,
    },
];

/// One value read from the source.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// An integer, a boolean as 0/1, or a time in UNIX milliseconds.
    Int(i64),
    /// Text.
    Text(String),
}

/// What a copy did: rows per table, in copy order.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// `(table, rows copied)`.
    pub tables: Vec<(&'static str, u64)>,
    /// Rows the target had and that a forced copy replaced: `(table, rows)`.
    pub replaced: Vec<(&'static str, i64)>,
}

/// A consistent, read-only view of a source database, as [`copy_into`] reads it: every
/// [`CopySource::read`] sees the same snapshot.
pub trait CopySource: Send {
    /// Rows of `table`, each one [`Cell`] per column in order. For a table [`Table::by_id`]:
    /// at most `limit` rows with an id above `after`, by id; for the others, every row.
    fn read(&mut self, table: &Table, after: i64, limit: usize) -> StoreResult<Vec<Vec<Cell>>>;
    /// The source as a message names it (a path, or a redacted URL).
    fn name(&self) -> &str;
}

/// One open transaction of a target database, as [`copy_into`] uses it.
pub trait CopyTarget {
    /// Rows in one of our tables.
    fn count(&mut self, table: &str) -> StoreResult<i64>;
    /// Deletes every row of our tables that the copy writes, and sessions.
    fn clear(&mut self) -> StoreResult<()>;
    /// Writes rows (each one value per column of `table`, in order).
    fn write(&mut self, table: &Table, rows: &[Vec<Cell>]) -> StoreResult<()>;
    /// Makes new ids of `table` continue after the copied ones.
    fn continue_ids(&mut self, table: &Table) -> StoreResult<()>;
    /// How many rows one [`CopyTarget::write`] takes (the target's statement limits).
    fn batch(&self, table: &Table) -> usize;
}

/// The tables a copy clears in the target, sessions included.
pub const CLEARED: [&str; 13] = [
    "s_workers",
    "s_plugin_files",
    "s_tokens",
    "s_sessions",
    "s_tasks",
    "s_task_dependencies",
    "s_unique_keys",
    "s_task_logs",
    "s_schedules",
    "s_schedule_slots",
    "s_worker_limits",
    "s_audit",
    "s_batches",
];

/// The statement a source reads `table` with: each column as `column(name, kind)` writes it,
/// paged by id after the placeholder `after` (`?1`, `$1`, `?`) with `LIMIT limit`.
pub(crate) fn select(
    table: &Table,
    after: &str,
    limit: usize,
    column: impl Fn(&str, Kind) -> String,
) -> String {
    let list = table
        .columns
        .iter()
        .map(|(name, kind)| column(name, *kind))
        .collect::<Vec<_>>()
        .join(", ");
    if table.by_id {
        format!(
            "SELECT {list} FROM {} WHERE id > {after} ORDER BY id LIMIT {limit}",
            table.name
        )
    } else {
        // In the order of the first two columns (the table's key, or its start): every
        // backend reads the same order, where without it SQLite and PostgreSQL read insertion
        // order and MySQL the primary key's.
        format!(
            "SELECT {list} FROM {} ORDER BY {}, {}",
            table.name, table.columns[0].0, table.columns[1].0
        )
    }
}

/// Copies everything `source` holds into `target`, an open transaction the caller commits.
/// Refuses with [`StoreError::Conflict`] when the target already has tasks or tokens, unless
/// `force`: then the target's workers, plugin files, tokens, sessions, tasks and logs are
/// replaced.
pub fn copy_into(
    source: &mut dyn CopySource,
    target: &mut dyn CopyTarget,
    force: bool,
) -> StoreResult<CopyReport> {
    let (tasks, tokens) = (target.count("s_tasks")?, target.count("s_tokens")?);
    if (tasks > 0 || tokens > 0) && !force {
        return Err(StoreError::conflict(format!(
            "the target database already has {tasks} tasks and {tokens} tokens; \
             copy into an empty database, or pass --force to replace them"
        )));
    }
    let mut report = CopyReport::default();
    for table in CLEARED {
        let n = target.count(table)?;
        if n > 0 {
            report.replaced.push((table, n));
        }
    }
    target.clear()?;
    for table in TABLES {
        let copied = copy_table(source, target, table)
            .map_err(|e| e.doing(format!("copying {} from {}", table.name, source.name())))?;
        let stored = target.count(table.name)?;
        if stored != copied as i64 {
            return Err(StoreError::internal(format!(
                "{}: {copied} rows read but {stored} in the target; nothing was copied",
                table.name
            )));
        }
        if table.by_id {
            target.continue_ids(table)?;
        }
        report.tables.push((table.name, copied));
    }
    Ok(report)
}

fn copy_table(
    source: &mut dyn CopySource,
    target: &mut dyn CopyTarget,
    table: &Table,
) -> StoreResult<u64> {
    let batch = target.batch(table).max(1);
    let mut after = i64::MIN;
    let mut copied = 0u64;
    loop {
        let rows = source.read(table, after, batch)?;
        let Some(last) = rows.last() else { break };
        if table.by_id {
            match last.first() {
                Some(Cell::Int(id)) => after = *id,
                other => {
                    return Err(StoreError::internal(format!(
                        "{}: a row's id reads as {other:?}",
                        table.name
                    )))
                }
            }
        }
        let n = rows.len();
        // A table without ids is read whole; it is written in batches all the same.
        for chunk in rows.chunks(batch) {
            target.write(table, chunk)?;
        }
        copied += n as u64;
        if !table.by_id || n < batch {
            break;
        }
    }
    Ok(copied)
}

/// `stask migrate-to`: copies the installation in the database `from` into the database `to`
/// (any two backends, both migrated first, with the table prefix of `options`). Refuses a
/// source on a server while hosts still run on it (their work after the snapshot would not be
/// in the copy), and `to` naming the same database as `from`.
pub fn copy_database(
    from: &str,
    to: &str,
    options: &OpenOptions,
    force: bool,
) -> StoreResult<CopyReport> {
    let (from_backend, to_backend) = (DatabaseUrl::of(from)?, DatabaseUrl::of(to)?);
    if from_backend.same_database(&to_backend) {
        return Err(StoreError::Config {
            message: format!(
                "{} is the database this installation already uses; name another one",
                crate::postgres::redact(to)
            ),
            source: None,
        });
    }
    let source = open_source(&from_backend, options)?;
    match to_backend {
        DatabaseUrl::Sqlite(path) => {
            crate::sqlite::copy::copy_into_sqlite(source, &path, options, force)
        }
        DatabaseUrl::Postgres(url) => crate::postgres::copy::copy_into_postgres(
            source,
            &crate::postgres::PgStore::open_with(&url, options)?,
            force,
        ),
        DatabaseUrl::Mysql(url) => crate::mysql::copy::copy_into_mysql(
            source,
            &crate::mysql::MysqlStore::open_with(&url, options)?,
            force,
        ),
    }
}

/// The source's store, migrated, checked for live hosts, and its snapshot opened.
fn open_source(url: &DatabaseUrl, options: &OpenOptions) -> StoreResult<Box<dyn CopySource>> {
    use crate::Store;
    Ok(match url {
        DatabaseUrl::Sqlite(path) => {
            crate::sqlite::SqliteStore::open_with(path, options)?.migrate()?;
            Box::new(crate::sqlite::copy::SqliteSource::open(
                path,
                options.table_prefix.clone(),
            )?)
        }
        DatabaseUrl::Postgres(url) => {
            let store = crate::postgres::PgStore::open_with(url, options)?;
            store.migrate()?;
            refuse_live_hosts(&store)?;
            Box::new(store.copy_source()?)
        }
        DatabaseUrl::Mysql(url) => {
            let store = crate::mysql::MysqlStore::open_with(url, options)?;
            store.migrate()?;
            refuse_live_hosts(&store)?;
            Box::new(store.copy_source()?)
        }
    })
}

/// A host still running on the source would go on changing tasks that the copy has already
/// read.
fn refuse_live_hosts(store: &dyn HostStore) -> StoreResult<()> {
    let now = crate::clock::now_ms();
    let live: Vec<String> = store
        .hosts()?
        .into_iter()
        .filter(|h| h.live(now))
        .map(|h| h.name)
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    Err(StoreError::conflict(format!(
        "{} host(s) still run on the source database ({}); stop them first, or wait until \
         their lease has passed if they died",
        live.len(),
        live.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::schedules::spec;
    use crate::conformance::workers::registration;
    use crate::conformance::{claim, finish, task};
    use crate::model::{LogLine, PluginFile, Priority, TaskStatus};
    use crate::sqlite::copy::{copy_into_sqlite, SqliteSource};
    use crate::{Store, TablePrefix};
    use serde_json::json;

    /// Every row of every table, by table, read page by page as a copy reads them.
    fn everything(source: &mut dyn CopySource) -> Vec<Vec<Vec<Cell>>> {
        TABLES
            .iter()
            .map(|table| {
                let mut rows = Vec::new();
                let mut after = i64::MIN;
                loop {
                    let page = source.read(table, after, 7).unwrap();
                    let n = page.len();
                    if let Some(Cell::Int(id)) = page.last().and_then(|r| r.first()) {
                        after = *id;
                    }
                    rows.extend(page);
                    if !table.by_id || n < 7 {
                        break;
                    }
                }
                rows
            })
            .collect()
    }

    /// An installation with something in every column a copy can get wrong: finished, failed
    /// and waiting tasks, text beyond ASCII, JSON, logs, a worker's settings, a plugin file's
    /// error and a revoked token.
    fn fill(store: &dyn Store) {
        store
            .upsert_worker(&registration("a", "s", json!({"size": 1})), 1_000)
            .unwrap();
        store
            .record_plugin_file(&PluginFile {
                file: "libz.so".into(),
                file_sha256: Some("ab".into()),
                state: "error".into(),
                identifier: None,
                error: Some("layout mismatch: «ü»".into()),
                error_detail: None,
                updated_at: 1_700_000_000_123,
            })
            .unwrap();
        store
            .insert_token("ci", "h1", "p1", crate::model::TokenRole::Admin, 1_000)
            .unwrap();
        store
            .insert_token("old", "h2", "p2", crate::model::TokenRole::Operate, 1_001)
            .unwrap();
        store.revoke_token("old", 1_002).unwrap();
        let ci = store.tokens().unwrap()[0].id;
        store
            .restrict_token(ci, Some(&["a".to_owned(), "ü".to_owned()]))
            .unwrap();
        // Audit entries, a session one and an anonymous one (every kind of cell).
        store
            .insert_audit(&[
                crate::AuditEntry {
                    recorded_at: 1_001,
                    token_id: Some(ci),
                    token_name: Some("ci".into()),
                    role: Some("admin".into()),
                    via_session: true,
                    method: "POST".into(),
                    route: "/stask/workers/{identifier}/tasks/{action}".into(),
                    target: Some("identifier=a action=run".into()),
                    created_ids: Some("1".into()),
                    status: 201,
                    client_addr: Some("[::1]:5000".into()),
                },
                crate::AuditEntry {
                    recorded_at: 1_002,
                    token_id: None,
                    token_name: None,
                    role: None,
                    via_session: false,
                    method: "POST".into(),
                    route: "/stask/login".into(),
                    target: None,
                    created_ids: None,
                    status: 401,
                    client_addr: None,
                },
            ])
            .unwrap();
        let mut tasks: Vec<_> = (0..23)
            .map(|i| {
                let mut t = task("a", Priority::High, None);
                t.data = json!({"i": i, "name": "Ärger ✓", "nested": {"list": [1, 2]}});
                t.started_by = Some(i);
                t
            })
            .collect();
        tasks.push(task("a", Priority::Low, Some(1_700_000_999_000)));
        // Keys held while pending, and for a while after the end.
        tasks[0].unique_key = Some("import «ü»".into());
        tasks[1].unique_key = Some("export".into());
        tasks[1].unique_for_secs = Some(3_600);
        // Unique keys: one held by status, one held for a time (s_unique_keys both ways).
        tasks[3].unique_key = Some("key-ß".into());
        tasks[4].unique_key = Some("for-an-hour".into());
        tasks[4].unique_for_secs = Some(3_600);
        let now = 1_700_000_000_000;
        let inserted = store.insert_tasks(&tasks, now).unwrap();
        let claimed = claim(store, "h", 5, now + 10);
        let finishes: Vec<_> = claimed
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let status = if i % 2 == 0 {
                    TaskStatus::Completed
                } else {
                    TaskStatus::Failed
                };
                finish(c.id, c.lease_token, status, now + 20 + i as i64)
            })
            .collect();
        store.finish(&finishes).unwrap();
        let lines: Vec<_> = claimed
            .iter()
            .flat_map(|c| {
                (0..3).map(move |n| LogLine {
                    task_id: c.id,
                    attempt: 1,
                    level: n,
                    at: now + n as i64,
                    line: format!("line {n} of {}: ✓", c.id),
                })
            })
            .collect();
        store.append_logs(&lines).unwrap();
        // A schedule with a slot taken (its task is the 25th), and a disabled one without
        // runs or unique key (NULLs and a false flag). One slot row: a table without ids is
        // read in no particular order.
        let nightly = store.insert_schedule(&spec("nightly «ü»"), 1_000).unwrap();
        let slot_task = task("a", Priority::Normal, Some(now));
        store
            .take_slot(nightly.id, now, &slot_task, now + 1)
            .unwrap();
        let mut off = spec("off");
        (off.enabled, off.catch_up, off.unique_key) = (false, false, None);
        store.insert_schedule(&off, 2_000).unwrap();
        // A dependant (the 26th task) waiting for two pending tasks (s_task_dependencies,
        // and the waiting columns).
        let mut dependant = task("a", Priority::Normal, None);
        dependant.depends_on = vec![inserted[0].id, inserted[2].id];
        dependant.on_parent_failure = crate::model::OnParentFailure::Run;
        store.insert_tasks(&[dependant], now + 2).unwrap();
    }

    /// SQLite → PostgreSQL → MySQL → SQLite: every cell of every table arrives as it left,
    /// through all six readers and writers.
    #[test]
    fn a_copy_through_every_backend_keeps_every_cell() {
        let dir = tempfile::tempdir().unwrap();
        let (first, last) = (dir.path().join("first.db"), dir.path().join("last.db"));
        let options = OpenOptions::default();
        {
            let store = crate::sqlite::SqliteStore::open_with(&first, &options).unwrap();
            store.migrate().unwrap();
            fill(&store);
        }
        let source = || Box::new(SqliteSource::open(&first, TablePrefix::none()).unwrap());
        // Where a table's rows are in what `everything` reads.
        let at = |name: &str| TABLES.iter().position(|t| t.name == name).unwrap();
        let original = everything(source().as_mut());
        assert!(
            original[at("s_unique_keys")].len() >= 2,
            "and the held keys"
        );
        assert_eq!(
            original[at("s_task_dependencies")].len(),
            2,
            "and the dependencies"
        );
        assert_eq!(
            original[at("s_tasks")].len(),
            26,
            "the tasks are there to copy"
        );
        assert_eq!(
            (
                original[at("s_schedules")].len(),
                original[at("s_schedule_slots")].len()
            ),
            (2, 1),
            "and the schedules"
        );

        let (pg, _) = crate::postgres::testing::open_pg();
        crate::postgres::copy::copy_into_postgres(source(), &pg, false).unwrap();
        assert_eq!(
            everything(&mut pg.copy_source().unwrap()),
            original,
            "PostgreSQL"
        );

        let (my, _) = crate::mysql::testing::open_mysql(TablePrefix::none());
        let report =
            crate::mysql::copy::copy_into_mysql(Box::new(pg.copy_source().unwrap()), &my, false)
                .unwrap();
        assert_eq!(report.tables[at("s_tasks")], ("s_tasks", 26));
        assert_eq!(
            everything(&mut my.copy_source().unwrap()),
            original,
            "MySQL"
        );

        copy_into_sqlite(Box::new(my.copy_source().unwrap()), &last, &options, false).unwrap();
        let copied = everything(&mut SqliteSource::open(&last, TablePrefix::none()).unwrap());
        assert_eq!(copied, original, "SQLite again");

        // Into a target that has tasks now: refused without force, replaced with it.
        let refused = copy_into_sqlite(source(), &last, &options, false).unwrap_err();
        assert!(matches!(refused, StoreError::Conflict { .. }), "{refused}");
        let forced = copy_into_sqlite(source(), &last, &options, true).unwrap();
        assert!(forced.replaced.contains(&("s_tasks", 26)), "{forced:?}");
    }

    /// Opens a source on one store.
    type OpenSource<'a> = Box<dyn Fn() -> Box<dyn CopySource> + 'a>;

    /// A copy reads one snapshot: a task inserted into the source after the copy began is
    /// not half in it.
    #[test]
    fn a_source_reads_one_snapshot() {
        let (pg, _) = crate::postgres::testing::open_pg();
        let (my, _) = crate::mysql::testing::open_mysql(TablePrefix::none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let sqlite = crate::sqlite::SqliteStore::open_with(&path, &OpenOptions::default()).unwrap();
        sqlite.migrate().unwrap();
        let stores: [(&dyn Store, OpenSource); 3] = [
            (
                &sqlite,
                Box::new(|| Box::new(SqliteSource::open(&path, TablePrefix::none()).unwrap())),
            ),
            (&pg, Box::new(|| Box::new(pg.copy_source().unwrap()))),
            (&my, Box::new(|| Box::new(my.copy_source().unwrap()))),
        ];
        for (store, open) in stores {
            store
                .insert_task(&task("a", Priority::Normal, None), 1)
                .unwrap();
            let mut source = open();
            store
                .insert_task(&task("a", Priority::Normal, None), 2)
                .unwrap();
            let tasks = &TABLES[3];
            assert_eq!(
                source.read(tasks, i64::MIN, 100).unwrap().len(),
                1,
                "{}",
                source.name()
            );
        }
    }
}
