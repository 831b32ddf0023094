//! When a schedule is due: a cron expression read in an IANA time zone, with its slots as UNIX
//! milliseconds. Parsing is croner's (5 fields, 6 with seconds first, `@hourly`, `@daily`,
//! `@weekly`, `@monthly`, `@yearly`), zones are chrono-tz's (the IANA database compiled in).
//!
//! Daylight saving time follows croner's rules (those of Vixie cron and the Open Cron Pattern
//! Specification): a fixed time that does not exist on a spring-forward day (02:30 in
//! Europe/Berlin) runs once, at the first valid time after the gap (03:00); a fixed time that
//! exists twice on a fall-back day runs once, at its first occurrence; wildcard and step
//! fields run on every matching wall clock time, so an hourly job runs in both copies of the
//! repeated hour and skips the missing one. Searches move in real time, so slots always
//! increase. The tests below pin these cases.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed expression in its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

impl CronSchedule {
    /// Parses `expression` in the time zone named `zone`; the error says what is wrong, for
    /// people (an API answer, a refused `stask.toml`).
    pub fn parse(expression: &str, zone: &str) -> Result<CronSchedule, String> {
        let fields = expression.split_whitespace().count();
        let macro_ = expression.trim_start().starts_with('@');
        if !macro_ && fields != 5 && fields != 6 {
            return Err(format!(
                "bad cron expression '{expression}': {fields} fields; use 5 (minute hour day \
                 month weekday), 6 (seconds first) or @hourly/@daily/@weekly/@monthly"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| format!("bad cron expression '{expression}': {e}"))?;
        let zone: Tz = zone.parse().map_err(|_| {
            format!("unknown time zone '{zone}': use an IANA name such as Europe/Berlin or UTC")
        })?;
        Ok(CronSchedule { cron, zone })
    }

    /// The first slot strictly after `ms`, if there is one (croner searches up to year 5000).
    pub fn next_after(&self, ms: i64) -> Option<i64> {
        let from = self.at(ms)?;
        self.cron
            .find_next_occurrence(&from, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// The latest slot at or before `ms`, if there is one.
    pub fn latest_at_or_before(&self, ms: i64) -> Option<i64> {
        let from = self.at(ms)?;
        self.cron
            .find_previous_occurrence(&from, true)
            .ok()
            .map(|t| t.timestamp_millis())
            .filter(|&t| t <= ms)
    }

    /// `ms` in the schedule's zone, cut to whole seconds (slots are whole seconds; a search
    /// from a fraction of a second would otherwise depend on how croner rounds it).
    fn at(&self, ms: i64) -> Option<DateTime<Tz>> {
        let whole = ms.div_euclid(1_000) * 1_000;
        Some(DateTime::<Utc>::from_timestamp_millis(whole)?.with_timezone(&self.zone))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .timestamp_millis()
    }

    /// The slots of `s` in `[from, to)`.
    fn slots(s: &CronSchedule, from: i64, to: i64) -> Vec<i64> {
        let mut out = Vec::new();
        let mut at = from - 1;
        while let Some(next) = s.next_after(at).filter(|&n| n < to) {
            out.push(next);
            at = next;
        }
        out
    }

    #[test]
    fn five_and_six_fields_and_macros() {
        let every_minute = CronSchedule::parse("* * * * *", "UTC").unwrap();
        let t = utc(2026, 1, 1, 10, 0, 30);
        assert_eq!(every_minute.next_after(t), Some(utc(2026, 1, 1, 10, 1, 0)));
        let every_second = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        assert_eq!(every_second.next_after(t + 400), Some(t + 1_000));
        assert_eq!(every_second.latest_at_or_before(t + 400), Some(t));
        let every_5s = CronSchedule::parse("*/5 * * * * *", "UTC").unwrap();
        assert_eq!(every_5s.next_after(t), Some(t + 5_000));
        for (m, next) in [
            ("@hourly", utc(2026, 1, 1, 11, 0, 0)),
            ("@daily", utc(2026, 1, 2, 0, 0, 0)),
            // 2026-01-01 is a Thursday: the next Sunday is the 4th.
            ("@weekly", utc(2026, 1, 4, 0, 0, 0)),
            ("@monthly", utc(2026, 2, 1, 0, 0, 0)),
        ] {
            let s = CronSchedule::parse(m, "UTC").unwrap();
            assert_eq!(s.next_after(t), Some(next), "{m}");
        }
        let hourly = CronSchedule::parse("@hourly", "UTC").unwrap();
        assert_eq!(
            hourly.latest_at_or_before(t),
            Some(utc(2026, 1, 1, 10, 0, 0))
        );
        assert_eq!(
            hourly.latest_at_or_before(utc(2026, 1, 1, 10, 0, 0)),
            Some(utc(2026, 1, 1, 10, 0, 0)),
            "a slot at the instant itself counts"
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_the_reason() {
        for bad in [
            "",
            "* * * *",
            "* * * * * * *",
            "61 * * * *",
            "* * * * mo",
            "@fortnightly",
        ] {
            let e = CronSchedule::parse(bad, "UTC").unwrap_err();
            assert!(e.contains("bad cron expression"), "{bad}: {e}");
        }
        let e = CronSchedule::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert!(e.contains("unknown time zone 'Mars/Olympus'"), "{e}");
    }

    #[test]
    fn a_zone_moves_the_slot() {
        let s = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        // 02:30 CET (winter) is 01:30 UTC.
        assert_eq!(
            s.next_after(utc(2026, 1, 10, 0, 0, 0)),
            Some(utc(2026, 1, 10, 1, 30, 0))
        );
        let ny = CronSchedule::parse("0 9 * * *", "America/New_York").unwrap();
        assert_eq!(
            ny.next_after(utc(2026, 7, 1, 0, 0, 0)),
            Some(utc(2026, 7, 1, 13, 0, 0))
        );
    }

    /// Spring forward in Berlin (2026-03-29: 02:00 CET becomes 03:00 CEST): 02:30 does not
    /// exist that day; the daily 02:30 runs exactly once, at 03:00 CEST (01:00 UTC), and on
    /// the days around it at 02:30 local.
    #[test]
    fn a_daily_0230_runs_once_on_the_spring_forward_day() {
        let s = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let day = slots(&s, utc(2026, 3, 28, 22, 0, 0), utc(2026, 3, 29, 22, 0, 0));
        assert_eq!(day, vec![utc(2026, 3, 29, 1, 0, 0)]);
        let around = slots(&s, utc(2026, 3, 27, 23, 0, 0), utc(2026, 3, 30, 22, 0, 0));
        assert_eq!(
            around,
            vec![
                utc(2026, 3, 28, 1, 30, 0), // 02:30 CET
                utc(2026, 3, 29, 1, 0, 0),  // 03:00 CEST, right after the gap
                utc(2026, 3, 30, 0, 30, 0), // 02:30 CEST
            ]
        );
    }

    /// Fall back in Berlin (2026-10-25: 03:00 CEST becomes 02:00 CET): 02:30 happens twice;
    /// the daily 02:30 runs exactly once, at the first (00:30 UTC).
    #[test]
    fn a_daily_0230_runs_once_on_the_fall_back_day() {
        let s = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let day = slots(&s, utc(2026, 10, 24, 22, 0, 0), utc(2026, 10, 25, 23, 0, 0));
        assert_eq!(day, vec![utc(2026, 10, 25, 0, 30, 0)]);
        // Searching from between the two 02:30s finds the next day's, not the repeat.
        assert_eq!(
            s.next_after(utc(2026, 10, 25, 0, 45, 0)),
            Some(utc(2026, 10, 26, 1, 30, 0))
        );
    }

    /// An hourly job on those days: 23 runs on the short day, 25 on the long one (every
    /// wall-clock hour that exists, the repeated one twice).
    #[test]
    fn hourly_runs_follow_the_real_hours_across_dst() {
        let s = CronSchedule::parse("0 * * * *", "Europe/Berlin").unwrap();
        let spring = slots(&s, utc(2026, 3, 28, 23, 0, 0), utc(2026, 3, 29, 22, 0, 0));
        assert_eq!(spring.len(), 23);
        let fall = slots(&s, utc(2026, 10, 24, 22, 0, 0), utc(2026, 10, 25, 23, 0, 0));
        assert_eq!(fall.len(), 25);
        assert!(fall.windows(2).all(|w| w[1] - w[0] == 3_600_000));
    }
}
