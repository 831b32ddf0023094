//! `peers`: every peer side by side with us, in one run on this machine, each on the backend it
//! is made for and each at a stated durability set against one of our `STASK_SQLITE_SYNC`
//! levels. The peers are installed at run time into `target/` (never part of the product).

mod apalis;
mod bullmq;
mod graphile;
mod huey;
mod node;
mod ours;
mod protocol;
mod table;

use crate::daemon::Binaries;
use crate::report::Report;

/// The workload every system runs in the `peers` comparison: the same for all.
#[derive(Debug, Clone)]
pub struct Workload {
    /// No-op tasks in the pre-filled queue that is drained (phase 1).
    pub drain_tasks: usize,
    /// Seconds of phase 2: tasks are created while the pool runs them.
    pub sustained_secs: u64,
    /// Producers (client threads / connections) creating tasks in phase 2.
    pub producers: usize,
    /// Tasks of phase 3, created one at a time `latency_gap` apart (light load).
    pub latency_tasks: usize,
    /// The gap between two creates in phase 3.
    pub latency_gap: std::time::Duration,
    /// Pool size (concurrency) of every system.
    pub pool: usize,
}

/// One run of one system on the [`Workload`].
#[derive(Debug, Clone, Default)]
pub struct PeerRun {
    /// Phase 1: tasks drained per second, from the consumer's start to the last completion.
    pub drain_per_s: f64,
    /// Phase 2: tasks created per second.
    pub sustained_created_per_s: f64,
    /// Phase 2: tasks completed per second over the same window.
    pub sustained_completed_per_s: f64,
    /// Phase 3: create-to-start latency (the worker's wall-clock start minus the time taken
    /// just before the create call), median, in ms.
    pub latency_p50_ms: f64,
    /// Phase 3: the same, 99th percentile, in ms.
    pub latency_p99_ms: f64,
}

/// How one system is run.
#[derive(Debug, Clone, Copy)]
enum Runner {
    Ours(&'static str),
    Huey(huey::Level),
    Bullmq,
    Graphile,
    Apalis,
}

/// One row of the comparison: a system, its runs, and why it stopped if it did.
pub(crate) struct System {
    runner: Runner,
    /// The name in the tables.
    pub name: String,
    /// What a crash loses (and the server's settings where read).
    pub durability: String,
    /// The level of ours it is compared with (`None` for ours).
    pub against: Option<&'static str>,
    /// The successful runs.
    pub runs: Vec<PeerRun>,
    /// Why it could not run (or stopped).
    pub error: Option<String>,
}

impl System {
    fn new(runner: Runner) -> System {
        let (name, durability, against) = match runner {
            Runner::Ours(sync) => (ours::name(sync), ours::durability(sync).to_owned(), None),
            Runner::Huey(level) => {
                let against = match level {
                    huey::Level::Off => "normal",
                    huey::Level::Default => "full",
                };
                (level.name(), level.durability().to_owned(), Some(against))
            }
            Runner::Bullmq => (
                bullmq::NAME.to_owned(),
                bullmq::DURABILITY.to_owned(),
                Some("normal"),
            ),
            Runner::Graphile => (
                graphile::NAME.to_owned(),
                graphile::DURABILITY.to_owned(),
                Some("full"),
            ),
            Runner::Apalis => (
                apalis::NAME.to_owned(),
                apalis::DURABILITY.to_owned(),
                Some(level_named_in(apalis::DURABILITY)),
            ),
        };
        System {
            runner,
            name,
            durability,
            against,
            runs: Vec::new(),
            error: None,
        }
    }

    /// The median of one figure over the runs.
    pub fn median(&self, figure: fn(&PeerRun) -> f64) -> f64 {
        let mut v: Vec<f64> = self.runs.iter().map(figure).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

/// The level of ours a DURABILITY line names (`STASK_SQLITE_SYNC=full`), else `normal`.
fn level_named_in(durability: &str) -> &'static str {
    if durability.to_ascii_lowercase().contains("sync=full") {
        "full"
    } else {
        "normal"
    }
}

/// The standard workload with `drain_tasks` and `sustained_secs` (8 producers, 2,000 latency
/// tasks 1 ms apart, pool 2).
pub fn workload(drain_tasks: usize, sustained_secs: u64) -> Workload {
    Workload {
        drain_tasks,
        sustained_secs,
        producers: 8,
        latency_tasks: 2_000,
        latency_gap: std::time::Duration::from_millis(1),
        pool: 2,
    }
}

/// Runs every system `report.runs` times, round-robin (so that a noisy stretch of the shared
/// machine spreads over all of them), and adds the raw figures and the ratio table.
pub fn compare(bin: &Binaries, report: &mut Report, w: &Workload) {
    eprintln!("peers: {w:?}");
    let mut systems: Vec<System> = [
        Runner::Ours("normal"),
        Runner::Ours("full"),
        Runner::Huey(huey::Level::Off),
        Runner::Huey(huey::Level::Default),
        Runner::Bullmq,
        Runner::Graphile,
        Runner::Apalis,
    ]
    .into_iter()
    .map(System::new)
    .collect();
    for s in &mut systems {
        let settings = match s.runner {
            Runner::Bullmq => Some(bullmq::settings()),
            Runner::Graphile => Some(graphile::settings()),
            _ => None,
        };
        match settings {
            Some(Ok(line)) => s.durability.push_str(&format!(" (server: {line})")),
            Some(Err(e)) => s.error = Some(e),
            None => {}
        }
    }
    for run in 0..report.runs {
        for s in systems.iter_mut().filter(|s| s.error.is_none()) {
            eprintln!("peers: run {}/{}: {}", run + 1, report.runs, s.name);
            let result = match s.runner {
                Runner::Ours(sync) => Ok(ours::run(bin, w, sync)),
                Runner::Huey(level) => huey::run(w, level),
                Runner::Bullmq => bullmq::run(w),
                Runner::Graphile => graphile::run(w),
                Runner::Apalis => apalis::run(w),
            };
            match result {
                Ok(r) => {
                    eprintln!("  {r:?}");
                    s.runs.push(r);
                }
                Err(e) => {
                    eprintln!("  failed: {e}");
                    s.error = Some(e);
                }
            }
        }
    }
    let config = format!(
        "{} drained, {} producers for {} s, {} latency tasks {:?} apart, pool {}",
        w.drain_tasks, w.producers, w.sustained_secs, w.latency_tasks, w.latency_gap, w.pool
    );
    type Figure = (&'static str, &'static str, fn(&PeerRun) -> f64);
    let figures: [Figure; 5] = [
        ("drain", "tasks/s", |r| r.drain_per_s),
        ("sustained created", "tasks/s", |r| {
            r.sustained_created_per_s
        }),
        ("sustained completed", "tasks/s", |r| {
            r.sustained_completed_per_s
        }),
        ("latency p50", "ms", |r| r.latency_p50_ms),
        ("latency p99", "ms", |r| r.latency_p99_ms),
    ];
    for s in systems.iter().filter(|s| !s.runs.is_empty()) {
        for (figure, unit, get) in figures {
            let values = s.runs.iter().map(get).collect();
            report.add(
                &format!("peers: {} {figure}", s.name),
                unit,
                &config,
                values,
            );
        }
    }
    report.headline(table::render(&systems, w, report.runs));
}
