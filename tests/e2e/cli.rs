//! The `stask` command line: tokens, tasks without a daemon (discover, create, the cron pass),
//! exit codes scripts rely on (0 ok, 3 not found, 4 conflict, 5 invalid input, 6 task ended
//! failed or cancelled), the one-daemon-per-home lock, migrations and SIGTERM.

use serde_json::Value;
use stask_tests::{stask_bin, CliOutput, Home};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `stask <args>` like `Home::cli`, but kills it and fails the test if it has not exited
/// within `timeout` (for commands that would run forever if the behaviour under test broke).
fn cli_within(
    home: &Home,
    args: &[&str],
    extra_env: &[(&str, &str)],
    timeout: Duration,
) -> CliOutput {
    let mut cmd = Command::new(stask_bin());
    cmd.arg("--home").arg(home.path());
    for (k, v) in &home.env {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running stask");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("waiting for stask").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "stask {args:?} did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn ok(out: &CliOutput) -> &str {
    assert_eq!(out.code, 0, "{out:#?}");
    &out.stdout
}

#[track_caller]
fn fails(out: &CliOutput, code: i32, stderr_has: &[&str]) {
    assert_eq!(out.code, code, "{out:#?}");
    for text in stderr_has {
        assert!(
            out.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            out.stderr
        );
    }
}

fn is_token(s: &str) -> bool {
    s.len() == 6 + 64
        && s.starts_with("stask_")
        && s[6..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `task create` and the id it printed.
#[track_caller]
fn create(home: &Home, args: &[&str]) -> i64 {
    let mut all = vec!["task", "create"];
    all.extend_from_slice(args);
    let out = home.cli(&all);
    let stdout = ok(&out);
    stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("task create printed {stdout:?}, not an id"))
}

/// `task show ID --json`.
#[track_caller]
fn show(home: &Home, id: i64) -> Value {
    let out = home.cli(&["task", "show", &id.to_string(), "--json"]);
    serde_json::from_str(ok(&out).trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[test]
fn tokens_are_printed_once_listed_without_secrets_and_names_are_unique() {
    let home = Home::with_workers(&[]);
    let out = home.cli(&["token", "create", "--name", "x"]);
    let stdout = ok(&out);
    let secret = stdout.lines().last().unwrap_or("").to_owned();
    assert!(
        is_token(&secret),
        "last stdout line {secret:?} is not a token"
    );
    assert_eq!(
        stdout.trim(),
        secret,
        "the token is alone on stdout, notes go to stderr"
    );
    assert!(!out.stderr.contains(&secret[6..]), "{}", out.stderr);

    let out = home.cli(&["token", "list"]);
    let listed = ok(&out);
    let row = listed
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("x"))
        .unwrap_or_else(|| panic!("token x not listed:\n{listed}"));
    assert!(
        row.contains(&secret[..12]),
        "the clear prefix identifies it: {row}"
    );
    // No 12-character piece of the secret part appears anywhere.
    for start in 12..=secret.len() - 12 {
        assert!(
            !listed.contains(&secret[start..start + 12]),
            "token list shows part of the secret:\n{listed}"
        );
    }
    assert!(row.contains("never used"), "{row}");

    fails(
        &home.cli(&["token", "create", "--name", "x"]),
        4,
        &["already exists"],
    );
    fails(&home.cli(&["token", "create", "--name", ""]), 5, &[]);
    fails(&home.cli(&["token", "revoke", "nobody"]), 3, &["nobody"]);

    // Revoking frees the name; the new token is a different secret.
    ok(&home.cli(&["token", "revoke", "x"]));
    fails(&home.cli(&["token", "revoke", "x"]), 3, &[]);
    let out = home.cli(&["token", "create", "--name", "x"]);
    let second = ok(&out).lines().last().unwrap_or("").to_owned();
    assert!(is_token(&second) && second != secret);
    let out = home.cli(&["token", "list"]);
    let rows: Vec<&str> = ok(&out)
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("x"))
        .collect();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows[0].contains("revoked"), "{}", rows[0]);
    assert!(!rows[1].contains("revoked"), "{}", rows[1]);
}

/// Issue 15, point 7: workers are discovered automatically. In a fresh home whose plugins.d/
/// has the demo library and whose registry is empty (no `workers discover`), `task create`
/// finds the worker and `process` runs the task; `--user` records the CMS user and lists
/// filter by it.
#[test]
fn tasks_run_without_a_daemon_or_an_explicit_discover_through_the_cron_pass() {
    let home = Home::with_workers(&["demo"]);
    let out = home.cli(&["workers", "list", "--json"]);
    assert_eq!(ok(&out).trim(), "[]", "nothing is registered yet");

    let id = create(
        &home,
        &[
            "demo",
            "run",
            "--data",
            r#"{"steps": 2, "sleep_ms": 1}"#,
            "--user",
            "42",
        ],
    );
    let task = show(&home, id);
    assert_eq!(task["status"], "pending", "{task}");
    assert_eq!(task["identifier"], "demo");
    assert_eq!(task["action"], "run");
    assert_eq!(task["started_by"], 42, "{task}");
    assert_eq!(task["token_id"], Value::Null, "not created with a token");
    let out = home.cli(&["workers", "list", "--json"]);
    let workers: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert_eq!(workers[0]["identifier"], "demo", "{workers}");

    // An explicit discover still works (and loads the file in its own process).
    let out = home.cli(&["workers", "discover"]);
    let stdout = ok(&out);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("demo.so: loaded demo ")),
        "{stdout}"
    );
    let noop = create(&home, &["demo", "noop"]);
    assert_eq!(show(&home, noop)["started_by"], Value::Null);

    let out = cli_within(&home, &["process"], &[], Duration::from_secs(60));
    assert_eq!(ok(&out).trim(), "processed 2 tasks");
    let task = show(&home, id);
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["attempts"], 1);
    assert_eq!(show(&home, noop)["status"], "completed");

    // `--user` filters the list; a user id is a positive whole number (a usage error else).
    let listed = |user: &str| -> Vec<i64> {
        let out = home.cli(&["task", "list", "--json", "--user", user]);
        let list: Value = serde_json::from_str(ok(&out).trim()).unwrap();
        list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(listed("42"), vec![id]);
    assert_eq!(listed("43"), Vec::<i64>::new());
    fails(&home.cli(&["task", "list", "--user", "0"]), 2, &["user id"]);
    fails(
        &home.cli(&["task", "create", "demo", "noop", "--user", "x"]),
        2,
        &["user id"],
    );
    let out = cli_within(&home, &["process"], &[], Duration::from_secs(60));
    assert_eq!(ok(&out).trim(), "processed 0 tasks", "nothing is run twice");

    // The human view of the same task.
    let out = home.cli(&["task", "show", &id.to_string()]);
    let text = ok(&out);
    assert!(text.starts_with(&format!("task {id} demo:run")), "{text}");
    assert!(text.contains("completed"), "{text}");
    assert!(text.contains("user      42"), "{text}");

    // Refused input, each with its exit code.
    fails(
        &home.cli(&["task", "create", "demo", "nope"]),
        3,
        &["nope", "noop", "run"],
    );
    fails(
        &home.cli(&["task", "create", "nosuch", "noop"]),
        3,
        &["unknown worker", "demo"],
    );
    fails(
        &home.cli(&["task", "create", "demo", "noop", "--data", "[1]"]),
        5,
        &[],
    );
    fails(
        &home.cli(&["task", "create", "demo", "noop", "--data", "{oops"]),
        5,
        &["--data"],
    );
    fails(
        &home.cli(&["task", "create", "demo", "noop", "--priority", "urgent"]),
        5,
        &["urgent"],
    );
    fails(
        &home.cli(&["task", "create", "demo", "noop", "--start-at", "someday"]),
        5,
        &[],
    );
    fails(
        &home.cli(&["task", "create", "demo", "noop", "--max-attempts", "0"]),
        5,
        &[],
    );
    fails(&home.cli(&["task", "create", "demo"]), 2, &[]);
    fails(&home.cli(&["task", "show", "999999"]), 3, &["999999"]);
    let out = home.cli(&["stats", "--json"]);
    let stats: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert_eq!(stats["total"], 2, "refused creates stored nothing: {stats}");
}

