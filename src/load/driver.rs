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

use super::client::{Client, Phase, HOUSEKEEPING};
use super::report::SessionStats;
use super::workload::Schedule;
use super::Plan;

/// Bytes read from a socket at a time (at most).
const READ_CHUNK: usize = 64 * 1024;
/// Most reads from one socket per turn of the loop.
const READS_PER_WAKE: usize = 16;

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
        }
    }

    fn done(&self) -> bool {
        self.client.phase == Phase::Done
    }

    /// Writes what is queued, as far as the socket takes it.
    fn write(&mut self) {
        let c = &mut self.client;
        if c.written < c.out.len() {
            let s = &self.stream;
            if c.write_out(|buf| (&*s).write(buf)).is_err() {
                c.fail("connection lost while writing");
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

    /// Writes what is left (if the socket takes it), closes the connection
    /// and returns the counts.
    pub(super) fn finish(mut self) -> SessionStats {
        self.write();
        let _ = self.stream.shutdown(Shutdown::Write);
        self.client.into_stats()
    }
}

/// Runs `conns` (session slot = index) from the start of `schedule` at
/// `start` until every session has logged out; `total` requests in all.
pub(super) fn drive(conns: &mut [Conn], start: Instant, schedule: Schedule, total: u64) {
    if sleeps_on_time(&schedule) {
        crate::cpu_latency::tighten_timer_slack();
    }
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut sent = 0u64;
    let mut housekeeping = start + HOUSEKEEPING;
    // Bytes the sessions read before the start (past their Logon replies).
    for c in conns.iter_mut() {
        c.handle_frames();
    }
    loop {
        let now = Instant::now();
        if sent < total {
            let due = now
                .checked_duration_since(start)
                .map_or(0, |e| schedule.due_at(e).min(total));
            if due > sent {
                for c in conns.iter_mut() {
                    c.client.send_scheduled(&c.plan, due);
                }
                sent = due;
            }
        }
        let heartbeat = now >= housekeeping;
        if heartbeat {
            housekeeping = now + HOUSEKEEPING;
        }
        for c in conns.iter_mut().filter(|c| !c.done()) {
            if heartbeat {
                c.client.housekeeping();
            }
            if now >= c.deadline {
                c.deadline = c.client.deadline_passed(&c.plan);
            }
            if let Some(at) = c.client.log_out_if_drained() {
                c.deadline = at;
            }
            c.write();
        }
        if conns.iter().all(Conn::done) {
            return;
        }
        let mut wake = conns
            .iter()
            .filter(|c| !c.done())
            .map(|c| c.deadline)
            .fold(housekeeping, Instant::min);
        if sent < total {
            wake = wake.min(start + schedule.global_offset(sent));
        }
        let timeout = wake.saturating_duration_since(Instant::now());
        let live: Vec<usize> = (0..conns.len()).filter(|&i| !conns[i].done()).collect();
        let ready = {
            let mut fds: Vec<PollFd<'_>> = live
                .iter()
                .map(|&i| {
                    let c = &conns[i];
                    let mut events = PollFlags::IN;
                    if c.client.written < c.client.out.len() {
                        events |= PollFlags::OUT;
                    }
                    PollFd::new(&c.stream, events)
                })
                .collect();
            // Whole seconds and nanoseconds: always representable.
            let timeout = Timespec {
                tv_sec: timeout.as_secs() as i64,
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => fds.iter().map(PollFd::revents).collect(),
                Err(rustix::io::Errno::INTR) => vec![PollFlags::empty(); live.len()],
                Err(e) => {
                    for &i in &live {
                        conns[i].client.fail(&format!("poll: {e}"));
                    }
                    return;
                }
            }
        };
        for (&i, revents) in live.iter().zip(ready) {
            if revents.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                conns[i].read(&mut chunk);
            }
        }
    }
}
