//! Encodes outbound messages: the caller writes 35, header and body fields in
//! the order they must appear; `finish` prepends 8 and 9 in place (no copy of
//! the body) and appends 10.

use super::time::{format_utc, Precision, UtcNanos};
use super::SOH;

/// Bytes reserved in front of the body for `8=<BeginString><SOH>9=<len><SOH>`.
const PREFIX_RESERVE: usize = 40;
/// Longest BeginString the reserve allows (plus "8=", "9=", 10 digits, 2 SOH).
const MAX_BEGIN_STRING: usize = PREFIX_RESERVE - 16;

/// Length of `YYYYMMDD-HH:MM:SS`.
const SECONDS_TEXT: usize = 17;

/// A reusable message encoder. Allocation happens only while its buffer grows.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
    start: usize,
    /// The last whole second formatted by `field_time` and its text: the
    /// timestamps of one message (52, 60) nearly always share it, and
    /// calendar arithmetic costs more than the rest of the field.
    time_cache: Option<(i64, [u8; SECONDS_TEXT])>,
}

impl Encoder {
    /// A new encoder with a buffer sized for typical messages.
    pub fn new() -> Encoder {
        Encoder {
            buf: Vec::with_capacity(512),
            start: 0,
            time_cache: None,
        }
    }

    /// Starts a message of type `msg_type`, discarding anything written before.
    pub fn start(&mut self, msg_type: &[u8]) -> &mut Self {
        self.buf.clear();
        self.buf.resize(PREFIX_RESERVE, 0);
        self.field(35, msg_type)
    }

    /// Appends `tag=value<SOH>`.
    pub fn field(&mut self, tag: i32, value: &[u8]) -> &mut Self {
        self.buf.reserve(value.len() + 13);
        push_tag(&mut self.buf, tag);
        self.buf.extend_from_slice(value);
        self.buf.push(SOH);
        self
    }

    /// Appends a text field.
    pub fn field_str(&mut self, tag: i32, value: &str) -> &mut Self {
        self.field(tag, value.as_bytes())
    }

    /// Appends an integer field.
    pub fn field_int(&mut self, tag: i32, value: i64) -> &mut Self {
        // "-2147483648=" + "-9223372036854775808" + SOH, written in one go.
        let mut out = [0u8; 12 + 20 + 1];
        let mut n = write_tag(&mut out, tag);
        n += write_i64(&mut out[n..], value);
        out[n] = SOH;
        push_prefix(&mut self.buf, &out, n + 1);
        self
    }

