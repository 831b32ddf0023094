//! Abandonment: gives up on runs whose worker ignored the cancel request of its timeout for
//! the stop grace period (`STASK_SHUTDOWN_GRACE_SECS`).
//!
//! The worker call cannot be stopped in-process, so its thread stays blocked (reported by the
//! `stuck_task` alert) until the call returns; its outcome is discarded then. Invariant: the
//! outcome of a run is settled once ([`LiveTask::claim_outcome`]): by the run returning, or
//! here, never both.

use super::super::progress::LiveTask;
use super::super::Engine;
use super::pool::spawn_pool_thread;
use super::FinisherInbox;
use crate::clock::now_ms;
use crate::task_state::RunEnd;
use stask_plugin_api::protocol::RunOutcome;
use stask_plugin_api::LogLevel;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Fails every overdue run as timed out, sends its end to the finisher, and gives its pool
/// slot to a new thread.
pub(super) fn abandon_overdue(engine: &Arc<Engine>, done: &FinisherInbox) {
    let grace = engine.config.shutdown_grace_secs;
    for live in engine.hub.all() {
        let timeout = live.timeout_secs();
        if !live.timed_out.load(Ordering::Relaxed)
            || live.elapsed_secs() < timeout.saturating_add(grace)
            || !live.claim_outcome()
        {
            continue;
        }
        abandon(engine, done, live, timeout, grace);
    }
}

fn abandon(
    engine: &Arc<Engine>,
    done: &FinisherInbox,
    live: Arc<LiveTask>,
    timeout: u64,
    grace: u64,
) {
    engine.hub.abandon(&live);
    tracing::error!(
        task = live.id,
        worker = %live.identifier,
        "the worker ignored the cancel request of its {timeout}s timeout for {grace}s: the run \
         is abandoned and its pool slot given to a new thread; the old thread stays blocked \
         in plugin code until the call returns"
    );
    live.host_log(
        LogLevel::Error,
        format!(
            "host: the worker did not stop within {grace}s of its {timeout}s timeout: the run \
             is abandoned (its thread stays blocked in the plugin) and the attempt fails"
        ),
    );
    let end = RunEnd {
        id: live.id,
        lease_token: live.lease_token,
        attempt: live.attempt,
        max_attempts: live.max_attempts(),
        cancel_requested: true,
        host_stopping: false,
        timed_out_after: Some(timeout),
        started_at: live.started_ms(),
        duration_ms: now_ms() - live.started_ms(),
        cpu_ms: None,
        memory_bytes: None,
        worker_version: live.worker_version.clone(),
        result_file: None,
    };
    let outcome = RunOutcome::Failed {
        message: "abandoned after its timeout".into(),
        retryable: true,
    };
    spawn_pool_thread(engine, done, format!("stask-pool-r{}", live.id));
    engine.runtime_state.run_left(1);
    let _ = done.send((end, outcome, live));
}
