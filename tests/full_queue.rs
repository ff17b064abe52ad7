//! Many sessions at full load: more requests wait for the core than one
//! batch takes (`gateway::core::MAX_BATCH`, 1 024), and none of them may be
//! lost. Ten sessions of `fixgw load` keep 256 requests each in flight
//! against the running binary; every request must be answered.
//!
//! A build that dropped the first message left over when a batch was full
//! (6903e88) left 1 536-1 838 of 2.2 million requests unanswered in 20 s
//! runs of `benches/load.sh`, and 1 792 in this test's run, done by hand
//! with that build's binary (this one: 0).

mod common;

use common::{fixgw, repo_path, Gateway};

const SESSIONS: usize = 10;

#[test]
fn ten_sessions_at_full_load_get_every_request_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::from(concat!(
        crate::acceptor_defaults!(),
        "ResetOnLogon=Y\nSessionRole=order-entry\nConnectionRateLimit=0\nAdminHttpAddress=off\n"
    ));
    for i in 1..=SESSIONS {
        cfg.push_str(&format!("[SESSION]\nTargetCompID=LOAD{i:02}\n"));
    }
    let venue = std::fs::read_to_string(repo_path("sessions/bench-venue.toml")).unwrap();
    let gw = Gateway::start_with_venue_args(dir.path(), &cfg, &venue, &["--flush", "os"]);
    let port = gw.port.to_string();
    let n = SESSIONS.to_string();
    let mut args = vec![
        "load",
        "--port",
        &port,
        "-n",
        &n,
        "--window",
        "256",
        "--duration",
        "4",
        "--warmup",
        "1",
        "--mix",
        "60,30,10",
    ];
    let senders: Vec<String> = (1..=SESSIONS).map(|i| format!("LOAD{i:02}")).collect();
    for s in &senders {
        args.extend(["--sender", s.as_str()]);
    }
    let run = fixgw(&args);
    assert_eq!(run.code, 0, "fixgw load failed:\n{}\n{}", run.out, run.err);
    let field = |name: &str| -> u64 {
        let at = run
            .out
            .find(name)
            .unwrap_or_else(|| panic!("no `{name}` in the report:\n{}", run.out));
        run.out[at + name.len()..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number after `{name}`:\n{}", run.out))
    };
    let sent = field("sent ");
    assert!(
        sent > 10_000,
        "too little load to fill a batch:\n{}",
        run.out
    );
    assert_eq!(field("unanswered "), 0, "requests lost:\n{}", run.out);
    assert_eq!(
        field("acks "),
        sent,
        "every request acknowledged:\n{}",
        run.out
    );
    assert!(run.out.contains("errors      none"), "{}", run.out);
}
