//! One FIX 4.4 initiator session of the load generator: connect, Logon,
//! send the scheduled requests, match answers to them, answer TestRequest
//! and ResendRequest (with a gap fill: nothing is persisted), keep the
//! connection alive with Heartbeats, and Logout at the end.
//!
//! The session's state is a [`Client`]. In max mode it is run by one tokio
//! task, which reads and writes from one `select!` loop: writes go through a
//! buffer that is written whenever the socket takes bytes, so a slow reader
//! on the other side never blocks our reads. In fixed-rate mode every
//! session, once logged on, is handed to the driver thread
//! ([`super::driver`]), which runs the same [`Client`] steps.

use std::io::ErrorKind;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};
use tokio_util::codec::FramedRead;

use crate::fix::time::{now_utc, Precision};
use crate::fix::{Encoder, FixCodec, Message, BEGIN_STRING_FIX44};
use crate::seq_window::SeqWindow;

use super::report::SessionStats;
use super::workload::{OpenOrder, OpenOrders, Request, Schedule, Workload};

/// How long to wait for the TCP connection and for the Logon reply.
pub const LOGON_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the end to wait for answers to requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the acceptor's Logout reply.
pub const LOGOUT_TIMEOUT: Duration = Duration::from_secs(2);
/// Most frames handled between two looks at the clock and the socket.
const READ_BATCH: usize = 256;
/// Period of the heartbeat check.
pub(super) const HOUSEKEEPING: Duration = Duration::from_millis(250);

/// Everything a session needs before it connects.
#[derive(Debug)]
pub struct SessionSetup {
    /// Host to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// SenderCompID (49).
    pub sender: String,
    /// TargetCompID (56).
    pub target: String,
    /// HeartBtInt.
    pub heartbeat: Duration,
    /// Send ResetSeqNumFlag=Y on Logon.
    pub reset_seq: bool,
    /// Account (1) on every order, if any.
    pub account: Option<String>,
    /// The requests to send.
    pub workload: Workload,
    /// Prefix of every ClOrdID; the order number follows.
    pub clordid_prefix: String,
}

/// How requests are paced once the run starts.
#[derive(Debug, Clone)]
pub enum Pacing {
    /// As fast as answers come back, at most `window` in flight.
    Max {
        /// In-flight limit.
        window: usize,
    },
    /// On a fixed schedule, sent by the driver thread.
    Fixed {
        /// The schedule shared by all sessions.
        schedule: Schedule,
        /// This session's slot in the schedule.
        slot: u64,
        /// Global number of requests in the whole run.
        total: u64,
    },
}

/// The run's timing, given to every session once all have logged on.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Time zero of the schedule.
    pub start: Instant,
    /// Requests scheduled from here on are measured.
    pub measure_from: Instant,
    /// No request is scheduled from here on.
    pub end: Instant,
    /// Pacing.
    pub pacing: Pacing,
}

/// A request sent and not answered yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    scheduled: Instant,
    seq: u64,
    measured: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Sending,
    Draining,
    LoggingOut,
    Done,
}

/// Runs one session in max mode: connects and logs on, reports the logon
/// result on `logged_on`, waits for the plan on `go` (`None`: the run was
/// called off), then runs it. Returns what it counted.
pub async fn run_session(
    setup: SessionSetup,
    logged_on: oneshot::Sender<Result<(), String>>,
    go: oneshot::Receiver<Option<Plan>>,
) -> SessionStats {
    let mut stats = SessionStats::new(&setup.sender);
    let (reader, writer) = match connect_and_logon(&setup).await {
        Ok(halves) => halves,
        Err(e) => {
            stats.error = Some(e.clone());
            let _ = logged_on.send(Err(e));
            return stats;
        }
    };
    let _ = logged_on.send(Ok(()));
    let plan = match go.await {
        Ok(Some(plan)) => Some(plan),
        _ => None,
    };
    let mut task = Task {
        client: Client::new(setup, stats),
        writer,
    };
    match plan {
        Some(plan) => task.run(reader, plan).await,
        None => task.logout_only(reader).await,
    }
    task.finish().await
}

