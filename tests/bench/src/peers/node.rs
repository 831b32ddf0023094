//! The Node peers' harness: `tests/bench/peers/node/` (package.json, its lock and one script
//! per peer) copied to `target/bench-node` and installed there from the npm registry with
//! `npm ci`, once (again only when the lock changed). Nothing of it is part of the product.

use super::protocol::Script;
use crate::daemon::bench_dir;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const PACKAGE: &str = include_str!("../../peers/node/package.json");
const LOCK: &str = include_str!("../../peers/node/package-lock.json");
const FILES: [(&str, &str); 3] = [
    ("common.mjs", include_str!("../../peers/node/common.mjs")),
    ("bullmq.mjs", include_str!("../../peers/node/bullmq.mjs")),
    (
        "graphile.mjs",
        include_str!("../../peers/node/graphile.mjs"),
    ),
];

/// Installs the harness (once per bench process); its folder, or why it could not be.
fn install() -> Result<PathBuf, String> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let version = Command::new("node")
            .arg("--version")
            .output()
            .map_err(|e| format!("node not found: {e}"))?;
        eprintln!(
            "peers: node {}",
            String::from_utf8_lossy(&version.stdout).trim()
        );
        let dir = bench_dir("bench-node");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock = dir.join("package-lock.json");
        let current = dir.join("node_modules").is_dir()
            && std::fs::read_to_string(&lock).is_ok_and(|l| l == LOCK);
        if !current {
            std::fs::write(dir.join("package.json"), PACKAGE).map_err(|e| e.to_string())?;
            std::fs::write(&lock, LOCK).map_err(|e| e.to_string())?;
            eprintln!("peers: npm ci in {}", dir.display());
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .output()
                .map_err(|e| format!("npm not found: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "npm ci failed (no npm registry?): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        for (name, text) in FILES {
            std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(dir)
    })
    .clone()
}

/// The script `name` (e.g. `bullmq.mjs`) of the installed harness.
pub fn script(name: &str, env: Vec<(String, String)>) -> Result<Script, String> {
    let dir = install()?;
    Ok(Script {
        program: "node".into(),
        lead: vec![dir.join(name).into()],
        env,
        dir,
    })
}

/// Whether something listens on `addr` (the peer's server), so that a missing server is a
/// clear reason rather than a client retrying until the step's timeout.
pub fn reachable(addr: &str) -> Result<(), String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let sock = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("bad address {addr}"))?;
    TcpStream::connect_timeout(&sock, std::time::Duration::from_secs(2))
        .map(drop)
        .map_err(|e| format!("no server on {addr}: {e}"))
}
