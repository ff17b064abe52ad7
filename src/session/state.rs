//! The FIX session state machine (sans-IO): fed messages, timer ticks and the
//! current time, it produces bytes to send and a disconnect request. It never
//! reads a clock, touches a socket or flushes the store; the acceptor does.
//!
//! Processing follows QuickFIX's order, which the acceptance suite encodes:
//! framing → BeginString → dictionary validation → per-type handling with
//! SendingTime, CompID and sequence checks (`verify`) → queued messages.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::fix::reject::{Rejection, SessionRejectReason};
use crate::fix::tags;
use crate::fix::time::{parse_utc, UtcNanos};
use crate::fix::{Encoder, Message};

use super::application::{Application, OutboundMessage};
use super::config::SessionConfig;
use super::store::MessageStore;

/// Nanoseconds per second.
pub(crate) const SEC: i64 = 1_000_000_000;

/// What the I/O layer must do after feeding the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes (after flushing the store).
    Send(Bytes),
    /// Close the connection (after sending what precedes this action).
    Disconnect,
}

/// Connection-level status of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No connection bound.
    Disconnected,
    /// A connection is bound; its Logon has not been accepted yet.
    AwaitingLogon {
        /// When the connection arrived.
        since: UtcNanos,
    },
    /// Logon exchanged.
    LoggedOn,
}

/// A ResendRequest being answered, chunk by chunk (`session::resend`).
#[derive(Debug)]
pub(crate) struct ResendJob {
    /// Next MsgSeqNum to read from the store.
    pub(crate) scan: u64,
    /// Last MsgSeqNum to resend.
    pub(crate) end: u64,
    /// Next outbound MsgSeqNum when the request arrived.
    pub(crate) next_sender: u64,
    /// First number not yet covered by a resend or gap fill.
    pub(crate) current: u64,
    /// Last stored message seen.
    pub(crate) last_seq: u64,
    /// Start of a run of numbers to gap-fill.
    pub(crate) gap_start: Option<u64>,
}

/// One FIX session's protocol state.
pub struct Session {
    pub(crate) cfg: Arc<SessionConfig>,
    pub(crate) status: Status,
    /// HeartBtInt in nanoseconds (0 = no heartbeats).
    pub(crate) heart_bt_int: i64,
    pub(crate) last_sent: UtcNanos,
    pub(crate) last_received: UtcNanos,
    /// TestRequests sent since the last message received.
    pub(crate) test_requests: u32,
    /// When we sent a Logout we initiated.
    pub(crate) logout_sent_at: Option<UtcNanos>,
    /// Outstanding ResendRequest: (first, last) inbound numbers asked for.
    pub(crate) resend_range: Option<(u64, u64)>,
    /// Too-high messages waiting for the gap to fill.
    pub(crate) queue: BTreeMap<u64, Message>,
    pub(crate) actions: VecDeque<Action>,
    /// Disconnects queued in `actions` (so that asking is O(1) with a
    /// batch's worth of output queued).
    pub(crate) disconnects_queued: usize,
    /// ResendRequests being answered, the running one first.
    pub(crate) resend_jobs: VecDeque<ResendJob>,
    /// Output produced while a resend runs: it follows the resend.
    pub(crate) deferred: VecDeque<Action>,
    /// First outbound MsgSeqNum that may be waiting in `deferred`.
    pub(crate) deferred_from: Option<u64>,
    /// True while a resend chunk is being produced.
    pub(crate) resending: bool,
    pub(crate) enc: Encoder,
    pub(crate) app_out: Vec<OutboundMessage>,
    pub(crate) now: UtcNanos,
}

impl Session {
    /// A disconnected session.
    pub fn new(cfg: Arc<SessionConfig>) -> Session {
        Session {
            cfg,
            status: Status::Disconnected,
            heart_bt_int: 0,
            last_sent: 0,
            last_received: 0,
            test_requests: 0,
            logout_sent_at: None,
            resend_range: None,
            queue: BTreeMap::new(),
            actions: VecDeque::new(),
            disconnects_queued: 0,
            resend_jobs: VecDeque::new(),
            deferred: VecDeque::new(),
            deferred_from: None,
            resending: false,
            enc: Encoder::new(),
            app_out: Vec::new(),
            now: 0,
        }
    }

