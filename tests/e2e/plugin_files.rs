//! What the host does with the files it finds in plugins.d/ at start-up: every kind of bad file
//! is refused with a one-line reason (shown in `GET /stask/workers`), hidden and non-library
//! files are ignored, and the good worker next to them still loads and runs.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stask_tests::{library, panic_abort_demo, Daemon, Home};
use std::path::Path;

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `plugin_files[]` of `GET /stask/workers`, by file name.
fn plugin_files(d: &Daemon) -> Vec<Value> {
    let r = d.get("/stask/workers");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["plugin_files"]
        .as_array()
        .unwrap_or_else(|| panic!("no plugin_files array: {}", r.body))
        .clone()
}

fn entry<'a>(files: &'a [Value], name: &str) -> &'a Value {
    files
        .iter()
        .find(|f| f["file"] == name)
        .unwrap_or_else(|| panic!("no plugin_files entry for {name}: {files:#?}"))
}

/// Asserts that `name` was refused with a one-line reason accepted by `check`; returns it.
fn refused(files: &[Value], name: &str, check: impl Fn(&str) -> bool) -> String {
    let e = entry(files, name);
    assert_eq!(e["state"], "error", "{name}: {e}");
    let reason = e["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no error: {e}"))
        .to_owned();
    assert!(
        !reason.trim().is_empty() && !reason.contains('\n'),
        "{name}: the reason must be one non-empty line: {reason:?}"
    );
    assert!(check(&reason), "{name}: unexpected reason: {reason}");
    reason
}

/// The `demo` worker is loaded from `demo.so` and runs a task to its result.
fn demo_still_works(d: &Daemon) {
    assert_eq!(d.get("/stask/health").status, 200);
    let id = d.create(
        "demo",
        "run",
        json!({"steps": 2, "sleep_ms": 0, "result": "still serving"}),
    );
    let done = d.wait_finished(id);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"], "still serving");
}

