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
///
/// This is the hot path of every inbound message, so it is a hand-written
/// pass rather than the [`field`] combinator; both accept exactly the same
/// inputs (a property test and the `parser` fuzz target check it). The
/// frame is scanned for SOH eight bytes at a time (one word test marks every
/// SOH of the word, however many values end there), and each SOH closes the
/// field that started after the previous one: the field's tag is read from
/// its first word. Values are never scanned byte by byte.
///
/// The common message (tags of one to four digits, fewer fields than the
/// limit can reach) is split by a loop that knows nothing else; the first
/// field it cannot split, and everything after it, goes through the general
/// loop.
pub fn parse_fields(buf: &[u8], out: &mut Vec<FieldSpan>) -> Result<(), ParseError> {
    out.clear();
    // Offsets are u32; a longer buffer cannot be a message (the codec caps
    // messages far below this).
    if buf.len() > u32::MAX as usize {
        return Err(ParseError::TooManyFields);
    }
    // A field takes three bytes at least (`0=<SOH>`): a buffer of up to
    // 3 * MAX_FIELDS bytes cannot hold more fields than the limit.
    let resume = if buf.len() <= 3 * MAX_FIELDS {
        match split_common(buf, out) {
            None => return Ok(()),
            Some(field_start) => field_start,
        }
    } else {
        0
    };
    split_any(buf, out, resume)
}

/// The fields of `buf` while their tags have one to four digits; returns
/// the offset of the first field it does not split (a longer or malformed
/// tag, a last field without SOH), None when every field is in `out`.
///
/// The SOHs are found 64 bytes at a time, one bit per byte
/// ([`soh_bits`]); each closes the field that started after the previous
/// one, whose tag is read from its first word.
#[inline(always)]
fn split_common(buf: &[u8], out: &mut Vec<FieldSpan>) -> Option<usize> {
    let (blocks, rest) = buf.as_chunks::<64>();
    let mut field_start = 0;
    // Splits the fields whose SOHs are the set bits of `sohs` (bit k: byte
    // `base + k`); false at a field it does not split (at `field_start`).
    let mut fields_ending = |mut sohs: u64, base: usize| {
        while sohs != 0 {
            let soh = base + sohs.trailing_zeros() as usize;
            sohs &= sohs - 1;
            let Some((tag, digits)) = word_at(buf, field_start).and_then(short_tag) else {
                return false;
            };
            // The SOH is neither a digit nor `=`, so the value starts at
            // or before it.
            out.push(FieldSpan {
                tag,
                start: (field_start + digits + 1) as u32,
                end: soh as u32,
            });
            field_start = soh + 1;
        }
        true
    };
    let mut base = 0;
    for block in blocks {
        if !fields_ending(soh_bits(block), base) {
            return Some(field_start);
        }
        base += 64;
    }
    if !rest.is_empty() {
        let sohs = match buf.last_chunk::<64>() {
            // The buffer's last 64 bytes, those already split shifted out.
            Some(last) => soh_bits(last) >> (64 - rest.len()),
            None => {
                // A short buffer, followed by zeros (not SOH).
                let mut block = [0; 64];
                block[..rest.len()].copy_from_slice(rest);
                soh_bits(&block)
            }
        };
        if !fields_ending(sohs, base) {
            return Some(field_start);
        }
    }
    (field_start < buf.len()).then_some(field_start)
}

/// The SOHs of a 64-byte block, one bit per byte (bit k for byte k): SSE2
/// compares and byte masks, 16 bytes at a time (`safe_arch` wraps the
/// intrinsics, so this crate has no `unsafe`).
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
#[inline(always)]
fn soh_bits(block: &[u8; 64]) -> u64 {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    let soh = set_splat_i8_m128i(SOH as i8);
    let (chunks, _) = block.as_chunks::<16>();
    chunks.iter().enumerate().fold(0, |bits, (k, chunk)| {
        let mask = move_mask_i8_m128i(cmp_eq_mask_i8_m128i(load_unaligned_m128i(chunk), soh));
        bits | u64::from(mask as u16) << (16 * k)
    })
}

