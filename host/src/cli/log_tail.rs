//! `stask task watch`'s log tail: which of a task's latest log lines it has not printed yet.
//! The store gives the latest lines of a task (lines are only ever appended); the tail finds
//! where the lines it printed last end in that window and returns what follows.

use crate::model::LogLine;

/// Lines fetched per poll: more new lines than this between two polls are not all shown.
pub(super) const WINDOW: i64 = 500;

/// The lines printed so far (the latest [`WINDOW`] of them).
#[derive(Default)]
pub(super) struct LogTail {
    printed: Vec<LogLine>,
}

impl LogTail {
    /// The lines of `latest` (a task's latest lines, oldest first) not printed yet; they count
    /// as printed from now on.
    pub(super) fn take_new(&mut self, latest: Vec<LogLine>) -> Vec<LogLine> {
        let start = self.end_of_printed(&latest);
        let new = latest[start..].to_vec();
        self.printed.extend(new.iter().cloned());
        let excess = self.printed.len().saturating_sub(WINDOW as usize);
        self.printed.drain(..excess);
        new
    }

    /// Where the printed lines end in `latest`: the latest position whose line and the lines
    /// before it match the printed tail; 0 when none does (everything is new).
    fn end_of_printed(&self, latest: &[LogLine]) -> usize {
        let Some(last) = self.printed.last() else {
            return 0;
        };
        (0..latest.len())
            .rev()
            .find(|&j| {
                &latest[j] == last
                    && latest[..j]
                        .iter()
                        .rev()
                        .zip(self.printed.iter().rev().skip(1))
                        .all(|(a, b)| a == b)
            })
            .map_or(0, |j| j + 1)
    }
}

/// `[info]`, `[warn]` or `[error]`.
pub(super) fn level_label(level: u8) -> &'static str {
    match level {
        0 => "[info]",
        1 => "[warn]",
        _ => "[error]",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine {
            task_id: 1,
            attempt: 1,
            level: 0,
            at: 5,
            line: text.into(),
        }
    }

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.line.as_str()).collect()
    }

    #[test]
    fn only_lines_after_the_printed_ones_are_new_even_when_lines_repeat() {
        let mut tail = LogTail::default();
        assert_eq!(
            texts(&tail.take_new(vec![line("a"), line("x")])),
            ["a", "x"]
        );
        assert!(tail.take_new(vec![line("a"), line("x")]).is_empty());
        // "x" again: the second one is new, although it equals the last printed line.
        let got = tail.take_new(vec![line("a"), line("x"), line("x"), line("b")]);
        assert_eq!(texts(&got), ["x", "b"]);
        // The window moved on: the printed lines are out of it, everything is new.
        let got = tail.take_new(vec![line("c"), line("d")]);
        assert_eq!(texts(&got), ["c", "d"]);
        // The window starts inside what was printed.
        let got = tail.take_new(vec![line("d"), line("e")]);
        assert_eq!(texts(&got), ["e"]);
    }
}
