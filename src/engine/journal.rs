//! The command journal: every command is appended with its sequence number
//! and a CRC-32 before it is applied; snapshots of the engine state are
//! stored beside it; recovery = latest good snapshot + replay of later
//! commands; `verify` walks every record and names the first bad one.
//! `Journal` is the storage interface (sled and in-memory implementations
//! here); record framing (`encode_record` / `decode_record`) is public so a
//! caller can embed commands in records of its own.

use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::codec::{decode_command, encode_command, DecodeError};
use crate::engine::command::Command;
use crate::engine::config::VenueConfig;
use crate::engine::event::Event;
use crate::engine::matching::Engine;
use crate::engine::snapshot::SnapshotError;

/// Journal failures; corruption names the sequence number where it was found.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The storage layer failed.
    #[error("journal storage: {0}")]
    Storage(String),
    /// A record failed its checksum or did not decode.
    #[error("journal record {seq} is corrupt: {reason}")]
    Corrupt {
        /// Sequence number of the bad record.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Sequence numbers are not contiguous.
    #[error("journal gap: expected record {expected}, found {found}")]
    Gap {
        /// Next expected sequence number.
        expected: u64,
        /// Sequence number found.
        found: u64,
    },
    /// Append with a sequence number that does not follow the last one.
    #[error("append out of order: last {last:?}, got {seq}")]
    OutOfOrder {
        /// Last appended sequence number.
        last: Option<u64>,
        /// Rejected sequence number.
        seq: u64,
    },
    /// A snapshot could not be restored.
    #[error("snapshot at {seq}: {source}")]
    Snapshot {
        /// Sequence number the snapshot was taken at.
        seq: u64,
        /// Why it failed.
        source: SnapshotError,
    },
}

impl From<sled::Error> for JournalError {
    fn from(e: sled::Error) -> Self {
        JournalError::Storage(e.to_string())
    }
}

/// Frames a command as `crc32(payload) LE` + payload, appended to `out`.
pub fn encode_record(cmd: &Command, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    encode_command(cmd, out);
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Checks a record's CRC and decodes its command.
pub fn decode_record(record: &[u8]) -> Result<Command, RecordError> {
    let (crc, payload) = record
        .split_first_chunk::<4>()
        .ok_or(RecordError::Decode(DecodeError::Truncated))?;
    let want = u32::from_le_bytes(*crc);
    let got = crc32fast::hash(payload);
    if want != got {
        return Err(RecordError::Checksum { want, got });
    }
    decode_command(payload).map_err(RecordError::Decode)
}

/// Frames opaque bytes (a snapshot) with a CRC.
pub fn frame_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 4);
    v.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
    v.extend_from_slice(bytes);
    v
}

/// Checks a CRC frame and returns its payload.
pub fn unframe_bytes(framed: &[u8]) -> Result<&[u8], RecordError> {
    let (crc, payload) = framed
        .split_first_chunk::<4>()
        .ok_or(RecordError::Decode(DecodeError::Truncated))?;
    let want = u32::from_le_bytes(*crc);
    let got = crc32fast::hash(payload);
    if want != got {
        return Err(RecordError::Checksum { want, got });
    }
    Ok(payload)
}

/// Why one record is bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// CRC mismatch.
    #[error("checksum mismatch (stored {want:#010x}, computed {got:#010x})")]
    Checksum {
        /// Stored CRC.
        want: u32,
        /// Computed CRC.
        got: u32,
    },
    /// Payload does not decode.
    #[error("undecodable: {0}")]
    Decode(DecodeError),
}

/// Iterator over `(seq, bytes)` pairs of a journal.
pub type SeqIter<'a, T> = Box<dyn Iterator<Item = Result<(u64, T), JournalError>> + 'a>;

/// Storage of journal records and snapshots, keyed by sequence number.
pub trait Journal {
    /// Bytes handed out by the store.
    type Bytes: AsRef<[u8]>;
    /// Stores one framed record; `seq` must be the last sequence number + 1 (or any if empty).
    fn append_raw(&mut self, seq: u64, record: &[u8]) -> Result<(), JournalError>;
    /// Framed records with sequence number >= `seq`, ascending.
    fn raw_from(&self, seq: u64) -> SeqIter<'_, Self::Bytes>;
    /// Highest sequence number stored.
    fn last_seq(&self) -> Result<Option<u64>, JournalError>;
    /// Stores a snapshot of the state after applying command `seq`.
    fn put_snapshot(&mut self, seq: u64, state: &[u8]) -> Result<(), JournalError>;
    /// Snapshots, newest first, as (seq, framed bytes).
    fn snapshots_newest_first(&self) -> SeqIter<'_, Self::Bytes>;
    /// Makes everything appended durable.
    fn flush(&mut self) -> Result<(), JournalError>;

    /// Frames and appends a command.
    fn append(&mut self, seq: u64, cmd: &Command) -> Result<(), JournalError> {
        let mut buf = Vec::with_capacity(96);
        encode_record(cmd, &mut buf);
        self.append_raw(seq, &buf)
    }

