//! The sans-IO session state machine fed arbitrary sequences of operations:
//! messages built from a structured choice (Logon, Heartbeat, TestRequest,
//! ResendRequest, SequenceReset, Reject, Logout, application messages) with
//! fuzzed MsgSeqNum, PossDupFlag, CompIDs, SendingTime and fields, raw fuzz
//! bytes through `Message::parse`, clock advances, connects, disconnects and
//! application sends, under a fuzzed dictionary-validating configuration.
//!
//! After every operation it checks what the session promises (the same
//! invariants as the proptest in `src/session/tests.rs`, and a few more):
//!
//! 1. every outbound frame parses, starts with 8=FIX.4.4, has a correct
//!    BodyLength and CheckSum, and carries 34, 49=ISLD, 52 and 56=TW;
//! 2. outbound numbers are consumed one at a time (old == tracked next,
//!    new == old + 1), and the numbers of the fresh (non-PossDup) frames sent
//!    plus those stored without sending (`send_app` while offline) are
//!    exactly the numbers consumed, in ascending order;
//! 3. a PossDup frame is a SequenceReset-GapFill or an application message,
//!    never a fresh admin message; a resent application message carries 43=Y
//!    and 122, 122 equals the SendingTime it was stored with, and everything
//!    else equals the stored message; its number is below the next outbound one;
//! 4. a stored application message is byte-identical to the frame sent;
//! 5. the next expected inbound number never decreases except by a store reset;
//! 6. the application receives only validated messages with correct CompIDs,
//!    exactly the expected inbound number, no PossDup replay of an older one;
//! 7. nothing is sent or delivered while disconnected, nothing after a
//!    Disconnect action, and nothing once the connection is closed.
//!
//! Input layout: an arbitrary `Input` (configuration + operations).

#![no_main]

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

use fixgw::fix::dictionary::Dictionary;
use fixgw::fix::time::{format_utc_string, parse_utc, Precision, UtcNanos};
use fixgw::fix::validate::{validate, ValidationOptions};
use fixgw::fix::{Encoder, Message};
use fixgw::session::outbound::is_admin_msg_type;
use fixgw::session::schedule::Schedule;
use fixgw::session::{
    Action, Application, BusinessReject, MemoryStore, MessageStore, OutboundMessage, Session,
    SessionConfig, SessionId, StoreError,
};

const SEC: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;
/// 2024-01-02T09:00:00Z.
const T0: UtcNanos = 1_704_186_000 * SEC;

fn dictionary() -> Arc<Dictionary> {
    static DICT: OnceLock<Arc<Dictionary>> = OnceLock::new();
    DICT.get_or_init(|| Arc::new(Dictionary::fix44())).clone()
}

// ------------------------------------------------------------------ input

