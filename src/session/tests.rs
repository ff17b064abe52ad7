//! Unit tests of the session state machine: one test per session rule, each
//! driven through `on_connect` / `on_message` / `on_timer` / `on_disconnect`
//! with a fake client and a fake clock (an `i64` of nanoseconds), asserting
//! what the counterparty would see. No sockets, no sleeps.

use std::sync::Arc;

use bytes::Bytes;

use crate::fix::time::{format_utc_string, Precision, UtcNanos};
use crate::fix::{Encoder, Message};

use super::application::{Application, BusinessReject, OutboundMessage, RejectAll};
use super::config::{SessionConfig, SessionId};
use super::schedule::Schedule;
use super::state::{Action, Session, Status, SEC};
use super::store::{MemoryStore, MessageStore, StoreError};

/// 2024-01-02T09:00:00Z: the fake clock's origin.
const T0: UtcNanos = 1_704_186_000 * SEC;
/// Milliseconds in nanoseconds.
const MS: i64 = 1_000_000;
/// What the harness records when the session asks to close the connection.
const DISCONNECT: &str = "DISCONNECT";
/// A field value meaning "leave this standard header field out".
const OMIT: &str = "<omit>";
/// Our Logon reply to the standard client Logon.
const LOGON_REPLY: &str = "35=A|34=1|49=ISLD|52=*|56=TW|98=0|108=30";

// ---------------------------------------------------------------------------
// Fake client, driver and assertions
// ---------------------------------------------------------------------------

/// The acceptor-side session ISLD ↔ TW with QuickFIX defaults and no dictionary.
fn cfg() -> SessionConfig {
    SessionConfig::new("FIX.4.4", "ISLD", "TW")
}

/// A UTCTimestamp with milliseconds, as the client writes it.
fn ts(t: UtcNanos) -> String {
    format_utc_string(t, Precision::Millis)
}

/// Encodes a client message: 8, 9, 35, then 34, 49, 52, 56 (the client's
/// values unless `fields` overrides them; `OMIT` drops one), then the other
/// `fields` in the order given, then 10. Tag 8 in `fields` sets BeginString.
fn client_msg(msg_type: &str, seq: u64, at: UtcNanos, fields: &[(i32, &str)]) -> Bytes {
    let seq = seq.to_string();
    let time = ts(at);
    let lookup = |tag: i32| fields.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
    let mut e = Encoder::new();
    e.start(msg_type.as_bytes());
    for (tag, default) in [
        (34, seq.as_str()),
        (49, "TW"),
        (52, time.as_str()),
        (56, "ISLD"),
    ] {
        let v = lookup(tag).unwrap_or(default);
        if v != OMIT {
            e.field(tag, v.as_bytes());
        }
    }
    for (tag, v) in fields {
        if ![8, 34, 49, 52, 56].contains(tag) {
            e.field(*tag, v.as_bytes());
        }
    }
    let begin = lookup(8).unwrap_or("FIX.4.4");
    Bytes::copy_from_slice(e.finish(begin.as_bytes()))
}

/// Checks BeginString, BodyLength and CheckSum of an outbound frame and
/// returns it with `|` for SOH.
fn check_frame(raw: &[u8]) -> String {
    let s = String::from_utf8(raw.to_vec()).expect("outbound message is ASCII");
    assert!(s.starts_with("8=FIX.4.4\x019="), "bad start: {s:?}");
    let body_start = s.find("\x0135=").expect("35 present") + 1;
    let trailer = s.rfind("\x0110=").expect("10 present") + 1;
    let declared: usize = s[12..body_start - 1].parse().expect("numeric 9");
    assert_eq!(declared, trailer - body_start, "BodyLength of {s:?}");
    let sum = raw[..trailer].iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
    assert_eq!(
        s[trailer..],
        format!("10={sum:03}\x01"),
        "CheckSum of {s:?}"
    );
    Message::parse(Bytes::copy_from_slice(raw)).expect("outbound message parses");
    s.replace('\x01', "|")
}

/// A sent message without 8, 9 and 10, with the values of 52 and 122
/// replaced by `*` (they depend on the clock).
fn norm(msg: &str) -> String {
    if msg == DISCONNECT {
        return msg.to_string();
    }
    msg.split('|')
        .filter(|f| !f.is_empty())
        .filter(|f| !(f.starts_with("8=") || f.starts_with("9=") || f.starts_with("10=")))
        .map(|f| {
            if f.starts_with("52=") {
                "52=*"
            } else if f.starts_with("122=") {
                "122=*"
            } else {
                f
            }
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Asserts exactly these (normalised) messages and disconnects, in order.
#[track_caller]
fn assert_out(got: &[String], expected: &[&str]) {
    let got: Vec<String> = got.iter().map(|m| norm(m)).collect();
    assert_eq!(got, expected, "session output");
}

/// The value of `tag` in a sent message.
fn field(msg: &str, tag: i32) -> Option<&str> {
    let key = format!("|{tag}=");
    let start = msg.find(&key)? + key.len();
    Some(&msg[start..start + msg[start..].find('|')?])
}

/// Asserts that `msg` carries each of the `tag=value` fields.
#[track_caller]
fn assert_sent(msg: &str, fields: &[&str]) {
    for f in fields {
        assert!(msg.contains(&format!("|{f}|")), "{msg} lacks {f}");
    }
}

/// Asserts that `msg` has no field `tag`.
#[track_caller]
fn assert_lacks(msg: &str, tag: i32) {
    assert_eq!(field(msg, tag), None, "{msg} carries {tag}");
}

/// An application that accepts every message and records what it saw.
#[derive(Debug, Default)]
struct Recorder {
    logons: u32,
    logouts: u32,
    /// (MsgType, MsgSeqNum) of every application message delivered.
    received: Vec<(String, u64)>,
}

impl Application for Recorder {
    fn on_logon(&mut self, _session: &SessionId) {
        self.logons += 1;
    }
    fn on_logout(&mut self, _session: &SessionId) {
        self.logouts += 1;
    }
    fn from_app(
        &mut self,
        _session: &SessionId,
        msg: &Message,
        _out: &mut Vec<OutboundMessage>,
    ) -> Result<(), BusinessReject> {
        let mt = String::from_utf8_lossy(msg.msg_type()).into_owned();
        self.received.push((mt, msg.seq_num().unwrap_or(0)));
        Ok(())
    }
}

/// An outbound NewOrderSingle-like application message.
fn order(id: &str) -> OutboundMessage {
    OutboundMessage {
        msg_type: Bytes::from_static(b"D"),
        header: Vec::new(),
        body: Bytes::from(format!("11={id}\x0154=1\x0155=MSFT\x01")),
    }
}

/// (next sender, next target, creation time, stored messages) of a store.
type StoreSnapshot = (u64, u64, UtcNanos, Vec<(u64, Bytes)>);

fn snapshot(store: &MemoryStore) -> StoreSnapshot {
    (
        store.next_sender_seq(),
        store.next_target_seq(),
        store.creation_time(),
        store.get_range(1, u64::MAX).expect("memory store"),
    )
}

/// A store with history: numbers 5 / 7, one stored message, created an hour ago.
fn used_store() -> MemoryStore {
    let mut store = MemoryStore::new(T0 - 3600 * SEC);
    store.set_next_sender_seq(5);
    store.set_next_target_seq(7);
    store.save(3, client_msg("D", 3, T0 - 60 * SEC, &[(11, "OLD")]));
    store
}

/// One session, its store and application, a fake clock, and everything the
/// session has sent so far.
struct Harness<A: Application = Recorder> {
    session: Session,
    store: MemoryStore,
    app: A,
    now: UtcNanos,
}

impl Harness<Recorder> {
    fn new(cfg: SessionConfig) -> Harness<Recorder> {
        Harness::with_app(cfg, Recorder::default())
    }
}

impl<A: Application> Harness<A> {
    fn with_app(cfg: SessionConfig, app: A) -> Harness<A> {
        Harness {
            session: Session::new(Arc::new(cfg)),
            store: MemoryStore::new(T0),
            app,
            now: T0,
        }
    }

    /// Everything the session asked for since the last call, in order.
    fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Send(bytes) => out.push(check_frame(&bytes)),
                Action::Disconnect => out.push(DISCONNECT.to_string()),
            }
        }
        out
    }

    fn connect(&mut self) -> Vec<String> {
        self.session.on_connect(self.now);
        self.drain()
    }

    /// The client sends a message stamped with the current time.
    fn recv(&mut self, msg_type: &str, seq: u64, fields: &[(i32, &str)]) -> Vec<String> {
        let bytes = client_msg(msg_type, seq, self.now, fields);
        self.recv_raw(bytes)
    }

    fn recv_raw(&mut self, bytes: Bytes) -> Vec<String> {
        let msg = Message::parse(bytes).expect("client message parses");
        self.session
            .on_message(msg, self.now, &mut self.store, &mut self.app);
        self.drain()
    }

    /// A timer tick at `at` (which becomes the current time).
    fn tick(&mut self, at: UtcNanos) -> Vec<String> {
        self.now = at;
        self.session.on_timer(at, &mut self.store);
        self.drain()
    }

    /// The connection is gone.
    fn drop_connection(&mut self) -> Vec<String> {
        self.session
            .on_disconnect(self.now, &mut self.store, &mut self.app);
        self.drain()
    }

    fn send_app(&mut self, msg: &OutboundMessage) -> Vec<String> {
        self.session.send_app(msg, self.now, &mut self.store);
        self.drain()
    }

    /// Connects and logs on with the standard client Logon (34=1, 108=30).
    fn logon(&mut self) {
        assert_out(&self.connect(), &[]);
        let out = self.recv("A", 1, &[(98, "0"), (108, "30")]);
        assert_out(&out, &[LOGON_REPLY]);
    }

    /// The client sends in-sequence Heartbeats numbered `seqs`, which must be
    /// consumed silently.
    fn heartbeats(&mut self, seqs: std::ops::RangeInclusive<u64>) {
        for seq in seqs {
            assert_out(&self.recv("0", seq, &[]), &[]);
        }
    }

    /// (next sender, next target) in the store.
    fn seqs(&self) -> (u64, u64) {
        (self.store.next_sender_seq(), self.store.next_target_seq())
    }
}

