//! Crash test under load (ARCHITECTURE rule 3, issue 4): two order-entry
//! clients stream orders while the gateway is killed with SIGKILL at random
//! moments, at least 30 times. After every kill the gateway is restarted and
//! the clients reconnect with ordinary FIX sequence recovery: each keeps an
//! in-memory outbound store and answers the gateway's ResendRequest (app
//! messages resent with PossDupFlag=Y and OrigSendingTime, admin messages
//! gap-filled), and asks for whatever it missed of the gateway's numbers.
//!
//! At the end it checks that
//! 1. every order a client sent was answered (150=0 or 150=8): orders the
//!    gateway had consumed had their ExecutionReports delivered, the others
//!    were resent by the client and processed once;
//! 2. every ExecID was applied once (a repeat must carry 43=Y) and each
//!    order's fills add up to its CumQty, never beyond OrderQty;
//! 3. every trade (TrdMatchID) was seen exactly once on each side, so the
//!    buyers' and sellers' positions agree per symbol;
//! 4. books and positions equal a fresh replay of the journal: the test
//!    replays the journal itself through a new `Venue` (positions, book
//!    levels, every ExecutionReport body and sequence numbers compared), then
//!    restarts the gateway once more and asks the status (35=H) of every order.
//!
//! 5. a drop-copy consumer, connected in some cycles only and recovering by
//!    ordinary FIX resend, received every ExecutionReport of both clients
//!    exactly once (repeats carry 43=Y), in each source session's order.
//!
//! The gateway takes a venue checkpoint every 20 inputs, so most restarts
//! restore one (taken on the checkpoint thread, killed at any moment too)
//! and replay only the journal after it; check 4 compares that with the
//! test's replay of the whole journal, which `CompactStore=N` keeps (the
//! simulation covers compaction across crashes).
//!
//! `CRASH_SEED` fixes the random seed (printed at the start), `CRASH_KILLS`
//! the number of kills (default 30). The same test runs with `--flush os`
//! (`CRASH_KILLS_OS` kills, default 10): a crash of the process loses
//! nothing there either.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use common::{env_u64, repo_path, Gateway, Rng};
use fixgw::engine::{Side, VenueConfig};
use fixgw::fix::time::{format_utc_string, now_utc, Precision};
use fixgw::fix::{Encoder, FixCodec, Message};
use fixgw::session::batch_store::BatchLog;
use fixgw::session::resend::is_header_tag;
use fixgw::session::{MessageStore, SessionRole};
use fixgw::venue::input::VenueInput;
use fixgw::venue::order_entry::{SessionInfo, Venue};

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
ResetOnLogon=N
ResetOnLogout=N
ResetOnDisconnect=N
SendTrdMatchID=Y
CheckpointInputs=20
CompactStore=N
[SESSION]
TargetCompID=CLIENT1
SessionRole=order-entry
[SESSION]
TargetCompID=CLIENT2
SessionRole=order-entry
[SESSION]
TargetCompID=DROPCOPY
SessionRole=drop-copy
"
);

/// (symbol, reference price in cents) as in `sessions/venue.toml`.
const SYMBOLS: [(&str, i64); 2] = [("AAPL", 15_000), ("MSFT", 40_000)];
/// Most NewOrderSingles a client leaves unanswered before it waits.
const MAX_IN_FLIGHT: usize = 100;
/// Longest any recovery step may take before the test gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- helpers

/// "150.5" -> 15050 (hundredths); integer quantities parse too.
fn cents(v: &[u8]) -> i64 {
    let s = std::str::from_utf8(v).expect("ascii number");
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut c = int.parse::<i64>().expect("number") * 100;
    let frac = format!("{frac:0<2}");
    assert!(
        frac[2..].bytes().all(|b| b == b'0'),
        "more than two decimals: {s}"
    );
    c += frac[..2].parse::<i64>().expect("number");
    if neg {
        -c
    } else {
        c
    }
}

/// An integer quantity field ("100" or "100.0").
fn qty(v: Option<&[u8]>) -> i64 {
    let c = cents(v.unwrap_or(b"0"));
    assert_eq!(c % 100, 0, "fractional quantity");
    c / 100
}

