//! The storage under the daemon: the SQLite WAL stays bounded and is emptied when idle; a
//! full disk, a read-only storage folder and database files removed under a running daemon
//! get clear answers (507/503 with the JSON error naming the folder), a `storage_fault`
//! alert while they last, and the fault logged once when it starts and once when it ends;
//! uploads have their own size limit and are written to disk as they arrive.
//!
//! The disk-full and read-only tests mount a small tmpfs (they need root, and say so and
//! return when not root): filling a real small file system is the honest way to get ENOSPC
//! and EROFS from every write SQLite and the host make.

use serde_json::{json, Value};
use stask_tests::{sqlite_only, wait_until, Daemon, Home};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Waits until the daemon's log has a line with every one of `parts`; returns it.
fn wait_log(d: &Daemon, parts: &[&str]) -> String {
    d.log
        .wait_for(Duration::from_secs(30), |l| {
            parts.iter().all(|p| l.contains(p))
        })
        .unwrap_or_else(|| panic!("no log line with {parts:?}; log:\n{}", d.log.text()))
}

fn alerts(d: &Daemon) -> Vec<Value> {
    let r = d.get("/stask/performance/alerts");
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["alerts"].as_array().unwrap().clone()
}

fn storage_alert(d: &Daemon) -> Option<Value> {
    alerts(d).into_iter().find(|a| a["type"] == "storage_fault")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn wal_of(home: &Home) -> PathBuf {
    home.storage().join("stask.db-wal")
}

/// Creates `n` tasks of `demo/noop` from `clients` keep-alive clients at once.
fn create_many(d: &Daemon, clients: usize, n: usize) {
    std::thread::scope(|s| {
        for c in 0..clients {
            let share = n / clients + usize::from(c < n % clients);
            s.spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                for _ in 0..share {
                    let r = agent
                        .post(&format!("{}/stask/workers/demo/tasks/noop", d.base))
                        .set("Authorization", &format!("Bearer {}", d.token))
                        .set("Content-Type", "application/json")
                        .send_string("{}");
                    assert_eq!(r.map(|r| r.status()).ok(), Some(201), "a create failed");
                }
            });
        }
    });
}

/// The bound the WAL must stay under while tasks flow: the checkpointer resets it past
/// 32 MiB of frames (`RESTART_ABOVE`); what a busy writer adds before the next round, plus
/// margin, stays well below this.
const WAL_BOUND: u64 = 96 << 20;

/// 20,000 tasks from 16 clients (the case left a 686 MB WAL that never shrank): the
/// WAL stays under [`WAL_BOUND`] the whole time, is emptied once the daemon is idle, and a
/// clean stop leaves it empty.
#[test]
fn the_wal_stays_bounded_under_20000_tasks_and_is_emptied_when_idle() {
    if sqlite_only("measures the SQLite WAL file") {
        return;
    }
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_WORKERS", "2");
    let d = home.serve();
    let wal = wal_of(&home);
    let largest = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                largest.fetch_max(file_len(&wal), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        create_many(&d, 16, 20_000);
        wait_until("every task completed", Duration::from_secs(120), || {
            d.get("/stask/stats").body["completed"] == 20_000
        });
        done.store(true, Ordering::Relaxed);
    });
    let largest = largest.into_inner();
    eprintln!(
        "largest WAL while 20,000 tasks ran: {} bytes; database {} bytes",
        largest,
        file_len(&home.storage().join("stask.db"))
    );
    assert!(
        largest < WAL_BOUND,
        "the WAL reached {largest} bytes (bound {WAL_BOUND})"
    );
    // Idle: the next rounds see nothing new and empty the file.
    wait_until(
        "the idle WAL to be emptied",
        Duration::from_secs(10),
        || file_len(&wal) == 0,
    );
    // More work, then a clean stop: the WAL is folded into the database and emptied.
    create_many(&d, 4, 500);
    wait_until("the second batch", Duration::from_secs(60), || {
        d.get("/stask/stats").body["completed"] == 20_500
    });
    assert_eq!(d.terminate(), 0);
    assert_eq!(file_len(&wal), 0, "a clean stop leaves an empty WAL");
}

