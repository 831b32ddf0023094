//! Roles: every route of the OpenAPI document, called with a `read`, an `operate` and an
//! `admin` token, answers 403 naming the role it needs exactly when the token's role is lower,
//! and anything else when it is not (the handler ran: 2xx, or its own 4xx for the made-up ids).

use serde_json::json;
use stask_tests::{Daemon, Home};

/// Roles from weakest to strongest, with what each may do.
const ROLES: [&str; 3] = ["read", "operate", "admin"];

/// The role a route needs, as the product promises it (README "Roles").
fn needed(method: &str, path: &str) -> &'static str {
    let operate = [
        ("post", "/stask/tasks/{id}/cancel"),
        ("post", "/stask/tasks/{id}/retry"),
        ("delete", "/stask/tasks/{id}"),
        ("post", "/stask/workers/{identifier}/tasks/{action}"),
        ("post", "/stask/uploads"),
        ("post", "/stask/batches"),
        ("post", "/stask/batches/{id}/cancel"),
    ];
    // Who did what is for admins only, though it is read with a GET.
    if path == "/stask/audit" {
        "admin"
    } else if method == "get" || (method, path) == ("post", "/stask/logout") {
        "read"
    } else if operate.contains(&(method, path)) {
        "operate"
    } else {
        "admin"
    }
}

fn token(home: &Home, name: &str, role: &str) -> String {
    let out = home.cli(&["token", "create", "--name", name, "--role", role]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("role {role}")),
        "{}",
        out.stderr
    );
    out.stdout.lines().last().unwrap().trim().to_owned()
}

/// A path with its parameters filled: ids no row has, a worker no plugin declares, so an
/// allowed call reaches its handler and changes nothing that matters to the next.
fn concrete(path: &str) -> String {
    path.replace("{id}", "987654")
        .replace("{identifier}", "no_such_worker")
        .replace("{action}", "run")
}

#[test]
fn every_route_answers_each_role_as_promised() {
    let home = Home::with_workers(&["demo"]);
    let daemon: Daemon = home.serve();
    let tokens: Vec<(&str, String)> = ROLES
        .iter()
        .map(|role| (*role, token(&home, &format!("role-{role}"), role)))
        .collect();
    let doc = daemon.get("/stask/openapi.json").body;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        // Event streams stay open; their GETs need `read` like every GET (unit-tested).
        if path.ends_with("events") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            if public {
                continue;
            }
            let need = needed(method, path);
            let need_rank = ROLES.iter().position(|r| *r == need).unwrap();
            for (rank, (role, token)) in tokens.iter().enumerate() {
                let body = (method != "get").then(|| json!({}).to_string());
                let reply = daemon.request_as(
                    Some(token),
                    &method.to_uppercase(),
                    &concrete(path),
                    body.as_deref(),
                );
                let forbidden = reply.status == 403
                    && reply.body["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&format!("needs the '{need}' role")));
                if rank < need_rank {
                    assert!(
                        forbidden,
                        "{method} {path} as {role}: expected 403 needing {need}, got {} {}",
                        reply.status, reply.body
                    );
                    assert!(reply.body["message"].as_str().unwrap().contains(role));
                } else {
                    // The handler ran: neither refused by the role check nor by routing nor
                    // by authentication (only the session routes answer a bearer token 401
                    // themselves: it came without a session cookie).
                    let session_route = path == "/stask/session" || path == "/stask/logout";
                    assert!(
                        ![403, 405].contains(&reply.status)
                            && (reply.status != 401 || session_route),
                        "{method} {path} as {role} (needs {need}): {} {}",
                        reply.status,
                        reply.body
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 40 * 3, "only {checked} calls checked");
}

#[test]
fn a_read_token_sees_tasks_and_an_operate_token_runs_them_but_not_workers() {
    let home = Home::with_workers(&["demo"]);
    let daemon = home.serve();
    let read = token(&home, "reader", "read");
    let operate = token(&home, "site", "operate");
    let create = json!({}).to_string();
    let route = "/stask/workers/demo/tasks/run";
    let denied = daemon.request_as(Some(&read), "POST", route, Some(&create));
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(
        denied.body["message"],
        "POST /stask/workers/{identifier}/tasks/{action} needs the 'operate' role; this token has 'read'"
    );
    let created = daemon.request_as(Some(&operate), "POST", route, Some(&create));
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    daemon.wait_finished(id);
    let seen = daemon.request_as(Some(&read), "GET", &format!("/stask/tasks/{id}"), None);
    assert_eq!(seen.status, 200);
    let deactivate = daemon.request_as(
        Some(&operate),
        "POST",
        "/stask/workers/demo/deactivate",
        Some("{}"),
    );
    assert_eq!(deactivate.status, 403, "{}", deactivate.body);
    // A session has its token's role, and says which.
    let login = daemon.request_as(
        None,
        "POST",
        "/stask/login",
        Some(&json!({"token": read}).to_string()),
    );
    assert_eq!(login.status, 200);
    assert_eq!(login.body["role"], "read");
    let listed = home.cli(&["token", "list"]);
    assert!(listed.stdout.contains("operate"), "{}", listed.stdout);
    let bad = home.cli(&["token", "create", "--name", "x", "--role", "root"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad
        .stderr
        .contains("--role must be one of read, operate, admin"));
}
