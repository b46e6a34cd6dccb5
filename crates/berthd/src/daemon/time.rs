//! Docker's timestamps: RFC 3339 with nanoseconds out, RFC 3339 or Unix seconds in.

pub fn now_rfc3339() -> String {
    berth_runtime::timefmt::rfc3339_nano(std::time::SystemTime::now())
}

/// Parses Docker's RFC 3339 timestamps; the zero time and garbage give None.
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
        .filter(|t| t.timestamp() > 0)
}

/// Docker's `since`/`until` values: Unix seconds with an optional fraction.
pub fn parse_unix_nanos(s: &str) -> Option<i128> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i128 = secs.parse().ok()?;
    let mut nanos: i128 = 0;
    if !frac.is_empty() {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    Some(secs * 1_000_000_000 + nanos)
}
