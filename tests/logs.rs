//! Logs of the real binary: `--log-format json` on stderr.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, repo_path};

const CFG: &str = "\
[DEFAULT]
ConnectionType=acceptor
SocketAcceptPort={PORT}
SocketAcceptAddress=127.0.0.1
SenderCompID=FIXGW
DataDictionary={DICT}
BeginString=FIX.4.4
FileLogPath={LOGS}
[SESSION]
TargetCompID=CLIENT1
Username=trader1
Password=secret
LogRedactTags=553
[SESSION]
TargetCompID=CLIENT2
FileLogPath=
";

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