fn price_str(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

fn s(v: Option<&[u8]>) -> String {
    String::from_utf8_lossy(v.unwrap_or_default()).into_owned()
}

/// Body fields of a message: everything but the standard header and trailer.
fn body_fields(m: &Message) -> Vec<(i32, String)> {
    m.iter()
        .filter(|(t, _)| !is_header_tag(*t) && *t != 10)
        .map(|(t, v)| (t, String::from_utf8_lossy(v).into_owned()))
        .collect()
}

/// `tag=value<SOH>...` as produced by the venue.
fn split_body(b: &[u8]) -> Vec<(i32, String)> {
    b.split(|&c| c == 0x01)
        .filter(|f| !f.is_empty())
        .map(|f| {
            let eq = f.iter().position(|&c| c == b'=').expect("tag=value");
            (
                std::str::from_utf8(&f[..eq]).unwrap().parse().unwrap(),
                String::from_utf8_lossy(&f[eq + 1..]).into_owned(),
            )
        })
        .collect()
}

fn field(fields: &[(i32, String)], tag: i32) -> Option<&str> {
    fields
        .iter()
        .find(|(t, _)| *t == tag)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------- connection

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    codec: FixCodec,
    dead: bool,
}

impl Conn {
    fn connect(port: u16) -> Option<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_nodelay(true).ok();
        Some(Conn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            codec: FixCodec::default(),
            dead: false,
        })
    }

    fn send(&mut self, bytes: &[u8]) {
        if !self.dead && self.stream.write_all(bytes).is_err() {
            self.dead = true;
        }
    }

    /// Next framed message, waiting at most `timeout` for bytes (zero: only
    /// what has already arrived).
    fn recv(&mut self, timeout: Duration, problems: &mut Vec<String>) -> Option<Message> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => match Message::parse(frame) {
                    Ok(m) => return Some(m),
                    Err(e) => {
                        problems.push(format!("unparseable message from the gateway: {e:?}"));
                        continue;
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    problems.push(format!("garbled stream from the gateway: {e:?}"));
                    self.dead = true;
                    return None;
                }
            }
            if self.dead {
                return None;
            }
            let nowait = timeout.is_zero();
            if nowait {
                self.stream.set_nonblocking(true).ok();
            } else {
                self.stream.set_read_timeout(Some(timeout)).ok();
            }
            let mut chunk = [0u8; 16 * 1024];
            let r = self.stream.read(&mut chunk);
            if nowait {
                self.stream.set_nonblocking(false).ok();
            }
            match r {
                Ok(0) => {
                    self.dead = true;
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    return None;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- client

/// One message in the client's outbound store.
struct Stored {
    msg_type: String,
    body: Vec<(i32, String)>,
    sending_time: String,
}

fn is_admin(msg_type: &str) -> bool {
    matches!(msg_type, "0" | "1" | "2" | "3" | "4" | "5" | "A")
}

/// The client's view of one of its orders.
#[derive(Debug, Clone)]
struct Order {
    cl: String,
    symbol: &'static str,
    side: u8,
    qty: i64,
    price: i64,
    order_id: Option<String>,
    /// Answered by 150=0 or 150=8.
    acked: bool,
    rejected: bool,
    ord_status: String,
    cum: i64,
    leaves: i64,
    /// Sum of LastQty over this order's distinct fill ExecIDs.
    filled: i64,
    cancel_pending: bool,
}

impl Order {
    fn is_open(&self) -> bool {
        self.acked && !self.rejected && matches!(self.ord_status.as_str(), "0" | "1")
    }
}

#[derive(Debug, Clone)]
struct Fill {
    symbol: String,
    side: u8,
    qty: i64,
    px: i64,
    trade_id: String,
}

#[derive(Debug, Clone, Default)]
struct Stats {
    orders: u64,
    cancels: u64,
    logons: u64,
    /// ExecutionReports seen the first time in a resend (43=Y).
    er_first_seen_possdup: u64,
    /// Repeats of an already applied ExecID (all with 43=Y).
    er_repeats: u64,
    /// ResendRequests the gateway sent us, and what we resent / gap-filled.
    rr_from_gateway: u64,
    app_resent: u64,
    gap_fills_sent: u64,
    /// ResendRequests we sent for a gap, and deliberately overlapping ones.
    rr_for_gap: u64,
    rr_overlapping: u64,
    cancel_rejects: u64,
}

struct Client {
    comp: &'static str,
    next_out: u64,
    store: BTreeMap<u64, Stored>,
    next_in: u64,
    conn: Option<Conn>,
    logged_on: bool,
    /// A gap in the gateway's numbers was seen at this MsgSeqNum; messages
    /// above `next_in` are dropped until the resend has covered it.
    resend_until: Option<u64>,
    /// ExecID -> body of the first copy seen.
    execs: HashMap<String, Vec<(i32, String)>>,
    orders: Vec<Order>,
    by_cl: HashMap<String, usize>,
    by_oid: HashMap<String, usize>,
    /// Cancel ClOrdID -> (order index, answered).
    cancels: HashMap<String, (usize, bool)>,
    /// Orders that may be open (pruned lazily).
    open_pool: Vec<usize>,
    fills: Vec<Fill>,
    /// OrdStatusReqID -> the 150=I answer.
    status: HashMap<String, Vec<(i32, String)>>,
    /// TestReqIDs answered by a Heartbeat.
    heartbeats: HashSet<String>,
    stats: Stats,
    problems: Vec<String>,
    next_cl: u64,
    rng: Rng,
    /// A drop-copy consumer: sends nothing, records the copies.
    drop_copy: bool,
    /// (MsgSeqNum, ExecID) of each ExecutionReport, first delivery; for a
    /// drop copy the ExecID is prefixed with its source CompID.
    exec_seq: Vec<(u64, String)>,
}

impl Client {
    fn new(comp: &'static str, seed: u64) -> Client {
        Client {
            comp,
            next_out: 1,
            store: BTreeMap::new(),
            next_in: 1,
            conn: None,
            logged_on: false,
            resend_until: None,
            execs: HashMap::new(),
            orders: Vec::new(),
            by_cl: HashMap::new(),
            by_oid: HashMap::new(),
            cancels: HashMap::new(),
            open_pool: Vec::new(),
            fills: Vec::new(),
            status: HashMap::new(),
            heartbeats: HashSet::new(),
            stats: Stats::default(),
            problems: Vec::new(),
            next_cl: 1,
            rng: Rng::new(seed),
            drop_copy: false,
            exec_seq: Vec::new(),
        }
    }

    fn drop_copy(comp: &'static str, seed: u64) -> Client {
        Client {
            drop_copy: true,
            ..Client::new(comp, seed)
        }
    }

    fn problem(&mut self, p: String) {
        if self.problems.len() < 200 {
            self.problems.push(format!("{}: {p}", self.comp));
        }
    }

    fn alive(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.dead)
    }

    fn in_sync(&self) -> bool {
        self.alive() && self.logged_on && self.resend_until.is_none()
    }

    fn encode(
        &self,
        msg_type: &str,
        seq: u64,
        sending_time: &str,
        orig_sending_time: Option<&str>,
        body: &[(i32, String)],
    ) -> Vec<u8> {
        let mut e = Encoder::new();
        e.start(msg_type.as_bytes())
            .field_int(34, seq as i64)
            .field(49, self.comp.as_bytes())
            .field(52, sending_time.as_bytes())
            .field(56, b"FIXGW");
        if let Some(orig) = orig_sending_time {
            e.field(43, b"Y").field(122, orig.as_bytes());
        }
        for (t, v) in body {
            e.field(*t, v.as_bytes());
        }
        e.finish(b"FIX.4.4").to_vec()
    }

    /// Sends a new message with the next MsgSeqNum, storing it first (a
    /// message whose write fails is resent on the gateway's request).
    fn send(&mut self, msg_type: &str, body: Vec<(i32, String)>) -> u64 {
        let seq = self.next_out;
        self.next_out += 1;
        let now = format_utc_string(now_utc(), Precision::Millis);
        let bytes = self.encode(msg_type, seq, &now, None, &body);
        self.store.insert(
            seq,
            Stored {
                msg_type: msg_type.to_string(),
                body,
                sending_time: now,
            },
        );
        if let Some(c) = self.conn.as_mut() {
            c.send(&bytes);
        }
        seq
    }

    /// Answers the gateway's ResendRequest from the outbound store.
    fn answer_resend(&mut self, begin: u64, end: u64) {
        self.stats.rr_from_gateway += 1;
        let last = self.next_out - 1;
        let end = if end == 0 || end > last { last } else { end };
        let now = format_utc_string(now_utc(), Precision::Millis);
        let mut out: Vec<u8> = Vec::new();
        let (mut resent, mut gap_fills) = (0, 0);
        let mut gap_start: Option<u64> = None;
        let gap_fill = |out: &mut Vec<u8>, from: u64, to: u64| {
            let body = vec![(123, "Y".to_string()), (36, to.to_string())];
            out.extend_from_slice(&self.encode("4", from, &now, Some(&now), &body));
        };
        for seq in begin.max(1)..=end {
            match self.store.get(&seq) {
                Some(m) if !is_admin(&m.msg_type) => {
                    if let Some(g) = gap_start.take() {
                        gap_fill(&mut out, g, seq);
                        gap_fills += 1;
                    }
                    out.extend_from_slice(&self.encode(
                        &m.msg_type,
                        seq,
                        &now,
                        Some(&m.sending_time),
                        &m.body,
                    ));
                    resent += 1;
                }
                _ => {
                    gap_start.get_or_insert(seq);
                }
            }
        }
        if let Some(g) = gap_start {
            gap_fill(&mut out, g, end + 1);
            gap_fills += 1;
        }
        self.stats.app_resent += resent;
        self.stats.gap_fills_sent += gap_fills;
        if let Some(c) = self.conn.as_mut() {
            c.send(&out);
        }
    }

    /// Connects and sends a Logon with the next MsgSeqNum (no reset).
    fn connect(&mut self, port: u16) {
        self.logged_on = false;
        self.resend_until = None;
        self.conn = Conn::connect(port);
        if self.conn.is_some() {
            self.stats.logons += 1;
            self.send("A", vec![(98, "0".into()), (108, "30".into())]);
        }
    }

    fn disconnect(&mut self) {
        self.conn = None;
        self.logged_on = false;
        self.resend_until = None;
    }

    /// Handles one incoming message if one arrives within `timeout`.
    fn pump(&mut self, timeout: Duration) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let mut problems = Vec::new();
        let msg = conn.recv(timeout, &mut problems);
        for p in problems {
            self.problem(p);
        }
        match msg {
            Some(m) => {
                self.handle(&m);
                true
            }
            None => false,
        }
    }

    fn handle(&mut self, m: &Message) {
        let Some(seq) = m.seq_num() else {
            self.problem(format!("message without MsgSeqNum: {m:?}"));
            return;
        };
        let t = s(Some(m.msg_type()));
        let poss_dup = m.get_flag(43);
        // A ResendRequest is answered whatever its number (QuickFIX does the same).
        if t == "2" {
            let begin = m.get_u64(7).unwrap_or(1);
            let end = m.get_u64(16).unwrap_or(0);
            self.answer_resend(begin, end);
        }
        if t == "4" && !m.get_flag(123) {
            self.problem(format!("unexpected SequenceReset-Reset: {m:?}"));
            self.next_in = m.get_u64(36).unwrap_or(self.next_in);
            return;
        }
        if t == "A" {
            self.logged_on = true;
            if seq < self.next_in {
                self.problem(format!(
                    "Logon reply numbered {seq} but {} was already received: the gateway re-used outbound numbers",
                    self.next_in
                ));
            }
        }
        if seq < self.next_in {
            if !poss_dup {
                self.problem(format!(
                    "MsgSeqNum {seq} below expected {} without PossDupFlag: {m:?}",
                    self.next_in
                ));
            } else if t == "8" {
                self.on_exec_report(m);
            }
            return;
        }
        if seq > self.next_in {
            let pending = self.resend_until.is_some_and(|u| self.next_in <= u);
            if !pending {
                self.stats.rr_for_gap += 1;
                let from = self.next_in;
                self.send("2", vec![(7, from.to_string()), (16, "0".into())]);
            }
            self.resend_until = Some(self.resend_until.unwrap_or(0).max(seq));
            return;
        }
        // In sequence.
        match t.as_str() {
            "4" => {
                let new = m.get_u64(36).unwrap_or(0);
                if new > self.next_in {
                    self.next_in = new;
                } else {
                    self.problem(format!("GapFill to {new} at {seq}"));
                    self.next_in += 1;
                }
                self.check_resend_done();
                return;
            }
            "8" => self.on_exec_report(m),
            "9" => self.on_cancel_reject(m),
            "0" => {
                if let Some(id) = m.get(112) {
                    self.heartbeats.insert(s(Some(id)));
                }
            }
            "1" => {
                let id = s(m.get(112));
                self.send("0", vec![(112, id)]);
            }
            "A" | "2" => {}
            "5" => self.problem(format!("Logout from the gateway: {:?}", s(m.get(58)))),
            _ => self.problem(format!("unexpected message: {m:?}")),
        }
        self.next_in += 1;
        self.check_resend_done();
    }

    fn check_resend_done(&mut self) {
        if self.resend_until.is_some_and(|u| self.next_in > u) {
            self.resend_until = None;
        }
    }

    fn on_exec_report(&mut self, m: &Message) {
        let Some(exec_id) = m.get_str(17).map(str::to_string) else {
            self.problem(format!("ExecutionReport without ExecID: {m:?}"));
            return;
        };
        if self.execs.contains_key(&exec_id) {
            if m.get_flag(43) {
                self.stats.er_repeats += 1;
            } else {
                self.problem(format!(
                    "ExecID {exec_id} repeated without PossDupFlag: {m:?}"
                ));
            }
            return;
        }
        if m.get_flag(43) {
            self.stats.er_first_seen_possdup += 1;
        }
        self.execs.insert(exec_id.clone(), body_fields(m));
        let seq = m.seq_num().unwrap_or(0);
        if self.drop_copy {
            if m.get(797) != Some(b"Y") {
                self.problem(format!("drop copy without CopyMsgIndicator=Y: {m:?}"));
            }
            let source = s(m.get(115));
            self.exec_seq.push((seq, format!("{source}/{exec_id}")));
            return;
        }
        self.exec_seq.push((seq, exec_id.clone()));
        let exec_type = s(m.get(150));
        if exec_type == "I" {
            self.status.insert(s(m.get(790)), body_fields(m));
            return;
        }
        let idx = m
            .get_str(37)
            .and_then(|o| self.by_oid.get(o))
            .or_else(|| m.get_str(11).and_then(|c| self.by_cl.get(c)))
            .or_else(|| m.get_str(41).and_then(|c| self.by_cl.get(c)))
            .copied();
        let Some(idx) = idx else {
            self.problem(format!("ExecutionReport for an order never sent: {m:?}"));
            return;
        };
        if let Some(cl) = m.get_str(11) {
            if let Some(c) = self.cancels.get_mut(cl) {
                c.1 = true;
            }
        }
        let cum = qty(m.get(14));
        let leaves = qty(m.get(151));
        let ord_status = s(m.get(39));
        let o = &mut self.orders[idx];
        let mut problems = Vec::new();
        match exec_type.as_str() {
            "0" => {
                if o.acked {
                    problems.push(format!("second 150=0 for {} (ExecID {exec_id})", o.cl));
                }
                o.acked = true;
                match m.get_str(37) {
                    Some(oid) => {
                        o.order_id = Some(oid.to_string());
                        self.by_oid.insert(oid.to_string(), idx);
                    }
                    None => problems.push(format!("150=0 without OrderID: {m:?}")),
                }
            }
            "8" => {
                if o.acked {
                    problems.push(format!("150=8 for an answered order {}", o.cl));
                }
                o.acked = true;
                o.rejected = true;
                problems.push(format!("order {} rejected: {:?}", o.cl, s(m.get(58))));
            }
            "F" => {
                let last_qty = qty(m.get(32));
                let last_px = cents(m.get(31).unwrap_or(b"0"));
                o.filled += last_qty;
                if !o.acked {
                    problems.push(format!("fill before 150=0 for {}", o.cl));
                }
                let limit_ok = if o.side == b'1' {
                    last_px <= o.price
                } else {
                    last_px >= o.price
                };
                if !limit_ok {
                    problems.push(format!("fill at {last_px} through the limit of {o:?}"));
                }
                self.fills.push(Fill {
                    symbol: o.symbol.to_string(),
                    side: o.side,
                    qty: last_qty,
                    px: last_px,
                    trade_id: s(m.get(880)),
                });
            }
            "4" | "C" => o.cancel_pending = false,
            other => problems.push(format!("unexpected ExecType {other}: {m:?}")),
        }
        o.cum = cum;
        o.leaves = leaves;
        o.ord_status = ord_status;
        if o.cum != o.filled {
            problems.push(format!(
                "order {}: CumQty {} but distinct fills add up to {} (ExecID {exec_id})",
                o.cl, o.cum, o.filled
            ));
        }
        if o.cum > o.qty {
            problems.push(format!(
                "order {} overfilled: CumQty {} > {}",
                o.cl, o.cum, o.qty
            ));
        }
        if !o.rejected && o.is_open() && o.cum + o.leaves != o.qty {
            problems.push(format!(
                "order {}: CumQty + LeavesQty != OrderQty: {m:?}",
                o.cl
            ));
        }
        if o.is_open() && exec_type == "0" {
            self.open_pool.push(idx);
        }
        for p in problems {
            self.problem(p);
        }
    }

    fn on_cancel_reject(&mut self, m: &Message) {
        self.stats.cancel_rejects += 1;
        if self.drop_copy {
            return;
        }
        let cl = s(m.get(11));
        match self.cancels.get_mut(&cl) {
            Some(c) => {
                c.1 = true;
                let idx = c.0;
                self.orders[idx].cancel_pending = false;
            }
            None => self.problem(format!("OrderCancelReject for an unknown request: {m:?}")),
        }
    }

    fn in_flight(&self) -> usize {
        // Orders are answered in order per session, so count from the back.
        self.orders.iter().rev().take_while(|o| !o.acked).count()
    }

    fn new_order(&mut self, crossing: bool) {
        let (symbol, reference) = SYMBOLS[(self.rng.next() % 2) as usize];
        let buy = self.rng.chance(50);
        let (price, q) = if crossing {
            let d = self.rng.range(50, 200) as i64;
            (
                if buy { reference + d } else { reference - d },
                self.rng.range(1, 80),
            )
        } else {
            let d = self.rng.range(1, 100) as i64;
            (
                if buy { reference - d } else { reference + d },
                self.rng.range(1, 40),
            )
        };
        let cl = format!("{}-{}", self.comp, self.next_cl);
        self.next_cl += 1;
        let side = if buy { b'1' } else { b'2' };
        self.by_cl.insert(cl.clone(), self.orders.len());
        self.orders.push(Order {
            cl: cl.clone(),
            symbol,
            side,
            qty: q as i64,
            price,
            order_id: None,
            acked: false,
            rejected: false,
            ord_status: String::new(),
            cum: 0,
            leaves: 0,
            filled: 0,
            cancel_pending: false,
        });
        let now = format_utc_string(now_utc(), Precision::Millis);
        self.send(
            "D",
            vec![
                (11, cl),
                (21, "1".into()),
                (55, symbol.into()),
                (54, (side as char).to_string()),
                (60, now),
                (38, q.to_string()),
                (40, "2".into()),
                (44, price_str(price)),
                (59, "1".into()),
            ],
        );
        self.stats.orders += 1;
    }

    /// Cancels a random open order of ours; false if there is none.
    fn cancel_one(&mut self) -> bool {
        for _ in 0..8 {
            if self.open_pool.is_empty() {
                return false;
            }
            let k = (self.rng.next() % self.open_pool.len() as u64) as usize;
            let idx = self.open_pool[k];
            let o = &self.orders[idx];
            if !o.is_open() || o.cancel_pending {
                self.open_pool.swap_remove(k);
                continue;
            }
            let cl = format!("{}-X{}", self.comp, self.next_cl);
            self.next_cl += 1;
            let body = vec![
                (11, cl.clone()),
                (41, o.cl.clone()),
                (37, o.order_id.clone().unwrap_or_default()),
                (55, o.symbol.to_string()),
                (54, (o.side as char).to_string()),
                (38, o.qty.to_string()),
                (60, format_utc_string(now_utc(), Precision::Millis)),
            ];
            self.orders[idx].cancel_pending = true;
            self.open_pool.swap_remove(k);
            self.cancels.insert(cl, (idx, false));
            self.send("F", body);
            self.stats.cancels += 1;
            return true;
        }
        false
    }

    fn random_action(&mut self) {
        let r = self.rng.next() % 100;
        if r < 25 && self.cancel_one() {
            return;
        }
        self.new_order((25..55).contains(&r));
    }

    /// Pumps until logged on and in sequence (or `deadline`); false if the
    /// connection died first.
    fn wait_in_sync(&mut self, deadline: Instant) -> bool {
        while !self.in_sync() {
            if !self.alive() || Instant::now() > deadline {
                return false;
            }
            self.pump(Duration::from_millis(5));
        }
        true
    }

    /// Sends a TestRequest and pumps until its Heartbeat comes back: the
    /// gateway has then processed everything we sent before it.
    fn barrier(&mut self, id: &str, deadline: Instant) -> bool {
        let mut last_sent: Option<Instant> = None;
        while !self.heartbeats.contains(id) {
            if !self.alive() || Instant::now() > deadline {
                return false;
            }
            if self.in_sync() && last_sent.is_none_or(|t| t.elapsed() > Duration::from_secs(3)) {
                self.send("1", vec![(112, id.to_string())]);
                last_sent = Some(Instant::now());
            }
            self.pump(Duration::from_millis(5));
        }
        true
    }

    /// Pumps until nothing arrives for `quiet`.
    fn drain(&mut self, quiet: Duration) {
        let mut last = Instant::now();
        while last.elapsed() < quiet && self.alive() {
            if self.pump(Duration::from_millis(10)) {
                last = Instant::now();
            }
        }
    }
}

