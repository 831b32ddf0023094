//! plugins.d/ while the daemon runs: every way a file arrives is loaded exactly once, a reload
//! leaves running tasks on the old code, removal orphans and restoring restores, bad files never
//! replace a good version, and operator choices survive reloads and restarts.

use serde_json::{json, Value};
use stask_tests::{demo_v2, library, now_secs, Daemon, Home};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn is_load(line: &str) -> bool {
    line.contains("worker loaded") || line.contains("worker reloaded")
}

/// Waits for the `n`-th load line in total and returns the version it names.
fn wait_loads(d: &Daemon, n: usize) -> String {
    let count = d.log.wait_count(WAIT, n, is_load);
    assert!(
        count >= n,
        "expected {n} loads, saw {count}; log:\n{}",
        d.log.text()
    );
    let text = d.log.text();
    let line = text
        .lines()
        .filter(|l| is_load(l))
        .nth(n - 1)
        .unwrap()
        .to_owned();
    line.split("version=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn worker(d: &Daemon, identifier: &str) -> Value {
    let r = d.get(&format!("/stask/workers/{identifier}"));
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["worker"].clone()
}

fn v1() -> std::path::PathBuf {
    library("stask_worker_demo")
}

fn replace_by_rename(from: &Path, dir: &Path, name: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[test]
fn every_delivery_method_loads_exactly_once() {
    let v2 = demo_v2().to_owned();
    let home = Home::with_workers(&[]);
    let d = home.serve();
    let dir = home.plugins_dir();
    let dest = dir.join("demo.so");

    // cp to a new file
    std::fs::copy(v1(), &dest).unwrap();
    assert!(wait_loads(&d, 1).starts_with("0.1.0+"));
    let first = worker(&d, "demo");
    assert_eq!(first["state"], "loaded");

    // cp over the existing (loaded) file: same inode, rewritten in place
    assert!(Command::new("cp")
        .arg(&v2)
        .arg(&dest)
        .status()
        .unwrap()
        .success());
    assert!(wait_loads(&d, 2).starts_with("0.1.0-v2+"));

    // write elsewhere, rename into place
    replace_by_rename(&v1(), &dir, "demo.so");
    assert!(wait_loads(&d, 3).starts_with("0.1.0+"));

    // install(1): remove + create; must not orphan the worker on the way
    assert!(Command::new("install")
        .arg(&v2)
        .arg(&dest)
        .status()
        .unwrap()
        .success());
    assert!(wait_loads(&d, 4).starts_with("0.1.0-v2+"));

    // mv from another folder
    let outside = home.path().join("staging.so");
    std::fs::copy(v1(), &outside).unwrap();
    std::fs::rename(&outside, &dest).unwrap();
    assert!(wait_loads(&d, 5).starts_with("0.1.0+"));

    // a slow copy that pauses half-way (the pause is the scenario, not a synchronisation)
    let bytes = std::fs::read(&v2).unwrap();
    let mut file = std::fs::File::create(&dest).unwrap();
    file.write_all(&bytes[..bytes.len() / 3]).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    file.write_all(&bytes[bytes.len() / 3..]).unwrap();
    drop(file);
    assert!(wait_loads(&d, 6).starts_with("0.1.0-v2+"));

    // touch: same content, no load; proven by the next real change being load number 7
    assert!(Command::new("touch").arg(&dest).status().unwrap().success());
    replace_by_rename(&v1(), &dir, "demo.so");
    assert!(wait_loads(&d, 7).starts_with("0.1.0+"));
    assert_eq!(
        d.log.count(is_load),
        7,
        "one load per change:\n{}",
        d.log.text()
    );
    assert_eq!(
        d.log.count(|l| l.contains("plugin refused")),
        0,
        "no partial file was loaded:\n{}",
        d.log.text()
    );
    assert_eq!(
        d.log.count(|l| l.contains("orphaned")),
        0,
        "install's remove+create did not orphan"
    );

    let last = worker(&d, "demo");
    assert_eq!(last["generation"], 7);
    assert_ne!(last["file_sha256"], Value::Null);
    assert!(last["loaded_at"].as_str() > first["loaded_at"].as_str());
    let id = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 0}));
    assert_eq!(d.wait_finished(id)["result"], "done by v1");
}

