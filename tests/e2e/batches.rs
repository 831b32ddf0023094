//! Batches, end to end over HTTP: a batch of 1,000 fires its on_complete exactly once with
//! the right counts, a `kill -9` mid-batch loses nothing and still fires it once, a cancel
//! cancels what had not finished (on_complete then runs), and bad batches are refused whole
//! with 422 naming the task. On this run's database (`STASK_TEST_DATABASE`).

use serde_json::{json, Value};
use stask_tests::{now_secs, on_server, wait_until, Daemon, Home};
use std::time::Duration;

/// Creates a batch; returns the answer's body (201 asserted).
fn create_batch(d: &Daemon, body: &Value) -> Value {
    let r = d.post("/stask/batches", body);
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body
}

fn batch(d: &Daemon, id: i64) -> Value {
    let r = d.get(&format!("/stask/batches/{id}"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["batch"].clone()
}

/// Lines of the ledger that start with `what <id> `.
fn count(ledger: &str, what: &str, id: i64) -> usize {
    ledger
        .lines()
        .filter(|l| l.starts_with(&format!("{what} {id} ")))
        .count()
}

#[test]
fn a_batch_of_1000_fires_on_complete_once_with_the_counts() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let ledger = home.path().join("ledger.txt");
    // Every 100th task fails for good; the rest complete at once.
    let tasks: Vec<Value> = (0..1000)
        .map(|i| {
            if i % 100 == 7 {
                json!({"identifier": "demo", "action": "run",
                       "data": {"steps": 1, "sleep_ms": 1, "fail_permanent": true}})
            } else {
                json!({"identifier": "demo", "action": "noop", "data": {"i": i}})
            }
        })
        .collect();
    let created = create_batch(
        &d,
        &json!({
            "name": "thousand",
            "tasks": tasks,
            "on_complete": {"identifier": "demo", "action": "run",
                            "data": {"steps": 1, "sleep_ms": 1, "ledger": ledger}},
        }),
    );
    let id = created["id"].as_i64().unwrap();
    let last = created["on_complete_task_id"].as_i64().unwrap();
    let ids = created["task_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 1000);
    assert_eq!(created["duplicates"], 0);
    let one = d.task(ids[3].as_i64().unwrap());
    assert_eq!(one["batch_id"], id, "{one}");

    let done = d.wait_finished(last);
    assert_eq!(done["status"], "completed", "{done}");
    let b = &done["meta"]["batch"];
    assert_eq!(b["id"], id, "{b}");
    assert_eq!(b["name"], "thousand");
    assert_eq!(
        (&b["total"], &b["completed"], &b["failed"], &b["cancelled"]),
        (&json!(1000), &json!(990), &json!(10), &json!(0)),
        "{b}"
    );
    assert_eq!(b["task_ids"], json!(ids));
    let runs = std::fs::read_to_string(&ledger).unwrap();
    assert_eq!(count(&runs, "start", last), 1, "{runs}");
    assert_eq!(count(&runs, "done", last), 1, "{runs}");

    // Every task had finished before on_complete started.
    let view = batch(&d, id);
    assert_eq!(view["done"], true, "{view}");
    assert_eq!(view["progress"], 100.0, "{view}");
    assert_eq!(view["finished"], 1000, "{view}");
    assert_eq!(view["counts"]["completed"], 990, "{view}");
    assert_eq!(view["counts"]["failed"], 10, "{view}");
    assert_eq!(view["on_complete_task_id"], last, "{view}");
    assert_eq!(view["eta_seconds"], Value::Null, "{view}");
    let page = d.get(&format!("/stask/tasks?batch_id={id}&per_page=5"));
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(
        page.body["total"], 1000,
        "the on_complete task is not in the batch"
    );
    let failed = d.get(&format!("/stask/tasks?batch_id={id}&status=failed"));
    assert_eq!(failed.body["total"], 10);
    let list = d.get("/stask/batches?per_page=10");
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["batches"][0]["id"], id);
}

#[test]
fn a_kill_mid_batch_loses_nothing_and_fires_on_complete_once() {
    let home = Home::with_workers(&["demo"]);
    let token = home.token();
    let d = home.serve_with_token(token.clone());
    let ledger = home.path().join("ledger.txt");
    let step = json!({"steps": 2, "sleep_ms": 30, "ledger": ledger});
    let tasks: Vec<Value> = (0..80)
        .map(|_| json!({"identifier": "demo", "action": "run", "data": step}))
        .collect();
    let created = create_batch(
        &d,
        &json!({"tasks": tasks,
                "on_complete": {"identifier": "demo", "action": "run", "data": step}}),
    );
    let id = created["id"].as_i64().unwrap();
    let last = created["on_complete_task_id"].as_i64().unwrap();
    wait_until(
        "a few batch tasks completed",
        Duration::from_secs(60),
        || batch(&d, id)["counts"]["completed"].as_i64().unwrap() >= 10,
    );
    let before = batch(&d, id);
    assert_eq!(before["done"], false, "{before}");
    d.kill9();

    let d = home.serve_with_token(token);
    let done = d.wait_task(last, Duration::from_secs(120), |t| {
        t["status"] == "completed"
    });
    let b = &done["meta"]["batch"];
    assert_eq!(
        (&b["total"], &b["completed"], &b["failed"], &b["cancelled"]),
        (&json!(80), &json!(80), &json!(0), &json!(0)),
        "{b}"
    );
    let runs = std::fs::read_to_string(&ledger).unwrap();
    for t in created["task_ids"].as_array().unwrap() {
        let t = t.as_i64().unwrap();
        assert_eq!(
            count(&runs, "done", t),
            1,
            "task {t} completed once\n{runs}"
        );
    }
    assert_eq!(
        count(&runs, "start", last),
        1,
        "on_complete ran once\n{runs}"
    );
    assert_eq!(count(&runs, "done", last), 1, "{runs}");
    let attempts = done["attempts"].as_u64().unwrap();
    assert!(attempts == 1 || (on_server() && attempts == 2), "{done}");
    assert_eq!(batch(&d, id)["done"], true);
}

#[test]
fn a_cancelled_batch_cancels_its_unfinished_tasks_and_on_complete_runs() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    // Due next year: all pending when cancelled.
    let later = now_secs() + 365 * 24 * 3600;
    let tasks: Vec<Value> = (0..20)
        .map(|_| json!({"identifier": "demo", "action": "noop", "start_at": later}))
        .collect();
    let created = create_batch(
        &d,
        &json!({"tasks": tasks,
                "on_complete": {"identifier": "demo", "action": "noop", "data": {"k": 1}}}),
    );
    let id = created["id"].as_i64().unwrap();
    let last = created["on_complete_task_id"].as_i64().unwrap();
    let waiting = d.task(last);
    assert_eq!(waiting["waiting_for"], "dependencies", "{waiting}");
    assert_eq!(batch(&d, id)["counts"]["pending"], 20);

    let r = d.post(&format!("/stask/batches/{id}/cancel"), &json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["cancelled"], 20, "{:?}", r.body);
    assert_eq!(r.body["requested"], 0);
    assert!(r.body["batch"]["cancelled_at"].is_string(), "{:?}", r.body);
    for t in created["task_ids"].as_array().unwrap() {
        assert_eq!(d.task(t.as_i64().unwrap())["status"], "cancelled");
    }
    let done = d.wait_finished(last);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["meta"]["k"], 1);
    assert_eq!(done["meta"]["batch"]["cancelled"], 20, "{done}");
    let view = batch(&d, id);
    assert_eq!(view["done"], true);
    assert_eq!(view["counts"]["cancelled"], 20);
    // A second cancel finds nothing left.
    let again = d.post(&format!("/stask/batches/{id}/cancel"), &json!({}));
    assert_eq!(again.status, 200);
    assert_eq!(again.body["cancelled"], 0);
    // Unknown and malformed ids.
    assert_eq!(d.get("/stask/batches/987654").status, 404);
    assert_eq!(
        d.post("/stask/batches/987654/cancel", &json!({})).status,
        404
    );
    for bad in ["0", "abc", "-3"] {
        let r = d.get(&format!("/stask/batches/{bad}"));
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
    }
}

