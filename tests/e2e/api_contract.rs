//! The API as documented: every route of the OpenAPI document is protected (but health,
//! version and login), browser sessions need the CSRF token, uploads cannot choose their path,
//! and the seed's extra endpoints answer.

use serde_json::{json, Value};
use stask_tests::{Daemon, Home};

const PUBLIC: [&str; 3] = ["/stask/health", "/stask/version", "/stask/login"];

fn routes(d: &Daemon) -> Vec<(String, String)> {
    let doc = d.get("/stask/openapi.json");
    assert_eq!(doc.status, 200, "{:?}", doc.body);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let mut routes = Vec::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    routes
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
        .replace("{identifier}", "demo")
        .replace("{action}", "noop")
}

#[test]
fn every_documented_route_but_the_public_ones_requires_the_permission() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let routes = routes(&d);
    assert!(
        routes.len() >= 29,
        "the document lists every route: {routes:?}"
    );
    for (method, path) in &routes {
        let url = concrete(path);
        let r = d.request_as(None, method, &url, (method != "GET").then_some("{}"));
        if PUBLIC.contains(&path.as_str()) {
            assert_ne!(r.status, 401, "{method} {path} is public");
        } else {
            assert_eq!(
                r.status, 401,
                "{method} {path} without credentials: {:?}",
                r.body
            );
            assert_eq!(r.body["success"], false);
            assert_eq!(r.body["code"], 401);
        }
    }
    // Documented routes are the served ones: nothing documented is missing (404/405).
    // (Event streams never end; they are covered by their own tests.)
    for (method, path) in routes.iter().filter(|(_, p)| !p.ends_with("events")) {
        let r = d.request(method, &concrete(path), (method != "GET").then_some("{}"));
        let unknown = r.status == 404 && r.body["message"] == "no such endpoint";
        assert!(r.status != 405 && !unknown, "{method} {path}: {:?}", r.body);
    }
}

/// A session-only client (the UI): cookie from login, CSRF token on state changes.
fn cookie_of(reply_headers: &ureq::Response) -> String {
    let set = reply_headers.header("set-cookie").expect("set-cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

#[test]
fn sessions_work_with_the_csrf_token_and_only_with_it() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let bad =
        ureq::post(&format!("{}/stask/login", d.base)).send_string(r#"{"token":"stask_nope"}"#);
    assert!(matches!(bad, Err(ureq::Error::Status(401, _))));
    let login = ureq::post(&format!("{}/stask/login", d.base))
        .send_string(&json!({"token": d.token}).to_string())
        .expect("login");
    let cookie = cookie_of(&login);
    let body: Value = login.into_json().unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();

    let call = |method: &str, path: &str, csrf: Option<&str>| -> u16 {
        let mut req = ureq::request(method, &format!("{}{path}", d.base)).set("Cookie", &cookie);
        if let Some(c) = csrf {
            req = req.set("X-CSRF-TOKEN", c);
        }
        let result = if method == "GET" {
            req.call()
        } else {
            req.send_string("{}")
        };
        match result {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        call("GET", "/stask/stats", None),
        200,
        "reads need no CSRF token"
    );
    assert_eq!(call("GET", "/stask/session", None), 200);
    assert_eq!(call("POST", "/stask/workers/demo/tasks/noop", None), 403);
    assert_eq!(
        call("POST", "/stask/workers/demo/tasks/noop", Some("wrong")),
        403
    );
    assert_eq!(
        call("POST", "/stask/workers/demo/tasks/noop", Some(&csrf)),
        201
    );
    assert_eq!(call("POST", "/stask/logout", Some(&csrf)), 200);
    assert_eq!(call("GET", "/stask/stats", None), 401, "the session ended");
}

#[test]
fn uploads_get_generated_names_inside_the_uploads_folder_and_feed_imports() {
    let mut home = Home::with_workers(&["product"]);
    home.set_env("STASK_MAX_UPLOAD_BYTES", "2000");
    let d = home.serve();
    let boundary = "XBOUNDARYX";
    let form = |name: &str, content: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/csv\r\n\r\n{content}\r\n--{boundary}--\r\n"
        )
    };
    let send = |body: String| {
        let r = ureq::post(&format!("{}/stask/uploads", d.base))
            .set("Authorization", &format!("Bearer {}", d.token))
            .set(
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .send_string(&body);
        match r {
            Ok(r) => (r.status(), r.into_json::<Value>().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json::<Value>().unwrap()),
            Err(e) => panic!("{e}"),
        }
    };
    let (status, body) = send(form(
        "../../../etc/evil.csv",
        "sku,name,price\nA1,Alpha,1.5\nB2,Beta,2\n",
    ));
    assert_eq!(status, 201, "{body}");
    let path = body["path"].as_str().unwrap();
    assert!(
        path.starts_with("stask/uploads/") && !path.contains(".."),
        "{path}"
    );
    assert!(home.storage().join(path).is_file());
    assert!(!home.path().join("etc").exists());
    let (status, body) = send(form("big.csv", &"x".repeat(5000)));
    assert_eq!((status, body["code"].as_i64()), (413, Some(413)), "{body}");
    assert_eq!(
        std::fs::read_dir(home.storage().join("stask/uploads"))
            .unwrap()
            .count(),
        1,
        "the refused upload left nothing"
    );

    let id = d.create("product", "import", json!({"file": path}));
    let done = d.wait_finished(id);
    assert_eq!(done["status"], "completed", "{done}");
    let result: Value = serde_json::from_str(done["result"].as_str().unwrap()).unwrap();
    assert_eq!(result["created"], 2);
}

#[test]
fn pending_tasks_come_in_claim_order_and_clean_removes_old_finished_ones() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let later = stask_tests::now_secs() + 3600;
    let low = d.create(
        "demo",
        "noop",
        json!({"start_at": later, "priority": "low"}),
    );
    let high = d.create(
        "demo",
        "noop",
        json!({"start_at": later, "priority": "high"}),
    );
    let r = d.get("/stask/tasks/pending?limit=5");
    assert_eq!(r.status, 200);
    let ids: Vec<i64> = r.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![high, low]);
    assert_eq!(r.body["total"], 2);

    let done = d.create("demo", "noop", json!({}));
    d.wait_finished(done);
    let r = d.post("/stask/tasks/clean", &json!({"days": 0}));
    assert_eq!(
        (r.status, r.body["deleted"].as_i64()),
        (200, Some(1)),
        "{:?}",
        r.body
    );
    assert_eq!(d.get(&format!("/stask/tasks/{done}")).status, 404);
    assert_eq!(
        d.post("/stask/tasks/clean", &json!({"days": -1})).status,
        422
    );
    assert_eq!(d.post("/stask/tasks/clean", &json!({})).status, 422);
}