/// Issue 15, point 7: a worker that is truly absent (no library in plugins.d/ serves it) is
/// still refused after the discovery `task create` runs, with the workers that are known.
#[test]
fn a_worker_absent_from_plugins_d_is_refused_after_the_automatic_discovery() {
    let home = Home::with_workers(&[]);
    fails(
        &home.cli(&["task", "create", "demo", "run"]),
        3,
        &["unknown worker 'demo' (known workers: none)"],
    );
    home.install_worker("demo");
    fails(
        &home.cli(&["task", "create", "nosuch", "run"]),
        3,
        &["unknown worker 'nosuch' (known workers: demo)"],
    );
    let out = home.cli(&["stats", "--json"]);
    let stats: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert_eq!(stats["total"], 0, "{stats}");
}

#[test]
fn watch_stats_and_clean() {
    let home = Home::with_workers(&["demo"]);
    ok(&home.cli(&["workers", "discover"]));
    let good = create(
        &home,
        &[
            "demo",
            "run",
            "--data",
            r#"{"steps": 1, "sleep_ms": 0, "log_steps": true, "result": "watched it"}"#,
        ],
    );
    let bad = create(
        &home,
        &["demo", "run", "--data", r#"{"fail_permanent": true}"#],
    );
    let quick = create(&home, &["demo", "noop", "--priority", "high"]);
    let out = cli_within(&home, &["process"], &[], Duration::from_secs(60));
    assert_eq!(ok(&out).trim(), "processed 3 tasks");
    // Scheduled for later: neither run by the pass nor cleaned.
    let later = create(
        &home,
        &["demo", "noop", "--start-at", "2999-01-01T00:00:00Z"],
    );
    let cancelled = create(
        &home,
        &["demo", "noop", "--start-at", "2999-01-01T00:00:00Z"],
    );
    ok(&home.cli(&["task", "cancel", &cancelled.to_string()]));

    let watch = |id: i64| {
        cli_within(
            &home,
            &["task", "watch", &id.to_string()],
            &[],
            Duration::from_secs(30),
        )
    };
    let out = watch(good);
    assert!(ok(&out).contains("watched it"), "{out:?}");
    // The task's log lines, each once, before its result.
    let printed = ok(&out);
    assert_eq!(printed.matches("[info] step 1 done").count(), 1, "{out:?}");
    assert!(
        printed.find("step 1 done") < printed.find("watched it"),
        "{out:?}"
    );
    fails(&watch(bad), 6, &["failed"]);
    fails(&watch(cancelled), 6, &["cancelled"]);
    fails(&watch(999_999), 3, &[]);

    let out = home.cli(&["stats", "--json"]);
    let stats: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    for (key, n) in [
        ("pending", 1),
        ("running", 0),
        ("completed", 2),
        ("failed", 1),
        ("cancelled", 1),
        ("total", 5),
    ] {
        assert_eq!(stats[key], n, "{key}: {stats}");
    }
    let out = home.cli(&["stats"]);
    assert!(ok(&out).contains("completed 2"), "{out:?}");

    let out = home.cli(&["clean", "--days", "0"]);
    assert!(ok(&out).starts_with("deleted 4 finished tasks"), "{out:?}");
    for id in [good, bad, quick, cancelled] {
        fails(&home.cli(&["task", "show", &id.to_string()]), 3, &[]);
    }
    assert_eq!(show(&home, later)["status"], "pending");
    let out = home.cli(&["task", "list", "--json"]);
    let list: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["tasks"][0]["id"], later);
}

