//! Building and running the release daemon in a throw-away home.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Release binaries the benches use.
pub struct Binaries {
    /// `stask`.
    pub stask: PathBuf,
    /// The release `demo` plugin.
    pub demo: PathBuf,
    /// The release `product` plugin (the long-job figures).
    pub product: PathBuf,
}

/// The workspace root (where `target/` lives).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace")
}

/// `target/<name>`: where a peer is installed at run time (never part of the product).
pub fn bench_dir(name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join(name)
}

/// The environment variable naming another daemon binary to measure (e.g. a copy of the
/// release build before a change, so that base and change run back to back).
pub const DAEMON_ENV: &str = "STASK_BENCH_DAEMON";

/// Builds the release daemon and the demo and product plugins; the daemon measured is
/// `STASK_BENCH_DAEMON` when set (the plugins are always the fresh build).
pub fn build_release() -> Binaries {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "stask-host",
            "-p",
            "stask-worker-demo",
            "-p",
            "stask-worker-product",
        ])
        .current_dir(workspace())
        .status()
        .expect("cargo");
    assert!(status.success(), "release build failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join("release");
    let stask = match std::env::var_os(DAEMON_ENV) {
        Some(path) => PathBuf::from(path)
            .canonicalize()
            .unwrap_or_else(|e| panic!("{DAEMON_ENV}: {e}")),
        None => target.join("stask"),
    };
    Binaries {
        stask,
        demo: target.join("libstask_worker_demo.so"),
        product: target.join("libstask_worker_product.so"),
    }
}

/// The binaries of an earlier build, for before/after figures of a change in one run: the
/// folder `STASK_BENCH_BEFORE` names holds copies of that build's `stask`,
/// `libstask_worker_demo.so` and `libstask_worker_product.so`.
pub fn before() -> Option<Binaries> {
    let dir = PathBuf::from(std::env::var_os("STASK_BENCH_BEFORE")?);
    let bin = Binaries {
        stask: dir.join("stask"),
        demo: dir.join("libstask_worker_demo.so"),
        product: dir.join("libstask_worker_product.so"),
    };
    for file in [&bin.stask, &bin.demo, &bin.product] {
        assert!(file.is_file(), "STASK_BENCH_BEFORE: no {}", file.display());
    }
    Some(bin)
}

/// A home with the demo plugin and a token.
pub struct Home {
    /// Temp folder.
    pub dir: tempfile::TempDir,
    /// API token.
    pub token: String,
    stask: PathBuf,
}

/// `stask migrate` on `home`: creates its database when there is none.
fn migrate_home(stask: &Path, home: &Path, env: &[(&str, &str)]) {
    let out = Command::new(stask)
        .arg("--home")
        .arg(home)
        .arg("migrate")
        .envs(env.iter().copied())
        .output()
        .expect("stask migrate");
    assert!(
        out.status.success(),
        "stask migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Home {
    /// A fresh home.
    pub fn new(bin: &Binaries) -> Home {
        Home::new_with_env(bin, &[])
    }

    /// A fresh home whose database is a copy of `template` (prepared once per size, copied
    /// for each run), synced to disk. Its token is not in that database: serve it with
    /// [`Home::serve_with_fresh_token`].
    pub fn from_template(bin: &Binaries, template: &Path) -> Home {
        let home = Home::new(bin);
        std::fs::copy(template, home.db()).unwrap();
        let _ = std::fs::remove_file(home.db().with_extension("db-wal"));
        let _ = std::fs::remove_file(home.db().with_extension("db-shm"));
        sync_disk();
        home
    }

    /// A fresh home whose token is created with this environment (e.g. a shared PostgreSQL
    /// `STASK_DATABASE_URL`: token names are then unique per home).
    pub fn new_with_env(bin: &Binaries, env: &[(&str, &str)]) -> Home {
        let dir = tempfile::Builder::new()
            .prefix("stask-bench-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("plugins.d")).unwrap();
        std::fs::copy(&bin.demo, dir.path().join("plugins.d/demo.so")).unwrap();
        // `token create` refuses a home without a database; `migrate` creates it.
        migrate_home(&bin.stask, dir.path(), env);
        let name = format!("bench-{}", rand::random::<u32>());
        let out = Command::new(&bin.stask)
            .args(["--home"])
            .arg(dir.path())
            .args(["token", "create", "--name", &name])
            .envs(env.iter().copied())
            .output()
            .expect("token");
        let token = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_owned();
        Home {
            dir,
            token,
            stask: bin.stask.clone(),
        }
    }

    /// Installs one more plugin library (before `serve`) as `plugins.d/{name}.so`.
    pub fn add_plugin(&self, library: &Path, name: &str) {
        std::fs::copy(
            library,
            self.dir.path().join(format!("plugins.d/{name}.so")),
        )
        .expect("copy plugin");
    }

    /// `storage/stask.db`.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("storage/stask.db")
    }

    /// Creates a new token in the home's (possibly replaced) database and serves.
    pub fn serve_with_fresh_token(&mut self, env: &[(&str, &str)]) -> Daemon {
        migrate_home(&self.stask, self.dir.path(), &[]);
        let out = Command::new(&self.stask)
            .arg("--home")
            .arg(self.dir.path())
            .args(["token", "create", "--name", "bench-fresh"])
            .output()
            .expect("token");
        self.token = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_owned();
        self.serve(env)
    }

    /// Starts `stask serve` with extra environment; waits until it is ready.
    pub fn serve(&self, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(&self.stask);
        cmd.arg("--home")
            .arg(self.dir.path())
            .arg("serve")
            .env("STASK_BIND", "127.0.0.1:0")
            .env("STASK_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("daemon did not become ready");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                break addr;
            }
        };
        Daemon {
            child,
            ready_at: Instant::now(),
            addr,
            token: self.token.clone(),
            _log: rx,
        }
    }
}

