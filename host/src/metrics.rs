//! Prometheus metrics of one host, served at `GET /metrics` (OpenMetrics text, which
//! Prometheus scrapes natively).
//!
//! Counters and histograms count what *this* host did since it started (that is what a
//! Prometheus counter is; a cluster total is a `sum()` over hosts). Gauges about the queue
//! (`stask_tasks{status}`) are read from the database at scrape time, so every host reports
//! the same shared queue. Names follow the Prometheus conventions: a `stask_` prefix, base
//! units (seconds), `_total` on counters.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Upper bounds (seconds) of the task duration and wait histograms: 5 ms to 1 h.
const TASK_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0, 600.0, 3600.0,
];
/// Upper bounds (seconds) of the HTTP request duration histogram: 0.5 ms to 10 s.
const HTTP_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// Labels of a finished attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    worker: String,
    action: String,
    /// completed, failed, cancelled, or retried (failed with attempts left).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    /// The route pattern (`/stask/tasks/{id}`), never the raw path: one series per route.
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type FloatCounter = Counter<f64, AtomicU64>;

/// All metrics of the host; cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    attempts: Family<OutcomeLabels, Counter>,
    duration: Family<WorkerLabels, Histogram>,
    wait: Family<WorkerLabels, Histogram>,
    cpu: Family<WorkerLabels, FloatCounter>,
    queue: Family<StatusLabels, Gauge>,
    running: Gauge,
    pool_size: Gauge,
    pool_busy: Gauge,
    plugin_loads: Counter,
    plugin_reloads: Counter,
    plugin_load_errors: Counter,
    workers_loaded: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram>,
    alerts_firing: Gauge,
}

