//! The tokio acceptor: listens, frames bytes with [`FixCodec`], routes a new
//! connection by its Logon's CompIDs, and shuttles messages between the
//! socket and the core thread that owns every session. It owns sockets and
//! nothing else: no session state, no store.
//!
//! Before a connection is routed, anything wrong (not a Logon, an unknown
//! session, a garbled stream, LogonTimeout) closes it without a byte sent.
//!
//! On a TLS port the handshake runs in the connection's own task and must
//! finish, together with the Logon, within LogonTimeout; a failed handshake
//! closes that connection only and is logged with the peer's address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::FramedRead;

use super::bucket::Bucket;
use super::config::Throttle;
use crate::fix::{tags, FixCodec, FrameError, Message};

/// (BeginString, our CompID, their CompID).
pub type SessionKey = (String, String, String);

/// How long to keep reading a connection we closed (avoids TCP resets).
const DRAIN_ON_CLOSE: Duration = Duration::from_millis(500);

/// A session with a rate limit (ThrottleRate, ThrottleBurst) has its
/// connection read at no more than this many times that rate and burst.
/// Up to there every message reaches the core, and the excess over the
/// limit gets its 35=j; beyond it the socket is simply not read (TCP
/// backpressure), so a flooding client cannot fill the core's queue (which
/// every session shares, first come first served) or make the gateway
/// store a reject for each of its messages.
pub const THROTTLE_READ_FACTOR: f64 = 10.0;

/// From a connection to the core.
#[derive(Debug)]
pub enum CoreMsg {
    /// A connection sent a Logon for a configured session.
    Connect {
        /// Connection number.
        conn: u64,
        /// The session it asks for.
        key: SessionKey,
        /// The Logon.
        logon: Message,
        /// Remote address.
        peer: SocketAddr,
        /// Where to send its bytes.
        out: OutSender,
    },
    /// A parsed frame from a routed connection.
    Frame {
        /// Connection number.
        conn: u64,
        /// The message.
        msg: Message,
    },
    /// The connection is gone.
    Closed {
        /// Connection number.
        conn: u64,
    },
}

use super::out_queue::out_queue;
pub use super::out_queue::{OutReceiver, OutSender, Outgoing};

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
    /// Connection attempts per second allowed from one address (0: no limit).
    pub connection_rate_limit: f64,
    /// Failed Logons per minute after which an address is refused (0: no limit).
    pub max_failed_logons: u32,
    /// The last durable batch, when the store is pipelined: writers hold
    /// each hand-over until the batch it names is durable.
    pub durable: Option<tokio::sync::watch::Receiver<u64>>,
}

/// A bound port: plain TCP, or TLS when `tls` is set.
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// Handshakes every connection first (SocketUseSSL=Y).
    pub tls: Option<TlsAcceptor>,
}

/// What the acceptor checks for a session before the core hears of it.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// Bound of the session's outbound queue (MaxOutboundQueue).
    pub queue: usize,
    /// Addresses it may connect from; empty: any.
    pub allowed: Vec<IpAddr>,
    /// Username (553) its Logon must carry.
    pub username: Option<String>,
    /// Password (554) its Logon must carry.
    pub password: Option<String>,
    /// Its rate limit: the connection is read at most
    /// [`THROTTLE_READ_FACTOR`] times as fast.
    pub throttle: Option<Throttle>,
}

/// Window of the failed-Logon count.
const FAILED_LOGON_WINDOW: Duration = Duration::from_secs(60);

/// Per-address limits: connection attempts (token bucket) and failed Logons.
#[derive(Debug, Default)]
struct Guard {
    /// Address -> its connection attempts.
    attempts: HashMap<IpAddr, Bucket<Instant>>,
    /// Address -> (failures, window start).
    failures: HashMap<IpAddr, (u32, Instant)>,
}

