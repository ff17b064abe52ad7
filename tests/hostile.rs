//! Hostile and careless clients against the real binary (issue 7): an
//! unauthenticated Logon with ResetSeqNumFlag=Y touches nothing, rate limits
//! refuse (or log out) a flooding session while others trade, a connection
//! that never logs on is dropped after LogonTimeout, and an oversize message
//! closes only its own connection.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Client, Gateway};
use fixgw::fix::Message;

const CFG: &str = concat!(
    crate::acceptor_defaults!(),
    "\
StartTime=00:00:00
EndTime=00:00:00
LogonTimeout=1
MaxMessageSize=2048
AdminHttpAddress=off
[SESSION]
TargetCompID=CLIENT1
SessionRole=order-entry
Password=secret
[SESSION]
TargetCompID=CLIENT2
SessionRole=order-entry
ThrottleRate=10
ThrottleBurst=5
[SESSION]
TargetCompID=FLOODER
SessionRole=order-entry
ThrottleRate=10
ThrottleBurst=5
ThrottleAction=logout
"
);

/// The venue maps FLOODER to nothing: give it an account.
const VENUE_EXTRA: &str = r#"

[[sessions]]
comp_id = "FLOODER"
account = "ACC2"
"#;

fn start(dir: &std::path::Path) -> Gateway {
    let venue = std::fs::read_to_string(common::repo_path("sessions/venue.toml")).unwrap();
    Gateway::start_with_venue(dir, CFG, &(venue + VENUE_EXTRA))
}

fn next_app(c: &mut Client) -> Message {
    loop {
        let m = c.recv(Duration::from_secs(10)).expect("a message");
        if !matches!(m.msg_type(), b"0" | b"1") {
            return m;
        }
    }
}

#[test]
fn unauthenticated_logon_with_reset_flag_leaves_the_session_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path());
    let mut c = Client::connect(gw.port, "CLIENT1", "FIXGW");
    c.logon(&[(554, "secret")]);
    c.limit_order("A1", "1", "10", "149.00", "AAPL");
    assert_eq!(next_app(&mut c).get_str(150), Some("0"));
    c.send("5", &[]);
    c.expect("5");
    // Gateway sent Logon(1), ER(2), Logout(3); we sent Logon(1), D(2), Logout(3).

    for password in [None, Some("wrong")] {
        let mut evil = Client::connect(gw.port, "CLIENT1", "FIXGW");
        let mut fields = vec![(98, "0"), (108, "30"), (141, "Y")];
        if let Some(p) = password {
            fields.push((554, p));
        }
        evil.send("A", &fields);
        assert!(
            evil.expect_disconnect(Duration::from_secs(5)),
            "an unauthenticated Logon is dropped without a reply ({password:?})"
        );
    }

    let mut back = Client::connect(gw.port, "CLIENT1", "FIXGW");
    back.seq = 4;
    let logon = back.logon(&[(554, "secret")]);
    assert_eq!(logon.get_str(34), Some("4"), "numbers continue: {logon:?}");
    assert_eq!(logon.get_str(141), None);
    // The stored ExecutionReport is still there for a resend.
    back.send("2", &[(7, "2"), (16, "2")]);
    let resent = next_app(&mut back);
    assert_eq!(
        (resent.get_str(35), resent.get_str(11), resent.get_str(43)),
        (Some("8"), Some("A1"), Some("Y"))
    );
}

#[test]
fn rate_limit_rejects_the_excess_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path());
    let mut c = Client::connect(gw.port, "CLIENT2", "FIXGW");
    c.logon(&[]);
    for i in 0..20 {
        c.limit_order(&format!("T{i}"), "2", "1", "160.00", "AAPL");
    }
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..20 {
        let m = next_app(&mut c);
        match m.msg_type() {
            b"8" => accepted += 1,
            b"j" => {
                refused += 1;
                let text = m.get_str(58).unwrap_or("");
                assert!(
                    text.starts_with("Throttled: more than 10 application messages/s"),
                    "{text}"
                );
                assert_eq!(
                    m.get_str(45).map(|s| s.is_empty()),
                    Some(false),
                    "RefSeqNum"
                );
                assert!(
                    m.get_str(379).unwrap().starts_with('T'),
                    "BusinessRejectRefID = ClOrdID"
                );
            }
            _ => panic!("unexpected {m:?}"),
        }
    }
    // The burst, plus whatever the rate refilled while the orders arrived.
    assert!((5..=7).contains(&accepted), "accepted {accepted}");
    assert_eq!(accepted + refused, 20);
    // The session stays up and trades again once the bucket refills.
    std::thread::sleep(Duration::from_millis(600));
    c.limit_order("LATER", "2", "1", "160.00", "AAPL");
    let m = next_app(&mut c);
    assert_eq!((m.get_str(35), m.get_str(150)), (Some("8"), Some("0")));
}

