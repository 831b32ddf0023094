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

/// Parses a user-given time: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or UNIX seconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Ok(t.and_utc().timestamp_millis());
    }
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs.saturating_mul(1000));
    }
    Err(format!(
        "invalid time '{text}': use RFC 3339 (2025-01-16T10:30:00Z), 'YYYY-MM-DD HH:MM:SS' or UNIX seconds"
    ))
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
}
