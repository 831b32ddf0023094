//! Upgrades: the current daemon started on the database the previous release left behind.
//!
//! `tests/fixtures/upgrade/make-fixture.sh` ran the v0.1.0 daemon on a fresh home, made tasks
//! in every status (a run killed with SIGKILL among them), a dependency chain on a paused
//! worker, a schedule, a unique key, worker limits and a token of each role, and dumped its
//! database as plain SQL (one dump per backend, with a manifest saying which task is which).
//! Here that dump is loaded into a new home of this run's backend and today's daemon starts on
//! it: every migration applies, every row reads back with its fields, and everything still runs.

use serde_json::{json, Value};
use stask_tests::{
    test_database, wait_until, workspace, Daemon, Home, ServerDatabase, TestDatabase,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The previous release, whose dumps are in `tests/fixtures/upgrade/`.
const TAG: &str = "v0.1.0";
/// The schema (PostgreSQL) or database (MySQL) name the fixture script dumped from.
const FIXTURE_SCHEMA: &str = "stask_upgrade_fixture";

fn fixture_dir() -> PathBuf {
    workspace().join("tests").join("fixtures").join("upgrade")
}

/// This run's backend as the fixture files and the migrations folders name it.
fn backend() -> &'static str {
    match test_database() {
        TestDatabase::Sqlite => "sqlite",
        TestDatabase::Postgres => "postgres",
        TestDatabase::Mysql => "mysql",
    }
}

/// The fixture of this run's backend: its manifest and its dump.
fn fixture() -> (Value, String) {
    let file = |ext: &str| fixture_dir().join(format!("{TAG}.{}.{ext}", backend()));
    let manifest = std::fs::read_to_string(file("json")).expect("the fixture's manifest");
    let dump = std::fs::read_to_string(file("sql")).expect("the fixture's dump");
    (
        serde_json::from_str(&manifest).expect("manifest JSON"),
        dump,
    )
}

