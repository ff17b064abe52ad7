//! The sled-backed message store. One sled database per gateway; per session
//! a record in the `sessions` tree (next sequence numbers, creation time) and
//! a tree of outbound messages keyed by big-endian MsgSeqNum.
//!
//! Changes are buffered in memory and written at `flush`, which ends with
//! one durable sled flush (or none, in `os` mode) — the group commit.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::fix::time::UtcNanos;

use super::config::SessionId;
use super::store::{MessageStore, StoreError};

/// How `flush` makes data durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushMode {
    /// fsync before any byte is sent (default).
    #[default]
    Fsync,
    /// Hand data to sled (and the OS) without waiting for the disk, like
    /// QuickFIX's FileStore.
    Os,
}

const META_LEN: usize = 8 * 3 + 4;

/// Opens per-session stores in one sled database.
#[derive(Clone)]
pub struct SledStoreFactory {
    db: sled::Db,
    mode: FlushMode,
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl SledStoreFactory {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &std::path::Path, mode: FlushMode) -> Result<SledStoreFactory, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(if mode == FlushMode::Os { Some(200) } else { None })
            .open()
            .map_err(io)?;
        Ok(SledStoreFactory { db, mode })
    }

    /// The store of one session, loaded from disk (or fresh at `now`).
    pub fn store(&self, id: &SessionId, now: UtcNanos) -> Result<SledStore, StoreError> {
        let key = id.to_string();
        let sessions = self.db.open_tree("sessions").map_err(io)?;
        let messages = self
            .db
            .open_tree(format!("messages/{key}"))
            .map_err(io)?;
        let (mut next_sender, next_target, created) = match sessions.get(key.as_bytes()).map_err(io)? {
            Some(v) => decode_meta(&v)?,
            None => (1, 1, now),
        };
        // A crash between writing messages and the record must never let us
        // reuse a number that a stored message already has.
        if let Some((k, _)) = messages.last().map_err(io)? {
            let last = seq_from_key(&k)?;
            next_sender = next_sender.max(last + 1);
        }
        Ok(SledStore {
            db: self.db.clone(),
            sessions,
            messages,
            key,
            mode: self.mode,
            next_sender,
            next_target,
            created,
            pending: BTreeMap::new(),
            clear_pending: false,
            dirty: false,
        })
    }

    /// Sessions recorded in the database: id string, next sender, next target.
    pub fn list(&self) -> Result<Vec<(String, u64, u64, UtcNanos)>, StoreError> {
        let sessions = self.db.open_tree("sessions").map_err(io)?;
        let mut out = Vec::new();
        for item in sessions.iter() {
            let (k, v) = item.map_err(io)?;
            let (s, t, c) = decode_meta(&v)?;
            out.push((String::from_utf8_lossy(&k).into_owned(), s, t, c));
        }
        Ok(out)
    }
}

fn seq_from_key(k: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = k
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("message key of {} bytes", k.len())))?;
    Ok(u64::from_be_bytes(arr))
}

fn encode_meta(sender: u64, target: u64, created: UtcNanos) -> [u8; META_LEN] {
    let mut b = [0u8; META_LEN];
    b[0..8].copy_from_slice(&sender.to_be_bytes());
    b[8..16].copy_from_slice(&target.to_be_bytes());
    b[16..24].copy_from_slice(&created.to_be_bytes());
    let crc = crc(&b[..24]);
    b[24..28].copy_from_slice(&crc.to_be_bytes());
    b
}

fn decode_meta(v: &[u8]) -> Result<(u64, u64, UtcNanos), StoreError> {
    if v.len() != META_LEN {
        return Err(StoreError::Corrupt(format!("session record of {} bytes", v.len())));
    }
    let want = u32::from_be_bytes([v[24], v[25], v[26], v[27]]);
    if crc(&v[..24]) != want {
        return Err(StoreError::Corrupt("session record checksum mismatch".into()));
    }
    let u = |r: std::ops::Range<usize>| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&v[r]);
        a
    };
    Ok((
        u64::from_be_bytes(u(0..8)),
        u64::from_be_bytes(u(8..16)),
        i64::from_be_bytes(u(16..24)),
    ))
}

