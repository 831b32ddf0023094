//! Peak resident memory and thread count of the daemon, sampled by a thread while a phase runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often `/proc/<pid>/status` is read: short enough to catch a peak of a few ms.
const EVERY: Duration = Duration::from_millis(5);

/// The peaks one phase reached.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peaks {
    /// Largest VmRSS seen (KiB).
    pub rss_kib: u64,
    /// Most threads seen.
    pub threads: u64,
}

impl Peaks {
    /// The resident peak in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// A running sampler; [`Sampler::stop`] returns what it saw.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Peaks>,
}

/// A number field of `/proc/<pid>/status` (0 once the process is gone).
pub fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

impl Sampler {
    /// Starts sampling process `pid`.
    pub fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peaks = Peaks::default();
            loop {
                peaks.rss_kib = peaks.rss_kib.max(status_field(pid, "VmRSS"));
                peaks.threads = peaks.threads.max(status_field(pid, "Threads"));
                if flag.load(Ordering::Relaxed) {
                    return peaks;
                }
                std::thread::sleep(EVERY);
            }
        });
        Sampler { stop, thread }
    }

    /// Stops sampling (after one last sample) and returns the peaks.
    pub fn stop(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}
