//! huey (Python, PyPI) with its SQLite storage, installed into `target/bench-venv`: producers
//! enqueue from their own process, the consumer is huey's `Consumer` with thread workers = the
//! pool (script: tests/bench/peers/huey/huey_peer.py). Run at two durability levels.

use super::{protocol, PeerRun, Workload};
use crate::daemon::bench_dir;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const HUEY_VERSION: &str = "3.5.4";
const SCRIPT: &str = include_str!("../../peers/huey/huey_peer.py");

/// The two settings huey is run with, each set against one of ours.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    /// `fsync=False`: SQLite synchronous=OFF.
    Off,
    /// huey's default: SQLite's synchronous default (FULL).
    Default,
}

impl Level {
    /// The peer as the table names it.
    pub fn name(self) -> String {
        match self {
            Level::Off => format!("huey {HUEY_VERSION} (SQLite, fsync=False)"),
            Level::Default => format!("huey {HUEY_VERSION} (SQLite, default fsync)"),
        }
    }

    /// What a crash loses at this level, and which of ours it is set against.
    pub fn durability(self) -> &'static str {
        match self {
            Level::Off => {
                "SQLite WAL with synchronous=OFF: a killed process loses nothing committed; a \
                 power loss can lose the last commits (and, unlike ours, corrupt the file); set \
                 against ours at STASK_SQLITE_SYNC=normal"
            }
            Level::Default => {
                "SQLite WAL with synchronous=FULL (SQLite's default): every commit is on disk; \
                 set against ours at STASK_SQLITE_SYNC=full"
            }
        }
    }

    fn env(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Default => "default",
        }
    }
}

/// The venv's python with huey installed (once per bench process), or why not.
fn venv() -> Result<PathBuf, String> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = bench_dir("bench-venv");
        let python = dir.join("bin/python");
        if !python.exists() {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .status()
                .map_err(|e| format!("python3 not found: {e}"))?;
            if !made.success() {
                return Err("python3 -m venv failed".into());
            }
        }
        let has = Command::new(&python)
            .args([
                "-c",
                &format!("import huey; assert huey.__version__ == '{HUEY_VERSION}'"),
            ])
            .status()
            .is_ok_and(|s| s.success());
        if !has {
            let out = Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", &format!("huey=={HUEY_VERSION}")])
                .output()
                .map_err(|e| format!("pip: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "pip install huey=={HUEY_VERSION} failed (no PyPI?): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(python)
    })
    .clone()
}

/// One run of the workload at `level`, on a fresh store file.
pub fn run(w: &Workload, level: Level) -> Result<PeerRun, String> {
    let python = venv()?;
    let dir = tempfile::Builder::new()
        .prefix("huey-bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let script = protocol::Script {
        program: python,
        lead: vec!["-c".into(), SCRIPT.into()],
        env: vec![
            (
                "HUEY_DB".into(),
                dir.path().join("huey.db").display().to_string(),
            ),
            ("HUEY_FSYNC".into(), level.env().into()),
        ],
        dir: dir.path().to_owned(),
    };
    protocol::run_phases(&script, w)
}
