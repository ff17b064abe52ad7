//! Frames copied into a shared, reused buffer instead of one heap
//! allocation each.
//!
//! The core encodes thousands of messages per batch; each lives from its
//! encoding until its connection wrote it (or the batch committed it).
//! [`copy`] appends a frame to the calling thread's current 64 KiB block and
//! returns it as [`Bytes`] sharing that block (a reference count, no
//! allocation); a block is freed once every frame in it is dropped.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// Size of one block (a larger frame gets a block of its own size).
const BLOCK: usize = 64 * 1024;

thread_local! {
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What `write` writes, as [`Bytes`] in the thread's current block (written
/// into the thread's reused buffer first).
pub fn build(write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut buf = scratch();
    write(&mut buf);
    freeze(buf)
}

/// The thread's reused buffer, empty (a new one if it is out already), for
/// a frame built over several calls; hand it back with [`freeze`].
pub fn scratch() -> Vec<u8> {
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    buf.clear();
    buf
}

/// `buf` as [`Bytes`] in the thread's current block; `buf` becomes the
/// thread's reused buffer again.
pub fn freeze(buf: Vec<u8>) -> Bytes {
    let frame = copy(&buf);
    SCRATCH.with(|s| *s.borrow_mut() = buf);
    frame
}

/// `data` as [`Bytes`], copied into the thread's current block.
pub fn copy(data: &[u8]) -> Bytes {
    ARENA.with(|a| {
        let mut a = a.borrow_mut();
        if a.capacity() - a.len() < data.len() {
            // The old block stays alive while frames in it do.
            *a = BytesMut::with_capacity(BLOCK.max(data.len()));
        }
        a.extend_from_slice(data);
        a.split().freeze()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_independent_and_outlive_their_block() {
        let a = copy(b"8=FIX.4.4\x01");
        let big = vec![7u8; BLOCK + 1];
        let b = copy(&big);
        let c = copy(b"10=000\x01");
        assert_eq!(&a[..], b"8=FIX.4.4\x01");
        assert_eq!(&b[..], &big[..]);
        assert_eq!(&c[..], b"10=000\x01");
        assert_eq!(
            &build(|v| v.extend_from_slice(b"35=D\x01"))[..],
            b"35=D\x01"
        );
        // Filling blocks again does not touch frames still held.
        let many: Vec<Bytes> = (0..10_000)
            .map(|i| copy(format!("{i}").as_bytes()))
            .collect();
        assert_eq!(&a[..], b"8=FIX.4.4\x01");
        assert!(many
            .iter()
            .enumerate()
            .all(|(i, m)| m[..] == *format!("{i}").as_bytes()));
    }
}