/// A tmpfs mounted over a folder for one test, unmounted when dropped.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// Mounts one of `size` (e.g. "48m") at `at`; `None` (with the reason printed) when the
    /// test does not run as root.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a small tmpfs needs root (run the suite as root)");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            at,
        );
        Some(Tmpfs { at: at.to_owned() })
    }

    /// Remounts it read-only (it must have no file open for writing).
    fn read_only(&self) {
        run("mount", &["-o", "remount,ro"], &self.at);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the daemon may still hold files on it when a test fails.
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn run(program: &str, args: &[&str], at: &Path) {
    let status = Command::new(program)
        .args(args)
        .arg(at)
        .status()
        .expect(program);
    assert!(
        status.success(),
        "{program} {args:?} {} failed",
        at.display()
    );
}

/// Fills the file system holding `dir` with one file until writes fail with ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0x55u8; 64 << 10];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Smaller writes fill the last partial block too.
    while f.write_all(&[0x55u8; 512]).is_ok() {}
    path
}

fn post_noop(d: &Daemon) -> stask_tests::Reply {
    d.post("/stask/workers/demo/tasks/noop", &json!({}))
}

/// The storage folder on a small tmpfs, filled up: creates get 507 with a clear JSON message
/// naming the folder (not 500 "internal error"), the fault is logged once when it starts (not
/// at every checkpoint round) and once when it ends, a `storage_fault` alert lasts while it
/// does, and the daemon works again when space comes back.
// Run alone by `.ci/run` (`--ignored`): beside the 20,000-task WAL test it missed its 30 s
// log deadlines now and then on the 2-core VM; alone it passed every run. The cause is still
// to be found (see RELIABILITY.md).
#[test]
#[ignore = "run alone: .ci/run runs it with --ignored"]
fn a_full_disk_answers_507_with_an_alert_and_recovers_when_space_returns() {
    if sqlite_only("fills the file system under the SQLite database") {
        return;
    }
    let mut home = Home::with_workers(&["demo"]);
    let Some(_tmpfs) = Tmpfs::mount(&home.storage(), "48m") else {
        return;
    };
    // The file system mounted over storage/ hides the database the home was made with.
    assert_eq!(home.cli(&["migrate"]).code, 0);
    home.set_env("STASK_ALERT_CHECK_SECS", "1");
    let d = home.serve();
    for _ in 0..20 {
        let id = d.create("demo", "noop", json!({}));
        d.wait_finished(id);
    }
    let filler = fill(&home.storage());

    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while refused < 5 {
        assert!(Instant::now() < deadline, "no 507 on a full disk");
        let r = post_noop(&d);
        assert_ne!(
            r.status, 500,
            "a full disk is no internal error: {:?}",
            r.body
        );
        if r.status == 507 {
            refused += 1;
            assert_eq!(r.body["success"], false);
            assert_eq!(r.body["code"], 507);
            let message = r.body["message"].as_str().unwrap();
            assert!(
                message.starts_with("the storage is full")
                    && message.contains(&home.storage().display().to_string()),
                "{message}"
            );
        }
    }
    let started = wait_log(&d, &["storage fault", "the storage is full"]);
    assert!(started.contains("database writes"), "{started}");
    // The monitor raises it; the API shows it while it lasts.
    wait_log(&d, &["alert started", "storage_fault"]);
    let alert = storage_alert(&d).expect("a storage_fault alert");
    assert_eq!(alert["severity"], "critical");
    assert!(alert["message"]
        .as_str()
        .unwrap()
        .contains("the storage is full"));
    // More refused creates and a second of checkpoint rounds (four a second) later: still
    // one line per fault source (writes, checkpoints), and stats are still served.
    // (A small create may fit in WAL space already allocated and succeed: the disk is still
    // full, and the fault lasts until it has room again.)
    for _ in 0..3 {
        let r = post_noop(&d);
        assert!(matches!(r.status, 201 | 507), "{:?}", r.body);
    }
    assert_eq!(d.get("/stask/stats").status, 200);
    // Each source (database writes, WAL checkpoints) tells its fault once when it starts; the
    // checkpoints' may start later than the writes', so a second of rounds is watched for a
    // source telling it twice.
    let told =
        |source: &'static str| move |l: &str| l.contains("storage fault:") && l.contains(source);
    for source in ["database writes fail", "WAL checkpoints fail"] {
        assert!(
            d.log.wait_count(Duration::from_secs(1), 2, told(source)) <= 1,
            "the fault of {source} was logged again while it lasted:\n{}",
            d.log.text()
        );
    }
    let faults = d.log.count(|l| l.contains("storage fault:"));
    assert!(
        (1..=2).contains(&faults),
        "a fault is logged once per source when it starts, got {faults}:\n{}",
        d.log.text()
    );
    assert_eq!(
        d.log
            .count(|l| l.contains("WAL checkpoint failed") || l.contains("claim failed")),
        0,
        "no per-round checkpoint or claim errors:\n{}",
        d.log.text()
    );

    // Space again: the next create works, the fault ends (logged once), the alert goes.
    std::fs::remove_file(&filler).unwrap();
    let id = d.create("demo", "noop", json!({}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
    wait_log(&d, &["storage fault ended", "database writes"]);
    wait_log(&d, &["alert ended", "storage_fault"]);
    assert!(storage_alert(&d).is_none());
    for source in ["database writes fail", "WAL checkpoints fail"] {
        assert!(d.log.count(told(source)) <= 1, "no new fault of {source}");
    }
}

/// `storage/stask/` (uploads, result files, snapshots) read-only: an upload gets 503 naming
/// the folder and the problem, and a task whose worker writes a result file fails with a
/// message that says which folder could not be made and why (not only the plugin's "No such
/// file or directory"). Root ignores file modes, so the test remounts a tmpfs read-only
/// (EROFS holds for root too); the database, in `storage/`, stays writable.
#[test]
fn a_read_only_storage_folder_gives_clear_errors_for_uploads_and_result_files() {
    let home = Home::with_workers(&["demo"]);
    let stask = home.storage().join("stask");
    let Some(tmpfs) = Tmpfs::mount(&stask, "8m") else {
        return;
    };
    let d = home.serve();
    tmpfs.read_only();

    let boundary = "XBOUNDARYX";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\
         Content-Type: text/csv\r\n\r\nsku,name\r\n--{boundary}--\r\n"
    );
    let (status, answer) = upload(&d, boundary, body.into_bytes());
    assert_eq!(status, 503, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "the storage folder {} is not writable",
            stask.display()
        )) && message.contains("Read-only file system"),
        "{message}"
    );

    let r = d.post(
        "/stask/workers/demo/tasks/run",
        &json!({"result_file": "out.txt", "max_attempts": 1}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let done = d.wait_finished(r.body["id"].as_i64().unwrap());
    assert_eq!(done["status"], "failed", "{done}");
    let message = done["message"].as_str().unwrap();
    assert!(
        message.contains("output folder")
            && message.contains(&stask.join("results").display().to_string())
            && message.contains("Read-only file system")
            && message.contains("not writable"),
        "{message}"
    );
}

/// Sends a multipart body to the upload route; answers the status and the JSON body.
fn upload(d: &Daemon, boundary: &str, body: Vec<u8>) -> (u16, Value) {
    let r = ureq::post(&format!("{}/stask/uploads", d.base))
        .timeout(Duration::from_secs(60))
        .set("Authorization", &format!("Bearer {}", d.token))
        .set(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .send_bytes(&body);
    match r {
        Ok(r) => (r.status(), r.into_json::<Value>().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json::<Value>().unwrap()),
        Err(e) => panic!("upload: {e}"),
    }
}

/// A form with one file of `size` bytes.
fn form(boundary: &str, size: usize) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend(std::iter::repeat_n(b'x', size));
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    body
}

/// Peak resident memory of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// Uploads are limited by `STASK_MAX_UPLOAD_BYTES`, not by the 1 MiB request body limit: a
/// 40 MB file is stored whole, written as it arrives (the daemon's peak memory grows far less
/// than the file), and a file over the limit gets 413 and leaves nothing behind.
#[test]
fn uploads_use_their_own_limit_and_stream_to_disk() {
    let mut home = Home::with_workers(&["demo"]);
    home.set_env("STASK_MAX_UPLOAD_BYTES", "50000000");
    // A small body limit: the refused body below then fits in the socket's buffers, so the
    // client reads the 413 instead of failing to write a body the server stopped reading.
    home.set_env("STASK_MAX_BODY_BYTES", "1000");
    let d = home.serve();
    let boundary = "XBOUNDARYX";
    let before = peak_rss(d.pid());
    let size = 40_000_000;
    let (status, answer) = upload(&d, boundary, form(boundary, size));
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["size"], size as u64);
    let stored = home.storage().join(answer["path"].as_str().unwrap());
    assert_eq!(file_len(&stored), size as u64);
    let grown = peak_rss(d.pid()).saturating_sub(before);
    assert!(
        grown < 20 << 20,
        "the daemon's peak memory grew {grown} bytes for a {size}-byte upload"
    );

    let (status, answer) = upload(&d, boundary, form(boundary, 50_000_001));
    assert_eq!(
        (status, answer["code"].as_i64()),
        (413, Some(413)),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("upload limit of 50000000 bytes"),
        "{answer}"
    );
    let left: Vec<_> = std::fs::read_dir(home.storage().join("stask/uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "the refused upload left nothing: {left:?}");
    // Other routes keep the request body limit.
    let big = json!({"blob": "x".repeat(1500)});
    assert_eq!(d.post("/stask/workers/demo/tasks/noop", &big).status, 413);
}

/// Every read route the UI and scripts use, after a storage fault: none may answer 500.
fn reads_answer(d: &Daemon) {
    for path in [
        "/stask/stats",
        "/stask/tasks",
        "/stask/tasks/pending",
        "/stask/workers",
        "/stask/performance/alerts",
        "/stask/performance/summary?hours=1",
        "/stask/health",
    ] {
        let r = d.get(path);
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    }
}

/// Removes one of the database files under a running daemon and checks what follows:
/// writes refused with a clear 503, the alert, reads still served, nothing 500s.
fn remove_under_the_daemon(file: &str) -> (Home, Daemon, Vec<i64>) {
    let mut home = Home::on_sqlite(&["demo"]);
    home.set_env("STASK_ALERT_CHECK_SECS", "1");
    let d = home.serve();
    let ids: Vec<i64> = (0..10)
        .map(|_| d.create("demo", "noop", json!({})))
        .collect();
    for id in &ids {
        d.wait_finished(*id);
    }
    std::fs::remove_file(home.storage().join(file)).unwrap();
    let line = wait_log(&d, &["removed or replaced", &format!("{file} was removed")]);
    assert!(line.contains("refusing every write"), "{line}");
    let r = post_noop(&d);
    assert_eq!(
        (r.status, r.body["code"].as_i64()),
        (503, Some(503)),
        "{:?}\n{}",
        r.body,
        d.log.text()
    );
    let message = r.body["message"].as_str().unwrap();
    assert!(
        message.contains("removed or replaced while the daemon runs")
            && message.contains(file)
            && message.contains("restart the daemon"),
        "{message}"
    );
    // Other writes are refused the same way.
    let r = d.post(&format!("/stask/tasks/{}/retry", ids[0]), &json!({}));
    assert_ne!(r.status, 500, "{:?}", r.body);
    wait_log(&d, &["alert started", "storage_fault"]);
    let alert = storage_alert(&d).expect("a storage_fault alert");
    assert_eq!(alert["severity"], "critical");
    assert!(alert["message"].as_str().unwrap().contains(file));
    reads_answer(&d);
    assert_eq!(
        d.get("/stask/stats").body["completed"],
        10,
        "no shrinking stats"
    );
    assert_eq!(
        d.log.count(|l| l.contains("internal error")),
        0,
        "{}",
        d.log.text()
    );
    (home, d, ids)
}

/// `rm stask.db-wal` under a running daemon (the issue's case: "database disk image is
/// malformed", 500s and shrinking stats): refused writes, an alert, and since the process
/// still holds the removed WAL, its committed pages are copied into the database file, so a
/// restart finds every task.
#[test]
fn a_wal_removed_under_the_daemon_refuses_writes_and_loses_nothing() {
    let (home, d, ids) = remove_under_the_daemon("stask.db-wal");
    wait_log(&d, &["copied into the database file"]);
    assert_eq!(d.terminate(), 0);
    let d = home.serve();
    for id in ids {
        assert_eq!(d.task(id)["status"], "completed");
    }
    let id = d.create("demo", "noop", json!({}));
    assert_eq!(d.wait_finished(id)["status"], "completed");
}

/// `rm stask.db` under a running daemon: the same clear refusal and alert.
#[test]
fn a_database_removed_under_the_daemon_refuses_writes_with_an_alert() {
    let (_home, d, _) = remove_under_the_daemon("stask.db");
    assert_eq!(post_noop(&d).status, 503);
}

/// `STASK_SQLITE_SYNC` takes `normal` or `full` in any case and refuses anything else.
#[test]
fn unknown_sqlite_sync_values_are_refused() {
    let mut home = Home::on_sqlite(&[]);
    assert_eq!(home.cli(&["migrate"]).code, 0, "the schema first");
    for bad in ["off", "extra", "bogus"] {
        home.set_env("STASK_SQLITE_SYNC", bad);
        let out = home.cli(&["migrate"]);
        assert_eq!(out.code, 5, "{bad} was accepted: {}", out.stdout);
        assert!(
            out.stderr.contains(&format!(
                "STASK_SQLITE_SYNC (sqlite_sync in stask.toml) must be one of 'normal', 'full' \
                 (any case), got '{bad}'"
            )),
            "{}",
            out.stderr
        );
    }
    for (value, mode) in [("Full", "FULL"), ("full", "FULL"), ("NORMAL", "NORMAL")] {
        home.set_env("STASK_SQLITE_SYNC", value);
        let out = home.cli(&["migrate"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.contains(&format!("synchronous={mode}")),
            "{value}: {}",
            out.stdout
        );
    }
}
