//! The alert monitor: checks the health alerts on a timer and reports each one when it starts
//! and when it ends — in the log, on the event bus, and to the configured webhook.
//!
//! `GET /stask/performance/alerts` answers what fires *now*; the monitor is what tells an
//! operator who is not looking. An alert is one condition, told apart by [`Alert::key`] (its
//! type and subject), so a growing value does not restart it.

use super::Engine;
use crate::alerts::Alert;
use crate::clock::{now_ms, rfc3339};
use crate::events::Event;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Webhook posts waiting to be sent; beyond this the oldest news is dropped (with a warning)
/// rather than holding memory for an endpoint that is down.
const WEBHOOK_QUEUE: usize = 256;
/// Attempts per webhook post, with 1 s, 2 s between them.
const WEBHOOK_ATTEMPTS: u32 = 3;

/// What changed between two checks.
#[derive(Debug, Default, PartialEq)]
pub struct Transitions {
    /// Alerts firing now that did not before.
    pub started: Vec<Alert>,
    /// Alerts that fired before and do not now (as last seen).
    pub ended: Vec<Alert>,
}

/// The alerts firing, by key; [`ActiveAlerts::update`] turns each check into transitions.
#[derive(Debug, Default)]
pub struct ActiveAlerts(BTreeMap<String, Alert>);

impl ActiveAlerts {
    /// Takes the alerts firing now; returns which started and which ended since the last call.
    pub fn update(&mut self, now: Vec<Alert>) -> Transitions {
        let mut next: BTreeMap<String, Alert> = BTreeMap::new();
        for alert in now {
            next.entry(alert.key()).or_insert(alert);
        }
        let started = next
            .iter()
            .filter(|(key, _)| !self.0.contains_key(*key))
            .map(|(_, alert)| alert.clone())
            .collect();
        let ended = std::mem::take(&mut self.0)
            .into_iter()
            .filter(|(key, _)| !next.contains_key(key))
            .map(|(_, alert)| alert)
            .collect();
        self.0 = next;
        Transitions { started, ended }
    }

    /// How many alerts fire now.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none fires.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The JSON a webhook receives.
#[derive(Debug, Serialize)]
pub struct WebhookPost<'a> {
    /// `alert_started` or `alert_ended`.
    pub event: &'static str,
    /// The host that saw it (its lease-owner name).
    pub host: &'a str,
    /// When the monitor saw the change (RFC 3339).
    pub at: String,
    /// The alert (for an ended one, as last seen).
    pub alert: &'a Alert,
}

/// Runs until the engine stops: one check every `check_every_secs`.
pub(super) fn run(engine: &Arc<Engine>) {
    let every = Duration::from_secs(engine.config.alerts.check_every_secs);
    let webhook = engine
        .config
        .alerts
        .webhook_url
        .clone()
        .map(|url| Webhook::start(url, engine.owner.clone()));
    let mut active = ActiveAlerts::default();
    let mut next_check = Instant::now();
    loop {
        // Waits for the next check, or returns at once when the runtime stops.
        let wait = next_check.saturating_duration_since(Instant::now());
        if engine.runtime_state.wait_for_stop(wait) {
            break;
        }
        next_check = Instant::now() + every;
        let alerts = match engine.alerts(&engine.config.alerts.thresholds) {
            Ok(alerts) => alerts,
            Err(e) => {
                tracing::warn!("alert check failed: {e}");
                continue;
            }
        };
        let changes = active.update(alerts);
        engine.metrics.set_alerts_firing(active.len());
        for alert in &changes.started {
            tracing::warn!(alert = %alert.key(), value = alert.value, threshold = alert.threshold,
                "alert started: {}", alert.message);
            report(engine, webhook.as_ref(), "alert_started", alert);
        }
        for alert in &changes.ended {
            tracing::info!(alert = %alert.key(), "alert ended: {}", alert.message);
            report(engine, webhook.as_ref(), "alert_ended", alert);
        }
    }
}

