//! RFC 3339 timestamps, as ARM writes them (`expiresOn`, `createdOn`, ...) and as users give
//! them: parsing any offset and fraction, formatting in the UTC form Azure documents, and the
//! current time in that form. Provider and emulator share them so both read and write one
//! format.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: seconds since the Unix epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: u32,
}

/// Why a timestamp is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an RFC 3339 date-time such as 2027-06-30T00:00:00Z or 2027-06-30T02:00:00+02:00"
)]
pub struct TimestampError(pub String);

fn digits(s: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = s.get(range)?;
    part.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| part.parse().ok())?
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, TimestampError> {
    let err = || TimestampError(s.to_string());
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(err());
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(err());
    }
    let (y, mo, d) = (
        digits(s, 0..4).ok_or_else(err)?,
        digits(s, 5..7).ok_or_else(err)?,
        digits(s, 8..10).ok_or_else(err)?,
    );
    let (h, mi, sec) = (
        digits(s, 11..13).ok_or_else(err)?,
        digits(s, 14..16).ok_or_else(err)?,
        digits(s, 17..19).ok_or_else(err)?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return Err(err());
    }
    let mut rest = &s[19..];
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(err());
        }
        let text = &frac[..n.min(9)];
        let padded = format!("{text:0<9}");
        nanos = padded.parse().map_err(|_| err())?;
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return Err(err());
            }
            let oh = digits(rest, 1..3).ok_or_else(err)?;
            let om = digits(rest, 4..6).ok_or_else(err)?;
            if oh > 23 || om > 59 {
                return Err(err());
            }
            let sign = if rb[0] == b'-' { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
    };
    // A leap second counts as the second before the next minute.
    let sec = sec.min(59);
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Ok(Timestamp { seconds, nanos })
}

/// The UTC form Azure documents (`yyyy-MM-ddTHH:mm:ss[.fffffff]Z`).
pub fn format_rfc3339_utc(t: Timestamp) -> String {
    let days = t.seconds.div_euclid(86_400);
    let secs = t.seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    if t.nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{:09}", t.nanos);
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// The current time.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos(),
    }
}

/// Now in UTC with milliseconds, the precision ARM bodies carry.
pub fn now_rfc3339() -> String {
    let t = now();
    let seconds = format_rfc3339_utc(Timestamp { nanos: 0, ..t });
    format!(
        "{}.{:03}Z",
        seconds.trim_end_matches('Z'),
        t.nanos / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_offsets_and_fractions() {
        let z = parse_rfc3339("2027-06-30T00:00:00Z").unwrap();
        let plus2 = parse_rfc3339("2027-06-30T02:00:00+02:00").unwrap();
        assert_eq!(z, plus2);
        assert_eq!(z.seconds, 1_814_313_600);
        let frac = parse_rfc3339("2027-06-30T00:00:00.1075056Z").unwrap();
        assert_eq!(frac.nanos, 107_505_600);
        assert_eq!(format_rfc3339_utc(frac), "2027-06-30T00:00:00.1075056Z");
        assert_eq!(format_rfc3339_utc(plus2), "2027-06-30T00:00:00Z");
        for bad in [
            "2027-06-30",
            "2027-02-30T00:00:00Z",
            "2027-06-30T00:00:00",
            "2027-06-30T25:00:00Z",
            "2027-06-30T00:00:00+0200",
            "tomorrow",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert_eq!(
            format_rfc3339_utc(parse_rfc3339("1969-12-31T23:59:59Z").unwrap()),
            "1969-12-31T23:59:59Z"
        );
    }

    #[test]
    fn now_has_millisecond_precision() {
        let text = now_rfc3339();
        let t = parse_rfc3339(&text).unwrap();
        assert_eq!(t.nanos % 1_000_000, 0, "{text}");
        assert_eq!(text.len(), "2027-06-30T00:00:00.000Z".len(), "{text}");
    }
}