/// One trading session of a client: log on with recovery, then stream
/// orders until the gateway dies under it.
fn trade(mut c: Client, port: u16) -> Client {
    c.connect(port);
    let deadline = Instant::now() + STEP_TIMEOUT;
    if !c.wait_in_sync(deadline) {
        c.disconnect();
        return c;
    }
    // Now and then ask again for messages already received: their
    // ExecutionReports must come back with 43=Y and be applied once.
    if c.rng.chance(30) && c.next_in > 2 {
        let back = c.rng.range(1, 20.min(c.next_in - 1));
        c.stats.rr_overlapping += 1;
        let from = c.next_in - back;
        c.send("2", vec![(7, from.to_string()), (16, "0".into())]);
    }
    while c.alive() {
        let mut busy = false;
        for _ in 0..512 {
            if !c.pump(Duration::ZERO) {
                break;
            }
            busy = true;
        }
        if c.in_sync() {
            let burst = c.rng.range(1, 8);
            for _ in 0..burst {
                if c.in_flight() >= MAX_IN_FLIGHT {
                    break;
                }
                c.random_action();
                busy = true;
            }
        }
        if !busy {
            c.pump(Duration::from_millis(1));
        }
        if Instant::now() > deadline {
            c.problem("trading session ran for a minute without the gateway dying".into());
            break;
        }
    }
    c.disconnect();
    c
}

