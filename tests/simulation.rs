//! Deterministic simulation of the whole gateway (issue 7, item 5).
//!
//! Each seed drives a scenario of a few hundred steps through the gateway's
//! core in-process ([`Harness`]: sessions, venue, batch log) on a simulated
//! clock. Order-entry clients (and, in half the seeds, the drop copy) send
//! orders, cancels, replaces and status requests over a simulated network
//! that delays messages (in order per connection) and drops connections; the
//! gateway crashes at random steps (the harness is dropped without a
//! shutdown and the simulated disk loses every unflushed write), stops
//! cleanly now and then, gets operator actions (halt, kill, logout), and its
//! disk refuses writes, or only flushes, for random windows. The clients are
//! FIX initiators: they answer a ResendRequest with resends (PossDupFlag=Y)
//! or gap fills, ask for a resend on a gap and honour SequenceReset-GapFill.
//!
//! Checked after every step:
//! - ARCHITECTURE rule 3 at the release boundary: every message the core
//!   hands to a connection has a durable MsgSeqNum, and every application
//!   message is in the durable store byte for byte (a resend: the same
//!   message); a gap fill never covers a stored message;
//! - the durable journal, replayed into a shadow venue, produces exactly the
//!   application messages stored with it, and the live venue's engine equals
//!   that replay whenever the store is up ("books equal a replay");
//! - on the client side: no ExecID twice without PossDupFlag=Y, no MsgSeqNum
//!   used for two different messages, none below the expected one without
//!   PossDupFlag, no gap fill over an ExecutionReport, no ResendRequest for
//!   an order the gateway had already answered, no session Reject;
//! - after every restart, each ExecutionReport a client received is in the
//!   recovered journal (acknowledged orders are never lost).
//!
//! At the end (faults off, everyone reconnected and in sync): every client
//! has received exactly the ExecutionReports the journal holds for it, the
//! venue's working orders are those the clients were told of, the books
//! equal the replay, and after a clean stop the gateway restarts without a
//! sequence gap.
//!
//! Seeds: `FIXGW_SIM_SEEDS` (default 10000) from `FIXGW_SIM_FIRST_SEED`
//! (default 0) on `FIXGW_SIM_THREADS` threads (default 2), each
//! `FIXGW_SIM_STEPS` steps (default 300). `FIXGW_SIM_SEED=n` reruns one seed
//! exactly; with `FIXGW_SIM_TRACE=1` it prints what happened, step by step.
//! The test's own choices come only from the seed (no clock, no hash-map
//! order); `same_seed_same_trace` checks that a seed is a trace.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{env_u64, repo_path, Rng};
use fixgw::admin::{AdminRequest, OperatorAction};
use fixgw::engine::VenueConfig;
use fixgw::fix::time::{format_utc_string, Precision};
use fixgw::fix::Message;
use fixgw::gateway::build_venue;
use fixgw::gateway::harness::{Conn, FixClient, Harness};
use fixgw::session::batch_store::decode_view;
use fixgw::session::log_backend::{LogBackend, MemDisk};
use fixgw::session::settings::{GatewaySettings, Settings};
use fixgw::session::{MessageStore, OutboundMessage};
use fixgw::venue::input::VenueInput;
use fixgw::venue::order_entry::Venue;

const SEC: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;
/// 2026-01-01 01:00:00 UTC.
const T0: i64 = 1_767_225_600 * SEC + 3_600 * SEC;
/// HeartBtInt the clients log on with.
const HB_SECS: i64 = 5;
/// Longest the end of a scenario may take to bring everyone in sync.
const SETTLE_STEPS: u64 = 800;

// ---------------------------------------------------------------- set-up

/// The repository's venue file plus a third account (self-trade allowed)
/// for CLIENT3.
const VENUE_EXTRA: &str = r#"
[[accounts]]
name = "ACC3"
self_trade = "allow"
[accounts.limits]
max_order_qty = "1000000"
max_order_notional = "100000000"
max_open_orders = 1000000
credit_limit = "1000000000000"
max_position = "100000000"

[[sessions]]
comp_id = "CLIENT3"
account = "ACC3"
"#;

/// Settings and venue shared by every seed.
struct World {
    settings: GatewaySettings,
    venue: VenueConfig,
}

impl World {
    fn new() -> World {
        let dict = repo_path("dictionaries/FIX44.xml");
        let dict = dict.display();
        let cfg = format!(
            "[DEFAULT]\nConnectionType=acceptor\nSocketAcceptPort=1\nSenderCompID=FIXGW\n\
             BeginString=FIX.4.4\nStartTime=00:00:00\nEndTime=00:00:00\nDataDictionary={dict}\n\
             [SESSION]\nTargetCompID=CLIENT1\nSessionRole=order-entry\n\
             [SESSION]\nTargetCompID=CLIENT2\nSessionRole=order-entry\n\
             [SESSION]\nTargetCompID=CLIENT3\nSessionRole=order-entry\nCancelOnDisconnect=Y\n\
             [SESSION]\nTargetCompID=DROPCOPY\nSessionRole=drop-copy\n"
        );
        let settings =
            GatewaySettings::from_settings(Settings::parse("sim.cfg", &cfg).unwrap()).unwrap();
        let venue = std::fs::read_to_string(repo_path("sessions/venue.toml")).unwrap();
        World {
            settings,
            venue: VenueConfig::from_toml_str(&(venue + VENUE_EXTRA)).unwrap(),
        }
    }

    /// The gateway on `disk`, taking a venue checkpoint every `checkpoints`
    /// inputs (0: none; a restart replays the whole journal).
    fn open(&self, disk: &MemDisk, now: i64, checkpoints: u64) -> Result<Harness, String> {
        let mut settings = self.settings.clone();
        settings.checkpoint_inputs = checkpoints;
        Harness::open(&settings, Some(&self.venue), Arc::new(disk.backend()), now)
            .map_err(|e| format!("recovery failed: {e:#}"))
    }
}

fn key_of(comp: &str) -> String {
    format!("FIX.4.4:FIXGW->{comp}")
}

// ---------------------------------------------------------------- randomness and trace

/// A deterministic 64-bit hash (FNV-style, eight bytes at a time).
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x100_0000_01b3);
        h ^= h >> 29;
    }
    h
}
const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

#[derive(Clone, Copy, PartialEq, Eq)]
enum TraceMode {
    Off,
    Print,
    /// Only a hash of the trace (same-seed-same-trace test).
    Hash,
}

/// What the scenario does and where it is: the randomness, the clock, the trace.
struct Cx {
    rng: Rng,
    step: u64,
    now: i64,
    max_delay: u64,
    mode: TraceMode,
    hash: u64,
    stats: Stats,
}

impl Cx {
    fn tracing(&self) -> bool {
        self.mode != TraceMode::Off
    }
    fn record(&mut self, line: String) {
        match self.mode {
            TraceMode::Off => {}
            TraceMode::Print => eprintln!(
                "[{:>4} +{:>7.3}s] {line}",
                self.step,
                (self.now - T0) as f64 / 1e9
            ),
            TraceMode::Hash => {
                self.hash = fnv(self.hash, &self.step.to_le_bytes());
                self.hash = fnv(self.hash, line.as_bytes());
            }
        }
    }
    /// When a message sent now arrives, keeping the order of its connection.
    fn due(&mut self, last: &mut u64) -> u64 {
        let d = self.step + self.rng.below(self.max_delay + 1);
        *last = (*last).max(d);
        *last
    }
}

macro_rules! trace {
    ($cx:expr, $($arg:tt)*) => {
        if $cx.tracing() {
            let line = format!($($arg)*);
            $cx.record(line);
        }
    };
}

