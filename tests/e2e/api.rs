//! The HTTP contract: authentication on every protected route, the JSON error shape and status
//! of every kind of bad request, downloads, deletes, list filters and statistics.

use serde_json::{json, Value};
use stask_tests::{now_secs, Home, Reply};
use std::time::Duration;

/// Every route behind the token, with a concrete path (task 1 exists in the auth test).
const PROTECTED: &[(&str, &str)] = &[
    ("POST", "/stask/workers/demo/tasks/noop"),
    ("GET", "/stask/workers"),
    ("GET", "/stask/tasks"),
    ("GET", "/stask/tasks/1"),
    ("DELETE", "/stask/tasks/1"),
    ("GET", "/stask/tasks/1/progress"),
    ("GET", "/stask/tasks/1/download"),
    ("POST", "/stask/tasks/1/cancel"),
    ("POST", "/stask/tasks/1/retry"),
    ("GET", "/stask/stats"),
    ("GET", "/stask/hosts"),
    ("GET", "/stask/workers/demo"),
    ("POST", "/stask/workers/demo/activate"),
    ("POST", "/stask/workers/demo/deactivate"),
    ("POST", "/stask/workers/demo/pause"),
    ("POST", "/stask/workers/demo/resume"),
    ("GET", "/stask/workers/demo/settings"),
    ("PUT", "/stask/workers/demo/settings"),
    ("POST", "/stask/workers/discover"),
    ("POST", "/stask/workers/rescan"),
    ("POST", "/stask/workers/clean-orphaned"),
    ("GET", "/stask/events"),
    ("GET", "/stask/tasks/1/events"),
    ("GET", "/stask/schedules"),
    ("POST", "/stask/schedules"),
    ("GET", "/stask/schedules/1"),
    ("PUT", "/stask/schedules/1"),
    ("DELETE", "/stask/schedules/1"),
    ("POST", "/stask/schedules/1/enable"),
    ("POST", "/stask/schedules/1/disable"),
];

/// Asserts the API error shape `{success:false, code:N, message}` with status `status`;
/// returns the message.
#[track_caller]
fn assert_error(r: &Reply, status: u16, what: &str) -> String {
    assert_eq!(r.status, status, "{what}: {:?}", r.body);
    assert!(
        r.content_type.starts_with("application/json"),
        "{what}: error body must be JSON, got {:?}: {:?}",
        r.content_type,
        r.body
    );
    assert_eq!(r.body["success"], false, "{what}: {}", r.body);
    assert_eq!(r.body["code"], status, "{what}: {}", r.body);
    let message = r.body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no message: {}", r.body))
        .to_owned();
    assert!(!message.trim().is_empty(), "{what}: empty message");
    message
}

fn body_for(method: &str) -> Option<&'static str> {
    (method == "POST").then_some("{}")
}

fn ids(reply: &Reply) -> Vec<i64> {
    reply.body["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks array: {}", reply.body))
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn protected_routes_refuse_missing_garbage_and_revoked_tokens() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    // Task 1 exists and must survive every refused request.
    let first = d.create("demo", "noop", json!({"start_at": now_secs() + 3600}));
    assert_eq!(first, 1);

    let out = home.cli(&["token", "create", "--name", "doomed"]);
    assert_eq!(out.code, 0, "{out:?}");
    let doomed = out.stdout.lines().last().unwrap().trim().to_owned();
    assert_eq!(
        d.request_as(Some(&doomed), "GET", "/stask/stats", None)
            .status,
        200,
        "the new token works before it is revoked"
    );
    let out = home.cli(&["token", "revoke", "doomed"]);
    assert_eq!(out.code, 0, "{out:?}");

    let wrong_secret = format!("stask_{}", "0".repeat(64));
    let cases: [(&str, Option<&str>); 5] = [
        ("no token", None),
        ("garbage token", Some("garbage")),
        ("well-formed unknown token", Some(wrong_secret.as_str())),
        ("empty token", Some("")),
        ("revoked token", Some(doomed.as_str())),
    ];
    for (what, token) in cases {
        for (method, path) in PROTECTED {
            let r = d.request_as(token, method, path, body_for(method));
            assert_error(&r, 401, &format!("{what}: {method} {path}"));
        }
    }
    // Another scheme is not a bearer token either.
    let r = ureq::get(&format!("{}/stask/stats", d.base))
        .set("Authorization", &format!("Basic {}", d.token))
        .call();
    match r {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("Basic scheme: expected 401, got {other:?}"),
    }

    // Nothing the refused requests asked for happened.
    let task = d.task(first);
    assert_eq!(task["status"], "pending", "{task}");
    assert_eq!(d.get("/stask/stats").body["total"], 1);

    // Health and version need no token.
    let r = d.request_as(None, "GET", "/stask/health", None);
    assert_eq!((r.status, &r.body["success"]), (200, &json!(true)));
    let r = d.request_as(None, "GET", "/stask/version", None);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r.body["name"], "stask");

    // The daemon's own token still works after another one was revoked.
    assert_eq!(d.get("/stask/stats").status, 200);
}

