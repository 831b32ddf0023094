//! The audit log (issue 19): every state-changing request leaves one entry saying who, what,
//! when, how it ended and from where, refused ones and failed logins included; reads leave
//! none; `GET /stask/audit` and `stask audit` list them; a clean stop stores what was
//! queued. And a token restricted to workers acts only on their tasks.

use serde_json::{json, Value};
use stask_tests::{now_secs, wait_until, Daemon, Home};
use std::time::Duration;

/// A token made with the CLI (its secret, the last line).
fn token(home: &Home, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let out = home.cli(&all);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.lines().last().unwrap().trim().to_owned()
}

/// Every audit entry, newest first, once `n` are stored (the writer stores them a moment
/// after the answers).
fn entries(d: &Daemon, n: usize) -> Vec<Value> {
    let mut listed = Vec::new();
    wait_until(
        &format!("{n} audit entries"),
        Duration::from_secs(10),
        || {
            let r = d.get("/stask/audit?per_page=500");
            assert_eq!(r.status, 200, "{}", r.body);
            listed = r.body["entries"].as_array().unwrap().clone();
            listed.len() >= n
        },
    );
    listed
}

/// The one entry of `method route` answered `status`.
fn one<'a>(entries: &'a [Value], method: &str, route: &str, status: u16) -> &'a Value {
    let found: Vec<&Value> = entries
        .iter()
        .filter(|e| e["method"] == method && e["route"] == route && e["status"] == status)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one entry of {method} {route} {status} in {entries:#?}"
    );
    found[0]
}