/// [`soh_bits`] eight bytes at a time with integer operations, for targets
/// without SSE2 (and to check the SSE2 version against).
#[cfg_attr(
    all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse2"
    ),
    allow(dead_code)
)]
#[cfg_attr(
    not(all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse2"
    )),
    inline(always)
)]
fn soh_bits_swar(block: &[u8; 64]) -> u64 {
    let (words, _) = block.as_chunks::<8>();
    words.iter().enumerate().fold(0, |bits, (k, word)| {
        let marks = zero_bytes(u64::from_le_bytes(*word) ^ ONES);
        // The marks (bit 7 of each byte) gathered into the top byte: every
        // partial product lands on its own bit, so nothing carries.
        let byte = (marks >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        bits | byte << (8 * k)
    })
}

#[cfg(not(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
)))]
use soh_bits_swar as soh_bits;

/// The fields of `buf` from the one at `field_start` on (those before it
/// are in `out`), whatever the input: tags of any length, the field limit,
/// and the error of the first field that is not one.
#[inline(never)]
fn split_any(
    buf: &[u8],
    out: &mut Vec<FieldSpan>,
    mut field_start: usize,
) -> Result<(), ParseError> {
    let mut word_start = field_start;
    while word_start < buf.len() {
        let mut marks = soh_marks(buf, word_start);
        while marks != 0 {
            let soh = word_start + (marks.trailing_zeros() / 8) as usize;
            marks &= marks - 1;
            if out.len() >= MAX_FIELDS {
                return Err(ParseError::TooManyFields);
            }
            let Some((tag, eq)) = tag_and_equals(buf, field_start) else {
                return Err(ParseError::MalformedField {
                    offset: field_start,
                });
            };
            // The SOH is neither a digit nor `=`, so `eq < soh`.
            out.push(FieldSpan {
                tag,
                start: eq as u32 + 1,
                end: soh as u32,
            });
            field_start = soh + 1;
        }
        word_start += 8;
    }
    if field_start < buf.len() {
        // A last field without SOH.
        if out.len() >= MAX_FIELDS {
            return Err(ParseError::TooManyFields);
        }
        let offset = field_start;
        return Err(match tag_and_equals(buf, field_start) {
            Some(_) => ParseError::Unterminated { offset },
            None => ParseError::MalformedField { offset },
        });
    }
    Ok(())
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOWS: u64 = 0x7F7F_7F7F_7F7F_7F7F;

/// The high bit of every byte of `x` that is zero, and nothing else (no
/// borrow crosses bytes, so, unlike the classic has-zero test, every mark is
/// exact, not only the first).
#[inline(always)]
pub(super) fn zero_bytes(x: u64) -> u64 {
    !(((x & LOWS) + LOWS) | x | LOWS)
}

/// Marks (high bit of the byte) of the SOHs among the eight bytes at `i`,
/// or among the fewer than eight left.
#[inline(always)]
pub(crate) fn soh_marks(buf: &[u8], i: usize) -> u64 {
    match buf.get(i..i + 8) {
        Some(word) => zero_bytes(le_word(word) ^ ONES),
        None => tail_soh_marks(buf, i),
    }
}

/// [`soh_marks`] for the last one to seven bytes of `buf`, from `i`.
#[inline(never)]
fn tail_soh_marks(buf: &[u8], i: usize) -> u64 {
    let rest = buf.len().saturating_sub(i);
    match buf.len().checked_sub(8) {
        // The buffer's last word, its bytes before `i` shifted out.
        Some(last) => zero_bytes(le_word(&buf[last..]) ^ ONES) >> (8 * (8 - rest)),
        None => buf[i.min(buf.len())..]
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == SOH)
            .fold(0, |marks, (k, _)| marks | 0x80 << (8 * k)),
    }
}

/// The first eight bytes of `bytes` (at least eight), little-endian.
#[inline(always)]
fn le_word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// The eight bytes at `i` as a little-endian word; when fewer than eight
/// are left, those followed by zero bytes (neither digits nor `=`). None
/// when the buffer is shorter than a word.
#[inline(always)]
fn word_at(buf: &[u8], i: usize) -> Option<u64> {
    // Compared with the last word's start (not `i + 8` with the buffer's
    // length), the bounds of the slice below are known to hold.
    let last = buf.len().checked_sub(8)?;
    if i <= last {
        Some(le_word(&buf[i..i + 8]))
    } else {
        le_word(&buf[last..]).checked_shr(u32::try_from(8 * (i - last)).ok()?)
    }
}

