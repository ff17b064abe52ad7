//! The gateway's durable log: ONE sled record per processing batch holding
//! every journaled input of the batch, the new sequence-number state of each
//! session the batch touched, and every outbound application message it
//! stored. One insert and one flush per batch (group commit), atomic by
//! construction: an input, the consumption of its MsgSeqNum and the messages
//! it produced are durable together or not at all (ARCHITECTURE rule 3).
//!
//! Per-session state ([`BatchSessionStore`]) is an in-memory index rebuilt by
//! scanning the records at start-up; stored messages are read back from
//! their record on resend.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};

use crate::fix::time::UtcNanos;

use super::log_backend::{batch_number, LogBackend, SledBackend};
use super::store::{MessageStore, StoreError};

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

/// How many outbound MsgSeqNums each commit reserves beyond a session's
/// next one. While the store cannot write, a session may still send up to
/// this many messages (heartbeats, rejects) whose numbers are not durable;
/// after a crash the gateway continues from the reservation, so a number
/// is never used twice (the client sees a gap and gets a gap fill).
pub const SEQ_RESERVE: u64 = 1000;

/// How a commit makes data durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushMode {
    /// fsync before any byte of the batch is sent (default).
    #[default]
    Fsync,
    /// Hand each batch to the OS (written to the file, not synced) before
    /// any byte of its output is sent, like QuickFIX's FileStore: a crash
    /// of the process loses nothing; sled syncs the file every 200 ms, so a
    /// crash of the machine may lose the last 200 ms.
    Os,
}

const MAGIC: u32 = 0x4658_4742; // "FXGB"
const VERSION: u8 = 2;
/// The same layout, written once the journal was compacted: an older fixgw
/// (which knows versions 1 and 2) would replay the incomplete journal as if
/// it were whole, so it must refuse the store instead.
const COMPACTED_VERSION: u8 = 3;
/// Where the version byte is in a record.
const VERSION_AT: usize = 4;
const HEADER_LEN: usize = 4 + 1 + 4 + 4;

/// Where a stored message lives: batch number and byte range in its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    batch: u64,
    offset: u32,
    len: u32,
}

/// The persistent state of one session, backed by the batch log.
pub struct BatchSessionStore {
    key: Arc<str>,
    backend: Arc<dyn LogBackend>,
    next_sender: u64,
    /// Outbound MsgSeqNums below this are durably reserved (see [`SEQ_RESERVE`]).
    reserved: u64,
    /// Recovered after an unclean stop: the next MsgSeqNum the last record
    /// had, before continuing after the reservation.
    jumped_from: Option<u64>,
    next_target: u64,
    created: UtcNanos,
    index: BTreeMap<u64, Loc>,
    /// The records holding the messages in `index` (and perhaps some a
    /// lowered MsgSeqNum replaced since), ascending: what compaction keeps.
    records: Vec<u64>,
    pending: BTreeMap<u64, Bytes>,
    reset_pending: bool,
    dirty: bool,
    /// The last batch record this session's state was written in.
    last_batch: u64,
}

impl BatchSessionStore {
    fn new(key: Arc<str>, backend: Arc<dyn LogBackend>, now: UtcNanos) -> BatchSessionStore {
        BatchSessionStore {
            key,
            backend,
            next_sender: 1,
            reserved: 1,
            jumped_from: None,
            next_target: 1,
            created: now,
            index: BTreeMap::new(),
            records: Vec::new(),
            pending: BTreeMap::new(),
            reset_pending: false,
            dirty: false,
            last_batch: 0,
        }
    }

    /// The session key this store belongs to.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// True when the store has changes not yet committed.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The last batch record this session's state was written in (0:
    /// none). While it is not durable, neither is anything the session sent
    /// since.
    pub fn last_batch(&self) -> u64 {
        self.last_batch
    }

    /// A stored message is in the record `loc` says (records come in
    /// batch order).
    fn index_message(&mut self, seq: u64, loc: Loc) {
        self.index.insert(seq, loc);
        if self.records.last() != Some(&loc.batch) {
            self.records.push(loc.batch);
        }
    }

    /// A reset voided every stored message.
    fn void_messages(&mut self) {
        self.index.clear();
        self.records.clear();
    }

    /// Adds the records this session needs among `range` to `out`: those
    /// holding its stored messages, and its last state.
    fn needed_records(&self, range: std::ops::RangeInclusive<u64>, out: &mut Vec<u64>) {
        let from = self.records.partition_point(|b| b < range.start());
        let to = self.records.partition_point(|b| b <= range.end());
        out.extend(&self.records[from..to]);
        if range.contains(&self.last_batch) {
            out.push(self.last_batch);
        }
    }

    /// Number of stored messages (committed).
    pub fn stored_messages(&self) -> usize {
        self.index.len()
    }

    /// True while every outbound MsgSeqNum assigned so far is below the
    /// durable reservation, so the messages may be sent before the next
    /// commit without their numbers being used again after a crash.
    pub fn within_reservation(&self) -> bool {
        self.next_sender <= self.reserved
    }

    /// After an unclean stop: the next outbound MsgSeqNum the store had
    /// recorded (the session continues after its reservation instead).
    pub fn next_sender_before_unclean_stop(&self) -> Option<u64> {
        self.jumped_from
    }

    /// True when messages were stored since the last commit.
    pub fn has_unwritten_messages(&self) -> bool {
        !self.pending.is_empty()
    }
}

impl MessageStore for BatchSessionStore {
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
        if !self.reset_pending {
            let mut cached: Option<(u64, Bytes)> = None;
            for (&seq, loc) in self.index.range(begin..=end) {
                let record = match &cached {
                    Some((b, r)) if *b == loc.batch => r.clone(),
                    _ => {
                        let r = self.backend.get(loc.batch)?.ok_or_else(|| {
                            StoreError::Corrupt(format!("batch {} missing", loc.batch))
                        })?;
                        cached = Some((loc.batch, r.clone()));
                        r
                    }
                };
                let (s, e) = (loc.offset as usize, (loc.offset + loc.len) as usize);
                let bytes = record
                    .get(s..e)
                    .ok_or_else(|| StoreError::Corrupt(format!("batch {} too short", loc.batch)))?;
                out.insert(seq, record.slice_ref(bytes));
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
        self.reset_pending = true;
        self.dirty = true;
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        // Durability is the batch log's job: `BatchLog::commit`.
        Ok(())
    }
}

/// One decoded batch record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// Journaled inputs (opaque to this layer), in processing order.
    pub inputs: Vec<Bytes>,
    /// Session states after the batch.
    pub sessions: Vec<SessionDelta>,
    /// Stored outbound messages: (index into `sessions`, MsgSeqNum, bytes, offset in record).
    pub messages: Vec<(u16, u64, Bytes, u32)>,
}

/// A session's state as of the end of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDelta {
    /// Session key.
    pub key: String,
    /// The session was reset during the batch (stored messages before it are void).
    pub reset: bool,
    /// Creation time.
    pub created: UtcNanos,
    /// Next outbound MsgSeqNum.
    pub next_sender: u64,
    /// Next expected inbound MsgSeqNum.
    pub next_target: u64,
    /// Outbound MsgSeqNums below this may have been sent before the next
    /// record (see [`SEQ_RESERVE`]); a restart continues from here.
    pub reserved: u64,
}