#[test]
fn one_daemon_per_home() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let bind = [("STASK_BIND", "127.0.0.1:0")];
    let out = cli_within(&home, &["serve"], &bind, Duration::from_secs(30));
    fails(&out, 4, &["another stask daemon"]);
    let out = cli_within(&home, &["process"], &[], Duration::from_secs(30));
    fails(&out, 4, &["another stask daemon"]);
    // The first daemon is unaffected.
    assert_eq!(d.get("/stask/health").status, 200);
    assert_eq!(d.terminate(), 0);
    // With it gone, the lock is free again.
    let out = cli_within(&home, &["process"], &[], Duration::from_secs(60));
    assert_eq!(ok(&out).trim(), "processed 0 tasks");
}

#[test]
fn migrate_is_idempotent_and_version_prints_the_version() {
    let home = Home::without_database(&[]);
    let out = home.cli(&["migrate"]);
    assert!(
        ok(&out).lines().any(|l| l.starts_with("applied 0001_init")),
        "a fresh database gets the schema: {out:?}"
    );
    for _ in 0..2 {
        let out = home.cli(&["migrate"]);
        assert!(ok(&out).starts_with("database is up to date"), "{out:?}");
    }
    // The schema is usable.
    ok(&home.cli(&["token", "create", "--name", "after-migrate"]));

    let out = home.cli(&["version"]);
    let text = ok(&out);
    assert!(
        text.starts_with(&format!("stask {} ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("plugin api"), "{text}");
    let out = home.cli(&["--version"]);
    assert!(ok(&out).contains(env!("CARGO_PKG_VERSION")), "{out:?}");
}

#[test]
fn sigterm_lets_a_task_that_ignores_the_stop_finish_within_the_grace_period() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let ledger = home.path().join("ledger.txt");
    let id = d.create(
        "demo",
        "run",
        serde_json::json!({"steps": 10, "sleep_ms": 50, "ledger": ledger, "result": "finished",
                           "ignore_cancel": true}),
    );
    d.wait_task(id, Duration::from_secs(30), |t| {
        t["status"] == "running" && t["progress"].as_i64().unwrap_or(0) > 0
    });
    let log = d.log.clone();
    assert_eq!(d.terminate(), 0, "log:\n{}", log.text());
    assert!(log.text().contains("shutting down"), "log:\n{}", log.text());
    // The task finished within the grace period and its outcome was stored before exit.
    let task = show(&home, id);
    assert_eq!(task["status"], "completed", "{task}\nlog:\n{}", log.text());
    assert_eq!(task["result"], "finished");
    assert_eq!(
        std::fs::read_to_string(&ledger).unwrap(),
        format!("start {id} 1\ndone {id} 1\n")
    );
    // Nothing is left for recovery: a cron pass finds no work.
    let out = cli_within(&home, &["process"], &[], Duration::from_secs(60));
    assert_eq!(ok(&out).trim(), "processed 0 tasks");
    assert_eq!(show(&home, id)["attempts"], 1);
}

/// SIGTERM asks running tasks to stop at the start of the grace period: a cooperative worker
/// ends at its next check, the daemon exits long before the grace period is over, and the
/// task is pending again with its attempt given back (even with `max_attempts` 1), to run to
/// completion at the next start.
#[test]
fn sigterm_stops_a_cooperative_task_early_without_using_an_attempt() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_SHUTDOWN_GRACE_SECS", "60");
    let token = home.token();
    let d = home.serve_with_token(token.clone());
    let ledger = home.path().join("ledger.txt");
    // 4 s of work in 50 ms steps, checking for a cancel before each.
    let id = d.create(
        "demo",
        "run",
        serde_json::json!({"steps": 80, "sleep_ms": 50, "ledger": ledger, "result": "finished",
                           "max_attempts": 1}),
    );
    d.wait_task(id, Duration::from_secs(30), |t| {
        t["status"] == "running" && t["progress"].as_i64().unwrap_or(0) > 0
    });
    let log = d.log.clone();
    let asked = Instant::now();
    assert_eq!(d.terminate(), 0, "log:\n{}", log.text());
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the daemon took {took:?} to stop: the task was not asked to stop\nlog:\n{}",
        log.text()
    );
    assert!(
        log.text().contains("asked the running tasks to stop"),
        "log:\n{}",
        log.text()
    );
    let task = show(&home, id);
    assert_eq!(
        (task["status"].as_str(), task["attempts"].as_i64()),
        (Some("pending"), Some(0)),
        "{task}\nlog:\n{}",
        log.text()
    );
    let message = task["message"].as_str().unwrap();
    assert!(
        message.contains("host was stopping") && message.contains("no attempt used"),
        "{message}"
    );
    // The next start runs it to the end, as its first attempt still.
    let d = home.serve_with_token(token);
    let done = d.wait_finished(id);
    assert_eq!(
        (done["status"].as_str(), done["attempts"].as_i64()),
        (Some("completed"), Some(1)),
        "{done}"
    );
    assert_eq!(done["result"], "finished");
    assert_eq!(
        std::fs::read_to_string(&ledger).unwrap(),
        format!("start {id} 1\nstart {id} 1\ndone {id} 1\n"),
        "the stopped run did not finish its work; the next one did"
    );
}

