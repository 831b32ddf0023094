//! The health alerts now ([`Engine::alerts`]): the engine gathers the figures from the store
//! (the last hour, the queue, leases, plugin files, workers) and from this host's runs, and
//! the rules of [`crate::alerts`] decide which figures raise an alert.

use super::HOUR_MS;
use crate::alerts::{
    backlog_alert, execution_time_alert, memory_alert, orphan_alert, overdue_alert, plugin_alerts,
    storage_alert, stuck_alerts, success_rate_alert, Alert, AlertThresholds,
};
use crate::clock::now_ms;
use crate::engine::{Engine, EngineResult};
use crate::model::WorkerState;
use crate::store::WorkerFilter;
use std::collections::HashMap;

impl Engine {
    /// The health alerts now, in a fixed order: success rate, execution time, memory, queue
    /// backlog, stuck tasks, plugin load errors, orphaned workers with pending tasks, a
    /// storage fault.
    pub fn alerts(&self, thresholds: &AlertThresholds) -> EngineResult<Vec<Alert>> {
        self.alerts_at(thresholds, now_ms())
    }

    fn alerts_at(&self, t: &AlertThresholds, now: i64) -> EngineResult<Vec<Alert>> {
        // The storage fault is known without a query, and the queries below may fail because
        // of it (a full disk can refuse even a read that needs to grow a file): the alert
        // must not depend on them.
        let storage = self.store.storage_fault().map(storage_alert);
        match self.figure_alerts(t, now) {
            Ok(mut alerts) => {
                alerts.extend(storage);
                Ok(alerts)
            }
            Err(e) => match storage {
                Some(alert) => {
                    tracing::debug!(
                        "alerts from stored figures unavailable during a storage fault: {e}"
                    );
                    Ok(vec![alert])
                }
                None => Err(e),
            },
        }
    }

    /// Every alert but the storage fault's: from stored figures, this host's runs and plugins.
    fn figure_alerts(&self, t: &AlertThresholds, now: i64) -> EngineResult<Vec<Alert>> {
        let hour = self.store.window_summary(now - HOUR_MS, now)?;
        let mut alerts: Vec<Alert> = [
            success_rate_alert(hour.completed, hour.finished(), t),
            execution_time_alert(hour.average_duration_ms, t),
            memory_alert(hour.max_memory_bytes, t),
            backlog_alert(self.store.oldest_due_pending(now)?, now, t),
        ]
        .into_iter()
        .flatten()
        .collect();
        alerts.extend(stuck_alerts(&self.store.stuck_tasks(now)?, now));
        alerts.extend(self.overdue_alerts());
        alerts.extend(plugin_alerts(&self.store.plugin_files()?));
        alerts.extend(self.orphan_alerts()?);
        Ok(alerts)
    }

    /// Tasks of this host whose timeout fired but whose plugin has not returned: the cancel
    /// flag is set, so a plugin that honours it stops within a step; one still running holds a
    /// pool slot and needs a look (or process isolation, which can kill it).
    fn overdue_alerts(&self) -> Vec<Alert> {
        // Abandoned runs too: the host gave their slot away, but their threads stay blocked.
        self.hub
            .all()
            .iter()
            .chain(self.hub.abandoned().iter())
            .filter(|task| task.timed_out.load(std::sync::atomic::Ordering::Relaxed))
            .map(|task| {
                overdue_alert(
                    task.id,
                    &task.identifier,
                    task.elapsed_secs(),
                    task.timeout_secs(),
                )
            })
            .collect()
    }

