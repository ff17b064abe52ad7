//! A connection's outbound queue, from the core to the connection's writer.
//!
//! The core hands over each session's output of a batch at once (one
//! [`Outgoing::Data`] with every message), so a busy connection costs one
//! wake-up of its writer per batch rather than one per message. The bound
//! (MaxOutboundQueue) still counts messages: the writer has not taken more
//! than `max` of them at any time.
//!
//! With a pipelined store (the core goes on with the next batch while a
//! flusher thread makes the last one durable), each hand-over names the
//! batch it depends on, and the writer takes it only once that batch is
//! durable: nothing reaches the socket before it is persisted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

/// From the core to a connection's writer.
#[derive(Debug)]
pub enum Outgoing {
    /// Messages to write, in order.
    Data(Vec<Bytes>),
    /// Close the connection after what was sent before.
    Close,
}

/// The core's end.
#[derive(Debug)]
pub struct OutSender {
    tx: mpsc::UnboundedSender<(Outgoing, u64)>,
    queued: Arc<AtomicUsize>,
    max: usize,
}

/// The writer's end.
#[derive(Debug)]
pub struct OutReceiver {
    rx: mpsc::UnboundedReceiver<(Outgoing, u64)>,
    queued: Arc<AtomicUsize>,
    /// The last durable batch, if hand-overs may wait for one.
    durable: Option<watch::Receiver<u64>>,
    /// Taken from the channel, waiting for its batch to be durable.
    waiting: Option<(Outgoing, u64)>,
}

/// A queue holding at most `max` messages (at least 1), whose hand-overs
/// wait for the batch they depend on when `durable` is given.
pub fn out_queue(max: usize, durable: Option<watch::Receiver<u64>>) -> (OutSender, OutReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        OutSender {
            tx,
            queued: queued.clone(),
            max: max.max(1),
        },
        OutReceiver {
            rx,
            queued,
            durable,
            waiting: None,
        },
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
        self.try_send_after(o, 0)
    }

    /// [`OutSender::try_send`], to be written once batch `after` is durable.
    pub fn try_send_after(&self, o: Outgoing, after: u64) -> bool {
        if let Outgoing::Data(frames) = &o {
            if frames.len() > self.capacity() {
                return false;
            }
            self.queued.fetch_add(frames.len(), Ordering::AcqRel);
        }
        self.tx.send((o, after)).is_ok()
    }
}

impl OutReceiver {
    fn taken(&self, o: &Outgoing) {
        if let Outgoing::Data(frames) = o {
            self.queued.fetch_sub(frames.len(), Ordering::AcqRel);
        }
    }

    /// The next hand-over, once durable; None once the core dropped its
    /// end (or stopped before the hand-over became durable). Safe to
    /// cancel: a hand-over taken from the channel waits in `self`.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        if self.waiting.is_none() {
            let o = self.rx.recv().await?;
            self.taken(&o.0);
            self.waiting = Some(o);
        }
        let after = self.waiting.as_ref().map_or(0, |w| w.1);
        if let Some(durable) = self.durable.as_mut() {
            if *durable.borrow() < after && durable.wait_for(|d| *d >= after).await.is_err() {
                // The core is gone and the batch never became durable.
                self.waiting = None;
                return None;
            }
        }
        self.waiting.take().map(|w| w.0)
    }

    /// The next hand-over if there is one now and it is durable.
    pub fn try_recv(&mut self) -> Option<Outgoing> {
        if self.waiting.is_none() {
            let o = self.rx.try_recv().ok()?;
            self.taken(&o.0);
            self.waiting = Some(o);
        }
        let after = self.waiting.as_ref().map_or(0, |w| w.1);
        if self.durable.as_ref().is_some_and(|d| *d.borrow() < after) {
            return None;
        }
        self.waiting.take().map(|w| w.0)
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
        let (tx, mut rx) = out_queue(3, None);
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

    #[tokio::test]
    async fn a_hand_over_waits_until_its_batch_is_durable() {
        let (durable, watch_rx) = watch::channel(4);
        let (tx, mut rx) = out_queue(8, Some(watch_rx));
        let m = || Bytes::from_static(b"x");
        assert!(tx.try_send_after(Outgoing::Data(vec![m()]), 4));
        assert!(tx.try_send_after(Outgoing::Data(vec![m(), m()]), 5));
        assert!(tx.try_send_after(Outgoing::Close, 5));
        assert!(matches!(rx.try_recv(), Some(Outgoing::Data(v)) if v.len() == 1));
        assert!(rx.try_recv().is_none(), "batch 5 is not durable");
        assert_eq!(tx.capacity(), 8, "taken from the queue, only not written");
        // A cancelled wait keeps the hand-over.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), rx.recv()).await;
        assert!(waited.is_err());
        durable.send_replace(5);
        assert!(matches!(rx.recv().await, Some(Outgoing::Data(v)) if v.len() == 2));
        assert!(matches!(rx.recv().await, Some(Outgoing::Close)));
        // Never durable: not written.
        assert!(tx.try_send_after(Outgoing::Data(vec![m()]), 9));
        drop(durable);
        assert!(rx.recv().await.is_none());
    }
}
