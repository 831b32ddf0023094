//! `stask serve` under a service manager: the systemd notify protocol on a real datagram
//! socket (`READY=1`, watchdog pings, `STOPPING=1`), and JSON logs with `STASK_LOG_FORMAT`.

use stask_tests::Home;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Datagrams received on `socket` until `done` says enough or `timeout` passes.
fn receive_until(
    socket: &UnixDatagram,
    timeout: Duration,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

fn says(messages: &[String], line: &str) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == line))
        .count()
}

#[test]
fn serve_tells_systemd_ready_pings_its_watchdog_and_tells_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut home = Home::with_workers(&[]);
    home.env
        .push(("NOTIFY_SOCKET".into(), path.to_str().unwrap().to_owned()));
    // 200 ms: a ping every 100 ms.
    home.env.push(("WATCHDOG_USEC".into(), "200000".into()));
    let d = home.serve();
    let wait = Duration::from_secs(30);
    let start = receive_until(&socket, wait, |m| says(m, "READY=1") > 0);
    assert_eq!(says(&start, "READY=1"), 1, "{start:?}");
    let ready = start.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(
        ready.contains(&format!("STATUS=listening on {}", d.base)),
        "{ready:?}"
    );
    let pings = receive_until(&socket, wait, |m| says(m, "WATCHDOG=1") >= 3);
    assert!(says(&pings, "WATCHDOG=1") >= 3, "{pings:?}");
    assert_eq!(d.terminate(), 0);
    // Everything sent before the exit is queued on the socket.
    let end = receive_until(&socket, Duration::from_secs(1), |m| {
        says(m, "STOPPING=1") > 0
    });
    assert_eq!(says(&end, "STOPPING=1"), 1, "{end:?}");
}

#[test]
fn log_lines_are_json_objects_with_the_log_format_json() {
    let mut home = Home::with_workers(&["demo"]);
    home.env.push(("STASK_LOG_FORMAT".into(), "JSON".into()));
    let d = home.serve();
    let id = d.create("demo", "noop", serde_json::json!({}));
    d.wait_finished(id);
    let log = d.log.clone();
    assert_eq!(d.terminate(), 0);
    let text = log.text();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ready = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("stask ready"))
        })
        .unwrap_or_else(|| panic!("no ready line in {text}"));
    assert_eq!(ready["level"], "INFO", "{ready}");
    assert!(ready["timestamp"].is_string(), "{ready}");

    home.env.push(("STASK_LOG_FORMAT".into(), "xml".into()));
    let bad = home.cli(&["stats"]);
    assert_eq!(bad.code, 5, "{bad:?}");
    assert!(
        bad.stderr
            .contains("STASK_LOG_FORMAT must be one of 'text', 'json'"),
        "{bad:?}"
    );
}
