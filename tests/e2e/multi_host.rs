//! Several hosts on one queue, on PostgreSQL and on MariaDB: three `stask serve` daemons, each
//! with its own home and plugins.d/, share one database. 10,000 tasks (some created over each
//! API, the bulk written straight into the table with only the original product's columns) run
//! exactly once per attempt; one host is killed with SIGKILL mid-run and the others finish its
//! tasks; nothing is lost or duplicated.
//!
//! Runs against the local PostgreSQL and MariaDB (CI has them; `tests/setup.sh` starts them)
//! in every `cargo test --workspace`; fails with a clear message when a server is unreachable.

use serde_json::{json, Value};
use stask_tests::{Daemon, Home, MysqlDatabase, PgSchema, ServerDatabase};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const TASKS: usize = 10_000;
/// Of those, created through each host's API.
const API_TASKS: usize = 20;
/// Leases: a dead host's tasks are taken over within about this long. Short enough for a
/// quick test, long enough that a live host starved of CPU on a loaded 2-core machine (three
/// debug daemons, PostgreSQL and the test) still heartbeats in time: a live lease is never
/// taken, and this test checks that exactly.
const LEASE_MS: &str = "10000";

fn stats(d: &Daemon) -> Value {
    let r = d.get("/stask/stats");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

fn hosts(d: &Daemon) -> Vec<Value> {
    let r = d.get("/stask/hosts");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["hosts"].as_array().cloned().unwrap_or_default()
}

/// Lines of the shared ledger: `(kind, task id, attempt)`.
fn ledger(path: &std::path::Path) -> Vec<(String, i64, i64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let kind = parts.next().expect("kind").to_owned();
            let id = parts.next().and_then(|v| v.parse().ok()).expect("id");
            let attempt = parts.next().and_then(|v| v.parse().ok()).expect("attempt");
            (kind, id, attempt)
        })
        .collect()
}

#[test]
fn three_hosts_run_every_task_once_and_take_over_a_killed_host() {
    three_hosts_share_a_queue(ServerDatabase::Postgres(PgSchema::create()));
}

#[test]
fn three_hosts_run_every_task_once_on_mariadb_too() {
    three_hosts_share_a_queue(ServerDatabase::Mysql(MysqlDatabase::create()));
}

/// Integers of a query's rows (NULL as 0).
fn ints(home: &Home, sql: &str) -> Vec<Vec<i64>> {
    home.query_sql(sql)
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|v| v.map_or(0, |v| v.parse().expect("an integer")))
                .collect()
        })
        .collect()
}