/// A worker that ignores the stop request is still running when the grace period ends: the
/// daemon stops anyway and its log names what it left (task id and worker).
#[test]
fn sigterm_names_the_tasks_still_running_when_the_grace_period_ends() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_SHUTDOWN_GRACE_SECS", "1");
    let d = home.serve();
    let id = d.create(
        "demo",
        "run",
        serde_json::json!({"steps": 600, "sleep_ms": 50, "ignore_cancel": true}),
    );
    d.wait_task(id, Duration::from_secs(30), |t| {
        t["status"] == "running" && t["progress"].as_i64().unwrap_or(0) > 0
    });
    let log = d.log.clone();
    let asked = Instant::now();
    assert_eq!(d.terminate(), 0, "log:\n{}", log.text());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "log:\n{}",
        log.text()
    );
    let left = log
        .text()
        .lines()
        .find(|l| l.contains("grace period over"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            panic!(
                "nothing logged at the end of the grace period:\n{}",
                log.text()
            )
        });
    assert!(left.contains(&format!("{id} (demo/run)")), "{left}");
    assert!(
        log.text()
            .lines()
            .any(|l| l.contains("still running when the grace period ended")
                && l.contains(&format!("task={id}"))
                && l.contains("demo")),
        "log:\n{}",
        log.text()
    );
    assert_eq!(show(&home, id)["status"], "running", "left for recovery");
}

