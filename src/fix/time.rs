//! UTC timestamps on the wire (`YYYYMMDD-HH:MM:SS[.fff…]`), as nanoseconds
//! since the Unix epoch in memory. Formatting is hand-rolled: it runs for
//! every outbound message.

/// Nanoseconds since 1970-01-01T00:00:00Z.
pub type UtcNanos = i64;

/// Fractional-second digits written in outbound timestamps (QuickFIX's
/// `TimeStampPrecision`): 0, 3, 6 or 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Whole seconds.
    Seconds,
    /// Milliseconds (the default, what the acceptance suite expects).
    #[default]
    Millis,
    /// Microseconds.
    Micros,
    /// Nanoseconds.
    Nanos,
}

impl Precision {
    /// From QuickFIX's TimeStampPrecision digits.
    pub fn from_digits(d: u32) -> Option<Precision> {
        match d {
            0 => Some(Precision::Seconds),
            3 => Some(Precision::Millis),
            6 => Some(Precision::Micros),
            9 => Some(Precision::Nanos),
            _ => None,
        }
    }

    fn digits(self) -> u32 {
        match self {
            Precision::Seconds => 0,
            Precision::Millis => 3,
            Precision::Micros => 6,
            Precision::Nanos => 9,
        }
    }
}

/// The current wall-clock time. Only the I/O layer calls this.
pub fn now_utc() -> UtcNanos {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_nanos() as i64
}

/// Days since the epoch to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since the epoch.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn push_2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Appends `t` as `YYYYMMDD-HH:MM:SS[.fff]` with the given precision.
pub fn format_utc(t: UtcNanos, precision: Precision, out: &mut Vec<u8>) {
    let secs = t.div_euclid(1_000_000_000);
    let nanos = t.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    push_2(out, y / 100);
    push_2(out, y % 100);
    push_2(out, m);
    push_2(out, d);
    out.push(b'-');
    push_2(out, sod / 3600);
    out.push(b':');
    push_2(out, sod / 60 % 60);
    out.push(b':');
    push_2(out, sod % 60);
    let digits = precision.digits();
    if digits > 0 {
        out.push(b'.');
        let mut frac = nanos / 10u32.pow(9 - digits);
        let start = out.len();
        for _ in 0..digits {
            out.push(b'0');
        }
        for i in (0..digits as usize).rev() {
            out[start + i] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
    }
}

/// Formats into a new `String` (for tests, logs and the CLI).
pub fn format_utc_string(t: UtcNanos, precision: Precision) -> String {
    let mut v = Vec::with_capacity(30);
    format_utc(t, precision, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

fn digits_at(v: &[u8], range: std::ops::Range<usize>) -> Option<u32> {
    let s = v.get(range)?;
    let mut n = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

/// Parses `YYYYMMDD` into days since the epoch, checking the calendar.
pub fn parse_date(v: &[u8]) -> Option<i64> {
    if v.len() != 8 {
        return None;
    }
    let y = digits_at(v, 0..4)?;
    let m = digits_at(v, 4..6)?;
    let d = digits_at(v, 6..8)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(i64::from(y), m, d))
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `HH:MM:SS[.f{1,9}]` into nanoseconds since midnight. Seconds may be
/// 60 (leap second), as FIX allows.
pub fn parse_time_of_day(v: &[u8]) -> Option<i64> {
    if v.len() < 8 || v[2] != b':' || v[5] != b':' {
        return None;
    }
    let h = digits_at(v, 0..2)?;
    let mi = digits_at(v, 3..5)?;
    let s = digits_at(v, 6..8)?;
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut nanos = 0i64;
    if v.len() > 8 {
        let frac = &v[9..];
        if v[8] != b'.' || frac.is_empty() || frac.len() > 9 {
            return None;
        }
        let f = digits_at(frac, 0..frac.len())?;
        nanos = i64::from(f) * 10i64.pow(9 - frac.len() as u32);
    }
    Some((i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)) * 1_000_000_000 + nanos)
}

/// Parses a FIX UTCTimestamp (`YYYYMMDD-HH:MM:SS[.f{1,9}]`).
///
/// Years outside what `UtcNanos` holds (before 1677, after 2262) are still
/// well-formed, as in QuickFIX; they saturate to the nearest representable
/// instant, so they fail any closeness check (SendingTime) instead of
/// overflowing.
pub fn parse_utc(v: &[u8]) -> Option<UtcNanos> {
    if v.len() < 17 || v[8] != b'-' {
        return None;
    }
    let days = parse_date(&v[..8])?;
    let tod = parse_time_of_day(&v[9..])?;
    Some(days.saturating_mul(86_400_000_000_000).saturating_add(tod))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn out_of_range_years_saturate_instead_of_overflowing() {
        // Found by the `validate` fuzz target: 52=02240315-14:30:15.123
        // overflowed the nanosecond multiplication.
        assert_eq!(
            parse_utc(b"02240315-14:30:15.123").map(|t| t < 0),
            Some(true)
        );
        let past = parse_utc(b"00000101-00:00:00").unwrap();
        let future = parse_utc(b"99991231-23:59:59.999999999").unwrap();
        assert!(past <= i64::MIN + 86_400_000_000_000);
        assert_eq!(future, i64::MAX);
        assert!(
            parse_utc(b"16770921-00:12:44").unwrap() < parse_utc(b"20240315-14:30:15").unwrap()
        );
    }

    #[test]
    fn formats_known_instant() {
        // 2004-05-03T17:56:01.123456789Z
        let t = 1_083_606_961_123_456_789;
        assert_eq!(
            format_utc_string(t, Precision::Millis),
            "20040503-17:56:01.123"
        );
        assert_eq!(
            format_utc_string(t, Precision::Seconds),
            "20040503-17:56:01"
        );
        assert_eq!(
            format_utc_string(t, Precision::Micros),
            "20040503-17:56:01.123456"
        );
        assert_eq!(
            format_utc_string(t, Precision::Nanos),
            "20040503-17:56:01.123456789"
        );
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(parse_utc(b"19700101-00:00:01"), Some(1_000_000_000));
        assert_eq!(parse_utc(b"19700101-00:00:00.5"), Some(500_000_000));
        assert_eq!(parse_utc(b"20040415"), None);
        assert_eq!(parse_utc(b"20040230-00:00:00"), None);
        assert_eq!(parse_utc(b"20040101-24:00:00"), None);
        assert_eq!(parse_utc(b"20040101-00:00:00."), None);
    }

    proptest! {
        #[test]
        fn round_trip(t in 0i64..9_000_000_000_000_000_000) {
            let s = format_utc_string(t, Precision::Nanos);
            prop_assert_eq!(parse_utc(s.as_bytes()), Some(t));
        }
    }
}