/// Counters for the summary (what the seeds exercised).
#[derive(Default, Clone, Copy)]
struct Stats {
    steps: u64,
    crashes: u64,
    clean_stops: u64,
    operator: u64,
    disk_windows: u64,
    store_down_steps: u64,
    disconnects: u64,
    app_sent: u64,
    reports: u64,
    resent: u64,
    gap_fills: u64,
    refused: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.crashes += o.crashes;
        self.clean_stops += o.clean_stops;
        self.operator += o.operator;
        self.disk_windows += o.disk_windows;
        self.store_down_steps += o.store_down_steps;
        self.disconnects += o.disconnects;
        self.app_sent += o.app_sent;
        self.reports += o.reports;
        self.resent += o.resent;
        self.gap_fills += o.gap_fills;
        self.refused += o.refused;
    }
}

// ---------------------------------------------------------------- messages

/// A message's identity for comparing a resend with the original: every
/// field but those a resend changes (8, 9, 10, 43, 52, 122) and 34.
fn digest(m: &Message) -> u64 {
    let mut h = FNV0;
    for (t, v) in m.iter() {
        if matches!(t, 8 | 9 | 10 | 34 | 43 | 52 | 122) {
            continue;
        }
        h = fnv(h, &t.to_le_bytes());
        h = fnv(h, v);
    }
    h
}