#[test]
fn bad_requests_get_the_right_status_and_a_json_error() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let create = |body: &str| d.request("POST", "/stask/workers/demo/tasks/noop", Some(body));

    assert_error(&create("{\"steps\": 3,"), 400, "malformed JSON");
    assert_error(&create("[1, 2]"), 422, "array body");
    assert_error(&create("\"text\""), 422, "string body");
    assert_error(&create("{\"priority\": \"urgent\"}"), 422, "bad priority");
    assert_error(&create("{\"priority\": 3}"), 422, "numeric priority");
    assert_error(&create("{\"start_at\": \"tomorrow\"}"), 422, "bad start_at");
    assert_error(&create("{\"max_attempts\": 0}"), 422, "zero attempts");
    assert_error(&create("{\"max_attempts\": -1}"), 422, "negative attempts");
    assert_eq!(
        d.get("/stask/stats").body["total"],
        0,
        "no refused request created a task"
    );
    // An empty body is an empty object.
    let r = d.request("POST", "/stask/workers/demo/tasks/noop", Some(""));
    assert_eq!(r.status, 201, "{:?}", r.body);

    let r = d.post("/stask/workers/nosuch/tasks/noop", &json!({}));
    let message = assert_error(&r, 404, "unknown worker");
    assert!(
        message.contains("nosuch") && message.contains("demo"),
        "the message names the known workers: {message}"
    );
    let r = d.post("/stask/workers/demo/tasks/explode", &json!({}));
    let message = assert_error(&r, 404, "unknown action");
    assert!(
        message.contains("explode") && message.contains("noop") && message.contains("run"),
        "the message lists the worker's actions: {message}"
    );

    const TASK_ROUTES: [(&str, &str); 6] = [
        ("GET", ""),
        ("GET", "/progress"),
        ("GET", "/download"),
        ("DELETE", ""),
        ("POST", "/cancel"),
        ("POST", "/retry"),
    ];
    for raw in ["abc", "0", "-1", "1.5"] {
        for (method, suffix) in TASK_ROUTES {
            let path = format!("/stask/tasks/{raw}{suffix}");
            let r = d.request(method, &path, body_for(method));
            let message = assert_error(&r, 400, &format!("{method} {path}"));
            assert!(message.contains(raw), "{message}");
        }
    }
    for (method, suffix) in TASK_ROUTES {
        let path = format!("/stask/tasks/999999{suffix}");
        let r = d.request(method, &path, body_for(method));
        let message = assert_error(&r, 404, &format!("{method} {path}"));
        assert!(message.contains("999999"), "{message}");
    }

    assert_error(&d.get("/stask/nowhere"), 404, "unknown path");
    assert_error(&d.get("/nowhere"), 404, "unknown path outside /stask");
    let ui = d.request_as(None, "GET", "/", None);
    assert_eq!(ui.status, 200, "/ leads to the admin UI");
    assert!(
        ui.content_type.starts_with("text/html"),
        "{}",
        ui.content_type
    );
    assert_error(
        &d.request_as(None, "GET", "/stask/nowhere", None),
        404,
        "unknown path without a token",
    );
    assert_error(&d.request("PUT", "/stask/stats", None), 405, "PUT stats");
    assert_error(
        &d.request("GET", "/stask/workers/demo/tasks/noop", None),
        405,
        "GET on the create route",
    );
    assert_error(
        &d.request("POST", "/stask/health", Some("{}")),
        405,
        "POST health",
    );
    assert_error(
        &d.get("/stask/tasks?status=bogus"),
        422,
        "bad status filter",
    );
    let message = assert_error(&d.get("/stask/tasks?page=x"), 422, "bad page");
    assert!(message.contains("page"), "{message}");

    // After all that the daemon serves as before.
    let id = d.create("demo", "noop", json!({}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_MAX_BODY_BYTES", "1000");
    let d = home.serve();
    let body = |pad: usize| json!({"pad": "x".repeat(pad)}).to_string();
    let small = body(800);
    assert!(small.len() < 1000);
    let r = d.request("POST", "/stask/workers/demo/tasks/noop", Some(&small));
    assert_eq!(
        r.status, 201,
        "a body under the limit is accepted: {:?}",
        r.body
    );

    let large = body(1500);
    let r = d.request("POST", "/stask/workers/demo/tasks/noop", Some(&large));
    assert_error(&r, 413, "body over the limit");
    assert_eq!(d.get("/stask/stats").body["total"], 1);
    assert_eq!(d.get("/stask/health").status, 200);
}

#[test]
fn downloads_and_deletes_follow_the_task_state() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();

    // A pending (scheduled) task: no download, no delete.
    let pending = d.create("demo", "noop", json!({"start_at": now_secs() + 3600}));
    assert_error(
        &d.get(&format!("/stask/tasks/{pending}/download")),
        409,
        "download of a pending task",
    );
    assert_error(
        &d.request("DELETE", &format!("/stask/tasks/{pending}"), None),
        409,
        "delete of a pending task",
    );

    // A running task: no download, no delete.
    let running = d.create("demo", "run", json!({"steps": 400, "sleep_ms": 25}));
    d.wait_task(running, Duration::from_secs(30), |t| {
        t["status"] == "running"
    });
    assert_error(
        &d.get(&format!("/stask/tasks/{running}/download")),
        409,
        "download of a running task",
    );
    let message = assert_error(
        &d.request("DELETE", &format!("/stask/tasks/{running}"), None),
        409,
        "delete of a running task",
    );
    assert!(message.contains("running"), "{message}");
    assert_eq!(d.task(running)["status"], "running", "still there");
    let r = d.post(&format!("/stask/tasks/{running}/cancel"), &json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(d.wait_finished(running)["status"], "cancelled");

    // Completed without a file: 404.
    let plain = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 0}));
    assert_eq!(d.wait_finished(plain)["status"], "completed");
    assert_eq!(d.task(plain)["download_url"], Value::Null);
    assert_error(
        &d.get(&format!("/stask/tasks/{plain}/download")),
        404,
        "download of a completed task without a file",
    );

    // Completed with a file: exactly its bytes.
    let content = "line one\nline two: ünïcödé\n";
    let with_file = d.create(
        "demo",
        "run",
        json!({"steps": 1, "sleep_ms": 0, "result_file": "out.txt", "content": content}),
    );
    let done = d.wait_finished(with_file);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result_file"], "out.txt");
    let r = d.get(&format!("/stask/tasks/{with_file}/download"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.raw, content.as_bytes());
    assert!(
        r.content_type.starts_with("text/plain"),
        "{:?}",
        r.content_type
    );
    let results = home.storage().join(format!("stask/results/{with_file}"));
    assert!(results.join("out.txt").is_file());

    // Finished tasks can be deleted once; their files go with them.
    for id in [with_file, running, plain] {
        let r = d.request("DELETE", &format!("/stask/tasks/{id}"), None);
        assert_eq!(r.status, 200, "delete {id}: {:?}", r.body);
        assert_eq!(r.body["success"], true);
        assert_error(&d.get(&format!("/stask/tasks/{id}")), 404, "deleted task");
        assert_error(
            &d.request("DELETE", &format!("/stask/tasks/{id}"), None),
            404,
            "second delete",
        );
    }
    assert!(
        !results.exists(),
        "the result folder is deleted with the task"
    );
    assert_error(
        &d.get(&format!("/stask/tasks/{with_file}/download")),
        404,
        "download of a deleted task",
    );
    let stats = d.get("/stask/stats").body;
    assert_eq!(
        (stats["total"].as_i64(), stats["pending"].as_i64()),
        (Some(1), Some(1)),
        "only the pending task is left: {stats}"
    );
}