/// FNV-1a, enough to detect a torn or altered 24-byte record.
fn crc(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &x in b {
        h ^= u32::from(x);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// One session's store in sled.
pub struct SledStore {
    db: sled::Db,
    sessions: sled::Tree,
    messages: sled::Tree,
    key: String,
    mode: FlushMode,
    next_sender: u64,
    next_target: u64,
    created: UtcNanos,
    pending: BTreeMap<u64, Bytes>,
    clear_pending: bool,
    dirty: bool,
}

impl MessageStore for SledStore {
    fn next_sender_seq(&self) -> u64 {
        self.next_sender
    }
    fn next_target_seq(&self) -> u64 {
        self.next_target
    }
    fn set_next_sender_seq(&mut self, seq: u64) {
        self.next_sender = seq;
        self.dirty = true;
    }
    fn set_next_target_seq(&mut self, seq: u64) {
        self.next_target = seq;
        self.dirty = true;
    }
    fn creation_time(&self) -> UtcNanos {
        self.created
    }
    fn save(&mut self, seq: u64, message: Bytes) {
        self.pending.insert(seq, message);
        self.dirty = true;
    }
    fn get_range(&self, begin: u64, end: u64) -> Result<Vec<(u64, Bytes)>, StoreError> {
        let mut out: BTreeMap<u64, Bytes> = BTreeMap::new();
        if begin > end {
            return Ok(Vec::new());
        }
        if !self.clear_pending {
            for item in self.messages.range(begin.to_be_bytes()..=end.to_be_bytes()) {
                let (k, v) = item.map_err(io)?;
                out.insert(seq_from_key(&k)?, Bytes::copy_from_slice(&v));
            }
        }
        for (k, v) in self.pending.range(begin..=end) {
            out.insert(*k, v.clone());
        }
        Ok(out.into_iter().collect())
    }
    fn reset(&mut self, now: UtcNanos) {
        self.next_sender = 1;
        self.next_target = 1;
        self.created = now;
        self.pending.clear();
        self.clear_pending = true;
        self.dirty = true;
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        if !self.dirty {
            return Ok(());
        }
        if self.clear_pending {
            self.messages.clear().map_err(io)?;
        }
        let mut batch = sled::Batch::default();
        for (k, v) in &self.pending {
            batch.insert(&k.to_be_bytes(), v.as_ref());
        }
        self.messages.apply_batch(batch).map_err(io)?;
        self.sessions
            .insert(
                self.key.as_bytes(),
                &encode_meta(self.next_sender, self.next_target, self.created)[..],
            )
            .map_err(io)?;
        if self.mode == FlushMode::Fsync {
            self.db.flush().map_err(io)?;
        }
        self.pending.clear();
        self.clear_pending = false;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SessionId {
        SessionId {
            begin_string: "FIX.4.4".into(),
            sender_comp_id: "ISLD".into(),
            target_comp_id: "TW".into(),
        }
    }

    #[test]
    fn survives_reopen_and_reset() {
        let dir = tempfile::tempdir().unwrap();
        {
            let f = SledStoreFactory::open(dir.path(), FlushMode::Fsync).unwrap();
            let mut s = f.store(&id(), 5).unwrap();
            s.save(1, Bytes::from_static(b"one"));
            s.save(2, Bytes::from_static(b"two"));
            s.set_next_sender_seq(3);
            s.set_next_target_seq(7);
            s.flush().unwrap();
            s.save(3, Bytes::from_static(b"unflushed"));
        }
        let f = SledStoreFactory::open(dir.path(), FlushMode::Fsync).unwrap();
        let mut s = f.store(&id(), 99).unwrap();
        assert_eq!((s.next_sender_seq(), s.next_target_seq(), s.creation_time()), (3, 7, 5));
        let got = s.get_range(1, 10).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], (2, Bytes::from_static(b"two")));
        assert_eq!(f.list().unwrap()[0].1, 3);
        s.reset(100);
        assert!(s.get_range(1, 10).unwrap().is_empty());
        s.flush().unwrap();
        let s = f.store(&id(), 0).unwrap();
        assert_eq!((s.next_sender_seq(), s.creation_time()), (1, 100));
    }

    #[test]
    fn corrupt_record_is_reported() {
        assert!(matches!(decode_meta(&[0u8; 5]), Err(StoreError::Corrupt(_))));
        let mut m = encode_meta(1, 2, 3);
        m[3] ^= 1;
        assert!(matches!(decode_meta(&m), Err(StoreError::Corrupt(_))));
    }
}