#[test]
fn bad_batches_are_refused_whole_with_422_naming_the_task() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let ok = json!({"identifier": "demo", "action": "noop"});
    let refused = |body: Value| -> Value {
        let r = d.post("/stask/batches", &body);
        assert_eq!(r.status, 422, "{body}: {:?}", r.body);
        assert_eq!(r.body["success"], false);
        r.body
    };
    let r = refused(json!({"tasks": [ok, ok, {"identifier": "nope", "action": "noop"}]}));
    assert_eq!(r["index"], 2, "{r}");
    assert!(
        r["message"].as_str().unwrap().starts_with("tasks[2]: "),
        "{r}"
    );
    let r = refused(
        json!({"tasks": [ok, {"identifier": "demo", "action": "noop",
                                           "priority": "urgent"}]}),
    );
    assert_eq!(r["index"], 1, "{r}");
    let r = refused(json!({"tasks": [{"identifier": "demo", "action": "fly"}]}));
    assert_eq!(r["index"], 0, "{r}");
    let r = refused(
        json!({"tasks": [ok, {"identifier": "demo", "action": "noop",
                                           "depends_on": [987654321]}]}),
    );
    assert_eq!(
        (&r["index"], &r["unknown_ids"]),
        (&json!(1), &json!([987654321])),
        "{r}"
    );
    refused(json!({"tasks": [ok, {"identifier": "demo", "action": "noop", "colour": 1}]}));
    refused(json!({"tasks": [ok, "noop"]}));
    refused(json!({"tasks": []}));
    refused(json!({"tasks": "all"}));
    refused(json!({}));
    refused(json!({"tasks": [ok], "extra": true}));
    refused(json!({"tasks": [ok], "name": 5}));
    // A NUL in the name: PostgreSQL's text cannot hold it, so it is refused before the store.
    let r = refused(json!({"tasks": [ok], "name": "a\u{0}b"}));
    assert!(r["message"].as_str().unwrap().contains("control"), "{r}");
    refused(
        json!({"tasks": [ok], "on_complete": {"identifier": "demo", "action": "noop",
                                                    "depends_on": [1]}}),
    );
    refused(json!({"tasks": [ok], "on_complete": {"identifier": "nope", "action": "noop"}}));
    let too_many: Vec<Value> = (0..10_001).map(|_| ok.clone()).collect();
    let r = refused(json!({"tasks": too_many}));
    assert!(r["message"].as_str().unwrap().contains("10000"), "{r}");
    // Nothing was created by any of them.
    assert_eq!(d.get("/stask/batches").body["total"], 0);
    assert_eq!(d.get("/stask/tasks").body["total"], 0);
    let malformed = d.request("POST", "/stask/batches", Some("{"));
    assert_eq!(malformed.status, 400, "{:?}", malformed.body);
    // The OpenAPI document describes the routes and the error's index.
    let doc = d.get("/stask/openapi.json").body;
    assert!(doc["paths"]["/stask/batches/{id}/cancel"]["post"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"]["properties"]["index"].is_object());
    assert!(doc["components"]["schemas"]["BatchView"].is_object());
}

#[test]
fn the_cli_creates_a_batch_from_a_file_and_shows_it() {
    let home = Home::with_workers(&["demo"]);
    // The daemon registers the workers the CLI checks the tasks against.
    let d = home.serve();
    let file = home.path().join("batch.json");
    let body = json!({
        "name": "from the CLI",
        "tasks": [
            {"identifier": "demo", "action": "noop", "start_at": "2099-01-01T00:00:00Z"},
            {"identifier": "demo", "action": "noop", "start_at": "2099-01-01T00:00:00Z"},
        ],
        "on_complete": {"identifier": "demo", "action": "noop"},
    });
    std::fs::write(&file, body.to_string()).unwrap();
    let out = home.cli(&[
        "batch",
        "create",
        "--file",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let created: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["task_ids"].as_array().unwrap().len(), 2);
    let shown = home.cli(&["batch", "show", &id.to_string()]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(shown.stdout.contains("from the CLI"), "{shown:?}");
    assert!(shown.stdout.contains("pending 2"), "{shown:?}");
    let json = home.cli(&["batch", "show", &id.to_string(), "--json"]);
    let view: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(view["on_complete_task_id"], created["on_complete_task_id"]);
    // A bad task refuses the file whole (exit code 5, naming it).
    std::fs::write(
        &file,
        json!({"tasks": [{"identifier": "demo", "action": "noop"}, {"identifier": "nope", "action": "noop"}]})
            .to_string(),
    )
    .unwrap();
    let bad = home.cli(&["batch", "create", "--file", file.to_str().unwrap()]);
    assert_eq!(bad.code, 5, "{bad:?}");
    assert!(bad.stderr.contains("tasks[1]"), "{bad:?}");
    assert_eq!(home.cli(&["batch", "show", "987654"]).code, 3);
    assert_eq!(batch(&d, id)["name"], "from the CLI");
}
