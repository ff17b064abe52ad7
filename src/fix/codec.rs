//! Framing: cuts FIX messages out of a TCP byte stream the way QuickFIX does,
//! and drops garbled frames (wrong BodyLength or CheckSum) silently.
//!
//! A frame starts at `8=`, its body is `BodyLength` bytes after the `9=`
//! field, and it ends at the SOH after the first `<SOH>10=` found at or after
//! the declared end of the body. So a too-long BodyLength swallows whatever
//! follows up to the next checksum field (scenario 2m), and nothing inside a
//! discarded span is re-scanned.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem;
use tokio_util::codec::{Decoder, Encoder as CodecEncoder};

use super::encoder::checksum;
use super::message::parse_u64;
use super::parser::soh_marks;
use super::SOH;

/// Default limit on one message's size in bytes (`MaxMessageSize`).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// Errors that end a connection (as opposed to garbled frames, which are skipped).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Socket error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A frame larger than the configured maximum.
    #[error("message of {size} bytes exceeds MaxMessageSize {max}")]
    TooLarge {
        /// Declared or buffered size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbled {
    /// BodyLength (9) did not match the body.
    BodyLength,
    /// CheckSum (10) did not match the bytes.
    CheckSum,
    /// BodyLength was not a number.
    BadLengthField,
}

/// Framing codec for FIX over a byte stream.
#[derive(Debug, Clone)]
pub struct FixCodec {
    max_message_size: usize,
    validate_length_and_checksum: bool,
    /// Frames dropped as garbled since creation (for logs and metrics).
    pub garbled: u64,
    /// Why the last frame was dropped.
    pub last_garbled: Option<Garbled>,
}

impl Default for FixCodec {
    fn default() -> Self {
        FixCodec::new(DEFAULT_MAX_MESSAGE_SIZE, true)
    }
}

impl FixCodec {
    /// A codec with a size limit; `validate` = QuickFIX's ValidateLengthAndChecksum.
    pub fn new(max_message_size: usize, validate: bool) -> FixCodec {
        FixCodec {
            max_message_size,
            validate_length_and_checksum: validate,
            garbled: 0,
            last_garbled: None,
        }
    }

    fn too_large(&self, size: usize) -> FrameError {
        FrameError::TooLarge {
            size,
            max: self.max_message_size,
        }
    }

    /// Looks for one frame (valid or not) at the front of `src`. A valid
    /// frame is left in place (its length is returned); junk before it and
    /// garbled frames are dropped from `src`.
    ///
    /// Not inlined, and its answer fits in two registers: the caller splits
    /// the frame off itself, so that the `Bytes` is built where it is used
    /// rather than returned through memory (see [`Decoder::decode`]).
    #[inline(never)]
    fn cut(&mut self, src: &mut BytesMut) -> Cut {
        // Nearly every frame starts right at the front of the buffer.
        let begin = if src.starts_with(b"8=") {
            Some(0)
        } else {
            memmem::find(src, b"8=")
        };
        let Some(begin) = begin else {
            // Keep a trailing '8' that may start the next frame.
            let keep = usize::from(src.last() == Some(&b'8'));
            src.advance(src.len() - keep);
            return Cut::More;
        };
        src.advance(begin);
        let Some(nine) = find_from(src, 0, b"\x019=") else {
            return self.need_more(src.len());
        };
        let len_start = nine + 3;
        let Some(len_end) = find_soh(src, len_start) else {
            return self.need_more(src.len());
        };
        let Some(body_len) = parse_u64(&src[len_start..len_end]) else {
            src.advance(len_end + 1);
            return Cut::Garbled(Garbled::BadLengthField);
        };
        let body_len = body_len as usize;
        if body_len > self.max_message_size {
            return Cut::TooLarge(body_len);
        }
        let body_start = len_end + 1;
        let body_end = body_start + body_len;
        if src.len() < body_end {
            src.reserve(body_end - src.len());
            return Cut::More;
        }
        let Some(ten) = find_from(src, body_end - 1, b"\x0110=") else {
            return self.need_more(src.len());
        };
        // The CheckSum value is normally 3 bytes: look at those first.
        let value = ten + 4;
        let end_soh = match src[value..].iter().take(4).position(|&b| b == SOH) {
            Some(p) => Some(value + p),
            None if src.len() > value + 4 => {
                memchr::memchr(SOH, &src[value + 4..]).map(|p| value + 4 + p)
            }
            None => None,
        };
        let Some(end_soh) = end_soh else {
            return self.need_more(src.len());
        };
        let end = end_soh + 1;
        if !self.validate_length_and_checksum {
            return Cut::Frame(end);
        }
        let garbled = if ten + 1 - body_start != body_len {
            Garbled::BodyLength
        } else if parse_u64(&src[ten + 4..end - 1]) != Some(u64::from(checksum(&src[..ten + 1]))) {
            Garbled::CheckSum
        } else {
            return Cut::Frame(end);
        };
        src.advance(end);
        Cut::Garbled(garbled)
    }