#[test]
fn task_list_filters_search_and_pages_and_stats_count() {
    let home = Home::with_workers(&["demo", "system"]);
    let d = home.serve();
    let later = now_secs() + 3600;
    let a = d.create("demo", "noop", json!({"tag": "needle-1"}));
    let b = d.create("demo", "noop", json!({}));
    let c = d.create(
        "demo",
        "run",
        json!({"fail_permanent": true, "tag": "needle-2"}),
    );
    let e = d.create("system", "clean_cache", json!({}));
    let f = d.create("demo", "noop", json!({"start_at": later}));
    let g = d.create("demo", "noop", json!({"start_at": later}));
    let h = d.create("demo", "noop", json!({"priority": "high"}));
    let r = d.post(&format!("/stask/tasks/{g}/cancel"), &json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    for id in [a, b, c, e, g, h] {
        d.wait_finished(id);
    }
    assert_eq!(d.task(c)["status"], "failed");

    let all = {
        let mut v = vec![a, b, c, e, f, g, h];
        v.sort_unstable_by(|x, y| y.cmp(x));
        v
    };
    let desc = |list: &[i64]| {
        let mut v = list.to_vec();
        v.sort_unstable_by(|x, y| y.cmp(x));
        v
    };
    let list = |query: &str| {
        let r = d.get(&format!("/stask/tasks{query}"));
        assert_eq!(r.status, 200, "{query}: {:?}", r.body);
        assert_eq!(r.body["success"], true);
        let got = ids(&r);
        assert_eq!(
            r.body["total"].as_u64(),
            Some(got.len() as u64),
            "{query}: total of an unpaged list"
        );
        got
    };

    assert_eq!(list(""), all, "newest first");
    assert_eq!(list("?status=completed"), desc(&[a, b, e, h]));
    assert_eq!(list("?status=failed,cancelled"), desc(&[c, g]));
    assert_eq!(list("?status=40"), vec![c], "numeric status codes");
    assert_eq!(list("?status=pending"), vec![f]);
    assert_eq!(list("?status=incomplete"), vec![f]);
    assert_eq!(list("?status=finished"), desc(&[a, b, c, e, g, h]));
    assert_eq!(list("?identifier=system"), vec![e]);
    assert_eq!(list("?identifier=demo&status=completed"), desc(&[a, b, h]));
    assert_eq!(list("?action=clean_cache"), vec![e]);
    assert_eq!(list("?priority=high"), vec![h]);
    assert_eq!(list("?q=needle"), desc(&[a, c]));
    assert_eq!(list("?q=needle-2"), vec![c]);
    assert_eq!(list("?q=%25"), Vec::<i64>::new(), "% is matched literally");
    assert_eq!(list("?q=no-such-text"), Vec::<i64>::new());
    assert_eq!(list("?identifier=nosuch"), Vec::<i64>::new());

    // Pages of three: 3 + 3 + 1, each with the overall total.
    let mut paged = Vec::new();
    for page in 1..=4 {
        let r = d.get(&format!("/stask/tasks?per_page=3&page={page}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body["total"], all.len(), "page {page}");
        assert_eq!(r.body["page"], page);
        assert_eq!(r.body["per_page"], 3);
        let got = ids(&r);
        let expected = all
            .iter()
            .skip((page - 1) * 3)
            .take(3)
            .copied()
            .collect::<Vec<_>>();
        assert_eq!(got, expected, "page {page}");
        paged.extend(got);
    }
    assert_eq!(paged, all, "pages cover every task once");
    let r = d.get("/stask/tasks?status=completed&per_page=2&page=2");
    assert_eq!(r.body["total"], 4);
    assert_eq!(ids(&r), desc(&[a, b, e, h])[2..].to_vec());

    let stats = d.get("/stask/stats");
    assert_eq!(stats.status, 200);
    let s = &stats.body;
    assert_eq!(s["success"], true);
    for (key, n) in [
        ("pending", 1),
        ("preparing", 0),
        ("running", 0),
        ("completed", 4),
        ("failed", 1),
        ("cancelled", 1),
        ("total", all.len() as i64),
    ] {
        assert_eq!(s[key], n, "stats {key}: {s}");
    }
}

/// Issue 13, item 14: every numeric query parameter follows one rule (422 naming the parameter
/// and its range; no silent clamping, no serde text), and so does the boolean one.
#[test]
fn query_parameters_out_of_range_get_422_naming_the_parameter_and_its_range() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    for (path, param, range) in [
        ("/stask/tasks", "per_page", "between 1 and 500"),
        ("/stask/tasks", "page", "between 1 and 1000000"),
        ("/stask/tasks/pending", "limit", "between 1 and 500"),
        ("/stask/performance/summary", "hours", "between 1 and 8784"),
        ("/stask/performance/workers", "hours", "between 1 and 8784"),
        ("/stask/performance/timeline", "hours", "between 1 and 8784"),
        (
            "/stask/performance/timeline",
            "buckets",
            "between 1 and 500",
        ),
    ] {
        for bad in ["0", "-1", "99999999", "1.5", "x"] {
            let target = format!("{path}?{param}={bad}");
            let message = assert_error(&d.get(&target), 422, &target);
            assert_eq!(
                message,
                format!("{param} must be a whole number {range}, got '{bad}'"),
                "{target}"
            );
        }
        let target = format!("{path}?{param}=1");
        assert_eq!(d.get(&target).status, 200, "{target}");
        let target = format!("{path}?{param}=");
        assert_eq!(d.get(&target).status, 200, "{target}: empty is the default");
    }
    let message = assert_error(&d.get("/stask/workers?active=yes"), 422, "active=yes");
    assert_eq!(message, "active must be true or false, got 'yes'");
    assert_eq!(d.get("/stask/workers?active=TRUE").status, 200);
    let message = assert_error(&d.get("/stask/tasks?page=1&page=2"), 400, "page twice");
    assert!(message.contains("page"), "{message}");
}

/// Issue 13, item 14: the `Authorization` scheme is case-insensitive.
#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let home = Home::with_workers(&[]);
    let d = home.serve();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = ureq::get(&format!("{}/stask/stats", d.base))
            .set("Authorization", &format!("{scheme} {}", d.token))
            .call();
        assert_eq!(r.map(|r| r.status()).ok(), Some(200), "{scheme}");
    }
    let r = ureq::get(&format!("{}/stask/stats", d.base))
        .set("Authorization", &format!("Basic {}", d.token))
        .call();
    assert!(
        matches!(r, Err(ureq::Error::Status(401, _))),
        "Basic is not a bearer token"
    );
}

