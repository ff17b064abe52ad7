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
    /// Opens (or creates) a journal database at `path`, waiting for a
    /// previous owner's lock (see [`crate::sled_open::open_waiting`]).
    pub fn open(path: impl AsRef<Path>) -> Result<SledJournal, JournalError> {
        let path = path.as_ref();
        Self::from_db(crate::sled_open::open_waiting(|| {
            sled::Config::new().path(path)
        })?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::command::NewOrder;
    use crate::engine::tests::{check_after, test_config, Seen};
    use crate::engine::types::{OrdType, Side, Tif};

    /// A deterministic mixed flow (place, cancel, replace, market, stops, expiry) from an LCG.
    fn flow(n: usize, seed: u64) -> Vec<Command> {
        let mut x = seed;
        let mut rnd = move |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let mut cmds = Vec::with_capacity(n);
        let mut placed = 0u64;
        for i in 0..n as u64 {
            let ts = 1_000 + i * 10;
            let r = rnd(100);
            let cmd = if r < 55 || placed == 0 {
                placed += 1;
                let side = if rnd(2) == 0 { Side::Buy } else { Side::Sell };
                let kind = rnd(20);
                let ord_type = match kind {
                    0 => OrdType::Market,
                    1 => OrdType::Stop,
                    2 => OrdType::StopLimit,
                    _ => OrdType::Limit,
                };
                let tif = match rnd(10) {
                    0 => Tif::Ioc,
                    1 => Tif::Fok,
                    2 => Tif::Gtd,
                    3 => Tif::Day,
                    _ => Tif::Gtc,
                };
                let tif = if ord_type == OrdType::Market {
                    Tif::Ioc
                } else {
                    tif
                };
                let price = 9_980 + rnd(40) as i64;
                Command::NewOrder(NewOrder {
                    ts_ns: ts,
                    owner: 1,
                    account: rnd(5) as u32,
                    instrument: rnd(2) as u32,
                    side,
                    ord_type,
                    price,
                    stop_price: price + rnd(10) as i64 - 5,
                    qty: 1 + rnd(20),
                    tif,
                    expire_ts_ns: ts + rnd(500),
                    post_only: false,
                    max_floor: if rnd(8) == 0 && tif.rests() { 3 } else { 0 },
                    client_ref: i,
                })
            } else if r < 85 {
                // Ids are (generation << 32) | slot; small generations and slots hit live orders.
                let id = ((1 + rnd(3)) << 32) | rnd(placed.min(200));
                Command::Cancel {
                    ts_ns: ts,
                    owner: 1,
                    account: rnd(5) as u32,
                    order_id: id,
                    client_ref: i,
                }
            } else if r < 95 {
                let id = ((1 + rnd(3)) << 32) | rnd(placed.min(200));
                Command::Replace {
                    ts_ns: ts,
                    owner: 1,
                    account: rnd(5) as u32,
                    order_id: id,
                    client_ref: i,
                    new_qty: 1 + rnd(25),
                    new_price: 9_980 + rnd(40) as i64,
                    new_stop_price: 9_980 + rnd(40) as i64,
                }
            } else if r < 97 {
                Command::Tick { ts_ns: ts + 200 }
            } else if r < 98 {
                Command::EndOfDay { ts_ns: ts }
            } else if r < 99 {
                Command::Halt {
                    ts_ns: ts,
                    instrument: rnd(2) as u32,
                }
            } else {
                Command::Resume {
                    ts_ns: ts,
                    instrument: rnd(2) as u32,
                }
            };
            cmds.push(cmd);
        }
        cmds
    }

    fn run_all(cmds: &[Command]) -> (Engine, Vec<Vec<Event>>) {
        let mut e = Engine::new(&test_config()).unwrap();
        let mut all = Vec::new();
        let mut seen = Seen::default();
        for c in cmds {
            let mut out = Vec::new();
            e.apply(c, &mut out);
            check_after(&e, &out, &mut seen).unwrap();
            all.push(out);
        }
        (e, all)
    }

    #[test]
    fn synthetic_flow_is_not_trivial() {
        let (e, events) = run_all(&flow(5_000, 7));
        let trades = events
            .iter()
            .flatten()
            .filter(|e| matches!(e, Event::Trade { .. }))
            .count();
        let cancels = events
            .iter()
            .flatten()
            .filter(|e| matches!(e, Event::Cancelled { .. }))
            .count();
        assert!(
            trades > 500 && cancels > 300,
            "trades {trades} cancels {cancels}"
        );
        assert!(e.order_count() > 0);
    }

    #[test]
    fn sled_replay_from_scratch_and_from_snapshot_is_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = test_config();
        cfg.engine.snapshot_every = 700;
        let cmds = flow(3_000, 42);
        let (direct, direct_events) = run_all(&cmds);

        let mut live = JournaledEngine::open(&cfg, SledJournal::open(dir.path()).unwrap()).unwrap();
        let mut live_events = Vec::new();
        for c in &cmds {
            let mut out = Vec::new();
            live.submit(c, &mut out).unwrap();
            live_events.push(out);
        }
        live.flush().unwrap();
        assert_eq!(live_events, direct_events);
        assert_eq!(live.engine().snapshot(), direct.snapshot());
        drop(live);

        let j = SledJournal::open(dir.path()).unwrap();
        assert_eq!(
            verify(&j).unwrap(),
            VerifyReport {
                records: 3_000,
                range: Some((1, 3_000))
            }
        );

        // From scratch: no snapshots.
        let mut scratch_only = MemJournal::default();
        for r in j.raw_from(0) {
            let (seq, bytes) = r.unwrap();
            scratch_only.append_raw(seq, &bytes).unwrap();
        }
        let mut replayed = Vec::new();
        let rec = recover(&cfg, &scratch_only, |_, ev| replayed.push(ev.to_vec())).unwrap();
        assert_eq!(rec.snapshot_seq, None);
        assert_eq!(replayed, direct_events);
        assert_eq!(rec.engine.snapshot(), direct.snapshot());
        assert_eq!(rec.next_seq, 3_001);

        // From the latest snapshot (2_800): the tail's events are the original tail's.
        let mut tail = Vec::new();
        let rec = recover(&cfg, &j, |seq, ev| tail.push((seq, ev.to_vec()))).unwrap();
        assert_eq!(rec.snapshot_seq, Some(2_800));
        assert_eq!(rec.replayed, 200);
        for (seq, ev) in &tail {
            assert_eq!(ev, &direct_events[*seq as usize - 1]);
        }
        assert_eq!(rec.engine.snapshot(), direct.snapshot());

        // Reopening continues the sequence.
        let mut again = JournaledEngine::open(&cfg, j).unwrap();
        assert_eq!(again.next_seq(), 3_001);
        let mut out = Vec::new();
        assert_eq!(
            again.submit(&Command::Tick { ts_ns: 1 }, &mut out).unwrap(),
            3_001
        );
    }

    #[test]
    fn verify_names_the_corrupt_record_and_recovery_refuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = SledJournal::open(dir.path()).unwrap();
        for (i, c) in flow(100, 3).iter().enumerate() {
            j.append(i as u64 + 1, c).unwrap();
        }
        let good = j.raw_from(57).next().unwrap().unwrap().1;
        let mut bad = good.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        j.overwrite_raw(57, &bad).unwrap();
        match verify(&j) {
            Err(JournalError::Corrupt { seq: 57, reason }) => {
                assert!(reason.contains("checksum"), "{reason}")
            }
            other => panic!("expected corruption at 57, got {other:?}"),
        }
        let err = recover(&test_config(), &j, |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("record 57"), "{err}");
        // A truncated record is caught too.
        j.overwrite_raw(57, &good[..3]).unwrap();
        assert!(matches!(
            verify(&j),
            Err(JournalError::Corrupt { seq: 57, .. })
        ));
    }

    #[test]
    fn appends_must_be_contiguous_and_gaps_are_reported() {
        let mut j = MemJournal::default();
        j.append(1, &Command::Tick { ts_ns: 1 }).unwrap();
        assert!(matches!(
            j.append(3, &Command::Tick { ts_ns: 2 }),
            Err(JournalError::OutOfOrder { .. })
        ));
        j.records.insert(5, j.records[&1].clone());
        assert!(matches!(
            verify(&j),
            Err(JournalError::Gap {
                expected: 2,
                found: 5
            })
        ));
    }

    #[test]
    fn damaged_snapshot_is_skipped_for_an_older_one() {
        let mut cfg = test_config();
        cfg.engine.snapshot_every = 100;
        let cmds = flow(350, 9);
        let mut live = JournaledEngine::open(&cfg, MemJournal::default()).unwrap();
        let mut out = Vec::new();
        for c in &cmds {
            live.submit(c, &mut out).unwrap();
        }
        let want = live.engine().snapshot();
        let mut j = live.journal().clone();
        j.snapshots.get_mut(&300).unwrap()[10] ^= 1;
        let rec = recover(&cfg, &j, |_, _| {}).unwrap();
        assert_eq!(rec.snapshot_seq, Some(200));
        assert_eq!(rec.skipped_snapshots.len(), 1);
        assert_eq!(rec.engine.snapshot(), want);
    }

    #[test]
    fn snapshot_restore_rejects_garbage_and_other_configs() {
        let (e, _) = run_all(&flow(500, 11));
        let snap = e.snapshot();
        let cfg = test_config();
        assert!(Engine::restore(&cfg, &snap[..snap.len() - 1]).is_err());
        assert_eq!(
            Engine::restore(&cfg, b"nonsense").unwrap_err(),
            SnapshotError::BadHeader
        );
        let mut other = cfg.clone();
        other.instruments.pop();
        assert!(matches!(
            Engine::restore(&other, &snap),
            Err(SnapshotError::ConfigMismatch(_))
        ));
        // Flipping any single byte never panics and never yields an engine failing its invariants.
        for i in (0..snap.len()).step_by(7) {
            let mut s = snap.clone();
            s[i] ^= 0xA5;
            if let Ok(r) = Engine::restore(&cfg, &s) {
                r.check_invariants().unwrap();
            }
        }
    }
}
