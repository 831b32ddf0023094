//! The database server restarts under three running hosts: a PostgreSQL server of the test's
//! own stopped the way `pg_ctlcluster stop` does (fast) and started again, and a MariaDB
//! server of its own killed and started again, mid-run. The hosts reconnect by themselves;
//! creates while the server is away get a 503 with a JSON error (never a 500 or a hang); every
//! task accepted before or during the outage completes, and no attempt runs twice.
//!
//! Private servers (their own data folders and ports), so the shared ones the other tests use
//! are never stopped.

use serde_json::{json, Value};
use stask_tests::{wait_until, Daemon, Home, PrivateMariadb, PrivatePostgres};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn three_hosts_ride_out_a_postgres_restart() {
    let server = PrivatePostgres::start();
    three_hosts_ride_out(&server.url(), || server.stop(), || server.start_again());
}

#[test]
fn three_hosts_ride_out_a_mariadb_crash_and_restart() {
    let server = std::cell::RefCell::new(PrivateMariadb::start());
    let url = server.borrow().url();
    three_hosts_ride_out(
        &url,
        || server.borrow_mut().kill(),
        || server.borrow_mut().start_again(),
    );
}

fn stats(d: &Daemon) -> Option<Value> {
    let r = d.get("/stask/stats");
    (r.status == 200).then_some(r.body)
}

fn three_hosts_ride_out(url: &str, stop: impl FnOnce(), start: impl FnOnce()) {
    let scratch = tempfile::tempdir().unwrap();
    let ledger_path = scratch.path().join("ledger.txt");
    let homes: Vec<Home> = (0..3)
        .map(|i| {
            let mut home = Home::unmigrated(&["demo"], None);
            home.set_env("STASK_DATABASE_URL", url);
            // The default lease, longer than an outage: the hosts keep their leases through it.
            home.set_env("STASK_LEASE_MS", "30000");
            home.set_env("STASK_WORKERS", "2");
            if i == 0 {
                let out = home.cli(&["migrate"]);
                assert_eq!(out.code, 0, "{out:?}");
            }
            home
        })
        .collect();
    let daemons: Vec<Daemon> = homes.iter().map(Home::serve).collect();

    let data = json!({"steps": 2, "sleep_ms": 10, "ledger": ledger_path.to_str().unwrap()});
    let mut ids: Vec<i64> = (0..300)
        .map(|i| daemons[i % 3].create("demo", "run", data.clone()))
        .collect();
    wait_until("some tasks completed", Duration::from_secs(60), || {
        stats(&daemons[0]).is_some_and(|s| s["completed"].as_i64() >= Some(20))
    });

    stop();
    // While it is away, each host says so in a JSON 503; creates it accepted before it
    // noticed are kept (and must run).
    for d in &daemons {
        let refused = loop {
            let r = d.post("/stask/workers/demo/tasks/run", &data);
            if r.status == 201 {
                ids.push(r.body["id"].as_i64().expect("id"));
                continue;
            }
            break r;
        };
        assert_eq!(refused.status, 503, "{:?}", refused.body);
        assert_eq!(refused.body["success"], false, "{:?}", refused.body);
        assert!(
            refused.body["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot be reached")),
            "{:?}",
            refused.body
        );
    }
    start();

    // Each host reconnects by itself: a create on each is accepted again.
    for d in &daemons {
        wait_until("the host reconnects", Duration::from_secs(60), || {
            let r = d.post("/stask/workers/demo/tasks/run", &data);
            if r.status == 201 {
                ids.push(r.body["id"].as_i64().expect("id"));
            }
            r.status == 201
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let s = stats(&daemons[0]);
        if s.as_ref()
            .is_some_and(|s| s["pending"] == 0 && s["preparing"] == 0 && s["running"] == 0)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queue did not drain: {s:?}\n{}\n---\n{}\n---\n{}",
            daemons[0].log.text(),
            daemons[1].log.text(),
            daemons[2].log.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut starts: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for line in std::fs::read_to_string(&ledger_path).unwrap().lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts[0] == "start" {
            let key = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
            *starts.entry(key).or_default() += 1;
        }
    }
    for &id in &ids {
        let t = daemons[id as usize % 3].task(id);
        assert_eq!(t["status"], "completed", "task {id}: {t}");
    }
    let twice: Vec<_> = starts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "attempts started twice: {twice:?}");
    for d in &daemons {
        assert_eq!(
            d.log.count(|l| l.contains("panicked")),
            0,
            "{}",
            d.log.text()
        );
    }
}