#[test]
fn a_reload_leaves_running_tasks_on_the_old_code() {
    let v2 = demo_v2().to_owned();
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let old = d.create("demo", "run", json!({"steps": 40, "sleep_ms": 50}));
    d.wait_task(old, WAIT, |t| t["progress"].as_i64().unwrap_or(0) > 0);
    replace_by_rename(&v2, &home.plugins_dir(), "demo.so");
    let version = wait_loads(&d, 2);
    assert!(version.contains("-v2+"));
    let new = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 0}));
    let new = d.wait_finished(new);
    assert_eq!(new["result"], "done by v2");
    assert_eq!(new["worker_version"].as_str(), Some(version.as_str()));
    let old = d.wait_finished(old);
    assert_eq!(old["status"], "completed");
    assert_eq!(
        old["result"], "done by v1",
        "the running task finished on the code it started with"
    );
    assert!(!old["worker_version"].as_str().unwrap().contains("-v2"));
}

#[test]
fn removing_orphans_and_restoring_brings_back_settings_flags_and_waiting_tasks() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let r = d.request(
        "PUT",
        "/stask/workers/demo/settings",
        Some(r#"{"timeout": 60, "note": "kept"}"#),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let due = now_secs() + 3;
    let waiting = d.create("demo", "noop", json!({"start_at": due}));

    std::fs::remove_file(home.plugins_dir().join("demo.so")).unwrap();
    d.log
        .wait_for(WAIT, |l| l.contains("worker orphaned"))
        .expect("orphaned");
    assert_eq!(worker(&d, "demo")["state"], "orphaned");
    let refused = d.post("/stask/workers/demo/tasks/noop", &json!({}));
    assert_eq!(refused.status, 409);
    assert!(refused.body["message"]
        .as_str()
        .unwrap()
        .contains("orphaned"));

    // Due 3 s after creation: the removal (~0.3 s) is done long before. Past its start time
    // the task still waits, visibly pending.
    while now_secs() <= due + 1 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.task(waiting)["status"], "pending");

    home.install_worker("demo");
    wait_loads(&d, 2);
    let restored = worker(&d, "demo");
    assert_eq!(restored["state"], "loaded");
    assert_eq!(restored["active"], true);
    assert_eq!(restored["settings"]["note"], "kept");
    assert_eq!(restored["settings"]["timeout"], 60);
    assert_eq!(d.wait_finished(waiting)["status"], "completed");

    // clean-orphaned removes only orphaned rows and keeps task history
    std::fs::remove_file(home.plugins_dir().join("demo.so")).unwrap();
    d.log.wait_count(WAIT, 2, |l| l.contains("worker orphaned"));
    let r = d.post("/stask/workers/clean-orphaned", &json!({}));
    assert_eq!(r.body["identifiers"], json!(["demo"]));
    assert_eq!(d.get("/stask/workers/demo").status, 404);
    assert_eq!(d.task(waiting)["status"], "completed");
}

#[test]
fn a_bad_file_over_a_good_one_keeps_the_good_version_serving() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let before = worker(&d, "demo");
    for (name, bytes) in [
        ("text", b"this is not a library".to_vec()),
        (
            "truncated",
            std::fs::read(v1()).unwrap()[..200_000].to_vec(),
        ),
    ] {
        let refusals = d.log.count(|l| l.contains("plugin refused"));
        std::fs::write(home.plugins_dir().join("demo.so"), &bytes).unwrap();
        d.log
            .wait_count(WAIT, refusals + 1, |l| l.contains("plugin refused"));
        let w = worker(&d, "demo");
        assert_eq!(
            w["state"], "loaded",
            "{name}: the previous version still serves"
        );
        assert_eq!(w["version"], before["version"]);
        assert!(
            w["load_error"]
                .as_str()
                .unwrap()
                .contains("previous version still serving"),
            "{name}: {w}"
        );
        let id = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 0}));
        assert_eq!(d.wait_finished(id)["result"], "done by v1");
    }
    let files = d.get("/stask/workers").body["plugin_files"].clone();
    let entry = files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "demo.so")
        .unwrap()
        .clone();
    assert_eq!(entry["state"], "error");
    assert!(
        entry["error"]
            .as_str()
            .unwrap()
            .contains("incomplete library"),
        "{entry}"
    );
}

