//! RFC 3339 timestamps with nanoseconds, as Docker writes them ("2024-01-02T03:04:05.123456789Z").
//! Kept dependency-free because the shim formats one per log line.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats a time as UTC RFC 3339 with nine fractional digits.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, mo, da) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{da:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// UTC RFC 3339 with `digits` fractional digits (0: none), as syslog's formats
/// want it.
pub fn rfc3339_digits(t: SystemTime, digits: usize) -> String {
    let full = rfc3339_nano(t);
    let (head, frac) = full.split_at(19);
    if digits == 0 {
        format!("{head}Z")
    } else {
        format!("{head}{}Z", &frac[..1 + digits.min(9)])
    }
}

/// BSD syslog's timestamp, UTC: "Jan  2 15:04:05".
pub fn syslog_stamp(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (_, mo, da) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{} {da:>2} {:02}:{:02}:{:02}",
        MONTHS[(mo - 1) as usize],
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_709_251_199, 5);
        assert_eq!(rfc3339_nano(t), "2024-02-29T23:59:59.000000005Z");
        let t = UNIX_EPOCH + Duration::new(1_704_164_645, 123_456_789);
        assert_eq!(rfc3339_digits(t, 0), "2024-01-02T03:04:05Z");
        assert_eq!(rfc3339_digits(t, 6), "2024-01-02T03:04:05.123456Z");
        assert_eq!(syslog_stamp(t), "Jan  2 03:04:05");
    }
}