#[derive(Arbitrary, Debug)]
struct Input {
    cfg: Cfg,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
struct Cfg {
    persist: bool,
    redundant_resends: bool,
    reset_on_logon: bool,
    reset_on_logout: bool,
    reset_on_disconnect: bool,
    check_latency: bool,
    check_comp_id: bool,
    next_expected: bool,
    office_hours: bool,
    password: bool,
    micros: bool,
    out_of_order: bool,
    have_values: bool,
    user_defined: bool,
    allow_unknown: bool,
    app_mode: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Msg(Msg),
    /// Several messages fed before the output is collected.
    Burst(Vec<(Msg, bool)>),
    /// A message of type `msg_type` with a good header and a fuzzed body.
    Fields {
        msg_type: u8,
        seq: Seq,
        body: Vec<u8>,
    },
    /// Raw bytes parsed with `Message::parse`.
    Raw(Vec<u8>),
    /// Time passes by this many milliseconds, then a timer tick.
    Tick(u16),
    /// Time passes by this many minutes (session windows, LogonTimeout).
    BigTick(u8),
    Connect,
    /// Connect followed by a good Logon.
    ConnectLogon {
        reset: bool,
    },
    Disconnect,
    SendApp(u8),
    ForceLogout,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Seq {
    /// Expected + delta.
    Rel(i8),
    Abs(u64),
    Missing,
    Garbage,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Comp {
    Good,
    Wrong,
    Missing,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Time {
    Now,
    OffsetSecs(i16),
    Missing,
    Garbage,
}

#[derive(Arbitrary, Debug, Clone)]
struct Msg {
    kind: Kind,
    seq: Seq,
    poss_dup: Option<bool>,
    /// OrigSendingTime relative to now, seconds.
    orig: Option<i16>,
    time: Time,
    sender: Comp,
    target: Comp,
    wrong_begin: bool,
    /// Extra (tag, value) fields appended to the body.
    extra: Vec<(u16, u8)>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Logon {
        heart_bt_int: u8,
        reset: bool,
        password: Option<bool>,
        next_expected: Option<i8>,
        no_encrypt: bool,
    },
    Heartbeat {
        test_req_id: bool,
    },
    TestRequest {
        id: Option<u8>,
    },
    ResendRequest {
        begin: Seq,
        end: Seq,
    },
    SequenceReset {
        gap_fill: Option<bool>,
        new_seq: Seq,
    },
    Reject {
        ref_seq: u8,
    },
    Logout {
        text: bool,
    },
    App {
        which: u8,
        drop_field: u8,
    },
}

// ------------------------------------------------------------------ audit log

/// Everything the store and the application saw, in order.
#[derive(Debug, Clone)]
enum Ev {
    SetSender(u64, u64),
    SetTarget(u64, u64),
    Save(u64, Bytes),
    Reset,
    Delivered { seq: Option<u64>, ok: bool },
}

thread_local! {
    static LOG: RefCell<Vec<Ev>> = const { RefCell::new(Vec::new()) };
}

fn log(e: Ev) {
    LOG.with(|l| l.borrow_mut().push(e));
}

fn take_log() -> Vec<Ev> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

struct AuditStore(MemoryStore);

impl MessageStore for AuditStore {
    fn next_sender_seq(&self) -> u64 {
        self.0.next_sender_seq()
    }
    fn next_target_seq(&self) -> u64 {
        self.0.next_target_seq()
    }
    fn set_next_sender_seq(&mut self, seq: u64) {
        log(Ev::SetSender(self.0.next_sender_seq(), seq));
        self.0.set_next_sender_seq(seq);
    }
    fn set_next_target_seq(&mut self, seq: u64) {
        log(Ev::SetTarget(self.0.next_target_seq(), seq));
        self.0.set_next_target_seq(seq);
    }
    fn creation_time(&self) -> UtcNanos {
        self.0.creation_time()
    }
    fn save(&mut self, seq: u64, message: Bytes) {
        log(Ev::Save(seq, message.clone()));
        self.0.save(seq, message);
    }
    fn get_range(&self, begin: u64, end: u64) -> Result<Vec<(u64, Bytes)>, StoreError> {
        self.0.get_range(begin, end)
    }
    fn reset(&mut self, now: UtcNanos) {
        log(Ev::Reset);
        self.0.reset(now);
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.0.flush()
    }
}

/// Answers NewOrderSingle with an ExecutionReport (and optionally a second
/// message), rejects other types with a BusinessMessageReject; checks that
/// what it is given is valid.
struct App {
    cfg: Arc<SessionConfig>,
    mode: u8,
}

impl Application for App {
    fn from_app(
        &mut self,
        _session: &SessionId,
        msg: &Message,
        out: &mut Vec<OutboundMessage>,
    ) -> Result<(), BusinessReject> {
        let dict = self.cfg.dictionary.as_ref().expect("dictionary");
        let mut ok = validate(dict, msg, &self.cfg.validation).is_ok();
        if self.cfg.check_comp_id {
            ok &= msg.get(49) == Some(b"TW") && msg.get(56) == Some(b"ISLD");
        }
        ok &= msg.begin_string() == b"FIX.4.4";
        log(Ev::Delivered {
            seq: msg.seq_num(),
            ok,
        });
        if msg.msg_type() == b"D" && self.mode % 4 != 3 {
            let id = msg.get(11).unwrap_or(b"?").to_vec();
            for i in 0..=(self.mode % 3) {
                let mut body = format!("37=O{i}\x01").into_bytes();
                body.extend_from_slice(b"11=");
                body.extend_from_slice(&id);
                body.extend_from_slice(b"\x0117=E1\x01150=0\x0139=0\x0155=X\x0154=1\x01");
                out.push(OutboundMessage {
                    msg_type: Bytes::from_static(b"8"),
                    header: if self.mode & 8 != 0 {
                        vec![(128, Bytes::from_static(b"DESK"))]
                    } else {
                        Vec::new()
                    },
                    body: Bytes::from(body),
                });
            }
            Ok(())
        } else {
            Err(BusinessReject::unsupported_message_type())
        }
    }
}

// ------------------------------------------------------------------ encoding

fn ts(t: UtcNanos) -> String {
    format_utc_string(t, Precision::Millis)
}

fn seq_value(s: Seq, expected: u64) -> Option<Vec<u8>> {
    match s {
        Seq::Rel(d) => Some(
            expected
                .saturating_add_signed(i64::from(d))
                .to_string()
                .into_bytes(),
        ),
        Seq::Abs(v) => Some(v.to_string().into_bytes()),
        Seq::Missing => None,
        Seq::Garbage => Some(b"1x".to_vec()),
    }
}

fn comp(c: Comp, good: &'static [u8]) -> Option<&'static [u8]> {
    match c {
        Comp::Good => Some(good),
        Comp::Wrong => Some(b"EVIL"),
        Comp::Missing => None,
    }
}

fn header(e: &mut Encoder, msg_type: &[u8], seq: Option<&[u8]>, m: &Msg, now: UtcNanos) {
    e.start(msg_type);
    if let Some(s) = seq {
        e.field(34, s);
    }
    if let Some(p) = m.poss_dup {
        e.field(43, if p { b"Y" } else { b"N" });
    }
    if let Some(c) = comp(m.sender, b"TW") {
        e.field(49, c);
    }
    match m.time {
        Time::Now => {
            e.field(52, ts(now).as_bytes());
        }
        Time::OffsetSecs(o) => {
            e.field(52, ts(now + i64::from(o) * SEC).as_bytes());
        }
        Time::Missing => {}
        Time::Garbage => {
            e.field(52, b"20240102-25:00:00");
        }
    }
    if let Some(c) = comp(m.target, b"ISLD") {
        e.field(56, c);
    }
    if let Some(o) = m.orig {
        e.field(122, ts(now + i64::from(o) * SEC).as_bytes());
    }
}

fn encode(m: &Msg, expected: u64, sender_next: u64, now: UtcNanos) -> Bytes {
    let seq = seq_value(m.seq, expected);
    let mut e = Encoder::new();
    let msg_type: &[u8] = match m.kind {
        Kind::Logon { .. } => b"A",
        Kind::Heartbeat { .. } => b"0",
        Kind::TestRequest { .. } => b"1",
        Kind::ResendRequest { .. } => b"2",
        Kind::Reject { .. } => b"3",
        Kind::SequenceReset { .. } => b"4",
        Kind::Logout { .. } => b"5",
        Kind::App { which, .. } => [b"D".as_slice(), b"F", b"G", b"8", b"V"][which as usize % 5],
    };
    header(&mut e, msg_type, seq.as_deref(), m, now);
    match m.kind {
        Kind::Logon {
            heart_bt_int,
            reset,
            password,
            next_expected,
            no_encrypt,
        } => {
            if !no_encrypt {
                e.field(98, b"0");
            }
            e.field(108, (heart_bt_int % 40).to_string().as_bytes());
            if reset {
                e.field(141, b"Y");
            }
            if let Some(good) = password {
                e.field(554, if good { b"secret" } else { b"guess" });
            }
            if let Some(d) = next_expected {
                let v = sender_next.saturating_add_signed(i64::from(d));
                e.field(789, v.to_string().as_bytes());
            }
        }
        Kind::Heartbeat { test_req_id } => {
            if test_req_id {
                e.field(112, b"TEST");
            }
        }
        Kind::TestRequest { id } => {
            if let Some(id) = id {
                e.field(112, format!("T{id}").as_bytes());
            }
        }
        Kind::ResendRequest { begin, end } => {
            // Relative to our next outbound number (what the client asks for).
            if let Some(b) = seq_value(begin, sender_next) {
                e.field(7, &b);
            }
            match end {
                Seq::Rel(d) if d < -100 => {
                    e.field(16, b"0");
                }
                _ => {
                    if let Some(v) = seq_value(end, sender_next) {
                        e.field(16, &v);
                    }
                }
            }
        }
        Kind::SequenceReset { gap_fill, new_seq } => {
            if let Some(g) = gap_fill {
                e.field(123, if g { b"Y" } else { b"N" });
            }
            if let Some(v) = seq_value(new_seq, expected) {
                e.field(36, &v);
            }
        }
        Kind::Reject { ref_seq } => {
            e.field(45, ref_seq.to_string().as_bytes());
        }
        Kind::Logout { text } => {
            if text {
                e.field(58, b"bye");
            }
        }
        Kind::App { which, drop_field } => {
            let t = ts(now);
            let fields: &[(i32, &[u8])] = match which % 5 {
                0 => &[
                    (11, b"C1"),
                    (55, b"X"),
                    (54, b"1"),
                    (60, t.as_bytes()),
                    (38, b"100"),
                    (40, b"2"),
                    (44, b"10.5"),
                ],
                1 => &[
                    (41, b"C1"),
                    (11, b"C2"),
                    (55, b"X"),
                    (54, b"1"),
                    (60, t.as_bytes()),
                ],
                2 => &[
                    (41, b"C1"),
                    (11, b"C3"),
                    (55, b"X"),
                    (54, b"1"),
                    (60, t.as_bytes()),
                    (40, b"2"),
                ],
                3 => &[(37, b"O"), (17, b"E"), (150, b"0"), (39, b"0")],
                _ => &[(262, b"R"), (263, b"0"), (264, b"0")],
            };
            let skip = drop_field as usize;
            for (i, (tag, v)) in fields.iter().enumerate() {
                if i + 1 != skip {
                    e.field(*tag, v);
                }
            }
        }
    }
    for (tag, v) in &m.extra {
        e.field(i32::from(*tag), v.to_string().as_bytes());
    }
    let begin: &[u8] = if m.wrong_begin {
        b"FIX.4.2"
    } else {
        b"FIX.4.4"
    };
    Bytes::copy_from_slice(e.finish(begin))
}

// ------------------------------------------------------------------ checks

/// Checks framing; returns the parsed message.
fn check_frame(raw: &Bytes) -> Message {
    assert!(raw.starts_with(b"8=FIX.4.4\x019="), "bad start: {raw:?}");
    let body_start = raw
        .windows(4)
        .position(|w| w == b"\x0135=")
        .expect("35 present")
        + 1;
    let trailer = raw
        .windows(4)
        .rposition(|w| w == b"\x0110=")
        .expect("10 present")
        + 1;
    let declared: usize = std::str::from_utf8(&raw[12..body_start - 1])
        .unwrap()
        .parse()
        .expect("numeric 9");
    assert_eq!(declared, trailer - body_start, "BodyLength of {raw:?}");
    let sum = raw[..trailer].iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
    assert_eq!(
        &raw[trailer..],
        format!("10={sum:03}\x01").as_bytes(),
        "CheckSum of {raw:?}"
    );
    let m = Message::parse(raw.clone()).expect("outbound frame parses");
    assert!(m.seq_num().is_some(), "34 missing: {m:?}");
    assert_eq!(m.get(49), Some(b"ISLD".as_slice()), "49 of {m:?}");
    assert_eq!(m.get(56), Some(b"TW".as_slice()), "56 of {m:?}");
    assert!(m.get(52).and_then(parse_utc).is_some(), "52 of {m:?}");
    m
}

/// Fields other than 9, 10, 43, 52, 122.
fn comparable(m: &Message) -> Vec<(i32, Vec<u8>)> {
    m.iter()
        .filter(|(t, _)| ![9, 10, 43, 52, 122].contains(t))
        .map(|(t, v)| (t, v.to_vec()))
        .collect()
}

struct Sim {
    session: Session,
    store: AuditStore,
    app: App,
    now: UtcNanos,
    connected: bool,
    persist: bool,
    stored_silently: Vec<u64>,
}

impl Sim {
    fn feed_bytes(&mut self, bytes: Bytes) {
        if let Ok(msg) = Message::parse(bytes) {
            self.session
                .on_message(msg, self.now, &mut self.store, &mut self.app);
        }
    }

    fn feed(&mut self, m: &Msg) {
        let bytes = encode(
            m,
            self.store.next_target_seq(),
            self.store.next_sender_seq(),
            self.now,
        );
        self.feed_bytes(bytes);
    }

    fn send_app(&mut self, n: u8) {
        if !self.session.is_logged_on() || self.session.disconnect_pending() {
            self.stored_silently.push(self.store.next_sender_seq());
        }
        let msg = OutboundMessage {
            msg_type: Bytes::from_static(b"8"),
            header: if n & 1 != 0 {
                vec![(115, Bytes::from_static(b"ONBEHALF"))]
            } else {
                Vec::new()
            },
            body: Bytes::from(format!(
                "37=S{n}\x0111=X\x0117=E{n}\x01150=0\x0139=0\x0155=X\x0154=2\x01"
            )),
        };
        self.session.send_app(&msg, self.now, &mut self.store);
    }

    fn good_logon(&self, reset: bool) -> Msg {
        Msg {
            kind: Kind::Logon {
                heart_bt_int: 30,
                reset,
                password: Some(true),
                next_expected: None,
                no_encrypt: false,
            },
            seq: if reset { Seq::Abs(1) } else { Seq::Rel(0) },
            poss_dup: None,
            orig: None,
            time: Time::Now,
            sender: Comp::Good,
            target: Comp::Good,
            wrong_begin: false,
            extra: Vec::new(),
        }
    }

    fn step(&mut self, op: &Op) {
        let was_connected = self.connected;
        let before_sender = self.store.next_sender_seq();
        let before_target = self.store.next_target_seq();
        // Stored messages before the step, to check resends against.
        let stored_before = self.store.get_range(1, u64::MAX).unwrap();
        take_log();
        self.stored_silently.clear();
        match op {
            Op::Msg(m) => self.feed(m),
            Op::Burst(ms) => {
                for (m, app) in ms.iter().take(8) {
                    self.feed(m);
                    if *app {
                        self.send_app(0);
                    }
                }
            }
            Op::Fields {
                msg_type,
                seq,
                body,
            } => {
                let mt: &[u8] = match msg_type % 10 {
                    0 => b"A",
                    1 => b"0",
                    2 => b"1",
                    3 => b"2",
                    4 => b"3",
                    5 => b"4",
                    6 => b"5",
                    7 => b"D",
                    8 => b"j",
                    _ => b"8",
                };
                let mut e = Encoder::new();
                e.start(mt);
                if let Some(s) = seq_value(*seq, self.store.next_target_seq()) {
                    e.field(34, &s);
                }
                e.field(49, b"TW");
                e.field(52, ts(self.now).as_bytes());
                e.field(56, b"ISLD");
                e.raw(body);
                let bytes = Bytes::copy_from_slice(e.finish(b"FIX.4.4"));
                self.feed_bytes(bytes);
            }
            Op::Raw(bytes) => self.feed_bytes(Bytes::copy_from_slice(bytes)),
            Op::Tick(ms) => {
                self.now += i64::from(*ms) * MS;
                self.session.on_timer(self.now, &mut self.store);
            }
            Op::BigTick(min) => {
                self.now += i64::from(*min) * 60 * SEC;
                self.session.on_timer(self.now, &mut self.store);
            }
            Op::Connect | Op::ConnectLogon { .. } => {
                if !self.connected {
                    self.session.on_connect(self.now);
                    self.connected = true;
                    if let Op::ConnectLogon { reset } = op {
                        let m = self.good_logon(*reset);
                        self.feed(&m);
                    }
                }
            }
            Op::Disconnect => {
                self.session
                    .on_disconnect(self.now, &mut self.store, &mut self.app);
                self.connected = false;
            }
            Op::SendApp(n) => self.send_app(*n),
            Op::ForceLogout => self
                .session
                .force_logout("operator", self.now, &mut self.store),
        }
        let mut actions = Vec::new();
        while let Some(a) = self.session.poll_action() {
            actions.push(a);
        }
        let events = take_log();
        if !was_connected && !matches!(op, Op::Connect | Op::ConnectLogon { .. }) {
            assert!(actions.is_empty(), "output while disconnected: {actions:?}");
            assert!(
                !events.iter().any(|e| matches!(e, Ev::Delivered { .. })),
                "delivered while disconnected"
            );
        }
        // Store and application events, in order.
        let mut next_sender = before_sender;
        let mut next_target = before_target;
        let mut consumed = Vec::new();
        let mut reset = false;
        let mut saved = std::collections::BTreeMap::new();
        for e in &events {
            match e {
                Ev::Reset => {
                    next_sender = 1;
                    next_target = 1;
                    reset = true;
                }
                Ev::SetSender(old, new) => {
                    assert_eq!(*old, next_sender, "sender number changed behind our back");
                    assert_eq!(*new, old + 1, "sender number skipped: {old} -> {new}");
                    consumed.push(*old);
                    next_sender = *new;
                }
                Ev::SetTarget(old, new) => {
                    assert_eq!(*old, next_target, "target number changed behind our back");
                    assert!(
                        new >= old,
                        "next expected inbound number went back {old} -> {new}"
                    );
                    next_target = *new;
                }
                Ev::Save(seq, bytes) => {
                    assert_eq!(*seq, next_sender, "saved under a number not being consumed");
                    saved.insert(*seq, bytes.clone());
                }
                Ev::Delivered { seq, ok } => {
                    assert!(ok, "application got an invalid message");
                    assert_eq!(
                        *seq,
                        Some(next_target),
                        "application got a message out of sequence"
                    );
                }
            }
        }
        assert_eq!(self.store.next_sender_seq(), next_sender);
        assert_eq!(self.store.next_target_seq(), next_target);
        let mut fresh = Vec::new();
        let mut disconnected = false;
        for a in &actions {
            match a {
                Action::Disconnect => disconnected = true,
                Action::Send(bytes) => {
                    assert!(!disconnected, "sent after Disconnect: {actions:?}");
                    let m = check_frame(bytes);
                    let seq = m.seq_num().unwrap();
                    let mt = m.msg_type().to_vec();
                    let admin = is_admin_msg_type(&mt);
                    if m.get_flag(43) {
                        let gap_fill = mt == b"4" && m.get_flag(123);
                        assert!(gap_fill || !admin, "resent admin message {m:?}");
                        if !admin {
                            let orig = m.get(122).expect("resend without OrigSendingTime");
                            if !reset {
                                let stored = saved
                                    .get(&seq)
                                    .cloned()
                                    .or_else(|| {
                                        stored_before
                                            .iter()
                                            .find(|(s, _)| *s == seq)
                                            .map(|(_, b)| b.clone())
                                    })
                                    .expect("resent a message that is not stored");
                                let stored = Message::parse(stored).unwrap();
                                assert_eq!(
                                    Some(orig),
                                    stored.get(52),
                                    "122 of {m:?} vs {stored:?}"
                                );
                                assert_eq!(
                                    comparable(&m),
                                    comparable(&stored),
                                    "resend of {stored:?}: {m:?}"
                                );
                            }
                        }
                        if self.persist && !reset {
                            assert!(seq < next_sender, "resend {m:?} beyond next {next_sender}");
                        }
                    } else {
                        assert!(!m.has(122) || !admin, "fresh admin message with 122: {m:?}");
                        if self.persist && !admin && !reset {
                            assert_eq!(saved.get(&seq), Some(bytes), "sent != stored for {m:?}");
                        }
                        fresh.push(seq);
                    }
                }
            }
        }
        if !reset {
            assert!(
                fresh.windows(2).all(|w| w[0] < w[1]),
                "fresh numbers not ascending: {fresh:?}"
            );
        }
        fresh.extend_from_slice(&self.stored_silently);
        fresh.sort_unstable();
        consumed.sort_unstable();
        assert_eq!(fresh, consumed, "fresh messages vs numbers consumed");
        if disconnected {
            self.session
                .on_disconnect(self.now, &mut self.store, &mut self.app);
            self.connected = false;
            assert!(self.session.poll_action().is_none(), "output after close");
        }
    }
}

fuzz_target!(|input: Input| {
    let c = &input.cfg;
    let mut cfg = SessionConfig::new("FIX.4.4", "ISLD", "TW");
    cfg.persist_messages = c.persist;
    cfg.send_redundant_resend_requests = c.redundant_resends;
    cfg.reset_on_logon = c.reset_on_logon;
    cfg.reset_on_logout = c.reset_on_logout;
    cfg.reset_on_disconnect = c.reset_on_disconnect;
    cfg.check_latency = c.check_latency;
    cfg.check_comp_id = c.check_comp_id;
    cfg.send_next_expected_msg_seq_num = c.next_expected;
    if c.office_hours {
        cfg.schedule = Schedule {
            start_secs: 8 * 3600,
            end_secs: 17 * 3600,
            utc_offset_secs: 0,
        };
    }
    if c.password {
        cfg.password = Some("secret".to_string());
    }
    if c.micros {
        cfg.timestamp_precision = Precision::Micros;
    }
    cfg.validation = ValidationOptions {
        check_fields_out_of_order: c.out_of_order,
        check_fields_have_values: c.have_values,
        check_user_defined_fields: c.user_defined,
        allow_unknown_msg_fields: c.allow_unknown,
    };
    cfg.use_data_dictionary = true;
    cfg.dictionary = Some(dictionary());
    let cfg = Arc::new(cfg);
    let mut sim = Sim {
        session: Session::new(cfg.clone()),
        store: AuditStore(MemoryStore::new(T0)),
        app: App {
            cfg,
            mode: c.app_mode,
        },
        now: T0,
        connected: false,
        persist: c.persist,
        stored_silently: Vec::new(),
    };
    for op in input.ops.iter().take(256) {
        sim.step(op);
    }
});
