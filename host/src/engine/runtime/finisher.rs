//! The finisher: receives each run's [`RunEnd`] (what happened) with its outcome, asks the
//! state machine for the [`Finish`] (the store write it decides), applies them in grouped
//! transactions, then publishes them.
//!
//! Invariants: an outcome is never dropped (a failed write is retried until it is stored); a
//! run leaves the hub only after its finish is stored or refused, so "hub empty and nothing in
//! flight" means every outcome is in the database; a finish the store refuses (its lease was
//! taken over) is logged and not published.

use super::super::progress::{LiveTask, Snapshot};
use super::super::Engine;
use super::FinisherMail;
use crate::clock::{now_ms, rfc3339};
use crate::events::Event;
use crate::model::{LogLine, TaskStatus};
use crate::store::Finish;
use crate::task_state::{self as state, RunEnd};
use crossbeam_channel::{select, Receiver};
use std::sync::Arc;
use std::time::Duration;

const MAX_FINISH_BATCH: usize = 512;

/// Applies finished runs until `done` disconnects, or, once `drain` fires (a pass that ends
/// with blocked runs, whose senders never go), until `done` is empty. The daemon passes
/// `crossbeam_channel::never()` as `drain`.
pub(super) fn finisher(engine: &Arc<Engine>, done: Receiver<FinisherMail>, drain: Receiver<()>) {
    loop {
        let first = select! {
            recv(done) -> mail => match mail {
                Ok(mail) => mail,
                Err(_) => return,
            },
            recv(drain) -> _ => {
                while let Ok(mail) = done.try_recv() {
                    finish_batch(engine, &done, mail);
                }
                return;
            },
        };
        finish_batch(engine, &done, first);
    }
}

/// Stores `first` and whatever else is waiting (up to [`MAX_FINISH_BATCH`]) in one write.
fn finish_batch(engine: &Engine, done: &Receiver<FinisherMail>, first: FinisherMail) {
    let mut batch = vec![first];
    while batch.len() < MAX_FINISH_BATCH {
        match done.try_recv() {
            Ok(mail) => batch.push(mail),
            Err(_) => break,
        }
    }
    let now = now_ms();
    let batch: Vec<(Finish, Arc<LiveTask>)> = batch
        .into_iter()
        .map(|(end, outcome, live)| (decide(engine, &end, outcome, &live, now), live))
        .collect();
    let logs: Vec<LogLine> = batch
        .iter()
        .flat_map(|(_, live)| live.take_remaining_logs())
        .collect();
    match engine.store.append_logs(&logs) {
        Ok(()) => super::ticker::publish_logs(engine, &logs),
        Err(e) => {
            // Kept for the ticker's next flush, like its own lines.
            tracing::warn!("cannot store task logs now (kept and tried again): {e}");
            engine.runtime_state.unflushed.lock().add(Vec::new(), logs);
        }
    }
    let finishes: Vec<Finish> = batch.iter().map(|(f, _)| f.clone()).collect();
    let mut failed_before = false;
    let applied = loop {
        match engine.store.finish(&finishes) {
            Ok(applied) if failed_before => {
                break stored_by_earlier_tries(engine, &finishes, applied)
            }
            Ok(applied) => break applied,
            Err(e) => {
                failed_before = true;
                // Never drop an outcome: keep trying (the database may be locked for a while).
                tracing::error!(
                    "cannot store {} task outcomes, retrying: {e}",
                    finishes.len()
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    for ((finish, live), ok) in batch.iter().zip(applied.iter().copied()) {
        engine.hub.remove(finish.id);
        // A cancel that arrived while the run was between the queue and the hub is moot now.
        engine.runtime_state.early_cancels.lock().remove(&finish.id);
        if !ok {
            tracing::warn!(
                task = finish.id,
                "outcome discarded: the task's lease was taken over by another run"
            );
            continue;
        }
        if live.has_snapshot() {
            write_final_snapshot(engine, live, finish);
        }
        engine.metrics.attempt_finished(
            &live.identifier,
            &live.action,
            match finish.status {
                TaskStatus::Pending => "retried",
                status => status.name(),
            },
            finish.duration_ms,
            finish.cpu_ms,
        );
        engine.events.publish(Event::TaskFinished {
            id: finish.id,
            status: finish.status.name().into(),
            message: finish.message.clone(),
        });
    }
    // Right after the write that finished them: their dependants are released or cancelled
    // (a kill in between leaves it to the ticker's sweep).
    let ended: Vec<i64> = batch
        .iter()
        .zip(&applied)
        .filter(|((f, _), ok)| **ok && f.status.is_finished())
        .map(|((f, _), _)| f.id)
        .collect();
    engine.pass_on_ends(&ended);
    engine.runtime_state.notify_idle();
    engine.wake();
}

/// After a failed try, a finish refused now may be one the failed try stored (its connection
/// broke after the commit): the row then shows this very finish (status and time).
fn stored_by_earlier_tries(engine: &Engine, finishes: &[Finish], applied: Vec<bool>) -> Vec<bool> {
    finishes
        .iter()
        .zip(applied)
        .map(|(f, ok)| {
            ok || engine.store.task(f.id).ok().flatten().is_some_and(|t| {
                t.status == f.status && t.updated_at == f.at && t.lease_owner.is_none()
            })
        })
        .collect()
}

/// The state machine's decision for one run, with the last progress counts of the run.
fn decide(
    engine: &Engine,
    end: &RunEnd,
    outcome: stask_plugin_api::protocol::RunOutcome,
    live: &LiveTask,
    now: i64,
) -> Finish {
    let mut finish = state::after_run(end, outcome, engine.backoff(), now);
    let view = live.view();
    finish.processed = view.processed;
    finish.total = view.total;
    finish
}

fn write_final_snapshot(engine: &Engine, live: &LiveTask, finish: &Finish) {
    let view = live.view();
    let snapshot = Snapshot {
        id: live.id,
        identifier: &live.identifier,
        action: &live.action,
        status: finish.status.name(),
        progress: finish.progress.unwrap_or(view.progress),
        processed: view.processed,
        total: view.total,
        eta: None,
        message: &finish.message,
        updated_at: rfc3339(finish.at),
    };
    if let Err(e) = snapshot.write(&engine.config.snapshot_dir()) {
        tracing::warn!(task = live.id, "cannot write the progress snapshot: {e}");
    }
}
