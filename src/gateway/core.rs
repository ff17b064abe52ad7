//! The core thread: owns every session's state machine and store, the venue
//! (engine + order entry) and the batch log. One loop iteration is one batch:
//! take what the connections sent, run it through the sessions (and the
//! venue, synchronously, in sequence order), commit ONE log record, then
//! release the batch's output to the connections (group commit).
//!
//! Nothing here touches a socket; connections are channels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::admin::{AdminCall, AdminReply, AdminRequest, OperatorAction};
use crate::engine::Side;
use crate::gateway::metrics::{self, CoreMetrics, Live};
use crate::session::bucket::Bucket;
use crate::session::config::{Throttle, ThrottleAction};
use crate::session::MessageStore;

use crate::fix::time::{now_utc, UtcNanos};
use crate::fix::Message;
use crate::session::acceptor::{CoreMsg, OutSender, Outgoing, SessionKey};
use crate::session::application::RejectAll;
use crate::session::batch_store::{BatchLog, BatchSessionStore};
use crate::session::state::Action;
use crate::session::{Application, BusinessReject, OutboundMessage, Session, SessionId};
use crate::venue::echo::EchoApp;
use crate::venue::input::VenueInput;
use crate::venue::order_entry::Venue;

mod admin;
mod checkpointer;
mod flusher;
use super::message_log::MessageLog;
use checkpointer::Checkpointer;
use flusher::{Flushed, Flusher};

/// Timer resolution of every session.
const TICK_NS: i64 = 100_000_000;
/// How often the venue is told that time passes (GTD expiry).
const VENUE_TICK_NS: i64 = 1_000_000_000;
/// Largest number of connection messages processed per batch.
pub const MAX_BATCH: usize = 1024;
/// How often a failed store write is retried.
const STORE_RETRY_NS: i64 = 500_000_000;
/// How often the core looks again at a resend waiting for its connection
/// to drain.
const RESEND_POLL_NS: i64 = 1_000_000;
/// Text of the answer to an application message while the store cannot write.
const STORE_DOWN_TEXT: &str =
    "Store cannot write (disk full or I/O error): message not processed; the gateway resumes by itself when writes succeed";

/// The business side of one session.
pub enum AppKind {
    /// QuickFIX's acceptance-test application.
    Echo(EchoApp),
    /// Sessions served by the venue (order entry and the other trading roles).
    Venue,
    /// No application: every application message gets 35=j.
    RejectAll(RejectAll),
}

/// One configured session inside the core.
pub struct Entry {
    /// Protocol state machine.
    pub session: Session,
    /// Its persistent state.
    pub store: BatchSessionStore,
    /// Its application.
    pub app: AppKind,
    conn: Option<(u64, OutSender)>,
    /// Logged out as a slow consumer; disconnect after this batch.
    slow: bool,
    /// Application-message rate limit (`ThrottleRate`).
    bucket: Option<TokenBucket>,
    /// Output waiting for the store: not released until a commit succeeds.
    held: bool,
    /// The venue produced output for this session since the last commit
    /// (whether or not the session stores it: market data is not stored).
    venue_output: bool,
}

/// A session's rate limit, over the batch's UTC time.
#[derive(Debug, Clone)]
struct TokenBucket {
    limit: Throttle,
    bucket: Bucket<UtcNanos>,
}

impl TokenBucket {
    fn new(limit: Throttle) -> TokenBucket {
        TokenBucket {
            limit,
            bucket: Bucket::new(limit.rate, limit.burst, 0),
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self, now: UtcNanos) -> bool {
        self.bucket.try_take(now)
    }

    fn reject(&self, msg: &Message) -> BusinessReject {
        BusinessReject {
            reason: 0,
            text: format!(
                "Throttled: more than {} application messages/s (burst {}); message not processed",
                self.limit.rate, self.limit.burst
            ),
            ref_id: msg.get_str(crate::fix::tags::CL_ORD_ID).map(str::to_string),
        }
    }
}

impl Entry {
    /// A session not connected.
    pub fn new(session: Session, store: BatchSessionStore, app: AppKind) -> Entry {
        Entry {
            bucket: session.config().throttle.map(TokenBucket::new),
            session,
            store,
            app,
            conn: None,
            slow: false,
            held: false,
            venue_output: false,
        }
    }
}

/// Journals an application message and hands it to the venue. Messages the
/// venue produces for this session go back through the session (in order);
/// messages for other sessions are delivered after the current one.
struct VenueApp<'a> {
    venue: &'a mut Venue,
    ts: UtcNanos,
    bucket: Option<&'a mut TokenBucket>,
    /// Set when a message was refused by the rate limit.
    throttled: bool,
    /// The store cannot write: application messages are refused unseen.
    store_down: bool,
    /// Set when the venue processed a message (its answers are venue output).
    applied: bool,
    journal: &'a mut Vec<Bytes>,
    others: &'a mut Vec<(Arc<str>, OutboundMessage)>,
    produced: &'a mut Vec<(Arc<str>, OutboundMessage)>,
}

