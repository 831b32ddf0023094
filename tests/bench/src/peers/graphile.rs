//! graphile-worker (Node, npm) on the local PostgreSQL, in its own schema `graphile_bench`
//! (dropped and migrated again before each phase): producers call `addJob`, the consumer is one
//! `run()` process with `concurrency` = the pool (script: tests/bench/peers/node/graphile.mjs).
//! 0.16.x because 0.18 needs Node 22 and this machine has Node 20.

use super::{node, protocol, PeerRun, Workload};

/// The peer as the table names it.
pub const NAME: &str = "graphile-worker 0.16.6 (PostgreSQL)";
/// What a crash loses with the settings used, and which of our levels it is set against.
pub const DURABILITY: &str = "PostgreSQL with synchronous_commit=on and fsync=on: a job is on \
    disk when addJob returns and a completion when it is recorded; set against ours at \
    STASK_SQLITE_SYNC=full";

fn url() -> String {
    std::env::var("STASK_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn script() -> Result<protocol::Script, String> {
    let url = url();
    // host:port between the credentials and the database name.
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let host = rest
        .rsplit('@')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432");
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    node::reachable(&host)?;
    node::script(
        "graphile.mjs",
        vec![("STASK_BENCH_POSTGRES_URL".into(), url)],
    )
}

/// The server's commit settings as read from it.
pub fn settings() -> Result<String, String> {
    protocol::settings(&script()?)
}

/// One run of the workload.
pub fn run(w: &Workload) -> Result<PeerRun, String> {
    protocol::run_phases(&script()?, w)
}
