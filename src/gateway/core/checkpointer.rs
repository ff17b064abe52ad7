//! Venue checkpoints taken off the core thread.
//!
//! Copying the venue's state stalls whoever does it: 270 ms to serialise the
//! 47.8 MB state of the benchmark's venue after 1 M inputs, 200 ms just to
//! clone it. The
//! core must not stall, so a shadow venue on this thread replays every
//! committed batch's inputs, as start-up would, and serialises itself every
//! `every` inputs, at a batch boundary. The core hands each committed
//! batch's journal over (no copy: the inputs are shared bytes) and picks
//! finished checkpoints up at its next commit; the next record carries the
//! checkpoint with the batch it was taken after (see
//! `BatchLog::set_checkpoint`).
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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::venue::input::VenueInput;
use crate::venue::order_entry::Venue;

/// How long the thread sleeps between looks at the committed batches.
const POLL: Duration = Duration::from_millis(20);

/// The least backlog (inputs) allowed before the thread is stopped: many
/// polls' worth at full load, whatever the checkpoint interval.
const MIN_BACKLOG: u64 = 200_000;

/// A checkpoint: the venue's state after every input of the batches up to
/// `after`.
pub struct Taken {
    pub after: u64,
    pub state: Vec<u8>,
}

/// The shadow venue and its count of inputs since its last checkpoint.
struct Shadow {
    venue: Venue,
    every: u64,
    since: u64,
    discard: Vec<(std::sync::Arc<str>, crate::session::OutboundMessage)>,
}

impl Shadow {
    fn new(mut venue: Venue, every: u64) -> Shadow {
        venue.set_replaying(true);
        Shadow {
            venue,
            every,
            since: 0,
            discard: Vec::new(),
        }
    }

    /// Applies a committed batch's inputs; returns a checkpoint when one is due.
    fn apply(&mut self, batch: u64, inputs: &[Bytes]) -> Option<Taken> {
        for raw in inputs {
            // The core journaled what it applied: an input that does not
            // decode is a bug; the shadow can no longer be trusted.
            let (input, _) = VenueInput::decode(raw)
                .unwrap_or_else(|e| panic!("journaled input of batch {batch}: {e:?}"));
            self.discard.clear();
            let _ = self.venue.apply(&input, &mut self.discard);
            self.venue.discard_market_data();
        }
        self.since += inputs.len() as u64;
        if self.since < self.every {
            return None;
        }
        let started = Instant::now();
        let state = self.venue.checkpoint();
        tracing::info!(
            after_batch = batch,
            inputs = self.since,
            bytes = state.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "venue checkpoint taken"
        );
        self.since = 0;
        Some(Taken {
            after: batch,
            state,
        })
    }
}

enum Mode {
    Thread {
        batches: mpsc::Sender<(u64, Vec<Bytes>)>,
        taken: mpsc::Receiver<Taken>,
        /// Inputs handed over and not yet applied.
        backlog: Arc<AtomicU64>,
        /// Set when the thread must drop its queue and end.
        stop: Arc<AtomicBool>,
        /// The most inputs the thread may be behind.
        max_backlog: u64,
    },
    Inline {
        shadow: Box<Shadow>,
        taken: VecDeque<Taken>,
    },
}

/// The core's handle on the shadow venue.
pub struct Checkpointer {
    mode: Mode,
}

impl Checkpointer {
    /// A shadow of `venue` (the state the core starts from) on its own
    /// thread, checkpointing every `every` inputs.
    pub fn spawn(venue: Venue, every: u64) -> std::io::Result<Checkpointer> {
        let (batches, inbox) = mpsc::channel::<(u64, Vec<Bytes>)>();
        let (done, taken) = mpsc::channel();
        let backlog = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut shadow = Shadow::new(venue, every);
        let (behind, stopped) = (backlog.clone(), stop.clone());
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
                        match inbox.try_recv() {
                            Ok((batch, inputs)) => {
                                let t = shadow.apply(batch, &inputs);
                                behind.fetch_sub(inputs.len() as u64, Ordering::Relaxed);
                                if t.is_some_and(|t| done.send(t).is_err()) {
                                    return;
                                }
                            }
                            Err(mpsc::TryRecvError::Empty) => break,
                            Err(mpsc::TryRecvError::Disconnected) => return,
                        }
                    }
                }
            })?;
        Ok(Checkpointer {
            mode: Mode::Thread {
                batches,
                taken,
                backlog,
                stop,
                max_backlog: every.saturating_mul(2).max(MIN_BACKLOG),
            },
        })
    }

    /// The same on the caller's thread: each hand-over applies at once.
    pub fn inline(venue: Venue, every: u64) -> Checkpointer {
        Checkpointer {
            mode: Mode::Inline {
                shadow: Box::new(Shadow::new(venue, every)),
                taken: VecDeque::new(),
            },
        }
    }

    /// Batch `batch` was committed with these inputs. False once the
    /// shadow stopped (it fell too far behind, or its thread ended): no
    /// checkpoint comes any more.
    pub fn committed(&mut self, batch: u64, inputs: Vec<Bytes>) -> bool {
        match &mut self.mode {
            Mode::Thread {
                batches,
                backlog,
                stop,
                max_backlog,
                ..
            } => {
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
            Mode::Inline { shadow, taken } => {
                taken.extend(shadow.apply(batch, &inputs));
                true
            }
        }
    }

    /// The newest checkpoint finished since the last call, if any.
    pub fn take(&mut self) -> Option<Taken> {
        match &mut self.mode {
            Mode::Thread { taken, .. } => taken.try_iter().last(),
            Mode::Inline { taken, .. } => {
                let newest = taken.pop_back();
                taken.clear();
                newest
            }
        }
    }
}