impl Application for VenueApp<'_> {
    fn from_app(
        &mut self,
        session: &SessionId,
        msg: &Message,
        out: &mut Vec<OutboundMessage>,
    ) -> Result<(), BusinessReject> {
        // Nothing can be journaled: refused before the venue sees it, with
        // "application not available".
        if self.store_down {
            return Err(BusinessReject {
                reason: 4,
                text: STORE_DOWN_TEXT.to_string(),
                ref_id: msg.get_str(crate::fix::tags::CL_ORD_ID).map(str::to_string),
            });
        }
        // Over the limit: refused before the journal, so the venue never
        // sees it (a replay agrees) and only the 35=j is stored.
        if let Some(b) = self.bucket.as_mut() {
            if !b.take(self.ts) {
                self.throttled = true;
                return Err(b.reject(msg));
            }
        }
        let input = VenueInput::Fix {
            session: session.target_comp_id.clone(),
            ts_ns: self.ts.max(0) as u64,
            raw: msg.raw().clone(),
        };
        self.journal.push(crate::arena::build(|b| input.encode(b)));
        self.applied = true;
        self.produced.clear();
        // The journal keeps the frame; the venue takes the message the session
        // already parsed (replay parses the journaled frame instead).
        let result = self.venue.apply_fix(
            &session.target_comp_id,
            self.ts.max(0) as u64,
            msg,
            self.produced,
        );
        for (comp, m) in self.produced.drain(..) {
            if *comp == *session.target_comp_id {
                out.push(m);
            } else {
                self.others.push((comp, m));
            }
        }
        result
    }
}

/// The core's state.
pub struct Core {
    entries: Vec<Entry>,
    by_key: HashMap<SessionKey, usize>,
    by_comp: HashMap<String, usize>,
    conns: HashMap<u64, usize>,
    log: BatchLog,
    venue: Option<Venue>,
    /// The shadow venue that takes checkpoints (none: no checkpoints).
    checkpointer: Option<Checkpointer>,
    journal: Vec<Bytes>,
    others: Vec<(Arc<str>, OutboundMessage)>,
    produced: Vec<(Arc<str>, OutboundMessage)>,
    next_tick: UtcNanos,
    next_venue_tick: UtcNanos,
    /// Set while commits fail (disk full, I/O error): see [`Core::commit_and_release`].
    store_down: Option<StoreDown>,
    metrics: CoreMetrics,
    /// Orders (D, F, G) in the current batch.
    batch_orders: u64,
    /// Admin answers held until the batch is committed.
    admin_replies: Vec<(oneshot::Sender<AdminReply>, AdminReply)>,
    /// The FIX message log of the sessions with FileLogPath.
    msg_log: Option<MessageLog>,
    /// With a pipelined store: the thread that makes written batches durable.
    flusher: Option<Flusher>,
    /// The batch that must be durable before what `release` hands over now
    /// is written (set by `release_all`).
    release_after: u64,
    /// The connections' queue while [`Core::run`] runs: a commit that finds
    /// input waiting in it leaves its flush to the flusher thread.
    inbox: Option<mpsc::Receiver<CoreMsg>>,
    /// Without an inbox (tests driving the core by hand): no input waits,
    /// so flushes run on the core thread (see [`Core::start_flush`]).
    pub(crate) idle: bool,
    /// Compaction while running (`CompactStore`), if on.
    compaction: Option<Compaction>,
}

/// Records deleted per step while a compaction is under way: a step with
/// input waiting deletes only every [`COMPACT_EVERY`]th time.
const COMPACT_CHUNK: usize = 64;
const COMPACT_EVERY: u64 = 32;

/// The journal compacted while running: see [`Core::compact_while_running`].
#[derive(Debug, Default)]
struct Compaction {
    /// The checkpoint start-up restored follows this batch, and it was the
    /// newest stored: the next checkpoint makes it the fallback.
    restored: Option<u64>,
    /// Planned up to this batch.
    upto: u64,
    /// The plan under way: when it was made, how many records it deletes.
    started: Option<(Instant, u64)>,
    /// Steps since the last deletion.
    steps: u64,
}

/// The store stopped writing.
#[derive(Debug, Clone)]
struct StoreDown {
    since: UtcNanos,
    error: String,
    next_retry: UtcNanos,
    attempts: u64,
}

/// What woke the core.
enum Wake {
    Conn(Option<CoreMsg>),
    Admin(Option<AdminCall>),
    Flushed(Flushed),
    Timeout,
}

/// The next admin call, or never when there is no admin channel.
async fn next_admin(rx: &mut Option<mpsc::Receiver<AdminCall>>) -> Option<AdminCall> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next message from the connections (None: every sender is gone).
async fn next_input(rx: &mut Option<mpsc::Receiver<CoreMsg>>) -> Option<CoreMsg> {
    match rx {
        Some(rx) => rx.recv().await,
        None => None,
    }
}

/// Moves messages waiting in `rx` into `batch` until it holds `max`; the
/// rest stay queued for the next batch.
fn take_waiting<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(m) => batch.push(m),
            Err(_) => break,
        }
    }
}

