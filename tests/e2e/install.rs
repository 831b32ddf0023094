//! `cargo install --path host` gives a binary that runs on its own: the admin UI and the
//! migrations are inside it, so it serves from any folder, far from the source tree.

use stask_tests::{library, target_dir, workspace};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn the_installed_binary_serves_without_the_source_tree() {
    if stask_tests::sqlite_only("installing does not depend on the database") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // The debug profile and the workspace's target folder: what the suite built is reused.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "install",
            "--path",
            "host",
            "--debug",
            "--locked",
            "--offline",
            "--quiet",
        ])
        .arg("--root")
        .arg(root.path())
        .arg("--target-dir")
        .arg(target_dir())
        .current_dir(workspace())
        .status()
        .expect("cargo install runs");
    assert!(status.success(), "cargo install --path host failed");
    let bin = root.path().join("bin/stask");
    assert!(bin.is_file(), "{} installed", bin.display());

    // A home and a working folder outside the checkout.
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("plugins.d")).unwrap();
    std::fs::copy(
        library("stask_worker_demo"),
        home.path().join("plugins.d/demo.so"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .env("STASK_HOME", home.path())
            .env_remove("STASK_DATABASE_URL")
            .current_dir(elsewhere.path())
            .output()
            .unwrap()
    };
    assert!(run(&["migrate"]).status.success());
    let token = String::from_utf8(run(&["token", "create", "--name", "t"]).stdout).unwrap();
    // The token is the last line.
    let token = token
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_owned();
    let mut daemon = Command::new(&bin)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("STASK_HOME", home.path())
        .env_remove("STASK_DATABASE_URL")
        .current_dir(elsewhere.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its log is read to the end (a closed pipe would fail its next log line).
    let stderr = BufReader::new(daemon.stderr.take().unwrap());
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ':'))
                    .collect();
                let _ = ready_tx.send(addr);
            }
        }
    });
    let addr = ready
        .recv_timeout(Duration::from_secs(60))
        .expect("the daemon started");
    let base = format!("http://{addr}");
    let ui = ureq::get(&format!("{base}/ui/"))
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(ui.contains("<html"), "the UI is served: {ui:.200}");
    let worker: serde_json::Value = ureq::get(&format!("{base}/stask/workers/demo"))
        .set("Authorization", &format!("Bearer {token}"))
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(worker["worker"]["state"], "loaded", "{worker}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    assert!(daemon.wait().unwrap().success());
}
