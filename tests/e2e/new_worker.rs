//! `stask new-worker`: a worker written from scratch outside this repository builds against
//! the interface crate, passes its own unit tests, and runs when dropped into a running daemon.

use serde_json::json;
use stask_tests::{stask_bin, target_dir, wait_until, workspace, Home};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Runs cargo on the generated crate, offline, in a target folder of its own that is kept
/// between runs (the first build compiles abi_stable once).
fn cargo(crate_dir: &Path, args: &[&str]) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(args)
        .args(["--offline", "--quiet"])
        .env("CARGO_TARGET_DIR", target_dir().join("new-worker"))
        .current_dir(crate_dir)
        .output()
        .expect("cargo runs")
}

#[test]
fn a_scaffolded_worker_builds_passes_its_tests_and_runs_in_a_live_daemon() {
    if stask_tests::sqlite_only("building a plugin does not depend on the database") {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    let crate_dir = outside.path().join("hello");
    let api = format!("path:{}", workspace().join("plugin-api").display());
    let made = Command::new(stask_bin())
        .args(["new-worker", "hello_world", "--api", &api, "--path"])
        .arg(&crate_dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(said.contains("created the worker 'hello_world'"), "{said}");
    // The workspace's lock file pins the versions this checkout was built and tested with, so
    // the offline build finds every crate in the local registry cache.
    std::fs::copy(workspace().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();

    let tested = cargo(&crate_dir, &["test"]);
    let out = String::from_utf8_lossy(&tested.stdout);
    assert!(
        tested.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(out.contains("3 passed"), "the scaffold's tests ran: {out}");

    let built = cargo(&crate_dir, &["build"]);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let library = target_dir().join("new-worker/debug/libstask_worker_hello_world.so");
    assert!(library.is_file(), "{}", library.display());

    // Dropped into a daemon that is already running: registered without a restart, then run.
    let home = Home::with_workers(&[]);
    let daemon = home.serve();
    home.install_file(&library, "libstask_worker_hello_world.so");
    wait_until("the new worker loaded", Duration::from_secs(30), || {
        let worker = daemon.get("/stask/workers/hello_world");
        worker.status == 200 && worker.body["worker"]["state"] == "loaded"
    });
    let id = daemon.create("hello_world", "greet", json!({"names": ["Ada", "Linus"]}));
    let task = daemon.wait_finished(id);
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["result"], "greeted 2", "{task}");
    assert_eq!(task["progress"], 100, "{task}");
}

#[test]
fn a_bad_name_or_an_occupied_folder_is_refused_with_its_exit_code() {
    if stask_tests::sqlite_only("the scaffold does not depend on the database") {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    let bad = Command::new(stask_bin())
        .args(["new-worker", "Not A Name", "--path"])
        .arg(outside.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid worker identifier"));
    assert!(!outside.path().join("x").exists(), "nothing was written");

    std::fs::write(outside.path().join("mine.txt"), "keep").unwrap();
    let occupied = Command::new(stask_bin())
        .args(["new-worker", "greeter", "--path"])
        .arg(outside.path())
        .output()
        .unwrap();
    assert_eq!(occupied.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&occupied.stderr).contains("not an empty folder"));
    let bad_api = Command::new(stask_bin())
        .args(["new-worker", "greeter", "--api", "svn:x"])
        .current_dir(outside.path())
        .output()
        .unwrap();
    assert_eq!(bad_api.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&bad_api.stderr).contains("--api must be"));
}
