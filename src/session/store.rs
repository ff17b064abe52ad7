//! The session message store: next sequence numbers, creation time and every
//! outbound application message by sequence number (for resends).
//!
//! Writes are buffered and become durable only at `flush`, which the I/O
//! layer calls once per batch *before* any byte of the batch is sent
//! (ARCHITECTURE rule 3). The state machine never flushes.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::fix::time::UtcNanos;

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing storage failed.
    #[error("store i/o error: {0}")]
    Io(String),
    /// A stored record could not be decoded.
    #[error("corrupt store record: {0}")]
    Corrupt(String),
}

/// Persistent state of one session.
pub trait MessageStore: Send {
    /// MsgSeqNum of the next message we send.
    fn next_sender_seq(&self) -> u64;
    /// MsgSeqNum we expect next from the counterparty.
    fn next_target_seq(&self) -> u64;
    /// Sets the next outbound MsgSeqNum.
    fn set_next_sender_seq(&mut self, seq: u64);
    /// Sets the next expected inbound MsgSeqNum.
    fn set_next_target_seq(&mut self, seq: u64);
    /// When the store (this session "day") was created.
    fn creation_time(&self) -> UtcNanos;
    /// Keeps an outbound message for resend.
    fn save(&mut self, seq: u64, message: Bytes);
    /// Stored messages with `begin <= seq <= end`, ascending.
    fn get_range(&self, begin: u64, end: u64) -> Result<Vec<(u64, Bytes)>, StoreError>;
    /// Forgets every message and sets both sequence numbers to 1.
    fn reset(&mut self, now: UtcNanos);
    /// Makes every change so far durable.
    fn flush(&mut self) -> Result<(), StoreError>;
}

/// A store that lives in memory only (tests, and sessions that need no
/// persistence).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    next_sender: u64,
    next_target: u64,
    created: UtcNanos,
    messages: BTreeMap<u64, Bytes>,
}

impl MemoryStore {
    /// A fresh store created at `now`.
    pub fn new(now: UtcNanos) -> MemoryStore {
        MemoryStore {
            next_sender: 1,
            next_target: 1,
            created: now,
            messages: BTreeMap::new(),
        }
    }
}

impl MessageStore for MemoryStore {
    fn next_sender_seq(&self) -> u64 {
        self.next_sender
    }
    fn next_target_seq(&self) -> u64 {
        self.next_target
    }
    fn set_next_sender_seq(&mut self, seq: u64) {
        self.next_sender = seq;
    }
    fn set_next_target_seq(&mut self, seq: u64) {
        self.next_target = seq;
    }
    fn creation_time(&self) -> UtcNanos {
        self.created
    }
    fn save(&mut self, seq: u64, message: Bytes) {
        self.messages.insert(seq, message);
    }
    fn get_range(&self, begin: u64, end: u64) -> Result<Vec<(u64, Bytes)>, StoreError> {
        if begin > end {
            return Ok(Vec::new());
        }
        Ok(self
            .messages
            .range(begin..=end)
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }
    fn reset(&mut self, now: UtcNanos) {
        self.next_sender = 1;
        self.next_target = 1;
        self.created = now;
        self.messages.clear();
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
