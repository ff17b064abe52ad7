//! The flusher thread of a pipelined store (`fsync` mode).
//!
//! The core writes each batch record and goes on with the next batch at
//! once; this thread makes what was written durable (one fsync covers every
//! record written before it began) and reports back. Each connection's
//! writer holds the output of a batch until that batch is durable (see
//! `session::out_queue`), so the durability rule is kept while the core's
//! CPU work and the disk's fsync overlap instead of taking turns.
//!
//! A commit window spaces the flushes out: a flush begins no sooner than
//! the window after the one before began, and covers every batch written
//! by then. Fewer, larger flushes cost the machine less per order (each
//! fdatasync is several requests to the device) at the price of up to one
//! window of extra latency; see `fixgw run --commit-window`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::session::log_backend::LogBackend;
use crate::session::store::StoreError;

/// The outcome of one flush.
#[derive(Debug)]
pub struct Flushed {
    /// Every batch up to this one was written before the flush began.
    pub upto: u64,
    /// Whether the flush succeeded.
    pub result: Result<(), StoreError>,
    /// How long it took.
    pub took: Duration,
}

/// The core's handle on the flusher thread.
pub struct Flusher {
    backend: Arc<dyn LogBackend>,
    requests: Option<std_mpsc::Sender<u64>>,
    done: mpsc::UnboundedReceiver<Flushed>,
    busy: bool,
    durable: Arc<watch::Sender<u64>>,
    thread: Option<JoinHandle<()>>,
    /// The newest batch written, read by the thread when its flush begins.
    written: Arc<AtomicU64>,
    pace: Arc<Pace>,
}

/// When flushes may begin: at least `window` apart.
#[derive(Debug)]
struct Pace {
    window: Duration,
    /// When the last flush began (on either thread).
    last_start: Mutex<Option<Instant>>,
}

impl Pace {
    /// When the next flush may begin (None: now).
    fn next_start(&self) -> Option<Instant> {
        let last = (*self.last_start.lock().unwrap_or_else(|e| e.into_inner()))?;
        let next = last + self.window;
        (next > Instant::now()).then_some(next)
    }

    fn started(&self, at: Instant) {
        *self.last_start.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }
}

