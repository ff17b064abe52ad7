//! Runner for QuickFIX-style `.def` acceptance scripts.
//!
//! This crate executes the scripted server acceptance tests shipped by C++
//! QuickFIX (see `shared/quickfix-acceptance/FORMAT.md`) against a FIX
//! acceptor listening on a TCP port, playing the initiator (counterparty)
//! side. It reproduces the reference runner's semantics byte for byte:
//!
//! * line grammar and the single-digit connection id rule ([`script`]);
//! * `<TIME>`, `<TIME±N>` and `<FILE:…>` macros ([`macros`]), with one clock
//!   reading per line;
//! * BodyLength/CheckSum completion including the "10 supplied, 9 not"
//!   quirk, and runner-side framing by the acceptor's BodyLength
//!   ([`framing`]);
//! * positional comparison with `fields.fmt` value patterns ([`compare`]);
//! * the lifecycle: a probe connection before each script, lines executed
//!   top to bottom, first failure aborts, all connections closed afterwards.
//!
//! Additions over the reference (all configurable in [`RunnerOptions`]): a
//! per-`E` timeout (default 20 s), a per-script timeout, configurable
//! host/port and probe attempts.
//!
//! Decisions where the reference is silent or unhelpful:
//!
//! * `e…DISCONNECT` treats a TCP reset (`ECONNRESET`/`ECONNABORTED`) like an
//!   orderly FIN: the peer is gone, which is what the line asserts. The
//!   reference would report an error; a reset only says the acceptor closed
//!   with unread input, not that it kept the session open.
//! * `I` on a connection that is not open, or that was already seen closed
//!   by the peer (after a passing `e…DISCONNECT`), fails with "connection
//!   was dropped"; so does a failed write.
//! * `iDISCONNECT` on a connection that is not open is a no-op;
//!   `eDISCONNECT` on a connection never opened (or closed by the runner)
//!   fails; a second `eDISCONNECT` after a passing one passes again.
//! * A BodyLength value read from the acceptor is converted like Ruby's
//!   `to_i` (leading digits, else 0); the exact-compared `9` field then
//!   reports the problem.
//! * Syntax errors are detected for the whole file before the first line is
//!   executed (the reported line number is the same as the reference's).
//! * Acceptor-mode scripts (`eCONNECT` first) are reported as failures: the
//!   runner only plays the initiator.
//! * Failures not tied to a script line (unreadable file, probe exhausted,
//!   no mode) are reported as line 0.
//! * Messages are split on SOH with *all* trailing empty elements dropped
//!   (Ruby `String#split`), fields on their first `=`.
//! * An `E` that meets EOF or a reset, even mid-message, fails with "was
//!   disconnected, expected data" and shows any partial bytes received.

pub mod compare;
pub mod framing;
pub mod macros;
pub mod script;

#[cfg(test)]
mod e2e_tests;

pub use compare::FieldPatterns;

use script::{Command, Mode, ScriptLine};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Renders bytes for humans: SOH as `|`, invalid UTF-8 replaced.
pub fn show_soh(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\x01', "|")
}

/// Options for running scripts.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Acceptor host name or address.
    pub host: String,
    /// Acceptor TCP port.
    pub port: u16,
    /// How long one `E` line waits for a complete message (default 20 s).
    pub expect_timeout: Duration,
    /// How long one `e…DISCONNECT` waits for the peer to close (default 10 s).
    pub disconnect_timeout: Duration,
    /// Upper bound for a whole script, probe excluded (default 300 s).
    pub script_timeout: Duration,
    /// Timeout of one TCP connect attempt (default 5 s).
    pub connect_timeout: Duration,
    /// Probe connection attempts before each script (default 29).
    pub probe_attempts: u32,
    /// Pause between failed probe attempts (default 1 s).
    pub probe_interval: Duration,
    /// Value patterns for the comparison (default: upstream `fields.fmt`).
    pub fields: FieldPatterns,
    /// Directory `<FILE:path>` macros are resolved against (default `.`).
    pub file_base_dir: PathBuf,
}

