//! The markdown of the `peers` comparison: the ratio table (ours / peer at the paired
//! durability), the raw medians, and what each system's durability means.

use super::{PeerRun, System, Workload};
use crate::report::fmt;
use std::fmt::Write;

/// `ours / peer` as `2.3x`, or `n/a` when either is missing.
fn ratio(ours: f64, peer: f64) -> String {
    let r = ours / peer;
    if r.is_finite() {
        format!("{r:.2}x")
    } else {
        "n/a".into()
    }
}

/// The whole block, printed above the bench's figure table.
pub fn render(systems: &[System], w: &Workload, runs: usize) -> String {
    let ours = |level: &str| {
        systems
            .iter()
            .find(|s| s.against.is_none() && s.name.ends_with(&format!("={level})")))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Peers side by side (median of {runs} runs; {} pre-filled no-op tasks drained; {} s \
         of creates by {} producers while the pool runs them; {} tasks created one at a time \
         {:?} apart for the latency; pool {} everywhere)\n",
        w.drain_tasks, w.sustained_secs, w.producers, w.latency_tasks, w.latency_gap, w.pool
    );
    let _ = writeln!(
        out,
        "Each cell is ours / peer, ours at the durability level named in the row. Drain and \
         sustained completed/s: higher means ours is faster. Latency p50 and p99: lower means \
         ours is quicker.\n"
    );
    out.push_str(
        "| peer | set against ours at | drain | sustained completed/s | latency p50 | latency p99 |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|\n");
    type Get = fn(&PeerRun) -> f64;
    let cols: [Get; 4] = [
        |r| r.drain_per_s,
        |r| r.sustained_completed_per_s,
        |r| r.latency_p50_ms,
        |r| r.latency_p99_ms,
    ];
    for peer in systems.iter().filter(|s| s.against.is_some()) {
        let level = peer.against.unwrap_or("normal");
        let _ = write!(out, "| {} | STASK_SQLITE_SYNC={level} |", peer.name);
        match (&peer.error, ours(level)) {
            (Some(e), _) if peer.runs.is_empty() => {
                let _ = write!(out, " not run: {} | | | |", one_line(e));
            }
            (_, Some(o)) if !o.runs.is_empty() => {
                for get in cols {
                    let _ = write!(out, " {} |", ratio(o.median(get), peer.median(get)));
                }
                if let Some(e) = &peer.error {
                    let _ = write!(
                        out,
                        " (from {} runs; then failed: {})",
                        peer.runs.len(),
                        one_line(e)
                    );
                }
            }
            _ => {
                let _ = write!(out, " ours did not run | | | |");
            }
        }
        out.push('\n');
    }
    out.push_str(
        "\n| system | drain tasks/s | sustained created/s | sustained completed/s | latency p50 ms | latency p99 ms |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    for s in systems {
        if s.runs.is_empty() {
            let why = s.error.as_deref().unwrap_or("no run");
            let _ = writeln!(out, "| {} | not run: {} | | | | |", s.name, one_line(why));
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            s.name,
            fmt(s.median(|r| r.drain_per_s)),
            fmt(s.median(|r| r.sustained_created_per_s)),
            fmt(s.median(|r| r.sustained_completed_per_s)),
            fmt(s.median(|r| r.latency_p50_ms)),
            fmt(s.median(|r| r.latency_p99_ms)),
        );
    }
    out.push_str("\nDurability, as run:\n\n");
    for s in systems {
        let _ = writeln!(out, "- {}: {}.", s.name, s.durability);
    }
    out
}

/// An error on one table line (cells cannot hold newlines or pipes), shortened.
fn one_line(e: &str) -> String {
    let flat: String = e
        .replace('|', "/")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() > 300 {
        format!("{}...", flat.chars().take(300).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::super::{workload, PeerRun, Runner, System};
    use super::render;

    fn run(drain: f64, p50: f64) -> PeerRun {
        PeerRun {
            drain_per_s: drain,
            sustained_created_per_s: drain,
            sustained_completed_per_s: drain,
            latency_p50_ms: p50,
            latency_p99_ms: p50 * 10.0,
        }
    }

    #[test]
    fn ratios_are_ours_over_the_peer_at_the_paired_level() {
        let mut ours = System::new(Runner::Ours("normal"));
        ours.runs = vec![run(1_000.0, 1.0), run(3_000.0, 3.0), run(2_000.0, 2.0)];
        let mut full = System::new(Runner::Ours("full"));
        full.runs = vec![run(100.0, 10.0)];
        let mut peer = System::new(Runner::Bullmq);
        peer.runs = vec![run(500.0, 4.0)];
        let text = render(&[ours, full, peer], &workload(10, 1), 3);
        // Medians 2,000 / 500 and 2 ms / 4 ms, against ours at normal (not full).
        assert!(
            text.contains("| STASK_SQLITE_SYNC=normal | 4.00x | 4.00x | 0.50x | 0.50x |"),
            "{text}"
        );
    }

    #[test]
    fn a_peer_that_cannot_run_says_why() {
        let mut ours = System::new(Runner::Ours("full"));
        ours.runs = vec![run(100.0, 1.0)];
        let mut peer = System::new(Runner::Graphile);
        peer.error = Some("no server on 127.0.0.1:5432 | refused\nsecond line".into());
        let text = render(&[ours, peer], &workload(10, 1), 1);
        assert!(
            text.contains("not run: no server on 127.0.0.1:5432 / refused second line |"),
            "{text}"
        );
    }

    #[test]
    fn apalis_is_paired_by_the_level_its_durability_names() {
        assert_eq!(
            super::super::level_named_in("... STASK_SQLITE_SYNC=full"),
            "full"
        );
        assert_eq!(
            super::super::level_named_in("not built in this branch"),
            "normal"
        );
    }
}