// ---------------------------------------------------------------------------
// Logon
// ---------------------------------------------------------------------------

#[test]
fn logon_reply_has_encrypt_method_and_adopted_heart_bt_int() {
    let mut h = Harness::new(cfg());
    assert_out(&h.connect(), &[]);
    let out = h.recv("A", 1, &[(98, "0"), (108, "45")]);
    assert_out(&out, &["35=A|34=1|49=ISLD|52=*|56=TW|98=0|108=45"]);
    assert!(h.session.is_logged_on());
    assert_eq!(h.session.heart_bt_int, 45 * SEC);
    assert_eq!(h.seqs(), (2, 2));
    assert_eq!(h.app.logons, 1);
}

#[test]
fn logon_reply_carries_reset_flag_only_when_received() {
    // ResetOnLogon resets the store but the reply has no 141 unless asked.
    let mut c = cfg();
    c.reset_on_logon = true;
    let mut h = Harness::new(c);
    h.store = used_store();
    h.connect();
    assert_out(&h.recv("A", 1, &[(98, "0"), (108, "30")]), &[LOGON_REPLY]);
    assert_eq!(h.seqs(), (2, 2));

    let mut h = Harness::new(cfg());
    h.store = used_store();
    h.connect();
    let out = h.recv("A", 1, &[(98, "0"), (108, "30"), (141, "Y")]);
    assert_out(&out, &["35=A|34=1|49=ISLD|52=*|56=TW|98=0|108=30|141=Y"]);
    assert_eq!(h.seqs(), (2, 2));
    assert!(h.store.get_range(1, 100).unwrap().is_empty());
}

#[test]
fn logon_reply_carries_next_expected_msg_seq_num_when_configured() {
    let mut c = cfg();
    c.send_next_expected_msg_seq_num = true;
    let mut h = Harness::new(c);
    h.connect();
    let out = h.recv("A", 1, &[(98, "0"), (108, "30")]);
    assert_out(&out, &["35=A|34=1|49=ISLD|52=*|56=TW|98=0|108=30|789=2"]);
}

#[test]
fn logon_with_too_high_seq_num_is_answered_then_resend_requested() {
    // 1a_ValidLogonMsgSeqNumTooHigh.
    let mut h = Harness::new(cfg());
    h.connect();
    let out = h.recv("A", 5, &[(98, "0"), (108, "30")]);
    assert_out(
        &out,
        &[LOGON_REPLY, "35=2|34=2|49=ISLD|52=*|56=TW|7=1|16=0"],
    );
    assert_eq!(h.seqs(), (3, 1));
    // The Logout is processed although the gap is still open.
    let out = h.recv("5", 6, &[]);
    assert_out(&out, &["35=5|34=3|49=ISLD|52=*|56=TW", DISCONNECT]);
}

#[test]
fn logon_with_too_low_seq_num_logs_out_without_logging_on() {
    let mut h = Harness::new(cfg());
    h.store = used_store();
    h.connect();
    let out = h.recv("A", 3, &[(98, "0"), (108, "30")]);
    assert_out(
        &out,
        &[
            "35=5|34=5|49=ISLD|52=*|56=TW|58=MsgSeqNum too low, expecting 7 but received 3",
            DISCONNECT,
        ],
    );
    assert_eq!(h.seqs(), (6, 7));
    assert_out(&h.drop_connection(), &[]);
    // The application never saw a logon, so it must not see a logout.
    assert_eq!((h.app.logons, h.app.logouts), (0, 0));
}

#[test]
fn first_message_not_a_logon_disconnects_with_nothing_sent() {
    let mut h = Harness::new(cfg());
    h.store = used_store();
    let before = snapshot(&h.store);
    h.connect();
    let out = h.recv("0", 1, &[(56, "DLSI")]);
    assert_out(&out, &[DISCONNECT]);
    assert!(!h.session.is_logged_on());
    assert_eq!(snapshot(&h.store), before);
}

#[test]
fn refused_logon_sends_nothing_and_leaves_store_untouched() {
    let old_time = ts(T0 - 200 * SEC);
    let bad: [(&str, Vec<(i32, &str)>); 9] = [
        ("old SendingTime", vec![(52, "20010101-00:00:00")]),
        ("no MsgSeqNum", vec![(34, OMIT)]),
        ("no MsgSeqNum, 141=Y", vec![(34, OMIT), (141, "Y")]),
        ("no SenderCompID", vec![(49, OMIT)]),
        ("SendingTime out of range", vec![(52, old_time.as_str())]),
        ("no SendingTime", vec![(52, OMIT)]),
        ("unknown SenderCompID", vec![(49, "WT")]),
        ("wrong TargetCompID", vec![(56, "DLSI")]),
        ("wrong BeginString", vec![(8, "FIX.3.9")]),
    ];
    for reset_on_logon in [false, true] {
        for (why, extra) in &bad {
            let mut c = cfg();
            c.reset_on_logon = reset_on_logon;
            let mut h = Harness::new(c);
            h.store = used_store();
            let before = snapshot(&h.store);
            h.connect();
            let mut fields = vec![(98, "0"), (108, "30")];
            fields.extend_from_slice(extra);
            let out = h.recv("A", 7, &fields);
            assert_eq!(out, [DISCONNECT], "{why}, ResetOnLogon={reset_on_logon}");
            assert!(!h.session.is_logged_on(), "{why}");
            assert_out(&h.drop_connection(), &[]);
            assert_eq!(snapshot(&h.store), before, "{why}: store touched");
            assert_eq!((h.app.logons, h.app.logouts), (0, 0), "{why}");
        }
    }
}

#[test]
fn logon_requires_configured_username_and_password() {
    let mut c = cfg();
    c.username = Some("alice".to_string());
    c.password = Some("secret".to_string());
    c.reset_on_logon = true;
    let refused: [&[(i32, &str)]; 4] = [
        &[],
        &[(553, "alice")],
        &[(553, "alice"), (554, "wrong")],
        &[(553, "bob"), (554, "secret")],
    ];
    for creds in refused {
        let mut h = Harness::new(c.clone());
        h.store = used_store();
        let before = snapshot(&h.store);
        h.connect();
        // ResetSeqNumFlag=Y too: an unauthenticated Logon must not reset anything.
        let mut fields = vec![(98, "0"), (108, "30"), (141, "Y")];
        fields.extend_from_slice(creds);
        assert_eq!(h.recv("A", 1, &fields), [DISCONNECT], "{creds:?}");
        assert_eq!(snapshot(&h.store), before, "{creds:?}");
    }
    let mut h = Harness::new(c);
    h.connect();
    let out = h.recv(
        "A",
        1,
        &[(98, "0"), (108, "30"), (553, "alice"), (554, "secret")],
    );
    assert_out(&out, &[LOGON_REPLY]);
}

#[test]
fn logon_timeout_disconnects_a_connection_that_never_logs_on() {
    let mut h = Harness::new(cfg());
    h.connect();
    assert_out(&h.tick(T0 + 9_999 * MS), &[]);
    assert_out(&h.tick(T0 + 10 * SEC), &[DISCONNECT]);
    assert_eq!(h.seqs(), (1, 1));
}

// ---------------------------------------------------------------------------
// Heartbeat and TestRequest
// ---------------------------------------------------------------------------

#[test]
fn heartbeat_after_heart_bt_int_of_outbound_silence() {
    let mut h = Harness::new(cfg());
    h.logon();
    assert_out(&h.tick(T0 + 29_900 * MS), &[]);
    assert_out(&h.tick(T0 + 30 * SEC), &["35=0|34=2|49=ISLD|52=*|56=TW"]);
    h.now = T0 + 31 * SEC;
    h.heartbeats(2..=2);
    // Counted from what we last sent, not from what we received.
    assert_out(&h.tick(T0 + 59_900 * MS), &[]);
    assert_out(&h.tick(T0 + 60 * SEC), &["35=0|34=3|49=ISLD|52=*|56=TW"]);
}

