//! Placeholder for the apalis peer, which is written in another branch: the lead replaces this
//! file at merge. It only keeps the `peers` mode compiling and says why apalis did not run.

use super::{PeerRun, Workload};

/// The peer as the table names it.
pub const NAME: &str = "apalis (Rust)";
/// What a crash loses with the settings used, and which of our levels it is set against.
pub const DURABILITY: &str = "not built in this branch";

/// Always the reason it cannot run here.
pub fn run(_w: &Workload) -> Result<PeerRun, String> {
    Err("not built in this branch".into())
}