    /// The session's settings.
    pub fn config(&self) -> &Arc<SessionConfig> {
        &self.cfg
    }

    /// Current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// True once the Logon exchange is complete.
    pub fn is_logged_on(&self) -> bool {
        self.status == Status::LoggedOn
    }

    /// Next action for the I/O layer, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        let a = self.actions.pop_front();
        if a == Some(Action::Disconnect) {
            self.disconnects_queued -= 1;
        }
        a
    }

    /// A connection was bound to this session at `now`.
    pub fn on_connect(&mut self, now: UtcNanos) {
        self.reset_connection_state();
        self.status = Status::AwaitingLogon { since: now };
        self.now = now;
        self.last_received = now;
        self.last_sent = now;
    }

    /// The connection is gone (closed by either side).
    pub fn on_disconnect(
        &mut self,
        now: UtcNanos,
        store: &mut dyn MessageStore,
        app: &mut dyn Application,
    ) {
        let was_logged_on = self.is_logged_on();
        self.status = Status::Disconnected;
        self.reset_connection_state();
        if self.cfg.reset_on_disconnect {
            store.reset(now);
        }
        if was_logged_on {
            app.on_logout(&self.cfg.id);
        }
    }

    fn reset_connection_state(&mut self) {
        self.heart_bt_int = 0;
        self.test_requests = 0;
        self.logout_sent_at = None;
        self.resend_range = None;
        self.queue.clear();
        self.resend_jobs.clear();
        self.deferred.clear();
        self.deferred_from = None;
    }

    /// Queues an output; while a resend runs, output other than the
    /// resend's waits behind it.
    pub(crate) fn push(&mut self, a: Action) {
        debug_assert!(a != Action::Disconnect, "disconnect() queues disconnects");
        if self.resend_jobs.is_empty() || self.resending {
            self.actions.push_back(a);
        } else {
            self.deferred.push_back(a);
        }
    }

    /// Asks the I/O layer to close the connection. A running resend stops
    /// there (what it did not send stays stored): what waited behind it is
    /// sent, then the connection closes.
    pub(crate) fn disconnect(&mut self) {
        if !self.resend_jobs.is_empty() {
            tracing::info!(session = %self.cfg.id, "disconnecting during a resend; the rest is not sent");
            self.resend_jobs.clear();
            self.deferred_from = None;
            self.actions.append(&mut self.deferred);
        }
        if self.status != Status::Disconnected && self.actions.back() != Some(&Action::Disconnect) {
            self.actions.push_back(Action::Disconnect);
            self.disconnects_queued += 1;
        }
    }

    /// Logs the counterparty out at once with `text` (no wait for its reply)
    /// and disconnects: slow consumers, operator actions.
    pub fn force_logout(&mut self, text: &str, now: UtcNanos, store: &mut dyn MessageStore) {
        self.now = now;
        if self.is_logged_on() && !self.disconnect_pending() {
            self.generate_logout(Some(text), store);
        }
        self.disconnect();
    }

    /// Outputs waiting for `poll_action`.
    pub fn pending_actions(&self) -> usize {
        self.actions.len() + self.deferred.len()
    }

    /// True when a Disconnect has been requested and not yet carried out.
    pub fn disconnect_pending(&self) -> bool {
        debug_assert_eq!(
            self.disconnects_queued,
            self.actions
                .iter()
                .filter(|a| **a == Action::Disconnect)
                .count()
        );
        self.disconnects_queued > 0
    }

    /// Feeds one received, framed message.
    pub fn on_message(
        &mut self,
        msg: Message,
        now: UtcNanos,
        store: &mut dyn MessageStore,
        app: &mut dyn Application,
    ) {
        self.now = now;
        if self.status == Status::Disconnected || self.disconnect_pending() {
            return;
        }
        if !self.check_session_time(store) {
            return;
        }
        if let Status::AwaitingLogon { .. } = self.status {
            if msg.msg_type() != b"A" {
                tracing::info!(session = %self.cfg.id, "first message is not a Logon; disconnecting");
                self.disconnect();
                return;
            }
        }
        self.next(msg, store, app, false);
    }

    /// Sends an application message produced outside a `from_app` callback
    /// (e.g. an ExecutionReport for a resting order). When the session is not
    /// logged on (or a Disconnect is pending) the message still consumes its
    /// MsgSeqNum and is stored, so the counterparty gets it by resend after
    /// it logs on again; nothing is queued behind a Disconnect.
    pub fn send_app(&mut self, msg: &OutboundMessage, now: UtcNanos, store: &mut dyn MessageStore) {
        self.now = now;
        if self.is_logged_on() && !self.disconnect_pending() {
            self.send_outbound(msg, store);
        } else {
            self.store_outbound(msg, store);
        }
    }

    /// Processes one message; `queued` is true when it comes from the queue.
    pub(crate) fn next(
        &mut self,
        msg: Message,
        store: &mut dyn MessageStore,
        app: &mut dyn Application,
        queued: bool,
    ) {
        self.dispatch(&msg, store, app);
        if !queued {
            self.next_queued(store, app);
        }
    }

    fn dispatch(&mut self, msg: &Message, store: &mut dyn MessageStore, app: &mut dyn Application) {
        let logging_on = !self.is_logged_on();
        for tag in [tags::SENDER_COMP_ID, tags::TARGET_COMP_ID] {
            if !msg.has(tag) {
                if logging_on {
                    self.disconnect();
                } else {
                    self.reject(
                        msg,
                        Rejection::tag(SessionRejectReason::RequiredTagMissing, tag),
                        store,
                    );
                }
                return;
            }
        }
        if msg.begin_string() != self.cfg.id.begin_string.as_bytes() {
            if logging_on {
                self.disconnect();
            } else if msg.msg_type() == b"5" {
                self.next_logout(msg, store);
            } else {
                self.generate_logout(Some("Incorrect BeginString"), store);
                store.set_next_target_seq(store.next_target_seq() + 1);
            }
            return;
        }
        if let Err(rejection) = self.validate(msg) {
            if logging_on {
                tracing::info!(session = %self.cfg.id, ?rejection, "invalid Logon; disconnecting");
                self.disconnect();
            } else {
                self.reject(msg, rejection, store);
            }
            return;
        }
        match msg.msg_type() {
            b"A" => self.next_logon(msg, store, app),
            b"0" => self.next_heartbeat(msg, store),
            b"1" => self.next_test_request(msg, store),
            b"2" => self.next_resend_request(msg, store),
            b"3" => self.next_reject(msg, store),
            b"4" => self.next_sequence_reset(msg, store),
            b"5" => self.next_logout(msg, store),
            _ => self.next_app(msg, store, app),
        }
    }

    fn validate(&self, msg: &Message) -> Result<(), Rejection> {
        if !self.cfg.use_data_dictionary {
            return Ok(());
        }
        match &self.cfg.dictionary {
            Some(dict) => crate::fix::validate::validate(dict, msg, &self.cfg.validation),
            None => Ok(()),
        }
    }

    fn next_heartbeat(&mut self, msg: &Message, store: &mut dyn MessageStore) {
        if self.verify(msg, true, true, store) {
            store.set_next_target_seq(store.next_target_seq() + 1);
        }
    }

    fn next_test_request(&mut self, msg: &Message, store: &mut dyn MessageStore) {
        if !self.verify(msg, true, true, store) {
            return;
        }
        let id = msg.get(tags::TEST_REQ_ID).map(Bytes::copy_from_slice);
        self.send_heartbeat(id.as_deref(), store);
        store.set_next_target_seq(store.next_target_seq() + 1);
    }

    fn next_reject(&mut self, msg: &Message, store: &mut dyn MessageStore) {
        if self.verify(msg, true, true, store) {
            store.set_next_target_seq(store.next_target_seq() + 1);
        }
    }

    fn next_sequence_reset(&mut self, msg: &Message, store: &mut dyn MessageStore) {
        let gap_fill = msg.get_flag(tags::GAP_FILL_FLAG);
        if !self.verify(msg, gap_fill, gap_fill, store) {
            return;
        }
        let Some(new_seq) = msg.get_u64(tags::NEW_SEQ_NO) else {
            return;
        };
        let expected = store.next_target_seq();
        if new_seq > expected {
            store.set_next_target_seq(new_seq);
        } else if new_seq < expected {
            self.reject(
                msg,
                Rejection::message(SessionRejectReason::ValueIsIncorrect),
                store,
            );
        }
    }

    /// The application hears of the logout from `on_disconnect`, which
    /// always follows the Disconnect requested here (reporting it here too
    /// would call `on_logout` twice).
    pub(crate) fn next_logout(&mut self, msg: &Message, store: &mut dyn MessageStore) {
        if !self.verify(msg, false, false, store) {
            return;
        }
        if self.logout_sent_at.is_none() {
            self.generate_logout(None, store);
        }
        store.set_next_target_seq(store.next_target_seq() + 1);
        if self.cfg.reset_on_logout {
            store.reset(self.now);
        }
        self.disconnect();
    }

    fn next_app(&mut self, msg: &Message, store: &mut dyn MessageStore, app: &mut dyn Application) {
        if !self.verify(msg, true, true, store) {
            return;
        }
        let mut out = std::mem::take(&mut self.app_out);
        out.clear();
        let result = app.from_app(&self.cfg.id, msg, &mut out);
        store.set_next_target_seq(store.next_target_seq() + 1);
        match result {
            Ok(()) => {
                for m in &out {
                    self.send_outbound(m, store);
                }
            }
            Err(bmr) => self.business_reject(msg, &bmr, store),
        }
        out.clear();
        self.app_out = out;
    }

    /// Processes queued messages that are now in sequence.
    fn next_queued(&mut self, store: &mut dyn MessageStore, app: &mut dyn Application) {
        loop {
            if self.disconnect_pending() || self.status == Status::Disconnected {
                return;
            }
            let expected = store.next_target_seq();
            // Anything below the expected number can never be processed.
            while let Some((&k, _)) = self.queue.first_key_value() {
                if k >= expected {
                    break;
                }
                self.queue.pop_first();
            }
            let Some(msg) = self.queue.remove(&expected) else {
                return;
            };
            tracing::debug!(session = %self.cfg.id, seq = expected, "processing queued message");
            match msg.msg_type() {
                b"A" | b"2" => store.set_next_target_seq(expected + 1),
                _ => self.next(msg, store, app, true),
            }
        }
    }

    /// The checks QuickFIX's `verify` applies to every message: SendingTime,
    /// CompIDs, then (optionally) MsgSeqNum too high / too low. Returns false
    /// when the message must not be processed further.
    pub(crate) fn verify(
        &mut self,
        msg: &Message,
        check_too_high: bool,
        check_too_low: bool,
        store: &mut dyn MessageStore,
    ) -> bool {
        let seq = msg.seq_num();
        if (check_too_high || check_too_low) && seq.is_none() {
            let why = if msg.has(tags::MSG_SEQ_NUM) {
                SessionRejectReason::IncorrectDataFormat
            } else {
                SessionRejectReason::RequiredTagMissing
            };
            self.reject(msg, Rejection::tag(why, tags::MSG_SEQ_NUM), store);
            return false;
        }
        let Some(sending_time) = msg.get(tags::SENDING_TIME) else {
            self.reject(
                msg,
                Rejection::tag(SessionRejectReason::RequiredTagMissing, tags::SENDING_TIME),
                store,
            );
            return false;
        };
        if !self.is_good_time(sending_time) {
            self.reject(
                msg,
                Rejection::message(SessionRejectReason::SendingTimeAccuracyProblem),
                store,
            );
            self.generate_logout(None, store);
            return false;
        }
        if self.cfg.check_comp_id && !self.is_correct_comp_id(msg) {
            self.reject(
                msg,
                Rejection::message(SessionRejectReason::CompIdProblem),
                store,
            );
            self.generate_logout(None, store);
            return false;
        }
        let seq = seq.unwrap_or(0);
        let expected = store.next_target_seq();
        if check_too_high && seq > expected {
            self.do_target_too_high(msg, seq, store);
            return false;
        }
        if check_too_low && seq < expected {
            self.do_target_too_low(msg, seq, store);
            return false;
        }
        if check_too_high || check_too_low {
            if let Some((_, last)) = self.resend_range {
                if seq >= last {
                    tracing::debug!(session = %self.cfg.id, "resend request satisfied");
                    self.resend_range = None;
                }
            }
        }
        self.last_received = self.now;
        self.test_requests = 0;
        true
    }

    pub(crate) fn is_good_time(&self, sending_time: &[u8]) -> bool {
        if !self.cfg.check_latency {
            return true;
        }
        let Some(t) = parse_utc(sending_time) else {
            return false;
        };
        let delta = self.now.div_euclid(SEC) - t.div_euclid(SEC);
        delta.abs() <= self.cfg.max_latency_secs
    }

    fn is_correct_comp_id(&self, msg: &Message) -> bool {
        msg.get(tags::SENDER_COMP_ID) == Some(self.cfg.id.target_comp_id.as_bytes())
            && msg.get(tags::TARGET_COMP_ID) == Some(self.cfg.id.sender_comp_id.as_bytes())
    }

    fn do_target_too_high(&mut self, msg: &Message, seq: u64, store: &mut dyn MessageStore) {
        tracing::info!(session = %self.cfg.id, seq, expected = store.next_target_seq(), "MsgSeqNum too high");
        self.queue.insert(seq, msg.clone());
        if let Some((first, _)) = self.resend_range {
            if !self.cfg.send_redundant_resend_requests && seq >= first {
                return;
            }
        }
        self.send_resend_request(seq, store);
    }

    /// QuickFIX's answer to a MsgSeqNum below the expected one without
    /// PossDupFlag: Logout with its text, then disconnect at once.
    pub(crate) fn logout_too_low(&mut self, seq: u64, store: &mut dyn MessageStore) {
        let text = format!(
            "MsgSeqNum too low, expecting {} but received {}",
            store.next_target_seq(),
            seq
        );
        tracing::warn!(session = %self.cfg.id, "{text}");
        self.generate_logout(Some(&text), store);
        self.disconnect();
    }

    fn do_target_too_low(&mut self, msg: &Message, seq: u64, store: &mut dyn MessageStore) {
        if !msg.get_flag(tags::POSS_DUP_FLAG) {
            self.logout_too_low(seq, store);
            return;
        }
        // PossDup of something already processed: check OrigSendingTime, then ignore.
        let Some(orig) = msg.get(tags::ORIG_SENDING_TIME) else {
            self.reject(
                msg,
                Rejection::tag(
                    SessionRejectReason::RequiredTagMissing,
                    tags::ORIG_SENDING_TIME,
                ),
                store,
            );
            return;
        };
        let sending = msg.get(tags::SENDING_TIME).and_then(parse_utc);
        if let (Some(orig), Some(sending)) = (parse_utc(orig), sending) {
            if orig > sending {
                self.reject(
                    msg,
                    Rejection::message(SessionRejectReason::SendingTimeAccuracyProblem),
                    store,
                );
                self.generate_logout(None, store);
            }
        }
    }

    /// Checks the session window; outside it, or when a new window has begun
    /// since the store was created, the session is reset and disconnected.
    pub(crate) fn check_session_time(&mut self, store: &mut dyn MessageStore) -> bool {
        let schedule = self.cfg.schedule;
        if schedule.is_always() || schedule.is_same_session(self.now, store.creation_time()) {
            return true;
        }
        let in_window = schedule.is_session_time(self.now);
        if self.is_logged_on() {
            if self.logout_sent_at.is_none() {
                self.generate_logout(None, store);
            }
            self.disconnect();
        } else if !in_window {
            self.disconnect();
        }
        if in_window {
            tracing::info!(session = %self.cfg.id, "new session window: resetting sequence numbers");
            store.reset(self.now);
        }
        in_window && !self.disconnect_pending()
    }
}