#[test]
fn resends_and_gap_fills_count_as_outbound_traffic() {
    let mut h = Harness::new(cfg());
    h.logon();
    h.send_app(&order("A"));
    h.now = T0 + 20 * SEC;
    assert_eq!(h.recv("2", 2, &[(7, "1"), (16, "0")]).len(), 2);
    assert_out(&h.tick(T0 + 30 * SEC), &[]);
    assert_out(&h.tick(T0 + 49_900 * MS), &[]);
    assert_out(&h.tick(T0 + 50 * SEC), &["35=0|34=3|49=ISLD|52=*|56=TW"]);
}

#[test]
fn test_request_after_silence_then_disconnect_at_2_4_heart_bt_int() {
    let mut h = Harness::new(cfg());
    h.logon();
    assert_out(&h.tick(T0 + 30 * SEC), &["35=0|34=2|49=ISLD|52=*|56=TW"]);
    assert_out(&h.tick(T0 + 35_900 * MS), &[]);
    let tr = "35=1|34=3|49=ISLD|52=*|56=TW|112=TEST";
    assert_out(&h.tick(T0 + 36 * SEC), &[tr]);
    // HeartBtInt of outbound silence, but a TestRequest is outstanding.
    assert_out(&h.tick(T0 + 66 * SEC), &[]);
    assert_out(&h.tick(T0 + 71_900 * MS), &[]);
    assert_out(&h.tick(T0 + 72 * SEC), &[DISCONNECT]);
    assert_eq!(h.seqs(), (4, 2));
}

#[test]
fn send_test_request_scenario_outbound_order() {
    // 6_SendTestRequest with the acceptor's 100 ms tick: HB, HB, TR, HB, HB,
    // TR, then nothing but the disconnect, within 10 s of the second TR.
    let mut h = Harness::new(cfg());
    h.connect();
    assert_out(
        &h.recv("A", 1, &[(98, "0"), (108, "6")]),
        &["35=A|34=1|49=ISLD|52=*|56=TW|98=0|108=6"],
    );
    let mut client_seq = 2;
    let mut seen: Vec<(String, UtcNanos)> = Vec::new();
    for k in 1..=600 {
        let at = T0 + k * 100 * MS;
        let out = h.tick(at);
        for m in &out {
            seen.push((norm(m), at));
            // The client answers our HB 2 and 5 and the first TR (our 4).
            let reply: Option<&[(i32, &str)]> = match field(m, 34) {
                Some("2") | Some("5") => Some(&[]),
                Some("4") => Some(&[(112, "TEST")]),
                _ => None,
            };
            if let Some(fields) = reply {
                assert_out(&h.recv("0", client_seq, fields), &[]);
                client_seq += 1;
            }
        }
        if out.iter().any(|m| m == DISCONNECT) {
            break;
        }
    }
    let kinds: Vec<&str> = seen.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "35=0|34=2|49=ISLD|52=*|56=TW",
            "35=0|34=3|49=ISLD|52=*|56=TW",
            "35=1|34=4|49=ISLD|52=*|56=TW|112=TEST",
            "35=0|34=5|49=ISLD|52=*|56=TW",
            "35=0|34=6|49=ISLD|52=*|56=TW",
            "35=1|34=7|49=ISLD|52=*|56=TW|112=TEST",
            DISCONNECT,
        ]
    );
    assert!(seen[6].1 - seen[5].1 <= 10 * SEC);
}

#[test]
fn test_request_is_answered_with_heartbeat_echoing_test_req_id() {
    let mut h = Harness::new(cfg());
    h.logon();
    let out = h.recv("1", 2, &[(112, "HELLO")]);
    assert_out(&out, &["35=0|34=2|49=ISLD|52=*|56=TW|112=HELLO"]);
    assert_eq!(h.seqs(), (3, 3));
}

// ---------------------------------------------------------------------------
// Inbound MsgSeqNum
// ---------------------------------------------------------------------------

#[test]
fn too_high_seq_num_requests_resend_once_and_queues() {
    let mut h = Harness::new(cfg());
    h.logon();
    h.heartbeats(2..=4);
    let out = h.recv("0", 10, &[]);
    assert_out(&out, &["35=2|34=2|49=ISLD|52=*|56=TW|7=5|16=0"]);
    assert_eq!(h.seqs(), (3, 5));
    // SendRedundantResendRequests=N: no second request while one is outstanding.
    assert_out(&h.recv("0", 11, &[]), &[]);
    assert_eq!(
        h.session.queue.keys().copied().collect::<Vec<_>>(),
        [10, 11]
    );
    assert_eq!(h.seqs(), (3, 5));
}

#[test]
fn redundant_resend_requests_when_configured() {
    let mut c = cfg();
    c.send_redundant_resend_requests = true;
    let mut h = Harness::new(c);
    h.logon();
    assert_out(
        &h.recv("0", 10, &[]),
        &["35=2|34=2|49=ISLD|52=*|56=TW|7=2|16=0"],
    );
    assert_out(
        &h.recv("0", 11, &[]),
        &["35=2|34=3|49=ISLD|52=*|56=TW|7=2|16=0"],
    );
}

#[test]
fn queued_messages_are_processed_in_order_after_the_gap_fills() {
    let mut h = Harness::new(cfg());
    h.logon();
    assert_out(
        &h.recv("1", 5, &[(112, "FIVE")]),
        &["35=2|34=2|49=ISLD|52=*|56=TW|7=2|16=0"],
    );
    assert_out(&h.recv("D", 4, &[(11, "A")]), &[]);
    assert_out(&h.recv("1", 3, &[(112, "THREE")]), &[]);
    let out = h.recv("0", 2, &[]);
    assert_out(
        &out,
        &[
            "35=0|34=3|49=ISLD|52=*|56=TW|112=THREE",
            "35=0|34=4|49=ISLD|52=*|56=TW|112=FIVE",
        ],
    );
    assert_eq!(h.app.received, [("D".to_string(), 4)]);
    assert_eq!(h.seqs(), (5, 6));
    assert!(h.session.queue.is_empty());
    // The ResendRequest is satisfied: a new gap asks again.
    assert_out(
        &h.recv("0", 9, &[]),
        &["35=2|34=5|49=ISLD|52=*|56=TW|7=6|16=0"],
    );
}

#[test]
fn too_low_seq_num_without_poss_dup_logs_out_and_disconnects() {
    let mut h = Harness::new(cfg());
    h.logon();
    h.heartbeats(2..=4);
    let out = h.recv("0", 2, &[]);
    assert_out(
        &out,
        &[
            "35=5|34=2|49=ISLD|52=*|56=TW|58=MsgSeqNum too low, expecting 5 but received 2",
            DISCONNECT,
        ],
    );
    assert_eq!(h.seqs(), (3, 5));
}

#[test]
fn poss_dup_too_low_without_orig_sending_time_is_rejected() {
    let mut h = Harness::new(cfg());
    h.logon();
    h.heartbeats(2..=3);
    let out = h.recv("0", 2, &[(43, "Y")]);
    assert_out(
        &out,
        &["35=3|34=2|49=ISLD|52=*|56=TW|45=2|58=Required tag missing|371=122|372=0|373=1"],
    );
    assert_eq!(h.seqs(), (3, 4));
    let out = h.recv("1", 4, &[(112, "NEXT")]);
    assert_out(&out, &["35=0|34=3|49=ISLD|52=*|56=TW|112=NEXT"]);
}

#[test]
fn poss_dup_with_orig_sending_time_after_sending_time_is_rejected_and_logged_out() {
    let mut h = Harness::new(cfg());
    h.logon();
    h.heartbeats(2..=3);
    let later = ts(h.now + 10 * SEC);
    let out = h.recv("0", 2, &[(43, "Y"), (122, &later)]);
    assert_out(
        &out,
        &[
            "35=3|34=2|49=ISLD|52=*|56=TW|45=2|58=SendingTime accuracy problem|372=0|373=10",
            "35=5|34=3|49=ISLD|52=*|56=TW",
        ],
    );
    assert_eq!(h.seqs(), (4, 4));
    // We initiated the Logout: the client's Logout closes without a reply.
    assert_out(&h.recv("5", 4, &[]), &[DISCONNECT]);
}

#[test]
fn valid_poss_dup_duplicate_is_ignored_silently() {
    let mut h = Harness::new(cfg());
    h.logon();
    h.heartbeats(2..=3);
    let earlier = ts(h.now - SEC);
    assert_out(&h.recv("0", 2, &[(43, "Y"), (122, &earlier)]), &[]);
    assert_out(
        &h.recv("D", 3, &[(43, "Y"), (122, &earlier), (11, "X")]),
        &[],
    );
    assert!(h.app.received.is_empty());
    assert_eq!(h.seqs(), (2, 4));
    let out = h.recv("1", 4, &[(112, "T")]);
    assert_out(&out, &["35=0|34=2|49=ISLD|52=*|56=TW|112=T"]);
}

// ---------------------------------------------------------------------------
// Servicing ResendRequests
// ---------------------------------------------------------------------------

/// The body of a sent message: from its first field after the header to 10.
fn body_of(msg: &str, first_body_tag: i32) -> &str {
    let start = msg
        .find(&format!("|{first_body_tag}="))
        .expect("body field")
        + 1;
    let end = msg.rfind("|10=").expect("trailer") + 1;
    &msg[start..end]
}