#[test]
fn each_change_leaves_one_entry_with_who_what_and_outcome_and_a_read_none() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let site = token(&home, &["--name", "site", "--role", "operate"]);
    let reader = token(&home, &["--name", "reader", "--role", "read"]);
    let create = "/stask/workers/demo/tasks/run";

    let created = d.request_as(Some(&site), "POST", create, Some(r#"{"steps":1}"#));
    assert_eq!(created.status, 201, "{}", created.body);
    let created_id = created.body["id"].as_i64().unwrap();
    // A read by the same token: never recorded.
    assert_eq!(
        d.request_as(Some(&site), "GET", "/stask/tasks", None)
            .status,
        200
    );
    let later = json!({"start_at": now_secs() + 3600}).to_string();
    let pending = d.request_as(Some(&site), "POST", create, Some(&later));
    assert_eq!(pending.status, 201, "{}", pending.body);
    let pending_id = pending.body["id"].as_i64().unwrap();
    let cancel = format!("/stask/tasks/{pending_id}/cancel");
    assert_eq!(
        d.request_as(Some(&site), "POST", &cancel, Some("{}"))
            .status,
        200
    );
    let refused = d.request_as(Some(&reader), "POST", create, Some("{}"));
    assert_eq!(refused.status, 403, "{}", refused.body);
    let login = d.request_as(
        None,
        "POST",
        "/stask/login",
        Some(r#"{"token":"stask_nope"}"#),
    );
    assert_eq!(login.status, 401, "{}", login.body);
    let settings = d.request(
        "PUT",
        "/stask/workers/demo/settings",
        Some(&json!({"timeout": 30}).to_string()),
    );
    assert_eq!(settings.status, 200, "{}", settings.body);

    let all = entries(&d, 6);
    assert_eq!(
        all.len(),
        6,
        "one entry per change, none for reads: {all:#?}"
    );
    assert!(all.iter().all(|e| e["method"] != "GET"));
    let route = "/stask/workers/{identifier}/tasks/{action}";
    let made: Vec<&Value> = all
        .iter()
        .filter(|e| e["route"] == route && e["status"] == 201)
        .collect();
    assert_eq!(made.len(), 2);
    // Newest first: the second create is listed before the first.
    assert_eq!(made[1]["created_ids"], json!([created_id]));
    assert_eq!(made[0]["created_ids"], json!([pending_id]));
    for e in &made {
        assert_eq!(
            (&e["who"], &e["role"], &e["via_session"]),
            (&json!("site"), &json!("operate"), &json!(false))
        );
        assert_eq!(e["target"], "identifier=demo action=run");
        assert!(
            e["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{e}"
        );
    }
    let cancelled = one(&all, "POST", "/stask/tasks/{id}/cancel", 200);
    assert_eq!(cancelled["who"], "site");
    assert_eq!(cancelled["target"], format!("id={pending_id}"));
    let denied = one(&all, "POST", route, 403);
    assert_eq!(
        (&denied["who"], &denied["role"]),
        (&json!("reader"), &json!("read"))
    );
    assert_eq!(denied["created_ids"], json!([]));
    let failed = one(&all, "POST", "/stask/login", 401);
    assert_eq!(
        (&failed["who"], &failed["token_id"]),
        (&json!("anonymous"), &Value::Null)
    );
    let saved = one(&all, "PUT", "/stask/workers/{identifier}/settings", 200);
    assert_eq!(saved["role"], "admin");
    assert_eq!(saved["target"], "identifier=demo");
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // Filters: the token, the status class, the route.
    let by_site = d.get("/stask/audit?token=site");
    assert_eq!(by_site.body["total"], 3, "{}", by_site.body);
    let client_errors = d.get("/stask/audit?status=4xx");
    assert_eq!(client_errors.body["total"], 2, "{}", client_errors.body);
    let cancels = d.get("/stask/audit?route=/stask/tasks/%7Bid%7D/cancel");
    assert_eq!(cancels.body["total"], 1, "{}", cancels.body);
    let bad = d.get("/stask/audit?status=6xx");
    assert_eq!(bad.status, 422, "{}", bad.body);
    // Only admins read it.
    let as_site = d.request_as(Some(&site), "GET", "/stask/audit", None);
    assert_eq!(as_site.status, 403, "{}", as_site.body);
    assert!(as_site.body["message"]
        .as_str()
        .unwrap()
        .contains("needs the 'admin' role"));

    // The CLI prints the same entries as a table.
    let table = home.cli(&["audit", "--token", "site"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert_eq!(table.stdout.lines().count(), 1 + 3, "{}", table.stdout);
    assert!(
        table.stdout.contains("/stask/tasks/{id}/cancel"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains(&format!("created={created_id}")));
    let since = home.cli(&["audit", "--since", &(now_secs() + 3600).to_string()]);
    assert_eq!(since.code, 0, "{}", since.stderr);
    assert_eq!(
        since.stdout.lines().count(),
        1,
        "nothing after the future: {}",
        since.stdout
    );
}

#[test]
fn entries_queued_at_a_clean_stop_are_stored() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    for _ in 0..30 {
        d.create("demo", "run", json!({"steps": 1}));
    }
    assert_eq!(d.terminate(), 0);
    let out = home.cli(&["audit", "--json", "--limit", "1000"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let created: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["status"] == 201)
        .collect();
    assert_eq!(created.len(), 30, "{}", out.stdout);
}

#[test]
fn a_token_restricted_to_workers_cannot_touch_another_workers_task() {
    let home = Home::with_workers(&["demo", "system"]);
    let d = home.serve();
    let site = token(
        &home,
        &["--name", "site", "--role", "operate", "--workers", "demo"],
    );
    let listed = home.cli(&["token", "list"]);
    assert!(listed.stdout.contains("demo"), "{}", listed.stdout);
    let other = d.create("system", "clean_cache", json!({}));
    d.wait_finished(other);
    let mine_by_admin = d.create("demo", "run", json!({"steps": 1}));

    let as_site = |method: &str, path: &str| d.request_as(Some(&site), method, path, Some("{}"));
    for (method, path) in [
        ("POST", "/stask/workers/system/tasks/clean_cache".to_owned()),
        ("POST", format!("/stask/tasks/{other}/cancel")),
        ("POST", format!("/stask/tasks/{other}/retry")),
        ("DELETE", format!("/stask/tasks/{other}")),
    ] {
        let r = as_site(method, &path);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(r.body["worker"], "system", "{method} {path}: {}", r.body);
        assert!(
            r.body["message"].as_str().unwrap().contains("'system'"),
            "{}",
            r.body
        );
    }
    assert_eq!(d.task(other)["status"], "completed", "untouched");
    // Reads by id of another worker's task are refused too.
    let read = d.request_as(Some(&site), "GET", &format!("/stask/tasks/{other}"), None);
    assert_eq!((read.status, &read.body["worker"]), (403, &json!("system")));
    let worker = d.request_as(Some(&site), "GET", "/stask/workers/system", None);
    assert_eq!(
        worker.status, 200,
        "a worker's description is not a task: {}",
        worker.body
    );
    let mine = as_site("POST", "/stask/workers/demo/tasks/run");
    assert_eq!(mine.status, 201, "{}", mine.body);
    d.wait_finished(mine.body["id"].as_i64().unwrap());
    d.wait_finished(mine_by_admin);
    let retried = as_site("POST", &format!("/stask/tasks/{mine_by_admin}/retry"));
    // Its own worker's task reaches the handler (409: it completed, nothing to retry).
    assert_eq!(retried.status, 409, "{}", retried.body);

    // Its list holds only its workers' tasks; an unrestricted token's holds all.
    let seen = d.request_as(Some(&site), "GET", "/stask/tasks", None);
    assert_eq!(seen.body["total"], 2, "{}", seen.body);
    assert!(seen.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["identifier"] == "demo"));
    assert_eq!(d.get("/stask/tasks").body["total"], 3);

    // Every refusal is in the audit log as the token's, and so is its login.
    let login = d.request_as(
        None,
        "POST",
        "/stask/login",
        Some(&json!({"token": site}).to_string()),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let all = entries(&d, 9);
    let refused: Vec<&Value> = all
        .iter()
        .filter(|e| e["who"] == "site" && e["status"] == 403)
        .collect();
    assert_eq!(refused.len(), 4, "{all:#?}");
    let logged_in = one(&all, "POST", "/stask/login", 200);
    assert_eq!(logged_in["who"], "site");
}

/// Batches name their workers in the body: a token restricted to workers creates a batch only
/// of its workers' tasks, cancels only the batches it created, and the audit entry of a batch
/// names every task it created.
#[test]
fn a_restricted_token_creates_and_cancels_only_batches_of_its_workers() {
    let home = Home::with_workers(&["demo", "system"]);
    let d = home.serve();
    let site = token(
        &home,
        &["--name", "site", "--role", "operate", "--workers", "demo"],
    );
    let later = "2100-01-01T00:00:00Z";
    let batch = |tasks: Value| json!({"tasks": tasks}).to_string();
    let as_site =
        |method: &str, path: &str, body: &str| d.request_as(Some(&site), method, path, Some(body));

    let mixed = batch(json!([
        {"identifier": "demo", "action": "run", "start_at": later},
        {"identifier": "system", "action": "clean_cache", "start_at": later}
    ]));
    let refused = as_site("POST", "/stask/batches", &mixed);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["worker"], "system", "{}", refused.body);
    assert_eq!(d.get("/stask/batches").body["total"], 0, "nothing created");

    let own = batch(json!([
        {"identifier": "demo", "action": "run", "start_at": later},
        {"identifier": "demo", "action": "run", "start_at": later}
    ]));
    let created = as_site("POST", "/stask/batches", &own);
    assert_eq!(created.status, 201, "{}", created.body);
    let own_id = created.body["id"].as_i64().unwrap();
    let task_ids = created.body["task_ids"].clone();

    // The admin's batch of the same worker is not the site's to cancel; its own is.
    let r = d.post(
        "/stask/batches",
        &json!({"tasks": [{"identifier": "demo", "action": "run", "start_at": later}]}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let admins = r.body["id"].as_i64().unwrap();
    let r = as_site("POST", &format!("/stask/batches/{admins}/cancel"), "{}");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = as_site("POST", &format!("/stask/batches/{own_id}/cancel"), "{}");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["cancelled"], 2, "{}", r.body);

    let all = entries(&d, 5);
    let logged: Vec<&Value> = all
        .iter()
        .filter(|e| e["route"] == "/stask/batches" && e["status"] == 201 && e["who"] == "site")
        .collect();
    assert_eq!(logged.len(), 1, "{all:#?}");
    assert_eq!(logged[0]["created_ids"], task_ids, "{}", logged[0]);
    assert_eq!(one(&all, "POST", "/stask/batches", 403)["who"], "site");
}