impl RunnerOptions {
    /// Options with all defaults for the given acceptor address.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        RunnerOptions {
            host: host.into(),
            port,
            expect_timeout: Duration::from_secs(20),
            disconnect_timeout: Duration::from_secs(10),
            script_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
            probe_attempts: 29,
            probe_interval: Duration::from_secs(1),
            fields: FieldPatterns::default(),
            file_base_dir: PathBuf::from("."),
        }
    }
}

/// Why a script failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptFailure {
    /// 1-based line number of the failing line; 0 for failures not tied to
    /// a line (unreadable file, probe, mode detection).
    pub line: usize,
    /// One-line reason.
    pub reason: String,
    /// The expected message (after macro expansion and framing), if any.
    pub expected: Option<Vec<u8>>,
    /// The received bytes, if any.
    pub received: Option<Vec<u8>>,
}

impl ScriptFailure {
    fn new(line: usize, reason: impl Into<String>) -> Self {
        ScriptFailure {
            line,
            reason: reason.into(),
            expected: None,
            received: None,
        }
    }

    /// The indented `expected:` / `received:` detail lines (SOH as `|`).
    pub fn detail_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = &self.expected {
            out.push(format!("    expected: {}", show_soh(e)));
        }
        if let Some(r) = &self.received {
            out.push(format!("    received: {}", show_soh(r)));
        }
        out
    }
}

impl fmt::Display for ScriptFailure {
    /// `line <n>: <reason>`; see [`ScriptFailure::detail_lines`] for the rest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ScriptFailure {}

/// Outcome of [`run_all`].
#[derive(Debug, Default)]
pub struct Summary {
    /// Number of scripts that passed.
    pub passed: usize,
    /// Number of scripts that failed.
    pub failed: usize,
    /// Name and failure of every failed script, in run order.
    pub failures: Vec<(String, ScriptFailure)>,
}

/// The scenario name of a script: its file name without `.def`.
pub fn script_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    name.strip_suffix(".def").map(str::to_owned).unwrap_or(name)
}

/// Runs the scripts in the given order, writing `PASS <name>` or
/// `FAIL <name>: line <n>: <reason>` (plus indented expected/received lines)
/// per script and a closing `N passed, M failed` line to `out`.
pub fn run_all<P: AsRef<Path>>(paths: &[P], opts: &RunnerOptions, out: &mut impl Write) -> Summary {
    let mut summary = Summary::default();
    for path in paths {
        let path = path.as_ref();
        let name = script_name(path);
        match run_script(path, opts) {
            Ok(()) => {
                summary.passed += 1;
                let _ = writeln!(out, "PASS {name}");
            }
            Err(f) => {
                summary.failed += 1;
                let _ = writeln!(out, "FAIL {name}: {f}");
                for l in f.detail_lines() {
                    let _ = writeln!(out, "{l}");
                }
                summary.failures.push((name, f));
            }
        }
        let _ = out.flush();
    }
    let _ = writeln!(out, "{} passed, {} failed", summary.passed, summary.failed);
    let _ = out.flush();
    summary
}

/// Runs one script: probe, mode check, lines top to bottom (first failure
/// aborts), then closes every connection still open.
pub fn run_script(path: &Path, opts: &RunnerOptions) -> Result<(), ScriptFailure> {
    let bytes = std::fs::read(path)
        .map_err(|e| ScriptFailure::new(0, format!("cannot read {}: {e}", path.display())))?;
    probe(opts)?;
    match script::detect_mode(&bytes) {
        Some(Mode::Initiator) => {}
        Some(Mode::Acceptor) => {
            return Err(ScriptFailure::new(
                0,
                "acceptor-mode script (first CONNECT is eCONNECT) is not supported",
            ))
        }
        None => {
            return Err(ScriptFailure::new(
                0,
                "no iCONNECT/eCONNECT line: cannot determine the script mode",
            ))
        }
    }
    let lines = script::parse_script(&bytes).map_err(|e| ScriptFailure::new(e.line, e.reason))?;
    let mut run = Run {
        opts,
        conns: HashMap::new(),
        deadline: Instant::now() + opts.script_timeout,
    };
    let result = lines.iter().try_for_each(|l| run.execute(l));
    // Dropping the streams closes every connection still open.
    run.conns.clear();
    result
}

