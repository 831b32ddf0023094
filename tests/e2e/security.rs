//! Security checks not covered elsewhere: secrets never logged or stored in clear, downloads
//! through a linked folder, and limits on request headers (count, size, time).
//!
//! Covered by other suites: every route refuses missing, bad and revoked credentials
//! (`api_contract.rs`, `api.rs`); CSRF for sessions (`api_contract.rs`); uploads get generated
//! names (`api_contract.rs`); downloads refuse tampered rows and linked files
//! (`performance.rs`); body size limit (`api.rs`); HTML escaping in the UI (`ui.rs`).

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stask_tests::Home;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Every file under `dir` (links not followed) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// A session cookie and CSRF token from `POST /stask/login`.
fn login(base: &str, token: &str) -> (String, String) {
    let r = ureq::post(&format!("{base}/stask/login"))
        .send_string(&json!({"token": token}).to_string())
        .expect("login");
    let cookie = r
        .header("set-cookie")
        .expect("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: Value = r.into_json().unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_owned())
}

#[test]
fn tokens_and_session_ids_are_never_logged_or_stored_in_clear() {
    let mut home = Home::with_workers(&["demo"]);
    // Everything the daemon can log.
    home.set_env("STASK_LOG", "trace");
    let out = home.cli(&["token", "create", "--name", "secret-check"]);
    assert_eq!(out.code, 0, "{out:?}");
    let token = out.stdout.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("stask_") && token.len() > 40, "{token}");
    assert!(
        !out.stderr.contains(&token),
        "the CLI logged the token: {}",
        out.stderr
    );
    let d = home.serve_with_token(token.clone());

    // Use it every way there is: bearer calls, a session, a refused near-miss.
    assert_eq!(d.get("/stask/stats").status, 200);
    let id = d.create("demo", "noop", json!({}));
    d.wait_finished(id);
    let (cookie, csrf) = login(&d.base, &token);
    let session_id = cookie.split_once('=').unwrap().1.to_owned();
    let r = ureq::post(&format!("{}/stask/workers/demo/tasks/noop", d.base))
        .set("Cookie", &cookie)
        .set("X-CSRF-TOKEN", &csrf)
        .send_string("{}")
        .expect("create through the session");
    assert_eq!(r.status(), 201);
    // The token with its last digit changed.
    let last = if token.ends_with('0') { '1' } else { '0' };
    let near_miss = format!("{}{last}", &token[..token.len() - 1]);
    let r = d.request_as(Some(&near_miss), "GET", "/stask/stats", None);
    assert_eq!(r.status, 401);
    let r = ureq::post(&format!("{}/stask/login", d.base))
        .send_string(&json!({"token": near_miss}).to_string());
    assert!(matches!(r, Err(ureq::Error::Status(401, _))));
    let log = d.log.clone();
    assert_eq!(d.terminate(), 0);
    // The log saw the requests (at trace level, with their spans)...
    let log = log.text();
    assert!(
        log.contains("/stask/login") && log.contains("/stask/stats"),
        "the requests are not in the log:\n{log}"
    );

    // ...but neither the secret part of the token (after its lookup prefix) nor the session id
    // is in it, in the database or anywhere in the home folder.
    let secret = &token["stask_".len() + 6..];
    for (what, needle) in [
        ("the token", token.as_str()),
        ("its secret part", secret),
        ("the refused near-miss", &near_miss["stask_".len() + 6..]),
        ("the session id", session_id.as_str()),
    ] {
        assert!(!log.contains(needle), "{what} is in the daemon's log");
        let found = files_containing(home.path(), needle.as_bytes());
        assert!(found.is_empty(), "{what} found in clear in {found:?}");
    }
    // The search looked at the right bytes: the database holds the token's hash.
    if !stask_tests::on_server() {
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        let found = files_containing(&home.storage(), hash.as_bytes());
        assert!(
            !found.is_empty(),
            "the token's hash is not in storage/: wrong place searched?"
        );
    }
}

#[test]
fn a_download_through_a_linked_result_folder_is_refused() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 1, "sleep_ms": 0, "result_file": "hostname", "content": "mine"}),
    );
    assert_eq!(d.wait_finished(id)["status"], "completed");
    assert_eq!(d.get(&format!("/stask/tasks/{id}/download")).raw, b"mine");
    // The task's folder becomes a link to /etc: the same row now points at /etc/hostname.
    let folder = home.storage().join(format!("stask/results/{id}"));
    std::fs::remove_dir_all(&folder).unwrap();
    std::os::unix::fs::symlink("/etc", &folder).unwrap();
    assert!(folder.join("hostname").is_file());
    let r = d.get(&format!("/stask/tasks/{id}/download"));
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert_eq!(r.body["success"], false);
}