#[test]
fn resent_application_messages_keep_seq_and_body_with_poss_dup_and_orig_sending_time() {
    let mut h = Harness::new(cfg());
    h.logon();
    h.now = T0 + SEC;
    let a = h.send_app(&order("A")).remove(0);
    h.now = T0 + 2 * SEC;
    let b = h.send_app(&order("B")).remove(0);
    assert_out(
        std::slice::from_ref(&a),
        &["35=D|34=2|49=ISLD|52=*|56=TW|11=A|54=1|55=MSFT"],
    );
    h.now = T0 + 5 * SEC;
    let out = h.recv("2", 2, &[(7, "2"), (16, "3")]);
    assert_out(
        &out,
        &[
            "35=D|34=2|43=Y|49=ISLD|52=*|56=TW|122=*|11=A|54=1|55=MSFT",
            "35=D|34=3|43=Y|49=ISLD|52=*|56=TW|122=*|11=B|54=1|55=MSFT",
        ],
    );
    for (original, resent) in [(&a, &out[0]), (&b, &out[1])] {
        assert_eq!(field(resent, 122), field(original, 52));
        assert_eq!(field(resent, 52), Some(ts(T0 + 5 * SEC).as_str()));
        assert_eq!(body_of(resent, 11), body_of(original, 11));
    }
    assert_eq!(h.seqs(), (4, 3));
}

#[test]
fn resend_request_gap_fills_runs_of_admin_messages() {
    // 8_AdminAndApplicationMessages: outbound 2-4 HB, 5-6 orders, 7-8 HB, 9 order.
    let mut h = Harness::new(cfg());
    h.logon();
    let mut client = 2;
    let mut answer_test_request = |h: &mut Harness| {
        let out = h.recv("1", client, &[(112, "X")]);
        client += 1;
        assert_eq!(out.len(), 1);
    };
    for _ in 2..=4 {
        answer_test_request(&mut h);
    }
    h.send_app(&order("5"));
    h.send_app(&order("6"));
    answer_test_request(&mut h);
    answer_test_request(&mut h);
    h.send_app(&order("9"));
    assert_eq!(h.seqs(), (10, 7));

    let gf_2_5 = "35=4|34=2|43=Y|49=ISLD|52=*|56=TW|122=*|36=5|123=Y";
    let d5 = "35=D|34=5|43=Y|49=ISLD|52=*|56=TW|122=*|11=5|54=1|55=MSFT";
    let d6 = "35=D|34=6|43=Y|49=ISLD|52=*|56=TW|122=*|11=6|54=1|55=MSFT";
    let gf_7_9 = "35=4|34=7|43=Y|49=ISLD|52=*|56=TW|122=*|36=9|123=Y";
    let d9 = "35=D|34=9|43=Y|49=ISLD|52=*|56=TW|122=*|11=9|54=1|55=MSFT";
    let cases: [(&str, &[&str]); 5] = [
        ("4", &[gf_2_5]),
        ("6", &[gf_2_5, d5, d6]),
        ("8", &[gf_2_5, d5, d6, gf_7_9]),
        ("9", &[gf_2_5, d5, d6, gf_7_9, d9]),
        ("0", &[gf_2_5, d5, d6, gf_7_9, d9]),
    ];
    for (i, (end, expected)) in cases.iter().enumerate() {
        let out = h.recv("2", 7 + i as u64, &[(7, "2"), (16, end)]);
        assert_out(&out, expected);
        // A gap fill's OrigSendingTime is its own SendingTime.
        assert_eq!(field(&out[0], 122), field(&out[0], 52));
        assert_eq!(h.seqs(), (10, 8 + i as u64), "resends consume nothing");
    }
    let out = h.recv("1", 12, &[(112, "AFTER")]);
    assert_out(&out, &["35=0|34=10|49=ISLD|52=*|56=TW|112=AFTER"]);
}

/// Outbound 2-4 heartbeats, 5-6 orders, 7-8 heartbeats, 9 order, then a
/// ResendRequest 1..0 and a new order while it is answered: everything sent
/// from the request on, with a queue of `queue` messages (resends in chunks
/// of an eighth of it, continued as the core does).
fn resend_with_queue(queue: usize) -> Vec<String> {
    let mut c = cfg();
    c.max_outbound_queue = queue;
    let mut h = Harness::new(c);
    h.logon();
    let mut client = 2;
    let mut answer_test_request = |h: &mut Harness| {
        assert_eq!(h.recv("1", client, &[(112, "X")]).len(), 1);
        client += 1;
    };
    for _ in 2..=4 {
        answer_test_request(&mut h);
    }
    for id in ["5", "6"] {
        h.send_app(&order(id));
    }
    answer_test_request(&mut h);
    answer_test_request(&mut h);
    h.send_app(&order("9"));
    h.now = T0 + 5 * SEC;
    let mut out = h.recv("2", 7, &[(7, "1"), (16, "0")]);
    out.extend(h.send_app(&order("LIVE")));
    while h.session.resend_in_progress() {
        h.session.continue_resend(&mut h.store);
        out.extend(h.drain());
    }
    out
}

#[test]
fn a_resend_in_chunks_is_the_same_as_in_one_go() {
    let whole = resend_with_queue(65_536);
    let chunked = resend_with_queue(16);
    assert_eq!(chunked, whole);
    assert_out(
        &whole,
        &[
            "35=4|34=1|43=Y|49=ISLD|52=*|56=TW|122=*|36=5|123=Y",
            "35=D|34=5|43=Y|49=ISLD|52=*|56=TW|122=*|11=5|54=1|55=MSFT",
            "35=D|34=6|43=Y|49=ISLD|52=*|56=TW|122=*|11=6|54=1|55=MSFT",
            "35=4|34=7|43=Y|49=ISLD|52=*|56=TW|122=*|36=9|123=Y",
            "35=D|34=9|43=Y|49=ISLD|52=*|56=TW|122=*|11=9|54=1|55=MSFT",
            "35=D|34=10|49=ISLD|52=*|56=TW|11=LIVE|54=1|55=MSFT",
        ],
    );
    // Sixteen messages per queue: chunks of two, so the live order waited.
    let mut c = cfg();
    c.max_outbound_queue = 16;
    assert_eq!(Session::new(Arc::new(c)).resend_chunk(), 2);
}

/// A store whose messages cannot be read back.
struct UnreadableStore(MemoryStore);

impl MessageStore for UnreadableStore {
    fn next_sender_seq(&self) -> u64 {
        self.0.next_sender_seq()
    }
    fn next_target_seq(&self) -> u64 {
        self.0.next_target_seq()
    }
    fn set_next_sender_seq(&mut self, seq: u64) {
        self.0.set_next_sender_seq(seq)
    }
    fn set_next_target_seq(&mut self, seq: u64) {
        self.0.set_next_target_seq(seq)
    }
    fn creation_time(&self) -> UtcNanos {
        self.0.creation_time()
    }
    fn save(&mut self, seq: u64, message: Bytes) {
        self.0.save(seq, message)
    }
    fn get_range(&self, _: u64, _: u64) -> Result<Vec<(u64, Bytes)>, StoreError> {
        Err(StoreError::Io("read error".into()))
    }
    fn reset(&mut self, now: UtcNanos) {
        self.0.reset(now)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.0.flush()
    }
}

#[test]
fn a_store_that_cannot_be_read_disconnects_instead_of_gap_filling_real_messages() {
    let mut session = Session::new(Arc::new(cfg()));
    let mut store = UnreadableStore(MemoryStore::new(T0));
    let mut app = Recorder::default();
    session.on_connect(T0);
    let logon = client_msg("A", 1, T0, &[(98, "0"), (108, "30")]);
    session.on_message(Message::parse(logon).unwrap(), T0, &mut store, &mut app);
    session.send_app(&order("A"), T0, &mut store);
    let request = client_msg("2", 2, T0, &[(7, "1"), (16, "0")]);
    session.on_message(Message::parse(request).unwrap(), T0, &mut store, &mut app);
    let mut out = Vec::new();
    while let Some(a) = session.poll_action() {
        out.push(match a {
            Action::Send(b) => check_frame(&b),
            Action::Disconnect => DISCONNECT.to_string(),
        });
    }
    // Logon reply, the order, then no gap fill over it: the connection closes.
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out[1].contains("11=A"), "{out:?}");
    assert_eq!(out[2], DISCONNECT);
    assert!(!session.resend_in_progress());
}

#[test]
fn resend_request_end_beyond_last_sent_is_clamped() {
    let mut h = Harness::new(cfg());
    h.logon();
    h.send_app(&order("A"));
    assert_eq!(h.recv("1", 2, &[(112, "X")]).len(), 1);
    let out = h.recv("2", 3, &[(7, "1"), (16, "50")]);
    assert_out(
        &out,
        &[
            "35=4|34=1|43=Y|49=ISLD|52=*|56=TW|122=*|36=2|123=Y",
            "35=D|34=2|43=Y|49=ISLD|52=*|56=TW|122=*|11=A|54=1|55=MSFT",
            "35=4|34=3|43=Y|49=ISLD|52=*|56=TW|122=*|36=4|123=Y",
        ],
    );
    assert_eq!(h.seqs(), (4, 4));
}