#[test]
fn deactivation_survives_reloads_and_restarts() {
    let v2 = demo_v2().to_owned();
    let home = Home::with_workers(&["demo"]);
    let token = home.token();
    let d = home.serve_with_token(token.clone());
    assert_eq!(
        d.post("/stask/workers/demo/deactivate", &json!({})).status,
        200
    );
    assert_eq!(
        d.post("/stask/workers/demo/tasks/noop", &json!({})).status,
        409
    );
    replace_by_rename(&v2, &home.plugins_dir(), "demo.so");
    wait_loads(&d, 2);
    assert_eq!(worker(&d, "demo")["active"], false);
    d.terminate();

    let d = home.serve_with_token(token);
    assert_eq!(worker(&d, "demo")["active"], false);
    let r = d.post("/stask/workers/demo/tasks/noop", &json!({}));
    assert_eq!(r.status, 409);
    assert!(r.body["message"].as_str().unwrap().contains("inactive"));
    assert_eq!(
        d.post("/stask/workers/demo/activate", &json!({})).status,
        200
    );
    let id = d.create("demo", "noop", json!({}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
}

#[test]
fn settings_are_validated_and_reach_the_next_task() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let r = d.request(
        "PUT",
        "/stask/workers/demo/settings",
        Some(r#"{"timeout": "soon"}"#),
    );
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("timeout must be a whole number of seconds between 0 and 604800"));
    assert_eq!(
        d.request("PUT", "/stask/workers/demo/settings", Some("[1]"))
            .status,
        422
    );
    // A 1 s timeout now applies to the next task: it is stopped and fails as timed out.
    let r = d.request(
        "PUT",
        "/stask/workers/demo/settings",
        Some(r#"{"timeout": 1}"#),
    );
    assert_eq!(r.status, 200);
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 100, "sleep_ms": 50, "max_attempts": 1}),
    );
    let t = d.wait_finished(id);
    assert_eq!(t["status"], "failed");
    assert!(
        t["message"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 1s"),
        "{t}"
    );
}

#[test]
fn memory_of_replaced_versions_is_kept_and_warned_about() {
    let v2 = demo_v2().to_owned();
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let before = rss(d.pid());
    let started = Instant::now();
    let reloads = 101;
    for i in 0..reloads {
        let from = if i % 2 == 0 { v2.clone() } else { v1() };
        replace_by_rename(&from, &home.plugins_dir(), "demo.so");
        wait_loads(&d, i + 2);
    }
    let after = rss(d.pid());
    eprintln!(
        "{reloads} reloads of the debug demo plugin: RSS {before} kB -> {after} kB ({:.0} kB per reload), {:.0} ms per reload",
        (after.saturating_sub(before)) as f64 / reloads as f64,
        started.elapsed().as_millis() as f64 / reloads as f64
    );
    let warning = d
        .log
        .wait_for(WAIT, |l| l.contains("restart the daemon to reclaim it"))
        .expect("the reload warning");
    // It says how much disk the copies hold (101 loads at the warning).
    assert!(
        warning.contains("copies hold") && warning.contains("plugins-loaded"),
        "{warning}"
    );
    let id = d.create("demo", "noop", json!({}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
}

#[test]
fn reloads_and_orphans_are_announced_on_the_event_stream() {
    let v2 = demo_v2().to_owned();
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let response = ureq::get(&format!("{}/stask/events", d.base))
        .set("Authorization", &format!("Bearer {}", d.token))
        .call()
        .expect("event stream");
    assert_eq!(response.content_type(), "text/event-stream");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(response.into_reader())
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next_data = |kind: &str| -> Value {
        let deadline = Instant::now() + WAIT;
        let mut in_event = false;
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no {kind} event"));
            if line == format!("event: {kind}") {
                in_event = true;
            } else if in_event {
                if let Some(data) = line.strip_prefix("data: ") {
                    return serde_json::from_str(data).unwrap();
                }
            }
        }
    };
    replace_by_rename(&v2, &home.plugins_dir(), "demo.so");
    let loaded = next_data("worker_loaded");
    assert_eq!(loaded["identifier"], "demo");
    assert!(loaded["version"].as_str().unwrap().contains("-v2+"));
    std::fs::remove_file(home.plugins_dir().join("demo.so")).unwrap();
    assert_eq!(next_data("worker_orphaned")["identifier"], "demo");
}

#[test]
fn tasks_claimed_ahead_go_back_to_pending_when_their_worker_is_deactivated() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "1");
    home.set_env("STASK_PREFETCH", "8");
    let d = home.serve();
    // Short runs switch claiming ahead on.
    for _ in 0..3 {
        let id = d.create("demo", "noop", json!({}));
        assert_eq!(d.wait_finished(id)["status"], "completed");
    }
    let long = d.create("demo", "run", json!({"steps": 2000, "sleep_ms": 10}));
    d.wait_task(long, Duration::from_secs(30), |t| t["status"] == "running");
    let behind: Vec<i64> = (0..2)
        .map(|_| d.create("demo", "noop", json!({})))
        .collect();
    for &id in &behind {
        d.wait_task(id, Duration::from_secs(30), |t| t["status"] == "preparing");
    }

    assert_eq!(
        d.post("/stask/workers/demo/deactivate", &json!({})).status,
        200
    );
    for &id in &behind {
        let t = d.task(id);
        assert_eq!(t["status"], "pending", "{t}");
        assert_eq!(t["attempts"], 0, "{t}");
    }
    // The pool thread freed by the long task must not start them either.
    assert_eq!(
        d.post(&format!("/stask/tasks/{long}/cancel"), &json!({}))
            .status,
        200
    );
    assert_eq!(d.wait_finished(long)["status"], "cancelled");
    d.log
        .wait_for(Duration::from_secs(10), |l| l.contains("gave back tasks"))
        .expect("the give-back is logged");
    for &id in &behind {
        assert_eq!(d.task(id)["status"], "pending");
    }

    assert_eq!(
        d.post("/stask/workers/demo/activate", &json!({})).status,
        200
    );
    for &id in &behind {
        assert_eq!(d.wait_finished(id)["status"], "completed");
    }
}