/// A tag of one to four digits followed by `=` at the start of `word`:
/// the tag and its number of digits.
///
/// The digits are converted without a branch per digit (tag lengths vary
/// from field to field, so a digit loop mispredicts its exit), in 32-bit
/// arithmetic (immediate constants): the digits are moved to the top of the
/// low four bytes (leading zeros below), then combined pairwise: 4 x 1 digit
/// -> 2 x 2 -> 1 x 4.
#[inline(always)]
fn short_tag(word: u64) -> Option<(i32, usize)> {
    // Digits become 0..=9. A byte is not a digit when it is above 9 after
    // that (adding 0x76 sets its high bit) or has the high bit already.
    // Carries only leave non-digits, so the lowest mark is exact.
    let d = word as u32 ^ 0x3030_3030;
    let non_digits = (d.wrapping_add(0x7676_7676) | d) & 0x8080_8080;
    // Four digits (no mark: 32 trailing zeros): `=` must be the fifth byte.
    let digits = (non_digits.trailing_zeros() / 8) as usize;
    if digits == 0 || (word >> (8 * digits)) as u8 != b'=' {
        return None;
    }
    let d = d << (32 - 8 * digits);
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00FF_00FF;
    let tag = (d.wrapping_mul(100) + (d >> 16)) & 0xFFFF;
    Some((tag as i32, digits))
}

/// Reads `-?[0-9]{1,9}=` at `i`; returns the tag and the index of the `=`.
/// A tag of up to four digits is read with [`short_tag`]; a sign, a longer
/// tag or a malformed field take the digit loop, which decides.
#[inline(always)]
fn tag_and_equals(buf: &[u8], i: usize) -> Option<(i32, usize)> {
    match word_at(buf, i).and_then(short_tag) {
        Some((tag, digits)) => Some((tag, i + digits)),
        None => tag_digit_loop(buf, i),
    }
}

/// [`tag_and_equals`] one byte at a time.
#[inline(never)]
fn tag_digit_loop(buf: &[u8], mut i: usize) -> Option<(i32, usize)> {
    let negative = buf.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let digits_start = i;
    let mut n: i32 = 0;
    while let Some(&d) = buf.get(i) {
        if !d.is_ascii_digit() {
            break;
        }
        if i - digits_start == 9 {
            return None;
        }
        n = n * 10 + i32::from(d - b'0');
        i += 1;
    }
    if i == digits_start || buf.get(i) != Some(&b'=') {
        return None;
    }
    Some((if negative { -n } else { n }, i))
}