#[test]
fn sigterm_right_after_start_up_is_a_clean_stop() {
    // A supervisor may stop the daemon as soon as it reported ready: the ready line must not
    // come before the daemon handles SIGTERM. A few rounds, as the window is short.
    let home = Home::with_workers(&["demo"]);
    for round in 1..=3 {
        let d = home.serve();
        let log = d.log.clone();
        let code = d.terminate();
        assert_eq!(
            code,
            0,
            "round {round}: SIGTERM right after the ready line killed the daemon \
             (exit {code}) instead of stopping it\nlog:\n{}",
            log.text()
        );
    }
}

#[test]
fn a_second_daemon_on_the_same_home_refuses_with_a_clear_message() {
    let home = Home::with_workers(&["demo"]);
    let d = home.serve();
    let second = home.cli(&["serve"]);
    assert_eq!(second.code, 4, "exit code 4 (conflict): {second:?}");
    assert!(
        second.stderr.contains("already running"),
        "a clear reason: {second:?}"
    );
    // The first one is untouched.
    assert_eq!(d.get("/stask/health").status, 200);
    let id = d.create("demo", "noop", serde_json::json!({}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
}

/// A cron pass gives up on a run that ignores the cancel request of its timeout, as the daemon
/// does: the attempt fails as timed out, the next task runs, and the pass ends.
#[test]
fn a_cron_pass_ends_when_a_run_ignores_its_timeout() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "1");
    home.set_env("STASK_SHUTDOWN_GRACE_SECS", "1");
    ok(&home.cli(&["workers", "discover"]));
    ok(&home.cli(&["workers", "settings", "demo", "--set", r#"{"timeout": 1}"#]));
    // About three hours of 100 ms steps, never looking at the cancel flag.
    let stuck = create(
        &home,
        &[
            "demo",
            "run",
            "--max-attempts",
            "1",
            "--data",
            r#"{"steps": 100000, "sleep_ms": 100, "ignore_cancel": true}"#,
        ],
    );
    let next = create(&home, &["demo", "noop"]);
    let out = cli_within(&home, &["process"], &[], Duration::from_secs(60));
    assert_eq!(ok(&out).trim(), "processed 2 tasks", "{out:?}");
    assert!(out.stderr.contains("abandoned"), "{}", out.stderr);
    let task = show(&home, stuck);
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        task["message"]
            .as_str()
            .unwrap()
            .contains("timed out after 1s"),
        "{task}"
    );
    assert_eq!(show(&home, next)["status"], "completed");
}

/// Issue 13, item 11: every enumerated, boolean and numeric setting refuses a value it does not
/// know, with a message naming the variable (and its stask.toml key) and what it accepts, and
/// exit code 5; enumerated and boolean values are case-insensitive.
#[test]
fn unknown_configuration_values_are_refused_naming_the_variable_and_the_accepted_values() {
    let home = Home::with_workers(&[]);
    let run = |var: &str, value: &str| {
        cli_within(&home, &["stats"], &[(var, value)], Duration::from_secs(30))
    };
    for (var, value, says) in [
        ("STASK_ISOLATION", "bogus", "STASK_ISOLATION (isolation in stask.toml) must be one of 'in_process', 'process' (any case), got 'bogus'"),
        ("STASK_SECURE_COOKIES", "sometimes", "STASK_SECURE_COOKIES (secure_cookies in stask.toml) must be one of 'auto', 'always', 'never' (any case), got 'sometimes'"),
        ("STASK_ACTIVATE_NEW_WORKERS", "yes", "STASK_ACTIVATE_NEW_WORKERS (activate_new_workers in stask.toml) must be true or false (any case), got 'yes'"),
        ("STASK_WORKERS", "0", "STASK_WORKERS (workers in stask.toml) must be a whole number between 1 and 1024, got 0"),
        ("STASK_WORKERS", "four", "STASK_WORKERS (workers in stask.toml) must be a whole number, got 'four'"),
        ("STASK_PREFETCH", "-1", "STASK_PREFETCH (prefetch in stask.toml) must be a whole number, got '-1'"),
        ("STASK_LEASE_MS", "10", "STASK_LEASE_MS (lease_ms in stask.toml) must be a whole number between 1000 and 604800000, got 10"),
        ("STASK_HEADER_TIMEOUT_SECS", "99999999999", "STASK_HEADER_TIMEOUT_SECS (header_timeout_secs in stask.toml) must be a whole number between 1 and 604800"),
        ("STASK_MAX_BODY_BYTES", "0", "STASK_MAX_BODY_BYTES (max_body_bytes in stask.toml) must be a whole number between 1 and"),
        ("STASK_ISOLATION_MEMORY_MB", "99999999999", "STASK_ISOLATION_MEMORY_MB (isolation_memory_mb in stask.toml) must be a whole number between 0 and 1048576"),
        ("STASK_PG_CONNECTIONS", "0", "STASK_PG_CONNECTIONS (pg_connections in stask.toml) must be a whole number between 1 and 64, got 0"),
        ("STASK_MYSQL_CONNECTIONS", "65", "STASK_MYSQL_CONNECTIONS (mysql_connections in stask.toml) must be a whole number between 1 and 64, got 65"),
        ("STASK_MYSQL_WAKE_POLL_MS", "0", "STASK_MYSQL_WAKE_POLL_MS (mysql_wake_poll_ms in stask.toml) must be a whole number between 1 and 10000, got 0"),
        ("STASK_ALERT_MIN_SUCCESS_RATE", "150", "STASK_ALERT_MIN_SUCCESS_RATE (min_success_rate in [alerts] of stask.toml) must be a number between 0 and 100, got 150"),
        ("STASK_ALERT_CHECK_SECS", "0", "STASK_ALERT_CHECK_SECS (check_every_secs in [alerts] of stask.toml) must be a whole number between 1 and 604800, got 0"),
        ("STASK_LOG", "a[", "STASK_LOG must be a log filter"),
    ] {
        let out = run(var, value);
        fails(&out, 5, &[says]);
        assert!(out.stdout.is_empty(), "{var}={value}: {out:?}");
    }
    // Any case, spaces around, and empty (= unset) are accepted.
    for (var, value) in [
        ("STASK_ISOLATION", "Process"),
        ("STASK_SECURE_COOKIES", "ALWAYS"),
        ("STASK_ACTIVATE_NEW_WORKERS", " False "),
        ("STASK_WORKERS", ""),
    ] {
        let out = run(var, value);
        assert!(ok(&out).contains("total"), "{var}={value:?}: {out:?}");
    }
    // stask.toml values follow the same rules and name the same setting.
    std::fs::write(home.path().join("stask.toml"), "isolation = \"bogus\"\n").unwrap();
    fails(
        &home.cli(&["stats"]),
        5,
        &["STASK_ISOLATION (isolation in stask.toml) must be one of"],
    );
    std::fs::write(home.path().join("stask.toml"), "workers = 2000\n").unwrap();
    fails(&home.cli(&["stats"]), 5, &["STASK_WORKERS (workers in stask.toml) must be a whole number between 1 and 1024, got 2000"]);
    // The server drivers' settings are configuration keys too, not only variables.
    std::fs::write(home.path().join("stask.toml"), "mysql_connections = 65\n").unwrap();
    fails(&home.cli(&["stats"]), 5, &["STASK_MYSQL_CONNECTIONS (mysql_connections in stask.toml) must be a whole number between 1 and 64, got 65"]);
    std::fs::write(
        home.path().join("stask.toml"),
        "pg_connections = 2\nmysql_wake_poll_ms = 20\n",
    )
    .unwrap();
    assert!(ok(&home.cli(&["stats"])).contains("total"));
}

/// Issue 13, item 12: commands other than serve, migrate and process refuse a home or an
/// SQLite database that does not exist (exit code 3, the path in the message) and create
/// nothing; the three that create one still do.
#[test]
fn a_missing_home_or_database_is_refused_and_nothing_is_created() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("nonexistent").join("x");
    let missing_arg = missing.to_str().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(stask_bin())
            .args(args)
            .env_remove("STASK_DATABASE_URL")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        CliOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let reading: &[&[&str]] = &[
        &["stats"],
        &["task", "list"],
        &["task", "show", "5"],
        &["workers", "list"],
        &["token", "list"],
        &["token", "create", "--name", "x"],
        &["task", "create", "demo", "noop"],
        &["workers", "discover"],
        &["clean", "--days", "1"],
    ];
    for args in reading {
        let out = run(args, &[("STASK_HOME", missing_arg)]);
        fails(&out, 3, &["the home folder", missing_arg, "does not exist"]);
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    // A home that exists, without a database.
    let home = Home::without_database(&[]);
    let db = home.storage().join("stask.db");
    for args in reading {
        let mut all = vec!["--home", home.path().to_str().unwrap()];
        all.extend_from_slice(args);
        // On its default SQLite file whatever the run's database (PostgreSQL is only checked
        // by connecting to it).
        let out = run(&all, &[]);
        fails(&out, 3, &["no database at", db.to_str().unwrap()]);
        assert!(!db.exists(), "{args:?} created {}", db.display());
        assert!(!home.storage().exists(), "{args:?} created storage/");
    }
    // An explicit SQLite URL to a missing file is refused the same way.
    let elsewhere = parent.path().join("other.db");
    let url = format!("sqlite://{}", elsewhere.display());
    let out = run(
        &["--home", home.path().to_str().unwrap(), "stats"],
        &[("STASK_DATABASE_URL", &url)],
    );
    fails(&out, 3, &["no database at", elsewhere.to_str().unwrap()]);
    assert!(!elsewhere.exists());
    // migrate creates the database; then the others work.
    let at_home = ["--home", home.path().to_str().unwrap()];
    ok(&run(&[&at_home[..], &["migrate"]].concat(), &[]));
    assert!(db.is_file());
    assert!(ok(&run(&[&at_home[..], &["stats"]].concat(), &[])).contains("total"));
}

/// Issue 13, item 16: a stdout closed by its reader (`stask task show 5 | head -1`) ends the
/// command quietly with exit code 0: no panic, no backtrace.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let home = Home::with_workers(&[]);
    ok(&home.cli(&["token", "create", "--name", "listed"]));
    for args in [
        &["token", "list"][..],
        &["stats"],
        &["version"],
        &["task", "list"],
    ] {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills two descriptors we then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are fresh and owned by nobody else.
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // The reader is gone before the command writes: every write gets EPIPE.
        drop(reader);
        let out = Command::new(stask_bin())
            .arg("--home")
            .arg(home.path())
            .envs(home.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} wrote to stderr: {stderr}");
    }
}

/// Issue 13, item 16: flags outside their range are usage errors (exit code 2), and a task id
/// follows the API's rule (a positive whole number; the API answers 400 with the same message).
#[test]
fn flags_outside_their_range_and_task_id_0_are_usage_errors() {
    let home = Home::with_workers(&["demo"]);
    let out = cli_within(
        &home,
        &["process", "--batch-size", "0"],
        &[],
        Duration::from_secs(30),
    );
    fails(&out, 2, &["--batch-size"]);
    assert!(!out.stdout.contains("processed"), "{out:?}");
    for cmd in ["show", "cancel", "retry", "watch"] {
        for id in ["0", "-1"] {
            let out = home.cli(&["task", cmd, "--", id]);
            fails(
                &out,
                2,
                &[&format!(
                    "invalid task id '{id}': expected a positive integer"
                )],
            );
        }
    }
    fails(
        &home.cli(&["task", "list", "--limit", "0"]),
        2,
        &["--limit"],
    );
    fails(
        &home.cli(&["task", "list", "--limit", "501"]),
        2,
        &["--limit"],
    );
    let out = cli_within(
        &home,
        &["serve", "--workers", "0"],
        &[],
        Duration::from_secs(30),
    );
    fails(&out, 2, &["--workers"]);
    // The API says the same about id 0.
    let d = home.serve();
    let r = d.get("/stask/tasks/0");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["message"],
        "invalid task id '0': expected a positive integer"
    );
}

