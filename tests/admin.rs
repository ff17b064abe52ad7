//! The admin HTTP API and graceful shutdown against the real binary:
//! status endpoints, Prometheus counters that match the traffic, every
//! operator action with and without the token (401 changes nothing), halt /
//! resume and kill / unblock as a trading client sees them, operator logout,
//! sequence numbers of a disconnected session, the journal naming who acted,
//! and SIGTERM: every session gets a Logout, the process exits 0, and the
//! store reopens without recovery warnings.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{free_port, repo_path, Client, Gateway};
use fixgw::fix::Message;

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
StartTime=00:00:00
EndTime=00:00:00
AdminHttpAddress=127.0.0.1:{ADMIN}
AdminToken=alice:s3cret
[SESSION]
TargetCompID=CLIENT1
SessionRole=order-entry
[SESSION]
TargetCompID=CLIENT2
SessionRole=order-entry
"
);

const TOKEN: &str = "s3cret";

/// A minimal HTTP/1.1 client: (status, body).
fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let content = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}{content}\r\n{body}"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().expect("status code");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn start(dir: &std::path::Path) -> (Gateway, u16) {
    let admin = free_port();
    let gw = Gateway::start(dir, &CFG.replace("{ADMIN}", &admin.to_string()));
    (gw, admin)
}

fn logon(port: u16, who: &str) -> Client {
    let mut c = Client::connect(port, who, "FIXGW");
    c.logon(&[]);
    c
}

/// The next ExecutionReport (skipping heartbeats).
fn er(c: &mut Client) -> Message {
    loop {
        let m = c.expect_any();
        if m.msg_type() == b"8" {
            return m;
        }
    }
}

trait ExpectAny {
    fn expect_any(&mut self) -> Message;
}

impl ExpectAny for Client {
    fn expect_any(&mut self) -> Message {
        self.recv(Duration::from_secs(10)).expect("a message")
    }
}

fn metric(text: &str, line_prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {line_prefix} in:\n{text}"))
}