/// The log: a sled tree of batch records keyed by big-endian batch number.
pub struct BatchLog {
    backend: Arc<dyn LogBackend>,
    mode: FlushMode,
    next_batch: u64,
    /// The last write failed: reopen the backend before the next.
    failed: bool,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// Commits insert without flushing; [`BatchLog::flushed`] reports
    /// flushes made elsewhere (the gateway's flusher thread).
    pipelined: bool,
    /// Records written but not known durable, oldest first (re-written
    /// after a failure). Empty unless pipelined.
    inflight: VecDeque<(u64, Vec<u8>)>,
    /// Buffers of durable records, for the next records.
    spare: Vec<Vec<u8>>,
    /// Every batch up to this one is durable.
    durable: u64,
    /// The batch numbers the log holds, as runs (first, last): what
    /// [`BatchLog::plan_compaction`] looks through.
    runs: Vec<(u64, u64)>,
    /// The records that reset a session: compaction keeps them (see
    /// [`BatchLog::compact`]).
    resets: Vec<u64>,
    /// Records that sessions no longer configured need (see
    /// [`BatchLog::keep_for`]), sorted.
    pinned: Vec<u64>,
    /// Records planned for deletion, oldest first (see
    /// [`BatchLog::compact_some`]).
    doomed: VecDeque<u64>,
    /// Deletions wait until a record with [`COMPACTED_VERSION`] is written:
    /// the record numbered this (0: none to wait for).
    doomed_after: u64,
    /// The last plan looked at the records up to this one.
    planned_upto: u64,
    /// The version records are written with.
    version: u8,
}

/// What start-up recovered: every session's state and the inputs to replay.
pub struct Recovered {
    /// Session stores by key.
    pub sessions: HashMap<String, BatchSessionStore>,
    /// The venue checkpoints to restore from, newest first (with
    /// [`Replay::SinceCheckpoint`]): those that read back intact and follow
    /// a batch the log holds (see [`LogBackend::put_checkpoint`]).
    pub checkpoints: Vec<Checkpoint>,
    /// The journaled inputs to replay, oldest first: those after the oldest
    /// of `checkpoints`, or every one.
    pub inputs: Vec<Bytes>,
    /// Journaled inputs before the oldest checkpoint (not in `inputs`).
    pub inputs_before_checkpoint: u64,
    /// Number of batch records scanned.
    pub batches: u64,
    /// The first and the last batch number missing from the log, if any
    /// (their records were compacted away, see [`BatchLog::compact`]): the
    /// journal can then be replayed only from a checkpoint taken after the
    /// last.
    pub missing: Option<(u64, u64)>,
}

impl Recovered {
    /// How far start-up may compact the journal once the checkpoint after
    /// batch `restored` has restored: up to the intact checkpoint older
    /// than it, which stays complete as its fallback. None when the
    /// newest did not restore (the older one did: it has no fallback) or
    /// no older one read back intact (a first checkpoint, or a damaged
    /// previous one): nothing is deleted until there are two again.
    pub fn compaction_bound(&self, restored: u64) -> Option<u64> {
        match &self.checkpoints[..] {
            [newest, older, ..] if newest.after == restored => Some(older.after),
            _ => None,
        }
    }
}

/// A venue checkpoint found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The batch it was taken after.
    pub after: u64,
    /// The venue's state (`Venue::checkpoint`).
    pub state: Bytes,
    /// Index in [`Recovered::inputs`] of the first input after it.
    pub first_input: usize,
}

/// Which journaled inputs start-up keeps for replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Those after the newest venue checkpoint (the gateway).
    SinceCheckpoint,
    /// Every one (inspection tools and tests that replay the whole journal).
    All,
}

impl BatchLog {
    /// Opens the log in `dir` (sled) and rebuilds per-session state from it.
    pub fn open(
        dir: &std::path::Path,
        mode: FlushMode,
    ) -> Result<(BatchLog, Recovered), StoreError> {
        BatchLog::open_on(
            Arc::new(SledBackend::open(dir, mode)?),
            mode,
            Replay::SinceCheckpoint,
        )
    }

    /// Opens the log in `dir` for an operator command (`fsync`; see
    /// [`SledBackend::open_for_tool`]).
    pub fn open_for_tool(dir: &std::path::Path) -> Result<(BatchLog, Recovered), StoreError> {
        BatchLog::open_on(
            Arc::new(SledBackend::open_for_tool(dir)?),
            FlushMode::Fsync,
            Replay::All,
        )
    }

    /// Opens the log on any backend and rebuilds per-session state from it.
    /// After an unclean stop a session continues from its reserved
    /// MsgSeqNum (see [`SEQ_RESERVE`]).
    pub fn open_on(
        backend: Arc<dyn LogBackend>,
        mode: FlushMode,
        replay: Replay,
    ) -> Result<(BatchLog, Recovered), StoreError> {
        let mut rec = Recovered {
            sessions: HashMap::new(),
            checkpoints: Vec::new(),
            inputs: Vec::new(),
            inputs_before_checkpoint: 0,
            batches: 0,
            missing: None,
        };
        let mut next_batch = 1;
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut resets: Vec<u64> = Vec::new();
        let mut candidates: Vec<(u64, Bytes, Option<usize>)> = match replay {
            Replay::SinceCheckpoint => backend
                .checkpoints()
                .into_iter()
                .filter_map(|c| {
                    c.map_err(|e| tracing::warn!(error = %e, "a venue checkpoint cannot be read; it is not used"))
                        .ok()
                })
                .map(|(after, state)| (after, state, None))
                .collect(),
            Replay::All => Vec::new(),
        };
        // Inputs up to the oldest checkpoint are not kept.
        let keep_after = candidates.iter().map(|c| c.0).min().unwrap_or(0);
        backend.scan(&mut |batch, v| {
            let record =
                decode_view(v).map_err(|e| StoreError::Corrupt(format!("batch {batch}: {e}")))?;
            if batch != next_batch {
                let first = rec.missing.map_or(next_batch, |m| m.0);
                rec.missing = Some((first, batch - 1));
            }
            push_run(&mut runs, batch, batch);
            let mut keys: Vec<Arc<str>> = Vec::with_capacity(record.sessions.len());
            for d in &record.sessions {
                let key: Arc<str> = Arc::from(d.key.as_str());
                let s = rec.sessions.entry(d.key.clone()).or_insert_with(|| {
                    BatchSessionStore::new(key.clone(), backend.clone(), d.created)
                });
                if d.reset {
                    s.void_messages();
                    if resets.last() != Some(&batch) {
                        resets.push(batch);
                    }
                }
                s.created = d.created;
                s.next_sender = d.next_sender;
                s.reserved = d.reserved;
                s.next_target = d.next_target;
                s.last_batch = batch;
                keys.push(key);
            }
            for (si, seq, bytes, offset) in &record.messages {
                let key = keys.get(*si as usize).ok_or_else(|| {
                    StoreError::Corrupt(format!("batch {batch}: bad session index"))
                })?;
                if let Some(s) = rec.sessions.get_mut(&**key) {
                    s.index_message(
                        *seq,
                        Loc {
                            batch,
                            offset: *offset,
                            len: bytes.len() as u32,
                        },
                    );
                }
            }
            if batch <= keep_after {
                rec.inputs_before_checkpoint += record.inputs.len() as u64;
            } else {
                for c in candidates.iter_mut().filter(|c| c.0 < batch) {
                    c.2.get_or_insert(rec.inputs.len());
                }
                // One allocation for the record's inputs, shared by their slices.
                let all: Bytes = record.inputs.concat().into();
                let mut at = 0;
                rec.inputs.extend(record.inputs.iter().map(|i| {
                    at += i.len();
                    all.slice(at - i.len()..at)
                }));
            }
            rec.batches += 1;
            next_batch = batch + 1;
            Ok(())
        })?;
        let last = next_batch - 1;
        if candidates.iter().any(|c| c.0 > last) {
            tracing::warn!(
                last_batch = last,
                "a venue checkpoint is newer than the log (taken after batches the log does not hold); it is deleted"
            );
            // The batch numbers after the log's end will be used again, for
            // other inputs: the checkpoint must not be found again then.
            backend.drop_checkpoints_after(last)?;
            candidates.retain(|c| c.0 <= last);
        }
        if candidates.is_empty() && keep_after > 0 {
            rec.inputs_before_checkpoint = 0;
            rec.inputs = read_all_inputs(&*backend)?;
        }
        rec.checkpoints = candidates
            .into_iter()
            .map(|(after, state, first)| Checkpoint {
                after,
                state,
                first_input: first.unwrap_or(rec.inputs.len()),
            })
            .collect();
        let mut jumped = 0;
        for s in rec.sessions.values_mut() {
            if s.reserved > s.next_sender {
                s.jumped_from = Some(s.next_sender);
                s.next_sender = s.reserved;
                jumped += 1;
            }
        }
        if jumped > 0 {
            tracing::info!(
                sessions = jumped,
                "the last run did not stop cleanly: outbound MsgSeqNums continue after their reservation (clients get a gap fill)"
            );
        }
        Ok((
            BatchLog {
                backend,
                mode,
                next_batch,
                failed: false,
                buf: Vec::with_capacity(64 * 1024),
                pipelined: false,
                inflight: VecDeque::new(),
                spare: Vec::new(),
                durable: next_batch - 1,
                runs,
                resets,
                pinned: Vec::new(),
                doomed: VecDeque::new(),
                doomed_after: 0,
                planned_upto: 0,
                version: if rec.missing.is_some() {
                    COMPACTED_VERSION
                } else {
                    VERSION
                },
            },
            rec,
        ))
    }