/// `stask schedules`: create, list, update (only the options given change), disable, enable,
/// delete, by id or by name; refusals with the API's reasons and the usual exit codes; and a
/// running daemon fires a schedule the command line created.
#[test]
fn schedules_are_managed_from_the_command_line() {
    let home = Home::with_workers(&["demo"]);
    ok(&home.cli(&["workers", "discover"]));
    let out = home.cli(&[
        "schedules",
        "create",
        "tick",
        "--worker",
        "demo",
        "--action",
        "noop",
        "--cron",
        "*/5 * * * * *",
        "--data",
        r#"{"n": 1}"#,
        "--unique-key",
        "k",
        "--json",
    ]);
    let created: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert_eq!(created["source"], "api");
    assert_eq!(created["timezone"], "UTC");
    assert_eq!(created["data"], serde_json::json!({"n": 1}));
    assert_eq!(created["unique_key"], "k");
    let id = created["id"].as_i64().unwrap().to_string();

    let listed = ok(&home.cli(&["schedules", "list"])).to_owned();
    assert!(
        listed.contains("tick") && listed.contains("*/5 * * * * *"),
        "{listed}"
    );
    let out = home.cli(&[
        "schedules",
        "update",
        "tick",
        "--cron",
        "30 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--json",
    ]);
    let updated: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert_eq!(updated["cron"], "30 2 * * *");
    assert_eq!(updated["timezone"], "Europe/Berlin");
    assert_eq!(
        updated["data"],
        serde_json::json!({"n": 1}),
        "options not given stay"
    );
    assert!(ok(&home.cli(&["schedules", "disable", &id])).contains("disabled"));
    let json: Value =
        serde_json::from_str(ok(&home.cli(&["schedules", "list", "--json"])).trim()).unwrap();
    assert_eq!(json[0]["enabled"], false);
    assert_eq!(json[0]["next_run_at"], Value::Null);
    assert!(ok(&home.cli(&["schedules", "enable", "tick"])).contains("enabled"));

    fails(
        &home.cli(&[
            "schedules",
            "create",
            "x",
            "--worker",
            "nope",
            "--action",
            "noop",
            "--cron",
            "@daily",
        ]),
        3,
        &["unknown worker 'nope'"],
    );
    fails(
        &home.cli(&[
            "schedules",
            "create",
            "x",
            "--worker",
            "demo",
            "--action",
            "noop",
            "--cron",
            "* *",
        ]),
        5,
        &["bad cron expression"],
    );
    fails(
        &home.cli(&[
            "schedules",
            "create",
            "x",
            "--worker",
            "demo",
            "--action",
            "noop",
            "--cron",
            "@daily",
            "--timezone",
            "Nowhere/Land",
        ]),
        5,
        &["unknown time zone 'Nowhere/Land'"],
    );
    fails(
        &home.cli(&[
            "schedules",
            "create",
            "tick",
            "--worker",
            "demo",
            "--action",
            "noop",
            "--cron",
            "@daily",
        ]),
        4,
        &["already exists"],
    );
    fails(
        &home.cli(&["schedules", "create", "y"]),
        5,
        &["--worker, --action, --cron"],
    );
    fails(
        &home.cli(&["schedules", "delete", "missing"]),
        3,
        &["unknown schedule"],
    );

    // A daemon picks up a schedule the command line created while it runs.
    let d = home.serve();
    let out = home.cli(&[
        "schedules",
        "update",
        &id,
        "--cron",
        "* * * * * *",
        "--timezone",
        "UTC",
    ]);
    ok(&out);
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.get("/stask/tasks").body["total"].as_i64().unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "no task from the schedule:\n{}",
            d.log.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok(&home.cli(&["schedules", "delete", "tick"])).contains("deleted"));
    assert_eq!(ok(&home.cli(&["schedules", "list", "--json"])).trim(), "[]");
}