impl Flusher {
    /// Starts the thread flushing `backend`, flushes at least `window`
    /// apart; `durable` is where the last durable batch is published to the
    /// connections' writers.
    pub fn start(
        backend: Arc<dyn LogBackend>,
        durable: watch::Sender<u64>,
        window: Duration,
    ) -> std::io::Result<Flusher> {
        let (req_tx, req_rx) = std_mpsc::channel::<u64>();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let durable = Arc::new(durable);
        let published = durable.clone();
        let flushed = backend.clone();
        let written = Arc::new(AtomicU64::new(0));
        let latest = written.clone();
        let pace = Arc::new(Pace {
            window,
            last_start: Mutex::new(None),
        });
        let paced = pace.clone();
        let thread = std::thread::Builder::new()
            .name("fixgw-flush".into())
            .spawn(move || {
                if !window.is_zero() {
                    crate::cpu_latency::tighten_timer_slack();
                }
                while let Ok(upto) = req_rx.recv() {
                    if let Some(at) = paced.next_start() {
                        std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    }
                    // Batches the core wrote while this thread waited are
                    // covered too.
                    let upto = upto.max(latest.load(Ordering::Acquire));
                    // The writers learn it from here, without waiting for
                    // the core thread to wake up.
                    let done = flush(flushed.as_ref(), &published, &paced, upto);
                    if done_tx.send(done).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Flusher {
            backend,
            requests: Some(req_tx),
            done: done_rx,
            busy: false,
            durable,
            thread: Some(thread),
            written,
            pace,
        })
    }

    /// Batch `batch` is written: a flush that begins from now on covers it.
    pub fn written(&self, batch: u64) {
        self.written.fetch_max(batch, Ordering::Release);
    }

    /// True when a flush may begin now (its commit window has passed).
    pub fn may_start(&self) -> bool {
        self.pace.next_start().is_none()
    }

    /// True while a flush runs.
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// Starts a flush of everything written up to batch `upto`.
    pub fn request(&mut self, upto: u64) {
        debug_assert!(!self.busy, "one flush at a time");
        if let Some(tx) = &self.requests {
            self.busy = tx.send(upto).is_ok();
        }
    }

    /// Flushes everything written up to batch `upto` on the calling thread
    /// (none may run on the flusher's), and publishes it when it succeeds.
    /// For a core with nothing else to do: this saves waking the flusher
    /// thread, and then the core again, for every flush.
    pub fn flush_here(&self, upto: u64) -> Flushed {
        debug_assert!(!self.busy, "one flush at a time");
        flush(self.backend.as_ref(), &self.durable, &self.pace, upto)
    }

    /// The next finished flush (never returns when none runs).
    pub async fn next(&mut self) -> Flushed {
        if !self.busy {
            return std::future::pending().await;
        }
        match self.done.recv().await {
            Some(f) => {
                self.busy = false;
                f
            }
            None => std::future::pending().await,
        }
    }

    /// Blocks until the running flush ends (None when none runs). For
    /// tests that drive the core by hand (`gateway::harness`).
    pub fn wait(&mut self) -> Option<Flushed> {
        if !self.busy {
            return None;
        }
        let f = self.done.blocking_recv()?;
        self.busy = false;
        Some(f)
    }

    /// Tells the writers that every batch up to `batch` is durable.
    pub fn publish(&self, batch: u64) {
        publish(&self.durable, batch);
    }
}

/// One flush of `backend` covering batches up to `upto`, published to the
/// writers when it succeeds.
fn flush(
    backend: &dyn LogBackend,
    durable: &watch::Sender<u64>,
    pace: &Pace,
    upto: u64,
) -> Flushed {
    let started = Instant::now();
    pace.started(started);
    let result = backend.flush();
    let took = started.elapsed();
    if result.is_ok() {
        publish(durable, upto);
    }
    Flushed { upto, result, took }
}

/// Raises the published durable batch to `batch` (never lowers it).
fn publish(durable: &watch::Sender<u64>, batch: u64) {
    durable.send_if_modified(|d| {
        let newer = batch > *d;
        if newer {
            *d = batch;
        }
        newer
    });
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // The thread ends when its request channel closes.
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::log_backend::MemDisk;

    #[test]
    fn a_flush_waits_out_the_commit_window_and_covers_what_was_written_meanwhile() {
        let disk = MemDisk::new();
        let backend = Arc::new(disk.backend());
        let (tx, rx) = watch::channel(0);
        let window = Duration::from_millis(300);
        let mut f = Flusher::start(backend.clone(), tx, window).unwrap();
        assert!(f.may_start(), "no flush yet");

        backend.insert(1, b"one").unwrap();
        f.written(1);
        let first = Instant::now();
        assert!(f.flush_here(1).result.is_ok());
        assert!(!f.may_start(), "within the window of the first flush");

        // The core asks for batch 2 and goes on writing batch 3 while the
        // flusher waits: the flush covers both.
        backend.insert(2, b"two").unwrap();
        f.written(2);
        f.request(2);
        backend.insert(3, b"three").unwrap();
        f.written(3);
        assert_eq!(disk.durable().len(), 1, "nothing flushed within the window");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let done = rt.block_on(f.next());
        assert!(
            first.elapsed() >= window,
            "the second flush began {:?} after the first",
            first.elapsed()
        );
        assert!(done.result.is_ok());
        assert_eq!(done.upto, 3);
        assert_eq!(*rx.borrow(), 3, "published to the writers");
        assert_eq!(disk.durable().len(), 3);
    }

    #[test]
    fn without_a_window_a_flush_may_always_begin() {
        let disk = MemDisk::new();
        let (tx, _rx) = watch::channel(0);
        let f = Flusher::start(Arc::new(disk.backend()), tx, Duration::ZERO).unwrap();
        assert!(f.flush_here(0).result.is_ok());
        assert!(f.may_start());
    }
}
