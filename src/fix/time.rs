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

// Format-only checks: the validator only needs to know whether a value
// parses, so these test the same grammar as the parsers above eight bytes at
// a time and skip the calendar arithmetic.

/// The first eight bytes of `v` as a little-endian word (`v.len() >= 8`).
#[inline]
fn word8(v: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&v[..8]);
    u64::from_le_bytes(w)
}

/// The last eight bytes of `buf` as a little-endian word, with the bytes
/// before its last `len` (one to eight) made `0` digits: a value of up to
/// eight bytes read in place (the bytes before it in the frame fill the
/// word), ready for [`all_digits8`]. None when `buf` is shorter than a word
/// or `len` is not in 1..=8.
#[inline(always)]
pub(super) fn last_word_padded(buf: &[u8], len: usize) -> Option<u64> {
    let (_, last) = buf.split_last_chunk::<8>()?;
    if !(1..=8).contains(&len) {
        return None;
    }
    let keep = u64::MAX << (8 * (8 - len));
    Some(u64::from_le_bytes(*last) & keep | 0x3030_3030_3030_3030 & !keep)
}

/// True when all eight bytes of `w` are ASCII digits.
#[inline]
pub(super) fn all_digits8(w: u64) -> bool {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // High nibble 3 and low nibble at most 9 (adding 6 keeps it in 0x3_);
    // with the first test true the addition carries out of no byte.
    w & HIGH == ZEROS && w.wrapping_add(0x0606_0606_0606_0606) & HIGH == ZEROS
}

/// Two-digit values of a word of digits: byte `k` of the result is
/// `10 * digit[k] + digit[k + 1]` (no byte overflows).
#[inline]
fn digit_pairs(w: u64) -> u64 {
    let d = w - 0x3030_3030_3030_3030;
    d * 10 + (d >> 8)
}

/// True when `v` is a `YYYYMMDD` date that [`parse_date`] accepts.
#[inline]
pub fn is_date(v: &[u8]) -> bool {
    v.len() == 8 && is_date8(word8(v))
}

#[inline]
fn is_date8(w: u64) -> bool {
    if !all_digits8(w) {
        return false;
    }
    let p = digit_pairs(w);
    // Byte 4: the month, byte 6: the day. Adding 0x80 - limit - 1 sets a
    // lane's high bit when it is above the limit (12, 28), adding 0x7F when
    // it is not zero: every month has 28 days, the rest is the calendar's.
    let month_day = p & 0x00FF_00FF_0000_0000;
    const HIGH: u64 = 0x0080_0080_0000_0000;
    if (month_day + 0x0063_0073_0000_0000) & HIGH == 0
        && (month_day + 0x007F_007F_0000_0000) & HIGH == HIGH
    {
        return true;
    }
    let (month, day) = ((p >> 32 & 0xFF) as u32, (p >> 48 & 0xFF) as u32);
    let in_month =
        || day <= days_in_month((p & 0xFF) as u32 * 100 + (p >> 16 & 0xFF) as u32, month);
    (1..=12).contains(&month) && day != 0 && in_month()
}

/// True when `v` is an `HH:MM:SS[.f{1,9}]` time that [`parse_time_of_day`]
/// accepts.
#[inline]
pub fn is_time_of_day(v: &[u8]) -> bool {
    match v.split_first_chunk::<8>() {
        Some((clock, _)) => is_clock8(u64::from_le_bytes(*clock)) && is_fraction(v),
        None => false,
    }
}

/// True when `w` is `HH:MM:SS` (hours to 23, minutes to 59, seconds to 60).
#[inline]
fn is_clock8(w: u64) -> bool {
    const COLONS: u64 = 0x0000_FF00_00FF_0000;
    // The colons become `0` digits; then every byte must be a digit.
    let digits = w ^ 0x0000_0A00_000A_0000;
    if w & COLONS != 0x0000_3A00_003A_0000 || !all_digits8(digits) {
        return false;
    }
    // Byte 0: hours, byte 3: minutes, byte 6: seconds. Adding 0x80 - limit
    // - 1 sets a lane's high bit when it is above the limit.
    let p = digit_pairs(digits) & 0x00FF_0000_FF00_00FF;
    (p + 0x0043_0000_4400_0068) & 0x0080_0000_8000_0080 == 0
}