/// Sends raw bytes on a fresh connection and returns the first response line (empty when the
/// server closed the connection without one).
fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let answer = send_raw(addr, request, true);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Sends raw bytes on a fresh connection and reads what comes back: until the end of the
/// answer's head when `head_only`, else until the server closes the connection.
fn send_raw(addr: &str, request: &[u8], head_only: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The server may answer and close before taking everything: a failed write is fine.
    // No half-close: hyper drops a connection whose client stopped sending before it answers.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if head_only && answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    answer
}

#[test]
fn oversized_header_sets_are_refused_with_431() {
    let home = Home::with_workers(&[]);
    let d = home.serve();
    let addr = d.base.trim_start_matches("http://").to_owned();
    let auth = format!("Authorization: Bearer {}\r\n", d.token);

    let ok = raw_exchange(
        &addr,
        format!("GET /stask/stats HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    // Too many headers.
    let many: String = (0..150).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let answer = raw_exchange(
        &addr,
        format!("GET /stask/stats HTTP/1.1\r\nHost: x\r\n{auth}{many}\r\n").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");

    // Too many header bytes: refused with 431, or cut off, but never read to the end.
    let started = Instant::now();
    let huge = "y".repeat(1 << 20);
    let answer = raw_exchange(
        &addr,
        format!("GET /stask/stats HTTP/1.1\r\nHost: x\r\n{auth}X-Huge: {huge}\r\n\r\n").as_bytes(),
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(d.get("/stask/health").status, 200);
}

/// What a slow client got: the server's answer (empty when it only closed the connection),
/// after how long, and how many pieces the client had trickled in by then.
struct SlowClient {
    answer: String,
    after: Duration,
    sent: usize,
}

/// Sends `head`, then `piece(n)` every 200 ms, until the server answers (a complete JSON body)
/// or closes the connection; fails if neither happens within 20 s.
fn trickle(addr: &str, head: &[u8], piece: impl Fn(usize) -> Vec<u8>) -> SlowClient {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    stream.write_all(head).unwrap();
    let mut answer = Vec::new();
    let mut sent = 0;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "neither answered nor closed after {sent} slow pieces"
        );
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.ends_with(b"}") {
                    break;
                }
                continue;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{e}"),
        }
        if stream.write_all(&piece(sent)).is_err() {
            break;
        }
        sent += 1;
    }
    SlowClient {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        after: started.elapsed(),
        sent,
    }
}

#[test]
fn a_client_sending_headers_slowly_is_cut_off_in_bounded_time() {
    let mut home = Home::with_workers(&[]);
    home.set_env("STASK_HEADER_TIMEOUT_SECS", "2");
    let d = home.serve();
    let addr = d.base.trim_start_matches("http://").to_owned();

    // Slowloris: a header line every 200 ms, never the blank line that ends them.
    let cut = trickle(&addr, b"GET /stask/health HTTP/1.1\r\nHost: x\r\n", |n| {
        format!("X-Slow-{n}: a\r\n").into_bytes()
    });
    assert_eq!(
        cut.answer, "",
        "answered a request whose headers never ended"
    );
    assert!(
        cut.after >= Duration::from_millis(1500) && cut.after < Duration::from_secs(6),
        "cut off after {:?} (timeout 2 s), {} lines sent",
        cut.after,
        cut.sent
    );
    assert!(
        cut.sent >= 5,
        "the client was sending all along: {} lines",
        cut.sent
    );

    // An idle keep-alive connection is closed after the same time; requests still work.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let opened = Instant::now();
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "an idle connection got data");
    assert!(
        opened.elapsed() < Duration::from_secs(6),
        "{:?}",
        opened.elapsed()
    );
    assert_eq!(d.get("/stask/health").status, 200);
}

/// The `Set-Cookie` header of a login, sent with `extra` headers.
fn login_cookie(base: &str, token: &str, extra: &[(&str, &str)]) -> String {
    let mut request = ureq::post(&format!("{base}/stask/login"));
    for (name, value) in extra {
        request = request.set(name, value);
    }
    let r = request
        .send_string(&json!({"token": token}).to_string())
        .expect("login");
    r.header("set-cookie").expect("set-cookie").to_owned()
}