    fn orphan_alerts(&self) -> EngineResult<Vec<Alert>> {
        let pending: HashMap<String, i64> = self.store.pending_counts()?.into_iter().collect();
        let orphans = self.store.workers(&WorkerFilter::default())?;
        Ok(orphans
            .iter()
            .filter(|w| w.state == WorkerState::Orphaned)
            .filter_map(|w| {
                let waiting = pending.get(&w.identifier).copied().unwrap_or(0);
                (waiting > 0).then(|| orphan_alert(&w.identifier, waiting))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        engine, finished, known_hour, pending, register, store, MIN, NOW,
    };
    use super::*;
    use crate::alerts::{AlertKind, Severity};
    use crate::model::PluginFile;
    use crate::model::TaskStatus::{Cancelled, Completed, Failed};
    use crate::store::conformance::{record, Run};
    use crate::store::ClaimRequest;

    fn alerts(engine: &Engine) -> Vec<Alert> {
        engine.alerts_at(&AlertThresholds::default(), NOW).unwrap()
    }

    fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
        alerts.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn a_quiet_system_raises_nothing() {
        let engine = engine();
        assert!(alerts(&engine).is_empty(), "the empty hour raises no alert");
        finished(&engine, 3, Completed, 1_000);
        assert!(alerts(&engine).is_empty());
    }

    #[test]
    fn low_success_rate_needs_enough_finished_tasks() {
        let engine = engine();
        finished(&engine, 10, Completed, 1_000);
        finished(&engine, 9, Failed, 1_000);
        assert!(alerts(&engine).is_empty(), "19 finished: too few to judge");
        finished(&engine, 1, Cancelled, 1_000);
        let alerts = alerts(&engine);
        assert_eq!(kinds(&alerts), vec![AlertKind::LowSuccessRate]);
        assert_eq!(
            (alerts[0].severity, alerts[0].value, alerts[0].threshold),
            (Severity::Warning, 50.0, 95.0),
            "cancelled tasks count as finished, not completed"
        );
    }

    #[test]
    fn a_success_rate_exactly_at_the_minimum_is_fine() {
        let engine = engine();
        finished(&engine, 19, Completed, 1_000);
        finished(&engine, 1, Failed, 1_000);
        assert!(alerts(&engine).is_empty(), "95 % is not below 95 %");
        finished(&engine, 1, Failed, 1_000);
        assert_eq!(kinds(&alerts(&engine)), vec![AlertKind::LowSuccessRate]);
    }

    #[test]
    fn high_execution_time_only_above_the_maximum() {
        let engine = engine();
        finished(&engine, 2, Completed, 300_000);
        assert!(alerts(&engine).is_empty(), "an average of exactly 300 s");
        finished(&engine, 1, Completed, 300_030);
        let alerts = alerts(&engine);
        assert_eq!(kinds(&alerts), vec![AlertKind::HighExecutionTime]);
        assert_eq!((alerts[0].value, alerts[0].threshold), (300.01, 300.0));
    }

    #[test]
    fn executions_older_than_an_hour_do_not_count() {
        let engine = engine();
        let old = NOW - HOUR_MS - 1;
        record(store(&engine), &Run::new("w", old, 0, Completed, 900_000));
        for i in 0..20 {
            record(store(&engine), &Run::new("w", old - i - 1, 0, Failed, 1));
        }
        assert!(alerts(&engine).is_empty());
    }

    #[test]
    fn queue_backlog_after_the_maximum_wait() {
        let engine = engine();
        pending(&engine, "w", NOW - 300_000);
        pending(&engine, "w", NOW + MIN);
        assert!(alerts(&engine).is_empty(), "waited exactly 300 s");
        let id = pending(&engine, "x", NOW - 301_000);
        let alerts = alerts(&engine);
        assert_eq!(kinds(&alerts), vec![AlertKind::QueueBacklog]);
        assert_eq!((alerts[0].value, alerts[0].threshold), (301.0, 300.0));
        assert!(alerts[0].message.contains(&format!("task {id} (x)")));
    }

    #[test]
    fn one_critical_alert_per_stuck_task() {
        let engine = engine();
        let ids: Vec<i64> = (0..3).map(|_| pending(&engine, "w", NOW - MIN)).collect();
        let claim = |now: i64, lease_ms: i64| {
            store(&engine)
                .claim(&ClaimRequest {
                    owner: "dead",
                    limit: 1,
                    now,
                    lease_ms,
                    identifiers: &["w".to_owned()],
                    ..Default::default()
                })
                .unwrap()
                .tasks
        };
        claim(NOW - 50_000, 10_000); // expired 40 s ago
        let running = claim(NOW - 50_000, 20_000).remove(0); // expired 30 s ago
        store(&engine)
            .start_runs(&[running.lease()], NOW - 45_000)
            .unwrap();
        store(&engine).flush_starts(NOW - 45_000).unwrap();
        claim(NOW - 50_000, 50_000); // expires exactly now: not stuck yet
        let alerts = alerts(&engine);
        assert_eq!(kinds(&alerts), vec![AlertKind::StuckTask; 2]);
        assert!(alerts.iter().all(|a| a.severity == Severity::Critical));
        assert_eq!((alerts[0].value, alerts[1].value), (40.0, 30.0));
        assert!(alerts[0].message.contains(&format!("task {}", ids[0])));
    }

    #[test]
    fn plugin_load_errors_alert_per_refused_file() {
        let engine = engine();
        let file = |name: &str, state: &str| PluginFile {
            file: name.into(),
            file_sha256: None,
            state: state.into(),
            identifier: None,
            error: (state == "error").then(|| "not an ELF shared object".into()),
            error_detail: None,
            updated_at: NOW,
        };
        for (name, state) in [("good.so", "loaded"), ("gone.so", "removed")] {
            store(&engine)
                .record_plugin_file(&file(name, state))
                .unwrap();
        }
        assert!(alerts(&engine).is_empty());
        store(&engine)
            .record_plugin_file(&file("bad.so", "error"))
            .unwrap();
        let alerts = alerts(&engine);
        assert_eq!(kinds(&alerts), vec![AlertKind::PluginLoadError]);
        assert_eq!(
            alerts[0].message,
            "plugins.d/bad.so was refused: not an ELF shared object"
        );
    }

    #[test]
    fn orphaned_workers_alert_only_with_pending_tasks() {
        let engine = engine();
        register(&engine, "gone", WorkerState::Orphaned);
        register(&engine, "idle", WorkerState::Orphaned);
        register(&engine, "live", WorkerState::Loaded);
        pending(&engine, "live", NOW);
        assert!(alerts(&engine).is_empty());
        pending(&engine, "gone", NOW);
        pending(&engine, "gone", NOW + HOUR_MS);
        let alerts = alerts(&engine);
        assert_eq!(
            kinds(&alerts),
            vec![AlertKind::OrphanedWorkerWithPendingTasks]
        );
        assert_eq!((alerts[0].value, alerts[0].threshold), (2.0, 0.0));
        assert!(alerts[0].message.contains("'gone'"));
    }

    #[test]
    fn high_memory_usage_follows_the_largest_measured_run_of_the_hour() {
        let engine = engine();
        known_hour(&engine);
        let at = |max_memory_bytes| AlertThresholds {
            max_memory_bytes,
            ..AlertThresholds::default()
        };
        let fired = engine.alerts_at(&at(1_999_999), NOW).unwrap();
        assert_eq!(kinds(&fired), vec![AlertKind::HighMemoryUsage]);
        assert_eq!(
            (fired[0].value, fired[0].threshold),
            (2_000_000.0, 1_999_999.0)
        );
        assert!(engine.alerts_at(&at(2_000_000), NOW).unwrap().is_empty());
        // An hour later the run is outside the window.
        assert!(engine
            .alerts_at(&at(1), NOW + HOUR_MS)
            .unwrap()
            .iter()
            .all(|a| a.kind != AlertKind::HighMemoryUsage));
    }
}
