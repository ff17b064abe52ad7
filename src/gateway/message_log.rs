//! The per-session FIX message log, as QuickFIX's FileLog writes it: for a
//! session with `FileLogPath=DIR`, every message received and sent goes to
//! `DIR/FIX.4.4-FIXGW-CLIENT1.messages.current.log` and session events
//! (connect, logon, logout, resend, reject, disconnect) to
//! `DIR/FIX.4.4-FIXGW-CLIENT1.event.current.log`. Each line is
//! `YYYYMMDD-HH:MM:SS.nnnnnnnnn : text` (QuickFIX 1.16's `FileLog`: UTC,
//! nine fractional digits, the same " : " for both directions), the
//! message with its SOH bytes as they are on the wire but Password (554),
//! NewPassword (925) and the `LogRedactTags` shown as `***`.
//!
//! The core thread only notes a line (a shared reference to the frame; no
//! copy, no formatting, no disk) and hands the batch's lines over at the end
//! of each batch: a dedicated thread redacts, formats and writes through
//! buffered files, flushed every [`FLUSH_EVERY`] and when the log is
//! dropped. At most [`QUEUE_LINES`] lines wait; past that, lines are dropped
//! and counted, never waited for, and the count is reported as a warning
//! and in the session's event log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::fix::redact::Redactor;
use crate::fix::time::{format_utc, now_utc, Precision, UtcNanos};
use crate::fix::{tags, Message};
use crate::session::{SessionConfig, SessionId};

/// Lines waiting for the log thread before new ones are dropped.
pub const QUEUE_LINES: usize = 65_536;
/// Longest time a written line stays in a file buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Pause of the log thread between two rounds of work, so that under load
/// it takes several batches per wake-up and the core never has to wake it.
const GATHER: Duration = Duration::from_millis(2);
/// Size of each file's write buffer.
const FILE_BUFFER_BYTES: usize = 64 * 1024;

/// What happened, as the core saw it.
enum Line {
    Message { raw: Bytes, incoming: bool },
    Connected(SocketAddr),
    Disconnected,
}

struct Record {
    slot: u32,
    ts: UtcNanos,
    line: Line,
}

/// The core's handle on the message log of every session that has one.
pub struct MessageLog {
    /// Core session index -> log slot (None: that session logs nothing).
    slots: Vec<Option<u32>>,
    /// This batch's lines.
    pending: Vec<Record>,
    tx: Option<Sender<Vec<Record>>>,
    /// Lines handed over and not yet written.
    queued: Arc<AtomicUsize>,
    /// Lines dropped per slot since the log thread last reported them.
    dropped: Arc<[AtomicU64]>,
    thread: Option<JoinHandle<()>>,
}

