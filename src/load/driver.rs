//! Fixed-rate mode's driver thread: once every session has logged on, one
//! OS thread runs them all. It sends each request the moment it is due,
//! reads and handles the answers, answers TestRequests and ResendRequests,
//! sends Heartbeats, then drains and logs out; between events it waits in
//! one `ppoll` over all the sockets, with the next due request as timeout
//! (nanosecond precision, where tokio's timer rounds to milliseconds).
//!
//! One thread that both sends and reads, because on a machine shared with
//! the acceptor under test the load generator's CPU time is taken from the
//! acceptor. A pacer thread that sent beside a tokio task per session that
//! read cost ~33 µs of CPU per request at 10 000/s on one CPU (the pacer's
//! sleep and write, the runtime's `epoll_wait`, a mutex and a task wake-up
//! per answer); see README "Benchmarks" for what this one costs.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use crate::fix::FixCodec;

use super::client::{Client, Phase, HOUSEKEEPING, READ_BUFFER};
use super::report::SessionStats;
use super::workload::Schedule;
use super::Plan;

/// Most reads from one socket per turn of the loop.
const READS_PER_WAKE: usize = 16;
/// Once every session is done, how long the last bytes (Logouts) may take
/// to be written.
const FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// Below this interval between requests the driver keeps the default timer
/// slack (see [`crate::cpu_latency::tighten_timer_slack`]): each wake-up
/// then sends the few requests that fell due meanwhile. Waking for every
/// request instead cost the pacer twice the CPU at 50 000/s (35 % -> 64 %
/// of a core) and, on a two-core machine shared with the acceptor, made the
/// acceptor's p99 many times worse.
const MIN_PERIOD: Duration = Duration::from_micros(50);

/// Whether the driver of `schedule` wakes for each request on time (see
/// [`MIN_PERIOD`]).
pub(super) fn sleeps_on_time(schedule: &Schedule) -> bool {
    schedule.global_offset(1) >= MIN_PERIOD
}

/// A logged-on session in the driver's hands.
pub(super) struct Conn {
    client: Client,
    /// The socket, non-blocking.
    stream: TcpStream,
    codec: FixCodec,
    /// Bytes read and not yet framed.
    inbuf: BytesMut,
    plan: Plan,
    /// When the current phase ends (see [`Client::deadline_passed`]).
    deadline: Instant,
    /// Our side of the connection is shut down.
    closed: bool,
}

impl Conn {
    /// A session that logged on (`inbuf`: bytes read past its Logon reply),
    /// to run by `plan`.
    pub(super) fn new(client: Client, stream: TcpStream, inbuf: BytesMut, plan: Plan) -> Conn {
        Conn {
            client,
            stream,
            codec: FixCodec::default(),
            inbuf,
            deadline: plan.end,
            plan,
            closed: false,
        }
    }

    fn done(&self) -> bool {
        self.client.phase == Phase::Done
    }

    /// Bytes queued and not yet written.
    fn pending(&self) -> bool {
        self.client.written < self.client.out.len()
    }

    /// Shuts our side of the connection down (once).
    fn close(&mut self) {
        if !self.closed {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.closed = true;
        }
    }

    /// Writes what is queued, as far as the socket takes it.
    fn write(&mut self) {
        if self.pending() {
            let s = &self.stream;
            if self.client.write_out(|buf| (&*s).write(buf)).is_err() {
                self.client.fail("connection lost while writing");
            }
        }
    }

    /// Handles every whole frame read; false when the session ended.
    fn handle_frames(&mut self) -> bool {
        loop {
            match self.codec.decode(&mut self.inbuf) {
                Ok(Some(frame)) => {
                    if !self.client.on_frame(frame, &self.plan) {
                        return false;
                    }
                }
                Ok(None) => return true,
                Err(e) => {
                    self.client.fail(&format!("read error: {e}"));
                    return false;
                }
            }
        }
    }