#[test]
fn the_session_cookie_is_secure_behind_a_tls_proxy_or_when_configured() {
    let mut home = Home::with_workers(&[]);
    let d = home.serve();
    let plain = login_cookie(&d.base, &d.token, &[]);
    assert!(
        plain.contains("HttpOnly") && !plain.contains("Secure"),
        "{plain}"
    );
    let proxied = login_cookie(&d.base, &d.token, &[("X-Forwarded-Proto", "https")]);
    assert!(proxied.ends_with("; Secure"), "{proxied}");
    d.terminate();

    home.set_env("STASK_SECURE_COOKIES", "always");
    let d = home.serve();
    let always = login_cookie(&d.base, &d.token, &[]);
    assert!(always.ends_with("; Secure"), "{always}");
    d.terminate();

    home.set_env("STASK_SECURE_COOKIES", "sometimes");
    let out = home.cli(&["serve"]);
    assert_eq!(out.code, 5, "an invalid configuration value: {out:?}");
    assert!(
        out.stderr.contains(
            "STASK_SECURE_COOKIES (secure_cookies in stask.toml) must be one of 'auto', 'always', 'never'"
        ),
        "{}",
        out.stderr
    );
}

/// A client that sends a create request's body a byte at a time is answered 408 with a JSON
/// error once `STASK_REQUEST_TIMEOUT_SECS` is over, and nothing is created.
#[test]
fn a_client_sending_its_body_slowly_gets_408_in_bounded_time() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_REQUEST_TIMEOUT_SECS", "2");
    let d = home.serve();
    let addr = d.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /stask/workers/demo/tasks/noop HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{",
        d.token
    );
    // JSON white space, one byte every 200 ms: the body would take 200 s to arrive.
    let slow = trickle(&addr, head.as_bytes(), |_| b" ".to_vec());
    assert!(slow.answer.starts_with("HTTP/1.1 408"), "{}", slow.answer);
    let body: Value = serde_json::from_str(slow.answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("longer than 2s"),
        "{body}"
    );
    assert!(
        slow.after >= Duration::from_millis(1900) && slow.after < Duration::from_secs(6),
        "answered after {:?} (timeout 2 s), {} bytes sent",
        slow.after,
        slow.sent
    );
    assert!(
        slow.sent >= 5,
        "the client was sending all along: {} bytes",
        slow.sent
    );
    assert_eq!(d.get("/stask/stats").body["total"], 0);
    assert_eq!(d.get("/stask/health").status, 200);
}

/// Sends raw bytes on a fresh connection and reads the whole answer until the server closes
/// the connection: (status code, head, body).
fn raw_answer(addr: &str, what: &str, request: &[u8]) -> (u16, String, Vec<u8>) {
    // Every request here ends its connection (an error, or `Connection: close`).
    let answer = send_raw(addr, request, false);
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "{what}: no answer head: {:?}",
                String::from_utf8_lossy(&answer)
            )
        });
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let body = answer[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head, body)
}

/// Issue 13, item 13: the errors the HTTP server answers itself, before (or instead of) the
/// router, come with the API's JSON error body like every other error.
#[test]
fn the_servers_own_rejections_have_a_json_error_body() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let addr = d.base.trim_start_matches("http://").to_owned();
    let auth = format!("Authorization: Bearer {}\r\n", d.token);
    let many: String = (0..150).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let mut tls_client_hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ];
    tls_client_hello.extend(std::iter::repeat_n(0x2a, 160));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("invalid UTF-8 in the path", b"GET /stask/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("invalid UTF-8 in the query", b"GET /stask/tasks?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        (
            "a percent-encoded path segment that is not UTF-8",
            format!("GET /stask/tasks/%FF HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").into_bytes(),
            400,
        ),
        (
            "a percent-encoded worker name that is not UTF-8",
            format!("GET /stask/workers/%FF%FE HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").into_bytes(),
            400,
        ),
        ("HTTP/0.9", b"GET /stask/health\r\n\r\n".to_vec(), 400),
        (
            "two Content-Length headers",
            b"POST /stask/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}".to_vec(),
            400,
        ),
        ("a TLS ClientHello", tls_client_hello, 400),
        (
            "a 100 kB path",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000)).into_bytes(),
            414,
        ),
        (
            "too many headers",
            format!("GET /stask/stats HTTP/1.1\r\nHost: x\r\n{auth}{many}\r\n").into_bytes(),
            431,
        ),
        (
            "too large a header",
            format!("GET /stask/stats HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n", "y".repeat(1 << 20)).into_bytes(),
            431,
        ),
    ];
    for (what, request, status) in cases {
        let (got, head, body) = raw_answer(&addr, what, &request);
        assert_eq!(got, status, "{what}: {head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/json"),
            "{what}: {head}"
        );
        assert!(
            lower.contains(&format!("content-length: {}", body.len())),
            "{what}: {head}"
        );
        let body: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{what}: {e}: {:?}", String::from_utf8_lossy(&body)));
        assert_eq!(body["success"], false, "{what}: {body}");
        assert_eq!(body["code"], status, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
    // Keep-alive still works, and a normal request after all that is served.
    let (status, _, _) = raw_answer(
        &addr,
        "a normal request",
        format!("GET /stask/stats HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status, 200);
    assert_eq!(d.get("/stask/health").status, 200);
}