impl Guard {
    fn allow_connection(
        &mut self,
        ip: IpAddr,
        rate: f64,
        max_failed: u32,
    ) -> Result<(), &'static str> {
        let now = Instant::now();
        if max_failed > 0 {
            if let Some(&(n, since)) = self.failures.get(&ip) {
                if now.duration_since(since) >= FAILED_LOGON_WINDOW {
                    self.failures.remove(&ip);
                } else if n >= max_failed {
                    return Err("too many failed Logons from this address (MaxFailedLogons)");
                }
            }
        }
        if rate > 0.0 {
            let bucket = self
                .attempts
                .entry(ip)
                .or_insert_with(|| Bucket::new(rate, rate.max(1.0), now));
            if !bucket.try_take(now) {
                return Err("too many connection attempts from this address (ConnectionRateLimit)");
            }
        }
        // Bounded memory under a flood from many addresses.
        if self.attempts.len() > 100_000 {
            self.attempts.clear();
        }
        Ok(())
    }

    fn failed_logon(&mut self, ip: IpAddr) {
        let now = Instant::now();
        let e = self.failures.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= FAILED_LOGON_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
        if self.failures.len() > 100_000 {
            self.failures.clear();
        }
    }
}

/// The network side of the gateway.
pub struct Acceptor {
    known: HashMap<SessionKey, Route>,
    core: mpsc::Sender<CoreMsg>,
    options: AcceptorOptions,
    next_conn: AtomicU64,
    guard: Mutex<Guard>,
}

