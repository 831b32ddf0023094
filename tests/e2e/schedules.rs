//! Recurring schedules end to end, on the run's database: created over the API, a schedule
//! every second creates one task per slot; disabling stops it (and enabling does not catch up
//! on the time it was off); delete; bad input answered 4xx with the reason; `[[schedules]]`
//! of stask.toml loaded at start and upserted by name; one catch-up run after a restart.

use serde_json::{json, Value};
use stask_tests::{wait_until, Daemon, Home};
use std::time::Duration;

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .timestamp_millis()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The `start_at` (UNIX ms) of every task, oldest first.
fn task_slots(d: &Daemon) -> Vec<i64> {
    let r = d.get("/stask/tasks?per_page=500");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut slots: Vec<i64> = r.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            ms(t["start_at"]
                .as_str()
                .expect("a scheduled task has start_at"))
        })
        .collect();
    slots.sort_unstable();
    slots
}

fn schedule(d: &Daemon, id: i64) -> Value {
    let r = d.get(&format!("/stask/schedules/{id}"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["schedule"].clone()
}

fn every_second(name: &str) -> Value {
    json!({
        "name": name, "identifier": "demo", "action": "noop", "cron": "* * * * * *",
        "timezone": "Europe/Berlin", "data": {"k": 1}, "priority": "high",
        "unique_key": "tick"
    })
}

#[test]
fn a_schedule_every_second_creates_one_task_per_slot_until_disabled_and_deleted() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let before = now_ms();
    let r = d.post("/stask/schedules", &every_second("tick"));
    assert_eq!(r.status, 201, "{:?}", r.body);
    let s = &r.body["schedule"];
    let id = s["id"].as_i64().unwrap();
    assert_eq!(s["source"], "api");
    assert_eq!(
        (s["enabled"].clone(), s["catch_up"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(s["unique_key"], "tick");
    assert_eq!(s["last_run_at"], Value::Null);
    let next = ms(s["next_run_at"].as_str().unwrap());
    assert!(next > before && next <= now_ms() + 1_000, "{s}");

    wait_until("four slots", Duration::from_secs(20), || {
        task_slots(&d).len() >= 4
    });
    let slots = task_slots(&d);
    assert!(
        slots.windows(2).all(|w| w[1] - w[0] == 1_000),
        "one task per second, none twice, none missing: {slots:?}"
    );
    assert!(slots.iter().all(|s| s % 1_000 == 0 && *s > before - 1_000));
    let tasks = d.get("/stask/tasks?per_page=500").body["tasks"].clone();
    for t in tasks.as_array().unwrap() {
        assert_eq!(
            (t["identifier"].as_str(), t["action"].as_str()),
            (Some("demo"), Some("noop"))
        );
        assert_eq!(t["priority"], "high");
    }
    let first = tasks.as_array().unwrap()[0]["id"].as_i64().unwrap();
    assert_eq!(d.wait_finished(first)["status"], "completed");
    let s = schedule(&d, id);
    let last = ms(s["last_run_at"].as_str().unwrap());
    assert!(last >= slots[3], "{s}");
    assert!(ms(s["next_run_at"].as_str().unwrap()) > last, "{s}");
    assert!(s["last_task_id"].as_i64().is_some(), "{s}");

    // Disabled: no slot after the answer creates a task.
    let r = d.post(&format!("/stask/schedules/{id}/disable"), &json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["schedule"]["enabled"], false);
    assert_eq!(r.body["schedule"]["next_run_at"], Value::Null);
    let disabled_at = now_ms();
    // Absence cannot be awaited: give the schedule two slots' time to (wrongly) fire.
    std::thread::sleep(Duration::from_millis(2_500));
    let off = task_slots(&d);
    assert!(
        off.iter().all(|&s| s <= disabled_at),
        "fired while disabled: {off:?}"
    );

    // Enabled again: it fires from the next slot on, without catching up the time it was off.
    let r = d.post(&format!("/stask/schedules/{id}/enable"), &json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let enabled_at = now_ms();
    wait_until("a slot after enabling", Duration::from_secs(10), || {
        task_slots(&d).len() > off.len()
    });
    let on = task_slots(&d);
    assert!(
        on[off.len()..].iter().all(|&s| s > enabled_at - 1_000),
        "the time it was off was caught up: {on:?} (enabled at {enabled_at})"
    );

    // Replaced: a new expression and data apply to the next slots.
    let mut changed = every_second("tick");
    changed["data"] = json!({"k": 2});
    changed["cron"] = json!("*/2 * * * * *");
    let r = d.request(
        "PUT",
        &format!("/stask/schedules/{id}"),
        Some(&changed.to_string()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["schedule"]["cron"], "*/2 * * * * *");
    assert_eq!(r.body["schedule"]["data"], json!({"k": 2}));
    let listed = d.get("/stask/schedules");
    assert_eq!(listed.body["schedules"].as_array().unwrap().len(), 1);

    // Deleted: gone, and it fires no more; its tasks stay.
    let r = d.request("DELETE", &format!("/stask/schedules/{id}"), None);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["schedule"]["name"], "tick");
    let kept = task_slots(&d).len();
    assert_eq!(d.get(&format!("/stask/schedules/{id}")).status, 404);
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(task_slots(&d).len(), kept, "a deleted schedule fired");
}

#[track_caller]
fn refused(r: &stask_tests::Reply, status: u16, says: &str) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(r.body["success"], false, "{:?}", r.body);
    let message = r.body["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{says:?} not in {message:?}");
}

#[test]
fn bad_schedules_are_refused_with_the_reason() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let with = |key: &str, value: Value| {
        let mut body = every_second("bad");
        body[key] = value;
        d.post("/stask/schedules", &body)
    };
    refused(
        &with("identifier", json!("nope")),
        404,
        "unknown worker 'nope'",
    );
    refused(&with("action", json!("fly")), 404, "unknown action 'fly'");
    refused(&with("cron", json!("* * *")), 422, "bad cron expression");
    refused(&with("cron", json!("* * * * * * *")), 422, "7 fields");
    refused(
        &with("cron", json!("99 * * * *")),
        422,
        "bad cron expression",
    );
    refused(
        &with("timezone", json!("Mars/Olympus")),
        422,
        "unknown time zone 'Mars/Olympus'",
    );
    refused(&with("data", json!([1])), 422, "must be a JSON object");
    refused(&with("priority", json!("urgent")), 422, "unknown priority");
    refused(&with("max_attempts", json!(0)), 422, "max_attempts");
    refused(&with("colour", json!("red")), 422, "unknown field `colour`");
    refused(
        &d.request("POST", "/stask/schedules", Some("{nope")),
        400,
        "malformed JSON",
    );
    refused(
        &d.request("GET", "/stask/schedules/zero", None),
        400,
        "invalid schedule id",
    );
    for (method, path) in [
        ("GET", "/stask/schedules/999"),
        ("DELETE", "/stask/schedules/999"),
        ("POST", "/stask/schedules/999/enable"),
        ("POST", "/stask/schedules/999/disable"),
    ] {
        refused(
            &d.request(method, path, Some("{}")),
            404,
            "unknown schedule 999",
        );
    }
    let body = every_second("x").to_string();
    refused(
        &d.request("PUT", "/stask/schedules/999", Some(&body)),
        404,
        "unknown schedule 999",
    );

    let r = d.post("/stask/schedules", &every_second("taken"));
    assert_eq!(r.status, 201, "{:?}", r.body);
    refused(
        &d.post("/stask/schedules", &every_second("taken")),
        409,
        "already exists",
    );
    assert_eq!(
        d.get("/stask/schedules").body["schedules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A daily 02:30 in Berlin and an unknown worker's entry: the first is stored at start
/// (`source: config`), the second skipped with the reason in the log; a change over the API
/// makes it `api`, and the next start writes the file's version over it (same id).
#[test]
fn stask_toml_schedules_are_loaded_at_start_and_upserted_by_name() {
    let home = Home::with_workers(&["demo"]);
    std::fs::write(
        home.path().join("stask.toml"),
        r#"
[[schedules]]
name = "nightly"
identifier = "demo"
action = "noop"
cron = "30 2 * * *"
timezone = "Europe/Berlin"
data = { report = "daily", days = 1 }
catch_up = false

[[schedules]]
name = "stale"
identifier = "gone"
action = "noop"
cron = "@hourly"
"#,
    )
    .unwrap();
    let d = home.serve();
    d.log
        .wait_for(Duration::from_secs(10), |l| {
            l.contains("schedule 'stale' not loaded")
        })
        .unwrap_or_else(|| panic!("no error for the stale entry:\n{}", d.log.text()));
    let list = d.get("/stask/schedules").body["schedules"].clone();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let nightly = &list[0];
    assert_eq!(nightly["name"], "nightly");
    assert_eq!(nightly["source"], "config");
    assert_eq!(nightly["timezone"], "Europe/Berlin");
    assert_eq!(nightly["data"], json!({"report": "daily", "days": 1}));
    assert_eq!(nightly["catch_up"], false);
    assert_eq!(nightly["priority"], "normal");
    assert_eq!(nightly["max_attempts"], 3);
    // 02:30 in Berlin is 01:30 UTC in winter (CET), 00:30 in summer (CEST).
    let next = nightly["next_run_at"].as_str().unwrap();
    assert!(
        next.ends_with("T01:30:00.000Z") || next.ends_with("T00:30:00.000Z"),
        "{nightly}"
    );
    let id = nightly["id"].as_i64().unwrap();

    let body = json!({"name": "nightly", "identifier": "demo", "action": "noop",
                      "cron": "0 3 * * *", "timezone": "UTC"});
    let r = d.request(
        "PUT",
        &format!("/stask/schedules/{id}"),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["schedule"]["source"], "api");
    assert_eq!(d.terminate(), 0);

    let d = home.serve();
    let again = schedule(&d, id);
    assert_eq!(again["source"], "config", "{again}");
    assert_eq!(again["cron"], "30 2 * * *");
    assert_eq!(again["timezone"], "Europe/Berlin");
    assert_eq!(
        d.get("/stask/schedules").body["schedules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(d.terminate(), 0);

    // A bad expression in the file keeps the daemon from starting, naming the entry.
    std::fs::write(
        home.path().join("stask.toml"),
        "[[schedules]]\nname = \"broken\"\nidentifier = \"demo\"\naction = \"noop\"\ncron = \"61 * * * *\"\n",
    )
    .unwrap();
    let out = home.cli(&["serve"]);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr
            .contains("schedule 'broken' in stask.toml: bad cron expression"),
        "{out:?}"
    );
}

/// Two hourly schedules whose last five hours passed while no host ran (their `fire_after`
/// moved back while the daemon was stopped): at the restart, the one with `catch_up` runs its
/// latest missed slot once; the one without runs nothing; a further restart runs nothing more.
#[test]
fn a_missed_slot_runs_once_at_the_restart_with_catch_up_and_never_without() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let mut skip = every_second("a-skip");
    skip["cron"] = json!("@hourly");
    skip["catch_up"] = json!(false);
    let mut catch = every_second("b-catch");
    catch["cron"] = json!("@hourly");
    let skip_id = d.post("/stask/schedules", &skip).body["schedule"]["id"]
        .as_i64()
        .unwrap();
    let catch_id = d.post("/stask/schedules", &catch).body["schedule"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(d.terminate(), 0);
    assert!(task_slots_sql(&home).is_empty());
    home.execute_sql("UPDATE s_schedules SET fire_after = fire_after - 18000000");

    let started = now_ms();
    let d = home.serve();
    wait_until("the catch-up run", Duration::from_secs(15), || {
        !task_slots(&d).is_empty()
    });
    let latest_hour = started / 3_600_000 * 3_600_000;
    assert_eq!(
        task_slots(&d),
        vec![latest_hour],
        "one run, for the latest missed slot"
    );
    let caught = schedule(&d, catch_id);
    assert_eq!(ms(caught["last_run_at"].as_str().unwrap()), latest_hour);
    assert_eq!(
        ms(caught["next_run_at"].as_str().unwrap()),
        latest_hour + 3_600_000
    );
    // The schedules are handled in name order in one pass: the skipped one came first.
    let skipped = schedule(&d, skip_id);
    assert_eq!(skipped["last_run_at"], Value::Null, "{skipped}");
    assert_eq!(
        ms(skipped["next_run_at"].as_str().unwrap()),
        latest_hour + 3_600_000
    );
    assert_eq!(d.terminate(), 0);

    let d = home.serve();
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(task_slots(&d), vec![latest_hour], "no second catch-up");
}

/// Task count straight from the database (no daemon running).
fn task_slots_sql(home: &Home) -> Vec<Vec<Option<String>>> {
    home.query_sql("SELECT id FROM s_tasks")
}