/// The next finished flush, or never without a flusher.
async fn next_flushed(f: &mut Option<Flusher>) -> Flushed {
    match f {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

impl Core {
    /// A core over `entries` (indexed by their session ids).
    pub fn new(entries: Vec<Entry>, log: BatchLog, venue: Option<Venue>) -> Core {
        let mut by_key = HashMap::new();
        let mut by_comp = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            let id = &e.session.config().id;
            by_key.insert(
                (
                    id.begin_string.clone(),
                    id.sender_comp_id.clone(),
                    id.target_comp_id.clone(),
                ),
                i,
            );
            by_comp.insert(id.target_comp_id.clone(), i);
        }
        let names = entries
            .iter()
            .map(|e| e.session.config().id.target_comp_id.clone())
            .collect();
        Core {
            entries,
            by_key,
            by_comp,
            conns: HashMap::new(),
            log,
            venue,
            checkpointer: None,
            journal: Vec::new(),
            others: Vec::new(),
            produced: Vec::new(),
            next_tick: 0,
            next_venue_tick: 0,
            store_down: None,
            metrics: CoreMetrics::new(names),
            batch_orders: 0,
            admin_replies: Vec::new(),
            msg_log: None,
            flusher: None,
            release_after: 0,
            inbox: None,
            idle: false,
            compaction: None,
        }
    }

    /// Compacts the journal while running, as start-up does, each time the
    /// shadow venue stores a checkpoint that makes a newer fallback (see
    /// [`Core::with_checkpoints`]): the records up to that fallback that no
    /// session needs are deleted. `restored`: the batch the checkpoint
    /// start-up restored follows, when it was the newest one stored;
    /// `upto`: how far start-up compacted.
    pub fn compacting(mut self, restored: Option<u64>, upto: u64) -> Core {
        self.compaction = Some(Compaction {
            restored,
            upto,
            ..Compaction::default()
        });
        self
    }

    /// Pipelines the store (with `fsync` flushing; otherwise nothing
    /// changes): the core writes each batch and goes on while a flusher
    /// thread makes it durable; every connection's writer holds a batch's
    /// output until then (`durable` is published to them, see
    /// `session::out_queue`). Returns whether the store is pipelined.
    /// Flushes begin at least `commit_window` apart (see `flusher`).
    pub fn pipeline(
        &mut self,
        durable: tokio::sync::watch::Sender<u64>,
        commit_window: Duration,
    ) -> std::io::Result<bool> {
        self.log.set_pipelined();
        if !self.log.is_pipelined() {
            return Ok(false);
        }
        durable.send_replace(self.log.durable());
        self.flusher = Some(Flusher::start(self.log.backend(), durable, commit_window)?);
        Ok(true)
    }

    /// Logs every session's messages and events to `log` (FileLogPath).
    pub fn with_message_log(mut self, log: Option<MessageLog>) -> Core {
        self.msg_log = log;
        self
    }

    /// Runs the loop on the current (dedicated) thread until every
    /// connection sender is gone or `shutdown` is set (then every session is
    /// logged out, the last batch committed and the connections closed).
    pub fn run(
        mut self,
        rx: mpsc::Receiver<CoreMsg>,
        mut admin: Option<mpsc::Receiver<AdminCall>>,
        shutdown: Arc<AtomicBool>,
        rt: tokio::runtime::Handle,
    ) {
        let mut batch: Vec<CoreMsg> = Vec::with_capacity(MAX_BATCH);
        self.inbox = Some(rx);
        let mut calls: Vec<AdminCall> = Vec::new();
        self.start(now_utc());
        loop {
            if shutdown.load(Ordering::Acquire) {
                self.shutdown(now_utc());
                return;
            }
            let wait = self.wait_time(now_utc());
            let wake = rt.block_on(async {
                tokio::select! {
                    m = next_input(&mut self.inbox) => Wake::Conn(m),
                    a = next_admin(&mut admin) => Wake::Admin(a),
                    f = next_flushed(&mut self.flusher) => Wake::Flushed(f),
                    _ = tokio::time::sleep(wait) => Wake::Timeout,
                }
            });
            match wake {
                Wake::Conn(Some(m)) => batch.push(m),
                Wake::Conn(None) => return,
                Wake::Admin(Some(call)) => calls.push(call),
                Wake::Admin(None) => admin = None,
                Wake::Flushed(f) => self.on_flushed(f, now_utc()),
                Wake::Timeout => {}
            }
            if let Some(rx) = self.inbox.as_mut() {
                take_waiting(rx, &mut batch, MAX_BATCH);
            }
            if let Some(a) = admin.as_mut() {
                while let Ok(call) = a.try_recv() {
                    calls.push(call);
                }
            }
            self.metrics.queue_depth = self.inbox.as_ref().map_or(0, mpsc::Receiver::len);
            self.step(&mut batch, &mut calls, now_utc());
        }
    }

    /// How long the loop may sleep before [`Core::step`] has work of its
    /// own: none while a batch waits to be committed, else until the next
    /// timer (or store retry).
    pub fn wait_time(&self, now: UtcNanos) -> Duration {
        let until = match &self.store_down {
            Some(down) => down.next_retry.min(self.next_tick),
            None if self.has_pending() => now,
            None if self.resend_waiting() => self.next_tick.min(now + RESEND_POLL_NS),
            None => self.next_tick,
        };
        Duration::from_nanos((until - now).clamp(0, TICK_NS) as u64)
    }

    /// One batch at time `now`: the connections' messages and the admin
    /// calls (both drained), timers, market data, then one commit and the
    /// release of the batch's output.
    pub fn step(&mut self, batch: &mut Vec<CoreMsg>, calls: &mut Vec<AdminCall>, now: UtcNanos) {
        let started = Instant::now();
        let batch_len = batch.len();
        for m in batch.drain(..) {
            self.handle(m, now);
        }
        if now >= self.next_tick {
            self.timers(now);
            self.next_tick = now + TICK_NS;
        }
        for (req, reply) in calls.drain(..) {
            let answer = self.admin(req, now);
            self.admin_replies.push((reply, answer));
        }
        self.flush_market_data(now);
        self.check_slow_consumers(now);
        self.commit_and_release(now);
        self.compact_while_running(now);
        if batch_len > 0 {
            self.metrics.batches += 1;
            self.metrics.batch_size.observe(batch_len as f64);
        }
        if self.batch_orders > 0 {
            let took = started.elapsed().as_secs_f64();
            self.metrics
                .order_latency
                .observe_n(took, self.batch_orders);
            self.batch_orders = 0;
        }
        let down = self.store_down.is_some();
        for (reply, answer) in self.admin_replies.drain(..) {
            // An action taken in a batch that is not durable yet is done
            // (it is in memory and committed with the batch), but its
            // caller should know.
            let answer = match answer {
                AdminReply::Json(v) if down && v.get("done").is_some() => AdminReply::Error(
                    503,
                    "the store cannot write: the action is applied but not yet durable".into(),
                ),
                other => other,
            };
            let _ = reply.send(answer);
        }
    }

    /// Has a shadow of the venue, on its own thread, take a checkpoint
    /// every `inputs` journaled inputs (0: never). Call before
    /// [`Core::start`]: the shadow starts from the venue as it is now.
    pub fn with_checkpoints(mut self, inputs: u64) -> std::io::Result<Core> {
        if let (Some(venue), true) = (&self.venue, inputs > 0) {
            self.checkpointer = Some(Checkpointer::spawn(
                venue.clone(),
                inputs,
                self.log.backend(),
                self.compaction.as_ref().and_then(|c| c.restored),
            )?);
        }
        Ok(self)
    }

    /// [`Core::with_checkpoints`] with the shadow on the core's thread
    /// (in-process tests: a run replays exactly).
    pub fn with_inline_checkpoints(mut self, inputs: u64) -> Core {
        if let (Some(venue), true) = (&self.venue, inputs > 0) {
            self.checkpointer = Some(Checkpointer::inline(
                venue.clone(),
                inputs,
                self.log.backend(),
                self.compaction.as_ref().and_then(|c| c.restored),
            ));
        }
        self
    }

    /// The venue, if this gateway runs one.
    pub fn venue(&self) -> Option<&Venue> {
        self.venue.as_ref()
    }

    /// The store of the session with key `key` (`FIX.4.4:FIXGW->CLIENT1`).
    pub fn store(&self, key: &str) -> Option<&BatchSessionStore> {
        self.entries
            .iter()
            .find(|e| e.store.key() == key)
            .map(|e| &e.store)
    }

    /// True while the store cannot write.
    pub fn store_is_down(&self) -> bool {
        self.store_down.is_some()
    }

    /// Graceful shutdown: log every session out, commit, close.
    pub fn shutdown(&mut self, now: UtcNanos) {
        tracing::info!("shutting down: logging out every session");
        for e in &mut self.entries {
            if e.conn.is_some() {
                e.session
                    .force_logout("Gateway shutting down", now, &mut e.store);
            }
        }
        self.flush_market_data(now);
        self.retry_now(now);
        self.commit_and_release(now);
        for i in 0..self.entries.len() {
            self.close(i, now);
        }
        self.flush_market_data(now);
        self.retry_now(now);
        match self
            .log
            .commit_exact(&self.journal, self.entries.iter_mut().map(|e| &mut e.store))
        {
            Ok(_) => {
                if let Some(f) = &self.flusher {
                    f.publish(self.log.durable());
                }
                tracing::info!("core stopped; store committed");
            }
            Err(err) => tracing::error!(
                error = %err,
                inputs = self.journal.len(),
                "core stopped, but the last batch could not be written: its inputs were not acknowledged and its output was not sent"
            ),
        }
    }

    /// Makes the next commit try the store at once.
    fn retry_now(&mut self, now: UtcNanos) {
        if let Some(down) = self.store_down.as_mut() {
            down.next_retry = now;
        }
    }

    /// After a restart no session is connected, but the replayed venue may
    /// still hold state that assumes a connection (subscriptions, orders to
    /// cancel on disconnect): a journaled SessionDown for each such session
    /// ends it, exactly as a disconnect would have.
    pub fn start(&mut self, now: UtcNanos) {
        let Some(venue) = self.venue.as_ref() else {
            return;
        };
        // Every input from here on was processed under this configuration:
        // a replay switches to it here too.
        let configure = VenueInput::Configure {
            ts_ns: now.max(0) as u64,
            config: venue.config_text().to_string(),
        };
        let assumed_up = venue.sessions_assumed_up();
        let switched = self.venue_input(configure, now);
        // The venue runs under it already (`assemble` switched it).
        debug_assert!(switched.is_ok(), "{switched:?}");
        for session in assumed_up {
            tracing::info!(%session, "not connected after restart: ending its subscriptions and cancel-on-disconnect orders");
            let _ = self.venue_input(
                VenueInput::SessionDown {
                    session,
                    ts_ns: now.max(0) as u64,
                },
                now,
            );
        }
        self.flush_market_data(now);
        self.commit_and_release(now);
    }

    /// Sends the batch's market data to its subscribers.
    fn flush_market_data(&mut self, now: UtcNanos) {
        if let Some(venue) = self.venue.as_mut() {
            venue.flush_market_data(&mut self.others);
            self.route_others(now);
        }
    }

    /// A connection whose queue cannot take this batch's output is logged
    /// out (before the commit, so the Logout's MsgSeqNum is durable) and
    /// dropped after the release: it never holds up the core or anyone else.
    fn check_slow_consumers(&mut self, now: UtcNanos) {
        for e in &mut self.entries {
            let Some((_, out)) = &e.conn else {
                continue;
            };
            // Held output is waiting for the store, not for the client.
            if e.held {
                continue;
            }
            // Room is kept for the Logout and the close.
            let pending = e.session.pending_actions();
            if e.slow || pending + 2 <= out.capacity() {
                continue;
            }
            let text = format!(
                "Slow consumer: {} messages queued, limit {} (MaxOutboundQueue); logging out",
                out.max_capacity() - out.capacity() + pending,
                out.max_capacity()
            );
            tracing::warn!(session = %e.session.config().id, "{text}");
            e.session.force_logout(&text, now, &mut e.store);
            e.slow = true;
            self.metrics.slow_consumers += 1;
        }
    }

    /// True when a connected session has a resend waiting for its
    /// connection to drain.
    fn resend_waiting(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.conn.is_some() && e.session.resend_in_progress())
    }

    fn has_pending(&self) -> bool {
        !self.journal.is_empty() || self.entries.iter().any(|e| e.store.is_dirty())
    }

    fn handle(&mut self, m: CoreMsg, now: UtcNanos) {
        match m {
            CoreMsg::Connect {
                conn,
                key,
                logon,
                peer,
                out,
            } => {
                let Some(&i) = self.by_key.get(&key) else {
                    let _ = out.try_send(Outgoing::Close);
                    return;
                };
                if self.entries[i].conn.is_some() {
                    tracing::warn!(%peer, session = %self.entries[i].session.config().id, "session already logged on; closing new connection");
                    let _ = out.try_send(Outgoing::Close);
                    return;
                }
                tracing::info!(%peer, conn, session = %self.entries[i].session.config().id, "connection bound to session");
                self.entries[i].conn = Some((conn, out));
                self.conns.insert(conn, i);
                self.entries[i].session.on_connect(now);
                if let Some(log) = &mut self.msg_log {
                    log.connected(i, now, peer);
                }
                self.deliver(i, logon, now);
            }
            CoreMsg::Frame { conn, msg } => {
                if let Some(&i) = self.conns.get(&conn) {
                    self.deliver(i, msg, now);
                }
            }
            CoreMsg::Closed { conn } => {
                if let Some(i) = self.conns.remove(&conn) {
                    tracing::info!(conn, session = %self.entries[i].session.config().id, "connection closed by peer");
                    self.entries[i].conn = None;
                    self.session_down(i, now);
                }
            }
        }
    }

    /// Feeds one message to session `i` and routes what the venue produced
    /// for other sessions.
    fn deliver(&mut self, i: usize, msg: Message, now: UtcNanos) {
        let msg_type = msg.msg_type();
        metrics::count(&mut self.metrics.msgs_in[i], msg_type);
        if matches!(msg_type, b"D" | b"F" | b"G") {
            self.metrics.orders += 1;
            self.batch_orders += 1;
        }
        if let Some(log) = &mut self.msg_log {
            log.incoming(i, now, msg.raw());
        }
        let e = &mut self.entries[i];
        match &mut e.app {
            AppKind::Echo(app) => e.session.on_message(msg, now, &mut e.store, app),
            AppKind::RejectAll(app) => e.session.on_message(msg, now, &mut e.store, app),
            AppKind::Venue => match self.venue.as_mut() {
                Some(venue) => {
                    let mut app = VenueApp {
                        venue,
                        ts: now,
                        bucket: e.bucket.as_mut(),
                        throttled: false,
                        store_down: self.store_down.is_some(),
                        applied: false,
                        journal: &mut self.journal,
                        others: &mut self.others,
                        produced: &mut self.produced,
                    };
                    e.session.on_message(msg, now, &mut e.store, &mut app);
                    e.venue_output |= app.applied;
                    let throttled = app.throttled;
                    if throttled {
                        self.metrics.throttled += 1;
                        let logout = e
                            .bucket
                            .as_ref()
                            .is_some_and(|b| b.limit.action == ThrottleAction::Logout);
                        if logout {
                            tracing::warn!(session = %e.session.config().id, "rate limit exceeded; logging out (ThrottleAction=logout)");
                            e.session.force_logout(
                                "Throttled: application message rate limit exceeded (ThrottleAction=logout)",
                                now,
                                &mut e.store,
                            );
                        }
                    }
                }
                None => e.session.on_message(msg, now, &mut e.store, &mut RejectAll),
            },
        }
        self.route_others(now);
    }

    fn route_others(&mut self, now: UtcNanos) {
        for (comp, m) in std::mem::take(&mut self.others) {
            match self.by_comp.get(&*comp) {
                Some(&j) => {
                    let e = &mut self.entries[j];
                    e.venue_output = true;
                    e.session.send_app(&m, now, &mut e.store);
                }
                None => {
                    tracing::error!(session = %comp, "venue produced a message for an unknown session")
                }
            }
        }
    }

    /// Applies a venue input produced by the core itself (timers, session
    /// down), journaling it first.
    fn venue_input(&mut self, input: VenueInput, now: UtcNanos) -> Result<(), BusinessReject> {
        let Some(venue) = self.venue.as_mut() else {
            return Ok(());
        };
        let mut encoded = Vec::with_capacity(64);
        input.encode(&mut encoded);
        self.journal.push(Bytes::from(encoded));
        self.produced.clear();
        let result = venue.apply(&input, &mut self.produced);
        self.others.append(&mut self.produced);
        self.route_others(now);
        result
    }

    fn session_down(&mut self, i: usize, now: UtcNanos) {
        if let Some(log) = &mut self.msg_log {
            log.disconnected(i, now);
        }
        let e = &mut self.entries[i];
        let was_venue = matches!(e.app, AppKind::Venue);
        match &mut e.app {
            AppKind::Echo(app) => e.session.on_disconnect(now, &mut e.store, app),
            AppKind::RejectAll(app) => e.session.on_disconnect(now, &mut e.store, app),
            AppKind::Venue => e.session.on_disconnect(now, &mut e.store, &mut RejectAll),
        }
        while e.session.poll_action().is_some() {}
        if was_venue {
            let session = e.session.config().id.target_comp_id.clone();
            let _ = self.venue_input(
                VenueInput::SessionDown {
                    session,
                    ts_ns: now.max(0) as u64,
                },
                now,
            );
        }
    }

    fn timers(&mut self, now: UtcNanos) {
        for e in &mut self.entries {
            if e.conn.is_some() {
                e.session.on_timer(now, &mut e.store);
            }
        }
        // Time-driven venue work (GTD expiry) waits while nothing can be journaled.
        if self.venue.is_some() && self.store_down.is_none() && now >= self.next_venue_tick {
            self.next_venue_tick = now + VENUE_TICK_NS;
            let _ = self.venue_input(
                VenueInput::Tick {
                    ts_ns: now.max(0) as u64,
                },
                now,
            );
        }
    }

    /// Commits the batch, then releases its output.
    ///
    /// When the store cannot write (disk full, I/O error) nothing the venue
    /// produced is released and the sessions stay up: the failed batch (and
    /// venue work that must still happen, such as a disconnect's cancels)
    /// stays pending and is retried every `STORE_RETRY_NS`; sessions with
    /// such output are *held* (their output waits, in order, for the
    /// commit); every application message is refused with a
    /// BusinessMessageReject before the venue sees it; and the other
    /// sessions keep exchanging heartbeats and rejects, whose MsgSeqNums are
    /// covered by the reservation of the last commit ([`SEQ_RESERVE`]); a
    /// session that uses its reservation up is held too. The first commit
    /// that succeeds writes everything and releases it all.
    ///
    /// [`SEQ_RESERVE`]: crate::session::batch_store::SEQ_RESERVE
    fn commit_and_release(&mut self, now: UtcNanos) {
        // A retry may reopen the store; not while a flush of the flusher
        // thread is yet to begin (with a commit window it waits): begun
        // after the reopen, before the rewrite, it would publish batches
        // the reopened store does not hold yet.
        let flushing = self.flusher.as_ref().is_some_and(|f| f.busy());
        if self
            .store_down
            .as_ref()
            .is_some_and(|d| now < d.next_retry || flushing)
        {
            self.release_all(now, true);
            return;
        }
        // Pipelined, a commit only writes, unless an admin answer waits for
        // it (or the store recovers: then it waits for everything). Each
        // batch is still its own record: `journal verify` replays a record
        // as one batch (market data is aggregated per batch).
        let flush = !self.admin_replies.is_empty();
        let started = Instant::now();
        let result = self.log.commit_flushing(
            &self.journal,
            self.entries.iter_mut().map(|e| &mut e.store),
            flush,
        );
        match result {
            Ok(written) => {
                if written && (flush || self.flusher.is_none()) {
                    let took = started.elapsed().as_secs_f64();
                    self.metrics.commit_seconds.observe(took);
                }
                self.hand_to_checkpointer(written);
                self.journal.clear();
                self.flush_written();
                if let Some(down) = self.store_down.take() {
                    tracing::warn!(
                        down_for_ms = (now - down.since) / 1_000_000,
                        attempts = down.attempts,
                        "store writes again: held output released, orders accepted again"
                    );
                }
                for e in &mut self.entries {
                    e.held = false;
                    e.venue_output = false;
                }
                self.start_flush(self.input_idle(), now);
                if self.store_down.is_some() {
                    // The flush (on this thread) failed: the batch is
                    // written, not durable, and waits like an unwritten one.
                    self.release_all(now, true);
                    return;
                }
            }
            Err(err) => {
                self.store_failed(err.to_string(), now);
                self.release_all(now, true);
                return;
            }
        }
        self.release_all(now, false);
    }

    /// After a commit: hands the batch's inputs (if it wrote a record with
    /// any) to the shadow venue.
    fn hand_to_checkpointer(&mut self, written: bool) {
        let Some(c) = &mut self.checkpointer else {
            return;
        };
        if written && !self.journal.is_empty() {
            let capacity = self.journal.capacity();
            let inputs = std::mem::replace(&mut self.journal, Vec::with_capacity(capacity));
            if !c.committed(self.log.last_written(), inputs, self.log.durable()) {
                self.checkpointer = None;
            }
        }
    }

    /// Plans a compaction when the shadow venue stored a checkpoint that
    /// made a newer fallback, and deletes a chunk of the planned records:
    /// every step with no input waiting, else every [`COMPACT_EVERY`]th.
    /// The plan runs on this thread, once per checkpoint (see
    /// `BatchLog::plan_compaction`); the deletions are written with the
    /// next batches and durable with their flush.
    fn compact_while_running(&mut self, now: UtcNanos) {
        let idle = self.input_idle();
        let Some(c) = self.compaction.as_mut() else {
            return;
        };
        let fallback = self.checkpointer.as_ref().map_or(0, Checkpointer::fallback);
        if fallback > c.upto && c.started.is_none() {
            c.upto = fallback;
            let started = Instant::now();
            let planned = self
                .log
                .plan_compaction(fallback, self.entries.iter().map(|e| &e.store));
            if planned > 0 {
                tracing::info!(
                    up_to_batch = fallback,
                    records = planned,
                    planned_us = started.elapsed().as_micros() as u64,
                    "store compaction while running: deleting the records a checkpoint and its fallback cover and no session needs"
                );
                c.started = Some((started, planned));
            }
        }
        let Some((started, planned)) = c.started else {
            return;
        };
        c.steps += 1;
        if self.store_down.is_some() || !(idle || c.steps >= COMPACT_EVERY) {
            return;
        }
        c.steps = 0;
        match self.log.compact_some(COMPACT_CHUNK) {
            Ok(n) => self.metrics.compacted_records += n,
            Err(e) => {
                c.started = None;
                tracing::warn!(error = %e, "store compaction stopped; the next start compacts the rest");
                self.store_failed(e.to_string(), now);
                return;
            }
        }
        if self.log.compaction_pending() == 0 {
            c.started = None;
            tracing::info!(
                up_to_batch = c.upto,
                removed = planned,
                took_ms = started.elapsed().as_millis() as u64,
                "store compacted while running"
            );
        }
    }

    /// Tells the writers what is durable, and the flusher what is written.
    fn flush_written(&self) {
        if let Some(f) = &self.flusher {
            f.publish(self.log.durable());
            f.written(self.log.last_written());
        }
    }

    /// True when no input waits for the core now (checked at commit time:
    /// at full load input arrives while a batch is processed, and a flush
    /// here would keep it waiting for the fsync).
    fn input_idle(&self) -> bool {
        self.inbox
            .as_ref()
            .map_or(self.idle, mpsc::Receiver::is_empty)
    }

    /// Makes what was written durable, unless a flush runs (the next batch
    /// after its end calls this again) or the store is down (its retry
    /// flushes). With nothing waiting (`idle`), the flush runs here, before
    /// the batch's release: the core has nothing to do meanwhile, two
    /// thread wake-ups per flush are saved (the flusher's, the core's at
    /// its end), and the release can then write to the sockets itself
    /// (`OutSender::send_durable`) instead of waking each writer. With
    /// input waiting, or while the last flush's commit window runs, the
    /// flusher thread takes it (after the window, with every batch written
    /// by then) and the core goes on.
    fn start_flush(&mut self, idle: bool, now: UtcNanos) {
        if self.store_down.is_some() {
            return;
        }
        let Some(f) = self.flusher.as_mut() else {
            return;
        };
        let written = self.log.last_written();
        if self.log.durable() >= written || f.busy() {
            return;
        }
        if idle && f.may_start() {
            let done = f.flush_here(written);
            self.on_flushed(done, now);
        } else {
            f.request(written);
        }
    }

    /// Waits for the running flush of the flusher thread, if any, and
    /// takes its outcome as the run loop does; false when none ran. For
    /// tests that drive the core by hand (`gateway::harness`).
    pub fn wait_flushed(&mut self, now: UtcNanos) -> bool {
        let Some(done) = self.flusher.as_mut().and_then(Flusher::wait) else {
            return false;
        };
        self.on_flushed(done, now);
        true
    }

    /// A flush of the flusher thread ended.
    fn on_flushed(&mut self, f: Flushed, now: UtcNanos) {
        match f.result {
            Ok(()) => {
                // The flush published `upto` to the writers itself.
                self.metrics.commit_seconds.observe(f.took.as_secs_f64());
                self.log.flushed(f.upto);
                if let Some(c) = &mut self.checkpointer {
                    c.durable(self.log.durable());
                }
            }
            // Already durable through a later flush: nothing is lost.
            Err(_) if f.upto <= self.log.durable() => {}
            Err(err) => {
                // What was written since the last durable batch is written
                // again by the next commit (the store's retry), which waits
                // for it; until then its output stays with the writers.
                self.log.flush_failed();
                self.store_failed(err.to_string(), now);
            }
        }
    }

    /// A write or flush failed: the store is down until a retry succeeds.
    fn store_failed(&mut self, err: String, now: UtcNanos) {
        if let Some(down) = self.store_down.as_mut() {
            down.attempts += 1;
            down.next_retry = now + STORE_RETRY_NS;
            if down.error != err {
                tracing::error!(error = %err, "store still cannot write");
                down.error = err;
            }
            return;
        }
        tracing::error!(error = %err, "store cannot write: refusing application messages, holding unwritten output, retrying");
        self.metrics.store_failures += 1;
        // Everything the venue produced, and every stored message, came from
        // a batch that is not durable: it waits for the store.
        for e in &mut self.entries {
            e.held |= e.venue_output || e.store.has_unwritten_messages();
        }
        self.store_down = Some(StoreDown {
            since: now,
            error: err,
            next_retry: now + STORE_RETRY_NS,
            attempts: 1,
        });
    }

    /// Releases the output of every session, then closes the connections
    /// that must close. While the store is down only sessions that are not
    /// held release, and only if their MsgSeqNums are within the durable
    /// reservation; a session past it, or given venue output (a
    /// disconnect's cancels, the market data they move), is held from then
    /// on.
    ///
    /// Closing comes last because a close journals the session's
    /// SessionDown after the commit: what that produces (cancels on
    /// disconnect and their drop copies) belongs to the next batch, and
    /// must not reach a session released later in this loop before that
    /// batch is durable.
    fn release_all(&mut self, now: UtcNanos, store_down: bool) {
        // The batch the output depends on (see `release`): the record that
        // will hold what is not written yet, else the last one written; while
        // the store is down, only sessions whose state is durable release.
        self.release_after = if store_down {
            self.log.durable()
        } else if self.has_pending() {
            self.log.next_batch()
        } else {
            self.log.last_written()
        };
        let mut closing = Vec::new();
        for i in 0..self.entries.len() {
            if store_down {
                let e = &mut self.entries[i];
                // A session whose state went into a batch that is not
                // durable (pipelined store) waits with that batch.
                e.held |= e.venue_output
                    || !e.store.within_reservation()
                    || e.store.last_batch() > self.log.durable();
                if e.held {
                    continue;
                }
            }
            if self.release(i, now) {
                closing.push(i);
            }
        }
        for i in closing {
            self.close(i, now);
        }
        if let Some(log) = &mut self.msg_log {
            log.end_batch();
        }
    }

    /// Hands session `i`'s output to its connection, all of it at once.
    /// Returns true when the connection must then be closed (the caller
    /// closes it).
    fn release(&mut self, i: usize, now: UtcNanos) -> bool {
        // A resend reads the store: while it fails, the resend waits.
        let store_down = self.store_down.is_some();
        let e = &mut self.entries[i];
        let Some((_, out)) = &e.conn else {
            while e.session.poll_action().is_some() {}
            return false;
        };
        let mut frames: Vec<Bytes> = Vec::new();
        let mut room = out.capacity();
        let mut disconnect = false;
        if e.slow {
            // As much as fits, then the Logout (the last message), then close.
            let mut sends = Vec::new();
            while let Some(a) = e.session.poll_action() {
                if let Action::Send(b) = a {
                    sends.push(b);
                }
            }
            let logout = sends.pop();
            // Room is kept for the Logout.
            let fit = sends.len().min(room.saturating_sub(2));
            frames.extend(sends.into_iter().take(fit));
            frames.extend(logout.filter(|_| room > fit));
            disconnect = true;
        } else {
            loop {
                while let Some(a) = e.session.poll_action() {
                    match a {
                        Action::Send(_) if room == 0 => {
                            tracing::warn!(session = %e.session.config().id, "outbound queue full (slow consumer); disconnecting");
                            disconnect = true;
                            break;
                        }
                        Action::Send(b) => {
                            frames.push(b);
                            room -= 1;
                        }
                        Action::Disconnect => {
                            disconnect = true;
                            break;
                        }
                    }
                }
                // A long resend goes out chunk by chunk as the connection
                // drains (the core polls while one waits: `wait_time`), and
                // waits while the store is down. Its messages are durable
                // already; what waits behind it was produced by batches
                // already committed.
                if disconnect
                    || store_down
                    || !e.session.resend_in_progress()
                    || room < out.max_capacity() / 2
                {
                    break;
                }
                e.session.continue_resend(&mut e.store);
            }
            if disconnect {
                while e.session.poll_action().is_some() {}
            }
        }
        for b in &frames {
            count_sent(&mut self.metrics, i, b);
            if let Some(log) = self.msg_log.as_mut() {
                log.outgoing(i, now, b);
            }
        }
        if !frames.is_empty() {
            if self.release_after <= self.log.durable() {
                out.send_durable(frames);
            } else {
                // Written once the batch it depends on is durable.
                out.try_send_after(Outgoing::Data(frames), self.release_after);
            }
        }
        disconnect
    }

    fn close(&mut self, i: usize, now: UtcNanos) {
        self.entries[i].slow = false;
        if let Some((conn, out)) = self.entries[i].conn.take() {
            let _ = out.try_send(Outgoing::Close);
            self.conns.remove(&conn);
            self.session_down(i, now);
        }
    }
}