    /// Every journaled input, oldest first, read from the records again
    /// (start-up when the newest checkpoint cannot be restored).
    pub fn all_inputs(&self) -> Result<Vec<Bytes>, StoreError> {
        read_all_inputs(&*self.backend)
    }

    /// Start-up's compaction: plans it (see [`BatchLog::plan_compaction`]
    /// for which records go; `sessions`: every session the log holds, as
    /// start-up recovered them), marks the newest record compacted, then
    /// deletes every planned record at once and flushes. Returns how many.
    pub fn compact(
        &mut self,
        covered: u64,
        sessions: &HashMap<String, BatchSessionStore>,
    ) -> Result<u64, StoreError> {
        const CHUNK: usize = 10_000;
        let planned = self.plan_compaction(covered, sessions.values());
        if planned == 0 {
            return Ok(0);
        }
        let result = self.mark_compacted().and_then(|()| {
            self.doomed_after = 0;
            while self.compact_some(CHUNK)? > 0 {}
            self.backend.flush()
        });
        // Whatever was not removed stays; the next commit reopens first
        // (a sled that failed a write refuses the next).
        self.failed |= result.is_err();
        self.doomed.clear();
        result.map(|()| planned)
    }

    /// Plans the deletion of the records nothing needs any more, for
    /// [`BatchLog::compact_some`] to carry out, and returns how many: those
    /// up to batch `covered` (a venue checkpoint taken after it, or later,
    /// holds their inputs, and it is not the newest checkpoint: that one
    /// needs a fallback) in which every stored message was voided by a
    /// later reset of its session and every session's state is superseded
    /// by a later record (`sessions`: every session the log holds; those
    /// no longer configured are given by [`BatchLog::keep_for`]). The newest
    /// record always stays: the next batch number follows it. So does
    /// every record that resets a session: an older record kept for
    /// another session's messages may hold messages the reset voided,
    /// which start-up's scan would otherwise index again. Afterwards the
    /// journal can be replayed only from a checkpoint taken after
    /// `covered` ([`Recovered::missing`]), so records are written with
    /// [`COMPACTED_VERSION`] from now on, and no deletion is made before
    /// the first of them.
    pub fn plan_compaction<'a>(
        &mut self,
        covered: u64,
        sessions: impl IntoIterator<Item = &'a BatchSessionStore>,
    ) -> u64 {
        let upto = covered.min(self.next_batch.saturating_sub(2));
        // What the last plan kept stays needed unless a session reset
        // since: only the records after it are looked at then.
        let after = match self.resets.last() {
            Some(r) if *r > self.planned_upto => 0,
            _ => self.planned_upto,
        };
        self.planned_upto = self.planned_upto.max(upto);
        if upto <= after {
            return 0;
        }
        let range = after + 1..=upto;
        let mut needed: Vec<u64> = Vec::new();
        for s in sessions {
            s.needed_records(range.clone(), &mut needed);
        }
        needed.extend(self.pinned.iter().chain(&self.resets));
        needed.retain(|b| range.contains(b));
        needed.sort_unstable();
        needed.dedup();
        let mut runs = Vec::with_capacity(self.runs.len());
        let before = self.doomed.len();
        for &(first, last) in &self.runs {
            if first <= after {
                push_run(&mut runs, first, last.min(after));
            }
            for b in first.max(after + 1)..=last.min(upto) {
                if needed.binary_search(&b).is_ok() {
                    push_run(&mut runs, b, b);
                } else {
                    self.doomed.push_back(b);
                }
            }
            if last > upto {
                push_run(&mut runs, first.max(upto + 1), last);
            }
        }
        self.runs = runs;
        let planned = (self.doomed.len() - before) as u64;
        if planned > 0 && self.version != COMPACTED_VERSION {
            self.version = COMPACTED_VERSION;
            self.doomed_after = self.next_batch;
        }
        planned
    }

    /// Deletes up to `most` of the records [`BatchLog::plan_compaction`]
    /// planned, and returns how many; none until a record written with
    /// [`COMPACTED_VERSION`] precedes the deletions in the log (sled
    /// recovers a prefix of its log: a store that lost a record then says
    /// it was compacted). The deletions are durable with the next flush; a
    /// crash before it leaves the records for the next compaction. A
    /// failure drops the plan; the next commit reopens the store first.
    pub fn compact_some(&mut self, most: usize) -> Result<u64, StoreError> {
        if self.doomed.is_empty() || self.failed || self.next_batch <= self.doomed_after {
            return Ok(0);
        }
        let n = most.min(self.doomed.len());
        let chunk: Vec<u64> = self.doomed.drain(..n).collect();
        if let Err(e) = self.backend.remove(&chunk) {
            self.failed = true;
            self.doomed.clear();
            return Err(e);
        }
        Ok(n as u64)
    }

    /// Records planned for deletion and not deleted yet.
    pub fn compaction_pending(&self) -> usize {
        self.doomed.len()
    }

    /// Keeps every record that these sessions need (those no longer
    /// configured: a later configuration may bring them back, and their
    /// clients may ask for their messages again).
    pub fn keep_for<'a>(&mut self, sessions: impl IntoIterator<Item = &'a BatchSessionStore>) {
        for s in sessions {
            s.needed_records(0..=u64::MAX, &mut self.pinned);
        }
        self.pinned.sort_unstable();
        self.pinned.dedup();
    }

    /// Before the first record is deleted: the newest record (which stays)
    /// is written again with [`COMPACTED_VERSION`], durably, and so is
    /// every record after it.
    fn mark_compacted(&mut self) -> Result<(), StoreError> {
        self.version = COMPACTED_VERSION;
        let newest = self.next_batch - 1;
        let mut record = self
            .backend
            .get(newest)?
            .ok_or_else(|| StoreError::Corrupt(format!("batch {newest} missing")))?
            .to_vec();
        match record.get_mut(VERSION_AT) {
            Some(v) if *v != COMPACTED_VERSION => *v = COMPACTED_VERSION,
            _ => return Ok(()),
        }
        self.backend.insert(newest, &record)?;
        self.backend.flush()
    }

    /// From now on, commits write without flushing (unless asked to flush
    /// at once); the caller flushes the backend, e.g. on another thread,
    /// and reports it with [`BatchLog::flushed`] or
    /// [`BatchLog::flush_failed`]. Only with [`FlushMode::Fsync`].
    pub fn set_pipelined(&mut self) {
        self.pipelined = self.mode == FlushMode::Fsync;
    }

    /// True when commits do not flush themselves.
    pub fn is_pipelined(&self) -> bool {
        self.pipelined
    }

    /// The backend (for a flusher thread).
    pub fn backend(&self) -> Arc<dyn LogBackend> {
        self.backend.clone()
    }

    /// The newest batch written (0: none).
    pub fn last_written(&self) -> u64 {
        self.next_batch - 1
    }

    /// Every batch up to this one is durable.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// A flush that began after batch `upto` was written succeeded.
    pub fn flushed(&mut self, upto: u64) {
        self.durable = self.durable.max(upto);
        while self.inflight.front().is_some_and(|(b, _)| *b <= upto) {
            if let Some((_, buf)) = self.inflight.pop_front() {
                self.recycle(buf);
            }
        }
    }

    /// A flush failed: what was written since the last durable batch is
    /// written again, into a reopened backend, by the next commit.
    pub fn flush_failed(&mut self) {
        if !self.inflight.is_empty() {
            self.failed = true;
        }
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 4 {
            self.spare.push(buf);
        }
    }

    /// A store for a session that has no record yet.
    pub fn new_session(&self, key: &str, now: UtcNanos) -> BatchSessionStore {
        BatchSessionStore::new(Arc::from(key), self.backend.clone(), now)
    }

    /// Writes one record with `inputs` and every dirty session's changes,
    /// reserving [`SEQ_RESERVE`] outbound MsgSeqNums per session, then
    /// flushes (per the flush mode). Returns false if nothing was dirty.
    ///
    /// A failed commit changes nothing in memory: the same inputs and
    /// changes (plus later ones) are written by the next call, which first
    /// reopens the backend so that only what was durable is kept.
    pub fn commit<'a>(
        &mut self,
        inputs: &[Bytes],
        stores: impl Iterator<Item = &'a mut BatchSessionStore>,
    ) -> Result<bool, StoreError> {
        self.commit_inner(inputs, stores, SEQ_RESERVE, true)
    }

    /// The last commit of a clean stop (or an operator's exact change):
    /// every given session's state with no reservation, so the next start
    /// continues without a gap.
    pub fn commit_exact<'a>(
        &mut self,
        inputs: &[Bytes],
        stores: impl Iterator<Item = &'a mut BatchSessionStore>,
    ) -> Result<bool, StoreError> {
        self.commit_inner(inputs, stores, 0, true)
    }

    /// [`BatchLog::commit`], but when pipelined it does not flush unless
    /// `flush` is set (then it waits for everything written so far).
    pub fn commit_flushing<'a>(
        &mut self,
        inputs: &[Bytes],
        stores: impl Iterator<Item = &'a mut BatchSessionStore>,
        flush: bool,
    ) -> Result<bool, StoreError> {
        self.commit_inner(inputs, stores, SEQ_RESERVE, flush)
    }

    fn commit_inner<'a>(
        &mut self,
        inputs: &[Bytes],
        stores: impl Iterator<Item = &'a mut BatchSessionStore>,
        reserve: u64,
        flush: bool,
    ) -> Result<bool, StoreError> {
        // With no reservation, a session whose last record reserved numbers
        // is written too (its exact next number).
        let dirty: Vec<&mut BatchSessionStore> = stores
            .filter(|s| s.dirty || (reserve == 0 && s.reserved != s.next_sender))
            .collect();
        let mut flush = flush || !self.pipelined;
        let nothing = inputs.is_empty() && dirty.is_empty();
        // Nothing to write, nothing to rewrite, nothing in flight to wait for.
        if nothing && !self.failed && (!flush || self.inflight.is_empty()) {
            return Ok(false);
        }
        if self.failed {
            // What was written since the last durable batch is written
            // again, and this commit waits until all of it is durable.
            self.backend.reopen()?;
            for (b, record) in &self.inflight {
                self.backend.insert(*b, record)?;
            }
            self.failed = false;
            flush = true;
        }
        let batch = self.next_batch;
        let mut locs: Vec<(usize, u64, u32, u32)> = Vec::new();
        if !nothing {
            self.buf.clear();
            encode_into(
                &mut self.buf,
                self.version,
                inputs,
                &dirty,
                reserve,
                &mut locs,
            );
            if let Err(e) = self.backend.insert(batch, &self.buf) {
                self.failed = true;
                return Err(e);
            }
        }
        // `os`: never pipelined, so every commit flushes, which only hands
        // the record to the OS (see `FlushMode::Os`).
        if flush {
            if let Err(e) = self.backend.flush() {
                self.failed = true;
                return Err(e);
            }
        }
        if nothing {
            self.flushed(self.last_written());
            return Ok(false);
        }
        self.next_batch += 1;
        push_run(&mut self.runs, batch, batch);
        let mut dirty = dirty;
        for s in dirty.iter_mut() {
            if s.reset_pending {
                s.void_messages();
                s.reset_pending = false;
                if self.resets.last() != Some(&batch) {
                    self.resets.push(batch);
                }
            }
            s.reserved = s.next_sender + reserve;
            s.last_batch = batch;
        }
        for (si, seq, offset, len) in locs {
            dirty[si].index_message(seq, Loc { batch, offset, len });
        }
        for s in dirty.iter_mut() {
            s.pending.clear();
            s.dirty = false;
        }
        if flush {
            self.flushed(batch);
        } else {
            let spare = self.spare.pop().unwrap_or_default();
            let record = std::mem::replace(&mut self.buf, spare);
            self.inflight.push_back((batch, record));
        }
        Ok(true)
    }

    /// Number of the next batch record.
    pub fn next_batch(&self) -> u64 {
        self.next_batch
    }
}