/// After the eight bytes of `HH:MM:SS` in `v`: nothing, or `.` and one to
/// nine digits. Up to eight digits are tested in one word, read in place.
#[inline]
fn is_fraction(v: &[u8]) -> bool {
    match v.get(8..) {
        Some([]) => true,
        Some([b'.', digits @ ..]) => match last_word_padded(v, digits.len()) {
            Some(w) => all_digits8(w),
            None => digits.len() == 9 && digits.iter().all(u8::is_ascii_digit),
        },
        _ => false,
    }
}

/// True when `v` is a UTCTimestamp that [`parse_utc`] accepts.
#[inline]
pub fn is_utc_timestamp(v: &[u8]) -> bool {
    match v.split_first_chunk::<9>() {
        Some((date, time)) => date[8] == b'-' && is_date8(word8(date)) && is_time_of_day(time),
        None => false,
    }
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

    #[test]
    fn format_checks_agree_with_the_parsers_on_edge_cases() {
        for v in [
            "20240229-23:59:60.123456789",
            "20230229-00:00:00",
            "21000229-00:00:00",
            "20000229-00:00:00",
            "20241231-00:00:00.",
            "20241231-00:00:00.1234567890",
            "20241301-00:00:00",
            "20240001-00:00:00",
            "20240100-00:00:00",
            "20240131-24:00:00",
            "20240131-23:60:00",
            "20240131-23:59:61",
            "20240131-23:59:59x",
            "20240131 23:59:59",
            "2024013-23:59:59",
            "20240131-23:59:5",
            "20240131-23;59:59",
            "20240131-23:59;59",
            "2024:131-23:59:59",
            "20240131-2/:59:59",
            "20240131-23:59:59.12a",
            "\x7f0240131-23:59:59",
        ] {
            let v = v.as_bytes();
            assert_eq!(is_utc_timestamp(v), parse_utc(v).is_some(), "{v:?}");
            assert_eq!(is_date(&v[..8]), parse_date(&v[..8]).is_some(), "{v:?}");
            let time = v.get(9..).unwrap_or_default();
            assert_eq!(
                is_time_of_day(time),
                parse_time_of_day(time).is_some(),
                "{v:?}"
            );
        }
    }

    /// Bytes around the ones the timestamp grammar tests.
    fn timestamp_like() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            8 => prop::sample::select(b"0123456789".to_vec()),
            2 => prop::sample::select(b"-:./9:;\x00\x7f\xff".to_vec()),
            1 => any::<u8>(),
        ];
        prop_oneof![
            proptest::collection::vec(byte.clone(), 0..30),
            // Mostly well-formed, one byte changed.
            (0u64..4_102_444_800_000, 0usize..28, byte, 0usize..11).prop_map(
                |(ms, at, b, frac)| {
                    let mut v =
                        format_utc_string(ms as i64 * 1_000_000, Precision::Nanos).into_bytes();
                    v.truncate(17 + frac);
                    if at < v.len() {
                        v[at] = b;
                    }
                    v
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn format_checks_agree_with_the_parsers(v in timestamp_like()) {
            prop_assert_eq!(is_utc_timestamp(&v), parse_utc(&v).is_some());
            prop_assert_eq!(is_date(&v), parse_date(&v).is_some());
            prop_assert_eq!(is_time_of_day(&v), parse_time_of_day(&v).is_some());
            let (date, time) = v.split_at(v.len().min(8));
            prop_assert_eq!(is_date(date), parse_date(date).is_some());
            prop_assert_eq!(is_time_of_day(time), parse_time_of_day(time).is_some());
            if v.len() > 9 {
                prop_assert_eq!(is_time_of_day(&v[9..]), parse_time_of_day(&v[9..]).is_some());
            }
        }

        #[test]
        fn round_trip(t in 0i64..9_000_000_000_000_000_000) {
            let s = format_utc_string(t, Precision::Nanos);
            prop_assert_eq!(parse_utc(s.as_bytes()), Some(t));
        }
    }
}