    /// Reads what the socket holds (up to [`READS_PER_WAKE`] chunks: the
    /// rest waits for the next turn, after the other sessions) and handles
    /// it.
    fn read(&mut self, chunk: &mut [u8]) {
        for _ in 0..READS_PER_WAKE {
            match (&self.stream).read(chunk) {
                Ok(0) => {
                    self.client.fail("acceptor closed the connection");
                    return;
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&chunk[..n]);
                    if !self.handle_frames() || n < chunk.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.client.fail(&format!("read error: {e}"));
                    return;
                }
            }
        }
    }

    /// Closes the connection and returns the counts.
    pub(super) fn finish(mut self) -> SessionStats {
        self.close();
        self.client.into_stats()
    }
}

/// Runs `conns` (session slot = index) from the start of `schedule` at
/// `start` until every session has logged out; `total` requests in all.
pub(super) fn drive(conns: &mut [Conn], start: Instant, schedule: Schedule, total: u64) {
    if sleeps_on_time(&schedule) {
        crate::cpu_latency::tighten_timer_slack();
    }
    let mut chunk = vec![0u8; READ_BUFFER];
    let mut sent = 0u64;
    let mut housekeeping = start + HOUSEKEEPING;
    // Once every session is done: how long their last bytes may take.
    let mut flush_until: Option<Instant> = None;
    // The sessions the last wait was on, with what it found.
    let mut polled: Vec<(usize, PollFlags)> = Vec::with_capacity(conns.len());
    let mut ready: Vec<PollFlags> = Vec::with_capacity(conns.len());
    // Bytes the sessions read before the start (past their Logon replies).
    for c in conns.iter_mut() {
        c.handle_frames();
    }
    loop {
        let now = Instant::now();
        // Due requests go first: sending never waits for the reading below.
        if sent < total {
            let due = now
                .checked_duration_since(start)
                .map_or(0, |e| schedule.due_at(e).min(total));
            if due > sent {
                for c in conns.iter_mut() {
                    c.client.send_scheduled(&c.plan, due);
                    c.write();
                }
                sent = due;
            }
        }
        for (&(i, _), revents) in polled.iter().zip(&ready) {
            let c = &mut conns[i];
            if !c.done() && revents.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                c.read(&mut chunk);
            }
        }
        let heartbeat = now >= housekeeping;
        if heartbeat {
            housekeeping = now + HOUSEKEEPING;
        }
        for c in conns.iter_mut() {
            if !c.done() {
                if heartbeat {
                    c.client.housekeeping();
                }
                if now >= c.deadline {
                    c.deadline = c.client.deadline_passed(&c.plan);
                }
                if let Some(at) = c.client.log_out_if_drained() {
                    c.deadline = at;
                }
            }
            // A session that is done may still have its last bytes to
            // write (the Logout answering the acceptor's): they go now, and
            // the connection is closed once they are written.
            c.write();
            if c.done() && !c.pending() {
                c.close();
            }
        }
        let mut wake = housekeeping;
        if conns.iter().all(Conn::done) {
            let until = *flush_until.get_or_insert(now + FLUSH_LIMIT);
            if now >= until || !conns.iter().any(Conn::pending) {
                return;
            }
            wake = until;
        }
        for c in conns.iter().filter(|c| !c.done()) {
            wake = wake.min(c.deadline);
        }
        if sent < total {
            wake = wake.min(start + schedule.global_offset(sent));
        }
        let timeout = wake.saturating_duration_since(Instant::now());
        polled.clear();
        for (i, c) in conns.iter().enumerate() {
            let mut events = PollFlags::empty();
            if !c.done() {
                events |= PollFlags::IN;
            }
            if c.pending() {
                events |= PollFlags::OUT;
            }
            if !events.is_empty() {
                polled.push((i, events));
            }
        }
        let mut fds: Vec<PollFd<'_>> = polled
            .iter()
            .map(|&(i, events)| PollFd::new(&conns[i].stream, events))
            .collect();
        // Whole seconds and nanoseconds: always representable.
        let timeout = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        ready.clear();
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => ready.extend(fds.iter().map(PollFd::revents)),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                drop(fds);
                for c in conns.iter_mut().filter(|c| !c.done()) {
                    c.client.fail(&format!("poll: {e}"));
                }
                return;
            }
        }
    }
}