#[test]
fn status_endpoints_metrics_and_operator_actions() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, admin) = start(dir.path());
    assert_eq!(http(admin, "GET", "/health", None, "").0, 200);
    assert_eq!(http(admin, "GET", "/ready", None, "").0, 200);

    let mut c1 = logon(gw.port, "CLIENT1");
    let mut c2 = logon(gw.port, "CLIENT2");
    c1.limit_order("B1", "1", "10", "149.50", "AAPL");
    assert_eq!(er(&mut c1).get_str(150), Some("0"));
    c2.limit_order("S1", "2", "4", "149.50", "AAPL");
    assert_eq!(er(&mut c2).get_str(150), Some("0"));
    assert_eq!(er(&mut c2).get_str(150), Some("F"));
    assert_eq!(er(&mut c1).get_str(150), Some("F"));

    // Status.
    let (code, sessions) = http(admin, "GET", "/api/sessions", None, "");
    assert_eq!(code, 200);
    let sessions: serde_json::Value = serde_json::from_str(&sessions).unwrap();
    let s1 = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target_comp_id"] == "CLIENT1")
        .unwrap();
    assert_eq!(s1["connected"], true);
    assert_eq!(s1["next_target_seq"], 3, "{s1}");
    let (code, book) = http(admin, "GET", "/api/books/AAPL?depth=5", None, "");
    assert_eq!(code, 200);
    let book: serde_json::Value = serde_json::from_str(&book).unwrap();
    assert_eq!(book["bids"][0]["price"], "149.5");
    assert_eq!(book["bids"][0]["qty"], "6");
    assert_eq!(book["last_trade_price"], "149.5");
    assert_eq!(http(admin, "GET", "/api/books/NOPE", None, "").0, 404);
    let (_, positions) = http(admin, "GET", "/api/positions", None, "");
    let positions: serde_json::Value = serde_json::from_str(&positions).unwrap();
    let acc1 = positions
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["account"] == "ACC1" && p["symbol"] == "AAPL")
        .unwrap_or_else(|| panic!("{positions}"));
    assert_eq!(
        (acc1["net_qty"].as_str(), acc1["side"].as_str()),
        (Some("4"), Some("long"))
    );

    // Metrics count what happened.
    let (_, m) = http(admin, "GET", "/metrics", None, "");
    assert_eq!(metric(&m, "fixgw_orders_total "), 2);
    assert_eq!(metric(&m, "fixgw_trades_total "), 1);
    assert_eq!(metric(&m, "fixgw_sessions_connected "), 2);
    assert_eq!(
        metric(
            &m,
            "fixgw_messages_received_total{session=\"CLIENT1\",msg_type=\"D\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &m,
            "fixgw_messages_sent_total{session=\"CLIENT1\",msg_type=\"8\"}"
        ),
        2
    );
    assert!(metric(&m, "fixgw_order_latency_seconds_count ") >= 2);
    assert!(metric(&m, "fixgw_journal_flush_seconds_count ") >= 2);

    // Without the right token nothing happens.
    for (path, body) in [
        ("/api/symbols/AAPL/halt", ""),
        ("/api/accounts/ACC1/kill", ""),
        ("/api/sessions/CLIENT1/logout", ""),
        ("/api/sessions/CLIENT2/seq", "{\"sender\":50}"),
    ] {
        for token in [None, Some("wrong")] {
            let (code, text) = http(admin, "POST", path, token, body);
            assert_eq!(code, 401, "{path} {token:?}: {text}");
        }
    }
    c1.limit_order("B2", "1", "1", "140.00", "AAPL");
    assert_eq!(
        er(&mut c1).get_str(150),
        Some("0"),
        "not halted, not killed"
    );

    // Halt: new orders are rejected with a clear text; resume restores trading.
    let (code, text) = http(admin, "POST", "/api/symbols/AAPL/halt", Some(TOKEN), "");
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("alice@127.0.0.1"), "{text}");
    c1.limit_order("B3", "1", "1", "140.00", "AAPL");
    let r = er(&mut c1);
    assert_eq!(
        (r.get_str(150), r.get_str(58)),
        (Some("8"), Some("Instrument halted"))
    );
    assert_eq!(
        http(admin, "POST", "/api/symbols/NOPE/halt", Some(TOKEN), "").0,
        404
    );
    assert_eq!(
        http(admin, "POST", "/api/symbols/AAPL/resume", Some(TOKEN), "").0,
        200
    );
    c1.limit_order("B4", "1", "1", "140.00", "AAPL");
    assert_eq!(er(&mut c1).get_str(150), Some("0"));

    // Kill switch: every open order of ACC1 is cancelled, each with its report.
    let (code, text) = http(admin, "POST", "/api/accounts/ACC1/kill", Some(TOKEN), "");
    assert_eq!(code, 200, "{text}");
    let mut cancelled = Vec::new();
    for _ in 0..3 {
        let r = er(&mut c1);
        assert_eq!(r.get_str(150), Some("4"), "{r:?}");
        assert_eq!(
            r.get_str(58),
            Some("Cancelled: account blocked (kill switch)")
        );
        cancelled.push(r.get_str(11).unwrap().to_string());
    }
    cancelled.sort();
    assert_eq!(cancelled, ["B1", "B2", "B4"]);
    c1.limit_order("B5", "1", "1", "140.00", "AAPL");
    assert_eq!(er(&mut c1).get_str(150), Some("8"));
    assert_eq!(
        http(admin, "POST", "/api/accounts/ACC1/unblock", Some(TOKEN), "").0,
        200
    );
    c1.limit_order("B6", "1", "1", "140.00", "AAPL");
    assert_eq!(er(&mut c1).get_str(150), Some("0"));

    // Operator logout; sequence numbers only while disconnected.
    assert_eq!(
        http(
            admin,
            "POST",
            "/api/sessions/CLIENT2/seq",
            Some(TOKEN),
            "{\"sender\":50}"
        )
        .0,
        409
    );
    assert_eq!(
        http(
            admin,
            "POST",
            "/api/sessions/CLIENT2/logout",
            Some(TOKEN),
            ""
        )
        .0,
        200
    );
    let lo = c2.expect("5");
    assert_eq!(lo.get_str(58), Some("Logged out by the operator"));
    assert!(c2.expect_disconnect(Duration::from_secs(5)));
    let (code, text) = http(
        admin,
        "POST",
        "/api/sessions/CLIENT2/seq",
        Some(TOKEN),
        "{\"sender\":50,\"target\":20}",
    );
    assert_eq!(code, 200, "{text}");
    let mut c2 = Client::connect(gw.port, "CLIENT2", "FIXGW");
    c2.seq = 20;
    let logon = c2.logon(&[]);
    assert_eq!(logon.get_str(34), Some("50"), "{logon:?}");
    assert_eq!(
        http(admin, "POST", "/api/sessions/NOPE/logout", Some(TOKEN), "").0,
        404
    );

    // The journal says who did what.
    let mut gw = gw;
    gw.kill9();
    let out = Command::new(env!("CARGO_BIN_EXE_fixgw"))
        .args(["journal", "dump", "--config"])
        .arg(&gw.config)
        .arg("--data")
        .arg(&gw.data)
        .current_dir(repo_path(""))
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    let actions: Vec<&str> = dump
        .lines()
        .filter(|l| l.contains("\"operator\""))
        .collect();
    let texts: Vec<String> = actions
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(
                v["operator"]
                    .as_str()
                    .unwrap()
                    .starts_with("alice@127.0.0.1:"),
                "{l}"
            );
            v["action"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        texts,
        [
            "halt AAPL",
            "halt NOPE",
            "resume AAPL",
            "kill ACC1",
            "unblock ACC1",
            "logout CLIENT2",
            "seq CLIENT2 sender=50 target=20"
        ]
    );
}