/// State read when Prometheus scrapes (see [`Metrics::render`]).
#[derive(Debug, Default, Clone)]
pub struct ScrapeState {
    /// Tasks per status name in the database.
    pub queue: Vec<(&'static str, i64)>,
    /// Tasks running on this host now.
    pub running: i64,
    /// Pool threads.
    pub pool_size: i64,
    /// Pool threads busy with a task (claimed tasks waiting for a thread excluded).
    pub pool_busy: i64,
    /// Libraries loaded since start, of them reloads, and files refused (registry counters).
    pub plugin_loads: u64,
    /// Loads that replaced a version in service.
    pub plugin_reloads: u64,
    /// Refused files.
    pub plugin_load_errors: u64,
    /// Workers in service now.
    pub workers_loaded: i64,
    /// Worker-row cache hits and misses since start.
    pub cache_hits: u64,
    /// See `cache_hits`.
    pub cache_misses: u64,
}

fn task_histogram() -> Histogram {
    Histogram::new(TASK_BUCKETS)
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("stask");
        let attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "task_attempts",
            "Attempts finished on this host, by worker, action and outcome (completed, failed, \
             cancelled, retried)",
            attempts.clone(),
        );
        let duration = Family::new_with_constructor(task_histogram as fn() -> Histogram);
        registry.register(
            "task_duration_seconds",
            "Wall time of finished attempts on this host",
            duration.clone(),
        );
        let wait = Family::new_with_constructor(task_histogram as fn() -> Histogram);
        registry.register(
            "task_wait_seconds",
            "Time from due to start of attempts started on this host",
            wait.clone(),
        );
        let cpu = Family::<WorkerLabels, FloatCounter>::default();
        registry.register(
            "task_cpu_seconds",
            "CPU time of the pool threads running attempts on this host",
            cpu.clone(),
        );
        let queue = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "tasks",
            "Tasks in the database by status (the shared queue)",
            queue.clone(),
        );
        let running = Gauge::default();
        registry.register(
            "running_tasks",
            "Tasks running on this host",
            running.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "pool_threads",
            "Pool threads of this host",
            pool_size.clone(),
        );
        let pool_busy = Gauge::default();
        registry.register(
            "pool_busy_threads",
            "Pool threads running a task",
            pool_busy.clone(),
        );
        let plugin_loads = Counter::default();
        registry.register(
            "plugin_loads",
            "Plugin libraries loaded since start (reloads included)",
            plugin_loads.clone(),
        );
        let plugin_reloads = Counter::default();
        registry.register(
            "plugin_reloads",
            "Loads that replaced a worker version in service",
            plugin_reloads.clone(),
        );
        let plugin_load_errors = Counter::default();
        registry.register(
            "plugin_load_errors",
            "Plugin files refused since start",
            plugin_load_errors.clone(),
        );
        let workers_loaded = Gauge::default();
        registry.register(
            "workers_loaded",
            "Workers in service on this host",
            workers_loaded.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "worker_cache_hits",
            "Worker row lookups answered from the registry cache",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "worker_cache_misses",
            "Worker row lookups that read the database",
            cache_misses.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        let http_duration = Family::new_with_constructor(http_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests (to the response head)",
            http_duration.clone(),
        );
        let alerts_firing = Gauge::default();
        registry.register(
            "alerts_firing",
            "Health alerts firing at the last check",
            alerts_firing.clone(),
        );
        Metrics {
            registry,
            attempts,
            duration,
            wait,
            cpu,
            queue,
            running,
            pool_size,
            pool_busy,
            plugin_loads,
            plugin_reloads,
            plugin_load_errors,
            workers_loaded,
            cache_hits,
            cache_misses,
            http_requests,
            http_duration,
            alerts_firing,
        }
    }

    /// Counts a finished attempt whose outcome was stored.
    pub fn attempt_finished(
        &self,
        worker: &str,
        action: &str,
        outcome: &str,
        duration_ms: Option<i64>,
        cpu_ms: Option<i64>,
    ) {
        self.attempts
            .get_or_create(&OutcomeLabels {
                worker: worker.to_owned(),
                action: action.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        let worker = WorkerLabels {
            worker: worker.to_owned(),
        };
        if let Some(ms) = duration_ms {
            self.duration
                .get_or_create(&worker)
                .observe(ms as f64 / 1000.0);
        }
        if let Some(ms) = cpu_ms {
            self.cpu.get_or_create(&worker).inc_by(ms as f64 / 1000.0);
        }
    }

    /// Records how long an attempt waited from due to start.
    pub fn attempt_started(&self, worker: &str, wait_ms: i64) {
        self.wait
            .get_or_create(&WorkerLabels {
                worker: worker.to_owned(),
            })
            .observe(wait_ms.max(0) as f64 / 1000.0);
    }

    /// Counts an answered HTTP request.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// The alert monitor's latest count.
    pub fn set_alerts_firing(&self, n: usize) {
        self.alerts_firing.set(n as i64);
    }

    /// The exposition text, after taking the scrape-time state.
    pub fn render(&self, state: &ScrapeState) -> String {
        for (status, n) in &state.queue {
            self.queue
                .get_or_create(&StatusLabels {
                    status: (*status).to_owned(),
                })
                .set(*n);
        }
        self.running.set(state.running);
        self.pool_size.set(state.pool_size);
        self.pool_busy.set(state.pool_busy);
        self.workers_loaded.set(state.workers_loaded);
        // The registry keeps its own cumulative counts; these follow them.
        catch_up(&self.plugin_loads, state.plugin_loads);
        catch_up(&self.plugin_reloads, state.plugin_reloads);
        catch_up(&self.plugin_load_errors, state.plugin_load_errors);
        catch_up(&self.cache_hits, state.cache_hits);
        catch_up(&self.cache_misses, state.cache_misses);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// Raises `counter` to `total` (counters never go down; a total below it is ignored).
fn catch_up(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the first sample line starting with `series`.
    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn attempts_are_counted_by_worker_action_and_outcome() {
        let m = Metrics::new();
        m.attempt_finished("demo", "run", "completed", Some(1_500), Some(200));
        m.attempt_finished("demo", "run", "completed", Some(20), Some(10));
        m.attempt_finished("demo", "run", "retried", Some(5), None);
        let text = m.render(&ScrapeState::default());
        assert_eq!(
            sample(
                &text,
                r#"stask_task_attempts_total{worker="demo",action="run",outcome="completed"}"#
            ),
            2.0
        );
        assert_eq!(
            sample(
                &text,
                r#"stask_task_attempts_total{worker="demo",action="run",outcome="retried"}"#
            ),
            1.0
        );
        assert_eq!(
            sample(&text, r#"stask_task_duration_seconds_count{worker="demo"}"#),
            3.0
        );
        assert_eq!(
            sample(&text, r#"stask_task_duration_seconds_sum{worker="demo"}"#),
            1.525
        );
        // 20 ms and 5 ms fall under 25 ms; 1.5 s does not.
        assert_eq!(
            sample(
                &text,
                r#"stask_task_duration_seconds_bucket{le="0.025",worker="demo"}"#
            ),
            2.0
        );
        let cpu = sample(&text, r#"stask_task_cpu_seconds_total{worker="demo"}"#);
        assert!((cpu - 0.21).abs() < 1e-9, "0.2 s + 0.01 s, got {cpu}");
    }

    #[test]
    fn scrape_state_sets_gauges_and_counters_follow_totals() {
        let m = Metrics::new();
        let mut state = ScrapeState {
            queue: vec![("pending", 7), ("running", 2)],
            running: 2,
            pool_size: 4,
            pool_busy: 2,
            plugin_loads: 3,
            plugin_reloads: 1,
            plugin_load_errors: 2,
            workers_loaded: 2,
            cache_hits: 10,
            cache_misses: 1,
        };
        let text = m.render(&state);
        assert_eq!(sample(&text, r#"stask_tasks{status="pending"}"#), 7.0);
        assert_eq!(sample(&text, "stask_pool_busy_threads "), 2.0);
        assert_eq!(sample(&text, "stask_plugin_loads_total "), 3.0);
        state.plugin_loads = 5;
        state.cache_hits = 4; // below what was seen: a counter never goes down
        let text = m.render(&state);
        assert_eq!(sample(&text, "stask_plugin_loads_total "), 5.0);
        assert_eq!(sample(&text, "stask_worker_cache_hits_total "), 10.0);
        assert!(
            text.ends_with("# EOF\n"),
            "OpenMetrics text ends with # EOF"
        );
    }

    #[test]
    fn http_requests_are_counted_per_route_pattern() {
        let m = Metrics::new();
        m.http_request("GET", "/stask/tasks/{id}", 200, 0.002);
        m.http_request("GET", "/stask/tasks/{id}", 404, 0.001);
        let text = m.render(&ScrapeState::default());
        assert_eq!(
            sample(
                &text,
                r#"stask_http_requests_total{method="GET",route="/stask/tasks/{id}",status="404"}"#
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                r#"stask_http_request_duration_seconds_count{method="GET",route="/stask/tasks/{id}"}"#
            ),
            2.0
        );
    }
}
