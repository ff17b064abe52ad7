//! A received FIX message: the frame bytes (shared, never copied) and the
//! offsets of its fields in wire order.

use std::cell::Cell;

use bytes::Bytes;

use super::parser::{parse_message, ParseError};
use super::tags;

/// One field of a message: its tag and the byte range of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpan {
    /// Tag number as sent (may be 0 or negative in hostile input).
    pub tag: i32,
    /// Offset of the value's first byte in the frame.
    pub start: u32,
    /// Offset one past the value's last byte.
    pub end: u32,
}

/// A parsed FIX message backed by its frame bytes.
///
/// `repr(C)`: the frame first, in declaration order, so that building and
/// returning a message copies it in whole 16-byte pieces (reordered, the
/// copies straddled earlier stores and waited for them).
#[derive(Clone)]
#[repr(C)]
pub struct Message {
    raw: Bytes,
    fields: Vec<FieldSpan>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.raw).replace('\x01', "|"))
    }
}

impl Message {
    /// Parses a complete frame (8, 9, 35 first; 10 last). Framing checks
    /// (BodyLength, CheckSum) are the codec's job and are not repeated here.
    pub fn parse(raw: Bytes) -> Result<Message, ParseError> {
        let mut fields = SPARE_FIELDS.try_with(Cell::take).unwrap_or_default();
        if fields.capacity() == 0 {
            fields.reserve(24);
        }
        // The frame is moved into the message after parsing: the caller
        // has just written it (8 bytes at a time), and the move reads it
        // 16 bytes at a time, which waits for those stores to complete;
        // by the end of the split they have.
        if let Err(e) = parse_message(&raw, &mut fields) {
            recycle(fields);
            return Err(e);
        }
        Ok(Message { raw, fields })
    }

    /// The frame bytes, exactly as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Fields in wire order.
    pub fn fields(&self) -> &[FieldSpan] {
        &self.fields
    }

    /// The bytes of a field's value.
    pub fn value(&self, f: &FieldSpan) -> &[u8] {
        &self.raw[f.start as usize..f.end as usize]
    }

    /// Iterates `(tag, value)` in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &[u8])> + '_ {
        self.fields.iter().map(move |f| (f.tag, self.value(f)))
    }

    /// First occurrence of `tag`.
    pub fn get(&self, tag: i32) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.tag == tag)
            .map(|f| self.value(f))
    }

    /// First occurrence of `tag` as UTF-8 text.
    pub fn get_str(&self, tag: i32) -> Option<&str> {
        self.get(tag).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// First occurrence of `tag` as a non-negative integer.
    pub fn get_u64(&self, tag: i32) -> Option<u64> {
        self.get(tag).and_then(parse_u64)
    }

    /// True when `tag` is present with value `Y`.
    pub fn get_flag(&self, tag: i32) -> bool {
        self.get(tag) == Some(b"Y")
    }

    /// True when `tag` is present.
    pub fn has(&self, tag: i32) -> bool {
        self.fields.iter().any(|f| f.tag == tag)
    }

    /// BeginString (8).
    pub fn begin_string(&self) -> &[u8] {
        self.value(&self.fields[0])
    }

    /// MsgType (35).
    pub fn msg_type(&self) -> &[u8] {
        self.value(&self.fields[2])
    }

    /// MsgSeqNum (34), if present and numeric.
    pub fn seq_num(&self) -> Option<u64> {
        self.get_u64(tags::MSG_SEQ_NUM)
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.fields));
    }
}

/// Field lists of up to this many entries are kept for reuse.
const SPARE_MAX_FIELDS: usize = 256;

thread_local! {
    /// The field list of the last message dropped on this thread, reused by
    /// the next [`Message::parse`] here: parsing then drops a message and
    /// parses the next one without calling the allocator.
    static SPARE_FIELDS: Cell<Vec<FieldSpan>> = const { Cell::new(Vec::new()) };
}

fn recycle(fields: Vec<FieldSpan>) {
    if fields.capacity() <= SPARE_MAX_FIELDS {
        // During thread teardown the list is simply freed.
        let _ = SPARE_FIELDS.try_with(|spare| spare.set(fields));
    }
}

/// Parses an unsigned decimal integer with no sign and no spaces.
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in v {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getters() {
        let raw = Bytes::from("8=FIX.4.4\x019=20\x0135=0\x0134=12\x0143=Y\x0110=000\x01");
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.msg_type(), b"0");
        assert_eq!(m.seq_num(), Some(12));
        assert!(m.get_flag(tags::POSS_DUP_FLAG));
        assert!(!m.has(tags::TEXT));
    }

    #[test]
    fn field_lists_are_reused_and_never_shared() {
        let first = Message::parse(Bytes::from("8=FIX.4.4\x019=5\x0135=0\x0110=000\x01")).unwrap();
        let second = Message::parse(Bytes::from(
            "8=FIX.4.4\x019=5\x0135=A\x0198=0\x0110=000\x01",
        ))
        .unwrap();
        let copy = second.clone();
        assert_eq!(first.msg_type(), b"0");
        drop(first);
        // The next parse takes the dropped message's list; live ones keep theirs.
        let third = Message::parse(Bytes::from("8=FIX.4.4\x019=5\x0135=1\x0110=000\x01")).unwrap();
        assert!(Message::parse(Bytes::from("35=0\x01")).is_err());
        assert_eq!((second.msg_type(), second.fields().len()), (&b"A"[..], 5));
        assert_eq!(copy.fields(), second.fields());
        assert_eq!((third.msg_type(), third.fields().len()), (&b"1"[..], 4));
    }

    #[test]
    fn parse_u64_rejects_signs_and_junk() {
        assert_eq!(parse_u64(b"007"), Some(7));
        assert_eq!(parse_u64(b"+7"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"99999999999999999999"), None);
    }
}
