//! Time as the store keeps it (UNIX milliseconds) and as people read it.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, in UNIX milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
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
