//! Runs the gateway's core in-process, without sockets or threads: the test
//! (or the deterministic simulation) plays the connections through the same
//! channels the acceptor uses, chooses the time of every batch and chooses
//! the storage backend (a disk that fails on demand, one that loses
//! unflushed writes on a simulated crash).
//!
//! A "restart" is dropping the harness and opening a new one on the same
//! backend storage: it recovers exactly as `fixgw run` does ([`assemble`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::admin::{AdminCall, AdminReply, AdminRequest};
use crate::engine::VenueConfig;
use crate::fix::encoder::Encoder;
use crate::fix::time::{Precision, UtcNanos};
use crate::fix::Message;
use crate::session::acceptor::{CoreMsg, Outgoing, Route, SessionKey};
use crate::session::batch_store::{BatchLog, FlushMode, Replay};
use crate::session::log_backend::LogBackend;
use crate::session::out_queue::{out_queue, OutReceiver};
use crate::session::settings::GatewaySettings;

use super::core::Core;
use super::{assemble, build_venue};

/// The core of a gateway, driven by hand.
pub struct Harness {
    core: Core,
    routes: HashMap<SessionKey, Route>,
    next_conn: u64,
    batch: Vec<CoreMsg>,
    calls: Vec<AdminCall>,
    /// The last durable batch, as the connections' writers learn it
    /// ([`Harness::pipeline_threaded`]; None: output is handed over as the
    /// core releases it).
    durable: Option<tokio::sync::watch::Receiver<u64>>,
}

/// One simulated connection: what the core sends to it arrives in `rx`.
pub struct Conn {
    /// Connection number.
    pub id: u64,
    rx: OutReceiver,
    closed: bool,
}

impl Conn {
    /// Every message the core released to this connection since the last
    /// call, in order.
    pub fn drain(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(o) = self.rx.try_recv() {
            match o {
                Outgoing::Data(frames) => out.extend(
                    frames
                        .into_iter()
                        .map(|b| Message::parse(b).expect("the core sent a bad frame")),
                ),
                Outgoing::Close => self.closed = true,
            }
        }
        out
    }

    /// True once the core closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

impl Harness {
    /// Recovers the log on `backend` and builds the core as `fixgw run`
    /// would, then runs its start-up batch at `now`.
    pub fn open(
        settings: &GatewaySettings,
        venue: Option<&VenueConfig>,
        backend: Arc<dyn LogBackend>,
        now: UtcNanos,
    ) -> anyhow::Result<Harness> {
        let venue = venue.map(|v| build_venue(settings, v)).transpose()?;
        let (log, recovered) =
            BatchLog::open_on(backend, FlushMode::Fsync, Replay::SinceCheckpoint)?;
        let (core, routes) = assemble(settings, venue, log, recovered, now)?;
        let mut core = core.with_inline_checkpoints(settings.checkpoint_inputs);
        core.start(now);
        Ok(Harness {
            core,
            routes,
            next_conn: 1,
            batch: Vec::new(),
            calls: Vec::new(),
            durable: None,
        })
    }

    /// Pipelines the store as `fixgw run` does under `fsync`, with the core
    /// always idle between steps: each step's batch is flushed on the core
    /// thread before its release (deterministic; see `Core::start_flush`).
    pub fn pipeline(&mut self) -> anyhow::Result<()> {
        self.pipeline_with(std::time::Duration::ZERO, true)?;
        Ok(())
    }

    /// Pipelines the store with the flusher thread doing every flush, at
    /// least `window` apart, as `fixgw run --commit-window` does under
    /// load (the core never idle). A connection's output then waits for
    /// its batch to be durable, and a flush's end reaches the core only
    /// through [`Harness::wait_flushed`].
    pub fn pipeline_threaded(&mut self, window: std::time::Duration) -> anyhow::Result<()> {
        self.durable = Some(self.pipeline_with(window, false)?);
        Ok(())
    }

    /// Pipelines the store with flushes at least `window` apart, the core
    /// `idle` (flushing itself) or not (the flusher thread flushes); returns
    /// where the last durable batch is published.
    fn pipeline_with(
        &mut self,
        window: std::time::Duration,
        idle: bool,
    ) -> anyhow::Result<tokio::sync::watch::Receiver<u64>> {
        let (durable, rx) = tokio::sync::watch::channel(0);
        self.core.pipeline(durable, window)?;
        self.core.idle = idle;
        Ok(rx)
    }