/// Adds batches `first..=last` to `runs`, after its last run.
fn push_run(runs: &mut Vec<(u64, u64)>, first: u64, last: u64) {
    match runs.last_mut() {
        Some((_, l)) if *l + 1 >= first => *l = (*l).max(last),
        _ => runs.push((first, last)),
    }
}

/// True when `dir` already holds a store, so inspection tools can say "no
/// store here" instead of creating an empty one.
pub fn store_exists(dir: &std::path::Path) -> bool {
    dir.join("db").is_file()
}

/// True when opening failed because another process (a running gateway)
/// holds the store's lock.
pub fn is_locked(e: &StoreError) -> bool {
    matches!(e, StoreError::Io(m) if m.contains("could not acquire lock"))
}

/// Read-only access to the raw batch records, for inspection tools
/// (`fixgw journal`): unlike [`BatchLog::open`] it rebuilds nothing, so a
/// damaged record can be reported with its batch number and the rest read.
pub struct BatchReader {
    _db: sled::Db,
    tree: sled::Tree,
    dir: std::path::PathBuf,
}

impl BatchReader {
    /// Opens the store in `dir` (taking its lock, like the gateway).
    pub fn open(dir: &std::path::Path) -> Result<BatchReader, StoreError> {
        let (db, tree) = SledBackend::open_tree_for_tool(dir)?;
        Ok(BatchReader {
            _db: db,
            tree,
            dir: dir.to_path_buf(),
        })
    }