    fn need_more(&self, buffered: usize) -> Cut {
        if buffered > self.max_message_size + 64 {
            Cut::TooLarge(buffered)
        } else {
            Cut::More
        }
    }

    /// Counts and logs a dropped frame.
    #[cold]
    fn discard(&mut self, why: Garbled) {
        self.garbled += 1;
        self.last_garbled = Some(why);
        tracing::debug!(?why, "discarded garbled frame");
    }
}

/// What [`FixCodec::cut`] found at the front of the buffer.
enum Cut {
    /// More bytes are needed.
    More,
    /// A valid frame of this many bytes.
    Frame(usize),
    /// A garbled frame, already dropped.
    Garbled(Garbled),
    /// A frame (declared or buffered) of this many bytes, over the limit.
    TooLarge(usize),
}

/// First occurrence of `needle` in `hay` at or after `from`. In a
/// well-formed stream the first byte of `needle` found is where it starts
/// (the SOH that ends BeginString, the SOH that ends the body), and that
/// check is far cheaper than building a substring searcher.
#[inline]
fn find_from<const N: usize>(hay: &[u8], from: usize, needle: &[u8; N]) -> Option<usize> {
    let tail = hay.get(from..)?;
    // A fixed-size compare: no call to memcmp.
    if tail.get(..N) == Some(needle) {
        return Some(from);
    }
    let first = if needle[0] == SOH {
        find_soh(tail, 0)?
    } else {
        memchr::memchr(needle[0], tail)?
    };
    if tail.get(first..first + N) == Some(needle) {
        return Some(from + first);
    }
    memmem::find(&tail[first + 1..], needle).map(|p| from + first + 1 + p)
}

/// Index of the first SOH at or after `from`. The SOHs the codec looks for
/// (after BeginString, after BodyLength) are a few bytes away: the first two
/// words are tested in place, `memchr` (built for long haystacks) takes the
/// rest.
#[inline]
fn find_soh(hay: &[u8], from: usize) -> Option<usize> {
    for word in [from, from + 8] {
        if word >= hay.len() {
            return None;
        }
        let marks = soh_marks(hay, word);
        if marks != 0 {
            return Some(word + (marks.trailing_zeros() / 8) as usize);
        }
    }
    memchr::memchr(SOH, hay.get(from + 16..)?).map(|p| from + 16 + p)
}

impl Decoder for FixCodec {
    type Item = Bytes;
    type Error = FrameError;

    /// Inlined (the search is not, see [`FixCodec::cut`]): the frame's
    /// `Bytes` is then built in the caller, which otherwise read it back
    /// with wider loads than the stores that wrote it, and waited for them.
    #[inline]
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        loop {
            match self.cut(src) {
                Cut::More => return Ok(None),
                Cut::Frame(len) => return Ok(Some(src.split_to(len).freeze())),
                Cut::Garbled(why) => self.discard(why),
                Cut::TooLarge(size) => return Err(self.too_large(size)),
            }
        }
    }
}