/// Loads a dump into the (empty) database of `home`, as an operator restoring a backup would,
/// without the database's own command-line client (CI may not have it).
fn load_dump(home: &Home, dump: &str) {
    match home.server_database() {
        None => {
            std::fs::create_dir_all(home.storage()).unwrap();
            let db = rusqlite::Connection::open(home.storage().join("stask.db")).unwrap();
            db.execute_batch(dump).expect("loading the SQLite dump");
        }
        Some(ServerDatabase::Postgres(schema)) => {
            // The dump names its schema in every statement; this home has its own.
            let sql = dump
                .replace(&format!("CREATE SCHEMA {FIXTURE_SCHEMA};"), "")
                .replace(FIXTURE_SCHEMA, schema.name());
            let mut client = schema.client();
            client
                .batch_execute(&sql)
                .expect("loading the PostgreSQL dump");
        }
        Some(ServerDatabase::Mysql(db)) => {
            use mysql::prelude::Queryable;
            let mut conn = db.conn();
            for statement in mysql_statements(dump) {
                conn.query_drop(&statement)
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
        }
    }
}

/// A mysqldump file as single statements: what the `mysql` client does with `DELIMITER`
/// (trigger bodies end their inner statements with `;`) and comment lines.
fn mysql_statements(dump: &str) -> Vec<String> {
    let mut delimiter = ";".to_owned();
    let mut current = String::new();
    let mut statements = Vec::new();
    for line in dump.lines() {
        if let Some(d) = line.strip_prefix("DELIMITER ") {
            delimiter = d.trim().to_owned();
            continue;
        }
        if current.is_empty() && (line.starts_with("--") || line.trim().is_empty()) {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        let end = current.trim_end();
        if let Some(statement) = end.strip_suffix(delimiter.as_str()) {
            statements.push(statement.to_owned());
            current.clear();
        }
    }
    assert!(
        current.trim().is_empty(),
        "unterminated statement: {current}"
    );
    statements
}

/// The result files the fixture's completed task wrote, put back under `storage/` (a backup
/// of an installation is its database and its storage folder).
fn restore_results(home: &Home) {
    let from = fixture_dir().join(format!("{TAG}.{}.results", backend()));
    copy_tree(&from, &home.storage().join("stask").join("results"));
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).expect("the fixture's results") {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every migration this build knows for the backend, by number: the files of its folder, so
/// a migration added later is checked without editing this test.
fn known_migrations() -> BTreeSet<i64> {
    let dir = workspace().join("migrations").join(backend());
    let versions: BTreeSet<i64> = std::fs::read_dir(&dir)
        .expect("the migrations folder")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
        })
        .collect();
    assert!(versions.len() >= 14, "{}: {versions:?}", dir.display());
    versions
}

fn id(manifest: &Value, name: &str) -> i64 {
    manifest["tasks"][name]
        .as_i64()
        .unwrap_or_else(|| panic!("{name} in the manifest"))
}

fn detail(daemon: &Daemon, id: i64) -> Value {
    let r = daemon.get(&format!("/stask/tasks/{id}"));
    assert_eq!(r.status, 200, "task {id}: {:?}", r.body);
    r.body
}

fn log_lines(detail: &Value) -> Vec<String> {
    detail["log"]
        .as_array()
        .expect("log")
        .iter()
        .map(|l| l["line"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_current_daemon_takes_over_a_v0_1_0_database() {
    let (manifest, dump) = fixture();
    let home = Home::unmigrated(
        &["demo", "product", "email_campaign", "system"],
        ServerDatabase::for_run(),
    );
    load_dump(&home, &dump);
    restore_results(&home);
    let admin = manifest["tokens"]["admin"].as_str().unwrap().to_owned();
    let daemon = home.serve_with_token(admin.clone());

    // Every migration this build knows is applied, the ones after the release included.
    let applied: BTreeSet<i64> = home
        .query_sql("SELECT version FROM s_schema_migrations")
        .into_iter()
        .filter_map(|row| row[0].as_deref()?.parse().ok())
        .collect();
    let known = known_migrations();
    assert!(
        known.is_subset(&applied),
        "known {known:?}, applied {applied:?}"
    );

    // The finished tasks, with their fields.
    let completed = detail(&daemon, id(&manifest, "completed"));
    let task = &completed["task"];
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["progress"], 100);
    assert_eq!(task["attempts"], 1);
    assert_eq!(task["started_by"], 7);
    assert_eq!(task["meta"]["steps"], 4);
    assert_eq!(task["result"], "wrote report.txt");
    assert_eq!(task["result_file"], "report.txt");
    let lines = log_lines(&completed);
    assert!(lines.iter().any(|l| l == "step 4 done"), "{lines:?}");
    let url = task["download_url"].as_str().expect("download_url");
    let file = daemon.get(url.trim_start_matches(&daemon.base));
    assert_eq!(file.status, 200, "{:?}", file.body);
    assert_eq!(file.raw, b"fixture report\n");

    let failed = daemon.task(id(&manifest, "failed"));
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["max_attempts"], 1);
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("planned permanent failure")),
        "{failed}"
    );
    let cancelled = daemon.task(id(&manifest, "cancelled"));
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["attempts"], 0);

    // The scheduled one still waits for its time and holds its unique key.
    let scheduled_id = id(&manifest, "scheduled");
    let scheduled = daemon.task(scheduled_id);
    assert_eq!(scheduled["status"], "pending", "{scheduled}");
    assert_eq!(scheduled["priority"], "high");
    assert_eq!(scheduled["waiting_for"], "scheduled");
    assert!(
        scheduled["start_at"]
            .as_str()
            .is_some_and(|s| s.starts_with("2100-01-01")),
        "{scheduled}"
    );
    let key = manifest["unique_key"].as_str().unwrap();
    assert_eq!(scheduled["unique_key"], key);
    let again = daemon.post(
        "/stask/workers/demo/tasks/run",
        &json!({"steps": 1, "unique_key": key}),
    );
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["id"], scheduled_id);

    // Workers: the pause and the limits are kept.
    let paused_worker = manifest["paused_worker"].as_str().unwrap();
    let worker = daemon.get(&format!("/stask/workers/{paused_worker}"));
    assert_eq!(worker.status, 200, "{:?}", worker.body);
    assert_eq!(worker.body["worker"]["paused"], true, "{:?}", worker.body);
    let settings = daemon.get("/stask/workers/demo/settings");
    assert_eq!(settings.status, 200, "{:?}", settings.body);
    let stored = settings.body["settings"].clone();
    assert_eq!(stored["concurrency"], 2, "{stored}");
    assert_eq!(stored["action_concurrency"]["run"], 2, "{stored}");
    assert_eq!(stored["rate_limit"], "100/s", "{stored}");

    // The tokens log in with their roles, and the roles still hold.
    for role in ["admin", "operate", "read"] {
        let token = manifest["tokens"][role].as_str().unwrap();
        let login = daemon.request_as(
            None,
            "POST",
            "/stask/login",
            Some(&json!({ "token": token }).to_string()),
        );
        assert_eq!(login.status, 200, "{role}: {:?}", login.body);
        assert_eq!(login.body["role"], role);
    }
    let read = manifest["tokens"]["read"].as_str().unwrap();
    let operate = manifest["tokens"]["operate"].as_str().unwrap();
    let create = |token: &str| {
        daemon.request_as(
            Some(token),
            "POST",
            "/stask/workers/demo/tasks/noop",
            Some("{}"),
        )
    };
    assert_eq!(
        daemon
            .request_as(Some(read), "GET", "/stask/tasks", None)
            .status,
        200
    );
    assert_eq!(create(read).status, 403);
    let by_operate = create(operate);
    assert_eq!(by_operate.status, 201, "{:?}", by_operate.body);
    let put = |token: &str| {
        daemon.request_as(
            Some(token),
            "PUT",
            "/stask/workers/demo/settings",
            Some(&stored.to_string()),
        )
    };
    assert_eq!(put(operate).status, 403);
    let by_admin = put(&admin);
    assert_eq!(by_admin.status, 200, "{:?}", by_admin.body);

    // What was pending runs; so does a task created now.
    for pending in manifest["tasks"]["pending"].as_array().unwrap() {
        let done = daemon.wait_finished(pending.as_i64().unwrap());
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["attempts"], 1);
    }
    let new = daemon.wait_finished(by_operate.body["id"].as_i64().unwrap());
    assert_eq!(new["status"], "completed", "{new}");

    // The run killed with its host is recovered and runs again (its first attempt counted, its
    // log kept), then a cancel stops it.
    let killed_id = id(&manifest, "killed");
    let rerun = daemon.wait_task(killed_id, Duration::from_secs(60), |t| {
        t["status"] == "running" && t["attempts"].as_u64() >= Some(2)
    });
    assert_eq!(rerun["max_attempts"], 3);
    let lines = log_lines(&detail(&daemon, killed_id));
    assert!(lines.iter().any(|l| l == "step 1 done"), "{lines:?}");
    let cancel = daemon.post(&format!("/stask/tasks/{killed_id}/cancel"), &json!({}));
    assert_eq!(cancel.status, 200, "{:?}", cancel.body);
    let stopped = daemon.wait_finished(killed_id);
    assert_eq!(stopped["status"], "cancelled", "{stopped}");

    // The schedule still fires.
    let name = manifest["schedule"]["name"].as_str().unwrap();
    let fired_before = manifest["schedule"]["last_task_id"].as_i64().unwrap();
    let mut fired = 0;
    wait_until("the schedule to fire", Duration::from_secs(30), || {
        let list = daemon.get("/stask/schedules");
        let schedule = list.body["schedules"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_else(|| panic!("schedule {name}: {:?}", list.body));
        fired = schedule["last_task_id"].as_i64().unwrap_or(0);
        fired > fired_before
    });
    let from_schedule = daemon.wait_finished(fired);
    assert_eq!(from_schedule["status"], "completed", "{from_schedule}");
    assert_eq!(from_schedule["meta"]["from"], "schedule");

    // The dependants still wait for their parent (on the paused worker, while other tasks of
    // their own worker ran), and run in order once it completed.
    let (parent, child, grandchild) = (
        id(&manifest, "paused"),
        id(&manifest, "child"),
        id(&manifest, "grandchild"),
    );
    let waiting = daemon.task(parent);
    assert_eq!(waiting["status"], "pending", "{waiting}");
    assert_eq!(waiting["paused"], true, "{waiting}");
    for dependant in [child, grandchild] {
        let task = detail(&daemon, dependant);
        assert_eq!(task["task"]["status"], "pending", "{task}");
        assert_eq!(task["task"]["waiting_for"], "dependencies", "{task}");
    }
    let deps = detail(&daemon, child)["task"]["dependencies"].clone();
    assert_eq!(deps["depends_on"], json!([parent]), "{deps}");
    assert_eq!(deps["dependants"], json!([grandchild]), "{deps}");
    let resume = daemon.post(
        &format!("/stask/workers/{paused_worker}/resume"),
        &json!({}),
    );
    assert_eq!(resume.status, 200, "{:?}", resume.body);
    let mut finished_at = String::new();
    for task in [parent, child, grandchild] {
        let done = daemon.wait_finished(task);
        assert_eq!(done["status"], "completed", "{done}");
        let started = done["started_at"].as_str().unwrap().to_owned();
        assert!(
            started >= finished_at,
            "task {task} started before its parent ended"
        );
        finished_at = done["finished_at"].as_str().unwrap().to_owned();
    }
    assert_eq!(daemon.terminate(), 0);
}
