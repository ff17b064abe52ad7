//! Zero-copy tag=value parsing with nom: a message body is split into
//! [`FieldSpan`]s (tag plus byte range) that borrow nothing but offsets into
//! the receive buffer. Framing checks (BodyLength, CheckSum) live in the codec.

use nom::bytes::complete::tag as nom_tag;
use nom::character::complete::char as nom_char;
use nom::combinator::opt;
use nom::sequence::terminated;
use nom::IResult;

use super::message::FieldSpan;
use super::SOH;

/// Why a byte sequence is not a well-formed sequence of FIX fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A tag was not a (possibly negative) decimal integer, or had no `=`.
    #[error("malformed field at byte {offset}")]
    MalformedField {
        /// Offset of the field's first byte.
        offset: usize,
    },
    /// The last field was not terminated by SOH.
    #[error("unterminated field at byte {offset}")]
    Unterminated {
        /// Offset of the field's first byte.
        offset: usize,
    },
    /// The message did not start with 8, 9, 35.
    #[error("first three fields must be 8, 9, 35")]
    BadHeaderStart,
    /// The message did not end with 10.
    #[error("last field must be 10 (CheckSum)")]
    BadTrailer,
    /// More fields than the configured limit.
    #[error("too many fields")]
    TooManyFields,
}

/// Upper bound on the number of fields in one message.
pub const MAX_FIELDS: usize = 4096;

/// Parses a tag: an optional `-` then decimal digits, fitting an `i32`.
fn tag_number(input: &[u8]) -> IResult<&[u8], i32> {
    let (rest, minus) = opt(nom_char('-'))(input)?;
    let (rest, digits) = nom::character::complete::digit1(rest)?;
    if digits.len() > 9 {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::TooLarge,
        )));
    }
    let mut n: i32 = 0;
    for &d in digits {
        n = n * 10 + i32::from(d - b'0');
    }
    Ok((rest, if minus.is_some() { -n } else { n }))
}

/// Parses the value up to (not including) the next SOH, then the SOH.
fn value(input: &[u8]) -> IResult<&[u8], &[u8]> {
    match memchr::memchr(SOH, input) {
        Some(i) => Ok((&input[i + 1..], &input[..i])),
        None => Err(nom::Err::Incomplete(nom::Needed::Unknown)),
    }
}

/// Parses one `tag=value<SOH>` field.
pub fn field(input: &[u8]) -> IResult<&[u8], (i32, &[u8])> {
    let (rest, tag) = terminated(tag_number, nom_tag(&b"="[..]))(input)?;
    let (rest, v) = value(rest)?;
    Ok((rest, (tag, v)))
}

/// Splits `buf` into fields, appending them to `out` (which is cleared first).
/// Offsets are relative to `buf`. Does not check which tags appear where.
pub fn parse_fields(buf: &[u8], out: &mut Vec<FieldSpan>) -> Result<(), ParseError> {
    out.clear();
    let mut rest = buf;
    while !rest.is_empty() {
        let offset = buf.len() - rest.len();
        if out.len() >= MAX_FIELDS {
            return Err(ParseError::TooManyFields);
        }
        match field(rest) {
            Ok((next, (tag, v))) => {
                let start = (v.as_ptr() as usize - buf.as_ptr() as usize) as u32;
                out.push(FieldSpan {
                    tag,
                    start,
                    end: start + v.len() as u32,
                });
                rest = next;
            }
            Err(nom::Err::Incomplete(_)) => return Err(ParseError::Unterminated { offset }),
            Err(_) => return Err(ParseError::MalformedField { offset }),
        }
    }
    Ok(())
}

/// Parses a complete message: fields as [`parse_fields`], plus the structural
/// rules every FIX message obeys (8, 9, 35 first; 10 last).
pub fn parse_message(buf: &[u8], out: &mut Vec<FieldSpan>) -> Result<(), ParseError> {
    parse_fields(buf, out)?;
    if out.len() < 4 || out[0].tag != 8 || out[1].tag != 9 || out[2].tag != 35 {
        return Err(ParseError::BadHeaderStart);
    }
    if out[out.len() - 1].tag != 10 {
        return Err(ParseError::BadTrailer);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(s: &str) -> Vec<u8> {
        s.replace('|', "\x01").into_bytes()
    }

    #[test]
    fn parses_fields_with_offsets() {
        let b = fix("8=FIX.4.4|9=5|35=0|10=000|");
        let mut v = Vec::new();
        parse_message(&b, &mut v).unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[2].tag, 35);
        assert_eq!(&b[v[2].start as usize..v[2].end as usize], b"0");
    }

    #[test]
    fn accepts_negative_and_zero_tags() {
        let b = fix("-1=HI|0=X|");
        let mut v = Vec::new();
        parse_fields(&b, &mut v).unwrap();
        assert_eq!(v[0].tag, -1);
        assert_eq!(v[1].tag, 0);
    }

    #[test]
    fn rejects_garbled_tag_and_missing_soh() {
        let mut v = Vec::new();
        assert!(matches!(
            parse_fields(&fix("4garbled9=TW|"), &mut v),
            Err(ParseError::MalformedField { offset: 0 })
        ));
        assert!(matches!(
            parse_fields(b"35=0", &mut v),
            Err(ParseError::Unterminated { .. })
        ));
        assert!(matches!(
            parse_fields(&fix("=x|"), &mut v),
            Err(ParseError::MalformedField { .. })
        ));
    }

    #[test]
    fn empty_value_is_a_field() {
        let mut v = Vec::new();
        parse_fields(&fix("112=|"), &mut v).unwrap();
        assert_eq!(v[0].start, v[0].end);
    }

    #[test]
    fn header_order_enforced() {
        let mut v = Vec::new();
        assert_eq!(
            parse_message(&fix("35=0|8=FIX.4.4|9=5|10=000|"), &mut v),
            Err(ParseError::BadHeaderStart)
        );
        assert_eq!(
            parse_message(&fix("8=FIX.4.4|9=5|34=3|35=0|10=000|"), &mut v),
            Err(ParseError::BadHeaderStart)
        );
        assert_eq!(
            parse_message(&fix("8=FIX.4.4|9=5|35=0|34=1|"), &mut v),
            Err(ParseError::BadTrailer)
        );
    }
}