fn is_admin(t: &[u8]) -> bool {
    matches!(t, b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A")
}

/// A short rendering for traces and failures: `8/F 34=12 11=C1-3 17=9 43=Y`.
fn brief(m: &Message) -> String {
    let mut s = String::from_utf8_lossy(m.msg_type()).into_owned();
    if let Some(x) = m.get_str(150) {
        s.push('/');
        s.push_str(x);
    }
    for t in [34, 11, 41, 17, 39, 14, 151, 36, 7, 16, 112, 45, 43, 58] {
        if let Some(v) = m.get_str(t) {
            let v: String = v.chars().take(40).collect();
            s.push_str(&format!(" {t}={v}"));
        }
    }
    s
}

/// True when a stored frame is the session's encoding of `m` (the same
/// MsgType, header fields and body), as `fixgw journal verify` compares.
fn frame_is(frame: &Message, m: &OutboundMessage) -> bool {
    let raw = frame.raw();
    let before_trailer = raw.len().checked_sub(7).map_or(&raw[..0], |e| &raw[..e]);
    frame.msg_type() == &m.msg_type[..]
        && before_trailer.ends_with(&m.body)
        && m.header.iter().all(|(t, v)| frame.get(*t) == Some(&v[..]))
}

// ---------------------------------------------------------------- the durable view

/// What the durable journal says about one session.
#[derive(Default)]
struct Durable {
    /// Outbound MsgSeqNums below this are durable (next or reserved).
    next: u64,
    /// Stored outbound messages.
    stored: BTreeMap<u64, Bytes>,
    /// ExecIDs of stored ExecutionReports: (MsgSeqNum, digest).
    execs: BTreeMap<String, (u64, u64)>,
}

/// Follows the simulated disk's durable records: replays their inputs into
/// a shadow venue and indexes what each session has stored.
struct Ledger {
    venue: Venue,
    next_batch: u64,
    /// Every record read, by batch: durable records never change.
    read: BTreeMap<u64, Bytes>,
    sessions: BTreeMap<String, Durable>,
    execs: usize,
    out: Vec<(std::sync::Arc<str>, OutboundMessage)>,
}

/// A durable record is the same as when it was read: byte for byte, except
/// that compaction may mark it (its version byte becomes 3, so an older
/// fixgw refuses the store).
fn same_record(old: &[u8], new: &[u8]) -> bool {
    const VERSION_AT: usize = 4;
    old == new
        || (old.len() == new.len()
            && new[VERSION_AT] == 3
            && old[..VERSION_AT] == new[..VERSION_AT]
            && old[VERSION_AT + 1..] == new[VERSION_AT + 1..])
}

impl Ledger {
    fn new(world: &World) -> Ledger {
        Ledger {
            venue: build_venue(&world.settings, &world.venue).unwrap(),
            next_batch: 1,
            read: BTreeMap::new(),
            sessions: BTreeMap::new(),
            execs: 0,
            out: Vec::new(),
        }
    }

    /// Reads the records that became durable since the last call. Returns
    /// true when some had venue inputs.
    fn update(&mut self, disk: &MemDisk, cx: &mut Cx) -> Result<bool, String> {
        let mut inputs = false;
        // From the last record read, which must not have changed (a cheap
        // look every step; `check_unchanged` looks at all of them).
        let last = self.next_batch - 1;
        for (batch, raw) in disk.durable_from(last) {
            if batch == last && last > 0 {
                if !self
                    .read
                    .get(&last)
                    .is_some_and(|old| same_record(old, &raw))
                {
                    return Err(format!("durable batch {last} changed"));
                }
                continue;
            }
            if batch != self.next_batch {
                return Err(format!(
                    "durable batch {batch} follows batch {}",
                    self.next_batch - 1
                ));
            }
            let rec = decode_view(&raw).map_err(|e| format!("durable batch {batch}: {e}"))?;
            self.read.insert(batch, raw.clone());
            // What the venue produces for each session when the inputs are replayed.
            let mut produced: BTreeMap<String, Vec<OutboundMessage>> = BTreeMap::new();
            for (n, raw) in rec.inputs.iter().enumerate() {
                let (input, _) = VenueInput::decode(raw)
                    .map_err(|e| format!("durable batch {batch}: input {n}: {e}"))?;
                self.out.clear();
                let _ = self.venue.apply(&input, &mut self.out);
                self.venue.discard_market_data();
                for (comp, m) in self.out.drain(..) {
                    produced.entry(key_of(&comp)).or_default().push(m);
                }
            }
            inputs |= !rec.inputs.is_empty();
            for d in &rec.sessions {
                let s = self.sessions.entry(d.key.clone()).or_default();
                if d.reset {
                    s.stored.clear();
                    s.execs.clear();
                }
                s.next = d.next_sender.max(d.reserved);
            }
            let mut stored: BTreeMap<String, Vec<Message>> = BTreeMap::new();
            for &(si, seq, bytes, _) in &rec.messages {
                let (seq, bytes) = (&seq, raw.slice_ref(bytes));
                let key = &rec.sessions[usize::from(si)].key;
                let m = Message::parse(bytes.clone())
                    .map_err(|e| format!("durable batch {batch}: {key} {seq}: {e}"))?;
                if m.seq_num() != Some(*seq) {
                    return Err(format!(
                        "durable batch {batch}: {key}: message {seq} has MsgSeqNum {:?}",
                        m.seq_num()
                    ));
                }
                let s = self.sessions.get_mut(key).expect("delta precedes messages");
                if m.msg_type() == b"8" {
                    let id = m.get_str(17).unwrap_or_default().to_string();
                    if let Some((old, _)) = s.execs.insert(id.clone(), (*seq, digest(&m))) {
                        return Err(format!(
                            "{key}: ExecID {id} stored twice (MsgSeqNum {old} and {seq})"
                        ));
                    }
                    self.execs += 1;
                }
                s.stored.insert(*seq, bytes.clone());
                if m.msg_type() != b"j" {
                    stored.entry(key.clone()).or_default().push(m);
                }
            }
            // The stored application messages are exactly the replay's.
            let keys: BTreeSet<&String> = produced.keys().chain(stored.keys()).collect();
            for key in keys {
                let (p, s) = (
                    produced.get(key).map_or(&[][..], Vec::as_slice),
                    stored.get(key).map_or(&[][..], Vec::as_slice),
                );
                let same = p.len() == s.len() && p.iter().zip(s).all(|(p, s)| frame_is(s, p));
                if !same {
                    return Err(format!(
                        "durable batch {batch}: {key}: stored {:?} but replaying the journal gives {:?}",
                        s.iter().map(brief).collect::<Vec<_>>(),
                        p.iter()
                            .map(|m| String::from_utf8_lossy(&m.msg_type).into_owned())
                            .collect::<Vec<_>>()
                    ));
                }
            }
            trace!(
                cx,
                "durable batch {batch}: {} inputs, {} messages",
                rec.inputs.len(),
                rec.messages.len()
            );
            self.next_batch += 1;
        }
        Ok(inputs)
    }

    /// Every durable record read so far is still there, unchanged (a
    /// restart must not write over what was durable), unless start-up's
    /// compaction may have deleted it.
    fn check_unchanged(&self, disk: &MemDisk) -> Result<(), String> {
        let now = disk.durable();
        for (b, raw) in &self.read {
            match now.get(b) {
                Some(r) if same_record(raw, r) => {}
                Some(_) => return Err(format!("durable batch {b} changed")),
                None => self
                    .check_compactable(*b, disk)
                    .map_err(|why| format!("durable batch {b} disappeared, but {why}"))?,
            }
        }
        Ok(())
    }

    /// A record compaction may delete: a checkpoint holds its inputs, it is
    /// not the newest, it resets no session, a later record holds the state
    /// of each session it has, and a later reset voided each message it
    /// stored.
    fn check_compactable(&self, batch: u64, disk: &MemDisk) -> Result<(), String> {
        let covered = disk
            .backend()
            .checkpoints()
            .into_iter()
            .filter_map(Result::ok)
            .map(|c| c.0)
            .max();
        if covered.is_none_or(|c| c < batch) {
            return Err(format!("no checkpoint holds its inputs ({covered:?})"));
        }
        if self.read.keys().next_back() == Some(&batch) {
            return Err("it was the newest record".into());
        }
        let (mut stated, mut reset) = (BTreeSet::new(), BTreeSet::new());
        for raw in self.read.range(batch + 1..).map(|(_, r)| r) {
            for d in decode_view(raw).map_err(|e| e.to_string())?.sessions {
                if d.reset {
                    reset.insert(d.key.clone());
                }
                stated.insert(d.key);
            }
        }
        let rec = decode_view(&self.read[&batch]).map_err(|e| e.to_string())?;
        if let Some(d) = rec.sessions.iter().find(|d| !stated.contains(&d.key)) {
            return Err(format!("no later record holds {}'s state", d.key));
        }
        // An older record kept for another session may hold messages the
        // reset voided.
        if let Some(d) = rec.sessions.iter().find(|d| d.reset) {
            return Err(format!("it resets {}", d.key));
        }
        if let Some((si, seq, ..)) = rec
            .messages
            .iter()
            .find(|(si, ..)| !reset.contains(&rec.sessions[usize::from(*si)].key))
        {
            let key = &rec.sessions[usize::from(*si)].key;
            return Err(format!("{key} did not reset since storing message {seq}"));
        }
        Ok(())
    }

    /// Rule 3 at the release boundary: `m` was just handed to `key`'s connection.
    fn check_released(&self, key: &str, m: &Message, store_down: bool) -> Result<(), String> {
        let seq = m.seq_num().ok_or("released a message without MsgSeqNum")?;
        let t = m.msg_type();
        let Some(s) = self.sessions.get(key) else {
            return Err(format!(
                "{key}: released {} before anything of the session was durable",
                brief(m)
            ));
        };
        if t == b"4" && m.get_flag(123) {
            let new = m.get_u64(36).ok_or("gap fill without NewSeqNo")?;
            if new > s.next {
                return Err(format!(
                    "{key}: released {} but only numbers below {} are durable",
                    brief(m),
                    s.next
                ));
            }
            if let Some((k, _)) = s.stored.range(seq..new).next() {
                return Err(format!(
                    "{key}: released {} over stored message {k}: a stored message must be resent",
                    brief(m)
                ));
            }
            return Ok(());
        }
        if seq >= s.next {
            return Err(format!(
                "{key}: released {} but only MsgSeqNums below {} are durable: after a crash the gateway would use {seq} again",
                brief(m),
                s.next
            ));
        }
        if is_admin(t) {
            return Ok(());
        }
        match s.stored.get(&seq) {
            Some(b) => {
                let same = if m.get_flag(43) {
                    Message::parse(b.clone()).is_ok_and(|o| digest(&o) == digest(m))
                } else {
                    b == m.raw()
                };
                if same {
                    Ok(())
                } else {
                    Err(format!(
                        "{key}: released {} but the durable store holds another message at {seq}",
                        brief(m)
                    ))
                }
            }
            // A refusal while the store cannot write is sent within the
            // reservation; after a crash its number is gap-filled.
            None if t == b"j" && store_down => Ok(()),
            None => Err(format!(
                "{key}: released {} which is not in the durable store",
                brief(m)
            )),
        }
    }
}

// ---------------------------------------------------------------- clients

/// A message we sent, kept to answer a ResendRequest.
#[derive(Clone)]
struct Sent {
    msg_type: &'static str,
    fields: Vec<(i32, String)>,
    at: i64,
    /// ClOrdID of an application message.
    cl: Option<String>,
}

/// An order as the client knows it.
struct Order {
    /// ClOrdID to name it by (the latest accepted).
    cl: String,
    symbol: &'static str,
    side: &'static str,
    limit: bool,
    /// OrdStatus of the last report, b'?' before any.
    status: u8,
}

/// One connection: messages in flight each way, in order.
struct Link {
    conn: Conn,
    to_gw: VecDeque<(u64, Message)>,
    to_client: VecDeque<(u64, Option<Message>)>,
    gw_due: u64,
    client_due: u64,
    /// The gateway's end is gone (closed it, or crashed): what we send is lost.
    dead: bool,
    logged_on: bool,
    logout_sent: bool,
}

struct Client {
    name: &'static str,
    key: String,
    trades: bool,
    fix: FixClient,
    sent: BTreeMap<u64, Sent>,
    link: Option<Link>,
    reconnect_at: u64,
    /// Next MsgSeqNum expected from the gateway.
    next_in: u64,
    /// Messages above `next_in`, waiting for the gap to fill.
    queue: BTreeMap<u64, Message>,
    /// An outstanding ResendRequest, satisfied once `next_in` passes this.
    resend_wait: Option<u64>,
    /// What each MsgSeqNum from the gateway carried: (digest, MsgType).
    wire: BTreeMap<u64, (u64, Vec<u8>)>,
    /// ExecIDs seen on the wire: (MsgSeqNum, digest).
    seen_execs: BTreeMap<String, (u64, u64)>,
    /// ExecIDs processed in sequence: digest.
    got_execs: BTreeMap<String, u64>,
    orders: Vec<Order>,
    by_cl: BTreeMap<String, usize>,
    /// ClOrdIDs the venue answered (ExecutionReport or OrderCancelReject).
    answered: BTreeSet<String>,
    /// ClOrdIDs refused with a BusinessMessageReject.
    refused: BTreeSet<String>,
    last_sent: i64,
    next_cl: u64,
    /// Settling: (TestReqID, its MsgSeqNum, answered).
    sync: Option<(String, u64, bool)>,
}

impl Client {
    fn new(name: &'static str, trades: bool, step: u64) -> Client {
        Client {
            name,
            key: key_of(name),
            trades,
            fix: FixClient::new(name, "FIXGW"),
            sent: BTreeMap::new(),
            link: None,
            reconnect_at: step,
            next_in: 1,
            queue: BTreeMap::new(),
            resend_wait: None,
            wire: BTreeMap::new(),
            seen_execs: BTreeMap::new(),
            got_execs: BTreeMap::new(),
            orders: Vec::new(),
            by_cl: BTreeMap::new(),
            answered: BTreeSet::new(),
            refused: BTreeSet::new(),
            last_sent: 0,
            next_cl: 1,
            sync: None,
        }
    }

    fn connect(&mut self, h: &mut Harness, cx: &mut Cx) {
        let logon = self.fix.logon(HB_SECS as u32, &[], cx.now);
        let seq = logon.seq_num().unwrap_or(0);
        self.sent.insert(
            seq,
            Sent {
                msg_type: "A",
                fields: Vec::new(),
                at: cx.now,
                cl: None,
            },
        );
        trace!(
            cx,
            "{} connects: Logon 34={seq}, expects 34={}",
            self.name,
            self.next_in
        );
        let conn = h.connect(logon);
        self.last_sent = cx.now;
        self.queue.clear();
        self.resend_wait = None;
        self.sync = None;
        self.link = Some(Link {
            conn,
            to_gw: VecDeque::new(),
            to_client: VecDeque::new(),
            gw_due: cx.step,
            client_due: cx.step,
            dead: false,
            logged_on: false,
            logout_sent: false,
        });
    }

    fn lose_link(&mut self, cx: &mut Cx) {
        self.link = None;
        self.queue.clear();
        self.resend_wait = None;
        self.sync = None;
        self.reconnect_at = cx.step + cx.rng.range(1, 10);
    }

    fn logged_on(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.logged_on && !l.dead)
    }

    fn push(&mut self, m: Message, cx: &mut Cx) {
        self.last_sent = cx.now;
        if let Some(link) = self.link.as_mut() {
            let due = cx.due(&mut link.gw_due);
            link.to_gw.push_back((due, m));
        }
    }

    fn send(&mut self, t: &'static str, fields: Vec<(i32, String)>, cx: &mut Cx) {
        let refs: Vec<(i32, &str)> = fields.iter().map(|(t, v)| (*t, v.as_str())).collect();
        let m = self.fix.message(t, &refs, cx.now);
        let seq = m.seq_num().unwrap_or(0);
        // The request's own id: ClOrdID, or OrdStatusReqID of a status request.
        let own = if t == "H" { 790 } else { 11 };
        let cl = (!is_admin(t.as_bytes()))
            .then(|| m.get_str(own).map(str::to_string))
            .flatten();
        trace!(cx, "{} sends {}", self.name, brief(&m));
        self.sent.insert(
            seq,
            Sent {
                msg_type: t,
                fields,
                at: cx.now,
                cl,
            },
        );
        self.push(m, cx);
    }

    /// What the client does on its own this step.
    fn act(&mut self, cx: &mut Cx, settling: bool, order_pct: u64) {
        if !self.logged_on() {
            return;
        }
        if self.trades && !settling && cx.rng.chance(order_pct) {
            self.trade(cx);
        }
        if !settling && cx.rng.one_in(400) {
            if let Some(link) = self.link.as_mut() {
                link.logout_sent = true;
            }
            self.send("5", Vec::new(), cx);
            return;
        }
        if cx.now - self.last_sent >= HB_SECS * SEC {
            self.send("0", Vec::new(), cx);
        }
    }

    fn trade(&mut self, cx: &mut Cx) {
        let live: Vec<usize> = (0..self.orders.len())
            .filter(|&i| matches!(self.orders[i].status, b'0' | b'1' | b'?'))
            .collect();
        let roll = cx.rng.below(100);
        if roll < 55 || live.is_empty() {
            return self.new_order(cx);
        }
        let i = live[cx.rng.below(live.len() as u64) as usize];
        let cl = format!("{}-{}", self.name, self.next_cl);
        self.next_cl += 1;
        let (orig, symbol, side, limit) = {
            let o = &self.orders[i];
            (o.cl.clone(), o.symbol, o.side, o.limit)
        };
        if roll >= 95 {
            // OrderStatusRequest: names the order, has its own request id.
            let f = vec![
                (11, orig),
                (54, side.to_string()),
                (55, symbol.to_string()),
                (790, cl),
            ];
            return self.send("H", f, cx);
        }
        self.by_cl.insert(cl.clone(), i);
        let mut f = vec![
            (11, cl),
            (41, orig),
            (54, side.to_string()),
            (55, symbol.to_string()),
        ];
        if roll < 80 || !limit {
            f.push((38, cx.rng.range(1, 60).to_string()));
            f.push((60, "20260101-01:00:00".to_string()));
            self.send("F", f, cx);
        } else {
            f.push((38, cx.rng.range(1, 60).to_string()));
            f.push((40, "2".to_string()));
            f.push((44, price(symbol, cx)));
            f.push((60, "20260101-01:00:00".to_string()));
            self.send("G", f, cx);
        }
    }

    fn new_order(&mut self, cx: &mut Cx) {
        let cl = format!("{}-{}", self.name, self.next_cl);
        self.next_cl += 1;
        let symbol = if cx.rng.chance(85) { "AAPL" } else { "MSFT" };
        let side = if cx.rng.chance(50) { "1" } else { "2" };
        let limit = cx.rng.chance(90);
        let mut f = vec![
            (11, cl.clone()),
            (55, symbol.to_string()),
            (54, side.to_string()),
            (60, "20260101-01:00:00".to_string()),
            (38, cx.rng.range(1, 60).to_string()),
            (40, if limit { "2" } else { "1" }.to_string()),
        ];
        if limit {
            f.push((44, price(symbol, cx)));
        }
        if cx.rng.chance(15) {
            f.push((59, "3".to_string()));
        }
        self.by_cl.insert(cl.clone(), self.orders.len());
        self.orders.push(Order {
            cl,
            symbol,
            side,
            limit,
            status: b'?',
        });
        self.send("D", f, cx);
    }

    /// A message arrives from the gateway.
    fn receive(&mut self, m: Message, cx: &mut Cx) -> Result<(), String> {
        let name = self.name;
        let seq = m
            .seq_num()
            .ok_or_else(|| format!("{name}: message without MsgSeqNum: {}", brief(&m)))?;
        let t = m.msg_type().to_vec();
        let poss_dup = m.get_flag(43);
        trace!(cx, "{name} <- {}", brief(&m));
        self.check_wire(&m, seq, &t, poss_dup)?;
        if t == b"2" {
            // Answered at once, in or out of sequence (as QuickFIX does).
            self.answer_resend(&m, cx)?;
        }
        if t == b"A" {
            if let Some(link) = self.link.as_mut() {
                link.logged_on = true;
            }
        }
        if seq < self.next_in {
            if !poss_dup {
                return Err(format!(
                    "{name}: MsgSeqNum too low: expected {}, got {} without PossDupFlag",
                    self.next_in,
                    brief(&m)
                ));
            }
            return Ok(());
        }
        if seq > self.next_in {
            self.queue.insert(seq, m);
            if self.resend_wait.is_none() {
                self.request_resend(seq - 1, cx);
            }
            return Ok(());
        }
        self.process(m, cx)?;
        self.drain_queue(cx)
    }

    /// (a) and (b) on the wire: what a number carries never changes, an
    /// ExecID comes again only as a PossDup resend of the same message, and
    /// a gap fill never covers an execution.
    fn check_wire(
        &mut self,
        m: &Message,
        seq: u64,
        t: &[u8],
        poss_dup: bool,
    ) -> Result<(), String> {
        let name = self.name;
        if t == b"4" && m.get_flag(123) {
            let new = m.get_u64(36).ok_or("gap fill without NewSeqNo")?;
            if let Some((s, (_, kind))) = self
                .wire
                .range(seq..new)
                .find(|(_, (_, k))| k == b"8" || k == b"9")
            {
                return Err(format!(
                    "{name}: {} covers MsgSeqNum {s}, which carried a 35={} to us",
                    brief(m),
                    String::from_utf8_lossy(kind)
                ));
            }
            return Ok(());
        }
        let d = digest(m);
        match self.wire.get(&seq) {
            Some((old, _)) if *old != d => {
                return Err(format!(
                    "{name}: MsgSeqNum {seq} used for two different messages (now {})",
                    brief(m)
                ))
            }
            Some(_) if !poss_dup => {
                return Err(format!(
                    "{name}: MsgSeqNum {seq} received twice without PossDupFlag ({})",
                    brief(m)
                ))
            }
            Some(_) => {}
            None => {
                self.wire.insert(seq, (d, t.to_vec()));
            }
        }
        if t == b"8" {
            let id = m.get_str(17).ok_or("ExecutionReport without ExecID")?;
            match self.seen_execs.get(id) {
                Some(_) if !poss_dup => {
                    return Err(format!(
                        "{name}: ExecID {id} delivered twice without PossDupFlag=Y ({})",
                        brief(m)
                    ))
                }
                Some(&(s, od)) if s != seq || od != d => {
                    return Err(format!(
                        "{name}: ExecID {id} came as MsgSeqNum {s} and now as {}",
                        brief(m)
                    ))
                }
                Some(_) => {}
                None => {
                    self.seen_execs.insert(id.to_string(), (seq, d));
                }
            }
        }
        Ok(())
    }

    fn request_resend(&mut self, upto: u64, cx: &mut Cx) {
        self.resend_wait = Some(upto);
        let begin = self.next_in.to_string();
        self.send("2", vec![(7, begin), (16, "0".to_string())], cx);
    }

    fn drain_queue(&mut self, cx: &mut Cx) -> Result<(), String> {
        loop {
            while let Some((&k, _)) = self.queue.first_key_value() {
                if k >= self.next_in {
                    break;
                }
                self.queue.pop_first();
            }
            if self.resend_wait.is_some_and(|w| self.next_in > w) {
                self.resend_wait = None;
            }
            match self.queue.remove(&self.next_in) {
                Some(m) => self.process(m, cx)?,
                None => break,
            }
        }
        // A gap the last resend did not cover: ask again.
        if self.resend_wait.is_none() {
            if let Some((&k, _)) = self.queue.first_key_value() {
                self.request_resend(k - 1, cx);
            }
        }
        Ok(())
    }

    /// Handles the message numbered `next_in`.
    fn process(&mut self, m: Message, cx: &mut Cx) -> Result<(), String> {
        let name = self.name;
        let seq = m.seq_num().unwrap_or(0);
        match m.msg_type() {
            b"4" => {
                let new = m.get_u64(36).ok_or("SequenceReset without NewSeqNo")?;
                if new <= seq {
                    return Err(format!("{name}: SequenceReset backwards: {}", brief(&m)));
                }
                self.next_in = new;
                return Ok(());
            }
            b"0" => {
                if let Some((id, _, done)) = self.sync.as_mut() {
                    if m.get_str(112) == Some(id.as_str()) {
                        *done = true;
                    }
                }
            }
            b"1" => {
                let id = m.get_str(112).unwrap_or_default().to_string();
                self.send("0", vec![(112, id)], cx);
            }
            b"2" | b"A" => {}
            b"3" => {
                return Err(format!(
                    "{name}: session Reject from the gateway: {}",
                    brief(&m)
                ))
            }
            b"5" => {
                let text = m.get_str(58).unwrap_or_default();
                if text.contains("too low") {
                    return Err(format!("{name}: logged out: {text}"));
                }
                let answer = self.link.as_ref().is_some_and(|l| !l.logout_sent);
                if answer {
                    if let Some(link) = self.link.as_mut() {
                        link.logout_sent = true;
                    }
                    self.send("5", Vec::new(), cx);
                }
            }
            b"8" => {
                cx.stats.reports += 1;
                let id = m.get_str(17).unwrap_or_default().to_string();
                if self.got_execs.insert(id.clone(), digest(&m)).is_some() {
                    return Err(format!(
                        "{name}: ExecID {id} processed twice ({})",
                        brief(&m)
                    ));
                }
                self.on_report(&m);
            }
            b"9" => {
                if let Some(cl) = m.get_str(11) {
                    self.answered.insert(cl.to_string());
                }
            }
            b"j" => {
                cx.stats.refused += 1;
                if let Some(cl) = m.get_str(379) {
                    self.refused.insert(cl.to_string());
                }
            }
            other => {
                return Err(format!(
                    "{name}: unexpected MsgType {}",
                    String::from_utf8_lossy(other)
                ))
            }
        }
        self.next_in = seq + 1;
        Ok(())
    }

    fn on_report(&mut self, m: &Message) {
        let cl = m.get_str(11).unwrap_or_default();
        self.answered.insert(cl.to_string());
        if let Some(r) = m.get_str(790) {
            self.answered.insert(r.to_string());
        }
        let i = self
            .by_cl
            .get(cl)
            .or_else(|| m.get_str(41).and_then(|o| self.by_cl.get(o)))
            .copied();
        let Some(i) = i else { return };
        self.by_cl.insert(cl.to_string(), i);
        let o = &mut self.orders[i];
        if m.get(150) == Some(b"5") {
            o.cl = cl.to_string();
        }
        if let Some(s) = m.get(39) {
            o.status = s[0];
        }
    }

    /// The gateway asks for our messages `7=` to `16=` again: application
    /// messages whose outcome we do not know are resent (mostly), the rest
    /// gap-filled.
    fn answer_resend(&mut self, m: &Message, cx: &mut Cx) -> Result<(), String> {
        let name = self.name;
        let begin = m.get_u64(7).ok_or("ResendRequest without BeginSeqNo")?;
        let end = m.get_u64(16).unwrap_or(0);
        let last = self.fix.next_out - 1;
        let end = if end == 0 || end > last { last } else { end };
        // A TestRequest we are waiting on is gap-filled like any admin
        // message: it will never be answered, so settling asks again.
        if let Some((_, seq, false)) = &self.sync {
            if (begin..=end).contains(seq) {
                self.sync = None;
            }
        }
        let mut gap: Option<u64> = None;
        for s in begin..=end {
            let sent = self.sent.get(&s).cloned();
            if let Some(cl) = sent.as_ref().and_then(|x| x.cl.as_ref()) {
                if self.answered.contains(cl) {
                    return Err(format!(
                        "{name}: the gateway asks again for our MsgSeqNum {s} ({cl}), which it had answered: \
                         the answer left, so the message's consumption had to be durable"
                    ));
                }
            }
            let resend =
                sent.filter(|x| x.cl.as_ref().is_some_and(|cl| !self.refused.contains(cl)));
            match resend {
                Some(x) if cx.rng.chance(85) => {
                    if let Some(g) = gap.take() {
                        self.gap_fill(g, s, cx);
                    }
                    let orig = format_utc_string(x.at, Precision::Millis);
                    let mut f: Vec<(i32, &str)> = vec![(43, "Y"), (122, orig.as_str())];
                    f.extend(x.fields.iter().map(|(t, v)| (*t, v.as_str())));
                    let r = self.fix.message_at(s, x.msg_type, &f, cx.now);
                    trace!(cx, "{name} resends {}", brief(&r));
                    cx.stats.resent += 1;
                    self.push(r, cx);
                }
                _ => {
                    gap.get_or_insert(s);
                }
            }
        }
        if let Some(g) = gap {
            self.gap_fill(g, end + 1, cx);
        }
        Ok(())
    }

    fn gap_fill(&mut self, begin: u64, new: u64, cx: &mut Cx) {
        let now = format_utc_string(cx.now, Precision::Millis);
        let new = new.to_string();
        let f = [
            (43, "Y"),
            (122, now.as_str()),
            (123, "Y"),
            (36, new.as_str()),
        ];
        let r = self.fix.message_at(begin, "4", &f, cx.now);
        trace!(cx, "{} gap-fills {}", self.name, brief(&r));
        cx.stats.gap_fills += 1;
        self.push(r, cx);
    }

    /// Delivers what has arrived by this step.
    fn deliver(&mut self, cx: &mut Cx) -> Result<(), String> {
        loop {
            let Some(link) = self.link.as_mut() else {
                return Ok(());
            };
            match link.to_client.front() {
                Some((due, _)) if *due <= cx.step => {}
                _ => return Ok(()),
            }
            match link.to_client.pop_front().and_then(|(_, m)| m) {
                Some(m) => self.receive(m, cx)?,
                None => {
                    trace!(cx, "{}: connection closed", self.name);
                    self.lose_link(cx);
                }
            }
        }
    }

    /// Nothing in flight or pending on this client's side.
    fn quiet(&self) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| l.logged_on && !l.dead && l.to_gw.is_empty() && l.to_client.is_empty())
            && self.queue.is_empty()
            && self.resend_wait.is_none()
    }
}

