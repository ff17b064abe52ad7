//! Market data over the wire against the real binary: a subscriber that stops
//! reading is logged out with a reason and dropped while another subscriber
//! and the order sessions carry on with nothing missing (and one that never
//! reads again is dropped all the same); a market-data session answers a
//! ResendRequest with a gap fill and resyncs by snapshot.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Gateway};
use fixgw::fix::Message;

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
StartTime=00:00:00
EndTime=00:00:00
[SESSION]
TargetCompID=CLIENT1
SessionRole=order-entry
[SESSION]
TargetCompID=CLIENT2
SessionRole=order-entry
[SESSION]
TargetCompID=MDFAST
SessionRole=market-data
PersistMessages=N
[SESSION]
TargetCompID=MDSLOW
SessionRole=market-data
PersistMessages=N
MaxOutboundQueue=16
[SESSION]
TargetCompID=MDSTUCK
SessionRole=market-data
PersistMessages=N
MaxOutboundQueue=1024
"
);

/// Subscriptions the slow consumer holds: each gets its own X per batch.
const SLOW_SUBSCRIPTIONS: usize = 200;

fn subscribe(c: &mut Client, id: &str, depth: &str) {
    c.send(
        "V",
        &[
            (262, id),
            (263, "1"),
            (264, depth),
            (265, "1"),
            (267, "3"),
            (269, "0"),
            (269, "1"),
            (269, "2"),
            (146, "1"),
            (55, "AAPL"),
        ],
    );
}

fn entries_rpt_seq(m: &Message) -> Vec<u64> {
    m.iter()
        .filter(|(t, _)| *t == 83)
        .map(|(_, v)| std::str::from_utf8(v).unwrap().parse().unwrap())
        .collect()
}

/// A buy order at its own price level (a new level, one X entry each).
fn order(c: &mut Client, n: usize) {
    let cl = format!("{}-{n}", c.sender);
    let px = format!("{}.{:02}", 130 + n / 100 % 10, n % 100);
    c.send(
        "D",
        &[
            (11, &cl),
            (55, "AAPL"),
            (54, "1"),
            (60, "20240102-10:00:00.000"),
            (38, "1"),
            (40, "2"),
            (44, &px),
        ],
    );
}

