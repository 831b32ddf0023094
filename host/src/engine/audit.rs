//! The audit log's writer: the HTTP layer hands each entry over without waiting (a channel),
//! and one thread stores them in batches (whatever queued while the last batch was written
//! goes in the next, one transaction each), so a create never waits for its audit row.
//! [`AuditLog::close`] ends the channel and waits until the thread stored what was queued:
//! a clean stop loses nothing.

use crate::store::{AuditEntry, Store};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Most entries one insert stores.
const BATCH: usize = 500;
/// Entries queued before new ones are dropped (with a warning): a store that fails for long
/// must not grow the host's memory without bound.
const QUEUE: usize = 100_000;
/// Tries of one batch before it is given up (the store failed each time).
const TRIES: u32 = 5;

/// The queue to the writer thread, and the thread.
pub struct AuditLog {
    sender: RwLock<Option<Sender<AuditEntry>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl AuditLog {
    /// Starts the writer thread over `store`.
    pub fn start(store: Arc<dyn Store>) -> AuditLog {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let writer = std::thread::Builder::new()
            .name("stask-audit".into())
            .spawn(move || write_all(store.as_ref(), &rx))
            .map_err(|e| tracing::error!("cannot start the audit writer: {e}"))
            .ok();
        AuditLog {
            sender: RwLock::new(writer.as_ref().map(|_| tx)),
            writer: Mutex::new(writer),
        }
    }

    /// Queues an entry (never waits).
    pub fn record(&self, entry: AuditEntry) {
        let guard = self.sender.read().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = guard.as_ref() else {
            tracing::warn!(route = %entry.route, "audit entry after the audit log closed; not stored");
            return;
        };
        match tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(e)) => {
                tracing::warn!(route = %e.route, "audit queue full (the store fails?); entry dropped")
            }
            Err(TrySendError::Disconnected(e)) => {
                tracing::error!(route = %e.route, "the audit writer has stopped; entry dropped")
            }
        }
    }

    /// Ends the queue and waits until every queued entry is stored.
    pub fn close(&self) {
        self.sender
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(writer) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = writer.join();
        }
    }
}

/// Stores batches until the queue ends and is empty.
fn write_all(store: &dyn Store, rx: &Receiver<AuditEntry>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(BATCH - 1));
        let mut tries = 0;
        loop {
            tries += 1;
            match store.insert_audit(&batch) {
                Ok(()) => break,
                Err(e) if tries < TRIES => {
                    tracing::warn!("cannot store {} audit entries yet: {e}", batch.len());
                    // A pause before the next try: the store is failing (busy, restarting).
                    std::thread::sleep(Duration::from_millis(200 * u64::from(tries)));
                }
                Err(e) => {
                    tracing::error!("{} audit entries lost: {e}", batch.len());
                    break;
                }
            }
        }
    }
}