impl Acceptor {
    /// An acceptor for `known` sessions (with the bound of each one's
    /// outbound queue) feeding `core`.
    pub fn new(
        known: HashMap<SessionKey, Route>,
        core: mpsc::Sender<CoreMsg>,
        options: AcceptorOptions,
    ) -> Acceptor {
        Acceptor {
            known,
            core,
            options,
            next_conn: AtomicU64::new(1),
            guard: Mutex::new(Guard::default()),
        }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, Guard> {
        self.guard.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accepts connections on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: Listener) {
        loop {
            match listener.tcp.accept().await {
                Ok((stream, peer)) => {
                    let verdict = self.guard().allow_connection(
                        peer.ip(),
                        self.options.connection_rate_limit,
                        self.options.max_failed_logons,
                    );
                    if let Err(why) = verdict {
                        tracing::debug!(%peer, "refusing connection: {why}");
                        drop(stream);
                        continue;
                    }
                    let me = self.clone();
                    let tls = listener.tls.clone();
                    tokio::spawn(async move { me.handle(stream, tls, peer).await });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn handle(
        self: Arc<Self>,
        stream: TcpStream,
        tls: Option<TlsAcceptor>,
        peer: SocketAddr,
    ) {
        if self.options.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let deadline = Instant::now() + self.options.logon_timeout;
        let Some(tls) = tls else {
            // A second descriptor of the socket lets the core write durable
            // output itself when the writer is idle (`OutSender::send_durable`).
            let direct = second_descriptor(&stream);
            let (read, write) = stream.into_split();
            return self.connection(read, write, direct, peer, deadline).await;
        };
        match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
            Ok(Ok(stream)) => {
                let (read, write) = tokio::io::split(stream);
                self.connection(read, write, None, peer, deadline).await;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                // A port probe, or a client that gave up before saying anything.
                tracing::debug!(%peer, error = %e, "connection closed during the TLS handshake");
            }
            Ok(Err(e)) => tracing::warn!(%peer, error = %e, "TLS handshake failed; closing"),
            Err(_) => tracing::warn!(%peer, "TLS handshake not done within LogonTimeout; closing"),
        }
    }

    /// Serves one connection (plain or TLS) from routing to close.
    async fn connection<R, W>(
        self: Arc<Self>,
        read: R,
        write: W,
        direct: Option<std::net::TcpStream>,
        peer: SocketAddr,
        deadline: Instant,
    ) where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let codec = FixCodec::new(
            self.options.max_message_size,
            self.options.validate_length_and_checksum,
        );
        let mut frames = FramedRead::new(read, codec);
        let Some((logon, key, route)) = self.route(&mut frames, peer, deadline).await else {
            close(write, frames.into_inner()).await;
            return;
        };
        let mut pace = route.throttle.map(|t| {
            Bucket::new(
                t.rate * THROTTLE_READ_FACTOR,
                t.burst * THROTTLE_READ_FACTOR,
                Instant::now(),
            )
        });
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (mut out_tx, out_rx) = out_queue(route.queue, self.options.durable.clone());
        if let Some(socket) = direct {
            out_tx = out_tx.with_direct(socket);
        }
        let (closed_tx, mut closed_rx) = oneshot::channel();
        tokio::spawn(writer(write, out_rx, closed_tx));
        let connect = CoreMsg::Connect {
            conn,
            key,
            logon,
            peer,
            out: out_tx,
        };
        if self.core.send(connect).await.is_err() {
            return;
        }
        loop {
            // A throttled session reads no faster than its pace allows.
            let wait = pace
                .as_mut()
                .map_or(Duration::ZERO, |p| p.take(Instant::now()));
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = &mut closed_rx => {
                        drain(frames.into_inner()).await;
                        break;
                    }
                }
            }
            tokio::select! {
                frame = frames.next() => match frame {
                    None => break,
                    Some(Err(e)) if closed_without_notify(&e) => break,
                    Some(Err(e)) => {
                        tracing::warn!(%peer, conn, error = %e, "closing connection");
                        break;
                    }
                    Some(Ok(bytes)) => match Message::parse(bytes) {
                        Ok(msg) => {
                            if self.core.send(CoreMsg::Frame { conn, msg }).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::debug!(%peer, conn, error = %e, "dropping garbled message"),
                    },
                },
                _ = &mut closed_rx => {
                    // We closed it: read what the peer still sends, briefly.
                    drain(frames.into_inner()).await;
                    break;
                }
            }
        }
        let _ = self.core.send(CoreMsg::Closed { conn }).await;
    }

    /// Reads until the first parseable message and checks it is a Logon for
    /// a configured session.
    async fn route<R: AsyncRead + Unpin>(
        &self,
        frames: &mut FramedRead<R, FixCodec>,
        peer: SocketAddr,
        deadline: Instant,
    ) -> Option<(Message, SessionKey, &Route)> {
        let msg = loop {
            match tokio::time::timeout_at(deadline, frames.next()).await {
                Err(_) => {
                    tracing::info!(%peer, "no Logon within LogonTimeout; closing");
                    return None;
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) if closed_without_notify(&e) => return None,
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
            msg.get_str(tags::TARGET_COMP_ID)?.to_string(),
            msg.get_str(tags::SENDER_COMP_ID)?.to_string(),
        );
        let Some(route) = self.known.get(&key) else {
            tracing::warn!(%peer, begin = %key.0, sender = %key.2, target = %key.1, "Logon for unknown session; closing");
            self.guard().failed_logon(peer.ip());
            return None;
        };
        if !route.allowed.is_empty() && !route.allowed.contains(&peer.ip()) {
            tracing::warn!(%peer, session = %key.2, "Logon from an address not in AllowedRemoteAddresses; closing");
            self.guard().failed_logon(peer.ip());
            return None;
        }
        // Credentials are checked here too, before the core (and the
        // session's store) hears of the connection; secrets are never logged.
        let credentials = super::logon::check_credentials(
            route.username.as_deref(),
            route.password.as_deref(),
            &msg,
        );
        if credentials.is_err() {
            tracing::warn!(%peer, session = %key.2, "Logon refused: wrong or missing Username/Password");
            self.guard().failed_logon(peer.ip());
            return None;
        }
        Some((msg, key, route))
    }
}

/// A TLS peer that closed its socket without a close_notify alert: many
/// FIX engines do, so it counts as a plain close (the FIX layer has its own
/// end-of-session check: Logout).
fn closed_without_notify(e: &FrameError) -> bool {
    matches!(e, FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
}

/// Most bytes gathered from the queue into one write.
const COALESCE_BYTES: usize = 64 * 1024;

/// How long a connection the core is done with (Close, after a Logout, or
/// a dropped sender) may take to accept its last bytes. A client that reads nothing, such as a
/// slow consumer just logged out, is then dropped without them: otherwise
/// its connection, task and socket buffers would live as long as it does.
const CLOSE_WRITE_GRACE: Duration = Duration::from_secs(10);

/// How often a writer whose socket takes nothing looks whether the core
/// has dropped the connection.
const CLOSED_CHECK: Duration = Duration::from_millis(100);

/// Writes what the core releases, coalescing queued messages into one write.
///
/// Once the core is done with the connection (Close, or it dropped its
/// sender, which a writer stuck on a full socket notices within
/// [`CLOSED_CHECK`]), what is left has [`CLOSE_WRITE_GRACE`] to be written.
async fn writer<W: AsyncWrite + Unpin>(
    mut write: W,
    mut rx: OutReceiver,
    closed: oneshot::Sender<()>,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut flushed = true;
    let mut received_all = false;
    let mut give_up: Option<Instant> = None;
    let mut check = tokio::time::interval(CLOSED_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if received_all && buf.is_empty() && flushed {
            break;
        }
        tokio::select! {
            biased;
            o = rx.recv(), if !received_all && buf.len() < COALESCE_BYTES => match o {
                Some(Outgoing::Data(frames)) => {
                    for b in frames {
                        buf.extend_from_slice(&b);
                    }
                    flushed = false;
                }
                Some(Outgoing::Close) | None => {
                    received_all = true;
                    give_up = give_up.or(Some(Instant::now() + CLOSE_WRITE_GRACE));
                }
            },
            r = write_or_flush(&mut write, &buf), if !flushed => match r {
                Ok(Some(0)) | Err(_) => break,
                Ok(Some(n)) => {
                    buf.advance(n);
                    rx.written(n);
                }
                Ok(None) => flushed = true,
            },
            _ = check.tick(), if give_up.is_none() && buf.len() >= COALESCE_BYTES => {
                if rx.is_closed() {
                    give_up = Some(Instant::now() + CLOSE_WRITE_GRACE);
                }
            },
            () = tokio::time::sleep_until(give_up.unwrap_or_else(Instant::now)), if give_up.is_some() => {
                tracing::info!(unsent = buf.len(), "the peer reads nothing; closing without the last bytes");
                break;
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_WRITE_GRACE, write.shutdown()).await;
    let _ = closed.send(());
}

/// Writes some of `buf` (how much, like `write`), or flushes when it is
/// empty (`None`). Both are safe to cancel: nothing is written twice.
async fn write_or_flush<W: AsyncWrite + Unpin>(
    write: &mut W,
    buf: &[u8],
) -> std::io::Result<Option<usize>> {
    if buf.is_empty() {
        write.flush().await.map(|()| None)
    } else {
        write.write(buf).await.map(Some)
    }
}

/// A second descriptor of `stream` (same socket, non-blocking too).
#[cfg(unix)]
pub(crate) fn second_descriptor(stream: &TcpStream) -> Option<std::net::TcpStream> {
    use std::os::fd::AsFd;
    let fd = stream.as_fd().try_clone_to_owned().ok()?;
    Some(std::net::TcpStream::from(fd))
}

#[cfg(not(unix))]
pub(crate) fn second_descriptor(_: &TcpStream) -> Option<std::net::TcpStream> {
    None
}

async fn drain<R: AsyncRead + Unpin>(mut read: R) {
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

async fn close<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut write: W, read: R) {
    let _ = write.shutdown().await;
    drain(read).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_lends_against_the_future_and_refills_at_its_rate() {
        let waits = |d: Duration, ms: f64| (d.as_secs_f64() * 1000.0 - ms).abs() < 1e-6;
        let t0 = Instant::now();
        let mut b = Bucket::new(100.0, 3.0, t0);
        for _ in 0..3 {
            assert_eq!(b.take(t0), Duration::ZERO);
        }
        // Empty: the next token is 10 ms away, the one after 20 ms.
        assert!(waits(b.take(t0), 10.0));
        assert!(waits(b.take(t0), 20.0));
        // 25 ms later both are paid back and half of the next is there.
        assert!(waits(b.take(t0 + Duration::from_millis(25)), 5.0));
        // Never more than the burst after a long pause.
        let much_later = t0 + Duration::from_secs(60);
        assert!(b.try_take(much_later) && b.try_take(much_later) && b.try_take(much_later));
        assert!(!b.try_take(much_later));
    }
}