/// Connects and logs on for the driver thread (fixed-rate mode): the
/// session's state and its socket, non-blocking, with whatever was read
/// past the Logon reply. On failure, the statistics with the reason.
pub(super) async fn logon_for_driver(
    setup: SessionSetup,
) -> Result<(Client, std::net::TcpStream, bytes::BytesMut), SessionStats> {
    let mut stats = SessionStats::new(&setup.sender);
    let socket = match connect_and_logon(&setup).await {
        Ok((reader, writer)) => {
            let parts = reader.into_parts();
            parts
                .io
                .reunite(writer)
                .map_err(|e| e.to_string())
                .and_then(|s| s.into_std().map_err(|e| e.to_string()))
                .map(|s| (s, parts.read_buf))
        }
        Err(e) => Err(e),
    };
    match socket {
        Ok((stream, read_buf)) => Ok((Client::new(setup, stats), stream, read_buf)),
        Err(e) => {
            stats.error = Some(e);
            Err(stats)
        }
    }
}

/// Bytes the load generator's connections read at a time (at most).
pub(super) const READ_BUFFER: usize = 64 * 1024;

/// Opens the TCP connection, sends Logon and waits for the acceptor's Logon.
pub(crate) async fn connect_and_logon(
    setup: &SessionSetup,
) -> Result<(FramedRead<OwnedReadHalf, FixCodec>, OwnedWriteHalf), String> {
    let addr = format!("{}:{}", setup.host, setup.port);
    let stream = tokio::time::timeout(LOGON_TIMEOUT, TcpStream::connect(&addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    // At full load a batch's reports arrive as one write of 100s of KB:
    // read them 64 KB at a time, not in the default 8 KB (8x the syscalls).
    let mut reader = FramedRead::with_capacity(rd, FixCodec::default(), READ_BUFFER);
    let mut enc = Encoder::new();
    header(&mut enc, b"A", setup, 1);
    enc.field(98, b"0")
        .field_int(108, setup.heartbeat.as_secs() as i64);
    if setup.reset_seq {
        enc.field(141, b"Y");
    }
    wr.write_all(enc.finish(BEGIN_STRING_FIX44))
        .await
        .map_err(|e| format!("sending Logon: {e}"))?;
    let reply = tokio::time::timeout(LOGON_TIMEOUT, async {
        loop {
            match reader.next().await {
                None => return Err("connection closed before the Logon reply".to_string()),
                Some(Err(e)) => return Err(format!("reading the Logon reply: {e}")),
                Some(Ok(frame)) => {
                    let Ok(m) = Message::parse(frame) else {
                        continue;
                    };
                    match m.msg_type() {
                        b"A" => return Ok(()),
                        b"5" => {
                            return Err(format!(
                                "Logon refused: {}",
                                m.get_str(58).unwrap_or("Logout without text")
                            ))
                        }
                        b"3" => {
                            return Err(format!(
                                "Logon rejected: {}",
                                m.get_str(58).unwrap_or("Reject without text")
                            ))
                        }
                        _ => continue,
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| "no Logon reply in time".to_string())?;
    reply?;
    Ok((reader, wr))
}

/// Writes 35, 49, 56, 34 and 52.
pub(crate) fn header(enc: &mut Encoder, msg_type: &[u8], setup: &SessionSetup, seq: u64) {
    enc.start(msg_type)
        .field_str(49, &setup.sender)
        .field_str(56, &setup.target)
        .field_int(34, seq as i64)
        .field_time(52, now_utc(), Precision::Millis);
}

/// The connection state of a running session.
pub(super) struct Client {
    setup: SessionSetup,
    enc: Encoder,
    pub(super) out: Vec<u8>,
    pub(super) written: usize,
    next_seq: u64,
    last_sent: Instant,
    stats: SessionStats,
    open: OpenOrders,
    /// Pending requests by order number.
    pending: SeqWindow<Pending>,
    in_flight: usize,
    /// Next order number (= ClOrdID counter = schedule index).
    next_k: u64,
    pub(super) phase: Phase,
}

impl Client {
    fn new(setup: SessionSetup, stats: SessionStats) -> Client {
        Client {
            setup,
            enc: Encoder::new(),
            out: Vec::with_capacity(64 * 1024),
            written: 0,
            next_seq: 2,
            last_sent: Instant::now(),
            stats,
            open: OpenOrders::default(),
            pending: SeqWindow::with_capacity(0),
            in_flight: 0,
            next_k: 0,
            phase: Phase::Sending,
        }
    }

    /// Starts a message: header with the next MsgSeqNum.
    fn begin(&mut self, msg_type: &[u8]) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        header(&mut self.enc, msg_type, &self.setup, seq);
        seq
    }

    /// Finishes the message being encoded and queues it for writing.
    fn queue(&mut self) {
        let bytes = self.enc.finish(BEGIN_STRING_FIX44);
        self.out.extend_from_slice(bytes);
        self.last_sent = Instant::now();
    }

    fn send_heartbeat(&mut self, test_req_id: Option<&[u8]>) {
        self.begin(b"0");
        if let Some(id) = test_req_id {
            self.enc.field(112, id);
        }
        self.queue();
    }

    fn send_logout(&mut self) {
        self.begin(b"5");
        self.queue();
    }

    /// Answers a ResendRequest: we keep no store, so everything asked for
    /// is skipped with one SequenceReset-GapFill.
    fn send_gap_fill(&mut self, begin: u64) {
        let begin = begin.max(1);
        if begin >= self.next_seq {
            return;
        }
        let now = now_utc();
        self.enc
            .start(b"4")
            .field_str(49, &self.setup.sender)
            .field_str(56, &self.setup.target)
            .field_int(34, begin as i64)
            .field(43, b"Y")
            .field_time(52, now, Precision::Millis)
            .field_time(122, now, Precision::Millis)
            .field(123, b"Y")
            .field_int(36, self.next_seq as i64);
        self.queue();
    }

    /// The order number in one of our ClOrdIDs.
    fn order_number(&self, clordid: &[u8]) -> Option<u64> {
        super::workload::order_number(&self.setup.clordid_prefix, clordid)
    }

    /// Sends request number `next_k`, scheduled at `scheduled`.
    fn send_request(&mut self, scheduled: Instant, measured: bool) {
        let k = self.next_k;
        self.next_k += 1;
        let request = self.setup.workload.next(&mut self.open);
        let seq = self.begin(request.msg_type());
        request.encode_body(
            &mut self.enc,
            self.setup.workload.instruments(),
            k,
            &self.setup.clordid_prefix,
            self.setup.account.as_deref(),
            now_utc(),
        );
        self.queue();
        match request {
            Request::New {
                instrument,
                side,
                qty,
                ..
            } => self.open.sent(
                k,
                OpenOrder {
                    instrument,
                    side,
                    qty,
                },
            ),
            Request::Cancel { .. } => self.stats.cancels_sent += 1,
        }
        self.stats.sent += 1;
        // Numbered in sequence from 0: always the next after the window.
        let _ = self.pending.insert(
            k,
            Pending {
                scheduled,
                seq,
                measured,
            },
        );
        self.in_flight += 1;
        self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight);
    }

    /// Removes request `k` from the pending requests, if it is pending.
    fn take_pending(&mut self, k: u64) -> Option<Pending> {
        let p = self.pending.remove(k)?;
        self.in_flight -= 1;
        Some(p)
    }

    /// The pending request sent with MsgSeqNum `seq`.
    fn pending_by_seq(&self, seq: u64) -> Option<u64> {
        self.pending
            .iter()
            .find(|(_, p)| p.seq == seq)
            .map(|(k, _)| k)
    }

    /// Records the first answer to a request.
    fn answered(&mut self, p: Pending, at: Instant, plan: &Plan, rejected: bool) {
        if p.measured {
            let ns = at.saturating_duration_since(p.scheduled).as_nanos();
            self.stats
                .histogram
                .saturating_record(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
        }
        if rejected {
            self.stats.rejects += 1;
        } else {
            self.stats.acks += 1;
            if at >= plan.measure_from && at <= plan.end {
                self.stats.acks_measured += 1;
            }
        }
    }

    fn note_reject_text(&mut self, m: &Message) {
        if self.stats.first_reject.is_none() {
            self.stats.first_reject = Some(
                String::from_utf8_lossy(m.raw())
                    .replace('\x01', "|")
                    .to_string(),
            );
        }
    }

    /// Handles one inbound message. Returns false when the session must end.
    fn on_message(&mut self, m: &Message, at: Instant, plan: &Plan) -> bool {
        match m.msg_type() {
            b"8" => {
                let exec_type = m.get(150).and_then(|v| v.first().copied());
                let ord_status = m.get(39).and_then(|v| v.first().copied());
                let Some(k) = m.get(11).and_then(|v| self.order_number(v)) else {
                    return true;
                };
                if exec_type == Some(b'F') {
                    self.stats.fills += 1;
                }
                let rejected = exec_type == Some(b'8');
                if let Some(p) = self.take_pending(k) {
                    if rejected {
                        self.note_reject_text(m);
                    }
                    self.answered(p, at, plan, rejected);
                }
                if let Some(st) = ord_status {
                    self.open.on_status(k, st);
                    if let Some(orig) = m.get(41).and_then(|v| self.order_number(v)) {
                        self.open.on_status(orig, st);
                    }
                }
            }
            b"9" => {
                if let Some(k) = m.get(11).and_then(|v| self.order_number(v)) {
                    if let Some(p) = self.take_pending(k) {
                        self.stats.cancel_rejects += 1;
                        self.answered(p, at, plan, false);
                    }
                }
            }
            b"3" | b"j" => {
                let k = m.get_u64(45).and_then(|seq| self.pending_by_seq(seq));
                if let Some(k) = k {
                    if let Some(p) = self.take_pending(k) {
                        self.note_reject_text(m);
                        self.answered(p, at, plan, true);
                    }
                }
            }
            b"1" => {
                let id = m.get(112).map(<[u8]>::to_vec);
                self.send_heartbeat(id.as_deref());
            }
            b"2" => {
                if let Some(begin) = m.get_u64(7) {
                    self.send_gap_fill(begin);
                }
            }
            b"5" => {
                if self.phase == Phase::LoggingOut {
                    self.phase = Phase::Done;
                } else {
                    self.stats.error = Some(format!(
                        "acceptor logged out: {}",
                        m.get_str(58).unwrap_or("no text")
                    ));
                    self.send_logout();
                    self.phase = Phase::Done;
                }
                return false;
            }
            _ => {}
        }
        true
    }

    /// Max mode: fills the window with requests scheduled now.
    fn send_window(&mut self, plan: &Plan) {
        let Pacing::Max { window } = plan.pacing else {
            return;
        };
        let now = Instant::now();
        if self.phase != Phase::Sending || now >= plan.end {
            return;
        }
        let measured = now >= plan.measure_from;
        while self.in_flight < window {
            self.send_request(now, measured);
        }
    }

    /// Fixed-rate mode: sends this session's requests among the first
    /// `global` of the schedule (over all sessions) not sent yet.
    pub(super) fn send_scheduled(&mut self, plan: &Plan, global: u64) {
        let Pacing::Fixed { schedule, slot, .. } = &plan.pacing else {
            return;
        };
        if self.phase != Phase::Sending {
            return;
        }
        let mine = schedule.session_due(*slot, global);
        while self.next_k < mine {
            let scheduled = plan.start + schedule.offset(*slot, self.next_k);
            self.send_request(scheduled, scheduled >= plan.measure_from);
        }
    }

    /// The current phase's deadline passed: the end of sending (send what
    /// the schedule still holds, then wait for the answers), of the drain
    /// (log out) or of the logout (done). Returns the next deadline.
    pub(super) fn deadline_passed(&mut self, plan: &Plan) -> Instant {
        match self.phase {
            Phase::Sending => {
                if let Pacing::Fixed { total, .. } = plan.pacing {
                    self.send_scheduled(plan, total);
                }
                self.phase = Phase::Draining;
                Instant::now() + DRAIN_TIMEOUT
            }
            Phase::Draining => self.start_logout(),
            _ => {
                self.phase = Phase::Done;
                Instant::now()
            }
        }
    }

    /// Once every request is answered after the end, logs out; returns the
    /// logout's deadline when it started.
    pub(super) fn log_out_if_drained(&mut self) -> Option<Instant> {
        (self.phase == Phase::Draining && self.in_flight == 0).then(|| self.start_logout())
    }

    /// Sends a Heartbeat when nothing was sent for a heartbeat interval.
    pub(super) fn housekeeping(&mut self) {
        if self.last_sent.elapsed() >= self.setup.heartbeat {
            self.send_heartbeat(None);
        }
    }

    /// Sends Logout; returns the deadline for the acceptor's reply.
    fn start_logout(&mut self) -> Instant {
        self.send_logout();
        self.phase = Phase::LoggingOut;
        Instant::now() + LOGOUT_TIMEOUT
    }

    /// The statistics at the end of the session.
    pub(super) fn into_stats(mut self) -> SessionStats {
        self.stats.unanswered = self.in_flight as u64;
        self.stats
    }

    /// Writes the queued bytes with `write` until they are all written
    /// (`Ok(true)`) or the socket takes no more (`Ok(false)`).
    pub(super) fn write_out(
        &mut self,
        mut write: impl FnMut(&[u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<bool> {
        while self.written < self.out.len() {
            match write(&self.out[self.written..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.written = 0;
        Ok(true)
    }

    /// Parses and handles one frame; false ends the session.
    pub(super) fn on_frame(&mut self, bytes: Bytes, plan: &Plan) -> bool {
        let at = Instant::now();
        match Message::parse(bytes) {
            Ok(m) => self.on_message(&m, at, plan),
            Err(e) => {
                tracing::debug!(%e, "load: unparsable message ignored");
                true
            }
        }
    }

    /// Ends the session with an error (unless it was logging out anyway).
    pub(super) fn fail(&mut self, why: &str) {
        if self.phase != Phase::LoggingOut && self.stats.error.is_none() {
            self.stats.error = Some(why.to_string());
        }
        self.phase = Phase::Done;
        // Nothing more can be written.
        self.out.clear();
        self.written = 0;
    }
}

/// The session's task in max mode: the session's state and its socket's
/// writing half (the reading half is passed to [`Task::run`]).
struct Task {
    client: Client,
    writer: OwnedWriteHalf,
}

impl Task {
    /// The main loop: from the start of the plan to the end of the logout.
    async fn run(&mut self, mut reader: FramedRead<OwnedReadHalf, FixCodec>, plan: Plan) {
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let deadline = sleep_until(plan.end);
        tokio::pin!(deadline);
        sleep_until(plan.start).await;
        loop {
            let c = &mut self.client;
            c.send_window(&plan);
            if let Some(at) = c.log_out_if_drained() {
                deadline.as_mut().reset(at);
            }
            if c.phase == Phase::Done {
                break;
            }
            let pending_write = c.written < c.out.len();
            tokio::select! {
                biased;
                r = self.writer.writable(), if pending_write => {
                    let w = &self.writer;
                    let c = &mut self.client;
                    if r.is_err() || c.write_out(|buf| w.try_write(buf)).is_err() {
                        c.fail("connection lost while writing");
                    }
                },
                frame = reader.next() => {
                    let c = &mut self.client;
                    let mut next = Some(frame);
                    let mut handled = 0;
                    while let Some(frame) = next.take() {
                        match frame {
                            Some(Ok(bytes)) => {
                                if !c.on_frame(bytes, &plan) {
                                    break;
                                }
                            }
                            Some(Err(e)) => {
                                c.fail(&format!("read error: {e}"));
                                break;
                            }
                            None => {
                                c.fail("acceptor closed the connection");
                                break;
                            }
                        }
                        handled += 1;
                        if handled < READ_BATCH {
                            next = reader.next().now_or_never();
                        }
                    }
                }
                _ = &mut deadline => {
                    let at = self.client.deadline_passed(&plan);
                    deadline.as_mut().reset(at);
                },
                _ = housekeeping.tick() => self.client.housekeeping(),
            }
        }
    }

    /// The run was called off before it started: just log out.
    async fn logout_only(&mut self, mut reader: FramedRead<OwnedReadHalf, FixCodec>) {
        self.client.send_logout();
        let _ = self.flush().await;
        let _ = tokio::time::timeout(LOGOUT_TIMEOUT, async {
            while let Some(Ok(frame)) = reader.next().await {
                if let Ok(m) = Message::parse(frame) {
                    if m.msg_type() == b"5" {
                        break;
                    }
                }
            }
        })
        .await;
    }

    /// Writes whatever is queued, waiting for the socket as needed.
    async fn flush(&mut self) -> std::io::Result<()> {
        let c = &mut self.client;
        let out = std::mem::take(&mut c.out);
        let written = std::mem::replace(&mut c.written, 0);
        self.writer.write_all(&out[written..]).await
    }

    /// Writes what is left, closes the connection and returns the counts.
    async fn finish(mut self) -> SessionStats {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
        let _ = self.writer.shutdown().await;
        self.client.into_stats()
    }
}