#[test]
fn slow_subscriber_is_logged_out_while_everyone_else_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), CFG);
    let mut client = Client::connect(gw.port, "CLIENT1", "FIXGW");
    client.logon(&[]);
    // An order-entry session may subscribe too; its X messages are stored
    // (PersistMessages=Y) and must match a replay of the journal.
    subscribe(&mut client, "OWN", "1");
    client.expect("W");
    let mut fast = Client::connect(gw.port, "MDFAST", "FIXGW");
    fast.logon(&[]);
    subscribe(&mut fast, "F", "0");
    let w = fast.expect("W");
    let mut rpt_seq: u64 = w.get_str(83).unwrap().parse().unwrap();
    let mut slow = Client::connect(gw.port, "MDSLOW", "FIXGW");
    slow.logon(&[]);
    for i in 0..SLOW_SUBSCRIPTIONS {
        subscribe(&mut slow, &format!("S{i}"), "0");
    }
    // The slow consumer now stops reading. Orders flow; each new level is
    // one entry for the fast subscriber and 200 messages for the slow one.
    let orders = 3000;
    let mut acked = 0;
    let mut fast_entries = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    while (acked < orders || fast_entries < orders) && Instant::now() < deadline {
        while sent < orders && sent < acked + 50 {
            order(&mut client, sent);
            sent += 1;
        }
        while let Some(m) = client.recv(Duration::from_millis(1)) {
            match m.msg_type() {
                b"X" => {}
                b"8" => {
                    assert_eq!(m.get_str(150), Some("0"), "{m:?}");
                    acked += 1;
                }
                b"0" | b"1" => {}
                _ => panic!("order session got {m:?}"),
            }
        }
        while let Some(m) = fast.recv(Duration::from_millis(1)) {
            if m.msg_type() != b"X" {
                continue;
            }
            for seq in entries_rpt_seq(&m) {
                assert_eq!(
                    seq,
                    rpt_seq + 1,
                    "fast subscriber sees every entry in order"
                );
                rpt_seq = seq;
                fast_entries += 1;
            }
        }
    }
    assert_eq!(acked, orders, "every order answered");
    assert_eq!(
        fast_entries, orders,
        "every book change reached the fast subscriber"
    );

    // The slow one: whatever fitted, then a Logout saying why, then EOF.
    let mut last = None;
    let mut got = 0;
    while let Some(m) = slow.recv(Duration::from_secs(5)) {
        got += 1;
        last = Some(m);
    }
    let last = last.expect("the slow consumer got something");
    assert_eq!(last.msg_type(), b"5", "last message is a Logout: {last:?}");
    let text = last.get_str(58).unwrap_or("");
    assert!(text.starts_with("Slow consumer"), "{text}");
    assert!(text.contains("MaxOutboundQueue"), "{text}");
    assert!(
        got < SLOW_SUBSCRIPTIONS * orders,
        "the slow consumer was cut off, not buffered: {got} messages"
    );
    assert!(slow.expect_disconnect(Duration::from_secs(5)));

    // It may come back: a ResendRequest for what it missed is one gap fill
    // (PersistMessages=N), and a new subscription resyncs it.
    let mut back = Client::connect(gw.port, "MDSLOW", "FIXGW");
    back.seq = slow.seq;
    back.send("A", &[(98, "0"), (108, "30")]);
    let logon = back.expect("A");
    let next: u64 = logon.get_str(34).unwrap().parse().unwrap();
    // Requests still queued when it was cut off were never processed: the
    // gateway asks for them again; we gap-fill (subscriptions are gone anyway).
    if let Some(rr) = back.recv(Duration::from_millis(300)) {
        assert_eq!(rr.msg_type(), b"2", "{rr:?}");
        let ours = back.seq;
        back.seq = rr.get_str(7).unwrap().parse().unwrap();
        let new_seq = ours.to_string();
        back.send("4", &[(43, "Y"), (123, "Y"), (36, &new_seq)]);
        back.seq = ours;
    }
    back.send("2", &[(7, "1"), (16, "0")]);
    let gap = back.expect("4");
    assert_eq!(gap.get_str(123), Some("Y"), "{gap:?}");
    assert!(gap.get_str(36).unwrap().parse::<u64>().unwrap() > next);
    subscribe(&mut back, "again", "1");
    let w = back.expect("W");
    assert_eq!(w.get_str(262), Some("again"));
    // Top of book: the best bid of the orders above.
    assert_eq!(w.get_str(270), Some("139.99"), "{w:?}");

    // The store agrees with a replay of the journal, market data included.
    let mut gw = gw;
    gw.kill9();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixgw"))
        .args(["journal", "verify", "--config"])
        .arg(&gw.config)
        .arg("--data")
        .arg(&gw.data)
        .current_dir(common::repo_path(""))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "journal verify failed: {text}");
    assert!(text.contains("OK"), "{text}");
}

#[test]
fn a_slow_subscriber_that_never_reads_again_is_dropped_after_a_grace() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), CFG);
    let log = || std::fs::read_to_string(&gw.log).unwrap_or_default();
    let mut client = Client::connect(gw.port, "CLIENT1", "FIXGW");
    client.logon(&[]);
    let mut slow = Client::connect(gw.port, "MDSTUCK", "FIXGW");
    slow.logon(&[]);
    // Far fewer messages per batch than MaxOutboundQueue (one X for each
    // of 4 subscriptions, 1024 queued at most): it is cut off only once the
    // socket buffers are full and the connection's writer is stuck, not
    // because its task was not scheduled for a moment.
    for i in 0..4 {
        subscribe(&mut slow, &format!("S{i}"), "0");
        slow.expect("W");
    }
    // Orders until the gateway logs the slow consumer out.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while !log().contains("Slow consumer") {
        assert!(
            Instant::now() < deadline,
            "no slow consumer after {n} orders"
        );
        for _ in 0..200 {
            order(&mut client, n);
            n += 1;
        }
        while client.recv(Duration::from_millis(20)).is_some() {}
    }
    let cut = Instant::now();
    // It never reads again: its Logout cannot be written, and the
    // connection is dropped when the grace for the last bytes (10 s) ends
    // instead of living as long as the client does.
    while !log().contains("the peer reads nothing") {
        assert!(
            cut.elapsed() < Duration::from_secs(30),
            "the connection of a client that reads nothing was never dropped: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        cut.elapsed() >= Duration::from_secs(8),
        "{:?}",
        cut.elapsed()
    );
    // What was in flight, then the end of the stream.
    while slow.recv(Duration::from_secs(5)).is_some() {}
    assert!(slow.expect_disconnect(Duration::from_secs(1)));
}
