//! Macro expansion (FORMAT.md §3): `<TIME>`, `<TIME+N>`, `<TIME-N>` and
//! `<FILE:path>`.
//!
//! Unlike the reference runner, which reads the clock once per token, the
//! caller passes **one** clock reading for the whole line, so
//! `52=<TIME>|122=<TIME>` can never straddle a second boundary. Expansion
//! order is the reference's: all `<TIME>`, then `<TIME±N>`, then `<FILE:…>`.
//! The `<TIME±N>` token is parsed properly (digits up to its own `>`), not by
//! looking for the first `>` of the line; a malformed token is left as is.

use chrono::{DateTime, Duration, Utc};
use std::path::Path;

/// Formats a timestamp as the macros do: UTC `YYYYMMDD-HH:MM:SS`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d-%H:%M:%S").to_string()
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Expands all macros in `line` using the single clock reading `now`.
/// `<FILE:path>` is resolved relative to `base_dir` (the runner uses the
/// current directory, as upstream does); its contents are trimmed of leading
/// and trailing ASCII whitespace. An unreadable file is an error.
pub fn expand(line: &[u8], now: DateTime<Utc>, base_dir: &Path) -> Result<Vec<u8>, String> {
    // 1. <TIME>
    let stamp = format_time(now);
    let mut out = replace_all(line, b"<TIME>", stamp.as_bytes());

    // 2. <TIME+N> / <TIME-N>
    let mut pos = 0;
    while let Some(start) = find(&out, b"<TIME", pos) {
        let sign_at = start + 5;
        let sign = out.get(sign_at).copied();
        let digits_start = sign_at + 1;
        let mut end = digits_start;
        while out.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        let well_formed = matches!(sign, Some(b'+') | Some(b'-'))
            && end > digits_start
            && out.get(end) == Some(&b'>');
        let offset = well_formed
            .then(|| {
                std::str::from_utf8(&out[digits_start..end])
                    .ok()?
                    .parse::<i64>()
                    .ok()
            })
            .flatten();
        match offset {
            Some(n) => {
                let delta = Duration::seconds(n);
                let t = if sign == Some(b'+') {
                    now + delta
                } else {
                    now - delta
                };
                let s = format_time(t);
                out.splice(start..=end, s.bytes());
                pos = start + s.len();
            }
            None => pos = start + 1,
        }
    }

    // 3. <FILE:path>
    let mut pos = 0;
    while let Some(start) = find(&out, b"<FILE:", pos) {
        let Some(end) = find(&out, b">", start + 6) else {
            break;
        };
        let path = String::from_utf8_lossy(&out[start + 6..end]).into_owned();
        let contents = std::fs::read(base_dir.join(&path))
            .map_err(|e| format!("cannot read <FILE:{path}>: {e}"))?;
        let trimmed = contents.trim_ascii().to_vec();
        out.splice(start..=end, trimmed.iter().copied());
        pos = start + trimmed.len();
    }
    Ok(out)
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut pos = 0;
    while let Some(p) = find(hay, needle, pos) {
        out.extend_from_slice(&hay[pos..p]);
        out.extend_from_slice(with);
        pos = p + needle.len();
    }
    out.extend_from_slice(&hay[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58).unwrap()
    }

    fn ex(s: &str) -> String {
        String::from_utf8(expand(s.as_bytes(), now(), Path::new(".")).unwrap()).unwrap()
    }

    #[test]
    fn time_macro_uses_one_reading_for_all_tokens() {
        assert_eq!(
            ex("52=<TIME>|122=<TIME>|"),
            "52=20240229-23:59:58|122=20240229-23:59:58|"
        );
    }

    #[test]
    fn time_offsets_cross_day_and_month_boundaries() {
        assert_eq!(ex("<TIME+10>"), "20240301-00:00:08");
        assert_eq!(ex("<TIME-1>"), "20240229-23:59:57");
        assert_eq!(ex("<TIME-121>"), "20240229-23:57:57");
        assert_eq!(
            ex("a<TIME+121>b<TIME>c"),
            "a20240301-00:01:59b20240229-23:59:58c"
        );
    }

    #[test]
    fn malformed_tokens_are_left_alone() {
        assert_eq!(ex("<TIME+>"), "<TIME+>");
        assert_eq!(ex("<TIME+x1>|<TIME-1>"), "<TIME+x1>|20240229-23:59:57");
        assert_eq!(ex("<TIME*1>"), "<TIME*1>");
        assert_eq!(ex("<DATE>"), "<DATE>");
        assert_eq!(ex("no macros"), "no macros");
    }

    #[test]
    fn file_macro_reads_trimmed_contents() {
        let dir = std::env::temp_dir().join(format!("fixgw-conf-macro-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("v.txt"), b"  HELLO\n").unwrap();
        let out = expand(b"112=<FILE:v.txt>|", now(), &dir).unwrap();
        assert_eq!(out, b"112=HELLO|");
        assert!(expand(b"<FILE:missing.txt>", now(), &dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