    /// Appends a UTCTimestamp field.
    pub fn field_time(&mut self, tag: i32, t: UtcNanos, precision: Precision) -> &mut Self {
        let secs = t.div_euclid(1_000_000_000);
        let text = match self.time_cache {
            Some((cached, text)) if cached == secs => text,
            _ => {
                // The whole-second text is `format_utc`'s own output.
                let at = self.buf.len();
                format_utc(t, Precision::Seconds, &mut self.buf);
                let mut text = [0u8; SECONDS_TEXT];
                text.copy_from_slice(&self.buf[at..]);
                self.buf.truncate(at);
                self.time_cache = Some((secs, text));
                text
            }
        };
        let digits = match precision {
            Precision::Seconds => 0,
            Precision::Millis => 3,
            Precision::Micros => 6,
            Precision::Nanos => 9,
        };
        let mut out = [0u8; 12 + SECONDS_TEXT + 10 + 1];
        let mut n = write_tag(&mut out, tag);
        out[n..n + SECONDS_TEXT].copy_from_slice(&text);
        n += SECONDS_TEXT;
        if digits > 0 {
            out[n] = b'.';
            let mut frac = t.rem_euclid(1_000_000_000) as u32 / 10u32.pow(9 - digits);
            for i in (n + 1..=n + digits as usize).rev() {
                out[i] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            n += 1 + digits as usize;
        }
        out[n] = SOH;
        push_prefix(&mut self.buf, &out, n + 1);
        self
    }

    /// Appends a field whose value is written by `f` (decimals, etc.).
    pub fn field_with(&mut self, tag: i32, f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        push_tag(&mut self.buf, tag);
        f(&mut self.buf);
        self.buf.push(SOH);
        self
    }

    /// Appends already-encoded `tag=value<SOH>` fields.
    pub fn raw(&mut self, fields: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(fields);
        self
    }

    /// Writes 8 and 9 in front of the body and 10 after it; returns the
    /// complete message. Panics only if `begin_string` is absurdly long,
    /// which is a configuration error caught at start-up.
    pub fn finish(&mut self, begin_string: &[u8]) -> &[u8] {
        assert!(
            begin_string.len() <= MAX_BEGIN_STRING,
            "BeginString too long"
        );
        let body_len = self.buf.len() - PREFIX_RESERVE;
        let mut prefix = [0u8; PREFIX_RESERVE];
        let mut n = 0;
        for &b in b"8=".iter().chain(begin_string).chain(&[SOH, b'9', b'=']) {
            prefix[n] = b;
            n += 1;
        }
        n += write_u64(&mut prefix[n..], body_len as u64);
        prefix[n] = SOH;
        n += 1;
        self.start = PREFIX_RESERVE - n;
        self.buf[self.start..PREFIX_RESERVE].copy_from_slice(&prefix[..n]);
        let sum = checksum(&self.buf[self.start..]);
        self.buf.extend_from_slice(b"10=");
        self.buf.push(b'0' + sum / 100);
        self.buf.push(b'0' + sum / 10 % 10);
        self.buf.push(b'0' + sum % 10);
        self.buf.push(SOH);
        &self.buf[self.start..]
    }

    /// The message produced by the last `finish`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Sum of bytes modulo 256 (the FIX CheckSum).
pub fn checksum(bytes: &[u8]) -> u8 {
    // Summing in u32 chunks lets the compiler vectorise the loop.
    let mut total: u32 = 0;
    for chunk in bytes.chunks(4096) {
        total = total.wrapping_add(chunk.iter().map(|&b| u32::from(b)).sum::<u32>());
    }
    (total % 256) as u8
}

/// "00" to "99": two digits per division halves the divisions.
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `v` at the front of `out`; returns the number of digits.
#[inline]
fn write_u64(out: &mut [u8], mut v: u64) -> usize {
    // Tags and most integer values have one to three digits.
    if v < 10 {
        out[0] = b'0' + v as u8;
        return 1;
    }
    if v < 100 {
        let pair = v as usize * 2;
        out[..2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        return 2;
    }
    if v < 1000 {
        let pair = (v % 100) as usize * 2;
        out[0] = b'0' + (v / 100) as u8;
        out[1..3].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        return 3;
    }
    let n = v.ilog10() as usize + 1;
    let mut i = n;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        out[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        out[..2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        out[0] = b'0' + v as u8;
    }
    n
}

/// Writes `v` at the front of `out` (at least 20 bytes); returns its length.
#[inline]
fn write_i64(out: &mut [u8], v: i64) -> usize {
    let sign = usize::from(v < 0);
    out[0] = b'-';
    sign + write_u64(&mut out[sign..], v.unsigned_abs())
}

/// Writes `tag=` at the front of `out` (at least 12 bytes); returns its length.
#[inline]
fn write_tag(out: &mut [u8], tag: i32) -> usize {
    let n = write_i64(out, i64::from(tag));
    out[n] = b'=';
    n + 1
}

/// Appends the first `n` bytes of `out`. Copying the whole fixed-size array
/// and truncating compiles to a few moves; a variable-length copy of a few
/// bytes would be a call to `memcpy`.
#[inline]
fn push_prefix<const N: usize>(buf: &mut Vec<u8>, out: &[u8; N], n: usize) {
    let len = buf.len();
    buf.extend_from_slice(out);
    buf.truncate(len + n);
}

/// Appends `tag=`.
#[inline]
fn push_tag(buf: &mut Vec<u8>, tag: i32) {
    let mut out = [0u8; 12];
    let n = write_tag(&mut out, tag);
    push_prefix(buf, &out, n);
}

/// Appends a decimal integer.
pub fn push_int(buf: &mut Vec<u8>, v: i64) {
    let mut out = [0u8; 20];
    let n = write_i64(&mut out, v);
    push_prefix(buf, &out, n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_length_and_checksum() {
        let mut e = Encoder::new();
        e.start(b"0")
            .field_int(34, 2)
            .field(49, b"ISLD")
            .field(52, b"20040503-17:56:01.000")
            .field(56, b"TW44");
        let out = e.finish(b"FIX.4.4").to_vec();
        let s = String::from_utf8(out.clone()).unwrap().replace('\x01', "|");
        assert!(s.starts_with("8=FIX.4.4|9=51|35=0|34=2|49=ISLD|"), "{s}");
        let body_start = s.find("35=").unwrap();
        let ten = s.rfind("10=").unwrap();
        assert_eq!(ten - body_start, 51);
        assert_eq!(
            &s[ten + 3..ten + 6],
            format!("{:03}", checksum(&out[..ten])).as_str()
        );
    }

    #[test]
    fn integers_match_std_formatting() {
        let mut cases = vec![i64::MIN, i64::MAX, i64::MIN + 1, -1, 0, 1];
        let mut p = 1i64;
        for _ in 0..18 {
            cases.extend([p - 1, p, p + 1, -p, -(p - 1), -(p + 1)]);
            p *= 10;
        }
        for v in cases {
            let mut buf = Vec::new();
            push_int(&mut buf, v);
            assert_eq!(buf, v.to_string().into_bytes(), "{v}");
            let mut e = Encoder::new();
            e.start(b"0");
            let at = e.buf.len();
            let tag = v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            e.field_int(tag, v);
            assert_eq!(e.buf[at..], format!("{tag}={v}\x01").into_bytes()[..]);
        }
    }

    #[test]
    fn cached_timestamps_match_format_utc() {
        use crate::fix::time::format_utc_string;
        let mut e = Encoder::new();
        let base: i64 = 1_710_513_015_123_456_789;
        let times = [
            base,
            base + 1,
            base + 876_543_210,
            base + 876_543_211,
            base - 1,
            0,
            -1,
            -1_000_000_000,
            -1_000_000_001,
            i64::MIN,
            i64::MAX,
            base,
        ];
        for p in [
            Precision::Seconds,
            Precision::Millis,
            Precision::Micros,
            Precision::Nanos,
        ] {
            for &t in &times {
                e.start(b"0");
                let at = e.buf.len();
                e.field_time(52, t, p);
                let want = format!("52={}\x01", format_utc_string(t, p));
                assert_eq!(String::from_utf8_lossy(&e.buf[at..]), want, "{t} {p:?}");
            }
        }
    }

    #[test]
    fn negative_tags_and_ints() {
        let mut e = Encoder::new();
        e.start(b"3").field_int(371, -1).field_int(-1, -42);
        let s = String::from_utf8(e.finish(b"FIX.4.4").to_vec()).unwrap();
        assert!(s.contains("\x01371=-1\x01-1=-42\x01"));
    }
}