/// Resolves the acceptor address.
fn addrs(opts: &RunnerOptions) -> io::Result<Vec<SocketAddr>> {
    Ok((opts.host.as_str(), opts.port).to_socket_addrs()?.collect())
}

fn connect(opts: &RunnerOptions) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
    for a in addrs(opts)? {
        match TcpStream::connect_timeout(&a, opts.connect_timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The probe: connect, close immediately without sending; retried up to
/// `probe_attempts` times, `probe_interval` apart.
fn probe(opts: &RunnerOptions) -> Result<(), ScriptFailure> {
    let attempts = opts.probe_attempts.max(1);
    let mut last_err = String::new();
    for attempt in 1..=attempts {
        match connect(opts) {
            Ok(stream) => {
                drop(stream);
                return Ok(());
            }
            Err(e) => last_err = e.to_string(),
        }
        if attempt < attempts {
            std::thread::sleep(opts.probe_interval);
        }
    }
    Err(ScriptFailure::new(
        0,
        format!(
            "acceptor not reachable at {}:{} after {attempts} attempts: {last_err}",
            opts.host, opts.port
        ),
    ))
}

/// One open connection with its receive buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The peer closed (FIN or reset) and all data has been read.
    eof: bool,
}

/// Result of reading more bytes.
enum Fill {
    Data,
    Eof,
    Reset,
    Timeout,
}

impl Conn {
    fn fill(&mut self, deadline: Instant) -> io::Result<Fill> {
        let mut tmp = [0u8; 8192];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(Fill::Timeout);
            }
            self.stream.set_read_timeout(Some(deadline - now))?;
            match self.stream.read(&mut tmp) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(Fill::Eof);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(Fill::Data);
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => {}
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                        self.eof = true;
                        return Ok(Fill::Reset);
                    }
                    _ => return Err(e),
                },
            }
        }
    }
}

/// Per-script state.
struct Run<'a> {
    opts: &'a RunnerOptions,
    conns: HashMap<u8, Conn>,
    deadline: Instant,
}

