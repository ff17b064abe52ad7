//! The flusher thread of a pipelined store (`fsync` mode).
//!
//! The core writes each batch record and goes on with the next batch at
//! once; this thread makes what was written durable (one fsync covers every
//! record written before it began) and reports back. Each connection's
//! writer holds the output of a batch until that batch is durable (see
//! `session::out_queue`), so the durability rule is kept while the core's
//! CPU work and the disk's fsync overlap instead of taking turns.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
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
}

impl Flusher {
    /// Starts the thread flushing `backend`; `durable` is where the last
    /// durable batch is published to the connections' writers.
    pub fn start(
        backend: Arc<dyn LogBackend>,
        durable: watch::Sender<u64>,
    ) -> std::io::Result<Flusher> {
        let (req_tx, req_rx) = std_mpsc::channel::<u64>();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let durable = Arc::new(durable);
        let published = durable.clone();
        let flushed = backend.clone();
        let thread = std::thread::Builder::new()
            .name("fixgw-flush".into())
            .spawn(move || {
                while let Ok(upto) = req_rx.recv() {
                    // The writers learn it from here, without waiting for
                    // the core thread to wake up.
                    let done = flush(flushed.as_ref(), &published, upto);
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
        })
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
        flush(self.backend.as_ref(), &self.durable, upto)
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

    /// Tells the writers that every batch up to `batch` is durable.
    pub fn publish(&self, batch: u64) {
        publish(&self.durable, batch);
    }
}

/// One flush of `backend` covering batches up to `upto`, published to the
/// writers when it succeeds.
fn flush(backend: &dyn LogBackend, durable: &watch::Sender<u64>, upto: u64) -> Flushed {
    let started = Instant::now();
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
