//! Framing: completion of BodyLength (9) and CheckSum (10) on script
//! messages (FORMAT.md §4), and runner-side splitting of the acceptor's byte
//! stream into messages (FORMAT.md §5).

const SOH: u8 = 0x01;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// FIX checksum: the byte sum modulo 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

/// Completes the framing of an `I`/`E` payload exactly as the reference
/// runner does:
///
/// * payloads not starting with `8=` are returned verbatim;
/// * *has-length* = the payload contains `SOH 9=` anywhere;
/// * *has-checksum* = the payload ends with `SOH 10=<anything> SOH`; the
///   checksum part is the suffix from the **first** `SOH 10=` and is cut off
///   (with its leading SOH) and later re-appended unchanged;
/// * without a 9, `9=<L>SOH` is inserted after the first field, where `L` is
///   the length of everything after the first field *as it is now*. When a 10
///   was supplied this is one less than the true body length (the reference
///   quirk reproduced here on purpose);
/// * without a 10, `10=<CCC>SOH` is appended (sum of all preceding bytes
///   mod 256, three digits). A supplied 9 is never corrected.
pub fn complete(payload: &[u8]) -> Vec<u8> {
    if !payload.starts_with(b"8=") {
        return payload.to_vec();
    }
    let has_length = find(payload, b"\x019=").is_some();
    let (body, supplied_checksum) = match find(payload, b"\x0110=") {
        Some(p) if payload.len() >= p + 5 && payload.ends_with(&[SOH]) => {
            (&payload[..p], Some(&payload[p..]))
        }
        _ => (payload, None),
    };
    let mut out = Vec::with_capacity(payload.len() + 16);
    if has_length {
        out.extend_from_slice(body);
    } else {
        let split = body
            .iter()
            .position(|b| *b == SOH)
            .map_or(body.len(), |p| p + 1);
        let (first, rest) = body.split_at(split);
        out.extend_from_slice(first);
        out.extend_from_slice(format!("9={}", rest.len()).as_bytes());
        out.push(SOH);
        out.extend_from_slice(rest);
    }
    match supplied_checksum {
        Some(c) => out.extend_from_slice(c),
        None => {
            let sum = checksum(&out);
            out.extend_from_slice(format!("10={sum:03}").as_bytes());
            out.push(SOH);
        }
    }
    out
}

/// Result of trying to frame one message at the start of a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete message occupies the first `n` bytes of the buffer.
    Complete(usize),
    /// More bytes are needed.
    Incomplete,
}

/// Frames one message at the start of `buf` the way the reference runner
/// reads: through the first `SOH 9=`, then through the next SOH (the
/// BodyLength value), then exactly BodyLength bytes, then through the next
/// SOH (the checksum field). Any junk before `9=` is part of the message.
///
/// The BodyLength value is converted like Ruby's `String#to_i`: its leading
/// decimal digits, 0 if there are none.
pub fn frame(buf: &[u8]) -> Frame {
    let Some(p) = find(buf, b"\x019=") else {
        return Frame::Incomplete;
    };
    let value_start = p + 3;
    let Some(v) = buf[value_start..].iter().position(|b| *b == SOH) else {
        return Frame::Incomplete;
    };
    let value_end = value_start + v; // index of the SOH after the value
    let len = body_length_value(&buf[value_start..value_end]);
    let body_end = (value_end + 1).saturating_add(len);
    if body_end > buf.len() {
        return Frame::Incomplete;
    }
    match buf[body_end..].iter().position(|b| *b == SOH) {
        Some(q) => Frame::Complete(body_end + q + 1),
        None => Frame::Incomplete,
    }
}

