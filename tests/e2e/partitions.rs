//! Hosts cut off from their database while they run: three `stask serve` hosts, each in a
//! network namespace of the test's own with a veth link to the database's (see
//! `stask_tests::netns`), share one PostgreSQL or MariaDB database. One host is cut off (the
//! kernel drops all its packets) while it runs tasks longer than a lease; the others take
//! them over, the cut-off host stops those runs itself, and once healed it stores nothing for
//! them, reports the episode, and goes back to work. Every task completes exactly once, and
//! every re-run is a run the cut-off host stopped.
//!
//! Needs root, iproute2 and nftables (`tests/setup.sh` installs them) and the local servers;
//! chooses its databases itself (CI runs it once, in the workspace step).

use serde_json::{json, Value};
use stask_tests::netns::Link;
use stask_tests::{wait_until, Daemon, Home, MysqlDatabase, PgSchema, ServerDatabase};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[test]
fn a_host_cut_off_from_postgres_stops_its_runs_and_the_others_take_them_over() {
    a_host_cut_off(ServerDatabase::Postgres(PgSchema::create()));
}

#[test]
fn a_host_cut_off_from_mariadb_stops_its_runs_and_the_others_take_them_over() {
    a_host_cut_off(ServerDatabase::Mysql(MysqlDatabase::create()));
}

/// `(kind, task id) → count` of the demo ledger's lines.
fn ledger(path: &std::path::Path) -> BTreeMap<(String, i64), usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let mut parts = line.split_whitespace();
        let kind = parts.next().expect("kind").to_owned();
        let id: i64 = parts.next().and_then(|v| v.parse().ok()).expect("id");
        *counts.entry((kind, id)).or_default() += 1;
    }
    counts
}