impl Run<'_> {
    fn execute(&mut self, line: &ScriptLine) -> Result<(), ScriptFailure> {
        let n = line.number;
        if Instant::now() >= self.deadline {
            return Err(ScriptFailure::new(n, self.script_timeout_reason()));
        }
        let now = chrono::Utc::now();
        let payload = macros::expand(&line.payload, now, &self.opts.file_base_dir)
            .map_err(|e| ScriptFailure::new(n, e))?;
        match line.command {
            Command::Initiate => match &payload[..] {
                b"CONNECT" => {
                    let stream = connect(self.opts).map_err(|e| {
                        ScriptFailure::new(
                            n,
                            format!(
                                "cannot connect to {}:{}: {e}",
                                self.opts.host, self.opts.port
                            ),
                        )
                    })?;
                    self.conns.insert(
                        line.conn,
                        Conn {
                            stream,
                            buf: Vec::new(),
                            eof: false,
                        },
                    );
                    Ok(())
                }
                b"DISCONNECT" => {
                    self.conns.remove(&line.conn);
                    Ok(())
                }
                _ => Err(bad_action(n, line.command, &payload)),
            },
            Command::ExpectAction => match &payload[..] {
                // Acceptor mode only; a no-op for initiator scripts.
                b"CONNECT" => Ok(()),
                b"DISCONNECT" => self.expect_disconnect(n, line.conn),
                _ => Err(bad_action(n, line.command, &payload)),
            },
            Command::Send => {
                let bytes = framing::complete(&payload);
                let dropped =
                    || ScriptFailure::new(n, format!("connection {} was dropped", line.conn));
                let conn = self.conns.get_mut(&line.conn).ok_or_else(dropped)?;
                if conn.eof {
                    return Err(dropped());
                }
                conn.stream.write_all(&bytes).map_err(|e| {
                    ScriptFailure::new(n, format!("connection {} was dropped: {e}", line.conn))
                })
            }
            Command::Expect => {
                let expected = framing::complete(&payload);
                let received = self.read_message(n, line.conn).map_err(|mut f| {
                    f.expected = Some(expected.clone());
                    f
                })?;
                compare::compare(&expected, &received, &self.opts.fields).map_err(|reason| {
                    ScriptFailure {
                        line: n,
                        reason,
                        expected: Some(expected),
                        received: Some(received),
                    }
                })
            }
        }
    }

    fn script_timeout_reason(&self) -> String {
        format!(
            "script timed out (limit {} s)",
            self.opts.script_timeout.as_secs_f64()
        )
    }

    /// Reads the next message framed by the acceptor's BodyLength (§5).
    fn read_message(&mut self, n: usize, id: u8) -> Result<Vec<u8>, ScriptFailure> {
        let per_line = Instant::now() + self.opts.expect_timeout;
        let deadline = per_line.min(self.deadline);
        let timeout_reason = if per_line <= self.deadline {
            "timed out waiting for message".to_owned()
        } else {
            self.script_timeout_reason()
        };
        let conn = self.conns.get_mut(&id).ok_or_else(|| {
            ScriptFailure::new(n, format!("connection {id} is not open, expected data"))
        })?;
        let partial = |conn: &Conn, reason: String| ScriptFailure {
            line: n,
            reason,
            expected: None,
            received: (!conn.buf.is_empty()).then(|| conn.buf.clone()),
        };
        loop {
            if let framing::Frame::Complete(len) = framing::frame(&conn.buf) {
                return Ok(conn.buf.drain(..len).collect());
            }
            if conn.eof {
                return Err(partial(conn, "was disconnected, expected data".into()));
            }
            match conn.fill(deadline) {
                Ok(Fill::Data) => {}
                Ok(Fill::Eof) => {
                    return Err(partial(conn, "was disconnected, expected data".into()));
                }
                Ok(Fill::Reset) => {
                    return Err(partial(
                        conn,
                        "was disconnected (connection reset), expected data".into(),
                    ))
                }
                Ok(Fill::Timeout) => return Err(partial(conn, timeout_reason)),
                Err(e) => return Err(partial(conn, format!("read error: {e}"))),
            }
        }
    }

    /// `e…DISCONNECT`: the peer must close (FIN or reset) within the
    /// disconnect timeout without sending anything more.
    fn expect_disconnect(&mut self, n: usize, id: u8) -> Result<(), ScriptFailure> {
        let per_line = Instant::now() + self.opts.disconnect_timeout;
        let deadline = per_line.min(self.deadline);
        let Some(conn) = self.conns.get_mut(&id) else {
            return Err(ScriptFailure::new(
                n,
                format!("connection {id} is not open, expected disconnection"),
            ));
        };
        let got_data = |conn: &Conn| ScriptFailure {
            line: n,
            reason: "expected disconnection, got data".into(),
            expected: None,
            received: Some(conn.buf.clone()),
        };
        if !conn.buf.is_empty() {
            return Err(got_data(conn));
        }
        if conn.eof {
            return Ok(());
        }
        match conn.fill(deadline) {
            Ok(Fill::Eof) | Ok(Fill::Reset) => Ok(()),
            Ok(Fill::Data) => Err(got_data(conn)),
            Ok(Fill::Timeout) => Err(ScriptFailure::new(
                n,
                if per_line <= self.deadline {
                    format!(
                        "connection hangs: not closed by the acceptor within {} s",
                        self.opts.disconnect_timeout.as_secs_f64()
                    )
                } else {
                    self.script_timeout_reason()
                },
            )),
            Err(e) => Err(ScriptFailure::new(n, format!("read error: {e}"))),
        }
    }
}

fn bad_action(n: usize, cmd: Command, payload: &[u8]) -> ScriptFailure {
    ScriptFailure::new(
        n,
        format!(
            "syntax error: {} must be followed by CONNECT or DISCONNECT, got {}",
            cmd.as_char(),
            show_soh(payload)
        ),
    )
}
