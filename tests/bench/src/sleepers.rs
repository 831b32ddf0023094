//! Long-job figure 4: a pool of 256 slots running tasks that mostly wait (like the I/O of a
//! mailing), against the ideal of slots / sleep.

use crate::daemon::{insert_pending_with, sync_disk, Binaries, Home};
use crate::report::Report;
use crate::sampler::Sampler;
use std::time::Duration;

/// Pool slots.
const SLOTS: u64 = 256;
/// Sleep per task.
const SLEEP_MS: u64 = 100;

/// `n` `demo/run` tasks of one step sleeping [`SLEEP_MS`] in a pool of [`SLOTS`].
pub fn sleepers(bin: &Binaries, report: &mut Report, n: usize) {
    eprintln!("(L4) {n} sleeping tasks, pool {SLOTS}");
    let ideal = SLOTS as f64 * 1000.0 / SLEEP_MS as f64;
    let mut rates = Vec::new();
    let mut rss = Vec::new();
    let mut threads = Vec::new();
    let mut idle_threads = Vec::new();
    let data = serde_json::json!({"steps": 1, "sleep_ms": SLEEP_MS});
    for _ in 0..report.runs {
        let home = Home::new(bin);
        insert_pending_with(&home.db(), n, "run", data.clone(), None);
        sync_disk();
        let slots = SLOTS.to_string();
        let d = home.serve(&[("STASK_WORKERS", slots.as_str())]);
        let sampler = Sampler::start(d.pid());
        let (secs, _) = crate::scenarios::drain_time(&d, n as i64);
        let peaks = sampler.stop();
        rates.push(n as f64 / secs);
        rss.push(peaks.rss_mib());
        threads.push(peaks.threads as f64);
        // Threads once the queue is empty: what an idle 256-slot host keeps.
        std::thread::sleep(Duration::from_millis(500));
        idle_threads.push(d.status("Threads") as f64);
    }
    let config = format!(
        "{n} demo/run tasks (1 step, {SLEEP_MS} ms sleep), STASK_WORKERS={SLOTS}; ideal {} tasks/s",
        crate::report::fmt(ideal)
    );
    let median = report.add("(L4) sleeping tasks", "tasks/s", &config, rates);
    report.add("(L4) RSS peak, 256 slots busy", "MiB", &config, rss);
    report.add(
        "(L4) threads peak, 256 slots busy",
        "threads",
        &config,
        threads,
    );
    report.add(
        "(L4) threads after the drain",
        "threads",
        "same daemon, 500 ms after the last task",
        idle_threads,
    );
    report.note(format!(
        "(L4) 256 sleeping slots reach {:.0} % of the ideal {} tasks/s (rate measured from the \
         daemon's ready line, so start-up and the first claims are in it)",
        median / ideal * 100.0,
        crate::report::fmt(ideal)
    ));
}