/// A drop-copy consumer's session: log on with recovery, then take copies
/// until the gateway dies under it.
fn follow(mut c: Client, port: u16) -> Client {
    c.connect(port);
    let deadline = Instant::now() + STEP_TIMEOUT;
    while c.alive() && Instant::now() < deadline {
        c.pump(Duration::from_millis(5));
    }
    c.disconnect();
    c
}

/// Logs on with recovery, waits until the gateway processed everything we
/// sent, and drains what it has for us. No new orders.
fn recover_quietly(mut c: Client, port: u16, barrier_id: &str) -> Client {
    c.connect(port);
    let deadline = Instant::now() + STEP_TIMEOUT;
    if !c.wait_in_sync(deadline) || !c.barrier(barrier_id, deadline) {
        c.problem(format!(
            "recovery did not complete (alive {}, logged on {}, gap until {:?})",
            c.alive(),
            c.logged_on,
            c.resend_until
        ));
        return c;
    }
    c.drain(Duration::from_millis(300));
    c
}

// ---------------------------------------------------------------- the replay

/// What a fresh replay of the journal says.
struct Replay {
    /// Client CompID -> ExecID -> ER body.
    execs: HashMap<String, HashMap<String, Vec<(i32, String)>>>,
    cancel_rejects: HashMap<String, u64>,
    /// (account, symbol) -> (bought, sold, net).
    positions: HashMap<(String, String), (u64, u64, i64)>,
    /// (symbol, side, price cents) -> qty.
    levels: BTreeMap<(String, u8, i64), u64>,
    working_orders: u32,
    /// Session key suffix (client CompID) -> (next sender, next target).
    seqs: HashMap<String, (u64, u64)>,
    inputs: usize,
    batches: u64,
}

