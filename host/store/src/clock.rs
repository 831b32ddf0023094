//! Time as the store keeps it (UNIX milliseconds) and as people read it.
//!
//! One clock for every host of a queue: where several hosts share a database, leases, due
//! times and schedule slots written by one are compared by the others, so every process keeps
//! the database server's time. [`sync_to_database`] measures how far this host's clock is from
//! the server's (at open, and again on every heartbeat); [`now_ms`] is this host's clock moved
//! by that offset. A host whose clock is minutes off then neither takes live leases nor runs
//! tasks early. With SQLite the database is a file of this host and the offset stays 0.

use crate::{HostStore, StoreResult};
use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

/// How far the database server's clock is ahead of this host's, in ms (negative: behind).
/// One per process: a process works for one queue (tests that open several stores open them
/// on this machine's servers, whose clock is this host's).
static DATABASE_OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// A new measurement moves the offset only when it differs by more than this: the readings
/// jitter by their round trip, and time should not step back and forth by a few ms.
const OFFSET_STEP_MS: i64 = 50;

/// Now, in UNIX milliseconds, by the database's clock (see the module's doc).
pub fn now_ms() -> i64 {
    host_clock_ms() + database_offset_ms()
}

/// Now by this host's own clock, unmoved: for what only this host reads (its log lines).
pub fn host_clock_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// How far the database's clock is ahead of this host's, in ms, as last measured.
pub fn database_offset_ms() -> i64 {
    DATABASE_OFFSET_MS.load(Ordering::Relaxed)
}

/// One measurement of the database's clock against this host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    /// The database's clock minus this host's, in ms.
    pub offset_ms: i64,
    /// The round trip of the reading, in ms: the offset is right to within half of it.
    pub round_trip_ms: i64,
    /// Whether this reading moved the offset [`now_ms`] uses.
    pub moved: bool,
}

/// Reads the database's clock `readings` times (at least once), keeps the reading of the
/// shortest round trip, and moves [`now_ms`] to it; `None` for a database without a clock of
/// its own (SQLite), whose offset stays 0. At open a few readings find the offset; a heartbeat
/// takes one, enough to follow a drift or a jump of this host's clock.
pub fn sync_to_database(
    store: &dyn HostStore,
    readings: usize,
) -> StoreResult<Option<ClockReading>> {
    let mut best: Option<(i64, i64)> = None;
    for _ in 0..readings.max(1) {
        let before = host_clock_ms();
        let Some(database) = store.database_clock_ms()? else {
            return Ok(None);
        };
        let after = host_clock_ms();
        let round_trip = after - before;
        // The server read its clock somewhere within the round trip: assume the middle.
        let offset = database - (before + round_trip / 2);
        if best.is_none_or(|(_, rt)| round_trip < rt) {
            best = Some((offset, round_trip));
        }
    }
    let (offset_ms, round_trip_ms) = best.expect("at least one reading");
    let moved = (offset_ms - database_offset_ms()).abs() > OFFSET_STEP_MS;
    if moved {
        DATABASE_OFFSET_MS.store(offset_ms, Ordering::Relaxed);
    }
    Ok(Some(ClockReading {
        offset_ms,
        round_trip_ms,
        moved,
    }))
}

/// Tells the operator when a reading moved this host's time by more than a second: its own
/// clock is off (NTP would fix it), and sTask keeps the database's time meanwhile.
pub fn report(reading: &ClockReading) {
    if reading.moved && reading.offset_ms.abs() >= 1_000 {
        let (seconds, way) = (
            reading.offset_ms.abs() as f64 / 1000.0,
            if reading.offset_ms > 0 {
                "behind"
            } else {
                "ahead of"
            },
        );
        tracing::warn!(
            offset_ms = reading.offset_ms,
            "this host's clock is {seconds:.1} s {way} the database's; sTask keeps the \
             database's time (leases, due times, schedules)"
        );
    }
}

/// RFC 3339 in UTC with millisecond precision (`2025-01-16T10:30:00.000Z`).
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The times [`rfc3339`] can show, in UNIX ms: years 0000 to 9999.
const SHOWABLE_MS: std::ops::RangeInclusive<i64> = -62_167_219_200_000..=253_402_300_799_999;

/// Parses a user-given time: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or UNIX seconds; years
/// 0000 to 9999 only, so that every accepted time can be shown again.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let parsed = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        Some(t.timestamp_millis())
    } else if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        Some(t.and_utc().timestamp_millis())
    } else {
        text.parse::<i64>()
            .ok()
            .map(|secs| secs.saturating_mul(1000))
    };
    match parsed {
        Some(ms) if SHOWABLE_MS.contains(&ms) => Ok(ms),
        Some(_) => Err(format!(
            "time '{text}' is out of range: years 0000 to 9999 only"
        )),
        None => Err(format!(
            "invalid time '{text}': use RFC 3339 (2025-01-16T10:30:00Z), 'YYYY-MM-DD HH:MM:SS' or UNIX seconds"
        )),
    }
}

/// A duration in the seed's ETA style: `2m 30s`, `1h 5m`, `45s`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m {sec}s"),
        (h, min, _) => format!("{h}h {min}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_format_matches_seed_style() {
        assert_eq!(human_duration(150), "2m 30s");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(3900), "1h 5m");
        assert_eq!(human_duration(-3), "0s");
    }

    #[test]
    fn parses_the_accepted_time_forms() {
        let t = parse_time("2025-01-16T10:30:00Z").unwrap();
        assert_eq!(rfc3339(t), "2025-01-16T10:30:00.000Z");
        assert_eq!(parse_time("2025-01-16 10:30:00").unwrap(), t);
        assert_eq!(parse_time("1737023400").unwrap(), t);
        assert!(parse_time("tomorrow").is_err());
    }

    /// Found by the `task_query` fuzz target: UNIX seconds beyond year 9999 were accepted
    /// (saturated to i64::MAX ms), and such a time cannot be shown (`rfc3339` gave "").
    #[test]
    fn accepts_only_times_that_can_be_shown() {
        for text in ["20257375737023400", "-99999999999999", "253402300800"] {
            assert!(parse_time(text).is_err(), "{text} accepted");
        }
        for text in [
            "253402300799",
            "9999-12-31 23:59:59",
            "0000-01-01T00:00:00Z",
            "-1",
        ] {
            let ms = parse_time(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(!rfc3339(ms).is_empty(), "{text}");
        }
        assert_eq!(rfc3339(*SHOWABLE_MS.start()), "0000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(*SHOWABLE_MS.end()), "9999-12-31T23:59:59.999Z");
    }
}