impl CodecEncoder<Bytes> for FixCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::Encoder;

    fn msg(body: &[(i32, &str)]) -> Vec<u8> {
        let mut e = Encoder::new();
        e.start(body[0].1.as_bytes());
        for (t, v) in &body[1..] {
            e.field(*t, v.as_bytes());
        }
        e.finish(b"FIX.4.4").to_vec()
    }

    fn frames(codec: &mut FixCodec, input: &[u8]) -> Vec<Bytes> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn frames_back_to_back_messages_and_skips_junk() {
        let a = msg(&[(35, "0"), (34, "2")]);
        let b = msg(&[(35, "1"), (34, "3"), (112, "X")]);
        let mut input = b"junk".to_vec();
        input.extend_from_slice(&a);
        input.extend_from_slice(&b);
        let mut c = FixCodec::default();
        let f = frames(&mut c, &input);
        assert_eq!(f, vec![Bytes::from(a), Bytes::from(b)]);
    }

    #[test]
    fn partial_input_waits() {
        let a = msg(&[(35, "0"), (34, "2")]);
        let mut c = FixCodec::default();
        let mut buf = BytesMut::new();
        for (i, byte) in a.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let got = c.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i == a.len() - 1);
        }
    }

    #[test]
    fn bad_checksum_is_dropped() {
        let mut a = msg(&[(35, "0"), (34, "2")]);
        let n = a.len();
        a[n - 2] = if a[n - 2] == b'9' { b'0' } else { a[n - 2] + 1 };
        let b = msg(&[(35, "0"), (34, "3")]);
        a.extend_from_slice(&b);
        let mut c = FixCodec::default();
        assert_eq!(frames(&mut c, &a), vec![Bytes::from(b)]);
        assert_eq!(c.last_garbled, Some(Garbled::CheckSum));
    }

    #[test]
    fn too_long_body_length_swallows_next_message() {
        // Scenario 2m: a BodyLength reaching into the next message makes the
        // frame end at that message's checksum; both are dropped.
        let good = msg(&[(35, "D"), (34, "4"), (11, "ID")]);
        let s = String::from_utf8(good.clone()).unwrap();
        let declared: usize = s[12..].split('\x01').next().unwrap().parse().unwrap();
        let long = s.replacen(&format!("9={declared}"), &format!("9={}", declared + 10), 1);
        let next = msg(&[(35, "D"), (34, "5"), (11, "ID")]);
        let after = msg(&[(35, "0"), (34, "6")]);
        let mut input = long.into_bytes();
        input.extend_from_slice(&next);
        input.extend_from_slice(&after);
        let mut c = FixCodec::default();
        assert_eq!(frames(&mut c, &input), vec![Bytes::from(after)]);
        assert_eq!(c.garbled, 1);
    }

    #[test]
    fn too_short_body_length_dropped_next_kept() {
        let good = msg(&[(35, "D"), (34, "2"), (11, "ID"), (55, "INTC")]);
        let s = String::from_utf8(good).unwrap();
        let declared: &str = s[12..].split('\x01').next().unwrap();
        let short = s.replacen(&format!("9={declared}"), "9=10", 1);
        let next = msg(&[(35, "D"), (34, "3")]);
        let mut input = short.into_bytes();
        input.extend_from_slice(&next);
        let mut c = FixCodec::default();
        assert_eq!(frames(&mut c, &input), vec![Bytes::from(next)]);
        assert_eq!(c.last_garbled, Some(Garbled::BodyLength));
    }

    #[test]
    fn frame_ends_at_the_first_soh_after_checksum() {
        // Found by the `codec` fuzz target: a short CheckSum value followed
        // by a second SOH made the frame end one byte late, but only when
        // both bytes were already buffered.
        let input = b"8=FIX.4.4\x019=5\x0135=0\x0110=08\x01\x01";
        let want = Bytes::from_static(b"8=FIX.4.4\x019=5\x0135=0\x0110=08\x01");
        let mut c = FixCodec::new(4096, false);
        assert_eq!(frames(&mut c, input), vec![want.clone()]);
        let mut c = FixCodec::new(4096, false);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in input {
            buf.extend_from_slice(&[b]);
            got.extend(c.decode(&mut buf).unwrap());
        }
        assert_eq!(got, vec![want]);
    }

    #[test]
    fn oversize_is_an_error() {
        let mut c = FixCodec::new(100, true);
        let mut buf = BytesMut::from(&b"8=FIX.4.4\x019=5000\x0135=0\x01"[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(FrameError::TooLarge { size: 5000, .. })
        ));
    }

    #[test]
    fn find_soh_agrees_with_memchr() {
        use proptest::prelude::*;
        let byte = prop_oneof![3 => Just(SOH), 1 => Just(0u8), 6 => any::<u8>()];
        proptest!(|(data in proptest::collection::vec(byte, 0..60), from in 0usize..64)| {
            let want = data
                .get(from..)
                .and_then(|tail| memchr::memchr(SOH, tail))
                .map(|p| from + p);
            prop_assert_eq!(find_soh(&data, from), want);
        });
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        use proptest::prelude::*;
        proptest!(|(data in proptest::collection::vec(any::<u8>(), 0..400))| {
            let mut c = FixCodec::new(256, true);
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = c.decode(&mut buf) {}
        });
    }
}
