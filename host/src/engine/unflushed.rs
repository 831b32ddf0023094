//! What a progress flush could not store (a database lock that outlasted the busy timeout, a
//! connection that dropped): kept and sent again with the next flush, so a task's log lines
//! and its last progress are not lost to a passing outage.

use crate::model::LogLine;
use crate::store::ProgressWrite;

/// Most log lines kept across failed flushes; beyond that the oldest are dropped (and counted),
/// so an outage that lasts cannot exhaust memory.
pub const MAX_KEPT_LOG_LINES: usize = 50_000;

/// Writes waiting for the next flush.
#[derive(Default)]
pub struct Unflushed {
    /// The newest progress of each task.
    pub writes: Vec<ProgressWrite>,
    /// Log lines, oldest first.
    pub logs: Vec<LogLine>,
    /// Log lines dropped for room since the last report.
    pub dropped_logs: usize,
}

impl Unflushed {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.logs.is_empty()
    }

    /// Adds a newer flush: its progress replaces a waiting write of the same task, its log
    /// lines come after the waiting ones.
    pub fn add(&mut self, writes: Vec<ProgressWrite>, logs: Vec<LogLine>) {
        for write in writes {
            self.writes.retain(|w| w.id != write.id);
            self.writes.push(write);
        }
        self.logs.extend(logs);
        if self.logs.len() > MAX_KEPT_LOG_LINES {
            let excess = self.logs.len() - MAX_KEPT_LOG_LINES;
            self.logs.drain(..excess);
            self.dropped_logs += excess;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(id: i64, progress: i64) -> ProgressWrite {
        ProgressWrite {
            id,
            lease_token: 1,
            progress,
            processed: None,
            total: None,
            eta_seconds: None,
            message: String::new(),
            worker_version: "1".into(),
        }
    }

    fn line(task_id: i64, n: usize) -> LogLine {
        LogLine {
            task_id,
            attempt: 1,
            level: stask_plugin_api::LogLevel::Warning.as_u8(),
            at: n as i64,
            line: format!("line {n}"),
        }
    }

    #[test]
    fn newer_progress_replaces_older_and_logs_keep_their_order() {
        let mut u = Unflushed::default();
        u.add(vec![write(1, 10), write(2, 5)], vec![line(1, 0)]);
        u.add(vec![write(1, 40)], vec![line(1, 1), line(2, 2)]);
        let by_id: Vec<(i64, i64)> = u.writes.iter().map(|w| (w.id, w.progress)).collect();
        assert_eq!(by_id, vec![(2, 5), (1, 40)]);
        let lines: Vec<&str> = u.logs.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(lines, vec!["line 0", "line 1", "line 2"]);
        assert!(!u.is_empty());
    }

    #[test]
    fn a_long_outage_keeps_the_newest_lines_and_counts_the_rest() {
        let mut u = Unflushed::default();
        u.add(
            vec![],
            (0..MAX_KEPT_LOG_LINES).map(|n| line(1, n)).collect(),
        );
        u.add(
            vec![],
            (0..10).map(|n| line(1, MAX_KEPT_LOG_LINES + n)).collect(),
        );
        assert_eq!(u.logs.len(), MAX_KEPT_LOG_LINES);
        assert_eq!(u.dropped_logs, 10);
        assert_eq!(u.logs[0].line, "line 10");
    }
}