/// Waits until the worker's state is `state`; returns the worker.
fn wait_state(d: &Daemon, identifier: &str, state: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let w = worker(d, identifier);
        if w["state"] == state {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "{identifier} is not {state}: {w}\nlog:\n{}",
            d.log.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The entry of plugins.d/`name` in `GET /stask/workers`.
fn plugin_file(d: &Daemon, name: &str) -> Value {
    let files = d.get("/stask/workers").body["plugin_files"].clone();
    files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no plugin_files entry for {name}: {files:#}"))
}

/// Waits until the daemon logged the refusal of `name`.
fn wait_refused(d: &Daemon, name: &str) {
    d.log
        .wait_for(WAIT, |l| {
            l.contains("plugin refused") && l.contains(&format!("file=\"{name}\""))
        })
        .unwrap_or_else(|| panic!("{name} was not refused; log:\n{}", d.log.text()));
}

#[test]
fn a_fifo_in_the_folder_stalls_neither_the_watcher_nor_the_api() {
    let home = Home::with_workers(&[]);
    let d = home.serve();
    let dir = home.plugins_dir();
    let fifo = std::ffi::CString::new(dir.join("f.so").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    wait_refused(&d, "f.so");
    assert_eq!(
        plugin_file(&d, "f.so")["error"],
        "not a library: not a regular file (a FIFO (named pipe))"
    );

    // Before the fix the watcher stayed blocked opening the FIFO: this never loaded.
    let started = Instant::now();
    std::fs::copy(v1(), dir.join("demo.so")).unwrap();
    wait_loads(&d, 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "loaded after {:?}",
        started.elapsed()
    );
    for route in ["/stask/workers/discover", "/stask/workers/rescan"] {
        let started = Instant::now();
        let r = d.post(route, &json!({}));
        assert_eq!(r.status, 200, "{route}: {:?}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{route} took {:?}",
            started.elapsed()
        );
        let fifo = r.body["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["file"] == "f.so")
            .cloned()
            .unwrap_or_else(|| panic!("{route}: {}", r.body));
        assert_eq!(fifo["outcome"], "refused", "{fifo}");
        assert!(fifo["error"]
            .as_str()
            .unwrap()
            .contains("not a regular file"));
    }
    let id = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 0}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
}

#[test]
fn huge_and_endless_files_are_refused_without_reading_them() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let dir = home.plugins_dir();
    let before = d.peak_rss_kb();
    // Sparse: 2 GiB of length, no disk. Before the fix it was read whole (2.1 GB RSS).
    std::fs::File::create(dir.join("big.so"))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    wait_refused(&d, "big.so");
    let after = d.peak_rss_kb();
    eprintln!("peak RSS {before} kB before the 2 GiB file, {after} kB after");
    assert!(
        after < before + 64 * 1024,
        "peak RSS grew from {before} kB to {after} kB: the file was read"
    );
    assert_eq!(
        plugin_file(&d, "big.so")["error"],
        format!(
            "too large for a plugin: {} bytes, over the limit of {} bytes (STASK_MAX_PLUGIN_BYTES)",
            2u64 << 30,
            256u64 << 20
        )
    );

    // Endless: refused by its type, before any read (created only once the size check held,
    // so a daemon without the fix fails above instead of filling the memory).
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.so")).unwrap();
    wait_refused(&d, "zero.so");
    assert_eq!(
        plugin_file(&d, "zero.so")["error"],
        "not a library: not a regular file (a character device)"
    );
    let r = d.post("/stask/workers/discover", &json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(d.peak_rss_kb() < before + 64 * 1024);
    let id = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 0}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
}

#[test]
fn a_replaced_or_removed_plugins_folder_is_noticed_and_the_new_one_watched() {
    let home = Home::with_workers(&["demo", "product"]);
    let d = home.serve();
    let dir = home.plugins_dir();

    // mv away + mkdir: the watch followed the old folder before the fix.
    std::fs::rename(&dir, home.path().join("plugins.away")).unwrap();
    std::fs::create_dir(&dir).unwrap();
    wait_state(&d, "demo", "orphaned");
    wait_state(&d, "product", "orphaned");
    std::fs::copy(v1(), dir.join("demo.so")).unwrap();
    wait_state(&d, "demo", "loaded");
    assert_eq!(worker(&d, "product")["state"], "orphaned");
    let id = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 0}));
    assert_eq!(d.wait_finished(id)["result"], "done by v1");

    // Removed, then created again.
    std::fs::remove_dir_all(&dir).unwrap();
    wait_state(&d, "demo", "orphaned");
    std::fs::create_dir(&dir).unwrap();
    home.install_worker("product");
    wait_state(&d, "product", "loaded");
    home.install_worker("demo");
    wait_state(&d, "demo", "loaded");
    let id = d.create("demo", "run", json!({"steps": 1, "sleep_ms": 0}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
    assert!(
        d.log
            .count(|l| l.contains("the plugins folder was replaced"))
            >= 2
    );
}

/// The library copies in `storage/plugins-loaded/`: (path, size).
fn loaded_copies(home: &Home) -> Vec<(std::path::PathBuf, u64)> {
    let dir = home.storage().join("plugins-loaded");
    let mut copies: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| (e.path(), e.metadata().unwrap().len()))
            .collect(),
        Err(_) => Vec::new(),
    };
    copies.sort();
    copies
}

