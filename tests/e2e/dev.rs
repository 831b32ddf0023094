//! `stask dev`: the development loop builds the plugin crates of a workspace's `plugins/`,
//! serves them, and after a source file is saved rebuilds and reloads that plugin, so the next
//! task runs the new code.

use serde_json::{json, Value};
use stask_tests::{stask_bin, target_dir, wait_until, workspace, Home};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `stask dev`, killed when dropped.
struct Dev {
    child: Child,
    base: String,
    token: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = ureq::request(method, &format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30))
            .set("Authorization", &format!("Bearer {}", self.token));
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        (status, response.into_json().unwrap_or(Value::Null))
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Creates a `greet` task and returns its result once it completed.
    fn greet(&self) -> String {
        let (status, created) = self.call(
            "POST",
            "/stask/workers/hello_world/tasks/greet",
            Some(json!({"names": ["Ada", "Linus"]})),
        );
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_i64().unwrap();
        let mut task = Value::Null;
        wait_until("the greet task to finish", Duration::from_secs(60), || {
            task = self.call("GET", &format!("/stask/tasks/{id}"), None).1["task"].clone();
            matches!(
                task["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
        });
        assert_eq!(task["status"], "completed", "{task}");
        task["result"].as_str().unwrap_or_default().to_owned()
    }

    fn worker_version(&self) -> Option<String> {
        let (status, worker) = self.call("GET", "/stask/workers/hello_world", None);
        (status == 200 && worker["worker"]["state"] == "loaded").then(|| {
            worker["worker"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
    }
}

#[test]
fn a_saved_plugin_source_is_rebuilt_and_the_next_task_runs_the_new_code() {
    if stask_tests::sqlite_only("the dev loop does not depend on the database") {
        return;
    }
    // A workspace of its own with one plugin crate, scaffolded by `stask new-worker`.
    let outside = tempfile::tempdir().unwrap();
    let ws = outside.path();
    let crate_dir = ws.join("plugins").join("hello");
    let api = format!("path:{}", workspace().join("plugin-api").display());
    let made = Command::new(stask_bin())
        .args(["new-worker", "hello_world", "--api", &api, "--path"])
        .arg(&crate_dir)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    // The scaffold is a workspace root of its own; here it is a member of the outer one.
    let manifest = crate_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\n[workspace]\n", "\n")).unwrap();
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"plugins/hello\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    // The repository's lock file: the offline build finds every crate in the local cache.
    std::fs::copy(workspace().join("Cargo.lock"), ws.join("Cargo.lock")).unwrap();

    let home = Home::with_workers(&[]);
    let token = home.token();
    let mut child = Command::new(stask_bin())
        .arg("--home")
        .arg(home.path())
        .envs(home.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("STASK_BIND", "127.0.0.1:0")
        // The same target folder as the new-worker test: abi_stable is compiled once.
        .env("CARGO_TARGET_DIR", target_dir().join("new-worker"))
        .env("CARGO_NET_OFFLINE", "true")
        .args(["dev", "--workspace"])
        .arg(ws)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting stask dev");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let mut dev = Dev {
        child,
        base: String::new(),
        token,
        log,
    };
    // The first build compiles the interface crate: minutes on a cold target folder.
    wait_until("stask dev to serve", Duration::from_secs(600), || {
        let lines = dev.log.lock().unwrap();
        if let Some(line) = lines.iter().find(|l| l.contains("listening on http://")) {
            let addr: String = line
                .split("http://")
                .nth(1)
                .unwrap()
                .chars()
                .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ':'))
                .collect();
            dev.base = format!("http://{addr}");
            return true;
        }
        drop(lines);
        assert!(
            dev.child.try_wait().unwrap().is_none(),
            "stask dev ended:\n{}",
            dev.log_text()
        );
        false
    });
    let mut first_version = None;
    wait_until("the plugin loaded", Duration::from_secs(30), || {
        first_version = dev.worker_version();
        first_version.is_some()
    });
    assert_eq!(dev.greet(), "greeted 2");

    // Save a changed source file: the loop rebuilds, installs and the daemon reloads it.
    let lib = crate_dir.join("src").join("lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    assert!(source.contains("\"greeted {}\""), "{source}");
    std::fs::write(&lib, source.replace("\"greeted {}\"", "\"welcomed {}\"")).unwrap();
    wait_until(
        "the rebuilt plugin loaded",
        Duration::from_secs(300),
        || {
            let version = dev.worker_version();
            version.is_some() && version != first_version
        },
    );
    assert_eq!(dev.greet(), "welcomed 2", "log:\n{}", dev.log_text());
}