/// Issue 13, item 9: the settings the host reads (`timeout`, `isolation`, `memory_limit_mb`)
/// are refused with 422 naming the key and what it accepts when their value is out of type or
/// range; nothing is stored then.
#[test]
fn worker_settings_the_host_reads_are_refused_outside_their_range() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let put = |settings: Value| {
        d.request(
            "PUT",
            "/stask/workers/demo/settings",
            Some(&settings.to_string()),
        )
    };
    for (bad, says) in [
        (
            json!({"timeout": 1.5}),
            "timeout must be a whole number of seconds between 0 and 604800",
        ),
        (
            json!({"timeout": -1}),
            "timeout must be a whole number of seconds between 0 and 604800",
        ),
        (
            json!({"timeout": 1e300}),
            "timeout must be a whole number of seconds between 0 and 604800",
        ),
        (
            json!({"isolation": "bogus"}),
            "isolation must be one of \"in_process\", \"process\"",
        ),
        (
            json!({"memory_limit_mb": -1}),
            "memory_limit_mb must be a whole number of MiB between 0 and 1048576",
        ),
        (
            json!({"concurrency": 1.5}),
            "concurrency must be a whole number of tasks between 0 and 100000",
        ),
        (
            json!({"action_concurrency": {"import": "1"}}),
            "action_concurrency must be an object of action names to whole numbers of tasks",
        ),
        (
            json!({"rate_limit": "fast"}),
            "rate_limit must be null (no limit) or a rate \"N/s\", \"N/min\" or \"N/h\"",
        ),
    ] {
        let message = assert_error(&put(bad.clone()), 422, &bad.to_string());
        assert!(message.contains(says), "{bad}: {message}");
    }
    let settings = d.get("/stask/workers/demo/settings").body;
    assert_eq!(
        settings["settings"]["timeout"], 0,
        "nothing stored: {settings}"
    );
    assert!(
        settings["settings"].get("isolation").is_none(),
        "{settings}"
    );

    let r = put(json!({"timeout": 30, "isolation": "In_Process", "memory_limit_mb": 512}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let settings = d.get("/stask/workers/demo/settings").body;
    assert_eq!(settings["settings"]["timeout"], 30, "{settings}");
    assert_eq!(
        settings["settings"]["isolation"], "in_process",
        "stored lowercase"
    );
}

/// The id `stask token list` shows for `token` (found by its clear prefix).
fn token_id(home: &Home, token: &str) -> i64 {
    let out = home.cli(&["token", "list"]);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
        .lines()
        .find(|l| l.contains(&token[..12]))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("token {} not listed:\n{}", &token[..12], out.stdout))
}