/// What the core released to `c`'s connection goes on the wire to it,
/// each message checked first against rule 3. Returns true when the core
/// closed the connection.
fn ship(c: &mut Client, ledger: &Ledger, store_down: bool, cx: &mut Cx) -> Result<bool, String> {
    let Some(link) = c.link.as_mut() else {
        return Ok(false);
    };
    if link.dead {
        return Ok(false);
    }
    for m in link.conn.drain() {
        ledger.check_released(&c.key, &m, store_down)?;
        let due = cx.due(&mut link.client_due);
        link.to_client.push_back((due, Some(m)));
    }
    if !link.conn.is_closed() {
        return Ok(false);
    }
    link.dead = true;
    let due = cx.due(&mut link.client_due);
    link.to_client.push_back((due, None));
    Ok(true)
}

fn price(symbol: &str, cx: &mut Cx) -> String {
    let k = cx.rng.below(17) as f64;
    match symbol {
        "AAPL" => format!("{:.2}", 148.0 + 0.25 * k),
        _ => format!("{:.2}", 398.0 + 0.5 * k),
    }
}

// ---------------------------------------------------------------- the scenario

/// The seed's fault rates.
struct Params {
    crash_one_in: u64,
    disk_one_in: u64,
    operator_one_in: u64,
    disconnect_one_in: u64,
    order_pct: u64,
    /// CheckpointInputs.
    checkpoints: u64,
}