impl MessageLog {
    /// Opens (appending, as QuickFIX does) the log files of every session
    /// that sets FileLogPath, in core session order, and starts the log
    /// thread; None when no session sets it.
    pub fn open<'a>(
        sessions: impl IntoIterator<Item = &'a SessionConfig>,
    ) -> std::io::Result<Option<MessageLog>> {
        let mut slots = Vec::new();
        let mut files = Vec::new();
        for cfg in sessions {
            slots.push(match &cfg.file_log_path {
                Some(dir) => {
                    files.push(SessionFiles::open(dir, cfg)?);
                    Some(files.len() as u32 - 1)
                }
                None => None,
            });
        }
        if files.is_empty() {
            return Ok(None);
        }
        let dropped: Arc<[AtomicU64]> = files.iter().map(|_| AtomicU64::new(0)).collect();
        let queued = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = channel();
        let (counts, backlog) = (dropped.clone(), queued.clone());
        let thread = std::thread::Builder::new()
            .name("fixgw-msglog".into())
            .spawn(move || write_loop(rx, files, &backlog, &counts))?;
        Ok(Some(MessageLog {
            slots,
            pending: Vec::new(),
            tx: Some(tx),
            queued,
            dropped,
            thread: Some(thread),
        }))
    }

    /// Session `session` received `raw`.
    pub fn incoming(&mut self, session: usize, ts: UtcNanos, raw: &Bytes) {
        self.push(session, ts, || Line::Message {
            raw: raw.clone(),
            incoming: true,
        });
    }

    /// `raw` is handed to session `session`'s connection.
    pub fn outgoing(&mut self, session: usize, ts: UtcNanos, raw: &Bytes) {
        self.push(session, ts, || Line::Message {
            raw: raw.clone(),
            incoming: false,
        });
    }

    /// A connection from `peer` was bound to session `session`.
    pub fn connected(&mut self, session: usize, ts: UtcNanos, peer: SocketAddr) {
        self.push(session, ts, || Line::Connected(peer));
    }

    /// Session `session`'s connection is gone.
    pub fn disconnected(&mut self, session: usize, ts: UtcNanos) {
        self.push(session, ts, || Line::Disconnected);
    }

    fn push(&mut self, session: usize, ts: UtcNanos, line: impl FnOnce() -> Line) {
        let Some(&Some(slot)) = self.slots.get(session) else {
            return;
        };
        if self.pending.len() >= QUEUE_LINES {
            self.dropped[slot as usize].fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.pending.push(Record {
            slot,
            ts,
            line: line(),
        });
    }

    /// Hands the batch's lines to the log thread, or drops (and counts)
    /// them all if that would put more than [`QUEUE_LINES`] in waiting.
    pub fn end_batch(&mut self) {
        let n = self.pending.len();
        if n == 0 {
            return;
        }
        let lines = std::mem::take(&mut self.pending);
        let room = self.queued.load(Ordering::Acquire) + n <= QUEUE_LINES;
        if room {
            self.queued.fetch_add(n, Ordering::AcqRel);
            if let Some(Err(e)) = self.tx.as_ref().map(|tx| tx.send(lines)) {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                self.count_dropped(&e.0);
            }
        } else {
            self.count_dropped(&lines);
        }
    }

    fn count_dropped(&self, lines: &[Record]) {
        for r in lines {
            self.dropped[r.slot as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for MessageLog {
    /// Writes out everything queued and flushes the files.
    fn drop(&mut self) {
        self.end_batch();
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The two files of one session, with what the event log derives from the
/// messages (whether a Logout was sent or received on this connection).
struct SessionFiles {
    id: SessionId,
    redactor: Redactor,
    messages: LogFile,
    events: LogFile,
    logout_sent: bool,
    logout_received: bool,
}

/// QuickFIX's file name prefix: `BeginString-SenderCompID-TargetCompID`.
pub fn file_prefix(id: &SessionId) -> String {
    format!(
        "{}-{}-{}",
        id.begin_string, id.sender_comp_id, id.target_comp_id
    )
}

/// The message log and event log paths of a session.
pub fn file_paths(dir: &Path, id: &SessionId) -> (PathBuf, PathBuf) {
    let prefix = file_prefix(id);
    (
        dir.join(format!("{prefix}.messages.current.log")),
        dir.join(format!("{prefix}.event.current.log")),
    )
}

impl SessionFiles {
    fn open(dir: &Path, cfg: &SessionConfig) -> std::io::Result<SessionFiles> {
        let context = |e: std::io::Error, p: &Path| {
            std::io::Error::new(e.kind(), format!("FileLogPath: {}: {e}", p.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| context(e, dir))?;
        let (messages, events) = file_paths(dir, &cfg.id);
        let mut files = SessionFiles {
            id: cfg.id.clone(),
            redactor: Redactor::new(&cfg.log_redact_tags),
            messages: LogFile::open(&messages).map_err(|e| context(e, &messages))?,
            events: LogFile::open(&events).map_err(|e| context(e, &events))?,
            logout_sent: false,
            logout_received: false,
        };
        files.event(now_utc(), "Created session");
        Ok(files)
    }

    fn write(&mut self, ts: UtcNanos, line: Line) {
        match line {
            Line::Message { raw, incoming } => {
                self.messages
                    .line(&self.id, ts, &self.redactor.redact(&raw));
                if let Some(text) = self.event_of(&raw, incoming) {
                    self.event(ts, &text);
                }
            }
            Line::Connected(peer) => {
                self.logout_sent = false;
                self.logout_received = false;
                self.event(ts, &format!("Accepted connection from {peer}"));
            }
            Line::Disconnected => self.event(ts, "Disconnecting"),
        }
    }

    fn event(&mut self, ts: UtcNanos, text: &str) {
        self.events.line(&self.id, ts, text.as_bytes());
    }

    /// The event a message means, in QuickFIX's words where it has some.
    fn event_of(&mut self, raw: &Bytes, incoming: bool) -> Option<String> {
        let msg_type = msg_type(raw)?;
        let is_admin = matches!(msg_type, b"A" | b"5" | b"2" | b"4" | b"3" | b"j");
        if !is_admin && (incoming || memchr::memmem::find(raw, b"\x0143=Y\x01").is_none()) {
            return None;
        }
        let msg = Message::parse(raw.clone()).ok()?;
        let get = |tag| msg.get_str(tag).unwrap_or("");
        let with_text = |s: &str| match msg.get_str(tags::TEXT) {
            Some(t) if !t.is_empty() => format!("{s}: {t}"),
            _ => s.to_string(),
        };
        Some(match (msg_type, incoming) {
            (b"A", true) => "Received logon request".to_string(),
            (b"A", false) => "Responding to logon request".to_string(),
            (b"5", true) => {
                self.logout_received = true;
                with_text(if self.logout_sent {
                    "Received logout response"
                } else {
                    "Received logout request"
                })
            }
            (b"5", false) => {
                self.logout_sent = true;
                with_text(if self.logout_received {
                    "Sending logout response"
                } else {
                    "Initiated logout request"
                })
            }
            (b"2", _) => format!(
                "{} ResendRequest FROM: {} TO: {}",
                if incoming { "Received" } else { "Sent" },
                get(tags::BEGIN_SEQ_NO),
                get(tags::END_SEQ_NO)
            ),
            (b"4", true) => format!(
                "Received SequenceReset FROM: {} TO: {}",
                get(tags::MSG_SEQ_NUM),
                get(tags::NEW_SEQ_NO)
            ),
            (b"4", false) => format!("Sent SequenceReset TO: {}", get(tags::NEW_SEQ_NO)),
            (b"3" | b"j", true) => with_text(&format!(
                "Received Reject of message {}",
                get(tags::REF_SEQ_NUM)
            )),
            (b"3" | b"j", false) => {
                with_text(&format!("Message {} Rejected", get(tags::REF_SEQ_NUM)))
            }
            (_, false) => format!("Resending Message: {}", get(tags::MSG_SEQ_NUM)),
            _ => return None,
        })
    }

    fn flush(&mut self) {
        self.messages.flush(&self.id);
        self.events.flush(&self.id);
    }
}

/// MsgType (35, the third field) of a frame.
fn msg_type(raw: &[u8]) -> Option<&[u8]> {
    let start = memchr::memmem::find(raw, b"\x0135=")? + 4;
    let len = memchr::memchr(crate::fix::SOH, &raw[start..])?;
    Some(&raw[start..start + len])
}

/// One log file with its write buffer; after a write error it says so once
/// and keeps trying with the next lines.
struct LogFile {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    failed: bool,
}

impl LogFile {
    fn open(path: &Path) -> std::io::Result<LogFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(FILE_BUFFER_BYTES),
            failed: false,
        })
    }

    fn line(&mut self, id: &SessionId, ts: UtcNanos, text: &[u8]) {
        format_line(ts, text, &mut self.buf);
        if self.buf.len() >= FILE_BUFFER_BYTES {
            self.flush(id);
        }
    }

    fn flush(&mut self, id: &SessionId) {
        if !self.buf.is_empty() {
            let result = self.file.write_all(&self.buf);
            self.buf.clear();
            self.check(id, result);
        }
    }

    fn check(&mut self, id: &SessionId, result: std::io::Result<()>) {
        if let Err(e) = result {
            if !std::mem::replace(&mut self.failed, true) {
                tracing::error!(session = %id, file = %self.path.display(), error = %e, "cannot write the message log");
            }
        }
    }
}

/// Appends one log line: `YYYYMMDD-HH:MM:SS.nnnnnnnnn : text\n`.
pub fn format_line(ts: UtcNanos, text: &[u8], out: &mut Vec<u8>) {
    format_utc(ts, Precision::Nanos, out);
    out.extend_from_slice(b" : ");
    out.extend_from_slice(text);
    out.push(b'\n');
}

fn write_loop(
    rx: Receiver<Vec<Record>>,
    mut files: Vec<SessionFiles>,
    queued: &AtomicUsize,
    dropped: &[AtomicU64],
) {
    let mut last_flush = Instant::now();
    let write = |files: &mut [SessionFiles], lines: Vec<Record>| {
        let n = lines.len();
        for r in lines {
            files[r.slot as usize].write(r.ts, r.line);
        }
        queued.fetch_sub(n, Ordering::AcqRel);
    };
    loop {
        let mut done = match rx.recv_timeout(FLUSH_EVERY) {
            Ok(lines) => {
                write(&mut files, lines);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        while !done {
            match rx.try_recv() {
                Ok(lines) => write(&mut files, lines),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => done = true,
            }
        }
        if done || last_flush.elapsed() >= FLUSH_EVERY {
            for (f, count) in files.iter_mut().zip(dropped) {
                let n = count.swap(0, Ordering::Relaxed);
                if n > 0 {
                    tracing::warn!(session = %f.id, dropped = n, "message log queue full: lines not logged");
                    f.event(
                        now_utc(),
                        &format!("Message log queue full: {n} lines not logged"),
                    );
                }
                f.flush();
            }
            last_flush = Instant::now();
        }
        if done {
            return;
        }
        std::thread::sleep(GATHER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::time::parse_utc;

    #[test]
    fn line_format_is_quickfix_file_log() {
        let ts = parse_utc(b"20240501-09:30:00.123456789").unwrap();
        let mut out = Vec::new();
        format_line(ts, b"8=FIX.4.4\x0135=0\x01", &mut out);
        assert_eq!(
            out,
            b"20240501-09:30:00.123456789 : 8=FIX.4.4\x0135=0\x01\n"
        );
    }

    #[test]
    fn file_names_are_quickfix_ones() {
        let id = SessionConfig::new("FIX.4.4", "FIXGW", "CLIENT1").id;
        let (m, e) = file_paths(Path::new("logs"), &id);
        assert_eq!(
            m,
            Path::new("logs/FIX.4.4-FIXGW-CLIENT1.messages.current.log")
        );
        assert_eq!(e, Path::new("logs/FIX.4.4-FIXGW-CLIENT1.event.current.log"));
    }

    fn frame(body: &str) -> Bytes {
        Bytes::from(format!("8=FIX.4.4\x019=10\x01{body}\x0110=000\x01").replace('|', "\x01"))
    }

    #[test]
    fn events_and_redacted_messages_reach_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SessionConfig::new("FIX.4.4", "FIXGW", "CLIENT1");
        cfg.file_log_path = Some(dir.path().join("log"));
        cfg.log_redact_tags = vec![553];
        let plain = SessionConfig::new("FIX.4.4", "FIXGW", "CLIENT2");
        let mut log = MessageLog::open([&plain, &cfg]).unwrap().unwrap();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        log.connected(1, 1, peer);
        log.incoming(1, 2, &frame("35=A|34=1|553=user|554=secret|98=0|108=30"));
        log.outgoing(1, 3, &frame("35=A|34=1|98=0|108=30"));
        log.outgoing(1, 4, &frame("35=3|34=2|45=7|58=Required tag missing"));
        log.outgoing(1, 5, &frame("35=8|34=3|43=Y|17=1"));
        log.outgoing(1, 6, &frame("35=5|34=4|58=bye"));
        log.incoming(1, 7, &frame("35=5|34=2"));
        log.disconnected(1, 8);
        log.incoming(0, 9, &frame("35=0|34=1"));
        drop(log);
        let (m, e) = file_paths(&dir.path().join("log"), &cfg.id);
        let messages = std::fs::read_to_string(m).unwrap();
        assert_eq!(messages.lines().count(), 6, "{messages}");
        assert!(messages.starts_with("19700101-00:00:00.000000002 : 8=FIX.4.4\x019=10\x0135=A\x0134=1\x01553=***\x01554=***\x0198=0"));
        assert!(!messages.contains("secret") && !messages.contains("user"));
        let events: Vec<&str> = std::fs::read_to_string(e).unwrap().leak().lines().collect();
        let texts: Vec<&str> = events
            .iter()
            .map(|l| l.split_once(" : ").unwrap().1)
            .collect();
        assert_eq!(
            texts,
            [
                "Created session",
                "Accepted connection from 127.0.0.1:5000",
                "Received logon request",
                "Responding to logon request",
                "Message 7 Rejected: Required tag missing",
                "Resending Message: 3",
                "Initiated logout request: bye",
                "Received logout response",
                "Disconnecting",
            ]
        );
        assert!(!dir
            .path()
            .join("log/FIX.4.4-FIXGW-CLIENT2.messages.current.log")
            .exists());
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SessionConfig::new("FIX.4.4", "FIXGW", "CLIENT1");
        cfg.file_log_path = Some(dir.path().to_path_buf());
        let mut log = MessageLog::open([&cfg]).unwrap().unwrap();
        let hb = frame("35=0|34=1");
        // One batch larger than the queue: the excess is dropped at once.
        for _ in 0..QUEUE_LINES + 10 {
            log.incoming(0, 1, &hb);
        }
        assert_eq!(log.dropped[0].load(Ordering::Relaxed), 10);
        log.end_batch();
        // Then batches faster than the thread writes them.
        for _ in 0..100 {
            for _ in 0..1000 {
                log.incoming(0, 1, &hb);
            }
            log.end_batch();
        }
        drop(log);
        let (m, e) = file_paths(dir.path(), &cfg.id);
        let written = std::fs::read_to_string(m).unwrap().lines().count();
        let events = std::fs::read_to_string(e).unwrap();
        let reported: usize = events
            .lines()
            .filter_map(|l| l.split("queue full: ").nth(1))
            .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
            .sum();
        assert!(reported >= 10, "{events}");
        assert_eq!(written + reported, QUEUE_LINES + 10 + 100_000);
    }
}
