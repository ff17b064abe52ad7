//! Encodes outbound messages: the caller writes 35, header and body fields in
//! the order they must appear; `finish` prepends 8 and 9 in place (no copy of
//! the body) and appends 10.

use super::time::{format_utc, Precision, UtcNanos};
use super::SOH;

/// Bytes reserved in front of the body for `8=<BeginString><SOH>9=<len><SOH>`.
const PREFIX_RESERVE: usize = 40;
/// Longest BeginString the reserve allows (plus "8=", "9=", 10 digits, 2 SOH).
const MAX_BEGIN_STRING: usize = PREFIX_RESERVE - 16;

/// A reusable message encoder. Allocation happens only while its buffer grows.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
    start: usize,
}

impl Encoder {
    /// A new encoder with a buffer sized for typical messages.
    pub fn new() -> Encoder {
        Encoder {
            buf: Vec::with_capacity(512),
            start: 0,
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
        push_int(&mut self.buf, i64::from(tag));
        self.buf.push(b'=');
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
        push_int(&mut self.buf, i64::from(tag));
        self.buf.push(b'=');
        push_int(&mut self.buf, value);
        self.buf.push(SOH);
        self
    }

    /// Appends a UTCTimestamp field.
    pub fn field_time(&mut self, tag: i32, t: UtcNanos, precision: Precision) -> &mut Self {
        push_int(&mut self.buf, i64::from(tag));
        self.buf.push(b'=');
        format_utc(t, precision, &mut self.buf);
        self.buf.push(SOH);
        self
    }

    /// Appends a field whose value is written by `f` (decimals, etc.).
    pub fn field_with(&mut self, tag: i32, f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        push_int(&mut self.buf, i64::from(tag));
        self.buf.push(b'=');
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
        let mut digits = [0u8; 20];
        let dl = write_u64(&mut digits, body_len as u64);
        prefix[n..n + dl].copy_from_slice(&digits[20 - dl..]);
        n += dl;
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

/// Writes `v` right-aligned into `out`; returns the number of digits.
fn write_u64(out: &mut [u8; 20], mut v: u64) -> usize {
    let mut i = 20;
    loop {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return 20 - i;
        }
    }
}

/// Appends a decimal integer.
pub fn push_int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    let mut digits = [0u8; 20];
    let n = write_u64(&mut digits, v.unsigned_abs());
    buf.extend_from_slice(&digits[20 - n..]);
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
    fn negative_tags_and_ints() {
        let mut e = Encoder::new();
        e.start(b"3").field_int(371, -1).field_int(-1, -42);
        let s = String::from_utf8(e.finish(b"FIX.4.4").to_vec()).unwrap();
        assert!(s.contains("\x01371=-1\x01-1=-42\x01"));
    }
}