struct Sim<'w> {
    world: &'w World,
    cx: Cx,
    disk: MemDisk,
    h: Option<Harness>,
    down_until: u64,
    fail_until: u64,
    clients: Vec<Client>,
    ledger: Ledger,
    p: Params,
    settling: bool,
    /// What the operator did last (halted AAPL, blocked ACC1..3).
    halted: bool,
    blocked: [bool; 3],
    /// Compare the live venue with the replay at the next step the store is up.
    compare: bool,
}

impl<'w> Sim<'w> {
    fn new(world: &'w World, seed: u64, mode: TraceMode) -> Result<Sim<'w>, String> {
        let mut rng = Rng::new(seed ^ 0x5EED_F1C5_0000_0000);
        let max_delay = [0, 1, 2, 4, 8][rng.below(5) as usize];
        let p = Params {
            crash_one_in: [40, 80, 150, 400][rng.below(4) as usize],
            disk_one_in: [30, 60, 150, 1_000_000][rng.below(4) as usize],
            operator_one_in: [60, 1_000_000][rng.below(2) as usize],
            disconnect_one_in: [50, 150, 500][rng.below(3) as usize],
            order_pct: rng.range(20, 70),
            // Restarts restore a checkpoint taken a few inputs back, or one
            // from long before, or replay the whole journal.
            checkpoints: [0, 3, 40][(seed % 3) as usize],
        };
        let mut clients = vec![
            Client::new("CLIENT1", true, 0),
            Client::new("CLIENT2", true, 0),
        ];
        if rng.chance(60) {
            clients.push(Client::new("CLIENT3", true, 0));
        }
        if rng.chance(50) {
            clients.push(Client::new("DROPCOPY", false, 0));
        }
        let mut cx = Cx {
            rng,
            step: 0,
            now: T0,
            max_delay,
            mode,
            hash: FNV0,
            stats: Stats::default(),
        };
        trace!(
            cx,
            "seed {seed}: clients {:?}, delay <= {max_delay} steps, crash 1/{}, disk 1/{}, disconnect 1/{}, orders {}%, checkpoint every {} inputs",
            clients.iter().map(|c| c.name).collect::<Vec<_>>(),
            p.crash_one_in,
            p.disk_one_in,
            p.disconnect_one_in,
            p.order_pct,
            p.checkpoints
        );
        let disk = MemDisk::new();
        let h = world.open(&disk, T0, p.checkpoints)?;
        Ok(Sim {
            world,
            cx,
            disk,
            h: Some(h),
            down_until: 0,
            fail_until: 0,
            clients,
            ledger: Ledger::new(world),
            p,
            settling: false,
            halted: false,
            blocked: [false; 3],
            compare: true,
        })
    }

    fn faults(&mut self) -> Result<(), String> {
        if self.settling {
            return Ok(());
        }
        if self.h.is_some() {
            if self.cx.rng.one_in(self.p.crash_one_in) {
                self.crash();
            } else if self.cx.rng.one_in(self.p.crash_one_in * 3) {
                self.clean_stop()?;
            }
        }
        let cx = &mut self.cx;
        if self.disk.is_failing() {
            if cx.step >= self.fail_until {
                trace!(cx, "disk writes again");
                self.disk.set_failing(false);
                self.disk.set_failing_flushes(false);
            }
        } else if cx.rng.one_in(self.p.disk_one_in) {
            self.fail_until = cx.step + cx.rng.range(1, 40);
            cx.stats.disk_windows += 1;
            if cx.rng.chance(50) {
                trace!(cx, "disk fails until step {}", self.fail_until);
                self.disk.set_failing(true);
            } else {
                trace!(cx, "flushes fail until step {}", self.fail_until);
                self.disk.set_failing_flushes(true);
            }
        }
        if self.h.is_some() && self.cx.rng.one_in(self.p.operator_one_in) {
            self.operator();
        }
        Ok(())
    }

    /// An operator action through the admin API (its answer is not awaited).
    fn operator(&mut self) {
        let cx = &mut self.cx;
        let action = match cx.rng.below(3) {
            0 => {
                self.halted = !self.halted;
                if self.halted {
                    OperatorAction::Halt("AAPL".into())
                } else {
                    OperatorAction::Resume("AAPL".into())
                }
            }
            1 => {
                let a = cx.rng.below(3) as usize;
                self.blocked[a] = !self.blocked[a];
                let name = format!("ACC{}", a + 1);
                if self.blocked[a] {
                    OperatorAction::Kill(name)
                } else {
                    OperatorAction::Unblock(name)
                }
            }
            _ => OperatorAction::Logout(format!("CLIENT{}", cx.rng.range(1, 3))),
        };
        cx.stats.operator += 1;
        trace!(cx, "operator: {action:?}");
        if let Some(h) = self.h.as_mut() {
            drop(h.admin(AdminRequest::Action {
                who: "sim".into(),
                action,
            }));
        }
    }

    /// A graceful stop (everyone logged out, last batch committed if the
    /// disk lets it), then a restart a few steps later.
    fn clean_stop(&mut self) -> Result<(), String> {
        let h = self.h.take().expect("up");
        h.shutdown(self.cx.now);
        self.cx.stats.clean_stops += 1;
        trace!(self.cx, "clean stop");
        // The process is gone: what it could not flush (the disk is
        // failing) is taken as lost, as if the power went next.
        self.disk.crash();
        self.ledger.update(&self.disk, &mut self.cx)?;
        let down = self.disk.is_failing();
        for c in &mut self.clients {
            if let Some(link) = c.link.as_mut() {
                link.to_gw.clear();
            }
            ship(c, &self.ledger, down, &mut self.cx)?;
            if let Some(link) = c.link.as_mut() {
                if !link.dead {
                    link.dead = true;
                    let due = self.cx.due(&mut link.client_due);
                    link.to_client.push_back((due, None));
                }
            }
        }
        self.down_until = self.cx.step + self.cx.rng.range(1, 5);
        Ok(())
    }

    /// The process dies: no shutdown, unflushed writes lost, connections
    /// cut (bytes already released may still arrive, or not).
    fn crash(&mut self) {
        let cx = &mut self.cx;
        cx.stats.crashes += 1;
        self.h = None;
        self.disk.crash();
        self.down_until = cx.step + cx.rng.range(1, 5);
        trace!(cx, "CRASH; restart at step {}", self.down_until);
        for c in &mut self.clients {
            let Some(link) = c.link.as_mut() else {
                continue;
            };
            link.to_gw.clear();
            if link.dead {
                continue;
            }
            link.dead = true;
            let keep = cx.rng.below(link.to_client.len() as u64 + 1) as usize;
            link.to_client.truncate(keep);
            let due = cx.due(&mut link.client_due);
            link.to_client.push_back((due, None));
        }
    }

    fn restart(&mut self) -> Result<(), String> {
        let h = self
            .world
            .open(&self.disk, self.cx.now, self.p.checkpoints)?;
        trace!(self.cx, "gateway restarted");
        self.ledger.check_unchanged(&self.disk)?;
        // (c) Nothing a client was told about is lost.
        for c in &self.clients {
            let durable = self.ledger.sessions.get(&c.key);
            for (id, &(seq, d)) in &c.seen_execs {
                if durable.and_then(|s| s.execs.get(id)) != Some(&(seq, d)) {
                    return Err(format!(
                        "{}: ExecID {id} (MsgSeqNum {seq}) was delivered but the recovered journal does not hold it",
                        c.name
                    ));
                }
            }
        }
        self.h = Some(h);
        self.compare = true;
        Ok(())
    }

    fn step(&mut self) -> Result<(), String> {
        self.faults()?;
        if self.h.is_none() && self.cx.step >= self.down_until {
            self.restart()?;
        }
        let Sim {
            cx,
            h,
            clients,
            ledger,
            p,
            settling,
            disk,
            compare,
            ..
        } = self;
        for c in clients.iter_mut() {
            if c.link.is_none() {
                if cx.step >= c.reconnect_at {
                    if let Some(h) = h.as_mut() {
                        c.connect(h, cx);
                    }
                }
            } else if !*settling && cx.rng.one_in(p.disconnect_one_in) {
                cx.stats.disconnects += 1;
                trace!(cx, "{} drops its connection", c.name);
                if let (Some(h), Some(link)) = (h.as_mut(), c.link.as_mut()) {
                    if !link.dead {
                        h.disconnect(&mut link.conn);
                    }
                }
                c.lose_link(cx);
            }
            if *settling && c.sync.is_none() && c.logged_on() {
                // Settling: once quiet, a TestRequest whose answer proves
                // that everything before it has arrived.
                if c.quiet() {
                    let id = format!("SYNC-{}", cx.step);
                    c.sync = Some((id.clone(), c.fix.next_out, false));
                    c.send("1", vec![(112, id)], cx);
                }
            }
            let sent_before = c.fix.next_out;
            c.act(cx, *settling, p.order_pct);
            cx.stats.app_sent += c.fix.next_out - sent_before;
            if let Some(link) = c.link.as_mut() {
                while link.to_gw.front().is_some_and(|(due, _)| *due <= cx.step) {
                    let (_, m) = link.to_gw.pop_front().expect("front");
                    if let (false, Some(h)) = (link.dead, h.as_mut()) {
                        h.send(&link.conn, m);
                    }
                }
            }
        }
        if let Some(hh) = h.as_mut() {
            hh.step(cx.now);
            let inputs = ledger.update(disk, cx)?;
            let down = hh.core().store_is_down();
            if down {
                cx.stats.store_down_steps += 1;
            }
            *compare |= inputs;
            let mut closed = false;
            for c in clients.iter_mut() {
                closed |= ship(c, ledger, down, cx)?;
            }
            // (d) The live venue is the replay of the durable journal, once
            // the store is up and the batch left nothing pending (a session
            // the core closed after its commit journals its SessionDown into
            // the next batch).
            if *compare && !down && !closed {
                *compare = false;
                let live = hh.core().venue().expect("venue").engine().snapshot();
                if live != ledger.venue.engine().snapshot() {
                    return Err(format!(
                        "the live venue differs from a replay of the durable journal ({} batches)",
                        ledger.next_batch - 1
                    ));
                }
            }
        }
        for c in clients.iter_mut() {
            c.deliver(cx)?;
        }
        cx.stats.steps += 1;
        cx.step += 1;
        cx.now += cx.rng.range(20, 200) as i64 * MS;
        Ok(())
    }

    fn settled(&self) -> bool {
        self.h.as_ref().is_some_and(|h| !h.core().store_is_down())
            && self
                .clients
                .iter()
                .all(|c| c.quiet() && c.sync.as_ref().is_some_and(|s| s.2))
    }

    /// Faults off; everyone reconnects and catches up; then (e) and a clean
    /// stop and start.
    fn finish(&mut self) -> Result<(), String> {
        self.settling = true;
        self.disk.set_failing(false);
        self.disk.set_failing_flushes(false);
        trace!(self.cx, "settling: no more faults or orders");
        let mut rounds = 0;
        loop {
            let execs = self.ledger.execs;
            let mut steps = 0;
            while !self.settled() {
                if steps == SETTLE_STEPS {
                    let states: Vec<String> = self
                        .clients
                        .iter()
                        .map(|c| {
                            format!(
                                "{}: link {:?}, next_in {}, queued {:?}, resend_wait {:?}, sync {:?}",
                                c.name,
                                c.link.as_ref().map(|l| (l.logged_on, l.dead, l.to_gw.len(), l.to_client.len())),
                                c.next_in,
                                c.queue.keys().collect::<Vec<_>>(),
                                c.resend_wait,
                                c.sync
                            )
                        })
                        .collect();
                    return Err(format!(
                        "did not settle within {SETTLE_STEPS} steps: {}",
                        states.join("; ")
                    ));
                }
                self.step()?;
                steps += 1;
            }
            if self.ledger.execs == execs || rounds == 5 {
                break;
            }
            // Executions happened while syncing: sync again.
            rounds += 1;
            for c in &mut self.clients {
                c.sync = None;
            }
        }
        // (e) Every client has exactly the executions the journal holds for it.
        for c in &self.clients {
            let empty = BTreeMap::new();
            let durable = self
                .ledger
                .sessions
                .get(&c.key)
                .map_or(&empty, |s| &s.execs);
            let missing: Vec<&String> = durable
                .keys()
                .filter(|id| !c.got_execs.contains_key(*id))
                .collect();
            let extra: Vec<&String> = c
                .got_execs
                .keys()
                .filter(|id| !durable.contains_key(*id))
                .collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Err(format!(
                    "{}: after settling, ExecIDs in the journal never received: {missing:?}; received but not in the journal: {extra:?}",
                    c.name
                ));
            }
        }
        let live = self.h.as_ref().expect("up").core().venue().expect("venue");
        if live.engine().snapshot() != self.ledger.venue.engine().snapshot() {
            return Err("at the end, the live venue differs from a replay of the journal".into());
        }
        // (c) The orders a client was told are working are the venue's.
        for c in self.clients.iter().filter(|c| c.trades) {
            let working = c
                .orders
                .iter()
                .filter(|o| matches!(o.status, b'0' | b'1'))
                .count();
            if live.live_order_count(c.name) != working {
                return Err(format!(
                    "{}: the venue has {} working orders, the client was told of {working}",
                    c.name,
                    live.live_order_count(c.name)
                ));
            }
        }
        // A clean stop: everyone logged out, exact sequence numbers kept.
        let now = self.cx.now;
        self.h.take().expect("up").shutdown(now);
        trace!(self.cx, "clean shutdown");
        self.ledger.update(&self.disk, &mut self.cx)?;
        for c in &mut self.clients {
            let Some(link) = c.link.as_mut() else {
                continue;
            };
            for m in link.conn.drain() {
                self.ledger.check_released(&c.key, &m, false)?;
                c.receive(m, &mut self.cx)?;
            }
        }
        self.cx.now += SEC;
        let mut h = self
            .world
            .open(&self.disk, self.cx.now, self.p.checkpoints)?;
        for c in &self.clients {
            let store = h.core().store(&c.key).ok_or("no store")?;
            // No reservation jump: the numbers the client has not seen yet
            // are messages stored after its Logout (cancel-on-disconnect).
            let stored = self.ledger.sessions.get(&c.key).map(|d| &d.stored);
            let unseen_stored = (c.next_in..store.next_sender_seq())
                .all(|s| stored.is_some_and(|d| d.contains_key(&s)));
            if store.next_sender_seq() < c.next_in
                || !unseen_stored
                || store.next_target_seq() > c.fix.next_out
            {
                return Err(format!(
                    "{}: after a clean stop the gateway continues at {} (expects {} from us); we expect {} (and send {})",
                    c.name,
                    store.next_sender_seq(),
                    store.next_target_seq(),
                    c.next_in,
                    c.fix.next_out
                ));
            }
        }
        h.step(self.cx.now);
        self.ledger.update(&self.disk, &mut self.cx)?;
        self.ledger.check_unchanged(&self.disk)?;
        let venue = h.core().venue().expect("venue");
        if venue.engine().snapshot() != self.ledger.venue.engine().snapshot() {
            return Err(
                "after a clean restart the venue differs from a replay of the journal".into(),
            );
        }
        Ok(())
    }
}