#[test]
fn persist_messages_n_gap_fills_everything() {
    let mut c = cfg();
    c.persist_messages = false;
    let mut h = Harness::new(c);
    h.logon();
    h.send_app(&order("A"));
    h.send_app(&order("B"));
    assert!(h.store.get_range(1, 100).unwrap().is_empty());
    let out = h.recv("2", 2, &[(7, "1"), (16, "0")]);
    assert_out(
        &out,
        &["35=4|34=1|43=Y|49=ISLD|52=*|56=TW|122=*|36=4|123=Y"],
    );
    let out = h.recv("2", 3, &[(7, "2"), (16, "2")]);
    assert_out(
        &out,
        &["35=4|34=2|43=Y|49=ISLD|52=*|56=TW|122=*|36=3|123=Y"],
    );
    assert_eq!(h.seqs(), (4, 4));
}

/// Found by the `session` fuzz target: with PersistMessages=N, a
/// ResendRequest whose BeginSeqNo is beyond anything sent (here above
/// i64::MAX) was answered with a GapFill numbered `34=-9042521639203537539`.
#[test]
fn persist_messages_n_resend_request_beyond_last_sent_sends_nothing() {
    let mut c = cfg();
    c.persist_messages = false;
    let mut h = Harness::new(c);
    h.logon();
    h.send_app(&order("A"));
    let out = h.recv("2", 2, &[(7, "9404222434506014077"), (16, "0")]);
    assert_out(&out, &[]);
    let out = h.recv("2", 3, &[(7, "3"), (16, "0")]);
    assert_out(&out, &[]);
    assert_eq!(h.seqs(), (3, 4));
}

#[test]
fn resend_request_with_too_low_seq_num_is_serviced_and_not_consumed() {
    // 8_OnlyAdminMessages.
    let mut h = Harness::new(cfg());
    h.logon();
    for seq in 2..=4 {
        assert_eq!(h.recv("1", seq, &[(112, "X")]).len(), 1);
    }
    let out = h.recv("2", 5, &[(7, "1"), (16, "4")]);
    assert_out(
        &out,
        &["35=4|34=1|43=Y|49=ISLD|52=*|56=TW|122=*|36=5|123=Y"],
    );
    assert_eq!(h.seqs(), (5, 6));
    let out = h.recv("2", 5, &[(7, "1"), (16, "0")]);
    assert_out(
        &out,
        &["35=4|34=1|43=Y|49=ISLD|52=*|56=TW|122=*|36=5|123=Y"],
    );
    assert_eq!(h.seqs(), (5, 6), "a too-low ResendRequest is not consumed");
    // The same holds for a too-high one (20_SimultaneousResendRequest).
    let out = h.recv("2", 9, &[(7, "2"), (16, "3")]);
    assert_out(
        &out,
        &["35=4|34=2|43=Y|49=ISLD|52=*|56=TW|122=*|36=4|123=Y"],
    );
    assert_eq!(h.seqs(), (5, 6));
    assert!(h.session.queue.is_empty());
}

#[test]
fn resend_request_is_serviced_while_our_own_is_outstanding() {
    // 20_SimultaneousResendRequest.
    let mut h = Harness::new(cfg());
    h.logon();
    for seq in 2..=3 {
        assert_out(&h.recv("D", seq, &[(11, "C")]), &[]);
        h.send_app(&order(&seq.to_string()));
    }
    let out = h.recv("0", 7, &[]);
    assert_out(&out, &["35=2|34=4|49=ISLD|52=*|56=TW|7=4|16=0"]);
    let out = h.recv("2", 8, &[(7, "2"), (16, "3")]);
    assert_out(
        &out,
        &[
            "35=D|34=2|43=Y|49=ISLD|52=*|56=TW|122=*|11=2|54=1|55=MSFT",
            "35=D|34=3|43=Y|49=ISLD|52=*|56=TW|122=*|11=3|54=1|55=MSFT",
        ],
    );
    assert_eq!(h.seqs(), (5, 4));
    assert_eq!(h.session.queue.keys().copied().collect::<Vec<_>>(), [7]);
    let earlier = ts(h.now - SEC);
    for seq in 4..=6 {
        assert_out(&h.recv("0", seq, &[(43, "Y"), (122, &earlier)]), &[]);
    }
    assert_eq!(h.seqs(), (5, 8));
    assert!(h.session.resend_range.is_none());
    // A too-low Logout is still answered.
    let out = h.recv("5", 7, &[]);
    assert_out(&out, &["35=5|34=5|49=ISLD|52=*|56=TW", DISCONNECT]);
}

// ---------------------------------------------------------------------------
// SequenceReset
// ---------------------------------------------------------------------------

#[test]
fn gap_fill_in_sequence_advances_expected_seq_num() {
    let mut h = Harness::new(cfg());
    h.logon();
    assert_out(&h.recv("4", 2, &[(123, "Y"), (36, "20")]), &[]);
    assert_eq!(h.seqs(), (2, 20));
    let out = h.recv("1", 20, &[(112, "T")]);
    assert_out(&out, &["35=0|34=2|49=ISLD|52=*|56=TW|112=T"]);
    // 10_MsgSeqNumEqual: a too-low Logout is still answered.
    let out = h.recv("5", 3, &[]);
    assert_out(&out, &["35=5|34=3|49=ISLD|52=*|56=TW", DISCONNECT]);
}

#[test]
fn gap_fill_too_high_is_queued_and_requests_resend() {
    // 10_MsgSeqNumGreater.
    let mut h = Harness::new(cfg());
    h.logon();
    let out = h.recv("4", 10, &[(123, "Y"), (36, "20")]);
    assert_out(&out, &["35=2|34=2|49=ISLD|52=*|56=TW|7=2|16=0"]);
    assert_eq!(h.seqs(), (3, 2));
    assert_out(&h.recv("1", 20, &[(112, "LATE")]), &[]);
    h.heartbeats(2..=8);
    let out = h.recv("0", 9, &[]);
    assert_out(&out, &["35=0|34=3|49=ISLD|52=*|56=TW|112=LATE"]);
    assert_eq!(h.seqs(), (4, 21));
}

#[test]
fn sequence_reset_reset_ignores_msg_seq_num() {
    // 11a_NewSeqNoGreater: sent with 34=0, with and without 123=N.
    let mut h = Harness::new(cfg());
    h.logon();
    assert_out(&h.recv("4", 0, &[(36, "25")]), &[]);
    assert_eq!(h.seqs(), (2, 25));
    assert_out(&h.recv("4", 0, &[(123, "N"), (36, "50")]), &[]);
    assert_eq!(h.seqs(), (2, 50));
    let out = h.recv("1", 50, &[(112, "T")]);
    assert_out(&out, &["35=0|34=2|49=ISLD|52=*|56=TW|112=T"]);
}

#[test]
fn sequence_reset_to_lower_number_is_rejected_without_ref_tag() {
    let mut h = Harness::new(cfg());
    h.logon();
    h.heartbeats(2..=4);
    let out = h.recv("4", 5, &[(36, "3")]);
    assert_out(
        &out,
        &["35=3|34=2|49=ISLD|52=*|56=TW|45=5|58=Value is incorrect (out of range) for this tag|372=4|373=5"],
    );
    // A rejected SequenceReset does not consume its number.
    assert_eq!(h.seqs(), (3, 5));
}

#[test]
fn sequence_reset_to_expected_number_is_a_no_op() {
    // 11b_NewSeqNoEqual.
    let mut h = Harness::new(cfg());
    h.logon();
    assert_out(&h.recv("4", 2, &[(36, "2")]), &[]);
    assert_eq!(h.seqs(), (2, 2));
    assert_out(&h.recv("4", 2, &[(123, "N"), (36, "4")]), &[]);
    assert_eq!(h.seqs(), (2, 4));
}

// ---------------------------------------------------------------------------
// Receiving Reject and Logout
// ---------------------------------------------------------------------------

#[test]
fn received_reject_consumes_its_number_silently() {
    let mut h = Harness::new(cfg());
    h.logon();
    assert_out(&h.recv("3", 2, &[(45, "1"), (373, "99")]), &[]);
    assert_eq!(h.seqs(), (2, 3));
}

#[test]
fn client_logout_is_answered_without_text_then_disconnected() {
    let mut h = Harness::new(cfg());
    h.logon();
    let out = h.recv("5", 2, &[(58, "bye")]);
    assert_out(&out, &["35=5|34=2|49=ISLD|52=*|56=TW", DISCONNECT]);
    assert_eq!(h.seqs(), (3, 3));
    assert_out(&h.drop_connection(), &[]);
    assert_eq!(h.session.status(), Status::Disconnected);
    assert_eq!(h.app.logouts, 1, "on_logout exactly once");
}