    /// Waits for the running flush of the flusher thread, if any, and
    /// hands its outcome to the core at `now` (false when none ran).
    pub fn wait_flushed(&mut self, now: UtcNanos) -> bool {
        self.core.wait_flushed(now)
    }

    /// The core (read-only views: sessions, stores, venue).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// A new connection whose first message is `logon` (the acceptor has
    /// already checked credentials and routed it to its session). Delivered
    /// at the next [`Harness::step`].
    pub fn connect(&mut self, logon: Message) -> Conn {
        let key = (
            String::from_utf8_lossy(logon.begin_string()).into_owned(),
            logon.get_str(56).unwrap_or_default().to_string(),
            logon.get_str(49).unwrap_or_default().to_string(),
        );
        let queue = self.routes.get(&key).map_or(1024, |r| r.queue);
        let (tx, rx) = out_queue(queue, self.durable.clone());
        let id = self.next_conn;
        self.next_conn += 1;
        self.batch.push(CoreMsg::Connect {
            conn: id,
            key,
            logon,
            peer: SocketAddr::from(([127, 0, 0, 1], 40_000 + (id % 20_000) as u16)),
            out: tx,
        });
        Conn {
            id,
            rx,
            closed: false,
        }
    }

    /// A message from a connection, delivered at the next step.
    pub fn send(&mut self, conn: &Conn, msg: Message) {
        self.batch.push(CoreMsg::Frame { conn: conn.id, msg });
    }

    /// The connection dropped (seen at the next step).
    pub fn disconnect(&mut self, conn: &mut Conn) {
        conn.closed = true;
        self.batch.push(CoreMsg::Closed { conn: conn.id });
    }

    /// An admin request, answered after the next step.
    pub fn admin(&mut self, req: AdminRequest) -> oneshot::Receiver<AdminReply> {
        let (tx, rx) = oneshot::channel();
        self.calls.push((req, tx));
        rx
    }

    /// One core batch at `now` with everything queued since the last one.
    pub fn step(&mut self, now: UtcNanos) {
        self.core.step(&mut self.batch, &mut self.calls, now);
    }

    /// A graceful stop at `now` (sessions logged out, last batch committed).
    pub fn shutdown(mut self, now: UtcNanos) {
        self.core.shutdown(now);
    }
}

/// The client side of a FIX session: numbers and encodes what it sends.
pub struct FixClient {
    /// Our SenderCompID (the gateway's TargetCompID).
    pub sender: String,
    /// The gateway's CompID.
    pub target: String,
    /// MsgSeqNum of our next message.
    pub next_out: u64,
}

impl FixClient {
    /// A client `sender` talking to the gateway `target`, starting at 1.
    pub fn new(sender: &str, target: &str) -> FixClient {
        FixClient {
            sender: sender.to_string(),
            target: target.to_string(),
            next_out: 1,
        }
    }

    /// Our next message, with the standard header and SendingTime `now`.
    pub fn message(&mut self, msg_type: &str, fields: &[(i32, &str)], now: UtcNanos) -> Message {
        let seq = self.next_out;
        self.next_out += 1;
        self.message_at(seq, msg_type, fields, now)
    }

    /// A message with an explicit MsgSeqNum (resends, tests of gaps).
    pub fn message_at(
        &self,
        seq: u64,
        msg_type: &str,
        fields: &[(i32, &str)],
        now: UtcNanos,
    ) -> Message {
        let mut e = Encoder::new();
        e.start(msg_type.as_bytes())
            .field_int(34, seq as i64)
            .field(49, self.sender.as_bytes())
            .field_time(52, now, Precision::Millis)
            .field(56, self.target.as_bytes());
        for (t, v) in fields {
            e.field(*t, v.as_bytes());
        }
        let frame = Bytes::copy_from_slice(e.finish(b"FIX.4.4"));
        Message::parse(frame).expect("encoded frame parses")
    }

    /// A Logon with HeartBtInt `hb` and extra fields.
    pub fn logon(&mut self, hb: u32, extra: &[(i32, &str)], now: UtcNanos) -> Message {
        let hb = hb.to_string();
        let mut fields = vec![(98, "0"), (108, hb.as_str())];
        fields.extend_from_slice(extra);
        self.message("A", &fields, now)
    }
}
