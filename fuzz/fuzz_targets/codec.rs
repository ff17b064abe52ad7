//! Arbitrary bytes fed to `FixCodec::decode` in arbitrary chunks: no panic,
//! every frame starts with `8=` and ends with SOH (and, when the codec
//! validates, has a correct BodyLength and CheckSum), and the frames do not
//! depend on how the stream was chunked.
//!
//! Input layout: byte 0 = options (bit 0: validate length and checksum,
//! bits 1-2: MaxMessageSize choice), byte 1 = number of chunk-length bytes
//! that follow (mod 16), then those chunk lengths (cycled), then the stream.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

use fixgw::fix::encoder::checksum;
use fixgw::fix::{FixCodec, FrameError};

const MAX_SIZES: [usize; 4] = [32, 256, 4096, fixgw::fix::codec::DEFAULT_MAX_MESSAGE_SIZE];

fuzz_target!(|data: &[u8]| {
    let [opts, n_cuts, rest @ ..] = data else {
        return;
    };
    let n_cuts = usize::from(n_cuts % 16).min(rest.len());
    let (cuts, stream) = rest.split_at(n_cuts);
    let validate = opts & 1 == 1;
    let max = MAX_SIZES[usize::from(opts >> 1) & 3];

    let whole = run(stream, &[], validate, max);
    let chunked = run(stream, cuts, validate, max);
    for f in whole.frames.iter().chain(&chunked.frames) {
        check_frame(f, validate);
    }
    if whole.error.is_none() && chunked.error.is_none() {
        assert_eq!(whole.frames, chunked.frames, "framing depends on chunking");
    }
});

struct Outcome {
    frames: Vec<Bytes>,
    error: Option<FrameError>,
}

/// Feeds `stream` in chunks of the lengths in `cuts` (cycled; all at once
/// when empty), decoding after each chunk until the codec wants more.
fn run(stream: &[u8], cuts: &[u8], validate: bool, max: usize) -> Outcome {
    let mut codec = FixCodec::new(max, validate);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let len = match cuts.get(i % cuts.len().max(1)) {
            Some(&c) => usize::from(c).max(1),
            None => stream.len(),
        };
        i += 1;
        let end = (pos + len).min(stream.len());
        buf.extend_from_slice(&stream[pos..end]);
        pos = end;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        frames,
                        error: Some(e),
                    }
                }
            }
        }
    }
    Outcome {
        frames,
        error: None,
    }
}

fn check_frame(f: &Bytes, validate: bool) {
    assert!(f.starts_with(b"8="), "frame starts with 8=: {f:?}");
    assert_eq!(f.last(), Some(&0x01), "frame ends with SOH: {f:?}");
    if !validate {
        return;
    }
    // 8=...<SOH>9=<len><SOH><body of len bytes>10=NNN<SOH>
    let ten = find_last(f, b"\x0110=").expect("a validated frame has a CheckSum field") + 1;
    let declared = std::str::from_utf8(&f[ten + 3..f.len() - 1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    assert_eq!(declared, Some(u64::from(checksum(&f[..ten]))), "checksum");
    let nine = find_first(f, b"\x019=").expect("a frame has a BodyLength field") + 3;
    let len_end = nine + f[nine..].iter().position(|&b| b == 0x01).expect("SOH");
    let body_len: usize = std::str::from_utf8(&f[nine..len_end])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("numeric BodyLength");
    assert_eq!(ten - (len_end + 1), body_len, "BodyLength");
}

fn find_first(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}
