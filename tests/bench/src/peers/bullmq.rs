//! BullMQ (Node, npm) on the local Redis: producers call `Queue.add`, the consumer is one
//! `Worker` process with `concurrency` = the pool (script: tests/bench/peers/node/bullmq.mjs).

use super::{node, protocol, PeerRun, Workload};

/// The peer as the table names it.
pub const NAME: &str = "BullMQ 6.7.6 (Redis)";
/// What a crash loses with the settings used, and which of our levels it is set against.
pub const DURABILITY: &str = "Redis here runs without persistence (no RDB snapshots, no AOF): a \
    Redis restart or power loss loses every job, a weaker guarantee than any of ours; set against \
    ours at STASK_SQLITE_SYNC=normal, our weakest";

fn redis() -> String {
    std::env::var("STASK_BENCH_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into())
}

fn script() -> Result<protocol::Script, String> {
    node::reachable(&redis())?;
    node::script("bullmq.mjs", vec![("STASK_BENCH_REDIS".into(), redis())])
}

/// Redis's persistence settings as read from the server.
pub fn settings() -> Result<String, String> {
    protocol::settings(&script()?)
}

/// One run of the workload.
pub fn run(w: &Workload) -> Result<PeerRun, String> {
    protocol::run_phases(&script()?, w)
}