#[test]
fn sigterm_logs_everyone_out_commits_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, _) = start(dir.path());
    let mut c1 = logon(gw.port, "CLIENT1");
    let mut c2 = logon(gw.port, "CLIENT2");
    c1.limit_order("B1", "1", "10", "149.50", "AAPL");
    assert_eq!(er(&mut c1).get_str(150), Some("0"));
    let status = gw.sigterm(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    for c in [&mut c1, &mut c2] {
        let lo = c.expect("5");
        assert_eq!(lo.get_str(58), Some("Gateway shutting down"));
        assert!(c.expect_disconnect(Duration::from_secs(5)));
    }
    let log = std::fs::read_to_string(&gw.log).unwrap();
    assert!(log.contains("store committed"), "{log}");

    // The store reopens cleanly and the numbers continue.
    let before = std::fs::read_to_string(&gw.log).unwrap().len();
    gw.restart();
    let mut c1 = Client::connect(gw.port, "CLIENT1", "FIXGW");
    c1.seq = 3;
    let logon = c1.logon(&[]);
    // Logon, ER, Logout were 1..3 (plus the Logon reply): the next is 4 or above, no gap to fill.
    assert_eq!(logon.get_str(34), Some("4"), "{logon:?}");
    let after = std::fs::read_to_string(&gw.log).unwrap();
    let restart_log = &after[before..];
    assert!(
        !restart_log.contains("WARN") && !restart_log.contains("ERROR"),
        "restart after a graceful shutdown logged problems:\n{restart_log}"
    );
    let (code, book) = {
        // The resting order survived the shutdown.
        c1.send("H", &[(11, "B1"), (790, "S"), (54, "1"), (55, "AAPL")]);
        let r = er(&mut c1);
        (
            r.get_str(39).map(str::to_string),
            r.get_str(151).map(str::to_string),
        )
    };
    assert_eq!((code.as_deref(), book.as_deref()), (Some("0"), Some("10")));
}
