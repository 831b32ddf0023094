//! Rounding that turns raw store figures (milliseconds, ratios) into what people read:
//! seconds and percentages with two decimals. The performance API and the alert rules share
//! it, so that an alert compares the figure exactly as the API shows it.

/// `x` rounded to two decimals (half away from zero).
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Milliseconds as seconds with two decimals.
pub(crate) fn seconds(ms: f64) -> f64 {
    round2(ms / 1000.0)
}

/// `part / whole × 100` with two decimals, or `None` when `whole` is 0 (no fake 0 % or 100 %).
pub(crate) fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| round2(part as f64 * 100.0 / whole as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_decimals_half_away_from_zero() {
        assert_eq!(round2(0.125), 0.13);
        assert_eq!(round2(-0.125), -0.13);
        assert_eq!(seconds(1_234.0), 1.23);
        assert_eq!(seconds(4_500.0), 4.5);
    }

    #[test]
    fn a_percentage_of_nothing_is_unknown() {
        assert_eq!(percent(0, 0), None);
        assert_eq!(percent(0, 3), Some(0.0));
        assert_eq!(percent(1, 3), Some(33.33));
        assert_eq!(percent(3, 3), Some(100.0));
    }
}
