//! The MySQL/MariaDB driver against a real server that misbehaves: bad URLs, wrong
//! credentials and missing databases get a one-line error naming the URL (password masked),
//! and a server restart under a running daemon loses nothing.
//!
//! The restart runs on a private MariaDB (its own data folder and port, from the installed
//! `mariadbd`), so the shared server the other tests use is never stopped.

use serde_json::json;
use stask_tests::{Home, PrivateMariadb};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

#[test]
fn bad_database_urls_get_one_line_errors_naming_the_url_without_its_password() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let db = stask_tests::MysqlDatabase::create();
    let cases = [
        (
            format!("mysql://root:sesame@127.0.0.1:{closed_port}/stask"),
            "a server that is down",
        ),
        (
            "mysql://nobody_here:sesame@127.0.0.1:3306/test".to_owned(),
            "wrong credentials",
        ),
        (
            "mariadb://root:sesame@127.0.0.1:3306/no_such_database_here".to_owned(),
            "a missing database",
        ),
        (
            "mysql://root:sesame@127.0.0.1:notaport/x".to_owned(),
            "a malformed URL",
        ),
    ];
    for (url, what) in cases {
        let mut home = Home::without_database(&[]);
        home.set_env("STASK_DATABASE_URL", &url);
        let out = home.cli(&["migrate"]);
        assert_ne!(out.code, 0, "{what}: {out:?}");
        let stderr = out.stderr.trim();
        assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
        assert!(
            !stderr.contains("sesame"),
            "{what}: the password shows: {stderr}"
        );
        let masked = url.replacen(":sesame", "", 1);
        assert!(
            stderr.contains(&masked) || stderr.contains(&url.replacen("sesame", "***", 1)),
            "{what}: the URL is not named: {stderr}"
        );
    }
    // The right URL works (the cases failed for their own reasons).
    let mut home = Home::without_database(&[]);
    home.set_env("STASK_DATABASE_URL", &db.url());
    let out = home.cli(&["migrate"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_server_restart_under_a_running_daemon_loses_nothing() {
    let mut server = PrivateMariadb::start();
    let scratch = tempfile::tempdir().unwrap();
    let ledger_path = scratch.path().join("ledger.txt");
    let mut home = Home::on_sqlite(&["demo"]);
    home.set_env("STASK_DATABASE_URL", &server.url());
    let out = home.cli(&["migrate"]);
    assert_eq!(out.code, 0, "{out:?}");
    let d = home.serve();

    const TASKS: usize = 300;
    let data = json!({"steps": 2, "sleep_ms": 10, "ledger": ledger_path.to_str().unwrap()});
    let ids: Vec<i64> = (0..TASKS)
        .map(|_| d.create("demo", "run", data.clone()))
        .collect();
    // Mid-run: some done, most still to do.
    let deadline = Instant::now() + Duration::from_secs(60);
    while d.get("/stask/stats").body["completed"]
        .as_i64()
        .unwrap_or(0)
        < 20
    {
        assert!(Instant::now() < deadline, "nothing completed");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    // While it is down, the API says so (a JSON error, never a silent loss) and the daemon
    // keeps running.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let r = d.post("/stask/workers/demo/tasks/run", &data);
        if r.status >= 500 {
            break r;
        }
        assert_eq!(r.status, 201, "{:?}", r.body);
        assert!(
            Instant::now() < deadline,
            "creates still succeed with the server down"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(refused.body["success"], false, "{:?}", refused.body);
    assert!(refused.body["message"].is_string(), "{:?}", refused.body);
    server.start_again();

    // Everything created before the crash completes, each task by one attempt's run.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats = d.get("/stask/stats");
        // Claimed ones (preparing) too: a claim whose start could not be written while the
        // server was down waits for its lease to pass, then runs.
        if stats.status == 200
            && stats.body["pending"] == 0
            && stats.body["preparing"] == 0
            && stats.body["running"] == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queue did not drain after the restart: {:?}\n{}",
            stats.body,
            d.log.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for id in &ids {
        let task = d.task(*id);
        assert_eq!(task["status"], "completed", "task {id}: {task}");
    }
    // The ledger: no attempt of a task started twice.
    let text = std::fs::read_to_string(&ledger_path).unwrap_or_default();
    let mut starts: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    let mut done: BTreeSet<i64> = BTreeSet::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (id, attempt): (i64, i64) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        match parts[0] {
            "start" => *starts.entry((id, attempt)).or_default() += 1,
            _ => {
                done.insert(id);
            }
        }
    }
    let twice: Vec<_> = starts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "attempts started twice: {twice:?}");
    assert!(
        ids.iter().all(|id| done.contains(id)),
        "a task has no done line"
    );
    // The daemon lived through it and still serves.
    assert_eq!(d.get("/stask/stats").status, 200);
    assert_eq!(d.terminate(), 0);
}
