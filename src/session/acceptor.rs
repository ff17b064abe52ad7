//! The tokio acceptor: listens on each configured port, frames bytes with
//! [`FixCodec`], routes a connection to its session by the Logon's CompIDs,
//! and drives the session's state machine. It owns sockets and timers and
//! nothing else.
//!
//! Per read batch: feed every frame already buffered to the session, flush
//! the store once, then write everything the batch produced (group commit).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

use crate::fix::time::now_utc;
use crate::fix::{FixCodec, Message};

use super::application::Application;
use super::config::SessionConfig;
use super::state::{Action, Session};
use super::store::MessageStore;

/// Timer resolution of every session.
const TICK: Duration = Duration::from_millis(100);
/// How long to drain a closing connection's input (avoids TCP resets).
const DRAIN_ON_CLOSE: Duration = Duration::from_millis(500);
/// Largest number of frames processed between two store flushes.
const MAX_BATCH: usize = 256;

/// A session's state machine, store and application, owned by whichever
/// connection is logged on to it.
pub struct SessionParts {
    /// The protocol state machine.
    pub session: Session,
    /// Its persistent store.
    pub store: Box<dyn MessageStore>,
    /// The business side.
    pub app: Box<dyn Application + Send>,
}

/// A configured session: its parts when no connection holds them.
pub struct SessionSlot {
    /// Settings.
    pub config: Arc<SessionConfig>,
    parts: Mutex<Option<SessionParts>>,
}

impl SessionSlot {
    /// A slot holding the given parts.
    pub fn new(config: Arc<SessionConfig>, parts: SessionParts) -> SessionSlot {
        SessionSlot {
            config,
            parts: Mutex::new(Some(parts)),
        }
    }

    fn take(&self) -> Option<SessionParts> {
        self.parts.lock().ok()?.take()
    }

    fn put_back(&self, parts: SessionParts) {
        if let Ok(mut g) = self.parts.lock() {
            *g = Some(parts);
        }
    }

    /// Runs `f` on the parts if no connection holds them (admin/CLI use).
    pub fn with_idle<R>(&self, f: impl FnOnce(&mut SessionParts) -> R) -> Option<R> {
        let mut g = self.parts.lock().ok()?;
        g.as_mut().map(f)
    }
}

/// Acceptor-wide settings.
#[derive(Debug, Clone)]
pub struct AcceptorOptions {
    /// MaxMessageSize.
    pub max_message_size: usize,
    /// ValidateLengthAndChecksum.
    pub validate_length_and_checksum: bool,
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// LogonTimeout before a connection is routed.
    pub logon_timeout: Duration,
}

/// Sessions keyed by (BeginString, our CompID, their CompID).
pub type SessionTable = HashMap<(String, String, String), Arc<SessionSlot>>;

/// The acceptor: a table of sessions shared by every listener.
pub struct Acceptor {
    sessions: Arc<SessionTable>,
    options: AcceptorOptions,
}

impl Acceptor {
    /// An acceptor for the given sessions.
    pub fn new(sessions: SessionTable, options: AcceptorOptions) -> Acceptor {
        Acceptor {
            sessions: Arc::new(sessions),
            options,
        }
    }

    /// The session table.
    pub fn sessions(&self) -> &Arc<SessionTable> {
        &self.sessions
    }

