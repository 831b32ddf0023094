//! Live events across the hosts that share one queue (PostgreSQL): each host sends its task and
//! worker events to the others four times a second, so the UI and event streams of any host
//! show the work of all. Lossy like the events themselves: a listener that misses some gets a
//! `lagged` event and re-reads the state it shows.

use super::Engine;
use crate::events::Event;
use serde_json::{json, Value};
use std::sync::Arc;

/// Largest batch sent at once: PostgreSQL refuses a `NOTIFY` payload of 8,000 bytes or more.
pub const MAX_BATCH_BYTES: usize = 7_800;

impl Engine {
    /// Starts relaying when other hosts may share the queue: this host's events are kept for
    /// [`Engine::send_relayed_events`], and the other hosts' events reach this host's listeners.
    pub(crate) fn start_event_relay(self: &Arc<Self>) {
        if !self.store.shared_by_hosts() {
            return;
        }
        self.events.enable_relay();
        let (events, owner) = (self.events.clone(), self.owner.clone());
        self.store.on_events(Arc::new(move |payload: &str| {
            for event in received(payload, &owner) {
                events.publish_from_peer(event);
            }
        }));
    }

    /// Sends the events kept since the last call to the other hosts (by the ticker).
    pub(crate) fn send_relayed_events(&self) {
        let (events, dropped) = self.events.take_relayed();
        if events.is_empty() && dropped == 0 {
            return;
        }
        let batches = batches(&self.owner, &events, dropped);
        if let Err(e) = self.store.send_events(&batches) {
            tracing::debug!("cannot send live events to the other hosts: {e}");
        }
    }
}

/// `events` as batches of `{"from": owner, "events": [...]}` under [`MAX_BATCH_BYTES`]. An
/// event too large to send alone (a huge progress message) is replaced by a `lagged` event,
/// as are the `dropped` ones.
pub fn batches(owner: &str, events: &[Event], dropped: u64) -> Vec<String> {
    let envelope = json!({"from": owner, "events": []}).to_string();
    let room = MAX_BATCH_BYTES.saturating_sub(envelope.len());
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 0;
    let mut missed = dropped;
    for event in events {
        let text = serde_json::to_string(event).unwrap_or_default();
        if text.len() + 1 > room {
            missed += 1;
            continue;
        }
        if size + text.len() + 1 > room {
            out.push(wrap(owner, &current));
            current.clear();
            size = 0;
        }
        size += text.len() + 1;
        current.push(text);
    }
    if missed > 0 {
        let lagged = json!({"type": "lagged", "missed": missed}).to_string();
        if size + lagged.len() + 1 > room {
            out.push(wrap(owner, &current));
            current.clear();
        }
        current.push(lagged);
    }
    if !current.is_empty() {
        out.push(wrap(owner, &current));
    }
    out
}

fn wrap(owner: &str, events: &[String]) -> String {
    format!(
        "{{\"from\":{},\"events\":[{}]}}",
        Value::String(owner.to_owned()),
        events.join(",")
    )
}

/// The events of a received batch, unless this host sent it (or it is not a batch).
pub fn received(payload: &str, own: &str) -> Vec<Value> {
    let Ok(mut batch) = serde_json::from_str::<Value>(payload) else {
        return Vec::new();
    };
    if batch.get("from").and_then(Value::as_str) == Some(own) {
        return Vec::new();
    }
    match batch.get_mut("events").map(Value::take) {
        Some(Value::Array(events)) => events
            .into_iter()
            .filter(|e| e.get("type").is_some_and(Value::is_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(id: i64, action: &str) -> Event {
        Event::TaskCreated {
            id,
            identifier: "w".into(),
            action: action.into(),
        }
    }

    #[test]
    fn batches_stay_under_the_payload_limit_and_arrive_whole_at_other_hosts() {
        let events: Vec<Event> = (0..400).map(|id| created(id, "import")).collect();
        let sent = batches("host-a", &events, 0);
        assert!(sent.len() > 1, "{} batches", sent.len());
        assert!(sent.iter().all(|b| b.len() < MAX_BATCH_BYTES));
        let got: Vec<i64> = sent
            .iter()
            .flat_map(|b| received(b, "host-b"))
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert_eq!(got, (0..400).collect::<Vec<_>>());
        assert!(sent.iter().all(|b| received(b, "host-a").is_empty()));
    }

    #[test]
    fn oversized_and_dropped_events_become_one_lagged_event() {
        let huge = Event::TaskProgress {
            id: 1,
            status: "running".into(),
            progress: 5,
            message: "x".repeat(MAX_BATCH_BYTES),
            eta: None,
        };
        let sent = batches("a", &[created(1, "run"), huge], 3);
        let got: Vec<Value> = sent.iter().flat_map(|b| received(b, "b")).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0]["type"], "task_created");
        assert_eq!(got[1], json!({"type": "lagged", "missed": 4}));
        assert!(received("not json", "b").is_empty());
        assert!(received(r#"{"from":"a","events":[1,{"type":"x"}]}"#, "b").len() == 1);
    }
}