#[test]
fn reload_copies_stay_visible_on_disk_are_reported_and_go_at_exit_and_restart() {
    let v2 = demo_v2().to_owned();
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let reloads = 4;
    let mut expected = size(&v1());
    for i in 0..reloads {
        let from = if i % 2 == 0 { v2.clone() } else { v1() };
        expected += size(&from);
        replace_by_rename(&from, &home.plugins_dir(), "demo.so");
        wait_loads(&d, i + 2);
    }

    // One file per load, where du sees it, and exactly what the API reports.
    let copies = loaded_copies(&home);
    assert_eq!(copies.len(), reloads + 1, "{copies:?}");
    assert_eq!(copies.iter().map(|(_, n)| n).sum::<u64>(), expected);
    let reported = d.get("/stask/workers").body["loaded_copies"].clone();
    assert_eq!(
        reported,
        json!({"count": reloads + 1, "bytes": expected}),
        "GET /stask/workers reports the copies"
    );
    // The daemon maps these very files, none of them deleted.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", d.pid())).unwrap();
    for (path, _) in &copies {
        assert!(
            maps.contains(path.to_str().unwrap()),
            "{path:?} is not mapped"
        );
    }
    assert!(
        !maps
            .lines()
            .any(|l| l.ends_with("(deleted)") && l.contains("/storage/")),
        "a deleted library is still mapped:\n{maps}"
    );

    // Killed: the copies stay behind until the next start, which removes them.
    d.kill9();
    assert_eq!(loaded_copies(&home).len(), reloads + 1);
    let d = home.serve();
    let copies = loaded_copies(&home);
    assert_eq!(copies.len(), 1, "only the new start's copy: {copies:?}");
    assert_eq!(
        d.get("/stask/workers").body["loaded_copies"],
        json!({"count": 1, "bytes": copies[0].1})
    );
    // A clean stop removes its own.
    assert_eq!(d.terminate(), 0);
    assert!(loaded_copies(&home).is_empty());
    // So does a discover by the CLI, which loads the libraries in its own process.
    let out = home.cli(&["workers", "discover"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(loaded_copies(&home).is_empty());
}