    /// Commands with sequence number >= `seq`, checksums verified.
    fn commands_from(
        &self,
        seq: u64,
    ) -> Box<dyn Iterator<Item = Result<(u64, Command), JournalError>> + '_> {
        Box::new(self.raw_from(seq).map(|r| {
            let (seq, bytes) = r?;
            decode_record(bytes.as_ref())
                .map(|c| (seq, c))
                .map_err(|e| JournalError::Corrupt {
                    seq,
                    reason: e.to_string(),
                })
        }))
    }
}

fn check_order(last: Option<u64>, seq: u64) -> Result<(), JournalError> {
    match last {
        Some(l) if seq != l + 1 => Err(JournalError::OutOfOrder { last, seq }),
        _ => Ok(()),
    }
}

/// In-memory journal (tests, benchmarks, tools).
#[derive(Debug, Default, Clone)]
pub struct MemJournal {
    /// Framed records by sequence number.
    pub records: BTreeMap<u64, Vec<u8>>,
    /// Framed snapshots by sequence number.
    pub snapshots: BTreeMap<u64, Vec<u8>>,
}

impl Journal for MemJournal {
    type Bytes = Vec<u8>;
    fn append_raw(&mut self, seq: u64, record: &[u8]) -> Result<(), JournalError> {
        check_order(self.records.keys().next_back().copied(), seq)?;
        self.records.insert(seq, record.to_vec());
        Ok(())
    }
    fn raw_from(
        &self,
        seq: u64,
    ) -> Box<dyn Iterator<Item = Result<(u64, Vec<u8>), JournalError>> + '_> {
        Box::new(self.records.range(seq..).map(|(&s, r)| Ok((s, r.clone()))))
    }
    fn last_seq(&self) -> Result<Option<u64>, JournalError> {
        Ok(self.records.keys().next_back().copied())
    }
    fn put_snapshot(&mut self, seq: u64, state: &[u8]) -> Result<(), JournalError> {
        self.snapshots.insert(seq, frame_bytes(state));
        Ok(())
    }
    fn snapshots_newest_first(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(u64, Vec<u8>), JournalError>> + '_> {
        Box::new(
            self.snapshots
                .iter()
                .rev()
                .map(|(&s, b)| Ok((s, b.clone()))),
        )
    }
    fn flush(&mut self) -> Result<(), JournalError> {
        Ok(())
    }
}

/// Journal in sled: tree `journal` (key = seq big-endian) and tree `snapshots`.
pub struct SledJournal {
    db: sled::Db,
    records: sled::Tree,
    snapshots: sled::Tree,
    last: Option<u64>,
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn key_seq(key: &[u8]) -> Result<u64, JournalError> {
    let k: [u8; 8] = key.try_into().map_err(|_| JournalError::Corrupt {
        seq: 0,
        reason: format!("key of {} bytes", key.len()),
    })?;
    Ok(u64::from_be_bytes(k))
}

impl SledJournal {
    /// Opens (or creates) a journal database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SledJournal, JournalError> {
        Self::from_db(sled::open(path)?)
    }

    /// Uses trees of an already open database.
    pub fn from_db(db: sled::Db) -> Result<SledJournal, JournalError> {
        let records = db.open_tree("journal")?;
        let snapshots = db.open_tree("snapshots")?;
        let last = match records.last()? {
            Some((k, _)) => Some(key_seq(&k)?),
            None => None,
        };
        Ok(SledJournal {
            db,
            records,
            snapshots,
            last,
        })
    }

    /// The underlying database (e.g. to flush other trees in the same group commit).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Overwrites a stored record without checks (tests and repair tools only).
    pub fn overwrite_raw(&self, seq: u64, bytes: &[u8]) -> Result<(), JournalError> {
        self.records.insert(seq_key(seq), bytes)?;
        Ok(())
    }
}

impl Journal for SledJournal {
    type Bytes = sled::IVec;
    fn append_raw(&mut self, seq: u64, record: &[u8]) -> Result<(), JournalError> {
        check_order(self.last, seq)?;
        self.records.insert(seq_key(seq), record)?;
        self.last = Some(seq);
        Ok(())
    }
    fn raw_from(
        &self,
        seq: u64,
    ) -> Box<dyn Iterator<Item = Result<(u64, sled::IVec), JournalError>> + '_> {
        Box::new(self.records.range(seq_key(seq)..).map(|r| {
            let (k, v) = r?;
            Ok((key_seq(&k)?, v))
        }))
    }
    fn last_seq(&self) -> Result<Option<u64>, JournalError> {
        Ok(self.last)
    }
    fn put_snapshot(&mut self, seq: u64, state: &[u8]) -> Result<(), JournalError> {
        self.snapshots.insert(seq_key(seq), frame_bytes(state))?;
        Ok(())
    }
    fn snapshots_newest_first(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(u64, sled::IVec), JournalError>> + '_> {
        Box::new(self.snapshots.iter().rev().map(|r| {
            let (k, v) = r?;
            Ok((key_seq(&k)?, v))
        }))
    }
    fn flush(&mut self) -> Result<(), JournalError> {
        self.db.flush()?;
        Ok(())
    }
}

