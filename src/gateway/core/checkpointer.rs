//! Venue checkpoints taken off the core thread.
//!
//! Copying the venue's state stalls whoever does it: 270 ms to serialise the
//! 47.8 MB state of the benchmark's venue after 1 M inputs, 200 ms just to
//! clone it. The
//! core must not stall, so a shadow venue on this thread replays every
//! committed batch's inputs, as start-up would, and serialises itself every
//! `every` inputs, at a batch boundary, and stores the checkpoint itself
//! with the batch it was taken after (`LogBackend::put_checkpoint`: a file
//! of its own, synced, outside sled's log, so no flush of the core waits
//! for it) once that batch is durable: a checkpoint after a batch a crash
//! could lose would hold inputs the journal does not, and start-up could
//! not use it (nor, once the journal is compacted, replay without it). The
//! core only hands each committed batch's journal over (no copy: the inputs
//! are shared bytes), and tells what is durable.
//!
//! The thread is never woken by the core: it sleeps [`POLL`] between looks
//! at its queue, so a hand-over costs the core no system call. It runs
//! under SCHED_IDLE: its replay (about 3 µs per input) takes only CPU time
//! no other thread wants, and any other thread that wakes preempts it. A
//! gateway saturated for long starves it: once it is more than twice
//! `every` inputs behind (and at least [`MIN_BACKLOG`]) it stops, with a
//! warning, and the next start replays the journal since its last
//! checkpoint. In-process tests run the shadow on the core's own thread
//! (`inline`), so that a seed replays exactly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::session::log_backend::LogBackend;
use crate::venue::order_entry::Venue;

/// How long the thread sleeps between looks at the committed batches.
const POLL: Duration = Duration::from_millis(20);

/// The least backlog (inputs) allowed before the thread is stopped: many
/// polls' worth at full load, whatever the checkpoint interval.
const MIN_BACKLOG: u64 = 200_000;

/// The shadow venue, its count of inputs since its last checkpoint, and
/// the store it writes checkpoints to.
struct Shadow {
    venue: Venue,
    every: u64,
    since: u64,
    backend: Arc<dyn LogBackend>,
    discard: Vec<(Arc<str>, crate::session::OutboundMessage)>,
    /// A checkpoint taken after a batch not yet durable.
    pending: Option<Pending>,
    /// The batch the last checkpoint this shadow stored follows (or the
    /// one start-up restored, when that was the newest file): the next
    /// one stored makes it the fallback.
    last_stored: Option<u64>,
    /// The batch the fallback checkpoint follows, once the shadow stored
    /// the checkpoint that made it one (0: none): the journal up to it may
    /// be compacted.
    fallback: Arc<AtomicU64>,
}

/// A serialised checkpoint waiting for its batch to be durable.
struct Pending {
    after: u64,
    state: Vec<u8>,
    inputs: u64,
    serialised: Duration,
}