/// How a seed failed.
struct Failure {
    seed: u64,
    step: u64,
    now: i64,
    message: String,
}

/// Runs one seed; `Err` names the step.
fn run_seed(
    world: &World,
    seed: u64,
    steps: u64,
    mode: TraceMode,
) -> Result<(Stats, u64), Failure> {
    let mut at = (0, T0);
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<(Stats, u64), String> {
        let mut sim = Sim::new(world, seed, mode)?;
        let r = (|| {
            for _ in 0..steps {
                at = (sim.cx.step, sim.cx.now);
                sim.step()?;
            }
            at = (sim.cx.step, sim.cx.now);
            sim.finish()
        })();
        at = (sim.cx.step, sim.cx.now);
        r.map(|()| (sim.cx.stats, sim.cx.hash))
    }));
    let message = match result {
        Ok(Ok(r)) => return Ok(r),
        Ok(Err(m)) => m,
        Err(panic) => format!(
            "panic: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        ),
    };
    Err(Failure {
        seed,
        step: at.0,
        now: at.1,
        message,
    })
}

fn report(f: &Failure) -> String {
    format!(
        "simulation failed: FIXGW_SIM_SEED={} at step {} (t=+{:.3}s): {}\n\
         rerun exactly: FIXGW_SIM_SEED={} FIXGW_SIM_TRACE=1 cargo test --release --test simulation -- --nocapture",
        f.seed,
        f.step,
        (f.now - T0) as f64 / 1e9,
        f.message,
        f.seed
    )
}