fn replay_journal(data: &Path) -> Replay {
    let venue_path = repo_path("sessions/venue.toml");
    let cfg = VenueConfig::load(&venue_path).expect("venue config");
    let infos: Vec<SessionInfo> = ["CLIENT1", "CLIENT2"]
        .iter()
        // TrdMatchID on, as the gateway does for SendTrdMatchID=Y (see CFG).
        .map(|c| SessionInfo::new(c, SessionRole::OrderEntry))
        .collect();
    let mut venue = Venue::new(&cfg, &infos).expect("venue");
    let (log, rec) = BatchLog::open_for_tool(data).expect("open the batch log");
    let mut r = Replay {
        execs: HashMap::new(),
        cancel_rejects: HashMap::new(),
        positions: HashMap::new(),
        levels: BTreeMap::new(),
        working_orders: 0,
        seqs: HashMap::new(),
        inputs: rec.inputs.len(),
        batches: rec.batches,
    };
    let mut out = Vec::new();
    for (n, raw) in rec.inputs.iter().enumerate() {
        let (input, _) = VenueInput::decode(raw).unwrap_or_else(|e| panic!("input {n}: {e:?}"));
        out.clear();
        if let Err(bmr) = venue.apply(&input, &mut out) {
            panic!("journal input {n} got a BusinessMessageReject on replay: {bmr:?}");
        }
        for (comp, m) in out.drain(..) {
            match &m.msg_type[..] {
                b"8" => {
                    let body = split_body(&m.body);
                    let id = field(&body, 17).expect("ExecID").to_string();
                    let prev = r
                        .execs
                        .entry(comp.to_string())
                        .or_default()
                        .insert(id.clone(), body);
                    assert!(prev.is_none(), "replay produced ExecID {id} twice");
                }
                b"9" => *r.cancel_rejects.entry(comp.to_string()).or_default() += 1,
                other => panic!("replay produced 35={}", String::from_utf8_lossy(other)),
            }
        }
    }
    let engine = venue.engine();
    for (i, (symbol, _)) in SYMBOLS.iter().enumerate() {
        for acc in ["ACC1", "ACC2"] {
            let a = cfg.account_id(acc).expect("account");
            let p = engine.position(a, i as u32).expect("position").position;
            r.positions.insert(
                (acc.to_string(), symbol.to_string()),
                (p.bought_qty, p.sold_qty, p.net_qty),
            );
        }
        let book = engine.book(i as u32).expect("book");
        for (side, code) in [(Side::Buy, b'1'), (Side::Sell, b'2')] {
            for l in book.levels_iter(side) {
                r.levels.insert((symbol.to_string(), code, l.price), l.qty);
            }
        }
    }
    r.working_orders = engine.order_count();
    for (key, st) in &rec.sessions {
        let comp = key.rsplit("->").next().unwrap_or(key).to_string();
        // What the journal recorded; after a kill the gateway itself goes on
        // after the reservation (checked in 4b).
        let recorded = st
            .next_sender_before_unclean_stop()
            .unwrap_or(st.next_sender_seq());
        r.seqs.insert(comp, (recorded, st.next_target_seq()));
    }
    drop(log);
    r
}

