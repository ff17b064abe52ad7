//! Comparison of an expected message with a received one (FORMAT.md §6) and
//! the `fields.fmt` value patterns.
//!
//! Both messages are split on SOH (trailing empty elements dropped, as Ruby's
//! `String#split` does). The field counts must be equal; fields are compared
//! positionally; tags must be byte-equal; values must be byte-equal unless
//! the tag has a pattern, in which case the *received* value must contain a
//! match of the regex (unanchored search) and the expected value is ignored.
//! Each field is split on its **first** `=` (the reference splits on every
//! `=`; no script relies on that).

use regex::bytes::Regex;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Per-tag value patterns, as in QuickFIX's `fields.fmt`.
#[derive(Clone)]
pub struct FieldPatterns {
    patterns: HashMap<Vec<u8>, Regex>,
}

impl fmt::Debug for FieldPatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut entries: Vec<(String, &str)> = self
            .patterns
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.as_str()))
            .collect();
        entries.sort();
        f.debug_map().entries(entries).finish()
    }
}

/// The built-in defaults, equal to the upstream `fields.fmt`.
const DEFAULT_FIELDS_FMT: &str = "10=\\d{3}\n\
42=\\d{8}-\\d{2}:\\d{2}:\\d{2}\n\
52=\\d{8}-\\d{2}:\\d{2}:\\d{2}|\\d{8}-\\d{2}:\\d{2}:\\d{2}[.]\\d{3}\n\
60=\\d{8}-\\d{2}:\\d{2}:\\d{2}\n\
122=\\d{8}-\\d{2}:\\d{2}:\\d{2}\n";

impl Default for FieldPatterns {
    fn default() -> Self {
        Self::parse(DEFAULT_FIELDS_FMT).expect("built-in patterns are valid")
    }
}

impl FieldPatterns {
    /// No patterns at all: every value is compared exactly.
    pub fn none() -> Self {
        FieldPatterns {
            patterns: HashMap::new(),
        }
    }

    /// Parses the `fields.fmt` format: one `tag=regex` per line (split on the
    /// first `=`). Empty lines and lines starting with `#` are ignored; a
    /// trailing CR is stripped.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut patterns = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (tag, re) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected tag=regex", i + 1))?;
            let regex = Regex::new(re)
                .map_err(|e| format!("line {}: bad regex for tag {tag}: {e}", i + 1))?;
            patterns.insert(tag.trim().as_bytes().to_vec(), regex);
        }
        Ok(FieldPatterns { patterns })
    }

    /// Reads and parses a `fields.fmt` file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The pattern for a tag (tag text compared byte-exactly), if any.
    pub fn get(&self, tag: &[u8]) -> Option<&Regex> {
        self.patterns.get(tag)
    }
}

/// Splits a message on SOH, dropping trailing empty elements.
pub fn split_fields(msg: &[u8]) -> Vec<&[u8]> {
    let mut fields: Vec<&[u8]> = msg.split(|b| *b == 0x01).collect();
    while fields.last().is_some_and(|f| f.is_empty()) {
        fields.pop();
    }
    fields
}

fn split_field(field: &[u8]) -> (&[u8], Option<&[u8]>) {
    match field.iter().position(|b| *b == b'=') {
        Some(p) => (&field[..p], Some(&field[p + 1..])),
        None => (field, None),
    }
}