#[test]
fn simulation() {
    let world = World::new();
    let steps = env_u64("FIXGW_SIM_STEPS").unwrap_or(300);
    if let Ok(seed) = std::env::var("FIXGW_SIM_SEED") {
        let seed: u64 = seed.parse().expect("FIXGW_SIM_SEED is a number");
        let mode = if std::env::var("FIXGW_SIM_TRACE").is_ok_and(|v| v != "0") {
            TraceMode::Print
        } else {
            TraceMode::Off
        };
        match run_seed(&world, seed, steps, mode) {
            Ok((s, _)) => eprintln!(
                "seed {seed}: ok ({} steps, {} crashes, {} disk windows, {} reports)",
                s.steps, s.crashes, s.disk_windows, s.reports
            ),
            Err(f) => panic!("{}", report(&f)),
        }
        return;
    }
    let first = env_u64("FIXGW_SIM_FIRST_SEED").unwrap_or(0);
    let count = env_u64("FIXGW_SIM_SEEDS").unwrap_or(10_000);
    let threads = env_u64("FIXGW_SIM_THREADS").unwrap_or(2).max(1);
    let next = AtomicU64::new(first);
    let stop = AtomicBool::new(false);
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let totals: Mutex<Stats> = Mutex::new(Stats::default());
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Stats::default();
                while !stop.load(Ordering::Relaxed) {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + count {
                        break;
                    }
                    match run_seed(&world, seed, steps, TraceMode::Off) {
                        Ok((st, _)) => mine.add(&st),
                        Err(f) => {
                            stop.store(true, Ordering::Relaxed);
                            failures.lock().unwrap().push(f);
                        }
                    }
                }
                totals.lock().unwrap().add(&mine);
            });
        }
    });
    let took = started.elapsed().as_secs_f64();
    let t = *totals.lock().unwrap();
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|f| f.seed);
    if let Some(f) = failures.first() {
        panic!("{}", report(f));
    }
    eprintln!(
        "simulation: {count} seeds ({first}..{}) x {steps} steps + settling, {threads} threads, {took:.1} s ({:.0} seeds/s); \
         {} steps, {} crashes, {} clean restarts, {} operator actions, {} disk-full windows ({} steps with the store down), {} client disconnects, \
         {} messages sent by clients, {} resent, {} gap fills, {} ExecutionReports processed, {} refusals",
        first + count,
        count as f64 / took,
        t.steps,
        t.crashes,
        t.clean_stops,
        t.operator,
        t.disk_windows,
        t.store_down_steps,
        t.disconnects,
        t.app_sent,
        t.resent,
        t.gap_fills,
        t.reports,
        t.refused
    );
}

/// A seed is a trace: running it twice gives the same events.
#[test]
fn same_seed_same_trace() {
    let world = World::new();
    for seed in 0..12 {
        let a = run_seed(&world, seed, 150, TraceMode::Hash).map_err(|f| report(&f));
        let b = run_seed(&world, seed, 150, TraceMode::Hash).map_err(|f| report(&f));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.1, b.1, "seed {seed}: two runs traced differently");
        assert_ne!(a.1, FNV0, "seed {seed}: nothing traced");
    }
}
