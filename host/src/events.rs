//! Events about tasks and workers, broadcast to live listeners (SSE streams, the UI, metrics).
//! Lossy by design: a slow listener misses events and re-reads state; nothing depends on them.

use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast;

use crate::plugins::WorkerChange;

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
    /// A running task logged a line (sent when the line is stored, a few times a second).
    TaskLog {
        /// Task id.
        id: i64,
        /// Attempt that wrote it.
        attempt: u32,
        /// 0 info, 1 warning, 2 error.
        level: u8,
        /// UNIX ms.
        at: i64,
        /// The text, cut at [`MAX_LOG_EVENT_CHARS`] (the stored line is whole).
        line: String,
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
    /// A worker's queue was paused or resumed (`stask workers pause|resume`, the API, the UI).
    WorkerPaused {
        /// Identifier.
        identifier: String,
        /// `true` on a pause, `false` on a resume.
        paused: bool,
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
        alert: crate::alerts::Alert,
    },
    /// An event of another host on the same queue, as that host sent it (see
    /// [`EventBus::enable_relay`]); it serializes as the original.
    #[serde(untagged)]
    FromPeer(serde_json::Value),
}

/// Longest log line an event carries, in characters: a relayed batch stays far below its
/// size limit, and a listener gets the line's start at once (the task's log has all of it).
pub const MAX_LOG_EVENT_CHARS: usize = 2_000;

impl Event {
    /// The event of a log line just stored.
    pub fn task_log(line: &crate::model::LogLine) -> Event {
        let text = match line.line.char_indices().nth(MAX_LOG_EVENT_CHARS) {
            Some((cut, _)) => format!("{}…", &line.line[..cut]),
            None => line.line.clone(),
        };
        Event::TaskLog {
            id: line.task_id,
            attempt: line.attempt,
            level: line.level,
            at: line.at,
            line: text,
        }
    }

    /// The task the event is about, if any.
    pub fn task_id(&self) -> Option<i64> {
        match self {
            Event::TaskCreated { id, .. }
            | Event::TaskProgress { id, .. }
            | Event::TaskFinished { id, .. }
            | Event::TaskLog { id, .. } => Some(*id),
            Event::FromPeer(value) => value
                .get("type")
                .and_then(|t| t.as_str())
                .filter(|t| t.starts_with("task_"))
                .and_then(|_| value.get("id"))
                .and_then(|id| id.as_i64()),
            _ => None,
        }
    }

    /// Whether the other hosts on a shared queue show it too: task and worker events. Alerts
    /// are not: every host computes them from the shared database.
    fn is_relayed(&self) -> bool {
        matches!(
            self,
            Event::TaskCreated { .. }
                | Event::TaskProgress { .. }
                | Event::TaskFinished { .. }
                | Event::TaskLog { .. }
                | Event::WorkerLoaded { .. }
                | Event::WorkerOrphaned { .. }
                | Event::WorkerPaused { .. }
                | Event::PluginError { .. }
        )
    }
}

/// Most events kept for the other hosts between two sends; beyond that they are counted and
/// the other hosts' listeners get a `lagged` event (they re-read what they show).
pub const MAX_RELAYED_PER_SEND: usize = 2_000;

/// Events waiting to be sent to the other hosts.
#[derive(Default)]
struct Outbox {
    events: Vec<Event>,
    /// Where each task's latest progress event waits: a newer one replaces it.
    progress_at: HashMap<i64, usize>,
    dropped: u64,
}

impl Outbox {
    fn push(&mut self, event: Event) {
        if let Event::TaskProgress { id, .. } = &event {
            if let Some(&at) = self.progress_at.get(id) {
                self.events[at] = event;
                return;
            }
        }
        if self.events.len() >= MAX_RELAYED_PER_SEND {
            self.dropped += 1;
            return;
        }
        if let Event::TaskProgress { id, .. } = &event {
            self.progress_at.insert(*id, self.events.len());
        }
        self.events.push(event);
    }
}

/// Sender side shared by everything that reports events.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    /// Events for the other hosts on a shared queue; `None` until relaying is enabled.
    outbox: Arc<Mutex<Option<Outbox>>>,
}

