//! Worker discovery for the CLI: `stask workers discover`/`rescan`, and the same discovery run
//! once by `stask task create` when the named worker is not registered yet (the original's
//! "workers are automatically discovered"), so a fresh home needs no explicit discover.

use super::{lock_home, try_lock_home, CliError};
use crate::engine::Engine;
use crate::plugins::registry::ScanOutcomes;

/// Loads the new and changed libraries of plugins.d/ (`rescan`: every one again) as `stask
/// workers discover` does. Refused (exit code 4) while a daemon holds the home: it watches
/// plugins.d/ itself, and loading the files here too would record versions it does not serve.
pub(super) fn discover(engine: &Engine, rescan: bool) -> Result<ScanOutcomes, CliError> {
    let _lock = lock_home(&engine.config.storage_dir()).map_err(|_| {
        CliError::new(
            4,
            "a daemon is running on this home and watches plugins.d/ itself; use POST /stask/workers/rescan to force a rescan",
        )
    })?;
    scan_locked(engine, rescan)
}

/// Runs [`discover`] once when `identifier` has no worker row, so that the create which
/// follows finds a worker whose library is in plugins.d/. Nothing is scanned when the worker
/// is known, or when a daemon holds the home (it has loaded plugins.d/ itself: a row missing
/// then is a worker that is truly absent). The create's own check then answers for a worker
/// that is still unknown, with the known ones.
pub(super) fn discover_if_unknown(engine: &Engine, identifier: &str) -> Result<(), CliError> {
    if engine.store.worker(identifier)?.is_some() {
        return Ok(());
    }
    let Some(_lock) = try_lock_home(&engine.config.storage_dir())? else {
        return Ok(());
    };
    // The registry logs each load and each refusal with its reason (stderr: stdout is the new
    // task's id alone, for scripts).
    scan_locked(engine, false)?;
    Ok(())
}

/// The scan itself, under the home lock the caller holds.
fn scan_locked(engine: &Engine, rescan: bool) -> Result<ScanOutcomes, CliError> {
    // This command's library copies go when the scan ends (and stale ones now): the rows it
    // wrote are what the command needs; a daemon loads its own copies.
    let _copies = engine.registry.claim_copies();
    Ok(if rescan {
        engine.registry.rescan()?
    } else {
        engine.registry.scan()?
    })
}