fn this_host(d: &Daemon) -> Value {
    let r = d.get("/stask/hosts");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let me = r.body["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["this_host"] == true)
        .cloned()
        .expect("the host lists itself");
    json!({"row": me, "contact": r.body["contact"]})
}

/// Task ids the daemon's log says it stopped for want of a provable lease.
fn stopped_runs(d: &Daemon) -> BTreeSet<i64> {
    d.log
        .text()
        .lines()
        .filter(|l| l.contains("stopping the run: its lease cannot be proven"))
        .filter_map(|l| {
            l.split("task=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|id| id.parse().ok())
        })
        .collect()
}

/// Three homes on one database, each with its daemons in a network namespace of its own.
fn three_hosts_behind_links(database: &ServerDatabase, lease_ms: &str) -> (Vec<Link>, Vec<Home>) {
    let links: Vec<Link> = (0..3).map(|_| Link::create()).collect();
    let homes = links
        .iter()
        .map(|link| {
            let mut home = Home::on_server_database(&["demo"], database.clone());
            home.set_env("STASK_LEASE_MS", lease_ms);
            home.set_env("STASK_WORKERS", "2");
            home.behind(link);
            home
        })
        .collect();
    (links, homes)
}

/// Partition rounds per run: 1 in CI; `STASK_PARTITION_ROUNDS=N` for a longer run (each
/// round cuts the next host of the three off, so every host is cut off in turn).
fn rounds() -> usize {
    std::env::var("STASK_PARTITION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn a_host_cut_off(database: ServerDatabase) {
    let scratch = tempfile::tempdir().unwrap();
    let ledger_path = scratch.path().join("ledger.txt");
    let (links, homes) = three_hosts_behind_links(&database, "3000");
    let mut daemons: Vec<Daemon> = homes.iter().map(Home::serve).collect();
    // Tasks of 6 s (two leases) on all hosts.
    let data = json!({"steps": 12, "sleep_ms": 500, "ledger": ledger_path.to_str().unwrap()});
    let mut ids: Vec<i64> = Vec::new();
    let mut stopped: BTreeSet<i64> = BTreeSet::new();
    let rounds = rounds();
    for round in 0..rounds {
        let k = 2 - round % 3;
        let (cut_off, other) = (&daemons[k], &daemons[(k + 1) % 3]);
        let batch: Vec<i64> = (0..12)
            .map(|i| daemons[i % 3].create("demo", "run", data.clone()))
            .collect();
        ids.extend(&batch);
        // The host to cut off runs some of them (its heartbeat says so).
        wait_until(
            "the host to cut off runs tasks",
            Duration::from_secs(30),
            || this_host(cut_off)["row"]["busy_slots"].as_i64() >= Some(1),
        );

        links[k].cut();
        // It notices within a lease and stops its runs; the others take them over.
        let noticed = |n: usize| {
            cut_off.log.wait_count(Duration::from_secs(30), n, |l| {
                l.contains("can no longer prove its leases")
            }) >= n
        };
        let episodes_before = episodes(cut_off);
        assert!(
            noticed(episodes_before + 1),
            "the cut-off host did not notice:\n{}",
            cut_off.log.text()
        );
        for &id in &batch {
            let t = other.wait_task(id, Duration::from_secs(120), |t| {
                matches!(
                    t["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
            });
            assert_eq!(t["status"], "completed", "{t}");
        }

        links[k].heal();
        let back = cut_off
            .log
            .wait_count(Duration::from_secs(60), episodes_before + 1, |l| {
                l.contains("back in contact with the database")
            });
        assert_eq!(
            back,
            episodes_before + 1,
            "the healed host did not say so:\n{}",
            cut_off.log.text()
        );
        let contact = this_host(cut_off)["contact"].clone();
        assert_eq!(contact["lost"], false, "{contact}");
        assert_eq!(contact["episodes"], episodes_before + 1, "{contact}");
        assert!(!contact["last_regained_at"].is_null(), "{contact}");
        let now_stopped = stopped_runs(cut_off);
        let this_round: BTreeSet<i64> = now_stopped
            .iter()
            .copied()
            .filter(|id| batch.contains(id))
            .collect();
        assert!(
            !this_round.is_empty(),
            "it stopped its runs:\n{}",
            cut_off.log.text()
        );
        stopped.extend(this_round);
    }

    // Stored once each: every task completed; every re-run is one a cut-off host stopped,
    // and each start the ledger shows is an attempt the task counts.
    let counts = ledger(&ledger_path);
    let mut reruns = 0;
    for &id in &ids {
        let t = daemons[0].task(id);
        assert_eq!(t["status"], "completed", "{t}");
        let starts = counts.get(&("start".into(), id)).copied().unwrap_or(0);
        assert!(starts >= 1, "task {id} ran: {counts:?}");
        if starts > 1 {
            reruns += starts - 1;
            assert!(
                stopped.contains(&id),
                "task {id} ran {starts} times but no cut-off host stopped it: {stopped:?}"
            );
        }
        assert_eq!(
            t["attempts"].as_u64(),
            Some(starts as u64),
            "task {id}: every start counted once: {t}"
        );
    }
    eprintln!(
        "{rounds} partitions survived, {} tasks checked, {reruns} re-runs, each of a run a \
         cut-off host stopped ({} stopped)",
        ids.len(),
        stopped.len()
    );

    // Back to work: alone, the host cut off last runs new tasks.
    let last = daemons.remove(2 - (rounds - 1) % 3);
    drop(daemons);
    let more: Vec<i64> = (0..4)
        .map(|_| last.create("demo", "run", json!({"steps": 1, "sleep_ms": 1})))
        .collect();
    for id in more {
        assert_eq!(last.wait_finished(id)["status"], "completed");
    }
}

/// The episodes a host's log shows so far.
fn episodes(d: &Daemon) -> usize {
    d.log
        .count(|l| l.contains("can no longer prove its leases"))
}

#[test]
fn a_slow_lossy_link_to_postgres_runs_each_task_once_and_keeps_its_leases() {
    a_slow_lossy_link(ServerDatabase::Postgres(PgSchema::create()));
}

#[test]
fn a_slow_lossy_link_to_mariadb_runs_each_task_once_and_keeps_its_leases() {
    a_slow_lossy_link(ServerDatabase::Mysql(MysqlDatabase::create()));
}

/// One of three hosts behind a link with 100 ms each way (200 ms round trips) and 5 % of its
/// packets lost, under the default lease: no task runs twice, no lease is lost, and the slow
/// host still does its share. The drain times with and without the faults are printed for
/// RELIABILITY.md (not asserted: speed is for benchmarks).
fn a_slow_lossy_link(database: ServerDatabase) {
    let scratch = tempfile::tempdir().unwrap();
    let ledger_path = scratch.path().join("ledger.txt");
    let (links, homes) = three_hosts_behind_links(&database, "30000");
    let daemons: Vec<Daemon> = homes.iter().map(Home::serve).collect();
    let data = json!({"steps": 3, "sleep_ms": 100, "ledger": ledger_path.to_str().unwrap()});
    let drain = |label: &str| -> Vec<i64> {
        let started = std::time::Instant::now();
        let ids: Vec<i64> = (0..60)
            .map(|i| daemons[i % 3].create("demo", "run", data.clone()))
            .collect();
        for &id in &ids {
            let t = daemons[0].wait_task(id, Duration::from_secs(180), |t| {
                matches!(
                    t["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
            });
            assert_eq!(t["status"], "completed", "{t}");
            assert_eq!(t["attempts"], 1, "{t}");
        }
        eprintln!(
            "{label}: 60 tasks of 0.3 s on 3 hosts in {:?}",
            started.elapsed()
        );
        ids
    };
    let mut ids = drain("healthy links");
    links[2].delay(100);
    links[2].lose(5);
    ids.extend(drain("one host at 200 ms round trips and 5 % loss"));
    links[2].heal();

    let counts = ledger(&ledger_path);
    for &id in &ids {
        assert_eq!(
            counts.get(&("start".into(), id)),
            Some(&1),
            "task {id}: {counts:?}"
        );
    }
    for d in &daemons {
        let log = d.log.text();
        assert!(
            !log.contains("can no longer prove its leases") && !log.contains("recovered"),
            "a lease was lost:\n{log}"
        );
    }
}
