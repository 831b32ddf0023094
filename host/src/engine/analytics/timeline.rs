//! Completed and failed tasks per interval ([`Timeline`]), every interval present so that a
//! chart needs no gaps logic.

use super::window_ms;
use crate::clock::{now_ms, rfc3339};
use crate::engine::{Engine, EngineError, EngineResult};
use serde::Serialize;

/// Completed and failed tasks per interval.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    /// Start of the first interval (RFC 3339).
    pub from: String,
    /// End of the last interval (RFC 3339).
    pub to: String,
    /// Length of an interval.
    pub bucket_seconds: f64,
    /// One point per interval, oldest first.
    pub points: Vec<TimelinePoint>,
}

/// One interval of a [`Timeline`].
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TimelinePoint {
    /// Start of the interval (RFC 3339).
    pub at: String,
    /// Tasks completed in it.
    pub completed: i64,
    /// Tasks failed in it.
    pub failed: i64,
}

impl Engine {
    /// Completed and failed tasks per interval over the last `hours`, in `buckets` equal
    /// intervals (1-500), every interval present (zeros included) so a chart needs no gaps
    /// logic.
    pub fn timeline(&self, hours: u32, buckets: u32) -> EngineResult<Timeline> {
        self.timeline_at(hours, buckets, now_ms())
    }

    fn timeline_at(&self, hours: u32, buckets: u32, to: i64) -> EngineResult<Timeline> {
        let span = window_ms(hours)?;
        if buckets == 0 || buckets > 500 {
            return Err(EngineError::Invalid(format!(
                "buckets must be between 1 and 500, got {buckets}"
            )));
        }
        let bucket_ms = (span / i64::from(buckets)).max(1);
        let from = to - bucket_ms * i64::from(buckets);
        let mut points: Vec<TimelinePoint> = (0..i64::from(buckets))
            .map(|i| TimelinePoint {
                at: rfc3339(from + i * bucket_ms),
                completed: 0,
                failed: 0,
            })
            .collect();
        for (bucket, completed, failed) in self.store.finished_per_bucket(from, to, bucket_ms)? {
            if let Some(p) = usize::try_from(bucket).ok().and_then(|b| points.get_mut(b)) {
                p.completed = completed;
                p.failed = failed;
            }
        }
        Ok(Timeline {
            from: rfc3339(from),
            to: rfc3339(to),
            bucket_seconds: bucket_ms as f64 / 1000.0,
            points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{engine, store, MIN, NOW};
    use super::super::MAX_HOURS;
    use super::*;
    use crate::model::TaskStatus::{Cancelled, Completed, Failed};
    use crate::store::conformance::{record, Run};

    #[test]
    fn every_interval_is_present_oldest_first() {
        let engine = engine();
        // Run::new(identifier, created_at, wait_ms, status, duration_ms): a run ends at
        // created + wait + duration.
        for run in [
            Run::new("w", NOW - 50 * MIN, 0, Completed, 1_000),
            Run::new("w", NOW - 50 * MIN + 1, 0, Failed, 1_000),
            Run::new("w", NOW - 10 * MIN, 0, Completed, 1_000),
            Run::new("w", NOW - 10 * MIN + 1, 0, Cancelled, 1_000),
        ] {
            record(store(&engine), &run);
        }
        let timeline = engine.timeline_at(1, 4, NOW).unwrap();
        assert_eq!(
            (
                timeline.from.as_str(),
                timeline.to.as_str(),
                timeline.bucket_seconds
            ),
            (
                "2025-01-16T09:00:00.000Z",
                "2025-01-16T10:00:00.000Z",
                900.0
            )
        );
        let counts: Vec<(&str, i64, i64)> = timeline
            .points
            .iter()
            .map(|p| (p.at.as_str(), p.completed, p.failed))
            .collect();
        assert_eq!(
            counts,
            vec![
                ("2025-01-16T09:00:00.000Z", 1, 1),
                ("2025-01-16T09:15:00.000Z", 0, 0),
                ("2025-01-16T09:30:00.000Z", 0, 0),
                ("2025-01-16T09:45:00.000Z", 1, 0),
            ],
            "cancelled runs are in no series"
        );
    }

    #[test]
    fn hours_and_buckets_outside_their_range_are_refused() {
        let engine = engine();
        for (hours, buckets) in [(0, 24), (MAX_HOURS + 1, 24), (24, 0), (24, 501)] {
            assert!(
                matches!(
                    engine.timeline(hours, buckets),
                    Err(EngineError::Invalid(_))
                ),
                "{hours} h in {buckets} buckets"
            );
        }
        assert_eq!(engine.timeline(MAX_HOURS, 500).unwrap().points.len(), 500);
    }
}