#[test]
fn nothing_is_queued_after_a_disconnect_request() {
    let mut h = Harness::new(cfg());
    h.logon();
    // The I/O layer has not collected the output of the Logout yet.
    let logout = Message::parse(client_msg("5", 2, h.now, &[])).expect("parses");
    h.session
        .on_message(logout, h.now, &mut h.store, &mut h.app);
    h.session.send_app(&order("LATE"), h.now, &mut h.store);
    h.session.on_timer(h.now + 60 * SEC, &mut h.store);
    assert_out(&h.drain(), &["35=5|34=2|49=ISLD|52=*|56=TW", DISCONNECT]);
    // The late message is not sent, but it is stored under the next number
    // so the counterparty gets it by resend after it logs on again.
    assert_eq!(h.seqs(), (4, 3));
    let stored = h.store.get_range(3, 3).expect("store");
    assert_eq!(stored.len(), 1);
    assert!(String::from_utf8_lossy(&stored[0].1).contains("11=LATE"));
}

#[test]
fn logout_we_initiated_then_client_logout_disconnects_silently() {
    // 2i_BeginStringValueUnexpected (a).
    let mut h = Harness::new(cfg());
    h.logon();
    let out = h.recv("1", 2, &[(8, "FIX.4.1"), (112, "T")]);
    assert_out(
        &out,
        &["35=5|34=2|49=ISLD|52=*|56=TW|58=Incorrect BeginString"],
    );
    assert_eq!(h.seqs(), (3, 3));
    assert_out(&h.recv("5", 3, &[]), &[DISCONNECT]);
}

#[test]
fn logout_timeout_disconnects_after_two_seconds() {
    // 2i_BeginStringValueUnexpected (b).
    let mut h = Harness::new(cfg());
    h.logon();
    h.now = T0 + SEC;
    let out = h.recv("1", 2, &[(8, "FIX.4.1"), (112, "T")]);
    assert_out(
        &out,
        &["35=5|34=2|49=ISLD|52=*|56=TW|58=Incorrect BeginString"],
    );
    assert_out(&h.tick(T0 + 2_999 * MS), &[]);
    assert_out(&h.tick(T0 + 3 * SEC), &[DISCONNECT]);
}

// ---------------------------------------------------------------------------
// SendingTime and CompIDs
// ---------------------------------------------------------------------------

#[test]
fn sending_time_beyond_max_latency_is_rejected_and_logged_out() {
    // 2o_SendingTimeValueOutOfRange, both directions.
    for offset in [-121 * SEC, 121 * SEC] {
        let mut h = Harness::new(cfg());
        h.logon();
        let t = ts(h.now + offset);
        let out = h.recv("0", 2, &[(52, &t)]);
        assert_out(
            &out,
            &[
                "35=3|34=2|49=ISLD|52=*|56=TW|45=2|58=SendingTime accuracy problem|372=0|373=10",
                "35=5|34=3|49=ISLD|52=*|56=TW",
            ],
        );
        assert_eq!(h.seqs(), (4, 3), "offset {offset}");
        assert_out(&h.recv("5", 3, &[]), &[DISCONNECT]);
    }
}

#[test]
fn sending_time_exactly_max_latency_away_is_accepted() {
    let mut h = Harness::new(cfg());
    h.logon();
    let (past, future) = (ts(h.now - 120 * SEC), ts(h.now + 120 * SEC));
    assert_out(&h.recv("0", 2, &[(52, &past)]), &[]);
    assert_out(&h.recv("0", 3, &[(52, &future)]), &[]);
    assert_eq!(h.seqs(), (2, 4));
}

#[test]
fn check_latency_n_accepts_any_sending_time() {
    let mut c = cfg();
    c.check_latency = false;
    let mut h = Harness::new(c);
    h.connect();
    let out = h.recv("A", 1, &[(52, "20010101-00:00:00"), (98, "0"), (108, "30")]);
    assert_out(&out, &[LOGON_REPLY]);
    let far = ts(h.now + 86_400 * SEC);
    assert_out(&h.recv("0", 2, &[(52, &far)]), &[]);
    assert_eq!(h.seqs(), (2, 3));
}

#[test]
fn comp_id_mismatch_after_logon_is_rejected_and_logged_out() {
    for (tag, wrong) in [(49, "WT"), (56, "DLSI")] {
        let mut h = Harness::new(cfg());
        h.logon();
        let out = h.recv("0", 2, &[(tag, wrong)]);
        assert_out(
            &out,
            &[
                "35=3|34=2|49=ISLD|52=*|56=TW|45=2|58=CompID problem|372=0|373=9",
                "35=5|34=3|49=ISLD|52=*|56=TW",
            ],
        );
        assert_eq!(h.seqs(), (4, 3), "{tag}={wrong}");
    }
}

// ---------------------------------------------------------------------------
// Resets
// ---------------------------------------------------------------------------

#[test]
fn reset_on_logon_resets_store_before_the_reply() {
    let mut c = cfg();
    c.reset_on_logon = true;
    let mut h = Harness::new(c);
    h.store = used_store();
    h.now = T0 + 5 * SEC;
    h.connect();
    assert_out(&h.recv("A", 1, &[(98, "0"), (108, "30")]), &[LOGON_REPLY]);
    assert_eq!(snapshot(&h.store), (2, 2, T0 + 5 * SEC, Vec::new()));
}

#[test]
fn reset_on_logout_resets_store_after_the_exchange() {
    for reset_on_logout in [false, true] {
        let mut c = cfg();
        c.reset_on_logout = reset_on_logout;
        let mut h = Harness::new(c);
        h.logon();
        h.heartbeats(2..=2);
        h.send_app(&order("A"));
        let out = h.recv("5", 3, &[]);
        assert_out(&out, &["35=5|34=3|49=ISLD|52=*|56=TW", DISCONNECT]);
        h.drop_connection();
        if reset_on_logout {
            assert_eq!(h.seqs(), (1, 1));
            assert!(h.store.get_range(1, 100).unwrap().is_empty());
        } else {
            assert_eq!(h.seqs(), (4, 4));
        }
    }
}

#[test]
fn reset_on_disconnect_resets_store_when_the_connection_drops() {
    for reset_on_disconnect in [false, true] {
        let mut c = cfg();
        c.reset_on_disconnect = reset_on_disconnect;
        let mut h = Harness::new(c);
        h.logon();
        h.heartbeats(2..=2);
        h.now = T0 + 7 * SEC;
        assert_out(&h.drop_connection(), &[]);
        if reset_on_disconnect {
            assert_eq!(snapshot(&h.store), (1, 1, T0 + 7 * SEC, Vec::new()));
        } else {
            assert_eq!(snapshot(&h.store), (2, 3, T0, Vec::new()));
        }
        assert_eq!(h.app.logouts, 1);
    }
}

#[test]
fn mid_session_logon_with_reset_flag_resets_both_sides() {
    // SessionReset.
    let mut h = Harness::new(cfg());
    h.logon();
    h.heartbeats(2..=9);
    let out = h.recv("1", 10, &[(112, "T")]);
    assert_out(&out, &["35=0|34=2|49=ISLD|52=*|56=TW|112=T"]);
    let out = h.recv("A", 1, &[(98, "0"), (108, "30"), (141, "Y")]);
    assert_out(&out, &["35=A|34=1|49=ISLD|52=*|56=TW|98=0|108=30|141=Y"]);
    assert_eq!(h.seqs(), (2, 2));
    let out = h.recv("1", 2, &[(112, "U")]);
    assert_out(&out, &["35=0|34=2|49=ISLD|52=*|56=TW|112=U"]);
    let out = h.recv("5", 3, &[]);
    assert_out(&out, &["35=5|34=3|49=ISLD|52=*|56=TW", DISCONNECT]);
}

#[test]
fn mid_session_logon_without_reset_flag_disconnects() {
    let mut h = Harness::new(cfg());
    h.logon();
    assert_out(&h.recv("A", 2, &[(98, "0"), (108, "30")]), &[DISCONNECT]);
    assert_eq!(h.seqs(), (2, 2));
}

// ---------------------------------------------------------------------------
// Session schedule
// ---------------------------------------------------------------------------

/// 08:00-17:00 UTC every day.
fn office_hours() -> SessionConfig {
    let mut c = cfg();
    c.schedule = Schedule {
        start_secs: 8 * 3600,
        end_secs: 17 * 3600,
        utc_offset_secs: 0,
    };
    c
}

#[test]
fn logon_outside_the_session_window_is_refused() {
    let mut h = Harness::new(office_hours());
    h.store = used_store();
    let before = snapshot(&h.store);
    h.now = T0 + 9 * 3600 * SEC; // 18:00
    h.connect();
    let t = ts(h.now);
    let out = h.recv("A", 7, &[(52, &t), (98, "0"), (108, "30")]);
    assert_out(&out, &[DISCONNECT]);
    assert_eq!(snapshot(&h.store), before);
}

#[test]
fn a_new_session_window_resets_the_store() {
    let mut h = Harness::new(office_hours());
    let mut store = used_store();
    store.reset(T0 - 86_400 * SEC); // yesterday 09:00
    store.set_next_sender_seq(5);
    store.set_next_target_seq(7);
    h.store = store;
    h.connect();
    assert_out(&h.recv("A", 1, &[(98, "0"), (108, "30")]), &[LOGON_REPLY]);
    assert_eq!(snapshot(&h.store), (2, 2, T0, Vec::new()));
}