    /// The last batch number missing before the newest record (compacted
    /// away), if any.
    pub fn last_missing(&self) -> Result<Option<u64>, StoreError> {
        let mut expected = 1;
        let mut missing = None;
        for key in self.tree.iter().keys() {
            let batch = batch_number(&key.map_err(io)?)?;
            if batch != expected {
                missing = Some(batch - 1);
            }
            expected = batch + 1;
        }
        Ok(missing)
    }

    /// The venue checkpoints stored, newest first (see
    /// [`LogBackend::checkpoints`]).
    pub fn checkpoints(&self) -> Vec<Result<(u64, Bytes), StoreError>> {
        super::log_backend::read_checkpoints(&self.dir)
    }

    /// Number of the last batch record, if any.
    pub fn last_batch(&self) -> Result<Option<u64>, StoreError> {
        match self.tree.last().map_err(io)? {
            Some((k, _)) => batch_number(&k).map(Some),
            None => Ok(None),
        }
    }

    /// Every record as (batch number, undecoded bytes), in batch order;
    /// decode each with [`decode`].
    pub fn records(&self) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> + '_ {
        self.tree.iter().map(|item| {
            let (k, v) = item.map_err(io)?;
            Ok((batch_number(&k)?, v))
        })
    }
}

/// Every journaled input in `backend`'s records, oldest first.
fn read_all_inputs(backend: &dyn LogBackend) -> Result<Vec<Bytes>, StoreError> {
    let mut inputs = Vec::new();
    backend.scan(&mut |batch, v| {
        let record =
            decode_view(v).map_err(|e| StoreError::Corrupt(format!("batch {batch}: {e}")))?;
        inputs.extend(record.inputs.iter().map(|i| Bytes::copy_from_slice(i)));
        Ok(())
    })?;
    Ok(inputs)
}

/// Encodes a record; `locs` receives (session index, seq, offset, len) of
/// every stored message.
fn encode_into(
    buf: &mut Vec<u8>,
    version: u8,
    inputs: &[Bytes],
    sessions: &[&mut BatchSessionStore],
    reserve: u64,
    locs: &mut Vec<(usize, u64, u32, u32)>,
) {
    buf.put_u32(MAGIC);
    buf.put_u8(version);
    buf.put_u32(0); // payload length, patched below
    buf.put_u32(0); // checksum, patched below
    buf.put_u32(inputs.len() as u32);
    for i in inputs {
        buf.put_u32(i.len() as u32);
        buf.put_slice(i);
    }
    buf.put_u32(sessions.len() as u32);
    for s in sessions {
        buf.put_u16(s.key.len() as u16);
        buf.put_slice(s.key.as_bytes());
        buf.put_u8(u8::from(s.reset_pending));
        buf.put_i64(s.created);
        buf.put_u64(s.next_sender);
        buf.put_u64(s.next_target);
        buf.put_u64(s.next_sender + reserve);
    }
    let n_msgs: usize = sessions.iter().map(|s| s.pending.len()).sum();
    buf.put_u32(n_msgs as u32);
    for (si, s) in sessions.iter().enumerate() {
        for (seq, m) in &s.pending {
            buf.put_u16(si as u16);
            buf.put_u64(*seq);
            buf.put_u32(m.len() as u32);
            let offset = buf.len() as u32;
            buf.put_slice(m);
            locs.push((si, *seq, offset, m.len() as u32));
        }
    }
    let payload_len = (buf.len() - HEADER_LEN) as u32;
    buf[5..9].copy_from_slice(&payload_len.to_be_bytes());
    let crc = crc32fast::hash(&buf[HEADER_LEN..]);
    buf[9..13].copy_from_slice(&crc.to_be_bytes());
}

/// A record decoded in place: every slice borrows from the record bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Journaled inputs, in processing order.
    pub inputs: Vec<&'a [u8]>,
    /// Session states after the batch.
    pub sessions: Vec<SessionDelta>,
    /// Stored outbound messages: (index into `sessions`, MsgSeqNum, bytes, offset in record).
    pub messages: Vec<(u16, u64, &'a [u8], u32)>,
}

/// Decodes and verifies a record (owned copy; see [`decode_view`]).
pub fn decode(v: &[u8]) -> Result<BatchRecord, String> {
    let r = decode_view(v)?;
    Ok(BatchRecord {
        inputs: r.inputs.iter().map(|i| Bytes::copy_from_slice(i)).collect(),
        sessions: r.sessions,
        messages: r
            .messages
            .iter()
            .map(|&(si, seq, m, off)| (si, seq, Bytes::copy_from_slice(m), off))
            .collect(),
    })
}