impl Shadow {
    fn new(
        mut venue: Venue,
        every: u64,
        backend: Arc<dyn LogBackend>,
        from: Option<u64>,
    ) -> Shadow {
        venue.set_replaying(true);
        Shadow {
            venue,
            every,
            since: 0,
            backend,
            discard: Vec::new(),
            pending: None,
            last_stored: from,
            fallback: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Applies a committed batch's inputs, and takes a checkpoint when one
    /// is due; it is stored once batch `durable` reaches it.
    fn apply(&mut self, batch: u64, inputs: &[Bytes], durable: u64) {
        for raw in inputs {
            // The core journaled what it applied: an input that does not
            // decode is a bug; the shadow can no longer be trusted.
            self.venue
                .replay_journaled(raw, &mut self.discard)
                .unwrap_or_else(|e| panic!("journaled input of batch {batch}: {e:?}"));
        }
        self.since += inputs.len() as u64;
        if self.since >= self.every {
            // A newer one replaces one still waiting (the store is down).
            let started = Instant::now();
            let state = self.venue.checkpoint();
            self.pending = Some(Pending {
                after: batch,
                state,
                inputs: self.since,
                serialised: started.elapsed(),
            });
            self.since = 0;
        }
        self.store_if_durable(durable);
    }

    /// Stores the checkpoint waiting, if its batch is durable.
    fn store_if_durable(&mut self, durable: u64) {
        let Some(p) = self.pending.take_if(|p| p.after <= durable) else {
            return;
        };
        let started = Instant::now();
        match self.backend.put_checkpoint(p.after, &p.state) {
            Ok(()) => {
                tracing::info!(
                    after_batch = p.after,
                    inputs = p.inputs,
                    bytes = p.state.len(),
                    serialised_ms = p.serialised.as_millis() as u64,
                    written_ms = started.elapsed().as_millis() as u64,
                    "venue checkpoint written"
                );
                // The file it replaced is the fallback now: the one stored
                // before (a failed store leaves it where it was, as the
                // newest file, which a successful one renames).
                if let Some(previous) = self.last_stored.replace(p.after) {
                    self.fallback.store(previous, Ordering::Release);
                }
            }
            // A full disk, say: the one before stays, and the next try
            // comes after another interval (not at every batch).
            Err(e) => tracing::warn!(
                after_batch = p.after,
                error = %e,
                "venue checkpoint not written; the previous one stays"
            ),
        }
    }
}

enum Mode {
    Thread {
        batches: mpsc::Sender<(u64, Vec<Bytes>)>,
        /// Inputs handed over and not yet applied.
        backlog: Arc<AtomicU64>,
        /// Every batch up to this one is durable.
        durable: Arc<AtomicU64>,
        /// Set when the thread must drop its queue and end.
        stop: Arc<AtomicBool>,
        /// The most inputs the thread may be behind.
        max_backlog: u64,
    },
    Inline(Box<Shadow>),
}

/// The core's handle on the shadow venue.
pub struct Checkpointer {
    mode: Mode,
    /// See [`Checkpointer::fallback`].
    fallback: Arc<AtomicU64>,
}

impl Drop for Checkpointer {
    /// The thread drops its queue and ends at its next look.
    fn drop(&mut self) {
        if let Mode::Thread { stop, .. } = &self.mode {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

impl Checkpointer {
    /// A shadow of `venue` (the state the core starts from) on its own
    /// thread, checkpointing every `every` inputs; `from`: the batch the
    /// checkpoint start-up restored follows, if that was the newest one
    /// stored (the next checkpoint makes it the fallback).
    pub fn spawn(
        venue: Venue,
        every: u64,
        backend: Arc<dyn LogBackend>,
        from: Option<u64>,
    ) -> std::io::Result<Checkpointer> {
        let (batches, inbox) = mpsc::channel::<(u64, Vec<Bytes>)>();
        let backlog = Arc::new(AtomicU64::new(0));
        let durable = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut shadow = Shadow::new(venue, every, backend, from);
        let fallback = shadow.fallback.clone();
        let (behind, stopped, stored) = (backlog.clone(), stop.clone(), durable.clone());
        std::thread::Builder::new()
            .name("fixgw-checkpoint".into())
            .spawn(move || {
                use thread_priority::{
                    NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
                };
                if let Err(e) = thread_priority::set_thread_priority_and_policy(
                    thread_priority::thread_native_id(),
                    ThreadPriority::Min,
                    ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
                ) {
                    tracing::warn!(error = ?e, "the checkpoint thread runs at normal priority");
                }
                loop {
                    std::thread::sleep(POLL);
                    loop {
                        if stopped.load(Ordering::Relaxed) {
                            return;
                        }
                        let durable = stored.load(Ordering::Acquire);
                        match inbox.try_recv() {
                            Ok((batch, inputs)) => {
                                shadow.apply(batch, &inputs, durable);
                                behind.fetch_sub(inputs.len() as u64, Ordering::Relaxed);
                            }
                            Err(mpsc::TryRecvError::Empty) => {
                                shadow.store_if_durable(durable);
                                break;
                            }
                            Err(mpsc::TryRecvError::Disconnected) => return,
                        }
                    }
                }
            })?;
        Ok(Checkpointer {
            mode: Mode::Thread {
                batches,
                backlog,
                durable,
                stop,
                max_backlog: every.saturating_mul(2).max(MIN_BACKLOG),
            },
            fallback,
        })
    }

    /// The same on the caller's thread: each hand-over applies at once.
    pub fn inline(
        venue: Venue,
        every: u64,
        backend: Arc<dyn LogBackend>,
        from: Option<u64>,
    ) -> Checkpointer {
        let shadow = Shadow::new(venue, every, backend, from);
        Checkpointer {
            fallback: shadow.fallback.clone(),
            mode: Mode::Inline(Box::new(shadow)),
        }
    }

    /// The batch the fallback checkpoint follows (0: none yet), once a
    /// newer checkpoint was stored by this shadow: the journal up to it
    /// may be compacted, as start-up would (the newest checkpoint needs it
    /// as its fallback, and the records after it).
    pub fn fallback(&self) -> u64 {
        self.fallback.load(Ordering::Acquire)
    }

    /// Every batch up to `batch` is durable.
    pub fn durable(&mut self, batch: u64) {
        match &mut self.mode {
            Mode::Thread { durable, .. } => durable.store(batch, Ordering::Release),
            Mode::Inline(shadow) => shadow.store_if_durable(batch),
        }
    }

    /// Batch `batch` was committed (written, durable up to `durable`) with
    /// these inputs. False once the shadow stopped (it fell too far behind,
    /// or its thread ended): no checkpoint comes any more.
    pub fn committed(&mut self, batch: u64, inputs: Vec<Bytes>, durable: u64) -> bool {
        match &mut self.mode {
            Mode::Thread {
                batches,
                backlog,
                stop,
                max_backlog,
                durable: stored,
            } => {
                stored.store(durable, Ordering::Release);
                let n = inputs.len() as u64;
                let behind = backlog.fetch_add(n, Ordering::Relaxed) + n;
                if behind > *max_backlog {
                    stop.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        behind,
                        "venue checkpoints stopped: the checkpoint thread fell too far behind (the gateway was saturated); the next start replays the journal since the last checkpoint"
                    );
                    return false;
                }
                // The thread ends only after a panic (logged by then).
                batches.send((batch, inputs)).is_ok()
            }
            Mode::Inline(shadow) => {
                shadow.apply(batch, &inputs, durable);
                true
            }
        }
    }
}
