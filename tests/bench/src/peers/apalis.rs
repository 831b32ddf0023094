//! The Rust peer: apalis with its SQLite storage (`apalis-sqlite`), run by a standalone program
//! under `tests/bench/peers/apalis` (its own cargo workspace: sqlx's bundled SQLite and our
//! rusqlite both link `sqlite3`, so they cannot share one build graph). The bench builds it
//! into `target/peer-apalis` on first use; nothing of it is part of the product.

use super::{PeerRun, Workload};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The system and version compared (the versions pinned by the harness's Cargo.lock).
pub const NAME: &str = "apalis 1.0.0 (apalis-sqlite 1.0.0, SQLite via sqlx 0.9)";

/// What a crash loses with the settings the harness uses (apalis-sqlite's own `setup`).
pub const DURABILITY: &str = "WAL; apalis-sqlite's setup runs `PRAGMA synchronous = OFF` on \
     one pooled connection only, the pool's others keep SQLite's FULL (the WAL synced at each \
     commit): a process kill loses nothing committed; a power loss can lose the commits made \
     on the OFF connection since the last synced one (OFF also risks corruption). Closest to \
     our STASK_SQLITE_SYNC=full";

/// The harness's manifest, next to this crate.
fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/apalis/Cargo.toml")
}

/// The harness's own target directory inside the workspace's `target/`.
fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/peer-apalis")
}

/// Builds the harness once per bench process (cargo makes repeated builds no-ops); the
/// program's path, or why it could not be built.
fn program() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            eprintln!("peer apalis: building the harness (first use compiles sqlx and apalis)");
            let out = Command::new(cargo)
                .args(["build", "--release", "--locked", "--manifest-path"])
                .arg(manifest())
                .arg("--target-dir")
                .arg(target_dir())
                .output()
                .map_err(|e| format!("cargo could not start: {e}"))?;
            if !out.status.success() {
                let log = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                return Err(format!(
                    "the apalis harness did not build: {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                ));
            }
            Ok(target_dir().join("release/stask-peer-apalis"))
        })
        .clone()
}

/// Runs one phase; the numbers after the phase's name on its result line.
fn phase(program: &PathBuf, args: &[String]) -> Result<Vec<f64>, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("the apalis harness could not start: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // The panic message, without a backtrace's frames.
        let why: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(|c: char| c.is_ascii_digit()))
            .filter(|l| !l.starts_with("at ") && !l.starts_with("stack backtrace"))
            .take(4)
            .collect();
        return Err(format!(
            "apalis {} failed ({}): {}",
            args[0],
            out.status,
            why.join(" ")
        ));
    }
    // The harness's pragma line (journal mode, synchronous per connection) goes to the log.
    for line in stderr.lines().filter(|l| l.starts_with("info ")) {
        eprintln!("  apalis {}: {line}", args[0]);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{} ", args[0])))
        .ok_or_else(|| format!("apalis {} printed no result: {stdout}", args[0]))?;
    line.split_whitespace()
        .skip(1)
        .map(|v| {
            v.parse()
                .map_err(|e| format!("apalis {} printed {line:?}: {e}", args[0]))
        })
        .collect()
}

/// One run of apalis on `w` (each phase in a fresh process and database file).
pub fn run(w: &Workload) -> Result<PeerRun, String> {
    let program = program()?;
    let pool = w.pool.to_string();
    let drain = phase(
        &program,
        &["drain".into(), w.drain_tasks.to_string(), pool.clone()],
    )?;
    let sustained = phase(
        &program,
        &[
            "sustained".into(),
            w.sustained_secs.to_string(),
            w.producers.to_string(),
            pool.clone(),
        ],
    )?;
    let latency = phase(
        &program,
        &[
            "latency".into(),
            w.latency_tasks.to_string(),
            w.latency_gap.as_millis().to_string(),
            pool,
        ],
    )?;
    let get = |v: &[f64], i: usize, what: &str| {
        v.get(i)
            .copied()
            .ok_or_else(|| format!("apalis {what}: value {i} missing"))
    };
    Ok(PeerRun {
        drain_per_s: get(&drain, 2, "drain")?,
        sustained_created_per_s: get(&sustained, 0, "sustained")?,
        sustained_completed_per_s: get(&sustained, 1, "sustained")?,
        latency_p50_ms: get(&latency, 0, "latency")?,
        latency_p99_ms: get(&latency, 1, "latency")?,
    })
}
