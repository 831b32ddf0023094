//! Follow-up tasks: a running task queues another through `Context::create_task` (the host
//! service `tasks.create`), in the host and from an isolated child process alike; the new
//! task records its parent, the parent's view lists it, and a `unique_key` keeps a retried
//! run from queueing it twice.

use serde_json::{json, Value};
use stask_tests::{Daemon, Home};

/// The demo worker's isolation settings, in the host and in a child process.
const MODES: [&str; 2] = ["in_process", "process"];

fn isolation(d: &Daemon, mode: &str) {
    let r = d.request(
        "PUT",
        "/stask/workers/demo/settings",
        Some(&json!({ "isolation": mode }).to_string()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// A demo run that queues `follow_up` (see the demo worker's docs), with more `data`.
fn parent_data(follow_up: Value, data: Value) -> Value {
    let mut parent = json!({"steps": 1, "sleep_ms": 1, "follow_up": follow_up});
    if let (Value::Object(p), Value::Object(extra)) = (&mut parent, data) {
        p.extend(extra);
    }
    parent
}

/// The follow-ups of `id` as the list filter gives them: (ids oldest first, total).
fn listed_children(d: &Daemon, id: i64) -> (Vec<i64>, i64) {
    let r = d.get(&format!("/stask/tasks?parent_id={id}"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut ids: Vec<i64> = r.body["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_i64().expect("id"))
        .collect();
    ids.sort_unstable();
    (ids, r.body["total"].as_i64().expect("total"))
}

/// The `children` of `id`'s detail.
fn detail_children(d: &Daemon, id: i64) -> Value {
    let r = d.get(&format!("/stask/tasks/{id}"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["children"].clone()
}

#[test]
fn a_follow_up_runs_and_records_its_parent_in_the_host_and_isolated() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let mut family = (0, 0);
    for mode in MODES {
        isolation(&d, mode);
        let parent = d.create(
            "demo",
            "run",
            parent_data(
                json!({"identifier": "demo", "action": "run",
                       "data": {"steps": 1, "sleep_ms": 1, "result": format!("child of {mode}")},
                       "options": {"priority": "high", "max_attempts": 2}}),
                json!({}),
            ),
        );
        let done = d.wait_finished(parent);
        assert_eq!(done["status"], "completed", "{mode}: {done}");
        assert_eq!(
            done["parent_id"],
            Value::Null,
            "{mode}: created over the API"
        );
        let child: i64 = done["result"]
            .as_str()
            .and_then(|r| r.strip_prefix("follow-up "))
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("{mode}: the parent names its follow-up: {done}"));
        let child_done = d.wait_finished(child);
        assert_eq!(child_done["status"], "completed", "{mode}: {child_done}");
        assert_eq!(child_done["result"], format!("child of {mode}"));
        assert_eq!(child_done["parent_id"], parent, "{mode}: {child_done}");
        assert_eq!(child_done["priority"], "high", "{mode}: the options apply");
        assert_eq!(child_done["max_attempts"], 2, "{mode}: {child_done}");
        assert_eq!(
            detail_children(&d, parent),
            json!({"total": 1, "ids": [child]}),
            "{mode}"
        );
        assert_eq!(detail_children(&d, child), json!({"total": 0, "ids": []}));
        assert_eq!(listed_children(&d, parent), (vec![child], 1), "{mode}");
        family = (parent, child);
    }
    // A parent id that is no task id is refused, naming the parameter.
    for bad in ["0", "x", "-3"] {
        let r = d.get(&format!("/stask/tasks?parent_id={bad}"));
        assert_eq!(r.status, 422, "{bad}: {:?}", r.body);
        assert!(
            r.body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("parent_id must be a whole number"),
            "{:?}",
            r.body
        );
    }
    // The CLI shows both sides of the link.
    let (parent, child) = family;
    let shown = home.cli(&["task", "show", &child.to_string()]);
    assert!(
        shown.stdout.contains(&format!("parent    {parent}")),
        "{}",
        shown.stdout
    );
    let shown = home.cli(&["task", "show", &parent.to_string()]);
    assert!(
        shown.stdout.contains(&format!("follow-ups 1: {child}")),
        "{}",
        shown.stdout
    );
}

#[test]
fn a_follow_up_for_an_unknown_worker_fails_the_parent_with_the_hosts_reason() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    for mode in MODES {
        isolation(&d, mode);
        let parent = d.create(
            "demo",
            "run",
            parent_data(
                json!({"identifier": "nope", "action": "run"}),
                json!({"max_attempts": 3}),
            ),
        );
        let done = d.wait_finished(parent);
        assert_eq!(done["status"], "failed", "{mode}: {done}");
        let error = done["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("unknown worker 'nope'") && error.contains("known workers: demo"),
            "{mode}: the host's reason reaches the run: {done}"
        );
        assert_eq!(
            done["attempts"], 1,
            "{mode}: a refused create is permanent, not retried: {done}"
        );
        assert_eq!(listed_children(&d, parent), (vec![], 0), "{mode}");
        // Options out of range are refused the same way, naming the option.
        let parent = d.create(
            "demo",
            "run",
            parent_data(
                json!({"identifier": "demo", "action": "run",
                       "options": {"max_attempts": 0}}),
                json!({}),
            ),
        );
        let done = d.wait_finished(parent);
        assert_eq!(done["status"], "failed", "{mode}: {done}");
        assert!(
            done["last_error"]
                .as_str()
                .unwrap_or_default()
                .contains("max_attempts must be between 1 and 100"),
            "{mode}: {done}"
        );
    }
}

#[test]
fn a_unique_key_follow_up_from_a_retried_run_is_created_once() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    for mode in MODES {
        isolation(&d, mode);
        // The first attempt queues the follow-up and then fails; the second queues it again.
        let retried = |options: Value| {
            let parent = d.create(
                "demo",
                "run",
                parent_data(
                    json!({"identifier": "demo", "action": "run",
                           "data": {"steps": 1, "sleep_ms": 1}, "options": options}),
                    json!({"fail_attempts": 1, "max_attempts": 2}),
                ),
            );
            let done = d.wait_finished(parent);
            assert_eq!(done["status"], "completed", "{mode}: {done}");
            assert_eq!(done["attempts"], 2, "{mode}: {done}");
            parent
        };
        let keyed = retried(json!({"unique_key": format!("notify-{mode}"), "unique_for": 3600}));
        let (ids, total) = listed_children(&d, keyed);
        assert_eq!(total, 1, "{mode}: the key makes one follow-up: {ids:?}");
        let child = d.wait_finished(ids[0]);
        assert_eq!(child["status"], "completed", "{mode}: {child}");
        assert_eq!(child["unique_key"], format!("notify-{mode}"));
        // Without a key, what a failed attempt queued stays, and the retry queues another.
        let plain = retried(json!({}));
        let (ids, total) = listed_children(&d, plain);
        assert_eq!(total, 2, "{mode}: one per attempt: {ids:?}");
        for id in ids {
            assert_eq!(d.wait_finished(id)["parent_id"], plain, "{mode}");
        }
    }
}

#[test]
fn a_product_import_with_notify_mails_its_counts_through_a_follow_up() {
    let home = Home::with_workers(&["product", "email_campaign"]);
    let uploads = home.storage().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(
        uploads.join("p.csv"),
        "sku,name,price,stock,category_id,active\nA-1,Lamp,9.5,3,1,yes\nB-2,Desk,120,1,1,yes\n",
    )
    .unwrap();
    let d = home.serve();
    let import = d.create(
        "product",
        "import",
        json!({"file": "uploads/p.csv", "notify": "ops@example.com"}),
    );
    let done = d.wait_finished(import);
    assert_eq!(done["status"], "completed", "{done}");
    let result: Value = serde_json::from_str(done["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["created"], 2, "{result}");
    let mail = result["notification_task"]
        .as_i64()
        .unwrap_or_else(|| panic!("the result names the follow-up: {result}"));
    let sent = d.wait_finished(mail);
    assert_eq!(sent["status"], "completed", "{sent}");
    assert_eq!(sent["identifier"], "email_campaign");
    assert_eq!(sent["parent_id"], import);
    let outbox = home.storage().join("workers/email_campaign/outbox");
    let messages: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap_or_else(|e| panic!("{}: {e}", outbox.display()))
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("ops@example.com"), "{}", messages[0]);
    assert!(
        messages[0].contains("2 created, 0 updated"),
        "the counts: {}",
        messages[0]
    );
    // Without the e-mail worker the import still completes and says why nothing was sent.
    let home = Home::with_workers(&["product"]);
    let uploads = home.storage().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("p.csv"), "sku,name,price\nA-1,Lamp,9.5\n").unwrap();
    let d = home.serve();
    let import = d.create(
        "product",
        "import",
        json!({"file": "uploads/p.csv", "notify": "ops@example.com"}),
    );
    let done = d.wait_finished(import);
    assert_eq!(done["status"], "completed", "{done}");
    let result: Value = serde_json::from_str(done["result"].as_str().unwrap()).unwrap();
    assert!(
        result["notification_error"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown worker 'email_campaign'"),
        "{result}"
    );
}
