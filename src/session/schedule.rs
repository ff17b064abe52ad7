//! The daily session window (StartTime / EndTime / TimeZone). A session whose
//! store was created in an earlier window is reset when a new one begins.

use crate::fix::time::UtcNanos;

const DAY_NS: i64 = 86_400_000_000_000;

/// A daily window in a fixed UTC offset. Equal start and end means always on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Start, seconds after local midnight.
    pub start_secs: u32,
    /// End, seconds after local midnight.
    pub end_secs: u32,
    /// Local time = UTC + offset.
    pub utc_offset_secs: i32,
}

impl Schedule {
    /// A session that never leaves its window.
    pub fn always() -> Schedule {
        Schedule {
            start_secs: 0,
            end_secs: 0,
            utc_offset_secs: 0,
        }
    }

    /// True when start == end (the window spans all day, every day).
    pub fn is_always(&self) -> bool {
        self.start_secs == self.end_secs
    }

    fn local(&self, t: UtcNanos) -> i64 {
        t + i64::from(self.utc_offset_secs) * 1_000_000_000
    }

    /// Start of the window containing `t`, or None when `t` is outside every window.
    pub fn window_start(&self, t: UtcNanos) -> Option<i64> {
        if self.is_always() {
            return Some(i64::MIN);
        }
        let local = self.local(t);
        let day = local.div_euclid(DAY_NS);
        let tod = local.rem_euclid(DAY_NS);
        let s = i64::from(self.start_secs) * 1_000_000_000;
        let e = i64::from(self.end_secs) * 1_000_000_000;
        if s < e {
            (tod >= s && tod <= e).then_some(day * DAY_NS + s)
        } else if tod >= s {
            // Window crosses midnight and we are before midnight.
            Some(day * DAY_NS + s)
        } else if tod <= e {
            Some((day - 1) * DAY_NS + s)
        } else {
            None
        }
    }

    /// True when `t` is inside a window.
    pub fn is_session_time(&self, t: UtcNanos) -> bool {
        self.window_start(t).is_some()
    }

    /// True when both instants fall in the same window.
    pub fn is_same_session(&self, a: UtcNanos, b: UtcNanos) -> bool {
        match (self.window_start(a), self.window_start(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }
}

/// Parses `HH:MM:SS` into seconds after midnight.
pub fn parse_time_of_day(s: &str) -> Option<u32> {
    let mut it = s.split(':');
    let h: u32 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let sec: u32 = it.next()?.parse().ok()?;
    if it.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

/// Parses a TimeZone value: `UTC`, `GMT`, `Z` or a fixed offset `+HH:MM` / `-HH:MM`.
pub fn parse_utc_offset(s: &str) -> Option<i32> {
    match s {
        "UTC" | "GMT" | "Z" | "Etc/UTC" => return Some(0),
        _ => {}
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn always_is_same_session() {
        let s = Schedule::always();
        assert!(s.is_same_session(0, 400 * DAY_NS));
    }

    #[test]
    fn daytime_window() {
        let s = Schedule {
            start_secs: 8 * 3600,
            end_secs: 17 * 3600,
            utc_offset_secs: 0,
        };
        assert!(!s.is_session_time(7 * H));
        assert!(s.is_session_time(9 * H));
        assert!(s.is_same_session(9 * H, 16 * H));
        assert!(!s.is_same_session(9 * H, DAY_NS + 9 * H));
    }

    #[test]
    fn overnight_window_and_offset() {
        let s = Schedule {
            start_secs: 22 * 3600,
            end_secs: 6 * 3600,
            utc_offset_secs: 3600,
        };
        // 21:30 UTC = 22:30 local: inside; 03:00 UTC next day = 04:00 local: same window.
        assert!(s.is_same_session(21 * H + H / 2, DAY_NS + 3 * H));
        assert!(!s.is_session_time(12 * H));
    }

    #[test]
    fn parses_times_and_zones() {
        assert_eq!(parse_time_of_day("08:30:00"), Some(30600));
        assert_eq!(parse_time_of_day("24:00:00"), None);
        assert_eq!(parse_utc_offset("-05:00"), Some(-18000));
        assert_eq!(parse_utc_offset("America/Nowhere"), None);
    }
}