fn body_length_value(v: &[u8]) -> usize {
    v.iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0usize, |acc, b| {
            acc.saturating_mul(10).saturating_add((b - b'0') as usize)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soh(s: &str) -> Vec<u8> {
        s.replace('|', "\x01").into_bytes()
    }

    fn sum_of(s: &[u8]) -> u32 {
        s.iter().map(|b| *b as u32).sum::<u32>() % 256
    }

    #[test]
    fn normal_case_inserts_length_and_checksum() {
        let out = complete(&soh("8=FIX.4.4|35=0|34=2|"));
        // rest = "35=0|34=2|" = 10 bytes
        let head = soh("8=FIX.4.4|9=10|35=0|34=2|");
        let expected_sum = sum_of(&head);
        let mut expected = head.clone();
        expected.extend_from_slice(format!("10={expected_sum:03}\x01").as_bytes());
        assert_eq!(out, expected);
    }

    #[test]
    fn checksum_computed_by_hand() {
        // "8=A|9=0|" : '8'=56 '='=61 'A'=65 SOH=1 '9'=57 '='=61 '0'=48 SOH=1 -> 350 % 256 = 94
        let out = complete(&soh("8=A|"));
        assert_eq!(out, soh("8=A|9=0|10=094|"));
        // "8=FIX.4.4|9=5|35=0|" sum: 8=FIX.4.4| = 56+61+70+73+88+46+52+46+52+1 = 545
        // 9=5| = 57+61+53+1 = 172; 35=0| = 51+53+61+48+1 = 214; total 931 % 256 = 163
        assert_eq!(
            complete(&soh("8=FIX.4.4|35=0|")),
            soh("8=FIX.4.4|9=5|35=0|10=163|")
        );
    }

    #[test]
    fn supplied_length_is_kept_and_checksum_appended() {
        let out = complete(&soh("8=FIX.4.4|9=40|35=0|"));
        // 8=FIX.4.4| 545, 9=40| 57+61+52+48+1=219, 35=0| 214 -> 978 % 256 = 210
        assert_eq!(out, soh("8=FIX.4.4|9=40|35=0|10=210|"));
    }

    #[test]
    fn supplied_length_and_checksum_are_verbatim() {
        let p = soh("8=FIX.4.4|9=52|35=0|34=2|10=0|");
        assert_eq!(complete(&p), p);
    }

    #[test]
    fn quirk_checksum_supplied_length_not() {
        // 3b_InvalidChecksum: "|10=256|" is cut off including its leading SOH,
        // so rest = "35=0|34=2" (9 bytes) while the true body is 10 bytes.
        let out = complete(&soh("8=FIX.4.4|35=0|34=2|10=256|"));
        assert_eq!(out, soh("8=FIX.4.4|9=9|35=0|34=2|10=256|"));
    }

    #[test]
    fn checksum_must_end_the_payload_to_count() {
        // "10=" not followed by a final SOH: not a supplied checksum.
        let out = complete(&soh("8=FIX.4.4|35=0|10=5"));
        assert!(out.starts_with(&soh("8=FIX.4.4|9=9|35=0|10=5")));
        assert!(out.ends_with(b"\x01"));
        // The FIRST "|10=" starts the checksum part.
        let out = complete(&soh("8=FIX.4.4|35=0|10=1|10=2|"));
        assert_eq!(out, soh("8=FIX.4.4|9=4|35=0|10=1|10=2|"));
    }

    #[test]
    fn non_fix_payloads_are_verbatim() {
        let p = soh("35=0|8=FIX.4.4|9=29|34=2|10=121|");
        assert_eq!(complete(&p), p);
        assert_eq!(complete(b"CONNECT"), b"CONNECT");
        assert_eq!(complete(b""), b"");
    }

    #[test]
    fn runner_side_framing() {
        let msg = complete(&soh("8=FIX.4.4|35=0|34=2|"));
        assert_eq!(frame(&msg), Frame::Complete(msg.len()));
        for cut in 0..msg.len() {
            assert_eq!(frame(&msg[..cut]), Frame::Incomplete, "cut at {cut}");
        }
        let mut two = msg.clone();
        two.extend_from_slice(&msg);
        assert_eq!(frame(&two), Frame::Complete(msg.len()));
        // Junk before 9= belongs to the message.
        let mut junk = b"xx".to_vec();
        junk.extend_from_slice(&msg);
        assert_eq!(frame(&junk), Frame::Complete(msg.len() + 2));
        // BodyLength is trusted: a too-short 9 cuts through the body and the
        // "checksum" ends at the next SOH.
        let short = soh("8=FIX.4.4|9=2|35=0|34=2|10=000|");
        assert_eq!(
            frame(&short),
            Frame::Complete(soh("8=FIX.4.4|9=2|35=0|").len())
        );
        // Non-numeric BodyLength counts as 0 (Ruby to_i).
        let bad = soh("8=FIX.4.4|9=x|35=0|");
        assert_eq!(
            frame(&bad),
            Frame::Complete(soh("8=FIX.4.4|9=x|35=0|").len())
        );
    }
}
