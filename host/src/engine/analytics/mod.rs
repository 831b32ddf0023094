//! Performance analytics and health alerts, shaped for people from the store's aggregates
//! ([`crate::store::AnalyticsStore`]).
//!
//! Durations are seconds with two decimals, rates are percentages with two decimals, times
//! are RFC 3339 ([`crate::figures`]). A figure that cannot be known is `null`, never a made-up
//! 0 or 100: a window in which nothing finished has no success rate, and a window without a
//! run measured alone has no memory figure (see [`crate::engine::resources`]).
//!
//! Windows select tasks by creation time: "the last hour" is the tasks created in the last
//! hour, with their status now.
//!
//! - [`summary`]: the performance of a window, overall and per worker.
//! - [`timeline`]: finished tasks per interval, for a chart.
//! - [`alerts`]: the health alerts now, gathered from the store and this host's runs; the
//!   alert types and rules live below the engine, in [`crate::alerts`].

pub mod alerts;
pub mod summary;
pub mod timeline;

#[cfg(test)]
mod fixtures;

pub use summary::{
    ErrorCountView, PerformanceFigures, PerformancePeriod, PerformanceSummary, PerformanceTasks,
    WorkerPerformance,
};
pub use timeline::{Timeline, TimelinePoint};

use super::{EngineError, EngineResult};

const HOUR_MS: i64 = 3_600_000;

/// Longest window the analytics accept (`hours`): a (leap) year, which bounds what one request
/// can make the database aggregate.
pub const MAX_HOURS: u32 = 24 * 366;

/// The window length of `hours`, refused outside 1..=[`MAX_HOURS`].
fn window_ms(hours: u32) -> EngineResult<i64> {
    if hours == 0 || hours > MAX_HOURS {
        return Err(EngineError::Invalid(format!(
            "hours must be between 1 and {MAX_HOURS}, got {hours}"
        )));
    }
    Ok(i64::from(hours) * HOUR_MS)
}