// ---------------------------------------------------------------- the test

fn account_of(comp: &str) -> &'static str {
    if comp == "CLIENT1" {
        "ACC1"
    } else {
        "ACC2"
    }
}

#[test]
fn sigkill_under_load_loses_and_doubles_nothing() {
    let kills = env_u64("CRASH_KILLS").unwrap_or(30);
    crash_under_load("fsync", kills);
}

/// `--flush os` promises less than `fsync` (a crash of the machine may lose
/// the last 200 ms) but as much against a crash of the process: each batch
/// is the OS's before any of its output is sent.
#[test]
fn sigkill_under_load_with_os_flushing_loses_and_doubles_nothing() {
    let kills = env_u64("CRASH_KILLS_OS").unwrap_or(10);
    crash_under_load("os", kills);
}

fn crash_under_load(flush: &str, kills: u64) {
    let seed = env_u64("CRASH_SEED").unwrap_or_else(|| now_utc() as u64);
    println!("crash_under_load: --flush {flush} CRASH_SEED={seed} kills={kills}");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let venue_toml =
        std::fs::read_to_string(repo_path("sessions/venue.toml")).expect("sessions/venue.toml");
    let mut gw = Gateway::start_with_venue_args(dir.path(), CFG, &venue_toml, &["--flush", flush]);
    let mut clients = vec![
        Client::new("CLIENT1", rng.next()),
        Client::new("CLIENT2", rng.next()),
    ];
    // Compliance's drop copy, connected in some cycles only.
    let mut dc = Some(Client::drop_copy("DROPCOPY", rng.next()));
    let mut dc_cycles = 0;

    // ------------------------------------------------ kill loop
    let mut kill_delays = Vec::new();
    for cycle in 0..kills {
        if cycle > 0 {
            gw.restart();
        }
        let port = gw.port;
        let handles: Vec<_> = clients
            .drain(..)
            .map(|c| std::thread::spawn(move || trade(c, port)))
            .collect();
        let dc_handle = if rng.chance(60) {
            dc_cycles += 1;
            dc.take()
                .map(|c| std::thread::spawn(move || follow(c, port)))
        } else {
            None
        };
        let delay = rng.range(20, 300);
        kill_delays.push(delay);
        std::thread::sleep(Duration::from_millis(delay));
        gw.kill9();
        clients = handles
            .into_iter()
            .map(|h| h.join().expect("client thread panicked"))
            .collect();
        if let Some(h) = dc_handle {
            dc = Some(h.join().expect("drop-copy thread panicked"));
        }
    }
    let mut dc = dc.expect("drop-copy client");
    let trading_done = started.elapsed();

    // ------------------------------------------------ final recovery
    gw.restart();
    let port = gw.port;
    let handles: Vec<_> = clients
        .drain(..)
        .map(|c| std::thread::spawn(move || recover_quietly(c, port, "FINAL-1")))
        .collect();
    clients = handles
        .into_iter()
        .map(|h| h.join().expect("client thread panicked"))
        .collect();
    // A second barrier: ExecutionReports caused by the other client's
    // recovered orders are out by now.
    for c in &mut clients {
        let ok = c.barrier("FINAL-2", Instant::now() + STEP_TIMEOUT);
        assert!(
            ok,
            "{}: second barrier failed; problems: {:#?}",
            c.comp, c.problems
        );
        c.drain(Duration::from_millis(200));
    }

    // The drop copy catches up last: every copy exists by now.
    dc = recover_quietly(dc, port, "DC-FINAL");

    let mut failures: Vec<String> = Vec::new();
    // Restarts restored a checkpoint (the test's point as much as a replay
    // of the whole journal).
    let log = std::fs::read_to_string(&gw.log).unwrap_or_default();
    let restored = log.matches("venue restored from its checkpoint").count();
    println!(
        "restarts that restored a venue checkpoint: {restored} of {}",
        kills
    );
    if restored == 0 {
        failures.push("no restart restored a venue checkpoint".into());
    }
    for c in &mut clients {
        failures.append(&mut c.problems);
    }
    failures.append(&mut dc.problems);

    // ------------------------------------------------ drop copy: every ExecID once, in order per source
    for c in &clients {
        let mut own = c.exec_seq.clone();
        own.sort();
        let want: Vec<String> = own
            .into_iter()
            .map(|(_, id)| format!("{}/{id}", c.comp))
            .collect();
        let mut copies = dc.exec_seq.clone();
        copies.sort();
        let got: Vec<String> = copies
            .into_iter()
            .map(|(_, id)| id)
            .filter(|id| id.starts_with(&format!("{}/", c.comp)))
            .collect();
        if got != want {
            let first = got.iter().zip(&want).position(|(a, b)| a != b);
            failures.push(format!(
                "drop copy of {}: {} copies for {} ExecutionReports, first difference at {first:?}",
                c.comp,
                got.len(),
                want.len()
            ));
        }
    }

    // ------------------------------------------------ checks 1-3 on the clients' view
    let mut orders_total = 0;
    let mut rejected = 0;
    let mut open_total = 0;
    for c in &clients {
        for o in &c.orders {
            orders_total += 1;
            if !o.acked {
                failures.push(format!(
                    "{}: order {} was sent but never answered with 150=0/150=8",
                    c.comp, o.cl
                ));
            }
            if o.rejected {
                rejected += 1;
            }
            if o.is_open() {
                open_total += 1;
            }
            if o.filled != o.cum || o.cum > o.qty {
                failures.push(format!("{}: fills do not add up: {o:?}", c.comp));
            }
        }
        for (cl, (idx, answered)) in &c.cancels {
            if !answered {
                failures.push(format!(
                    "{}: cancel {cl} of {} never answered",
                    c.comp, c.orders[*idx].cl
                ));
            }
        }
    }
    // Each trade once on each side, between the two accounts.
    let mut trades: HashMap<String, Vec<(String, Fill)>> = HashMap::new();
    for c in &clients {
        for f in &c.fills {
            trades
                .entry(f.trade_id.clone())
                .or_default()
                .push((c.comp.to_string(), f.clone()));
        }
    }
    for (id, sides) in &trades {
        let ok = sides.len() == 2
            && sides[0].1.side != sides[1].1.side
            && sides[0].1.qty == sides[1].1.qty
            && sides[0].1.px == sides[1].1.px
            && sides[0].1.symbol == sides[1].1.symbol;
        if !ok {
            failures.push(format!(
                "trade {id:?} not seen exactly once per side: {sides:?}"
            ));
        }
    }
    // Positions from the fills each client saw.
    let mut seen_pos: HashMap<(String, String), (u64, u64, i64)> = HashMap::new();
    for c in &clients {
        for (symbol, _) in SYMBOLS {
            seen_pos.insert(
                (account_of(c.comp).to_string(), symbol.to_string()),
                (0, 0, 0),
            );
        }
        for f in &c.fills {
            let p = seen_pos
                .get_mut(&(account_of(c.comp).to_string(), f.symbol.clone()))
                .unwrap();
            if f.side == b'1' {
                p.0 += f.qty as u64;
                p.2 += f.qty;
            } else {
                p.1 += f.qty as u64;
                p.2 -= f.qty;
            }
        }
    }
    for (symbol, _) in SYMBOLS {
        let a = seen_pos[&("ACC1".to_string(), symbol.to_string())];
        let b = seen_pos[&("ACC2".to_string(), symbol.to_string())];
        if a.0 != b.1 || a.1 != b.0 {
            failures.push(format!(
                "{symbol}: ACC1 bought/sold {}/{} but ACC2 sold/bought {}/{}",
                a.0, a.1, b.1, b.0
            ));
        }
    }

    // ------------------------------------------------ check 4a: replay the journal ourselves
    gw.kill9();
    let replay = replay_journal(&gw.data);
    for c in &clients {
        let empty = HashMap::new();
        let journaled = replay.execs.get(c.comp).unwrap_or(&empty);
        let delivered: HashSet<&String> = c.execs.keys().collect();
        let expected: HashSet<&String> = journaled.keys().collect();
        for id in expected.difference(&delivered) {
            failures.push(format!(
                "{}: ExecID {id} is in the journal but was never delivered: {:?}",
                c.comp, journaled[*id]
            ));
        }
        for id in delivered.difference(&expected) {
            failures.push(format!(
                "{}: ExecID {id} was delivered but a replay of the journal does not produce it: {:?}",
                c.comp, c.execs[*id]
            ));
        }
        for (id, body) in journaled {
            if let Some(seen) = c.execs.get(id) {
                if seen != body {
                    failures.push(format!(
                        "{}: ExecID {id} differs from its replay:\n  delivered {seen:?}\n  replayed  {body:?}",
                        c.comp
                    ));
                }
            }
        }
        let rej = replay.cancel_rejects.get(c.comp).copied().unwrap_or(0);
        if rej != c.stats.cancel_rejects {
            failures.push(format!(
                "{}: {} OrderCancelRejects delivered, the replay produces {rej}",
                c.comp, c.stats.cancel_rejects
            ));
        }
        match replay.seqs.get(c.comp) {
            Some(&(next_sender, next_target)) => {
                if next_sender != c.next_in || next_target != c.next_out {
                    failures.push(format!(
                        "{}: journal says next sender/target {next_sender}/{next_target}, client next in/out {}/{}",
                        c.comp, c.next_in, c.next_out
                    ));
                }
            }
            None => failures.push(format!("{}: no session state in the journal", c.comp)),
        }
    }
    for (key, pos) in &replay.positions {
        let seen = seen_pos.get(key).copied().unwrap_or_default();
        if seen != *pos {
            failures.push(format!(
                "position {key:?}: replay bought/sold/net {pos:?}, fills delivered {seen:?}"
            ));
        }
    }
    let mut client_levels: BTreeMap<(String, u8, i64), u64> = BTreeMap::new();
    for c in &clients {
        for o in c.orders.iter().filter(|o| o.is_open()) {
            *client_levels
                .entry((o.symbol.to_string(), o.side, o.price))
                .or_default() += o.leaves as u64;
        }
    }
    if client_levels != replay.levels {
        let diff: Vec<_> = client_levels
            .iter()
            .filter(|(k, v)| replay.levels.get(*k) != Some(*v))
            .chain(
                replay
                    .levels
                    .iter()
                    .filter(|(k, _)| !client_levels.contains_key(*k)),
            )
            .take(20)
            .collect();
        failures.push(format!(
            "books differ from the replay (client view vs replay) at: {diff:?}"
        ));
    }
    if replay.working_orders as usize != open_total {
        failures.push(format!(
            "replay has {} working orders, clients believe {open_total} are open",
            replay.working_orders
        ));
    }

    // ------------------------------------------------ check 4b: restart = fresh replay, ask every order
    gw.restart();
    let mut status_checked = 0;
    let mut forgotten_closed = 0usize;
    let mut closed_total = 0usize;
    for c in &mut clients {
        let rr_before = (c.stats.rr_from_gateway, c.stats.rr_for_gap);
        c.connect(gw.port);
        let deadline = Instant::now() + STEP_TIMEOUT;
        if !c.wait_in_sync(deadline) || !c.barrier("STATUS-0", deadline) {
            failures.push(format!("{}: logon after the last restart failed", c.comp));
            continue;
        }
        // The gateway was killed: it continues after its reserved numbers,
        // so the client sees exactly one gap (gap-filled) and nothing else.
        let want = (rr_before.0, rr_before.1 + 1);
        if (c.stats.rr_from_gateway, c.stats.rr_for_gap) != want {
            failures.push(format!(
                "{}: sequence numbers did not line up after the last restart (want one gap: resend requests {:?} -> {:?})",
                c.comp,
                rr_before,
                (c.stats.rr_from_gateway, c.stats.rr_for_gap)
            ));
        }
        let snapshot: Vec<Order> = c.orders.clone();
        closed_total += snapshot.iter().filter(|o| !o.is_open()).count();
        for (n, o) in snapshot.iter().enumerate() {
            let mut body = vec![(11, o.cl.clone())];
            if let Some(oid) = &o.order_id {
                body.push((37, oid.clone()));
            }
            body.push((790, format!("S{n}")));
            body.push((55, o.symbol.to_string()));
            body.push((54, (o.side as char).to_string()));
            c.send("H", body);
            if n % 64 == 63 {
                while c.pump(Duration::from_millis(1)) {}
            }
        }
        while c.status.len() < snapshot.len() && c.alive() && Instant::now() < deadline {
            c.pump(Duration::from_millis(10));
        }
        for (n, o) in snapshot.iter().enumerate() {
            let Some(ans) = c.status.get(&format!("S{n}")) else {
                failures.push(format!("{}: no status answer for {}", c.comp, o.cl));
                continue;
            };
            status_checked += 1;
            let got = (
                field(ans, 39).unwrap_or("").to_string(),
                qty(field(ans, 14).map(str::as_bytes)),
                qty(field(ans, 151).map(str::as_bytes)),
            );
            let want = if o.rejected {
                ("8".to_string(), 0, 0)
            } else {
                (
                    o.ord_status.clone(),
                    o.cum,
                    if o.is_open() { o.leaves } else { 0 },
                )
            };
            // The venue remembers only the most recent finished orders
            // (`DONE_ORDERS_KEPT`); an older finished order is answered as
            // unknown, which is right for an order that is no longer working.
            let forgotten = !o.is_open()
                && field(ans, 39) == Some("8")
                && field(ans, 58) == Some("Unknown order");
            if forgotten {
                forgotten_closed += 1;
                continue;
            }
            if got != want || field(ans, 150) != Some("I") {
                failures.push(format!(
                    "{}: status of {} after a fresh replay is (39, 14, 151) = {got:?}, the client saw {want:?}",
                    c.comp, o.cl
                ));
            }
        }
        failures.append(&mut c.problems);
    }
    gw.kill9();
    // Only the oldest finished orders beyond the venue's memory may be unknown.
    let may_forget = closed_total.saturating_sub(fixgw::venue::order_entry::DONE_ORDERS_KEPT);
    if forgotten_closed > may_forget {
        failures.push(format!(
            "{forgotten_closed} finished orders answered as unknown, but only {may_forget} are beyond the venue's memory of {}",
            fixgw::venue::order_entry::DONE_ORDERS_KEPT
        ));
    }

    // ------------------------------------------------ report
    let mut total = Stats::default();
    let mut fills = 0;
    let mut execs = 0;
    for c in &clients {
        let s = &c.stats;
        total.orders += s.orders;
        total.cancels += s.cancels;
        total.logons += s.logons;
        total.er_first_seen_possdup += s.er_first_seen_possdup;
        total.er_repeats += s.er_repeats;
        total.rr_from_gateway += s.rr_from_gateway;
        total.app_resent += s.app_resent;
        total.gap_fills_sent += s.gap_fills_sent;
        total.rr_for_gap += s.rr_for_gap;
        total.rr_overlapping += s.rr_overlapping;
        total.cancel_rejects += s.cancel_rejects;
        fills += c.fills.len();
        execs += c.execs.len();
    }
    println!(
        "crash_under_load: seed {seed}: {kills} SIGKILLs (delays ms {kill_delays:?}), trading {:.1}s, total {:.1}s",
        trading_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  orders {orders_total} ({rejected} rejected, {open_total} open at the end), cancels {}, cancel rejects {}, fills {fills} ({} trades), distinct ExecIDs {execs}, status answers checked {status_checked} ({forgotten_closed} finished orders beyond the venue memory answered unknown)",
        total.cancels,
        total.cancel_rejects,
        trades.len()
    );
    println!(
        "  recovery: logons {}, gateway ResendRequests {} (client resent {} app messages, {} gap fills), client ResendRequests for gaps {} + overlapping {}, ERs first seen as resends {}, repeated ERs (43=Y, ignored) {}",
        total.logons,
        total.rr_from_gateway,
        total.app_resent,
        total.gap_fills_sent,
        total.rr_for_gap,
        total.rr_overlapping,
        total.er_first_seen_possdup,
        total.er_repeats
    );
    println!(
        "  drop copy: connected in {dc_cycles} of {kills} cycles, {} copies (ExecutionReports) received once each, {} repeats with 43=Y",
        dc.exec_seq.len(),
        dc.stats.er_repeats
    );
    println!(
        "  journal: {} batches, {} inputs replayed; {} book levels",
        replay.batches,
        replay.inputs,
        replay.levels.len()
    );
    if !failures.is_empty() {
        let kept = dir.keep();
        panic!(
            "CRASH_SEED={seed}: {} failures (store and gateway.log kept in {}):\n{}",
            failures.len(),
            kept.display(),
            failures
                .iter()
                .take(60)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(total.orders > 0 && fills > 0, "the load produced no trades");
}