#[test]
fn end_of_the_session_window_logs_out() {
    let mut h = Harness::new(office_hours());
    h.logon();
    h.heartbeats(2..=2);
    let end = T0 + 8 * 3600 * SEC; // 17:00
    h.now = end - 10 * SEC;
    h.heartbeats(3..=3);
    assert_out(
        &h.tick(end + SEC),
        &["35=5|34=2|49=ISLD|52=*|56=TW", DISCONNECT],
    );
}

// ---------------------------------------------------------------------------
// Application messages and session-level Reject
// ---------------------------------------------------------------------------

#[test]
fn unsupported_application_message_gets_business_message_reject() {
    // 2r_UnregisteredMsgType.
    let mut h = Harness::with_app(cfg(), RejectAll);
    h.logon();
    let out = h.recv("8", 2, &[(37, "O1"), (17, "E1"), (150, "0"), (39, "0")]);
    assert_out(
        &out,
        &["35=j|34=2|49=ISLD|52=*|56=TW|45=2|58=Unsupported Message Type|372=8|380=3"],
    );
    assert_eq!(h.seqs(), (3, 3));
}

#[test]
fn reject_carries_reversed_routing_in_ascending_header_order() {
    // ReverseRoute (on a Reject we can provoke without a dictionary).
    let cases: [(&[(i32, &str)], &str); 3] = [
        (
            &[(115, "OB"), (116, "OS"), (144, "OL")],
            "128=OB|129=OS|145=OL",
        ),
        (
            &[(128, "DC"), (129, "DS"), (145, "DL")],
            "115=DC|116=DS|144=DL",
        ),
        (&[(128, "DC"), (115, "OB")], "115=DC|128=OB"),
    ];
    for (route, reversed) in cases {
        let mut h = Harness::new(cfg());
        h.logon();
        h.heartbeats(2..=2);
        let mut fields = route.to_vec();
        fields.push((43, "Y"));
        let out = h.recv("0", 2, &fields);
        let expected = format!(
            "35=3|34=2|49=ISLD|52=*|56=TW|{reversed}|45=2|58=Required tag missing|371=122|372=0|373=1"
        );
        assert_out(&out, &[expected.as_str()]);
    }
    // A BusinessMessageReject reverses the route too.
    let mut h = Harness::with_app(cfg(), RejectAll);
    h.logon();
    let out = h.recv("8", 2, &[(115, "OB"), (37, "O1")]);
    assert_out(
        &out,
        &["35=j|34=2|49=ISLD|52=*|56=TW|128=OB|45=2|58=Unsupported Message Type|372=8|380=3"],
    );
}

#[test]
fn reject_consumes_inbound_number_only_when_it_was_expected() {
    let mut h = Harness::new(cfg());
    h.logon();
    let out = h.recv("0", 2, &[(52, OMIT)]);
    assert_out(
        &out,
        &["35=3|34=2|49=ISLD|52=*|56=TW|45=2|58=Required tag missing|371=52|372=0|373=1"],
    );
    assert_eq!(h.seqs(), (3, 3));
    // Missing TargetCompID: the reply still goes to our configured target.
    let out = h.recv("0", 3, &[(56, OMIT)]);
    assert_out(
        &out,
        &["35=3|34=3|49=ISLD|52=*|56=TW|45=3|58=Required tag missing|371=56|372=0|373=1"],
    );
    assert_eq!(h.seqs(), (4, 4));
    // A too-high message rejected before the sequence check: not consumed.
    let out = h.recv("0", 9, &[(52, OMIT)]);
    assert_out(
        &out,
        &["35=3|34=4|49=ISLD|52=*|56=TW|45=9|58=Required tag missing|371=52|372=0|373=1"],
    );
    assert_eq!(h.seqs(), (5, 4));
    assert!(h.session.queue.is_empty());
}

// ---------------------------------------------------------------------------
// Outbound format
// ---------------------------------------------------------------------------

#[test]
fn outbound_header_is_standard_fields_then_ascending_tags() {
    let mut h = Harness::new(cfg());
    h.logon();
    let mut msg = order("A");
    msg.header = vec![
        (128, Bytes::from_static(b"DEST")),
        (97, Bytes::from_static(b"Y")),
        (115, Bytes::from_static(b"ORIG")),
        (50, Bytes::from_static(b"SUB")),
    ];
    let out = h.send_app(&msg);
    assert_out(
        &out,
        &["35=D|34=2|49=ISLD|50=SUB|52=*|56=TW|97=Y|115=ORIG|128=DEST|11=A|54=1|55=MSFT"],
    );
    assert!(out[0].starts_with("8=FIX.4.4|9="));
    let out = h.recv("2", 2, &[(7, "2"), (16, "2")]);
    assert_out(
        &out,
        &["35=D|34=2|43=Y|49=ISLD|50=SUB|52=*|56=TW|97=Y|115=ORIG|122=*|128=DEST|11=A|54=1|55=MSFT"],
    );
}

#[test]
fn sending_time_has_milliseconds_by_default() {
    let mut h = Harness::new(cfg());
    h.now = T0 + 123_456_789;
    h.logon();
    let out = h.recv("1", 2, &[(112, "T")]);
    assert_eq!(field(&out[0], 52), Some("20240102-09:00:00.123"));
}

#[test]
fn timestamp_precision_applies_to_sending_and_orig_sending_time() {
    for (precision, expected) in [
        (Precision::Seconds, "20240102-09:00:00"),
        (Precision::Micros, "20240102-09:00:00.123456"),
    ] {
        let mut c = cfg();
        c.timestamp_precision = precision;
        let mut h = Harness::new(c);
        h.now = T0 + 123_456_789;
        h.connect();
        let out = h.recv("A", 1, &[(98, "0"), (108, "30")]);
        assert_eq!(field(&out[0], 52), Some(expected));
        let out = h.recv("2", 2, &[(7, "1"), (16, "0")]);
        assert_sent(&out[0], &["35=4", "36=2", "123=Y"]);
        assert_eq!(field(&out[0], 52), Some(expected));
        assert_eq!(field(&out[0], 122), Some(expected));
    }
}

#[test]
fn heartbeat_answering_test_request_carries_only_test_req_id() {
    let mut h = Harness::new(cfg());
    h.logon();
    let out = h.recv("1", 2, &[(112, "HELLO"), (58, "ignored")]);
    assert_sent(&out[0], &["35=0", "34=2", "112=HELLO"]);
    assert_lacks(&out[0], 58);
}

// ---------------------------------------------------------------------------
// Property: random admin traffic and timer ticks
// ---------------------------------------------------------------------------

mod random {
    use super::*;
    use crate::session::outbound::is_admin_msg_type;
    use proptest::prelude::*;

    /// What the store saw, in order.
    #[derive(Debug, Clone, PartialEq)]
    enum StoreEvent {
        Reset,
        SetSender(u64, u64),
    }

    /// A `MemoryStore` that logs sender-number changes and resets.
    struct AuditStore {
        inner: MemoryStore,
        log: Vec<StoreEvent>,
    }

    impl MessageStore for AuditStore {
        fn next_sender_seq(&self) -> u64 {
            self.inner.next_sender_seq()
        }
        fn next_target_seq(&self) -> u64 {
            self.inner.next_target_seq()
        }
        fn set_next_sender_seq(&mut self, seq: u64) {
            let old = self.inner.next_sender_seq();
            self.log.push(StoreEvent::SetSender(old, seq));
            self.inner.set_next_sender_seq(seq);
        }
        fn set_next_target_seq(&mut self, seq: u64) {
            self.inner.set_next_target_seq(seq);
        }
        fn creation_time(&self) -> UtcNanos {
            self.inner.creation_time()
        }
        fn save(&mut self, seq: u64, message: Bytes) {
            self.inner.save(seq, message);
        }
        fn get_range(&self, begin: u64, end: u64) -> Result<Vec<(u64, Bytes)>, StoreError> {
            self.inner.get_range(begin, end)
        }
        fn reset(&mut self, now: UtcNanos) {
            self.log.push(StoreEvent::Reset);
            self.inner.reset(now);
        }
        fn flush(&mut self) -> Result<(), StoreError> {
            self.inner.flush()
        }
    }

    /// A well-formed client message with random contents.
    #[derive(Debug, Clone)]
    struct RandomMsg {
        msg_type: &'static str,
        /// MsgSeqNum relative to the expected one (None: 34=0).
        seq_delta: Option<i64>,
        poss_dup: bool,
        orig_offset_secs: Option<i64>,
        time_offset_secs: i64,
        wrong_begin: bool,
        wrong_comp: bool,
        gap_fill: Option<bool>,
        new_seq: u64,
        reset: bool,
        begin_end: (u64, u64),
    }

    #[derive(Debug, Clone)]
    enum Op {
        Msg(RandomMsg),
        /// Several messages (each optionally followed by `send_app`) fed
        /// before the output is collected.
        Burst(Vec<(RandomMsg, bool)>),
        Tick(i64),
        Reconnect,
        PeerClose,
        SendApp,
    }

