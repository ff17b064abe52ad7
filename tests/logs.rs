//! Logs of the real binary: the per-session FIX message and event logs
//! (FileLogPath) with secrets masked, and `--log-format json` on stderr.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, repo_path, Client, Gateway};

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
FileLogPath={LOGS}
[SESSION]
TargetCompID=CLIENT1
Username=trader1
Password=secret
LogRedactTags=553
[SESSION]
TargetCompID=CLIENT2
FileLogPath=
"
);

/// The file's content once `done` holds for it (the log thread flushes
/// within FLUSH_EVERY).
fn wait_for(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `YYYYMMDD-HH:MM:SS.nnnnnnnnn : ` and the rest of the line.
fn split_line(line: &str) -> &str {
    let (ts, rest) = line
        .split_once(" : ")
        .unwrap_or_else(|| panic!("no ' : ' in {line:?}"));
    let shape = ts.bytes().enumerate().all(|(i, c)| match i {
        8 => c == b'-',
        11 | 14 => c == b':',
        17 => c == b'.',
        _ => c.is_ascii_digit(),
    });
    assert!(shape && ts.len() == 27, "timestamp {ts:?}");
    rest
}

#[test]
fn message_log_has_every_message_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("fixlogs");
    let cfg = CFG.replace("{LOGS}", &logs.display().to_string());
    let gw = Gateway::start(dir.path(), &cfg);

    let mut c = Client::connect(gw.port, "CLIENT1", "FIXGW");
    c.logon(&[(553, "trader1"), (554, "secret")]);
    c.limit_order("ORD1", "1", "100", "150.00", "AAPL");
    let er = c.expect("8");
    assert_eq!(er.get_str(11), Some("ORD1"));
    c.send("5", &[]);
    c.expect("5");
    assert!(c.expect_disconnect(Duration::from_secs(5)));
    let mut other = Client::connect(gw.port, "CLIENT2", "FIXGW");
    other.logon(&[]);

    let messages = wait_for(
        &logs.join("FIX.4.4-FIXGW-CLIENT1.messages.current.log"),
        |t| t.lines().count() >= 6,
    );
    let lines: Vec<&str> = messages.lines().map(split_line).collect();
    let types: Vec<&str> = lines
        .iter()
        .map(|m| m.split('\x01').nth(2).unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        ["35=A", "35=A", "35=D", "35=8", "35=5", "35=5"],
        "{messages}"
    );
    for m in &lines {
        assert!(
            m.starts_with("8=FIX.4.4\x019=") && m.ends_with('\x01'),
            "{m:?}"
        );
    }
    assert!(
        lines[0].contains("\x01553=***\x01554=***\x01"),
        "{}",
        lines[0]
    );
    assert!(lines[2].contains("\x0111=ORD1\x01") && lines[3].contains("\x0111=ORD1\x01"));
    assert!(!messages.contains("secret") && !messages.contains("trader1"));

    let events = wait_for(&logs.join("FIX.4.4-FIXGW-CLIENT1.event.current.log"), |t| {
        t.contains("Disconnecting")
    });
    let texts: Vec<&str> = events.lines().map(split_line).collect();
    assert_eq!(texts[0], "Created session", "{events}");
    assert!(texts[1].starts_with("Accepted connection from 127.0.0.1:"));
    assert_eq!(
        texts[2..],
        [
            "Received logon request",
            "Responding to logon request",
            "Received logout request",
            "Sending logout response",
            "Disconnecting"
        ],
        "{events}"
    );
    // CLIENT2 clears FileLogPath: no files of its own.
    assert!(!logs
        .join("FIX.4.4-FIXGW-CLIENT2.messages.current.log")
        .exists());
    // The store keeps the real frames; only the log masks them.
    let stderr = std::fs::read_to_string(&gw.log).unwrap();
    assert!(!stderr.contains("secret"), "{stderr}");
}

/// Runs `fixgw run` with `args` and `envs` until it listens; returns its stderr.
fn stderr_of_run(args: &[&str], envs: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("gw.cfg");
    let text = CFG
        .replace("{PORT}", &port.to_string())
        .replace(
            "{DICT}",
            &repo_path("dictionaries/FIX44.xml").display().to_string(),
        )
        .replace("FileLogPath={LOGS}\n", "");
    std::fs::write(&cfg, text).unwrap();
    let err = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fixgw"))
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("FIXGW_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let text = wait_for(&err, |t| t.contains("listening"));
    let _ = child.kill();
    let _ = child.wait();
    text
}

fn assert_json_lines(stderr: &str) {
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(lines.len() >= 2, "{stderr}");
    for l in &lines {
        assert!(
            l["level"].is_string() && l["fields"]["message"].is_string(),
            "{l}"
        );
        assert!(l["timestamp"].is_string() && l["target"].is_string(), "{l}");
    }
    let listening = lines
        .iter()
        .find(|l| l["fields"]["message"] == "listening")
        .expect("a 'listening' line");
    assert_eq!(listening["level"], "INFO");
    assert!(
        listening["fields"]["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{listening}"
    );
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    assert_json_lines(&stderr_of_run(&["--log-format", "json"], &[]));
    assert_json_lines(&stderr_of_run(&[], &[("FIXGW_LOG_FORMAT", "json")]));
    let human = stderr_of_run(&[], &[]);
    assert!(human.contains(" INFO ") && human.contains("listening address=127.0.0.1:"));
    assert!(!human.trim_start().starts_with('{'), "{human}");
}