#[test]
fn a_flood_far_over_the_rate_limit_is_read_at_ten_times_the_rate() {
    // CLIENT2: 10 messages/s, burst 5, so its connection is read at no more
    // than 100/s after a burst of 50 (THROTTLE_READ_FACTOR): the core never
    // holds more than that of a flood, and the other sessions do not queue
    // behind it.
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path());
    let mut other = Client::connect(gw.port, "CLIENT1", "FIXGW");
    other.logon(&[(554, "secret")]);
    let mut flood = Client::connect(gw.port, "CLIENT2", "FIXGW");
    flood.logon(&[]);
    let started = Instant::now();
    let mut burst = Vec::new();
    for i in 0..200 {
        burst.extend(flood.encode(
            "D",
            &[
                (11, &format!("F{i}")),
                (21, "1"),
                (38, "1"),
                (40, "2"),
                (44, "140.00"),
                (54, "1"),
                (55, "AAPL"),
                (59, "0"),
                (60, "20260101-00:00:00.000"),
            ],
        ));
    }
    flood.send_raw(&burst);
    other.limit_order("O1", "2", "1", "160.00", "AAPL");
    assert_eq!(next_app(&mut other).get_str(150), Some("0"));
    let other_done = started.elapsed();
    let (mut accepted, mut refused) = (0, 0);
    while accepted + refused < 200 {
        match next_app(&mut flood).msg_type() {
            b"8" => accepted += 1,
            b"j" => refused += 1,
            t => panic!("unexpected 35={}", String::from_utf8_lossy(t)),
        }
    }
    let flood_done = started.elapsed();
    // 150 messages past the burst at 100/s: at least 1.5 s.
    assert!(
        flood_done >= Duration::from_millis(1400),
        "the flood was read in {flood_done:?}"
    );
    assert!(
        other_done < flood_done,
        "the other session waited for the flood ({other_done:?} >= {flood_done:?})"
    );
    // The burst, plus the rate over the time the flood was read.
    let most = 5 + (flood_done.as_secs_f64() * 10.0).ceil() as i32;
    assert!((5..=most).contains(&accepted), "accepted {accepted}");
}

#[test]
fn rate_limit_with_logout_action_disconnects_only_the_flooder() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path());
    let mut good = Client::connect(gw.port, "CLIENT2", "FIXGW");
    good.logon(&[]);
    let mut flood = Client::connect(gw.port, "FLOODER", "FIXGW");
    flood.logon(&[]);
    for i in 0..50 {
        flood.limit_order(&format!("F{i}"), "1", "1", "140.00", "AAPL");
    }
    let mut saw_reject = false;
    let logout = loop {
        let m = flood
            .recv(Duration::from_secs(10))
            .expect("Logout before EOF");
        match m.msg_type() {
            b"j" => saw_reject = true,
            b"5" => break m,
            _ => {}
        }
    };
    assert!(saw_reject);
    assert!(
        logout
            .get_str(58)
            .unwrap()
            .contains("ThrottleAction=logout"),
        "{logout:?}"
    );
    assert!(flood.expect_disconnect(Duration::from_secs(5)));
    good.limit_order("G1", "2", "1", "160.00", "AAPL");
    assert_eq!(next_app(&mut good).get_str(150), Some("0"));
}

