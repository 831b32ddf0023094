//! The peer comparison: other job queues on the same workload as ours. Each peer lives only
//! in the bench (installed or built at run time), never in the product.

pub mod apalis;

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