fn three_hosts_share_a_queue(database: ServerDatabase) {
    let started = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    let ledger_path = scratch.path().join("ledger.txt");
    let homes: Vec<Home> = (0..3)
        .map(|_| {
            let mut home = Home::on_server_database(&["demo"], database.clone());
            home.set_env("STASK_LEASE_MS", LEASE_MS);
            home.set_env("STASK_WORKERS", "2");
            home
        })
        .collect();
    // The first host migrates the schema; the others start on it together.
    let a = homes[0].serve();
    let (b, c) = std::thread::scope(|s| {
        let b = s.spawn(|| homes[1].serve());
        let c = s.spawn(|| homes[2].serve());
        (b.join().unwrap(), c.join().unwrap())
    });
    let daemons = [&a, &b, &c];

    // Every host is registered, live, and runs the demo worker.
    let listed = hosts(&a);
    assert_eq!(listed.len(), 3, "{listed:?}");
    for h in &listed {
        assert_eq!(h["live"], true, "{h}");
        assert_eq!(h["workers"], json!(["demo"]), "{h}");
    }
    let b_name = hosts(&b)
        .into_iter()
        .find(|h| h["this_host"] == true)
        .and_then(|h| h["name"].as_str().map(str::to_owned))
        .expect("b lists itself");

    // 10,000 short tasks: a few through each host's API, the bulk as a producer would write
    // them, straight into the table in one transaction (one NOTIFY wakes every host).
    let data = json!({"steps": 1, "sleep_ms": 1, "ledger": ledger_path.to_str().unwrap()});
    let mut ids: Vec<i64> = Vec::new();
    for d in daemons {
        for _ in 0..API_TASKS {
            ids.push(d.create("demo", "run", data.clone()));
        }
    }
    // Written with only the original product's columns, as the CMS would: the schema's
    // defaults and triggers fill the rest.
    let bulk = TASKS - ids.len();
    let columns = "INSERT INTO s_tasks (identifier, action, status, meta, max_attempts, priority)";
    let row = format!("SELECT 'demo', 'run', 10, '{data}', 3, 'normal'");
    let inserted = match &database {
        ServerDatabase::Postgres(_) => {
            homes[0].execute_sql(&format!("{columns} {row} FROM generate_series(1, {bulk})"))
        }
        ServerDatabase::Mysql(_) => {
            // Numbers 0..10^4 from four digit tables (no recursion limit to raise).
            let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                          UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 \
                          UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
            homes[0].execute_sql(&format!(
                "{columns} {row} FROM {digits} a, {digits} b, {digits} c, {digits} e \
                 WHERE a.d * 1000 + b.d * 100 + c.d * 10 + e.d < {bulk}"
            ))
        }
    };
    assert_eq!(inserted as usize, bulk);
    let ids: Vec<i64> = ints(&homes[0], "SELECT id FROM s_tasks ORDER BY id")
        .into_iter()
        .map(|r| r[0])
        .collect();
    assert_eq!(ids.len(), TASKS);
    let created = TASKS as i64;

    // All three hosts claim: each is seen holding leases while the queue drains.
    let mut owners: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while owners.len() < 3 {
        for row in homes[0].query_sql(
            "SELECT DISTINCT lease_owner FROM s_tasks
              WHERE status IN (15, 20) AND lease_owner IS NOT NULL",
        ) {
            owners.extend(row.into_iter().flatten());
        }
        assert!(
            Instant::now() < deadline,
            "not every host claimed tasks: {owners:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Kill host B mid-run (a quarter done, a large backlog left: B holds claimed tasks).
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats(&a)["completed"].as_i64().unwrap() < created / 4 {
        assert!(
            Instant::now() < deadline,
            "the queue stalled: {}",
            stats(&a)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (server_port, sessions_of) = match &database {
        ServerDatabase::Postgres(_) => (5432, "SELECT count(*) FROM pg_stat_activity WHERE client_port IN"),
        ServerDatabase::Mysql(_) => (
            3306,
            "SELECT count(*) FROM information_schema.PROCESSLIST WHERE SUBSTRING_INDEX(HOST, ':', -1) IN",
        ),
    };
    let b_ports = b.client_ports_to(server_port);
    assert!(
        !b_ports.is_empty(),
        "B has no connection to the database server"
    );
    b.kill9();
    let killed_at = Instant::now();
    let killed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // A statement B sent just before it died still commits on the server (a claimed task can
    // turn running after the kill), so the snapshot waits until B's sessions have ended.
    let b_sessions = format!(
        "{sessions_of} ({})",
        b_ports
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let live = ints(&homes[0], &b_sessions)[0][0];
        if live == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "B's {live} sessions outlived it");
        std::thread::sleep(Duration::from_millis(10));
    }
    // What B held when it died: its leases stay in the table until they expire. Runs it had
    // started (running) used an attempt; tasks it had only claimed ahead (preparing) did not.
    let mut held: BTreeSet<i64> = BTreeSet::new();
    let mut held_unstarted: BTreeSet<i64> = BTreeSet::new();
    for row in ints(
        &homes[0],
        &format!(
            "SELECT id, status FROM s_tasks WHERE lease_owner = '{b_name}' AND status IN (15, 20)"
        ),
    ) {
        let (id, status) = (row[0], row[1]);
        if status == 20 {
            held.insert(id);
        } else {
            held_unstarted.insert(id);
        }
    }
    assert!(
        !held.is_empty(),
        "B held no task when killed: nothing to take over"
    );

    // The survivors finish everything, B's tasks included.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = stats(&a);
        if s["completed"].as_i64() == Some(created) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all tasks completed: {s}\nA's log:\n{}",
            a.log.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = stats(&c);
    assert_eq!(
        (
            s["failed"].as_i64(),
            s["cancelled"].as_i64(),
            s["pending"].as_i64()
        ),
        (Some(0), Some(0), Some(0)),
        "{s}"
    );

    // The ledger: no attempt ever started twice, none completed twice, every task completed
    // by exactly one attempt's run in the database.
    let lines = ledger(&ledger_path);
    let mut starts: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    let mut dones: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (kind, id, attempt) in &lines {
        match kind.as_str() {
            "start" => *starts.entry((*id, *attempt)).or_default() += 1,
            "done" => dones.entry(*id).or_default().push(*attempt),
            other => panic!("unknown ledger line {other}"),
        }
    }
    let twice: Vec<_> = starts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "attempts started twice: {twice:?}");
    let attempts: BTreeMap<i64, i64> = ints(
        &homes[0],
        "SELECT id, attempts FROM s_tasks WHERE status = 30",
    )
    .into_iter()
    .map(|r| (r[0], r[1]))
    .collect();
    assert_eq!(attempts.len() as i64, created, "every task completed once");
    for id in &ids {
        let final_attempt = attempts[id];
        let done = dones.get(id).cloned().unwrap_or_default();
        assert!(
            done.contains(&final_attempt),
            "task {id}: the stored attempt {final_attempt} has no done line ({done:?})"
        );
        let distinct: BTreeSet<_> = done.iter().collect();
        assert_eq!(distinct.len(), done.len(), "task {id} done twice: {done:?}");
        if final_attempt == 1 {
            assert_eq!(done, vec![1], "task {id}");
        }
    }
    // Exactly the runs B had started when it died were run again (each started attempt of
    // B's counts): no live lease of A or C was ever taken. What B had only claimed ran once,
    // on a survivor, as its first attempt (the lost lease used no attempt).
    for id in &held_unstarted {
        assert_eq!(
            attempts[id], 1,
            "task {id}, claimed by B but not started, used an attempt"
        );
    }
    let rerun: BTreeSet<i64> = attempts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    let extra: Vec<i64> = rerun.difference(&held).copied().collect();
    let missing: Vec<i64> = held.difference(&rerun).copied().collect();
    let why: Vec<String> = if extra.is_empty() {
        Vec::new()
    } else {
        let listed: Vec<String> = extra.iter().map(i64::to_string).collect();
        homes[0]
            .query_sql(&format!(
                "SELECT task_id, attempt, at, line FROM s_task_logs
                  WHERE task_id IN ({}) AND line LIKE 'host:%' ORDER BY task_id, id LIMIT 20",
                listed.join(", ")
            ))
            .into_iter()
            .map(|r| {
                let v: Vec<String> = r.into_iter().map(Option::unwrap_or_default).collect();
                format!("{} #{} @{}: {}", v[0], v[1], v[2], v[3])
            })
            .collect()
    };
    if !extra.is_empty() {
        eprintln!("A's log:\n{}\nC's log:\n{}", a.log.text(), c.log.text());
    }
    assert!(
        extra.is_empty() && missing.is_empty(),
        "re-runs must be exactly B's tasks: {} re-run that B did not hold {extra:?}, {} held \
         but not re-run {missing:?}; killed at {killed_ms}; logs of the extra ones:\n{}",
        extra.len(),
        missing.len(),
        why.join("\n")
    );

    // B is listed as dead once its lease ran out; A and C are live.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = hosts(&a);
        assert_eq!(listed.len(), 3);
        let b_live = listed
            .iter()
            .any(|h| h["name"] == b_name.as_str() && h["live"] == true);
        if !b_live {
            for h in listed.iter().filter(|h| h["name"] != b_name.as_str()) {
                assert_eq!(h["live"], true, "{h}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "B still listed live: {listed:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(killed_at.elapsed() >= Duration::from_millis(1_000));
    eprintln!(
        "multi-host: {} tasks, {} re-run after the kill ({} started by B, {} more claimed by B \
         and run once elsewhere), {:.1} s in all",
        created,
        rerun.len(),
        held.len(),
        held_unstarted.len(),
        started.elapsed().as_secs_f64()
    );
}

/// `stask migrate-to`: an installation's workers, settings, tokens and task history move
/// between all three backends (every ordered pair is one step of the two routes); a host
/// started on each copy answers with the same token and data, and new ids continue after the
/// copied ones. A target that already has tasks is refused unless `--force`, a source server
/// with a live host is refused, and so is the database a home already uses.
#[test]
fn an_installation_moves_from_sqlite_to_postgres_to_mariadb_and_back() {
    an_installation_moves_through(&[
        Some(ServerDatabase::Postgres(PgSchema::create())),
        Some(ServerDatabase::Mysql(MysqlDatabase::create())),
        None,
    ]);
}

#[test]
fn an_installation_moves_from_sqlite_to_mariadb_to_postgres_and_back() {
    an_installation_moves_through(&[
        Some(ServerDatabase::Mysql(MysqlDatabase::create())),
        Some(ServerDatabase::Postgres(PgSchema::create())),
        None,
    ]);
}

/// What a copy must keep: the API's view of the installation.
#[derive(Debug, PartialEq)]
struct Installation {
    stats: Value,
    done: Value,
    later_status: Value,
    timeout_setting: Value,
}

impl Installation {
    fn read(d: &Daemon, done: i64, later: i64) -> Installation {
        let detail = d.get(&format!("/stask/tasks/{done}")).body;
        let settings = d.get("/stask/workers/demo/settings").body;
        Installation {
            stats: stats(d),
            done: json!({"task": detail["task"], "log": detail["log"]}),
            later_status: d.task(later)["status"].clone(),
            timeout_setting: settings["settings"]["timeout"].clone(),
        }
    }
}

/// Starts on SQLite, then moves the installation to each of `route` in turn (`None`: a new
/// home's own SQLite file).
fn an_installation_moves_through(route: &[Option<ServerDatabase>]) {
    let sqlite = Home::on_sqlite(&["demo"]);
    let d = sqlite.serve();
    let token = d.token.clone();
    let r = d.request(
        "PUT",
        "/stask/workers/demo/settings",
        Some(&json!({"timeout": 77}).to_string()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let done = d.create(
        "demo",
        "run",
        json!({"steps": 2, "sleep_ms": 1, "result": "kept", "started_by": 42}),
    );
    let failed = d.create("demo", "run", json!({"fail_permanent": true}));
    let later = d.create(
        "demo",
        "noop",
        json!({"start_at": stask_tests::now_secs() + 86_400}),
    );
    assert_eq!(d.wait_finished(done)["status"], "completed");
    assert_eq!(d.wait_finished(failed)["status"], "failed");
    let before = Installation::read(&d, done, later);
    // The user and the token travel with the task (compared below with the whole detail).
    assert_eq!(before.done["task"]["started_by"], 42, "{:?}", before.done);
    assert!(
        before.done["task"]["token_id"].is_i64(),
        "{:?}",
        before.done
    );
    assert_eq!(before.timeout_setting, 77);
    assert_eq!(d.terminate(), 0);

    let mut from = sqlite;
    for (step, to) in route.iter().enumerate() {
        let home = match to {
            Some(database) => Home::on_server_database(&["demo"], database.clone()),
            None => Home::unmigrated(&["demo"], None),
        };
        let url = match to {
            Some(database) => database.url(),
            None => format!("sqlite://{}", home.storage().join("stask.db").display()),
        };
        let what = format!("step {step}, into {url}");
        let out = from.cli(&["migrate-to", &url]);
        assert_eq!(out.code, 0, "{what}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("copied 3 rows of s_tasks"),
            "{what}: {}",
            out.stdout
        );
        if step == 0 {
            let again = from.cli(&["migrate-to", &url]);
            assert_eq!(
                again.code, 4,
                "a target with tasks is refused: {}",
                again.stderr
            );
            assert!(again.stderr.contains("--force"), "{}", again.stderr);
            let forced = from.cli(&["migrate-to", "--force", &url]);
            assert_eq!(forced.code, 0, "{}", forced.stderr);
            assert!(
                forced.stdout.contains("replaced 3 rows of s_tasks"),
                "{}",
                forced.stdout
            );
        }

        // A host on the copy: the old token works, and everything reads as before.
        let host = home.serve_with_token(token.clone());
        assert_eq!(Installation::read(&host, done, later), before, "{what}");
        if let Some(database) = to {
            // Another home on the same server cannot copy it away while a host runs there.
            let other = Home::on_server_database(&["demo"], database.clone());
            let scratch = Home::unmigrated(&[], None);
            let elsewhere = format!("sqlite://{}", scratch.storage().join("stask.db").display());
            let live = other.cli(&["migrate-to", &elsewhere]);
            assert_eq!(live.code, 4, "{what}: {}{}", live.stdout, live.stderr);
            assert!(live.stderr.contains("still run"), "{what}: {}", live.stderr);
        }
        let last = step + 1 == route.len();
        if last {
            // New ids continue after the copied ones.
            let next = host.create("demo", "noop", json!({}));
            assert!(next > later, "{next} after {later}");
            assert_eq!(host.wait_finished(next)["status"], "completed");
        }
        assert_eq!(host.terminate(), 0, "{what}");
        // The database a home already uses is not a target.
        let same = home.cli(&["migrate-to", &url]);
        assert_eq!(same.code, 5, "{what}: {}", same.stderr);
        from = home;
    }
}

/// The worker row as one host sees it.
fn worker_state(d: &Daemon, identifier: &str) -> String {
    let r = d.get(&format!("/stask/workers/{identifier}"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["worker"]["state"].as_str().unwrap_or("").to_owned()
}

/// Waits until `d` has refreshed its own hosts-registry row `n` more times (its heartbeats).
fn wait_heartbeats(d: &Daemon, n: usize) {
    let own = |d: &Daemon| {
        hosts(d)
            .into_iter()
            .find(|h| h["this_host"] == true)
            .map(|h| h["last_heartbeat"].as_str().unwrap_or("").to_owned())
            .expect("this host is registered")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = own(d);
    let mut seen = 0;
    while seen < n {
        assert!(Instant::now() < deadline, "only {seen} of {n} heartbeats");
        std::thread::sleep(Duration::from_millis(100));
        let now = own(d);
        if now != last {
            seen += 1;
            last = now;
        }
    }
}

/// A worker row is shared by the hosts: a host without the library leaves it loaded while
/// another live host has it, runs nothing of it, and orphans it once no live host has it.
#[test]
fn a_host_without_a_plugin_leaves_the_worker_of_another_loaded() {
    a_host_without_a_plugin_leaves_the_worker_loaded(ServerDatabase::Postgres(PgSchema::create()));
}

#[test]
fn a_host_without_a_plugin_leaves_the_worker_of_another_loaded_on_mariadb() {
    a_host_without_a_plugin_leaves_the_worker_loaded(
        ServerDatabase::Mysql(MysqlDatabase::create()),
    );
}

fn a_host_without_a_plugin_leaves_the_worker_loaded(database: ServerDatabase) {
    let mut with = Home::on_server_database(&["demo"], database.clone());
    let mut without = Home::on_server_database(&[], database);
    for home in [&mut with, &mut without] {
        home.set_env("STASK_LEASE_MS", "3000");
    }
    let a = with.serve();
    // Its start scan finds no demo.so, and its heartbeats (each second) look again.
    let b = without.serve();
    assert_eq!(worker_state(&b, "demo"), "loaded");
    let id = b.create("demo", "noop", json!({}));
    assert_eq!(b.wait_finished(id)["status"], "completed");
    // More than a lease of heartbeats: past the settling time of a fresh load.
    wait_heartbeats(&b, 5);
    assert_eq!(worker_state(&b, "demo"), "loaded");
    assert_eq!(
        b.log.count(|l| l.contains("worker orphaned")),
        0,
        "{}",
        b.log.text()
    );

    // Its only host stops: the next heartbeat of the other one orphans it.
    assert_eq!(a.terminate(), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker_state(&b, "demo") != "orphaned" {
        assert!(Instant::now() < deadline, "{}", b.log.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(b
        .log
        .wait_for(Duration::from_secs(5), |l| l
            .contains("no live host has its library"))
        .is_some());
}

/// Lines of a host's `/stask/events` stream, read on a thread.
fn event_lines(d: &Daemon) -> std::sync::mpsc::Receiver<String> {
    let stream = ureq::get(&format!("{}/stask/events", d.base))
        .set("Authorization", &format!("Bearer {}", d.token))
        .call()
        .expect("event stream");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stream.into_reader()).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The event stream of any host shows the work of all: a task that runs on one host is seen
/// created, progressing and finished on another host's stream (the UI's live updates).
#[test]
fn the_event_stream_of_any_host_shows_the_work_of_all() {
    any_event_stream_shows_the_work_of_all(ServerDatabase::Postgres(PgSchema::create()));
}

#[test]
fn the_event_stream_of_any_host_shows_the_work_of_all_on_mariadb() {
    any_event_stream_shows_the_work_of_all(ServerDatabase::Mysql(MysqlDatabase::create()));
}

fn any_event_stream_shows_the_work_of_all(database: ServerDatabase) {
    let with = Home::on_server_database(&["demo"], database.clone());
    let without = Home::on_server_database(&[], database);
    let a = with.serve();
    let b = without.serve();
    let lines = event_lines(&b);
    let id = a.create("demo", "run", json!({"steps": 5, "sleep_ms": 100}));
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|t| t == "task_finished") {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("events seen for task {id} on the other host: {seen:?}"));
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let event: Value = serde_json::from_str(data.trim()).unwrap();
        if event["id"] == id {
            seen.push(event["type"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        seen.first().map(String::as_str),
        Some("task_created"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|t| t == "task_progress"), "{seen:?}");
    assert_eq!(b.wait_finished(id)["status"], "completed");
}

#[test]
fn three_hosts_fire_each_schedule_slot_once_while_one_is_killed() {
    three_hosts_fire_each_slot_once(ServerDatabase::Postgres(PgSchema::create()));
}

#[test]
fn three_hosts_fire_each_schedule_slot_once_while_one_is_killed_on_mariadb() {
    three_hosts_fire_each_slot_once(ServerDatabase::Mysql(MysqlDatabase::create()));
}

/// A schedule firing every second, in every host's stask.toml, for 20 s while host b is
/// killed with SIGKILL and restarted: every slot from the first to the last created exactly
/// one task (hosts a and c lived throughout, so none is missing), whichever host took it.
fn three_hosts_fire_each_slot_once(database: ServerDatabase) {
    let homes: Vec<Home> = (0..3)
        .map(|_| {
            let mut home = Home::on_server_database(&["demo"], database.clone());
            home.set_env("STASK_WORKERS", "2");
            std::fs::write(
                home.path().join("stask.toml"),
                "[[schedules]]\nname = \"tick\"\nidentifier = \"demo\"\naction = \"noop\"\n\
                 cron = \"* * * * * *\"\n",
            )
            .unwrap();
            home
        })
        .collect();
    let a = homes[0].serve();
    let (b, c) = std::thread::scope(|s| {
        let b = s.spawn(|| homes[1].serve());
        let c = s.spawn(|| homes[2].serve());
        (b.join().unwrap(), c.join().unwrap())
    });
    let schedules = a.get("/stask/schedules").body["schedules"].clone();
    assert_eq!(schedules.as_array().map(Vec::len), Some(1), "{schedules}");
    assert_eq!(schedules[0]["source"], "config");
    let id = schedules[0]["id"].as_i64().unwrap();

    // The scenario's timeline: b dies after 6 s and comes back 4 s later; 20 s in all.
    let begin = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    b.kill9();
    std::thread::sleep(Duration::from_secs(4));
    let b = homes[1].serve();
    std::thread::sleep(Duration::from_secs(20).saturating_sub(begin.elapsed()));
    let r = c.post(&format!("/stask/schedules/{id}/disable"), &json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    for d in [a, b, c] {
        assert_eq!(d.terminate(), 0);
    }

    let slots = ints(
        &homes[0],
        "SELECT slot_at, task_id FROM s_schedule_slots ORDER BY slot_at",
    );
    assert!(slots.len() >= 18, "20 s of slots: {slots:?}");
    let at: Vec<i64> = slots.iter().map(|s| s[0]).collect();
    assert!(
        at.windows(2).all(|w| w[1] - w[0] == 1_000),
        "a slot missing or twice while hosts a and c lived: {at:?}"
    );
    let tasks = ints(
        &homes[0],
        "SELECT COUNT(*), COUNT(DISTINCT start_at) FROM s_tasks",
    );
    assert_eq!(
        tasks[0],
        vec![slots.len() as i64, slots.len() as i64],
        "one task per slot, each at its own slot"
    );
    let task_ids: BTreeSet<i64> = slots.iter().map(|s| s[1]).collect();
    assert_eq!(
        task_ids.len(),
        slots.len(),
        "each slot its own task: {slots:?}"
    );
    let stored = ints(&homes[0], "SELECT id FROM s_tasks ORDER BY id");
    let stored: BTreeSet<i64> = stored.into_iter().map(|r| r[0]).collect();
    assert_eq!(stored, task_ids, "the slots name the tasks there are");
}
