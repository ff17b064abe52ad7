//! The core thread's wait: polls a future on the current thread and sleeps
//! in between with `std::thread::park_timeout`, so the wait needs neither
//! the runtime nor its timer.
//!
//! Waiting through the runtime (`Handle::block_on` with a `tokio::time`
//! sleep for the timeout) registered a timer at every wait, and a timer due
//! before the runtime's next wake-up unparks its I/O driver: a write to an
//! eventfd on the core and a wake-up of a runtime thread, about 2 700 a
//! second at 10 000 orders/s, for nothing. The futures waited on here are
//! channels (`tokio::sync::mpsc`), which wake whatever waker polled them.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Wakes the thread that made it.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Waits on futures on the thread that made it (it cannot be sent to
/// another: parking there would never be woken, every wait a timeout).
pub struct Parker {
    waker: Waker,
    _this_thread: PhantomData<*const ()>,
}

impl Parker {
    /// A parker for the current thread.
    pub fn new() -> Parker {
        Parker {
            waker: Waker::from(Arc::new(Unpark(thread::current()))),
            _this_thread: PhantomData,
        }
    }

    /// `fut`'s output once it is ready, or None after `timeout` (which may
    /// be zero: the future is polled once). An unpark of the thread from
    /// elsewhere (shutdown) ends the wait early too: the future is polled
    /// again and, if still pending, the wait goes on.
    pub fn wait<F: Future>(&self, fut: F, timeout: Duration) -> Option<F::Output> {
        let mut cx = Context::from_waker(&self.waker);
        let mut fut = pin!(fut);
        let deadline = Instant::now() + timeout;
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return Some(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            // Returns early when woken (or spuriously): the loop polls again.
            thread::park_timeout(deadline - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[test]
    fn a_message_sent_from_another_thread_ends_the_wait() {
        let parker = Parker::new();
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            tx.blocking_send(7).unwrap();
        });
        let started = Instant::now();
        let got = parker.wait(rx.recv(), Duration::from_secs(10));
        assert_eq!(got, Some(Some(7)));
        assert!(started.elapsed() < Duration::from_secs(5));
        sender.join().unwrap();
    }

    #[test]
    fn nothing_sent_ends_at_the_timeout() {
        let parker = Parker::new();
        let (_tx, mut rx) = mpsc::channel::<u32>(1);
        let started = Instant::now();
        assert_eq!(parker.wait(rx.recv(), Duration::from_millis(30)), None);
        assert!(started.elapsed() >= Duration::from_millis(30));
        // A zero timeout polls once: ready input is still taken.
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        tx.try_send(1).unwrap();
        assert_eq!(parker.wait(rx.recv(), Duration::ZERO), Some(Some(1)));
        assert_eq!(parker.wait(rx.recv(), Duration::ZERO), None);
    }
}