/// Result of a successful `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// First and last sequence numbers (None if empty).
    pub range: Option<(u64, u64)>,
}

/// Checks every record (contiguous sequence, CRC, decodable); the error names the first bad one.
pub fn verify<J: Journal>(journal: &J) -> Result<VerifyReport, JournalError> {
    let mut report = VerifyReport {
        records: 0,
        range: None,
    };
    for r in journal.commands_from(0) {
        let (seq, _) = r?;
        report.range = match report.range {
            None => Some((seq, seq)),
            Some((first, last)) if seq == last + 1 => Some((first, seq)),
            Some((_, last)) => {
                return Err(JournalError::Gap {
                    expected: last + 1,
                    found: seq,
                })
            }
        };
        report.records += 1;
    }
    Ok(report)
}

/// What recovery rebuilt.
#[derive(Debug)]
pub struct Recovered {
    /// The engine, state as of the last journaled command.
    pub engine: Engine,
    /// Sequence number for the next command.
    pub next_seq: u64,
    /// Snapshot used (its sequence number), if any.
    pub snapshot_seq: Option<u64>,
    /// Commands replayed after the snapshot.
    pub replayed: u64,
    /// Newer snapshots that could not be used, with the reason (for the operator).
    pub skipped_snapshots: Vec<(u64, String)>,
}

/// Rebuilds the engine: newest snapshot that restores, then every later command.
/// `on_events(seq, events)` sees the events of each replayed command.
pub fn recover<J: Journal>(
    cfg: &VenueConfig,
    journal: &J,
    mut on_events: impl FnMut(u64, &[Event]),
) -> Result<Recovered, JournalError> {
    let mut start = None;
    let mut skipped_snapshots = Vec::new();
    for snap in journal.snapshots_newest_first() {
        let (seq, framed) = snap?;
        let restored = unframe_bytes(framed.as_ref())
            .map_err(|e| SnapshotError::Inconsistent(e.to_string()))
            .and_then(|b| Engine::restore(cfg, b));
        match restored {
            Ok(e) => {
                start = Some((seq, e));
                break;
            }
            // A damaged snapshot is skipped: an older one plus a longer replay is as good.
            Err(e) => skipped_snapshots.push((seq, e.to_string())),
        }
    }
    let (snapshot_seq, mut engine) = match start {
        Some((s, e)) => (Some(s), e),
        None => (
            None,
            Engine::new(cfg).map_err(|e| JournalError::Snapshot {
                seq: 0,
                source: e.into(),
            })?,
        ),
    };
    let from = snapshot_seq.map_or(0, |s| s + 1);
    let mut events = Vec::with_capacity(256);
    let mut replayed = 0;
    let mut expected = snapshot_seq.map(|s| s + 1);
    let mut next_seq = from.max(1);
    for r in journal.commands_from(from) {
        let (seq, cmd) = r?;
        if let Some(exp) = expected {
            if seq != exp {
                return Err(JournalError::Gap {
                    expected: exp,
                    found: seq,
                });
            }
        }
        expected = Some(seq + 1);
        events.clear();
        engine.apply(&cmd, &mut events);
        on_events(seq, &events);
        replayed += 1;
        next_seq = seq + 1;
    }
    Ok(Recovered {
        engine,
        next_seq,
        snapshot_seq,
        replayed,
        skipped_snapshots,
    })
}

/// An engine whose every command is journaled before it is applied,
/// with a snapshot every `snapshot_every` commands.
pub struct JournaledEngine<J: Journal> {
    engine: Engine,
    journal: J,
    next_seq: u64,
    snapshot_every: u64,
    scratch: Vec<u8>,
}

impl<J: Journal> JournaledEngine<J> {
    /// Recovers from `journal` and continues after its last command.
    pub fn open(cfg: &VenueConfig, journal: J) -> Result<JournaledEngine<J>, JournalError> {
        let rec = recover(cfg, &journal, |_, _| {})?;
        Ok(JournaledEngine {
            engine: rec.engine,
            journal,
            next_seq: rec.next_seq,
            snapshot_every: cfg.engine.snapshot_every,
            scratch: Vec::with_capacity(128),
        })
    }

    /// Journals then applies one command; returns its sequence number.
    pub fn submit(&mut self, cmd: &Command, out: &mut Vec<Event>) -> Result<u64, JournalError> {
        let seq = self.next_seq;
        self.scratch.clear();
        encode_record(cmd, &mut self.scratch);
        self.journal.append_raw(seq, &self.scratch)?;
        self.next_seq += 1;
        self.engine.apply(cmd, out);
        if self.snapshot_every > 0 && seq.is_multiple_of(self.snapshot_every) {
            let state = self.engine.snapshot();
            self.journal.put_snapshot(seq, &state)?;
        }
        Ok(seq)
    }

    /// Makes everything submitted so far durable (call once per batch).
    pub fn flush(&mut self) -> Result<(), JournalError> {
        self.journal.flush()
    }

    /// The engine (read-only).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The journal.
    pub fn journal(&self) -> &J {
        &self.journal
    }

    /// Sequence number the next command will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}
