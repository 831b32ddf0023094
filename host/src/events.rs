//! Events about tasks and workers, broadcast to live listeners (SSE streams, the UI, metrics).
//! Lossy by design: a slow listener misses events and re-reads state; nothing depends on them.

use serde::Serialize;
use tokio::sync::broadcast;

/// Something that changed.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A task was created.
    TaskCreated {
        /// Task id.
        id: i64,
        /// Worker.
        identifier: String,
        /// Action.
        action: String,
    },
    /// A task's progress or status changed.
    TaskProgress {
        /// Task id.
        id: i64,
        /// Status name.
        status: String,
        /// 0-100.
        progress: i64,
        /// Message.
        message: String,
        /// ETA text.
        eta: Option<String>,
    },
    /// A task finished or went back to pending for a retry.
    TaskFinished {
        /// Task id.
        id: i64,
        /// New status name.
        status: String,
        /// Message.
        message: String,
    },
    /// A worker library was loaded or reloaded.
    WorkerLoaded {
        /// Identifier.
        identifier: String,
        /// Version label.
        version: String,
        /// File.
        file: String,
    },
    /// A worker's library was removed.
    WorkerOrphaned {
        /// Identifier.
        identifier: String,
    },
    /// A library file was refused.
    PluginError {
        /// File.
        file: String,
        /// One-line reason.
        reason: String,
    },
    /// A health alert started or ended (see `engine::monitor`).
    Alert {
        /// `started` or `ended`.
        state: String,
        /// The alert (for an ended one, as last seen).
        alert: crate::engine::analytics::Alert,
    },
}

/// Sender side shared by everything that reports events.
#[derive(Clone)]
pub struct EventBus(broadcast::Sender<Event>);

impl EventBus {
    /// A bus keeping up to `capacity` events per slow listener.
    pub fn new(capacity: usize) -> Self {
        EventBus(broadcast::channel(capacity).0)
    }

    /// Publishes (no-op without listeners).
    pub fn publish(&self, event: Event) {
        let _ = self.0.send(event);
    }

    /// A new listener.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(1024)
    }
}