    /// Accepts connections on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let me = self.clone();
                    tokio::spawn(async move { me.handle(stream, peer).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn handle(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        if self.options.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let (read, mut write) = stream.into_split();
        let codec = FixCodec::new(
            self.options.max_message_size,
            self.options.validate_length_and_checksum,
        );
        let mut frames = FramedRead::new(read, codec);
        let Some((logon, slot, mut parts)) = self.route(&mut frames, peer).await else {
            drain_and_close(frames, write).await;
            return;
        };
        tracing::info!(%peer, session = %slot.config.id, "connection bound to session");
        let p = &mut parts;
        p.session.on_connect(now_utc());
        p.session
            .on_message(logon, now_utc(), p.store.as_mut(), p.app.as_mut());
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut out = BytesMut::with_capacity(4096);
        let mut closed_by_peer = false;
        loop {
            if !flush_and_write(p, &mut out, &mut write).await {
                break;
            }
            tokio::select! {
                frame = frames.next() => {
                    let Some(first) = next_message(frame, &slot) else {
                        closed_by_peer = true;
                        break;
                    };
                    let mut batch = 0;
                    let mut next = first;
                    loop {
                        if let Some(m) = next {
                            p.session.on_message(m, now_utc(), p.store.as_mut(), p.app.as_mut());
                        }
                        batch += 1;
                        if batch >= MAX_BATCH || p.session.disconnect_pending() {
                            break;
                        }
                        match frames.next().now_or_never() {
                            Some(frame) => match next_message(frame, &slot) {
                                Some(m) => next = m,
                                None => { closed_by_peer = true; break; }
                            },
                            None => break,
                        }
                    }
                    if closed_by_peer {
                        let _ = flush_and_write(p, &mut out, &mut write).await;
                        break;
                    }
                }
                _ = ticker.tick() => {
                    p.session.on_timer(now_utc(), p.store.as_mut());
                }
            }
        }
        p.session
            .on_disconnect(now_utc(), p.store.as_mut(), p.app.as_mut());
        if let Err(e) = p.store.flush() {
            tracing::error!(session = %slot.config.id, error = %e, "store flush failed on disconnect");
        }
        tracing::info!(%peer, session = %slot.config.id, closed_by_peer, "session disconnected");
        slot.put_back(parts);
        if !closed_by_peer {
            drain_and_close(frames, write).await;
        }
    }

    /// Reads until the first parseable message and finds its session. Any
    /// failure (not a Logon, unknown CompIDs, session busy) closes the
    /// connection without a byte sent.
    async fn route(
        &self,
        frames: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, FixCodec>,
        peer: SocketAddr,
    ) -> Option<(Message, Arc<SessionSlot>, SessionParts)> {
        let deadline = tokio::time::Instant::now() + self.options.logon_timeout;
        let msg = loop {
            let frame = tokio::time::timeout_at(deadline, frames.next()).await;
            match frame {
                Err(_) => {
                    tracing::info!(%peer, "no Logon within LogonTimeout; closing");
                    return None;
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    tracing::warn!(%peer, error = %e, "closing connection");
                    return None;
                }
                Ok(Some(Ok(bytes))) => match Message::parse(bytes) {
                    Ok(m) => break m,
                    Err(e) => tracing::debug!(%peer, error = %e, "dropping unparseable frame"),
                },
            }
        };
        if msg.msg_type() != b"A" {
            tracing::info!(%peer, "first message is not a Logon; closing");
            return None;
        }
        let key = (
            String::from_utf8_lossy(msg.begin_string()).into_owned(),
            msg.get_str(crate::fix::tags::TARGET_COMP_ID)?.to_string(),
            msg.get_str(crate::fix::tags::SENDER_COMP_ID)?.to_string(),
        );
        let Some(slot) = self.sessions.get(&key).cloned() else {
            tracing::warn!(%peer, begin = %key.0, sender = %key.2, target = %key.1, "Logon for unknown session; closing");
            return None;
        };
        let Some(parts) = slot.take() else {
            tracing::warn!(%peer, session = %slot.config.id, "session already logged on; closing new connection");
            return None;
        };
        Some((msg, slot, parts))
    }
}

/// Unwraps one framed read: `None` = connection over; `Some(None)` = frame dropped.
fn next_message(
    frame: Option<Result<Bytes, crate::fix::FrameError>>,
    slot: &SessionSlot,
) -> Option<Option<Message>> {
    match frame {
        None => None,
        Some(Err(e)) => {
            tracing::warn!(session = %slot.config.id, error = %e, "closing connection");
            None
        }
        Some(Ok(bytes)) => match Message::parse(bytes) {
            Ok(m) => Some(Some(m)),
            Err(e) => {
                tracing::debug!(session = %slot.config.id, error = %e, "dropping garbled message");
                Some(None)
            }
        },
    }
}

/// Flushes the store, then writes every pending Send. Returns false when the
/// connection must close (Disconnect requested or write failed).
async fn flush_and_write(
    p: &mut SessionParts,
    out: &mut BytesMut,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
) -> bool {
    let mut disconnect = false;
    out.clear();
    while let Some(a) = p.session.poll_action() {
        match a {
            Action::Send(b) => out.extend_from_slice(&b),
            Action::Disconnect => {
                disconnect = true;
                break;
            }
        }
    }
    if let Err(e) = p.store.flush() {
        // Nothing that is not durable may leave: drop the output and the connection.
        tracing::error!(session = %p.session.config().id, error = %e, "store flush failed; disconnecting");
        return false;
    }
    if !out.is_empty() && write.write_all(out).await.is_err() {
        return false;
    }
    !disconnect
}

async fn drain_and_close(
    frames: FramedRead<tokio::net::tcp::OwnedReadHalf, FixCodec>,
    mut write: tokio::net::tcp::OwnedWriteHalf,
) {
    let _ = write.shutdown().await;
    let mut read = frames.into_inner();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(DRAIN_ON_CLOSE, async {
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
