//! A connection's outbound queue, from the core to the connection's writer.
//!
//! The core hands over each session's output of a batch at once (one
//! [`Outgoing::Data`] with every message), so a busy connection costs one
//! wake-up of its writer per batch rather than one per message. The bound
//! (MaxOutboundQueue) still counts messages: the writer has not taken more
//! than `max` of them at any time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// From the core to a connection's writer.
#[derive(Debug)]
pub enum Outgoing {
    /// Messages to write, in order (already durable).
    Data(Vec<Bytes>),
    /// Close the connection after what was sent before.
    Close,
}

/// The core's end.
#[derive(Debug)]
pub struct OutSender {
    tx: mpsc::UnboundedSender<Outgoing>,
    queued: Arc<AtomicUsize>,
    max: usize,
}

/// The writer's end.
#[derive(Debug)]
pub struct OutReceiver {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    queued: Arc<AtomicUsize>,
}

/// A queue holding at most `max` messages (at least 1).
pub fn out_queue(max: usize) -> (OutSender, OutReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        OutSender {
            tx,
            queued: queued.clone(),
            max: max.max(1),
        },
        OutReceiver { rx, queued },
    )
}

impl OutSender {
    /// Messages that still fit.
    pub fn capacity(&self) -> usize {
        self.max.saturating_sub(self.queued.load(Ordering::Acquire))
    }

    /// The bound (MaxOutboundQueue).
    pub fn max_capacity(&self) -> usize {
        self.max
    }

    /// Queues `o`; false when its messages do not fit (nothing is queued)
    /// or the writer is gone. A Close always fits.
    pub fn try_send(&self, o: Outgoing) -> bool {
        if let Outgoing::Data(frames) = &o {
            if frames.len() > self.capacity() {
                return false;
            }
            self.queued.fetch_add(frames.len(), Ordering::AcqRel);
        }
        self.tx.send(o).is_ok()
    }
}

impl OutReceiver {
    fn taken(&self, o: &Outgoing) {
        if let Outgoing::Data(frames) = o {
            self.queued.fetch_sub(frames.len(), Ordering::AcqRel);
        }
    }

    /// The next hand-over; None once the core dropped its end.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        let o = self.rx.recv().await?;
        self.taken(&o);
        Some(o)
    }

    /// The next hand-over if there is one now.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let o = self.rx.try_recv().ok()?;
        self.taken(&o);
        Some(o)
    }

    /// True once the core dropped its end.
    pub fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_counts_messages_until_the_writer_takes_them() {
        let (tx, mut rx) = out_queue(3);
        let m = || Bytes::from_static(b"x");
        assert!(tx.try_send(Outgoing::Data(vec![m(), m()])));
        assert_eq!(tx.capacity(), 1);
        assert!(
            !tx.try_send(Outgoing::Data(vec![m(), m()])),
            "two do not fit"
        );
        assert!(tx.try_send(Outgoing::Data(vec![m()])));
        assert_eq!(tx.capacity(), 0);
        assert!(tx.try_send(Outgoing::Close), "a close always fits");
        assert!(matches!(rx.try_recv(), Some(Outgoing::Data(v)) if v.len() == 2));
        assert_eq!(tx.capacity(), 2);
        assert!(matches!(rx.try_recv(), Some(Outgoing::Data(v)) if v.len() == 1));
        assert!(matches!(rx.try_recv(), Some(Outgoing::Close)));
        assert!(rx.try_recv().is_none());
        assert!(!rx.is_closed());
        drop(tx);
        assert!(rx.is_closed());
    }
}