/// Issue 15, point 6: a task records the CMS user it was started for (`started_by`, given in
/// the create body) apart from the API token that created it (`token_id`, set by the server);
/// `GET /stask/tasks?started_by=N` lists the user's tasks only; a `started_by` that is not a
/// user id is refused with the JSON error, in the body as in the query. The OpenAPI document
/// describes both fields and the filter.
#[test]
fn a_task_records_its_user_apart_from_its_token_and_lists_filter_by_user() {
    let home = Home::with_workers(&["demo"]);
    let (first, second) = (home.token(), home.token());
    let (first_id, second_id) = (token_id(&home, &first), token_id(&home, &second));
    assert_ne!(first_id, second_id);
    let d = home.serve_with_token(first);
    // Users 42 and 7: neither is a token id, so a filter that mixed the two would show it.
    assert!(![42, 7].contains(&first_id) && ![42, 7].contains(&second_id));

    let a = d.create("demo", "noop", json!({"started_by": 42, "tag": "a"}));
    let r = d.request_as(
        Some(&second),
        "POST",
        "/stask/workers/demo/tasks/noop",
        Some(&json!({"started_by": 7}).to_string()),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let b = r.body["id"].as_i64().unwrap();
    let c = d.create("demo", "noop", json!({"started_by": null}));
    // The CLI creates without a token.
    let out = home.cli(&["task", "create", "demo", "noop", "--user", "42"]);
    assert_eq!(out.code, 0, "{out:?}");
    let from_cli: i64 = out.stdout.trim().parse().unwrap();

    let who = |id: i64| {
        let t = d.task(id);
        (t["started_by"].clone(), t["token_id"].clone())
    };
    assert_eq!(who(a), (json!(42), json!(first_id)));
    assert_eq!(who(b), (json!(7), json!(second_id)), "the caller's token");
    assert_eq!(who(c), (Value::Null, json!(first_id)));
    assert_eq!(who(from_cli), (json!(42), Value::Null));
    assert_eq!(
        d.task(a)["meta"],
        json!({"tag": "a"}),
        "started_by is an option, not task data"
    );

    let list = |query: &str| {
        let r = d.get(&format!("/stask/tasks{query}"));
        assert_eq!(r.status, 200, "{query}: {:?}", r.body);
        assert_eq!(r.body["total"], ids(&r).len(), "{query}");
        ids(&r)
    };
    assert_eq!(list("?started_by=42"), vec![from_cli, a]);
    assert_eq!(list("?started_by=7"), vec![b]);
    assert_eq!(list("?started_by=7&identifier=demo"), vec![b]);
    assert_eq!(list("?started_by=7&identifier=other"), Vec::<i64>::new());
    assert_eq!(
        list(&format!("?started_by={first_id}")),
        Vec::<i64>::new(),
        "a token id is not a user"
    );
    assert_eq!(
        list("?started_by="),
        vec![from_cli, c, b, a],
        "empty: no filter"
    );

    for bad in [
        json!("42"),
        json!(0),
        json!(-3),
        json!(1.5),
        json!(true),
        json!([42]),
    ] {
        let r = d.post(
            "/stask/workers/demo/tasks/noop",
            &json!({"started_by": bad}),
        );
        let message = assert_error(&r, 422, &format!("started_by {bad}"));
        assert!(
            message.starts_with("started_by must be a user id"),
            "{message}"
        );
    }
    for bad in ["x", "0", "-1", "1.5", "9007199254740992"] {
        let target = format!("/stask/tasks?started_by={bad}");
        let message = assert_error(&d.get(&target), 422, &target);
        assert_eq!(
            message,
            format!(
                "started_by must be a whole number between 1 and 9007199254740991, got '{bad}'"
            )
        );
    }
    assert_eq!(
        list(""),
        vec![from_cli, c, b, a],
        "refused creates stored nothing"
    );

    let doc = d.get("/stask/openapi.json").body;
    let view = &doc["components"]["schemas"]["TaskView"]["properties"];
    for field in ["started_by", "token_id"] {
        assert!(view[field].is_object(), "TaskView lacks {field}: {view}");
    }
    let params = doc["paths"]["/stask/tasks"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(
        params.iter().any(|p| p["name"] == "started_by"),
        "{params:?}"
    );
}