/// The same split as [`parse_fields`], done one field at a time with the nom
/// [`field`] combinator. Slower; it is the oracle the fast splitter is checked
/// against (unit tests and the `parser` fuzz target).
pub fn parse_fields_nom(buf: &[u8]) -> Result<Vec<FieldSpan>, ParseError> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let offset = buf.len() - rest.len();
        if out.len() >= MAX_FIELDS {
            return Err(ParseError::TooManyFields);
        }
        match field(rest) {
            Ok((next, (tag, v))) => {
                let start = (v.as_ptr() as usize - buf.as_ptr() as usize) as u32;
                let end = start + v.len() as u32;
                out.push(FieldSpan { tag, start, end });
                rest = next;
            }
            Err(nom::Err::Incomplete(_)) => return Err(ParseError::Unterminated { offset }),
            Err(_) => return Err(ParseError::MalformedField { offset }),
        }
    }
    Ok(out)
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

    fn fast(buf: &[u8]) -> Result<Vec<FieldSpan>, ParseError> {
        let mut out = Vec::new();
        parse_fields(buf, &mut out).map(|()| out)
    }

    #[test]
    fn edge_cases_match_the_combinator_parser() {
        for s in [
            "",
            "=",
            "-=1|",
            "-|",
            "-",
            "1",
            "1=",
            "1=|",
            "123456789=x|",
            "1234567890=x|",
            "-123456789=x|",
            "0000000001=x|",
            "000000001=x|",
            "1=a=b|2=|",
            "1=abcdefghijklmnop|",
            "1=abcdefghijklmnop",
            "12=x|3",
            "12=x|3=",
            "8=FIX.4.4|9=5|35=0|10=000|",
            "+1=x|",
            "1 =x|",
            "--1=x|",
            // Eight bytes and more: the word-at-a-time path.
            "1234567=|12345678=x|",
            "1234567=x|9=123456|",
            "12=456|=|8=FIX.4.4|",
            "12=4567|89=0123456789abcdef|",
            "0000001=x|00000001=y|",
            "-123=xy|1=2=3=4=5|",
            "35=D|54=1|55=IBM|10=000|",
            "1=|2=|3=|4=|5=|",
            "12a=xyz|1=x|",
            "12=xyz|12|=abc|",
            "9=12345678",
            "9=1234567|",
            "12=ab\u{80}cd|\u{ff}=x|",
            // SOHs next to NUL bytes (a borrow-based zero test would mark
            // the byte after an SOH), several SOHs in one word, and tails
            // of one to seven bytes after the last full word.
            "1=\u{0}|\u{0}1=|2=x|",
            "1=|2=|\u{0}|",
            "1=a|2=b|3=c|4=d|5=e|",
            "1=abcdefghijklmnopqrstuvwxyz0123456789|2=x|",
            "1=abcdefgh|2=x",
            "1=abcdefgh|22=",
            "1=abcdefgh|2=x|",
            "1=abcdefg|2=x||",
            "|",
            "1=|",
            // Tags of four digits (the longest of the common loop), five
            // to nine (the general loop after it), and fields in the last
            // word of the buffer.
            "1234=x|",
            "0000=x|00001=y|",
            "9999=|12345=x|1=y|",
            "5000=a|10000=b|123456=c|1234567=d|",
            "1=abcdefgh|1234=",
            "1=abcdefgh|1234",
            "1=abcdefgh|12=x|",
            "1=abcdefgh|12=|",
            "1=abcdefgh|-1=x|",
            "1=x|2=y|3=z|45=",
        ] {
            let b = fix(s);
            assert_eq!(fast(&b), parse_fields_nom(&b), "{s:?}");
        }
    }

    #[test]
    fn matches_the_combinator_parser_on_arbitrary_input() {
        use proptest::prelude::*;
        // Bytes biased towards the ones that matter to the grammar.
        let byte = prop_oneof![
            4 => prop::sample::select(b"0123456789=-\x01".to_vec()),
            1 => any::<u8>(),
        ];
        proptest!(|(data in proptest::collection::vec(byte, 0..300))| {
            prop_assert_eq!(fast(&data), parse_fields_nom(&data));
        });
    }

    #[test]
    fn soh_bits_mark_every_soh_and_nothing_else() {
        use proptest::prelude::*;
        let byte = prop_oneof![3 => Just(SOH), 1 => Just(0u8), 1 => Just(0x81u8), 4 => any::<u8>()];
        proptest!(|(data in proptest::collection::vec(byte, 64))| {
            let block: [u8; 64] = data[..].try_into().unwrap();
            let want = (0..64).filter(|&k| block[k] == SOH).fold(0u64, |bits, k| bits | 1 << k);
            prop_assert_eq!(soh_bits(&block), want);
            prop_assert_eq!(soh_bits_swar(&block), want);
        });
    }

    #[test]
    fn too_many_fields() {
        let b = "1=x|".repeat(MAX_FIELDS + 1);
        assert_eq!(fast(&fix(&b)), Err(ParseError::TooManyFields));
        assert_eq!(fast(&fix(&b[4..])).map(|v| v.len()), Ok(MAX_FIELDS));
        // The shortest fields at the length where the common loop hands over.
        let b = "1=|".repeat(MAX_FIELDS + 1);
        assert_eq!(fast(&fix(&b[3..])).map(|v| v.len()), Ok(MAX_FIELDS));
        assert_eq!(fast(&fix(&b)), Err(ParseError::TooManyFields));
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
