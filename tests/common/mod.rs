//! Shared helpers for black-box tests: start the real `fixgw` binary on a
//! free port with a settings file written by the test, and a minimal blocking
//! FIX client built on the library's encoder and codec.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fixgw::fix::time::now_utc;
use fixgw::fix::{FixCodec, Message};
use fixgw::gateway::harness::FixClient;
use fixgw::load::workload::SplitMix64;
use tokio_util::codec::Decoder;

/// Absolute path of a file in the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Writes `cfg` with `{PORT}` and `{DICT}` (our FIX44.xml) filled in to
/// `dir/gateway.cfg`; returns its path.
pub fn write_config(dir: &Path, cfg: &str, port: u16) -> PathBuf {
    let config = dir.join("gateway.cfg");
    let text = cfg.replace("{PORT}", &port.to_string()).replace(
        "{DICT}",
        &repo_path("dictionaries/FIX44.xml").display().to_string(),
    );
    std::fs::write(&config, text).expect("write cfg");
    config
}

/// What a command did: exit code, stdout, stderr.
pub struct Run {
    /// Exit code (-1: killed by a signal).
    pub code: i32,
    /// Standard output.
    pub out: String,
    /// Standard error.
    pub err: String,
}

/// Runs `fixgw ARGS` in the repository (where the default files are).
pub fn fixgw(args: &[&str]) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_fixgw"))
        .args(args)
        .current_dir(repo_path(""))
        .output()
        .expect("run fixgw");
    Run {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A running gateway process.
pub struct Gateway {
    child: Option<Child>,
    /// Port it listens on.
    pub port: u16,
    /// Settings file used.
    pub config: PathBuf,
    /// Store directory used.
    pub data: PathBuf,
    /// Where its stderr goes.
    pub log: PathBuf,
    /// Venue config passed with `--venue` (None: the binary's default).
    pub venue: Option<PathBuf>,
    /// More arguments to `fixgw run`.
    pub args: Vec<String>,
}

impl Gateway {
    /// Writes `cfg` (with `{PORT}` and `{DICT}` substituted) into `dir` and
    /// starts `fixgw run` on it with the store in `dir/data`.
    pub fn start(dir: &Path, cfg: &str) -> Gateway {
        Gateway::start_with_args(dir, cfg, &[])
    }

    /// Like `start`, with more arguments to `fixgw run` (at every restart
    /// too).
    pub fn start_with_args(dir: &Path, cfg: &str, args: &[&str]) -> Gateway {
        Gateway::launch(dir, cfg, None, args)
    }

    /// Like `start`, and also writes `venue_toml` to `dir/venue.toml` and
    /// passes it with `--venue`.
    pub fn start_with_venue(dir: &Path, cfg: &str, venue_toml: &str) -> Gateway {
        Gateway::start_with_venue_args(dir, cfg, venue_toml, &[])
    }

    /// Like `start_with_venue`, with more arguments to `fixgw run` (at every
    /// restart too).
    pub fn start_with_venue_args(
        dir: &Path,
        cfg: &str,
        venue_toml: &str,
        args: &[&str],
    ) -> Gateway {
        let venue = dir.join("venue.toml");
        std::fs::write(&venue, venue_toml).expect("write venue.toml");
        Gateway::launch(dir, cfg, Some(venue), args)
    }

    fn launch(dir: &Path, cfg: &str, venue: Option<PathBuf>, args: &[&str]) -> Gateway {
        let port = free_port();
        let config = write_config(dir, cfg, port);
        let mut g = Gateway {
            child: None,
            port,
            config,
            data: dir.join("data"),
            log: dir.join("gateway.log"),
            venue,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        g.restart();
        g
    }

    /// Starts the process again (same port, config and store).
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fixgw"));
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--data")
            .arg(&self.data);
        if let Some(venue) = &self.venue {
            cmd.arg("--venue").arg(venue);
        }
        cmd.args(&self.args);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn fixgw");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "fixgw exited with {status}: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "fixgw did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (graceful shutdown); waits for the exit and returns its status.
    pub fn sigterm(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("gateway running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("fixgw did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `fixgw COMMAND...` on this gateway's settings, venue file and
    /// store (`fixgw run` to start it in the foreground, `journal verify`).
    pub fn fixgw_on(&self, command: &[&str]) -> Run {
        let mut args: Vec<&str> = command.to_vec();
        args.extend(["--config", self.config.to_str().unwrap()]);
        args.extend(["--data", self.data.to_str().unwrap()]);
        if let Some(venue) = &self.venue {
            args.extend(["--venue", venue.to_str().unwrap()]);
        }
        fixgw(&args)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What a test client talks over: plain TCP, or TLS over TCP (tests/tls.rs).
pub trait Transport: Read + Write + Send {
    /// The TCP socket underneath (for read timeouts).
    fn tcp(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

/// A blocking FIX initiator for tests.
pub struct Client {
    stream: Box<dyn Transport>,
    buf: BytesMut,
    codec: FixCodec,
    /// Our CompID.
    pub sender: String,
    /// Their CompID.
    pub target: String,
    /// Next MsgSeqNum we send.
    pub seq: u64,
}

impl Client {
    /// Connects to `127.0.0.1:port`.
    pub fn connect(port: u16, sender: &str, target: &str) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).ok();
        Client::over(Box::new(stream), sender, target)
    }

    /// A client on an open connection.
    pub fn over(stream: Box<dyn Transport>, sender: &str, target: &str) -> Client {
        Client {
            stream,
            buf: BytesMut::new(),
            codec: FixCodec::default(),
            sender: sender.to_string(),
            target: target.to_string(),
            seq: 1,
        }
    }

    /// Encodes a message with the standard header and our next MsgSeqNum.
    pub fn encode(&mut self, msg_type: &str, fields: &[(i32, &str)]) -> Vec<u8> {
        let msg = FixClient::new(&self.sender, &self.target).message_at(
            self.seq,
            msg_type,
            fields,
            now_utc(),
        );
        self.seq += 1;
        msg.raw().to_vec()
    }

    /// Sends a message (see `encode`).
    pub fn send(&mut self, msg_type: &str, fields: &[(i32, &str)]) {
        self.try_send(msg_type, fields).expect("write");
    }

    /// Sends a message; a write error is returned, not a panic.
    pub fn try_send(&mut self, msg_type: &str, fields: &[(i32, &str)]) -> std::io::Result<()> {
        let bytes = self.encode(msg_type, fields);
        self.stream.write_all(&bytes)
    }

    /// Sends a Day limit NewOrderSingle.
    pub fn limit_order(&mut self, cl: &str, side: &str, qty: &str, px: &str, sym: &str) {
        self.send(
            "D",
            &[
                (11, cl),
                (21, "1"),
                (38, qty),
                (40, "2"),
                (44, px),
                (54, side),
                (55, sym),
                (59, "0"),
                (60, "20260101-00:00:00.000"),
            ],
        );
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Next message, or None on EOF / timeout.
    pub fn recv(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(frame)) = self.codec.decode(&mut self.buf) {
                return Message::parse(frame).ok();
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .tcp()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// Next message, which must have type `msg_type`.
    pub fn expect(&mut self, msg_type: &str) -> Message {
        let m = self
            .recv(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("expected 35={msg_type}, got nothing"));
        assert_eq!(
            m.msg_type(),
            msg_type.as_bytes(),
            "expected 35={msg_type}, got {m:?}"
        );
        m
    }

    /// Logs on with `108=30` and the given extra fields; returns the reply.
    pub fn logon(&mut self, extra: &[(i32, &str)]) -> Message {
        let mut fields = vec![(98, "0"), (108, "30")];
        fields.extend_from_slice(extra);
        self.send("A", &fields);
        self.expect("A")
    }

    /// True when the peer closes within `timeout` (any data fails).
    pub fn expect_disconnect(&mut self, timeout: Duration) -> bool {
        self.recv(timeout).is_none() && {
            let mut b = [0u8; 1];
            self.stream.tcp().set_read_timeout(Some(timeout)).ok();
            matches!(self.stream.read(&mut b), Ok(0) | Err(_))
        }
    }
}

/// A message shown with `|` for SOH.
pub fn show(m: &Message) -> String {
    format!("{m:?}")
}

/// Seeded choices for a test (the only source of choices in the
/// deterministic simulation): the load generator's SplitMix64.
#[derive(Clone)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }
    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// True once in `n` times.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// A number from the environment, if set.
pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

/// The `[DEFAULT]` lines every test gateway's settings start with: an
/// acceptor on 127.0.0.1:{PORT} as FIXGW, FIX.4.4, our dictionary ({DICT});
/// [`Gateway::start`] fills in the placeholders. Use it as
/// `concat!(crate::acceptor_defaults!(), "MoreKey=value\n...")`.
#[macro_export]
macro_rules! acceptor_defaults {
    () => {
        "[DEFAULT]\nConnectionType=acceptor\nSocketAcceptPort={PORT}\n\
         SocketAcceptAddress=127.0.0.1\nSenderCompID=FIXGW\nDataDictionary={DICT}\n\
         BeginString=FIX.4.4\n"
    };
}

/// Settings with the two order-entry sessions of the shipped venue file,
/// CLIENT1 and CLIENT2, trading around the clock.
#[allow(dead_code)]
pub const TWO_CLIENTS: &str = concat!(
    crate::acceptor_defaults!(),
    "\
StartTime=00:00:00
EndTime=00:00:00
[SESSION]
TargetCompID=CLIENT1
[SESSION]
TargetCompID=CLIENT2
"
);

/// Runs the load generator (`fixgw::load`) in process on a runtime of its
/// own (two workers) and returns its report.
pub fn run_load(opts: &fixgw::load::LoadOptions) -> fixgw::load::LoadReport {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(fixgw::load::run(opts)).expect("load run")
}