#[test]
fn silent_connections_time_out_and_oversize_messages_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path());
    let mut good = Client::connect(gw.port, "CLIENT2", "FIXGW");
    good.logon(&[]);

    let started = Instant::now();
    let mut silent = Client::connect(gw.port, "CLIENT1", "FIXGW");
    assert!(silent.expect_disconnect(Duration::from_secs(5)));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "LogonTimeout=1 took {waited:?}"
    );

    let mut big = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    let mut c = Client::connect(gw.port, "FLOODER", "FIXGW");
    c.logon(&[]);
    let huge = "X".repeat(4000);
    let frame = c.encode("D", &[(11, "BIG"), (58, &huge)]);
    c.send_raw(&frame);
    assert!(
        c.expect_disconnect(Duration::from_secs(5)),
        "oversize message closes the connection"
    );
    // Garbage on a fresh connection is dropped too.
    let _ = big.write_all(&vec![b'9'; 5000]);
    good.limit_order("G1", "2", "1", "160.00", "AAPL");
    assert_eq!(
        next_app(&mut good).get_str(150),
        Some("0"),
        "the other session trades on"
    );
}

#[test]
fn failed_logons_connection_floods_and_foreign_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CFG
        .replace(
            "AdminHttpAddress=off",
            "AdminHttpAddress=off\nMaxFailedLogons=3\nConnectionRateLimit=20",
        )
        .replace(
            "TargetCompID=FLOODER\nSessionRole=order-entry",
            "TargetCompID=FLOODER\nSessionRole=order-entry\nAllowedRemoteAddresses=10.9.9.9",
        );
    let venue = std::fs::read_to_string(common::repo_path("sessions/venue.toml")).unwrap();
    let gw = Gateway::start_with_venue(dir.path(), &cfg, &(venue + VENUE_EXTRA));
    let mut good = Client::connect(gw.port, "CLIENT2", "FIXGW");
    good.logon(&[]);

    // Not from an allowed address: refused without a reply.
    let mut foreign = Client::connect(gw.port, "FLOODER", "FIXGW");
    foreign.send("A", &[(98, "0"), (108, "30")]);
    assert!(foreign.expect_disconnect(Duration::from_secs(5)));

    // Two wrong passwords (three failures with the address above): the next
    // connection from this address is refused even with the right password.
    for _ in 0..2 {
        let mut evil = Client::connect(gw.port, "CLIENT1", "FIXGW");
        evil.send("A", &[(98, "0"), (108, "30"), (554, "guess")]);
        assert!(evil.expect_disconnect(Duration::from_secs(5)));
    }
    let mut late = Client::connect(gw.port, "CLIENT1", "FIXGW");
    late.send("A", &[(98, "0"), (108, "30"), (554, "secret")]);
    assert!(
        late.expect_disconnect(Duration::from_secs(5)),
        "address blocked after MaxFailedLogons"
    );

    // The session already logged on is not affected.
    good.limit_order("G1", "2", "1", "160.00", "AAPL");
    assert_eq!(next_app(&mut good).get_str(150), Some("0"));
    let log = std::fs::read_to_string(&gw.log).unwrap();
    assert!(log.contains("AllowedRemoteAddresses"), "{log}");
    assert!(log.contains("wrong or missing Username/Password"), "{log}");
    assert!(
        !log.contains("guess") && !log.contains("secret"),
        "secrets never logged"
    );
}

#[test]
fn connection_flood_from_one_address_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    // A long LogonTimeout: accepted connections stay open while we look,
    // so only the limit can have closed them.
    let cfg = CFG
        .replace(
            "AdminHttpAddress=off",
            "AdminHttpAddress=off\nConnectionRateLimit=5",
        )
        .replace("LogonTimeout=1", "LogonTimeout=30");
    let venue = std::fs::read_to_string(common::repo_path("sessions/venue.toml")).unwrap();
    let gw = Gateway::start_with_venue(dir.path(), &cfg, &(venue + VENUE_EXTRA));
    let mut good = Client::connect(gw.port, "CLIENT2", "FIXGW");
    good.logon(&[]);
    // 40 connections at once: beyond the burst they are closed at accept.
    let mut conns: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(("127.0.0.1", gw.port)).unwrap())
        .collect();
    let mut closed = 0;
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 1];
        if matches!(std::io::Read::read(c, &mut b), Ok(0)) {
            closed += 1;
        }
    }
    assert!(
        closed >= 30,
        "only {closed} of 40 flood connections were cut off"
    );
    good.limit_order("G1", "2", "1", "160.00", "AAPL");
    assert_eq!(
        next_app(&mut good).get_str(150),
        Some("0"),
        "the logged-on session trades on"
    );
}
