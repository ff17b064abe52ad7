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
//!
//! Output whose batch is durable already may be written by the core itself
//! ([`OutSender::send_durable`]) when the connection is plain TCP and its
//! writer has nothing left to write: that saves waking the writer's task
//! for each batch. Whatever the socket does not take at once goes to the
//! writer, in order, as usual.

use std::io::{IoSlice, Write};
use std::net::TcpStream;
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
    /// Bytes handed to the writer and not written yet.
    unwritten: Arc<AtomicUsize>,
    /// The connection's socket (a second descriptor of it, non-blocking),
    /// for [`OutSender::send_durable`].
    direct: Option<TcpStream>,
}

/// The writer's end.
#[derive(Debug)]
pub struct OutReceiver {
    rx: mpsc::UnboundedReceiver<(Outgoing, u64)>,
    queued: Arc<AtomicUsize>,
    unwritten: Arc<AtomicUsize>,
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
    let unwritten = Arc::new(AtomicUsize::new(0));
    (
        OutSender {
            tx,
            queued: queued.clone(),
            max: max.max(1),
            unwritten: unwritten.clone(),
            direct: None,
        },
        OutReceiver {
            rx,
            queued,
            unwritten,
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
            let bytes = frames.iter().map(Bytes::len).sum();
            self.unwritten.fetch_add(bytes, Ordering::AcqRel);
        }
        self.tx.send((o, after)).is_ok()
    }

    /// Lets [`OutSender::send_durable`] write to `socket` (plain TCP: a
    /// second descriptor of the connection's non-blocking socket).
    #[must_use]
    pub fn with_direct(mut self, socket: TcpStream) -> OutSender {
        self.direct = Some(socket);
        self
    }

    /// Sends messages whose batch is durable: written here at once when
    /// the writer has nothing left to write (in order, then, by
    /// construction), the rest handed to the writer. Same result as
    /// [`OutSender::try_send`].
    pub fn send_durable(&self, mut frames: Vec<Bytes>) -> bool {
        let writable =
            frames.len() <= self.capacity() && self.unwritten.load(Ordering::Acquire) == 0;
        let Some(mut sock) = self.direct.as_ref().filter(|_| writable) else {
            return self.try_send(Outgoing::Data(frames));
        };
        while !frames.is_empty() {
            let mut slices = [IoSlice::new(&[]); 64];
            let k = frames.len().min(slices.len());
            for (slice, frame) in slices.iter_mut().zip(&frames) {
                *slice = IoSlice::new(frame);
            }
            match sock.write_vectored(&slices[..k]) {
                // Would block, or failed: the writer takes the rest (and
                // meets the error, or the close, itself).
                Ok(0) | Err(_) => break,
                Ok(mut n) => {
                    let mut whole = 0;
                    while whole < frames.len() && frames[whole].len() <= n {
                        n -= frames[whole].len();
                        whole += 1;
                    }
                    frames.drain(..whole);
                    if n > 0 {
                        bytes::Buf::advance(&mut frames[0], n);
                    }
                }
            }
        }
        frames.is_empty() || self.try_send(Outgoing::Data(frames))
    }
}

impl OutReceiver {
    /// The writer wrote `n` bytes of what it was handed.
    pub fn written(&self, n: usize) {
        self.unwritten.fetch_sub(n, Ordering::AcqRel);
    }

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

    /// A queue of `max` messages with a direct socket (non-blocking, as the
    /// gateway's is), and the peer's end of that socket (blocking).
    fn direct_queue(max: usize) -> (OutSender, OutReceiver, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let (tx, rx) = out_queue(max, None);
        (tx.with_direct(ours), rx, peer)
    }

    fn read_exactly(peer: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        std::io::Read::read_exact(peer, &mut got).unwrap();
        got
    }

    /// What the writer is handed, taken and marked written as the writer does.
    fn take_as_writer(rx: &mut OutReceiver) -> Vec<u8> {
        let mut written = Vec::new();
        while let Some(Outgoing::Data(frames)) = rx.try_recv() {
            for f in frames {
                written.extend_from_slice(&f);
                rx.written(f.len());
            }
        }
        written
    }

    #[test]
    fn durable_output_is_written_at_once_when_the_writer_has_nothing() {
        let (tx, mut rx, mut peer) = direct_queue(8);
        assert!(tx.send_durable(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")]));
        assert!(rx.try_recv().is_none(), "nothing for the writer");
        assert_eq!(read_exactly(&mut peer, 3), b"abc");
    }

    #[test]
    fn durable_output_queues_behind_what_the_writer_has_not_written() {
        let (tx, mut rx, mut peer) = direct_queue(8);
        assert!(tx.try_send(Outgoing::Data(vec![Bytes::from_static(b"first")])));
        assert!(tx.send_durable(vec![Bytes::from_static(b"second")]));
        // The writer takes both, in order; the socket got nothing directly.
        assert_eq!(take_as_writer(&mut rx), b"firstsecond");
        // Everything written: the next one goes straight out.
        assert!(tx.send_durable(vec![Bytes::from_static(b"third")]));
        assert!(rx.try_recv().is_none());
        assert_eq!(read_exactly(&mut peer, 5), b"third");
    }

    #[test]
    fn what_the_socket_does_not_take_goes_to_the_writer_in_order() {
        let (tx, mut rx, mut peer) = direct_queue(1_000);
        // Far more than a socket buffers while the peer reads nothing.
        let frames: Vec<Bytes> = (0..400u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; 64 * 1024 + i as usize]))
            .collect();
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        assert!(tx.send_durable(frames));
        let rest = take_as_writer(&mut rx);
        assert!(!rest.is_empty(), "the socket cannot have taken it all");
        let direct = read_exactly(&mut peer, expected.len() - rest.len());
        assert_eq!([direct, rest].concat(), expected);
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