/// Counts a message handed to a connection (and a session-level reject by reason).
fn count_sent(m: &mut CoreMetrics, i: usize, frame: &Bytes) {
    let t = metrics::msg_type_of(frame);
    metrics::count(&mut m.msgs_out[i], t);
    let (kind, reason_tag) = match t {
        b"3" => ("session", crate::fix::tags::SESSION_REJECT_REASON),
        b"j" => ("business", crate::fix::tags::BUSINESS_REJECT_REASON),
        _ => return,
    };
    // Rejects are rare: the message parser reads the reason.
    let reason = Message::parse(frame.clone())
        .ok()
        .and_then(|msg| msg.get_str(reason_tag).map(str::to_string))
        .unwrap_or_default();
    *m.session_rejects
        .entry((kind.to_string(), reason))
        .or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_batch_leaves_the_rest_queued() {
        let (tx, mut rx) = mpsc::channel(16);
        for i in 0..10 {
            tx.try_send(i).unwrap();
        }
        let mut batch = vec![100];
        take_waiting(&mut rx, &mut batch, 4);
        assert_eq!(batch, [100, 0, 1, 2]);
        // Nothing taken off the queue was dropped: the next batch goes on
        // from the first message left.
        let mut next = Vec::new();
        take_waiting(&mut rx, &mut next, 100);
        assert_eq!(next, (3..10).collect::<Vec<_>>());
        assert!(rx.is_empty());
    }
}