#[test]
fn responses_carry_request_ids_and_compress() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let r = ureq::get(&format!("{}/stask/openapi.json", d.base))
        .set("Authorization", &format!("Bearer {}", d.token))
        .set("Accept-Encoding", "gzip")
        .set("x-request-id", "abc-123")
        .call()
        .unwrap();
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = ureq::get(&format!("{}/stask/health", d.base))
        .call()
        .unwrap();
    assert!(
        r.header("x-request-id").is_some_and(|id| id.len() >= 32),
        "an id is made when none is sent"
    );
}

#[test]
fn worker_endpoints_answer_unknown_workers_with_404() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    for (method, path) in [
        ("GET", "/stask/workers/nope"),
        ("POST", "/stask/workers/nope/activate"),
        ("POST", "/stask/workers/nope/deactivate"),
        ("POST", "/stask/workers/nope/pause"),
        ("POST", "/stask/workers/nope/resume"),
        ("GET", "/stask/workers/nope/settings"),
        ("PUT", "/stask/workers/nope/settings"),
    ] {
        let r = d.request(method, path, (method != "GET").then_some("{}"));
        assert_eq!(
            (r.status, r.body["code"].as_i64()),
            (404, Some(404)),
            "{method} {path}: {:?}",
            r.body
        );
        assert!(r.body["message"]
            .as_str()
            .unwrap()
            .contains("unknown worker 'nope'"));
    }
    // The query parameter rule: a value that is not one the parameter takes is 422 naming it.
    let r = d.get("/stask/workers?active=maybe");
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(
        r.body["message"],
        "active must be true or false, got 'maybe'"
    );
    let r = d.get("/stask/workers?scope=stask&active=true");
    assert_eq!(r.body["workers"].as_array().unwrap().len(), 1);
    let r = d.get("/stask/workers?scope=elsewhere");
    assert!(r.body["workers"].as_array().unwrap().is_empty());
    let r = d.post("/stask/workers/rescan", &json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["files"][0]["outcome"], "unchanged");
    let r = d.post("/stask/workers/discover", &json!({}));
    assert_eq!(
        r.body["files"][0],
        json!({"file": "demo.so", "outcome": "unchanged", "identifier": null, "version": null, "error": null})
    );
}

/// A task's event stream carries its log lines as they are stored (`task_log`), before its
/// end, and no other task's.
#[test]
fn a_tasks_event_stream_carries_its_log_lines_live() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    // Held until the stream is open, so that no line is logged before it.
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 5, "sleep_ms": 50, "log_steps": true, "start_at": stask_tests::now_secs() + 2}),
    );
    let other = d.create("demo", "run", json!({"steps": 2, "sleep_ms": 1}));
    let stream = ureq::get(&format!("{}/stask/tasks/{id}/events", d.base))
        .set("Authorization", &format!("Bearer {}", d.token))
        .call()
        .expect("event stream");
    let mut events = Vec::new();
    let mut kind = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stream.into_reader())) {
        let line = line.unwrap();
        if let Some(k) = line.strip_prefix("event: ") {
            kind = k.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let data: Value = serde_json::from_str(data).unwrap();
            events.push((kind.clone(), data));
            if kind == "task_finished" {
                break;
            }
        }
    }
    assert!(events.iter().all(|(_, e)| e["id"] == id), "{events:?}");
    let logged: Vec<&str> = events
        .iter()
        .filter(|(k, _)| k == "task_log")
        .map(|(_, e)| e["line"].as_str().unwrap())
        .collect();
    let steps: Vec<String> = (1..=5).map(|n| format!("step {n} done")).collect();
    assert!(
        steps.iter().all(|s| logged.contains(&s.as_str())),
        "{logged:?}"
    );
    let stored = d.get(&format!("/stask/tasks/{id}")).body;
    assert_eq!(
        stored["log"].as_array().unwrap().len(),
        logged.len(),
        "every stored line was sent once: {stored}"
    );
    assert_eq!(d.wait_finished(other)["status"], "completed");
}

#[test]
fn sigterm_ends_open_event_streams_and_stops_cleanly() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let stream = ureq::get(&format!("{}/stask/events", d.base))
        .set("Authorization", &format!("Bearer {}", d.token))
        .call()
        .expect("event stream");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stream.into_reader(), &mut sink);
        let _ = tx.send("stream ended");
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(d.terminate());
    });
    let code = done_rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the daemon did not stop while an event stream was open");
    assert_eq!(code, 0);
    assert_eq!(
        rx.recv_timeout(std::time::Duration::from_secs(5)),
        Ok("stream ended")
    );
}