impl EventBus {
    /// A bus keeping up to `capacity` events per slow listener.
    pub fn new(capacity: usize) -> Self {
        EventBus {
            sender: broadcast::channel(capacity).0,
            outbox: Arc::new(Mutex::new(None)),
        }
    }

    /// Publishes to this host's listeners (no-op without any), and keeps task and worker
    /// events for the other hosts once relaying is enabled.
    pub fn publish(&self, event: Event) {
        if event.is_relayed() {
            if let Some(outbox) = self.outbox.lock().as_mut() {
                outbox.push(event.clone());
            }
        }
        let _ = self.sender.send(event);
    }

    /// Publishes an event another host sent, to this host's listeners only.
    pub fn publish_from_peer(&self, event: serde_json::Value) {
        let _ = self.sender.send(Event::FromPeer(event));
    }

    /// From now on, keeps task and worker events for [`Self::take_relayed`] (hosts sharing a
    /// queue: the UI on any host shows the work of all).
    pub fn enable_relay(&self) {
        self.outbox.lock().get_or_insert_with(Outbox::default);
    }

    /// The events kept for the other hosts since the last call (newest progress per task),
    /// and how many were dropped for room.
    pub fn take_relayed(&self) -> (Vec<Event>, u64) {
        match self.outbox.lock().as_mut() {
            Some(outbox) => {
                let taken = std::mem::take(outbox);
                (taken.events, taken.dropped)
            }
            None => (Vec::new(), 0),
        }
    }

    /// A new listener.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(1024)
    }
}

impl From<WorkerChange> for Event {
    fn from(change: WorkerChange) -> Event {
        match change {
            WorkerChange::Loaded {
                identifier,
                version,
                file,
            } => Event::WorkerLoaded {
                identifier,
                version,
                file,
            },
            WorkerChange::Orphaned { identifier } => Event::WorkerOrphaned { identifier },
            WorkerChange::Refused { file, reason } => Event::PluginError { file, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(id: i64, progress: i64) -> Event {
        Event::TaskProgress {
            id,
            status: "running".into(),
            progress,
            message: String::new(),
            eta: None,
        }
    }

    #[test]
    fn relayed_events_keep_their_order_with_the_newest_progress_per_task() {
        let bus = EventBus::new(16);
        bus.publish(progress(1, 10));
        assert_eq!(
            bus.take_relayed().0.len(),
            0,
            "nothing is kept before enabling"
        );
        bus.enable_relay();
        bus.publish(progress(1, 20));
        bus.publish(progress(2, 5));
        bus.publish(progress(1, 30));
        bus.publish(Event::TaskFinished {
            id: 1,
            status: "completed".into(),
            message: "done".into(),
        });
        let (events, dropped) = bus.take_relayed();
        let shown: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .map(|v| format!("{}:{}:{}", v["type"], v["id"], v["progress"]))
            .collect();
        assert_eq!(
            shown,
            vec![
                "\"task_progress\":1:30",
                "\"task_progress\":2:5",
                "\"task_finished\":1:null"
            ]
        );
        assert_eq!(dropped, 0);
        assert!(bus.take_relayed().0.is_empty());
    }

    #[test]
    fn a_full_outbox_counts_what_it_drops_and_alerts_stay_local() {
        let bus = EventBus::new(16);
        bus.enable_relay();
        for id in 0..(MAX_RELAYED_PER_SEND as i64 + 5) {
            bus.publish(Event::TaskCreated {
                id,
                identifier: "w".into(),
                action: "a".into(),
            });
        }
        let (events, dropped) = bus.take_relayed();
        assert_eq!((events.len(), dropped), (MAX_RELAYED_PER_SEND, 5));
    }

    #[test]
    fn a_peer_event_shows_as_sent_and_names_its_task() {
        let sent = serde_json::json!({"type": "task_finished", "id": 7, "status": "failed", "message": "x"});
        let event = Event::FromPeer(sent.clone());
        assert_eq!(serde_json::to_value(&event).unwrap(), sent);
        assert_eq!(event.task_id(), Some(7));
        let worker = Event::FromPeer(serde_json::json!({"type": "worker_loaded", "id": 3}));
        assert_eq!(worker.task_id(), None);
    }
}