    fn random_msg() -> impl Strategy<Value = RandomMsg> {
        (
            (
                prop::sample::select(vec!["0", "1", "2", "3", "4", "5", "A", "D"]),
                prop_oneof![
                    12 => Just(Some(0i64)),
                    6 => (-3i64..=3).prop_map(Some),
                    1 => Just(None),
                ],
                prop::bool::weighted(0.2),
                prop::option::weighted(0.5, -5i64..=5),
                prop_oneof![19 => Just(0i64), 1 => -200i64..=200],
                prop::bool::weighted(0.02),
            ),
            (
                prop::bool::weighted(0.02),
                prop::option::of(any::<bool>()),
                0u64..=30,
                prop::bool::weighted(0.1),
                (0u64..=12, 0u64..=12),
            ),
        )
            .prop_map(
                |(
                    (
                        msg_type,
                        seq_delta,
                        poss_dup,
                        orig_offset_secs,
                        time_offset_secs,
                        wrong_begin,
                    ),
                    (wrong_comp, gap_fill, new_seq, reset, begin_end),
                )| RandomMsg {
                    msg_type,
                    seq_delta,
                    poss_dup,
                    orig_offset_secs,
                    time_offset_secs,
                    wrong_begin,
                    wrong_comp,
                    gap_fill,
                    new_seq,
                    reset,
                    begin_end,
                },
            )
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            12 => random_msg().prop_map(Op::Msg),
            2 => prop::collection::vec((random_msg(), any::<bool>()), 1..4).prop_map(Op::Burst),
            6 => (0i64..=40_000).prop_map(|ms| Op::Tick(ms * MS)),
            // Long enough to leave or enter a daily session window.
            1 => (1i64..=12).prop_map(|h| Op::Tick(h * 3600 * SEC)),
            1 => Just(Op::Reconnect),
            1 => Just(Op::PeerClose),
            2 => Just(Op::SendApp),
        ]
    }

    fn encode(m: &RandomMsg, expected: u64, now: UtcNanos) -> Bytes {
        let seq = match m.seq_delta {
            Some(d) => (expected as i64 + d).max(0) as u64,
            None => 0,
        };
        let time = ts(now + m.time_offset_secs * SEC);
        let orig = m.orig_offset_secs.map(|o| ts(now + o * SEC));
        let new_seq = m.new_seq.to_string();
        let (begin, end) = (m.begin_end.0.to_string(), m.begin_end.1.to_string());
        let mut f: Vec<(i32, &str)> = vec![(52, &time)];
        if m.wrong_begin {
            f.push((8, "FIX.4.1"));
        }
        if m.wrong_comp {
            f.push((49, "WT"));
        }
        if m.poss_dup {
            f.push((43, "Y"));
        }
        if let Some(o) = &orig {
            f.push((122, o));
        }
        match m.msg_type {
            "A" => {
                let hb = ["1", "5", "30"][(m.new_seq % 3) as usize];
                f.extend([(98, "0"), (108, hb)]);
                if m.reset {
                    f.push((141, "Y"));
                }
            }
            "1" => f.push((112, "PING")),
            "2" => f.extend([(7, begin.as_str()), (16, end.as_str())]),
            "3" => f.push((45, "1")),
            "4" => {
                match m.gap_fill {
                    Some(true) => f.push((123, "Y")),
                    Some(false) => f.push((123, "N")),
                    None => {}
                }
                f.push((36, &new_seq));
            }
            "D" => f.extend([(11, "C1"), (54, "1"), (55, "X")]),
            _ => {}
        }
        client_msg(m.msg_type, seq, now, &f)
    }

    struct Sim {
        session: Session,
        store: AuditStore,
        app: RejectAll,
        now: UtcNanos,
        connected: bool,
        persist: bool,
        /// Numbers of messages `send_app` stored without sending, this step.
        stored_silently: Vec<u64>,
    }

    impl Sim {
        fn feed(&mut self, m: &RandomMsg) {
            let bytes = encode(m, self.store.next_target_seq(), self.now);
            let msg = Message::parse(bytes).expect("well-formed");
            self.session
                .on_message(msg, self.now, &mut self.store, &mut self.app);
        }

        /// `send_app`, remembering the number of a message that is stored
        /// for resend without being sent (session offline or closing).
        fn send_app_tracked(&mut self, id: &str) {
            if !self.session.is_logged_on() || self.session.disconnect_pending() {
                self.stored_silently.push(self.store.next_sender_seq());
            }
            self.session.send_app(&order(id), self.now, &mut self.store);
        }

        /// Runs one op and checks every invariant on what it produced.
        fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
            let was_connected = self.connected;
            let before = self.store.next_sender_seq();
            self.store.log.clear();
            self.stored_silently.clear();
            match op {
                Op::Msg(m) => self.feed(m),
                Op::Burst(ms) => {
                    for (m, app) in ms {
                        self.feed(m);
                        if *app {
                            self.send_app_tracked("B");
                        }
                    }
                }
                Op::Tick(d) => {
                    self.now += d;
                    self.session.on_timer(self.now, &mut self.store);
                }
                Op::Reconnect => {
                    if !self.connected {
                        self.session.on_connect(self.now);
                        self.connected = true;
                        let logon = RandomMsg {
                            msg_type: "A",
                            seq_delta: Some(0),
                            poss_dup: false,
                            orig_offset_secs: None,
                            time_offset_secs: 0,
                            wrong_begin: false,
                            wrong_comp: false,
                            gap_fill: None,
                            new_seq: 0,
                            reset: false,
                            begin_end: (0, 0),
                        };
                        self.feed(&logon);
                    }
                }
                Op::PeerClose => {
                    self.session
                        .on_disconnect(self.now, &mut self.store, &mut self.app);
                    self.connected = false;
                }
                Op::SendApp => self.send_app_tracked("R"),
            }
            let mut actions = Vec::new();
            while let Some(a) = self.session.poll_action() {
                actions.push(a);
            }
            if !was_connected && !matches!(op, Op::Reconnect) {
                prop_assert!(actions.is_empty(), "output while disconnected: {actions:?}");
            }
            // Numbers consumed by fresh messages, as the store saw them.
            let mut consumed = Vec::new();
            let mut next = before;
            let mut reset = false;
            for e in &self.store.log {
                match *e {
                    StoreEvent::Reset => {
                        next = 1;
                        reset = true;
                    }
                    StoreEvent::SetSender(old, new) => {
                        prop_assert_eq!(old, next, "sender number changed behind our back");
                        prop_assert_eq!(new, old + 1, "sender number skipped");
                        consumed.push(old);
                        next = new;
                    }
                }
            }
            let mut fresh = Vec::new();
            let mut disconnected = false;
            for a in &actions {
                match a {
                    Action::Disconnect => disconnected = true,
                    Action::Send(bytes) => {
                        prop_assert!(!disconnected, "sent after Disconnect: {actions:?}");
                        let s = check_frame(bytes);
                        let seq: u64 = field(&s, 34).and_then(|v| v.parse().ok()).unwrap_or(0);
                        if field(&s, 43) == Some("Y") {
                            let gap_fill =
                                field(&s, 35) == Some("4") && field(&s, 123) == Some("Y");
                            let app = !is_admin_msg_type(field(&s, 35).unwrap_or("").as_bytes());
                            prop_assert!(gap_fill || app, "resent admin message {s}");
                            if self.persist && !reset {
                                prop_assert!(seq < next, "resend {s} beyond next {next}");
                            }
                        } else {
                            fresh.push(seq);
                        }
                    }
                }
            }
            // Messages stored while offline consume a number without being sent.
            fresh.extend_from_slice(&self.stored_silently);
            fresh.sort_unstable();
            consumed.sort_unstable();
            prop_assert_eq!(&fresh, &consumed, "fresh messages vs store numbers");
            prop_assert_eq!(self.store.next_sender_seq(), next);
            if disconnected {
                self.session
                    .on_disconnect(self.now, &mut self.store, &mut self.app);
                self.connected = false;
                prop_assert!(self.session.poll_action().is_none());
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 500,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        #[test]
        fn random_admin_traffic_keeps_sequence_and_disconnect_invariants(
            ops in prop::collection::vec(op(), 1..60),
            redundant in any::<bool>(),
            persist in any::<bool>(),
            resets in any::<(bool, bool, bool)>(),
            check_latency in any::<bool>(),
            scheduled in any::<bool>(),
        ) {
            let mut c = cfg();
            c.send_redundant_resend_requests = redundant;
            c.persist_messages = persist;
            (c.reset_on_logon, c.reset_on_logout, c.reset_on_disconnect) = resets;
            c.check_latency = check_latency;
            if scheduled {
                c.schedule = office_hours().schedule;
            }
            let mut sim = Sim {
                session: Session::new(Arc::new(c)),
                store: AuditStore { inner: MemoryStore::new(T0), log: Vec::new() },
                app: RejectAll,
                now: T0,
                connected: false,
                persist,
                stored_silently: Vec::new(),
            };
            sim.step(&Op::Reconnect)?;
            for op in &ops {
                sim.step(op)?;
            }
        }
    }
}