/// A running daemon; killed on drop.
pub struct Daemon {
    child: Child,
    /// When its ready line arrived.
    pub ready_at: Instant,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// API token.
    pub token: String,
    /// Kept so that the daemon's stderr stays drained.
    _log: mpsc::Receiver<String>,
}

impl Daemon {
    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status("VmRSS")
    }

    /// A number field of `/proc/<pid>/status` (`VmRSS`, `VmHWM` in KiB, `Threads`); 0 when
    /// the process is gone.
    pub fn status(&self, field: &str) -> u64 {
        crate::sampler::status_field(self.child.id(), field)
    }

    /// The daemon's process id (for `perf record -p`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A keep-alive HTTP connection.
    pub fn connect(&self) -> crate::client::Conn {
        crate::client::Conn::open(&self.addr, &self.token)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Inserts `n` pending `demo` tasks of `action` directly into the database (a batch, as a
/// bulk producer would), before the daemon starts.
pub fn insert_pending(db: &Path, n: usize, action: &str) {
    insert_pending_with(db, n, action, serde_json::json!({}), None);
}

/// [`insert_pending`] with task data and a scheduled start (UNIX ms; `None`: due now).
pub fn insert_pending_with(
    db: &Path,
    n: usize,
    action: &str,
    data: serde_json::Value,
    start_at: Option<i64>,
) {
    use stask_host::model::{NewTask, Priority};
    let store = stask_host::store::open(&format!("sqlite://{}", db.display())).expect("open db");
    store.migrate().expect("migrate");
    let now = stask_host::clock::now_ms();
    let task = NewTask {
        identifier: "demo".into(),
        action: action.into(),
        data,
        priority: Priority::Normal,
        start_at,
        max_attempts: 3,
        started_by: None,
        token_id: None,
        unique_key: None,
        unique_for_secs: None,
        parent_id: None,
        depends_on: Vec::new(),
        on_parent_failure: Default::default(),
    };
    let batch = vec![task; 1_000];
    let mut left = n;
    while left > 0 {
        let k = left.min(batch.len());
        store.insert_tasks(&batch[..k], now).expect("insert");
        left -= k;
    }
}

/// Makes sure the database exists with its schema (for homes prepared before any start).
pub fn migrate(db: &Path) {
    let store = stask_host::store::open(&format!("sqlite://{}", db.display())).expect("open db");
    store.migrate().expect("migrate");
}

/// Flushes dirty pages so that writeback of a prepared file does not land inside a measurement.
pub fn sync_disk() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}
