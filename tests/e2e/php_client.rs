//! The PHP client (`clients/php/`) against the real daemon: Debian's `phpunit` runs the
//! package's tests with `STASK_URL` / `STASK_TOKEN` naming a daemon started here with the
//! example plugins, on whatever database the run uses. One test per PHPUnit file, each with
//! its own daemon (the files change workers and delete tasks); they run one at a time, as
//! some of them time what the daemon does (a pass that waits for running tasks, a discover
//! that beats the plugin watcher).
//!
//! `tests/setup.sh` installs `php-cli`, `php-curl`, `phpunit` and `php-laravel-framework`.

use stask_tests::{stask_bin, workspace, Daemon, Home};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// One PHPUnit run at a time (see the module comment).
static SERIAL: Mutex<()> = Mutex::new(());

const EXAMPLE_WORKERS: &[&str] = &["demo", "product", "email_campaign", "system"];

fn package() -> PathBuf {
    workspace().join("clients/php")
}

/// Runs `phpunit tests/<file>` in clients/php with the daemon's address and `extra`
/// environment; asserts every test ran and passed, with PHPUnit's output (and the daemon's
/// log) on failure.
fn phpunit(file: &str, home: &Home, daemon: &Daemon, extra: &[(&str, String)]) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut command = Command::new("phpunit");
    command
        .current_dir(package())
        .args(["--configuration", "phpunit.xml"])
        .arg(format!("tests/{file}"))
        // A developer's own settings must not point the tests elsewhere.
        .env_remove("STASK_BIN")
        .env_remove("STASK_HOME")
        .env("STASK_URL", &daemon.base)
        .env("STASK_TOKEN", &daemon.token)
        .env("STASK_STORAGE", home.storage())
        .env("STASK_PLUGINS", home.plugins_dir())
        .env("STASK_DAEMON_HOME", home.path());
    for (key, value) in extra {
        command.env(key, value);
    }
    let out = command
        .output()
        .expect("phpunit runs (tests/setup.sh installs phpunit, php-curl, php-laravel-framework)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = || {
        format!(
            "phpunit tests/{file} ({}):\n{stdout}{stderr}\ndaemon log:\n{}",
            out.status,
            daemon.log.text()
        )
    };
    assert!(out.status.success(), "{}", report());
    // "OK (n tests, m assertions)" only when nothing was skipped, incomplete or risky.
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("OK ("))
        .unwrap_or_else(|| panic!("no clean OK line: {}", report()));
    let tests: usize = summary
        .trim_start_matches("OK (")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(tests > 0, "no test ran: {}", report());
}

/// A daemon with the example plugins and the PHPUnit file run against it.
fn run(file: &str) {
    let home = Home::with_workers(EXAMPLE_WORKERS);
    let daemon = home.serve();
    phpunit(file, &home, &daemon, &[]);
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn every_client_call() {
    run("ClientTest.php");
}

#[test]
fn the_seeds_quick_start_and_usage_examples_through_the_facade() {
    run("SeedQuickStartTest.php");
}

#[test]
fn the_seeds_worker_management_samples_through_the_facade() {
    run("SeedWorkersTest.php");
}

#[test]
fn the_seeds_task_statistics_and_cleanup_samples_through_the_facade() {
    run("SeedStatisticsTest.php");
}

#[test]
fn batches_are_created_followed_and_cancelled_through_the_client_and_facade() {
    run("BatchesTest.php");
}

#[test]
fn errors_are_typed_exceptions_with_the_servers_message() {
    run("ErrorsTest.php");
}

#[test]
fn the_laravel_provider_config_and_alias_with_debians_illuminate() {
    run("LaravelTest.php");
}

#[test]
fn process_pending_tasks_in_a_cron_installation_runs_stask_process() {
    // The cron home has no daemon; the test daemon (on its own home) is there for the
    // conflict case and because every PHPUnit run names one.
    let cron = Home::with_workers(&["demo"]);
    let home = Home::with_workers(EXAMPLE_WORKERS);
    let daemon = home.serve();
    // The cron home's environment (its database URL, when not on SQLite) for `stask` runs.
    let mut extra: Vec<(&str, String)> = cron
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    extra.push(("STASK_BIN", stask_bin().to_string_lossy().into_owned()));
    extra.push((
        "STASK_CRON_HOME",
        cron.path().to_string_lossy().into_owned(),
    ));
    phpunit("CronTest.php", &home, &daemon, &extra);
    let stats = cron.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(&stats.stdout).expect("stats JSON");
    assert_eq!(
        (stats["completed"].as_i64(), stats["pending"].as_i64()),
        (Some(3), Some(0)),
        "the passes ran the three tasks: {stats}"
    );
    assert_eq!(daemon.terminate(), 0);
}