/// Decodes and verifies a record without copying its contents.
pub fn decode_view(v: &[u8]) -> Result<RecordView<'_>, String> {
    if v.len() < HEADER_LEN {
        return Err("record shorter than its header".into());
    }
    let mut h = &v[..HEADER_LEN];
    if h.get_u32() != MAGIC {
        return Err("bad magic".into());
    }
    let version = h.get_u8();
    if !matches!(version, 1 | VERSION | COMPACTED_VERSION) {
        return Err("unknown record version".into());
    }
    let len = h.get_u32() as usize;
    let crc = h.get_u32();
    if v.len() != HEADER_LEN + len {
        return Err(format!(
            "length {} but header says {}",
            v.len() - HEADER_LEN,
            len
        ));
    }
    if crc32fast::hash(&v[HEADER_LEN..]) != crc {
        return Err("checksum mismatch".into());
    }
    let mut p = &v[HEADER_LEN..];
    let need = |p: &&[u8], n: usize| -> Result<(), String> {
        if p.remaining() < n {
            Err("truncated record".into())
        } else {
            Ok(())
        }
    };
    let mut rec = RecordView::default();
    need(&p, 4)?;
    for _ in 0..p.get_u32() {
        need(&p, 4)?;
        let n = p.get_u32() as usize;
        need(&p, n)?;
        rec.inputs.push(&p[..n]);
        p.advance(n);
    }
    need(&p, 4)?;
    for _ in 0..p.get_u32() {
        need(&p, 2)?;
        let n = p.get_u16() as usize;
        // Version 1 had no reservation.
        let reserved_len = if version == 1 { 0 } else { 8 };
        need(&p, n + 1 + 24 + reserved_len)?;
        let key = String::from_utf8(p[..n].to_vec()).map_err(|_| "session key not UTF-8")?;
        p.advance(n);
        let (reset, created, next_sender, next_target) =
            (p.get_u8() != 0, p.get_i64(), p.get_u64(), p.get_u64());
        let reserved = if version == 1 {
            next_sender
        } else {
            p.get_u64()
        };
        rec.sessions.push(SessionDelta {
            key,
            reset,
            created,
            next_sender,
            next_target,
            reserved,
        });
    }
    need(&p, 4)?;
    for _ in 0..p.get_u32() {
        need(&p, 14)?;
        let si = p.get_u16();
        let seq = p.get_u64();
        let n = p.get_u32() as usize;
        need(&p, n)?;
        let offset = (v.len() - p.remaining()) as u32;
        rec.messages.push((si, seq, &p[..n], offset));
        p.advance(n);
    }
    if p.has_remaining() {
        return Err("trailing bytes".into());
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::log_backend::MemDisk;

    #[test]
    fn commit_and_recover_sessions_inputs_and_messages() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, rec) = BatchLog::open(dir.path(), FlushMode::Fsync).unwrap();
            assert!(rec.sessions.is_empty());
            let mut a = log.new_session("A", 10);
            let mut b = log.new_session("B", 20);
            a.save(1, Bytes::from_static(b"a1"));
            a.set_next_sender_seq(2);
            b.set_next_target_seq(5);
            assert!(log
                .commit(&[Bytes::from_static(b"in1")], [&mut a, &mut b].into_iter())
                .unwrap());
            a.save(2, Bytes::from_static(b"a2"));
            a.set_next_sender_seq(3);
            assert!(log.commit(&[], [&mut a, &mut b].into_iter()).unwrap());
            assert!(!log.commit(&[], [&mut a, &mut b].into_iter()).unwrap());
            assert_eq!(a.get_range(1, 9).unwrap().len(), 2);
            // Not committed: lost on "crash".
            a.save(3, Bytes::from_static(b"a3"));
            a.set_next_sender_seq(4);
        }
        let (log, rec) = BatchLog::open(dir.path(), FlushMode::Fsync).unwrap();
        assert_eq!(rec.batches, 2);
        assert_eq!(log.next_batch(), 3);
        assert_eq!(rec.inputs, vec![Bytes::from_static(b"in1")]);
        let a = &rec.sessions["A"];
        // Not a clean stop: A continues after the numbers it had reserved.
        assert_eq!(
            (a.next_sender_seq(), a.creation_time()),
            (3 + SEQ_RESERVE, 10)
        );
        assert_eq!(
            a.get_range(1, 9).unwrap(),
            vec![
                (1, Bytes::from_static(b"a1")),
                (2, Bytes::from_static(b"a2"))
            ]
        );
        assert_eq!(rec.sessions["B"].next_target_seq(), 5);
        assert_eq!(rec.sessions["B"].next_sender_seq(), 1 + SEQ_RESERVE);
    }

    #[test]
    fn pipelined_commits_are_durable_once_flushed_and_rewritten_after_a_failed_flush() {
        use crate::session::log_backend::MemDisk;
        let disk = MemDisk::new();
        let (mut log, _) =
            BatchLog::open_on(Arc::new(disk.backend()), FlushMode::Fsync, Replay::All).unwrap();
        log.set_pipelined();
        let mut a = log.new_session("A", 10);
        let commit = |log: &mut BatchLog, a: &mut BatchSessionStore, n: u64| {
            a.save(n, Bytes::from(format!("a{n}")));
            a.set_next_sender_seq(n + 1);
            let input = Bytes::from(format!("in{n}"));
            assert!(log
                .commit_flushing(&[input], std::iter::once(a), false)
                .unwrap());
        };
        commit(&mut log, &mut a, 1);
        commit(&mut log, &mut a, 2);
        assert_eq!((log.last_written(), log.durable()), (2, 0));
        assert!(disk.durable().is_empty(), "written, not flushed");
        assert_eq!(a.last_batch(), 2);
        // Read back before it is durable (a resend): from the backend's memory.
        assert_eq!(a.get_range(1, 2).unwrap().len(), 2);
        // The flusher thread's flush, reported.
        log.backend().flush().unwrap();
        log.flushed(2);
        assert_eq!(log.durable(), 2);
        assert_eq!(disk.durable().len(), 2);
        // Batch 3 is written; its flush fails and the backend loses it.
        commit(&mut log, &mut a, 3);
        disk.set_failing_flushes(true);
        assert!(log.backend().flush().is_err());
        log.flush_failed();
        // The next commit fails while the disk does, and once it writes
        // again, it rewrites batch 3 and waits for everything: nothing is
        // left in flight.
        a.save(4, Bytes::from_static(b"a4"));
        a.set_next_sender_seq(5);
        for failing in [true, false] {
            disk.set_failing_flushes(failing);
            let input = [Bytes::from_static(b"in4")];
            let r = log.commit_flushing(&input, std::iter::once(&mut a), false);
            assert_eq!(r.is_err(), failing);
        }
        assert_eq!((log.last_written(), log.durable()), (4, 4));
        disk.crash();
        let (_, rec) =
            BatchLog::open_on(Arc::new(disk.backend()), FlushMode::Fsync, Replay::All).unwrap();
        assert_eq!(rec.batches, 4);
        let inputs: Vec<&[u8]> = rec.inputs.iter().map(|b| &b[..]).collect();
        assert_eq!(inputs, [&b"in1"[..], b"in2", b"in3", b"in4"]);
        assert_eq!(rec.sessions["A"].get_range(1, 9).unwrap().len(), 4);
    }

    /// (after, first_input) of each checkpoint start-up offers.
    fn offered(rec: &Recovered) -> Vec<(u64, usize)> {
        rec.checkpoints
            .iter()
            .map(|c| (c.after, c.first_input))
            .collect()
    }

    fn texts(inputs: &[Bytes]) -> Vec<&[u8]> {
        inputs.iter().map(|b| &b[..]).collect()
    }

    #[test]
    fn start_up_offers_the_two_newest_checkpoints_and_only_the_inputs_after_them() {
        let disk = MemDisk::new();
        let open = |replay| BatchLog::open_on(Arc::new(disk.backend()), FlushMode::Fsync, replay);
        let (mut log, _) = open(Replay::SinceCheckpoint).unwrap();
        let mut a = log.new_session("A", 10);
        let mut commit = |log: &mut BatchLog, input: &'static [u8]| {
            a.save(a.next_sender_seq(), Bytes::from_static(input));
            a.set_next_sender_seq(a.next_sender_seq() + 1);
            log.commit(&[Bytes::from_static(input)], std::iter::once(&mut a))
                .unwrap();
        };
        for input in [&b"in1"[..], b"in2", b"in3"] {
            commit(&mut log, input);
        }
        let backend = log.backend();
        backend.put_checkpoint(1, b"after in1").unwrap();
        backend.put_checkpoint(2, b"after in2").unwrap();
        commit(&mut log, b"in4");
        backend.put_checkpoint(3, b"after in3").unwrap();
        let (log, rec) = open(Replay::SinceCheckpoint).unwrap();
        // The newest and its fallback, with the inputs after the older.
        assert_eq!(offered(&rec), [(3, 1), (2, 0)]);
        assert_eq!(rec.checkpoints[0].state, Bytes::from_static(b"after in3"));
        assert_eq!(texts(&rec.inputs), [&b"in3"[..], b"in4"]);
        assert_eq!(rec.inputs_before_checkpoint, 2);
        assert_eq!(rec.missing, None);
        // Messages and sequence numbers come from every record still.
        assert_eq!(rec.sessions["A"].get_range(1, 9).unwrap().len(), 4);
        let every = log.all_inputs().unwrap();
        assert_eq!(every.len(), 4);
        let (_, all) = open(Replay::All).unwrap();
        assert!(all.checkpoints.is_empty());
        assert_eq!(all.inputs, every);
        // A checkpoint after a batch the log does not hold is not offered,
        // and is deleted (the batch numbers will be used again); the one
        // before it still is.
        disk.backend().put_checkpoint(9, b"after in9").unwrap();
        let (_, rec) = open(Replay::SinceCheckpoint).unwrap();
        assert_eq!(offered(&rec), [(3, 0)]);
        assert_eq!(texts(&rec.inputs), [&b"in4"[..]]);
        assert_eq!(disk.backend().checkpoints().len(), 1);
        // None left: every input.
        disk.backend().drop_checkpoints_after(0).unwrap();
        let (_, rec) = open(Replay::SinceCheckpoint).unwrap();
        assert!(rec.checkpoints.is_empty());
        assert_eq!(rec.inputs, every);
    }

    #[test]
    fn compaction_keeps_a_fallback_for_the_checkpoint_that_restored() {
        let checkpoint = |after| Checkpoint {
            after,
            state: Bytes::new(),
            first_input: 0,
        };
        let rec = |afters: &[u64]| Recovered {
            sessions: HashMap::new(),
            checkpoints: afters.iter().map(|a| checkpoint(*a)).collect(),
            inputs: Vec::new(),
            inputs_before_checkpoint: 0,
            batches: 0,
            missing: None,
        };
        // The newest restored: up to the older one, its fallback.
        assert_eq!(rec(&[9, 5]).compaction_bound(9), Some(5));
        // The newest did not restore and the older one did: the older one
        // has no fallback, nothing goes.
        assert_eq!(rec(&[9, 5]).compaction_bound(5), None);
        // One intact checkpoint (the first ever, or the other one damaged):
        // nothing goes until the next is written.
        assert_eq!(rec(&[9]).compaction_bound(9), None);
    }

    /// Session `key` sends `message` (and resets first if `reset`) in a
    /// batch of its own holding `input`.
    fn send(log: &mut BatchLog, s: &mut BatchSessionStore, reset: bool, input: &'static [u8]) {
        if reset {
            s.reset(1);
        }
        let seq = s.next_sender_seq();
        s.save(seq, Bytes::from_static(input));
        s.set_next_sender_seq(seq + 1);
        log.commit(&[Bytes::from_static(input)], std::iter::once(s))
            .unwrap();
    }

    /// Start-up on `disk`, as the gateway opens it.
    fn reopen(disk: &MemDisk) -> (BatchLog, Recovered) {
        BatchLog::open_on(
            Arc::new(disk.backend()),
            FlushMode::Fsync,
            Replay::SinceCheckpoint,
        )
        .unwrap()
    }

    fn batches(disk: &MemDisk) -> Vec<u64> {
        disk.durable().into_keys().collect()
    }

    /// The version byte of each durable record.
    fn versions(disk: &MemDisk) -> Vec<u8> {
        disk.durable().values().map(|r| r[VERSION_AT]).collect()
    }

    #[test]
    fn compaction_deletes_only_records_a_checkpoint_covers_and_no_session_needs() {
        let disk = MemDisk::new();
        let open = || reopen(&disk);
        let (mut log, _) = open();
        let mut a = log.new_session("A", 1);
        let mut b = log.new_session("B", 1);
        send(&mut log, &mut a, false, b"a1"); // 1
        send(&mut log, &mut b, false, b"b1"); // 2: B's last state
        send(&mut log, &mut a, false, b"a2"); // 3
        send(&mut log, &mut a, true, b"a3"); // 4: A resets, voiding 1 and 3
        send(&mut log, &mut a, false, b"a4"); // 5
        send(&mut log, &mut a, true, b"a5"); // 6: voiding 4 and 5
        send(&mut log, &mut a, false, b"a6"); // 7
        log.backend().put_checkpoint(5, b"after 5").unwrap();
        log.backend().put_checkpoint(6, b"after 6").unwrap();
        drop(log);

        let (mut log, rec) = open();
        assert_eq!(offered(&rec), [(6, 1), (5, 0)]);
        // Up to the older checkpoint: 1, 3 and 5 are void; 2 holds B's
        // message and state, 4 a reset.
        assert_eq!(log.compact(5, &rec.sessions).unwrap(), 3);
        assert_eq!(batches(&disk), [2, 4, 6, 7]);
        // The newest record is marked, so an older fixgw refuses the store
        // instead of replaying what is left as the whole journal.
        assert_eq!(versions(&disk), [2, 2, 2, COMPACTED_VERSION]);
        drop(log);

        let (_, rec) = open();
        assert_eq!(rec.missing, Some((1, 5)));
        assert_eq!(offered(&rec), [(6, 1), (5, 0)]);
        assert_eq!(texts(&rec.inputs), [&b"a5"[..], b"a6"]);
        assert_eq!(
            rec.sessions["A"].get_range(1, 9).unwrap(),
            [
                (1, Bytes::from_static(b"a5")),
                (2, Bytes::from_static(b"a6"))
            ]
        );
        assert_eq!(
            rec.sessions["B"].get_range(1, 9).unwrap(),
            [(1, Bytes::from_static(b"b1"))]
        );
        assert_eq!(rec.sessions["B"].next_sender_seq(), 2 + SEQ_RESERVE);
        let (mut log, mut rec) = open();
        let mut a = rec.sessions.remove("A").unwrap();
        send(&mut log, &mut a, true, b"a7"); // 8: voiding 6 and 7
        let timer = [Bytes::from_static(b"timer")];
        log.commit(&timer, std::iter::empty()).unwrap(); // 9: an input alone
        drop(log);
        let (mut log, rec) = open();
        // Up to the newest record: it stays all the same, as the next
        // batch number follows it.
        assert_eq!(log.compact(9, &rec.sessions).unwrap(), 1);
        assert_eq!(batches(&disk), [2, 4, 6, 8, 9]);
        // Records written after a compaction are marked too.
        assert_eq!(versions(&disk), [2, 2, 2, 3, 3]);
        let (log, rec) = open();
        assert_eq!(log.next_batch(), 10);
        assert_eq!(rec.missing, Some((1, 7)));
        assert_eq!(
            rec.sessions["A"].get_range(1, 9).unwrap(),
            [(1, Bytes::from_static(b"a7"))]
        );
    }

    #[test]
    fn compaction_keeps_the_reset_that_voids_messages_of_a_record_it_keeps() {
        let disk = MemDisk::new();
        let open = || reopen(&disk);
        let (mut log, _) = open();
        let mut a = log.new_session("A", 1);
        let mut b = log.new_session("B", 1);
        // 1: a message to each session in one batch.
        for (s, m) in [(&mut a, b"a1"), (&mut b, b"b1")] {
            s.save(1, Bytes::from_static(m));
            s.set_next_sender_seq(2);
        }
        let input = [Bytes::from_static(b"fill")];
        log.commit(&input, vec![&mut a, &mut b].into_iter())
            .unwrap();
        // 2: A resets and sends nothing; 3: A's state moves on.
        a.reset(2);
        log.commit(&[], std::iter::once(&mut a)).unwrap();
        a.set_next_target_seq(5);
        log.commit(&[], std::iter::once(&mut a)).unwrap();
        log.backend().put_checkpoint(3, b"after 3").unwrap();
        drop(log);
        let (mut log, rec) = open();
        assert_eq!(rec.sessions["A"].get_range(1, 9).unwrap(), []);
        // 1 stays for B's message; so must 2, or A's void message in 1
        // would be indexed again.
        assert_eq!(log.compact(3, &rec.sessions).unwrap(), 0);
        let (_, rec) = open();
        assert_eq!(rec.sessions["A"].get_range(1, 9).unwrap(), []);
        assert_eq!(rec.sessions["A"].next_target_seq(), 5);
        assert_eq!(rec.sessions["B"].get_range(1, 9).unwrap().len(), 1);
    }

    #[test]
    fn compaction_while_running_deletes_after_a_compacted_record_and_keeps_what_sessions_need() {
        let disk = MemDisk::new();
        let (mut log, _) = reopen(&disk);
        let mut a = log.new_session("A", 1);
        let mut b = log.new_session("B", 1);
        let mut gone = log.new_session("GONE", 1);
        send(&mut log, &mut a, false, b"a1"); // 1
        send(&mut log, &mut gone, false, b"g1"); // 2: a session later unconfigured
        send(&mut log, &mut b, false, b"b1"); // 3: B never resets
        send(&mut log, &mut a, false, b"a2"); // 4
        send(&mut log, &mut a, true, b"a3"); // 5: A resets, voiding 1 and 4
        send(&mut log, &mut a, false, b"a4"); // 6
        log.backend().flush().unwrap();
        log.flushed(6);
        // The gateway no longer has GONE configured: its record stays.
        log.keep_for([&gone]);
        assert_eq!(log.plan_compaction(5, [&a, &b]), 2, "1 and 4");
        assert_eq!(log.compaction_pending(), 2);
        // Nothing is deleted before a record says the journal is compacted.
        assert_eq!(log.compact_some(10).unwrap(), 0);
        send(&mut log, &mut a, false, b"a5"); // 7, version 3
        assert_eq!(log.compact_some(1).unwrap(), 1);
        assert_eq!(log.compact_some(10).unwrap(), 1);
        assert_eq!(log.compact_some(10).unwrap(), 0);
        // Durable with the next flush; a crash before it loses them (the
        // commits flush themselves here: they are not pipelined).
        disk.crash();
        assert_eq!(batches(&disk), [1, 2, 3, 4, 5, 6, 7]);
        let (mut log, mut rec) = reopen(&disk);
        assert_eq!(rec.missing, None);
        let mut a = rec.sessions.remove("A").unwrap();
        let b = &rec.sessions["B"];
        let gone = &rec.sessions["GONE"];
        assert_eq!(log.plan_compaction(5, [&a, b, gone]), 2);
        send(&mut log, &mut a, false, b"a6"); // 8
        while log.compact_some(1).unwrap() > 0 {}
        log.backend().flush().unwrap();
        assert_eq!(batches(&disk), [2, 3, 5, 6, 7, 8]);
        assert_eq!(versions(&disk), [2, 2, 2, 2, 3, 3]);
        // A later plan looks at what the last one kept, and at the records
        // written since; A's reset in 5 stays, and B's message in 3.
        send(&mut log, &mut a, true, b"a7"); // 9: voiding 5 to 8
        send(&mut log, &mut a, false, b"a8"); // 10
        assert_eq!(log.plan_compaction(9, [&a, b, gone]), 3, "6, 7 and 8");
        send(&mut log, &mut a, false, b"a9"); // 11
        while log.compact_some(64).unwrap() > 0 {}
        log.backend().flush().unwrap();
        assert_eq!(batches(&disk), [2, 3, 5, 9, 10, 11]);
        drop(log);
        let (log, rec) = reopen(&disk);
        assert_eq!(log.next_batch(), 12);
        assert_eq!(rec.missing, Some((1, 8)));
        assert_eq!(
            rec.sessions["A"].get_range(1, 9).unwrap(),
            [
                (1, Bytes::from_static(b"a7")),
                (2, Bytes::from_static(b"a8")),
                (3, Bytes::from_static(b"a9"))
            ]
        );
        assert_eq!(rec.sessions["B"].get_range(1, 9).unwrap().len(), 1);
        assert_eq!(rec.sessions["GONE"].get_range(1, 9).unwrap().len(), 1);
    }

    #[test]
    fn a_clean_stop_continues_without_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = BatchLog::open(dir.path(), FlushMode::Fsync).unwrap();
            let mut a = log.new_session("A", 10);
            a.set_next_sender_seq(7);
            log.commit(&[], std::iter::once(&mut a)).unwrap();
            assert!(!a.is_dirty());
            log.commit_exact(&[], std::iter::once(&mut a)).unwrap();
        }
        let (_, rec) = BatchLog::open(dir.path(), FlushMode::Fsync).unwrap();
        assert_eq!(rec.sessions["A"].next_sender_seq(), 7);
    }

    #[test]
    fn with_os_flushing_a_committed_batch_survives_a_crash_of_the_process() {
        let disk = MemDisk::new();
        {
            let (mut log, _) =
                BatchLog::open_on(Arc::new(disk.backend()), FlushMode::Os, Replay::All).unwrap();
            let mut a = log.new_session("A", 1);
            a.save(1, Bytes::from_static(b"sent"));
            a.set_next_sender_seq(2);
            log.commit(&[Bytes::from_static(b"order")], std::iter::once(&mut a))
                .unwrap();
            // Its output may go out now: the record is the OS's.
            assert_eq!(log.durable(), 1);
        }
        disk.crash();
        let (_, rec) =
            BatchLog::open_on(Arc::new(disk.backend()), FlushMode::Os, Replay::All).unwrap();
        assert_eq!(rec.inputs, vec![Bytes::from_static(b"order")]);
        let a = &rec.sessions["A"];
        assert_eq!(
            a.get_range(1, 1).unwrap(),
            vec![(1, Bytes::from_static(b"sent"))]
        );
        assert!(a.next_sender_seq() >= 2);
    }

    #[test]
    fn reset_voids_earlier_messages_after_recovery() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = BatchLog::open(dir.path(), FlushMode::Os).unwrap();
            let mut a = log.new_session("A", 1);
            a.save(1, Bytes::from_static(b"old"));
            log.commit(&[], std::iter::once(&mut a)).unwrap();
            a.reset(50);
            assert!(a.get_range(1, 5).unwrap().is_empty());
            a.save(1, Bytes::from_static(b"new"));
            a.set_next_sender_seq(2);
            log.commit(&[], std::iter::once(&mut a)).unwrap();
            log.backend.flush().unwrap();
        }
        let (_, rec) = BatchLog::open(dir.path(), FlushMode::Fsync).unwrap();
        let a = &rec.sessions["A"];
        assert_eq!(a.creation_time(), 50);
        assert_eq!(
            a.get_range(1, 5).unwrap(),
            vec![(1, Bytes::from_static(b"new"))]
        );
    }

    #[test]
    fn corruption_is_detected_with_its_batch_number() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = BatchLog::open(dir.path(), FlushMode::Fsync).unwrap();
            let mut a = log.new_session("A", 1);
            a.set_next_sender_seq(9);
            log.commit(&[Bytes::from_static(b"x")], std::iter::once(&mut a))
                .unwrap();
            let mut v = log.backend.get(1).unwrap().unwrap().to_vec();
            let last = v.len() - 1;
            v[last] ^= 0xff;
            log.backend.insert(1, &v).unwrap();
            log.backend.flush().unwrap();
        }
        let err = BatchLog::open(dir.path(), FlushMode::Fsync).err().unwrap();
        assert!(
            err.to_string().contains("batch 1: checksum mismatch"),
            "{err}"
        );
    }

    #[test]
    fn decode_never_panics_on_garbage() {
        use proptest::prelude::*;
        proptest!(|(data in proptest::collection::vec(any::<u8>(), 0..200))| {
            let _ = decode(&data);
        });
    }
}