fn report(engine: &Engine, webhook: Option<&Webhook>, event: &'static str, alert: &Alert) {
    engine.events.publish(Event::Alert {
        state: if event == "alert_started" {
            "started"
        } else {
            "ended"
        }
        .into(),
        alert: alert.clone(),
    });
    if let Some(webhook) = webhook {
        webhook.send(event, alert);
    }
}

/// Posts alert changes from its own thread, so a slow or dead endpoint never delays a check.
struct Webhook {
    tx: crossbeam_channel::Sender<String>,
    host: String,
}

impl Webhook {
    fn start(url: String, host: String) -> Webhook {
        let (tx, rx) = crossbeam_channel::bounded::<String>(WEBHOOK_QUEUE);
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        let spawned = std::thread::Builder::new()
            .name("stask-webhook".into())
            .spawn(move || {
                for body in rx {
                    post(&agent, &url, &body);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the webhook thread, alerts are only logged: {e}");
        }
        Webhook { tx, host }
    }

    fn send(&self, event: &'static str, alert: &Alert) {
        let post = WebhookPost {
            event,
            host: &self.host,
            at: rfc3339(now_ms()),
            alert,
        };
        let Ok(body) = serde_json::to_string(&post) else {
            return;
        };
        if self.tx.try_send(body).is_err() {
            tracing::warn!(alert = %alert.key(), "webhook queue full: this alert change is only logged");
        }
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &str) {
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        match agent
            .post(url)
            .set("Content-Type", "application/json")
            .send_string(body)
        {
            Ok(_) => return,
            Err(e) if attempt < WEBHOOK_ATTEMPTS => {
                tracing::debug!("webhook attempt {attempt} failed: {e}");
                std::thread::sleep(Duration::from_secs(u64::from(attempt)));
            }
            Err(e) => tracing::warn!("webhook {url} failed {WEBHOOK_ATTEMPTS} times: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertKind, Severity};

    fn alert(kind: AlertKind, subject: &str, value: f64) -> Alert {
        Alert {
            kind,
            severity: Severity::Warning,
            message: format!("{subject} at {value}"),
            value,
            threshold: 0.0,
            subject: subject.into(),
        }
    }

    #[test]
    fn an_alert_starts_once_and_ends_once() {
        let mut active = ActiveAlerts::default();
        let backlog = |v| alert(AlertKind::QueueBacklog, "", v);
        let changes = active.update(vec![backlog(301.0)]);
        assert_eq!(changes.started, vec![backlog(301.0)]);
        assert!(changes.ended.is_empty());
        // The value grows: the same condition, no new start.
        assert_eq!(active.update(vec![backlog(400.0)]), Transitions::default());
        let changes = active.update(vec![]);
        assert_eq!(changes.ended, vec![backlog(400.0)], "ends as last seen");
        assert!(changes.started.is_empty());
        assert!(active.is_empty());
    }

    #[test]
    fn alerts_about_different_subjects_are_told_apart() {
        let mut active = ActiveAlerts::default();
        let stuck = |task: &str| alert(AlertKind::StuckTask, task, 1.0);
        active.update(vec![stuck("task 1")]);
        let changes = active.update(vec![stuck("task 2")]);
        assert_eq!(changes.started, vec![stuck("task 2")]);
        assert_eq!(changes.ended, vec![stuck("task 1")]);
        assert_eq!(active.len(), 1);
    }

    #[test]
    fn the_webhook_body_names_event_host_and_alert() {
        let a = alert(AlertKind::PluginLoadError, "plugins.d/x.so", 1.0);
        let post = WebhookPost {
            event: "alert_started",
            host: "h:1",
            at: "2026-01-01T00:00:00.000Z".into(),
            alert: &a,
        };
        assert_eq!(
            serde_json::to_value(&post).unwrap(),
            serde_json::json!({
                "event": "alert_started", "host": "h:1", "at": "2026-01-01T00:00:00.000Z",
                "alert": {"type": "plugin_load_error", "severity": "warning",
                          "message": "plugins.d/x.so at 1", "value": 1.0, "threshold": 0.0}
            })
        );
    }
}