#[test]
fn every_kind_of_bad_file_is_refused_with_a_reason_and_the_good_worker_still_runs() {
    let home = Home::with_workers(&["demo"]);
    let demo = library("stask_worker_demo");
    let demo_bytes = std::fs::read(&demo).unwrap();
    let foreign = library("stask_fixture_foreign");

    home.write_plugin_bytes("x.so", b"this is a text file, not a library\n");
    home.write_plugin_bytes("empty.so", b"");
    let truncated = &demo_bytes[..demo_bytes.len() / 3];
    home.write_plugin_bytes("truncated.so", truncated);
    home.install_file(&foreign, "foreign.so");
    home.install_file(&library("stask_fixture_abi_mismatch"), "abi_mismatch.so");
    home.install_file(
        &library("stask_fixture_version_mismatch"),
        "version_mismatch.so",
    );
    // Sorts after demo.so, so demo.so is the one that serves `demo`.
    home.install_file(&demo, "demo_copy.so");
    // Ignored entirely: hidden files, other extensions, folders. Each holds a library that
    // would leave a plugin_files entry behind if it were looked at.
    home.install_file(&foreign, ".x.so");
    home.install_file(&demo, ".demo.so");
    home.install_file(&foreign, "libforeign.so.1");
    home.install_file(&demo, "demo.so.bak");
    home.write_plugin_bytes("notes.txt", b"not a plugin");
    std::fs::create_dir(home.plugins_dir().join("folder.so")).unwrap();

    let d = home.serve();
    let files = plugin_files(&d);

    let mut names: Vec<&str> = files.iter().filter_map(|f| f["file"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![
            "abi_mismatch.so",
            "demo.so",
            "demo_copy.so",
            "empty.so",
            "foreign.so",
            "truncated.so",
            "version_mismatch.so",
            "x.so",
        ],
        "exactly the visible .so files are looked at: {files:#?}"
    );

    let loaded = entry(&files, "demo.so");
    assert_eq!(loaded["state"], "loaded", "{loaded}");
    assert_eq!(loaded["identifier"], "demo");
    assert_eq!(loaded["error"], Value::Null);
    assert_eq!(loaded["file_sha256"], sha256_of(&demo));

    refused(&files, "x.so", |r| r.contains("not a shared library"));
    refused(&files, "empty.so", |r| {
        r.contains("not a shared library") && r.contains("0 bytes")
    });
    refused(&files, "truncated.so", |r| {
        r.starts_with("incomplete library")
    });
    refused(&files, "foreign.so", |r| {
        r.starts_with("not an sTask plugin")
    });
    refused(&files, "abi_mismatch.so", |r| r.starts_with("ABI mismatch"));
    refused(&files, "version_mismatch.so", |r| {
        r.starts_with("incompatible plugin interface")
            && r.contains("0.2.0")
            && r.contains(stask_plugin_api::INTERFACE_VERSION)
    });
    refused(&files, "demo_copy.so", |r| {
        r.starts_with("duplicate identifier 'demo'") && r.contains("demo.so")
    });

    // The hash recorded is the hash of the refused bytes.
    assert_eq!(
        entry(&files, "truncated.so")["file_sha256"],
        sha256_bytes(truncated)
    );
    assert_eq!(
        entry(&files, "foreign.so")["file_sha256"],
        sha256_of(&foreign)
    );
    // The full abi_stable report is kept apart from the one-line reason.
    let detail = entry(&files, "abi_mismatch.so")["error_detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        detail.lines().count() > 1,
        "abi_mismatch.so keeps the full layout report as error_detail: {detail:?}"
    );

    // Each refusal is logged.
    for name in [
        "x.so",
        "empty.so",
        "truncated.so",
        "foreign.so",
        "abi_mismatch.so",
        "version_mismatch.so",
        "demo_copy.so",
    ] {
        let log = d.log.text();
        assert!(
            log.lines()
                .any(|l| l.contains("plugin refused") && l.contains(name)),
            "no refusal logged for {name}:\n{log}"
        );
    }

    // Only demo is registered, from demo.so; no refused file created a worker.
    let workers = d.get("/stask/workers").body["workers"].clone();
    let workers = workers.as_array().unwrap();
    assert_eq!(workers.len(), 1, "{workers:#?}");
    assert_eq!(workers[0]["identifier"], "demo");
    assert_eq!(workers[0]["state"], "loaded");
    assert_eq!(workers[0]["file"], "demo.so");
    assert_eq!(workers[0]["load_error"], Value::Null, "{}", workers[0]);

    demo_still_works(&d);
}

#[test]
fn a_worker_built_with_panic_abort_is_refused() {
    let abort_build = panic_abort_demo();
    let home = Home::with_workers(&["demo"]);
    home.install_file(abort_build, "demo_panic_abort.so");
    let d = home.serve();
    let files = plugin_files(&d);
    let reason = refused(&files, "demo_panic_abort.so", |r| {
        r.contains("panic = \"abort\"")
    });
    assert!(
        !reason.contains("duplicate identifier"),
        "refused for its panic strategy, not as a duplicate: {reason}"
    );
    assert_eq!(entry(&files, "demo.so")["state"], "loaded");
    let demo = d.get("/stask/workers").body["workers"][0].clone();
    assert_eq!(
        (demo["identifier"].as_str(), demo["state"].as_str()),
        (Some("demo"), Some("loaded")),
        "{demo}"
    );
    assert_eq!(demo["file"], "demo.so");
    // demo.so never changed: a refused *other* file must not hang an error on the worker it
    // serves (the loadable duplicate demo_copy.so leaves it alone too).
    assert_eq!(
        demo["load_error"],
        Value::Null,
        "demo.so was not replaced, yet the worker reports a load error"
    );
    demo_still_works(&d);
}

#[test]
fn a_worker_built_with_panic_abort_alone_is_refused_and_its_worker_cannot_take_tasks() {
    let abort_build = panic_abort_demo();
    let home = Home::with_workers(&[]);
    home.install_file(abort_build, "demo.so");
    let d = home.serve();
    let files = plugin_files(&d);
    refused(&files, "demo.so", |r| r.contains("panic = \"abort\""));
    assert_eq!(d.get("/stask/health").status, 200);
    let r = d.post("/stask/workers/demo/tasks/noop", &json!({}));
    assert!(
        r.status == 404 || r.status == 409,
        "a task for a worker that never loaded must be refused: {} {:?}",
        r.status,
        r.body
    );
    assert_eq!(r.body["success"], false);
}

#[test]
fn the_loaded_worker_row_describes_its_library() {
    let home = Home::with_workers(&["demo"]);
    let sha = sha256_of(&library("stask_worker_demo"));
    let before = chrono::Utc::now();
    let d = home.serve();
    let after = chrono::Utc::now();

    let workers = d.get("/stask/workers").body["workers"].clone();
    let w = &workers[0];
    assert_eq!(w["identifier"], "demo");
    assert_eq!(w["state"], "loaded");
    assert_eq!(w["active"], true);
    assert_eq!(w["file"], "demo.so");
    assert_eq!(w["file_sha256"], sha);
    assert_eq!(
        w["version"],
        format!("{}+{}", env!("CARGO_PKG_VERSION"), &sha[..12]),
        "version is the declared version plus the library hash"
    );
    let loaded_at = w["loaded_at"]
        .as_str()
        .unwrap_or_else(|| panic!("loaded_at missing: {w}"));
    let loaded_at = chrono::DateTime::parse_from_rfc3339(loaded_at)
        .unwrap_or_else(|e| panic!("loaded_at {loaded_at:?} is not RFC 3339: {e}"));
    let ms = loaded_at.timestamp_millis();
    assert!(
        ms >= before.timestamp_millis() && ms <= after.timestamp_millis(),
        "loaded_at {loaded_at} not within the start-up ({before} .. {after})"
    );
    let actions: Vec<&str> = w["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(actions, vec!["noop", "stamp", "run", "hammer"]);

    // The CLI (a second process on the same database) shows the same row.
    let out = home.cli(&["workers", "list"]);
    assert_eq!(out.code, 0, "{out:?}");
    let row = out
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some("demo"))
        .unwrap_or_else(|| panic!("no demo row:\n{}", out.stdout));
    let cells: Vec<&str> = row.split_whitespace().collect();
    let listed = actions.join(",");
    assert_eq!(
        cells,
        vec![
            "demo",
            "stask",
            "loaded",
            "yes",
            // Not paused.
            "no",
            w["version"].as_str().unwrap(),
            listed.as_str()
        ],
        "{row}"
    );
    assert!(
        !out.stdout.contains("load error"),
        "a cleanly loaded worker shows no load error:\n{}",
        out.stdout
    );

    let out = home.cli(&["workers", "list", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let list: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(list[0]["identifier"], "demo");
    assert_eq!(list[0]["file_sha256"], sha);
    assert_eq!(list[0]["version"], w["version"]);
    assert_eq!(list[0]["loaded_at"], w["loaded_at"]);
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[test]
fn fifos_devices_and_huge_files_are_refused_unread_and_links_to_libraries_load() {
    let home = Home::with_workers(&[]);
    let dir = home.plugins_dir();
    // Before the fix the start-up scan blocked forever opening the FIFO.
    mkfifo(&dir.join("f.so"));
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.so")).unwrap();
    // Sparse: 2 GiB of length, no disk.
    std::fs::File::create(dir.join("big.so"))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    // A link to a library is a library.
    std::os::unix::fs::symlink(library("stask_worker_demo"), dir.join("demo.so")).unwrap();

    let d = home.serve();
    let peak = d.peak_rss_kb();
    assert!(
        peak < 512 * 1024,
        "the daemon's peak RSS is {peak} kB: the 2 GiB file was read"
    );
    let files = plugin_files(&d);
    refused(&files, "f.so", |r| {
        r == "not a library: not a regular file (a FIFO (named pipe))"
    });
    refused(&files, "zero.so", |r| {
        r == "not a library: not a regular file (a character device)"
    });
    let limit = 256u64 << 20;
    refused(&files, "big.so", |r| {
        r == format!(
            "too large for a plugin: {} bytes, over the limit of {limit} bytes (STASK_MAX_PLUGIN_BYTES)",
            2u64 << 30
        )
    });
    assert_eq!(entry(&files, "demo.so")["state"], "loaded");
    demo_still_works(&d);
}

#[test]
fn the_plugin_size_limit_is_configurable() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_MAX_PLUGIN_BYTES", "0");
    let out = home.cli(&["workers", "list"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("STASK_MAX_PLUGIN_BYTES"),
        "the refusal names the setting: {out:?}"
    );

    home.set_env("STASK_MAX_PLUGIN_BYTES", "4096");
    let d = home.serve();
    let size = std::fs::metadata(library("stask_worker_demo"))
        .unwrap()
        .len();
    refused(&plugin_files(&d), "demo.so", |r| {
        r == format!(
            "too large for a plugin: {size} bytes, over the limit of 4096 bytes (STASK_MAX_PLUGIN_BYTES)"
        )
    });
}
