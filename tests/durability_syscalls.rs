//! The durability rule, seen at the system-call level: under `--flush fsync`
//! every ExecutionReport reaches a client socket only after the store write
//! holding it has been made durable with `fdatasync` (data, file size and
//! the device's cache), never with `sync_file_range` alone, which leaves
//! the file's new size and blocks to the file system's next journal commit.
//! The gateway runs under `strace -f`; the test reads the trace in order.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, repo_path, write_config, Client};

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
[SESSION]
TargetCompID=CLIENT1
[SESSION]
TargetCompID=CLIENT2
"
);

/// The gateway under `strace` (`fixgw run` with `args` added), tracing the
/// calls that write or sync files and sockets into `log` (`-y`: file
/// descriptors with their paths).
fn traced_gateway(dir: &Path, port: u16, log: &Path, args: &[&str]) -> Child {
    let cfg = write_config(dir, CFG, port);
    let strace = Command::new("strace")
        .args(["-f", "-y", "-s", "1000000", "-o"])
        .arg(log)
        .args([
            "-e",
            "trace=pwrite64,pwritev,write,writev,sendto,sendmsg,fsync,fdatasync,sync_file_range",
        ])
        .arg(env!("CARGO_BIN_EXE_fixgw"))
        .args(["run", "--flush", "fsync", "--config"])
        .arg(&cfg)
        .arg("--venue")
        .arg(repo_path("sessions/venue.toml"))
        .arg("--data")
        .arg(dir.join("data"))
        .args(args)
        .current_dir(repo_path(""))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = strace.expect(
        "strace is needed for this test (Debian: apt-get install strace; .ci/run installs it)",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the traced gateway did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Stops the gateway traced by `strace` (SIGTERM to the gateway, not to
/// strace, which would detach and leave it running) and waits for both.
fn stop(mut strace: Child) {
    let children = format!("/proc/{0}/task/{0}/children", strace.id());
    let pid = std::fs::read_to_string(children).unwrap();
    let pid = pid.split_whitespace().next().expect("the gateway process");
    assert!(Command::new("kill")
        .args(["-TERM", pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while strace.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
            panic!("the traced gateway did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Bytes of a string as strace prints it (C escapes, octal for the rest).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let n = b[i + 1];
        if n.is_ascii_digit() {
            let mut j = i + 1;
            let mut v: u32 = 0;
            while j < b.len() && j < i + 4 && (b'0'..=b'7').contains(&b[j]) {
                v = v * 8 + u32::from(b[j] - b'0');
                j += 1;
            }
            out.push(v as u8);
            i = j;
            continue;
        }
        if n == b'x' {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 4;
            continue;
        }
        out.push(match n {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'v' => 0x0b,
            b'f' => 0x0c,
            other => other,
        });
        i += 2;
    }
    out
}

/// The quoted strings of a trace line, unescaped.
fn strings(line: &str) -> Vec<Vec<u8>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            out.push(unescape(&line[start..j.min(b.len())]));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// One traced call: where in the trace it began and ended.
#[derive(Debug)]
struct Call {
    began: usize,
    ended: Option<usize>,
    name: String,
    /// The file descriptor's description, e.g. `9</tmp/x/data/db>`.
    fd: String,
    data: Vec<u8>,
}

/// Reads the trace into calls, joining `<unfinished ...>` with
/// `<... resumed>` (per process id).
fn calls(trace: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    let mut open: std::collections::HashMap<String, usize> = Default::default();
    for (i, line) in trace.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("<...") {
            if let Some(k) = open.remove(pid) {
                calls[k].ended = Some(i);
            }
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        // A call another thread's line interrupted ends in `<unfinished
        // ...>` right after its last argument (`fdatasync(9</x/db>
        // <unfinished ...>`): not part of the descriptor.
        let unfinished = rest.ends_with("<unfinished ...>");
        let args = args.trim_end_matches("<unfinished ...>").trim_end();
        let fd = args.split([',', ')']).next().unwrap_or("").to_string();
        calls.push(Call {
            began: i,
            ended: (!unfinished).then_some(i),
            name: name.to_string(),
            fd,
            data: strings(args).concat(),
        });
        if unfinished {
            open.insert(pid.to_string(), calls.len() - 1);
        }
    }
    calls
}

/// The FIX messages in a socket write.
fn fix_messages(data: &[u8]) -> Vec<&[u8]> {
    let start = b"8=FIX.4.4\x01";
    let mut at: Vec<usize> = (0..data.len())
        .filter(|&i| data[i..].starts_with(start))
        .collect();
    at.push(data.len());
    at.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

#[test]
fn every_execution_report_is_fdatasynced_in_the_store_before_it_is_sent() {
    reports_are_fdatasynced_before_they_are_sent(&[]);
}

/// With a commit window, a flush that waits for it runs on the flusher
/// thread and covers batches the core wrote meanwhile: still none of their
/// reports leaves before the fdatasync.
#[test]
fn with_a_commit_window_every_execution_report_is_still_fdatasynced_before_it_is_sent() {
    reports_are_fdatasynced_before_they_are_sent(&["--commit-window", "20000"]);
}

fn reports_are_fdatasynced_before_they_are_sent(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("strace.log");
    let gw = traced_gateway(dir.path(), port, &log, args);
    let mut c1 = Client::connect(port, "CLIENT1", "FIXGW");
    c1.logon(&[]);
    let mut c2 = Client::connect(port, "CLIENT2", "FIXGW");
    c2.logon(&[]);
    // Resting sells, then buys that cross them: New and Trade reports on
    // both sides.
    for i in 0..10 {
        c1.limit_order(&format!("S{i}"), "2", "100", "150.00", "AAPL");
        c1.expect("8");
    }
    for i in 0..10 {
        c2.limit_order(&format!("B{i}"), "1", "100", "150.00", "AAPL");
        c2.expect("8"); // Trade
        c1.expect("8"); // its counterpart's Trade
    }
    stop(gw);

    let trace = std::fs::read_to_string(&log).unwrap();
    let calls = calls(&trace);
    let store = |c: &Call| c.fd.ends_with("/data/db>");
    assert!(
        !calls
            .iter()
            .any(|c| c.name == "sync_file_range" && store(c)),
        "the store is synced with sync_file_range"
    );
    let mut checked = 0;
    for send in calls
        .iter()
        .filter(|c| c.fd.contains("<socket:") || c.fd.contains("<TCP"))
    {
        for msg in fix_messages(&send.data) {
            if !msg.windows(6).any(|w| w == b"\x0135=8\x01") {
                continue;
            }
            let write = calls
                .iter()
                .find(|c| c.name.starts_with("pwrite") && store(c) && contains(&c.data, msg))
                .unwrap_or_else(|| {
                    panic!(
                        "ExecutionReport sent (trace line {}) but never written to the store: {}",
                        send.began + 1,
                        String::from_utf8_lossy(msg)
                    )
                });
            let written = write.ended.expect("store write finished");
            assert!(
                written < send.began,
                "ExecutionReport sent (line {}) before its store write finished (line {})",
                send.began + 1,
                written + 1
            );
            let synced = calls.iter().any(|c| {
                c.name == "fdatasync"
                    && c.fd == write.fd
                    && c.began > written
                    && c.ended.is_some_and(|e| e < send.began)
            });
            assert!(
                synced,
                "ExecutionReport sent (line {}) without an fdatasync of its store write (line {}) between them; the trace from there:\n{}",
                send.began + 1,
                write.began + 1,
                excerpt(&trace, write.began, send.began)
            );
            checked += 1;
        }
    }
    // 10 New + 20 Trade reports at least.
    assert!(
        checked >= 30,
        "only {checked} ExecutionReports in the trace"
    );
}

/// Trace lines `from..=to` (0-based), each cut to 160 characters.
fn excerpt(trace: &str, from: usize, to: usize) -> String {
    trace
        .lines()
        .enumerate()
        .skip(from)
        .take(to + 1 - from)
        .map(|(i, l)| format!("{}: {}\n", i + 1, l.chars().take(160).collect::<String>()))
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
