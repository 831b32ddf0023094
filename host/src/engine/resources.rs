//! What a run costs the host beside wall time: the CPU time of its pool thread, and its effect
//! on memory where that can be told honestly.
//!
//! **CPU** is the pool thread's own clock (`CLOCK_THREAD_CPUTIME_ID`, user + system) read
//! before and after the plugin call. It is exact for plugins that do their work on the thread
//! that calls them; threads a plugin starts itself are not counted.
//!
//! **Memory** is the growth of the process's heap in use (glibc `mallinfo2`: allocated chunks
//! plus mmapped blocks, over all arenas) from the start of a run to its peak, sampled at the
//! start, by the progress ticker every 250 ms, and at the end. Plugins allocate through the
//! same C allocator as the host, so their allocations are seen; but the heap is one for the
//! whole process, so the figure only means something when nothing else ran meanwhile. A run
//! that overlapped another one at any moment therefore gets no figure (`None`), and so do all
//! runs on a platform without `mallinfo2`. Peaks shorter than the sampling interval are missed
//! unless they are still held at the end.

use parking_lot::Mutex;

/// CPU time the calling thread has used so far, in microseconds.
pub fn thread_cpu_micros() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant of the
        // platform.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            return Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000);
        }
    }
    None
}

/// Bytes of heap the process holds now (allocated chunks + mmapped blocks), if the C library
/// can tell.
pub fn heap_in_use() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and only reads the allocator's statistics.
        let info = unsafe { libc::mallinfo2() };
        return Some((info.uordblks + info.hblkhd) as u64);
    }
    #[allow(unreachable_code)]
    None
}

/// Tracks which runs had the process to themselves, and the heap peak of the current solo run.
#[derive(Debug, Default)]
pub struct RunMeter {
    state: Mutex<MeterState>,
}

#[derive(Debug, Default)]
struct MeterState {
    /// Runs going on now.
    running: usize,
    /// Counts run starts: a solo run is one during which it did not move.
    starts: u64,
    /// Heap at the start of the solo run going on, and its peak since.
    solo: Option<(u64, u64)>,
}

/// What [`RunMeter::begin`] noted about one run.
#[derive(Debug)]
pub struct RunProbe {
    cpu_start: Option<u64>,
    /// `starts` after this run began, if it began alone.
    solo_seq: Option<u64>,
}

/// What a run cost: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunCost {
    /// CPU time of the run's thread, ms.
    pub cpu_ms: Option<i64>,
    /// Peak heap growth, bytes, for a run that was alone the whole time.
    pub memory_bytes: Option<i64>,
}

impl RunMeter {
    /// Call on the pool thread right before the plugin runs.
    pub fn begin(&self) -> RunProbe {
        let solo_seq = {
            let mut state = self.state.lock();
            state.running += 1;
            state.starts += 1;
            if state.running == 1 {
                state.solo = heap_in_use().map(|heap| (heap, heap));
                state.solo.map(|_| state.starts)
            } else {
                state.solo = None;
                None
            }
        };
        RunProbe {
            cpu_start: thread_cpu_micros(),
            solo_seq,
        }
    }

    /// Runs going on now (pool threads inside a plugin call).
    pub fn running(&self) -> usize {
        self.state.lock().running
    }

    /// Samples the heap for the solo run going on, if there is one (the ticker calls this).
    pub fn sample(&self) {
        let mut state = self.state.lock();
        if let Some((_, peak)) = state.solo.as_mut() {
            if let Some(heap) = heap_in_use() {
                *peak = (*peak).max(heap);
            }
        }
    }

    /// Call on the same pool thread right after the plugin returned.
    pub fn end(&self, probe: RunProbe) -> RunCost {
        let cpu_ms = match (probe.cpu_start, thread_cpu_micros()) {
            (Some(start), Some(end)) => Some((end.saturating_sub(start) / 1_000) as i64),
            _ => None,
        };
        let mut state = self.state.lock();
        let memory_bytes = match (probe.solo_seq, state.solo) {
            (Some(seq), Some((start, peak))) if seq == state.starts => {
                heap_in_use().map(|heap| peak.max(heap).saturating_sub(start) as i64)
            }
            _ => None,
        };
        state.running -= 1;
        if state.running == 0 {
            state.solo = None;
        }
        RunCost {
            cpu_ms,
            memory_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin_cpu(for_micros: u64) {
        let start = thread_cpu_micros().unwrap();
        let mut x = 0u64;
        while thread_cpu_micros().unwrap() - start < for_micros {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
    }

    #[test]
    fn cpu_time_counts_work_not_sleep() {
        let meter = RunMeter::default();
        let probe = meter.begin();
        spin_cpu(30_000);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let cost = meter.end(probe);
        let cpu = cost.cpu_ms.unwrap();
        assert!(
            (30..50).contains(&cpu),
            "30 ms of work and 50 ms of sleep gave {cpu} ms"
        );
    }

    // The heap figure itself is checked end to end (tests/e2e/performance.rs), in a daemon
    // with one pool thread: in this test binary, other tests allocate on other threads.

    #[test]
    fn overlapping_runs_get_no_memory_figure() {
        let meter = RunMeter::default();
        let first = meter.begin();
        let second = meter.begin();
        assert_eq!(meter.end(second).memory_bytes, None);
        assert_eq!(
            meter.end(first).memory_bytes,
            None,
            "it overlapped the second"
        );
        // A run after both is alone again.
        let third = meter.begin();
        assert!(meter.end(third).memory_bytes.is_some());
    }

    #[test]
    fn a_run_that_starts_alone_but_is_joined_gets_no_memory_figure() {
        let meter = RunMeter::default();
        let first = meter.begin();
        let second = meter.begin();
        let _ = meter.end(second);
        assert_eq!(meter.end(first).memory_bytes, None);
    }
}