/// Compares `expected` with `received`; `Err` carries a one-line reason
/// naming the first differing field (1-based position).
pub fn compare(expected: &[u8], received: &[u8], patterns: &FieldPatterns) -> Result<(), String> {
    let exp = split_fields(expected);
    let rec = split_fields(received);
    if exp.len() != rec.len() {
        return Err(format!(
            "message mismatch: expected {} fields, received {}",
            exp.len(),
            rec.len()
        ));
    }
    for (i, (e, r)) in exp.iter().zip(rec.iter()).enumerate() {
        let (etag, evalue) = split_field(e);
        let (rtag, rvalue) = split_field(r);
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if etag != rtag {
            return Err(format!(
                "message mismatch: field {}: expected tag {}, received tag {}",
                i + 1,
                s(etag),
                s(rtag)
            ));
        }
        match patterns.get(etag) {
            Some(re) => {
                if !re.is_match(rvalue.unwrap_or(b"")) {
                    return Err(format!(
                        "message mismatch: field {}: value {} of tag {} does not match /{}/",
                        i + 1,
                        s(rvalue.unwrap_or(b"")),
                        s(etag),
                        re.as_str()
                    ));
                }
            }
            None => {
                if evalue != rvalue {
                    return Err(format!(
                        "message mismatch: field {}: tag {}: expected value {}, received {}",
                        i + 1,
                        s(etag),
                        s(evalue.unwrap_or(b"")),
                        s(rvalue.unwrap_or(b""))
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soh(s: &str) -> Vec<u8> {
        s.replace('|', "\x01").into_bytes()
    }

    fn cmp(e: &str, r: &str) -> Result<(), String> {
        compare(&soh(e), &soh(r), &FieldPatterns::default())
    }

    #[test]
    fn equal_messages_match() {
        assert!(cmp("8=FIX.4.4|9=5|35=0|10=000|", "8=FIX.4.4|9=5|35=0|10=163|").is_ok());
    }

    #[test]
    fn patterned_fields_ignore_expected_value() {
        let e = "8=FIX.4.4|35=0|52=00000000-00:00:00.000|60=00000000-00:00:00|122=x|42=y|10=0|";
        let r = "8=FIX.4.4|35=0|52=20240101-12:00:00.123|60=20240101-12:00:00|122=20240101-12:00:00.456|42=20240101-12:00:00|10=077|";
        assert!(cmp(e, r).is_ok());
        // Seconds-only SendingTime matches too (alternation).
        assert!(cmp("52=x|", "52=20240101-12:00:00|").is_ok());
        // Unanchored: extra text around the match is fine.
        assert!(cmp("10=0|", "10=a1234b|").is_ok());
        // But no match fails.
        let err = cmp("10=0|", "10=12|").unwrap_err();
        assert!(err.contains("tag 10 does not match"), "{err}");
        assert!(cmp("52=x|", "52=2024-01-01|").is_err());
        assert!(cmp("52=x|", "52|").is_err());
    }

    #[test]
    fn other_fields_compare_exactly() {
        let err = cmp("35=0|34=2|", "35=0|34=3|").unwrap_err();
        assert!(
            err.contains("field 2: tag 34: expected value 2, received 3"),
            "{err}"
        );
        assert!(cmp("9=51|", "9=52|").is_err());
        assert!(
            cmp("58=a=b|", "58=a=c|").is_err(),
            "split on first '=' only"
        );
        assert!(cmp("58=a=b|", "58=a=b|").is_ok());
        assert!(cmp("112=|", "112=|").is_ok());
        assert!(cmp("112=|", "112|").is_err());
    }

    #[test]
    fn tags_compare_byte_exactly_and_positionally() {
        let err = cmp("34=2|", "034=2|").unwrap_err();
        assert!(err.contains("expected tag 34, received tag 034"), "{err}");
        assert!(cmp("49=A|56=B|", "56=B|49=A|").is_err());
    }

    #[test]
    fn field_counts_must_be_equal() {
        let err = cmp("35=0|34=2|", "35=0|34=2|112=X|").unwrap_err();
        assert!(err.contains("expected 2 fields, received 3"), "{err}");
        // Trailing empty elements are dropped on both sides.
        assert!(cmp("35=0|34=2|", "35=0|34=2||").is_ok());
        assert!(cmp("35=0|34=2", "35=0|34=2|").is_ok());
    }

    #[test]
    fn custom_patterns_file_format() {
        let p = FieldPatterns::parse("# comment\n\n34=^\\d+$\r\n").unwrap();
        assert!(compare(b"34=1\x01", b"34=77\x01", &p).is_ok());
        assert!(
            compare(b"52=1\x01", b"52=2\x01", &p).is_err(),
            "52 has no pattern now"
        );
        assert!(FieldPatterns::parse("nonsense").is_err());
        assert!(FieldPatterns::parse("10=(").is_err());
        let none = FieldPatterns::none();
        assert!(compare(b"10=000\x01", b"10=123\x01", &none).is_err());
    }

    #[test]
    fn shipped_fields_fmt_matches_builtin_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/quickfix-acceptance/fields.fmt");
        if let Ok(p) = FieldPatterns::from_file(&shipped) {
            assert_eq!(format!("{p:?}"), format!("{:?}", FieldPatterns::default()));
        }
    }
}
